//! Chat approval: analyses go to chat with one button per suggested action, a click approves
//! through the same path as `POST /api/actions`, and the outcome comes back in the thread.
//!
//! - [`webex`]: Webex messages with an Adaptive Card; `attachmentActions` webhooks verified by
//!   `X-Spark-Signature` (HMAC-SHA1);
//! - [`slack`]: `chat.postMessage` with Block Kit buttons; interactivity verified by
//!   `X-Slack-Signature` (v0, HMAC-SHA256, 5-minute timestamp window);
//! - [`webhook`]: a plain JSON POST of analyses and outcomes, optionally HMAC-signed, in our format
//!   or the original Euphrosyne bot's `/api/analysis` format.
//!
//! Shared here: the approver allow-list, the replay guard (a [`Recent`] set), message templates and the HTTP sender
//! that honours 429 `Retry-After` and retries 5xx with backoff. Tokens and secrets come from the
//! environment or files and are never logged.

pub mod slack;
pub mod webex;
pub mod webhook;

use std::time::Duration;

use parking_lot::Mutex;

use hmac::{Hmac, Mac};
use serde::Deserialize;

use crate::access::Role;
use crate::bounded::Recent;
use crate::incident::{ActionRun, IncidentRecord};
use crate::reconciler::approval::{Approval, Approvals, ApproveError, Caller};

/// Who may approve from chat: exact emails, or `@domain` for everyone at a domain.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Approvers(pub Vec<String>);

impl Approvers {
    /// Is `email` allowed? (Case-insensitive; an empty list allows nobody.)
    pub fn allows(&self, email: &str) -> bool {
        let email = email.trim().to_ascii_lowercase();
        let Some((_, domain)) = email.rsplit_once('@') else {
            return false;
        };
        self.0.iter().any(|entry| {
            let entry = entry.trim().to_ascii_lowercase();
            match entry.strip_prefix('@') {
                Some(d) => d == domain,
                None => entry == email,
            }
        })
    }
}

/// Remembers callback ids already handled, to refuse replays (the last 100,000).
pub struct ReplayGuard {
    seen: Mutex<Recent<String>>,
}

impl Default for ReplayGuard {
    fn default() -> Self {
        ReplayGuard {
            seen: Mutex::new(Recent::new(100_000)),
        }
    }
}

impl ReplayGuard {
    /// True the first time `id` is seen.
    pub fn first(&self, id: &str) -> bool {
        self.seen.lock().first(id.to_string())
    }
}

/// A click on a chat card's Approve button: the same approval as `POST /api/actions`, by the
/// person who clicked (`email`), with the approver role and the chat's name as token and
/// channel. The status and message the chat's callback answers; `Err` is a refusal to show.
pub fn approve_click(
    approvals: &dyn Approvals,
    chat: &str,
    incident: String,
    suggestion: String,
    email: String,
) -> Result<(http::StatusCode, String), ApproveError> {
    let caller = Caller {
        token: chat.into(),
        role: Role::Approver,
        channel: chat.into(),
    };
    let approval = Approval {
        incident,
        action: suggestion,
        params: None,
        approver: email,
        dry_run: false,
    };
    // The reconciler tells the chat "approved", then the outcome, in that order.
    Ok(match approvals.approve(approval, &caller)? {
        (run, true) => (http::StatusCode::OK, format!("approved {}", run.id)),
        (run, false) => (
            http::StatusCode::OK,
            format!("{} was already approved; it runs once", run.id),
        ),
    })
}

/// The line a chat thread gets when an action is approved (from any channel), escaped for
/// `markup`; `mark` is the chat's check-mark.
pub fn approved_line(run: &ActionRun, markup: Markup, mark: &str) -> String {
    let e = |s: &str| markup.escape(s);
    let next = match &run.error {
        Some(_) => "it cannot run",
        None => "running",
    };
    format!(
        "{mark} `{}` approved by {} via {}; {next}.",
        e(&run.action),
        e(&run.approved_by),
        e(&run.channel)
    )
}

/// Hex HMAC-SHA1 (Webex).
pub fn hmac_sha1_hex(secret: &[u8], body: &[u8]) -> String {
    let mut m = Hmac::<sha1::Sha1>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

/// Hex HMAC-SHA256 (Slack, plain webhooks).
pub fn hmac_sha256_hex(secret: &[u8], body: &[u8]) -> String {
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

/// Message templates operators may override. Placeholders: `{incident}`, `{verdict}`,
/// `{summary}`, `{findings}` (one line each), `{actions}` (one line each), `{action}`,
/// `{status}`, `{outcome}`, `{approver}`, `{channel}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Templates {
    /// The analysis message (Markdown).
    pub analysis: String,
    /// The outcome reply (Markdown).
    pub outcome: String,
}

impl Default for Templates {
    fn default() -> Self {
        Templates {
            analysis: "**Incident {incident}** — {verdict}\n\n{summary}\n\n{findings}\n\nSuggested:\n{actions}".into(),
            outcome:
                "**{action}** on incident {incident}: **{status}** — {outcome} (approved by {approver} via {channel})"
                    .into(),
        }
    }
}

/// How a chat renders text, and so how guest- and alert-controlled strings are escaped in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Markup {
    /// Webex Markdown: Markdown punctuation backslash-escaped, `<`, `>` and `&` as entities (so
    /// no `<@all>` or `<@personEmail:…>` mention, link or HTML comes from a recipe).
    Markdown,
    /// Slack mrkdwn: `&`, `<`, `>` as entities, Slack's documented escaping (so no
    /// `<!channel>`, `<@U…>` or link comes from a recipe); the template's `**bold**` becomes `*bold*`.
    Slack,
    /// Plain text inside JSON: no escaping.
    Plain,
}

impl Markup {
    /// `text` escaped for this markup.
    pub fn escape(self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match (self, c) {
                (Markup::Plain, c) => out.push(c),
                (_, '&') => out.push_str("&amp;"),
                (_, '<') => out.push_str("&lt;"),
                (_, '>') => out.push_str("&gt;"),
                (Markup::Markdown, '\\' | '*' | '_' | '~' | '`' | '[' | ']' | '#' | '|' | '!') => {
                    out.push('\\');
                    out.push(c);
                }
                (_, c) => out.push(c),
            }
        }
        out
    }

    fn template(self, template: &str) -> String {
        match self {
            Markup::Slack => template.replace("**", "*"),
            _ => template.to_string(),
        }
    }
}

/// Replace each `{key}` of `template` by its value in one pass: a value that itself contains
/// `{summary}` stays as written (the placeholders are the template's, never the values').
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}').map(|close| (&after[..close], close)) {
            Some((key, close)) if values.iter().any(|(k, _)| *k == key) => {
                let value = values.iter().find(|(k, _)| *k == key).map(|(_, v)| *v).unwrap_or("");
                out.push_str(value);
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

impl Templates {
    /// Render the analysis message of `rec`, every value escaped for `markup`.
    pub fn analysis(&self, rec: &IncidentRecord, markup: Markup) -> String {
        let e = |s: &str| markup.escape(s);
        let Some(a) = &rec.analysis else {
            return format!("Incident {}: no analysis", e(&rec.id));
        };
        let findings: Vec<String> = a
            .findings
            .iter()
            .take(10)
            .map(|f| {
                format!(
                    "- [{:?}] {}: {}",
                    f.finding.severity,
                    e(&f.finding.title),
                    e(&truncate(&f.finding.detail, 300))
                )
            })
            .collect();
        let actions: Vec<String> = a
            .actions
            .iter()
            .map(|s| {
                format!(
                    "- `{}` {} — {}{}",
                    e(&s.action),
                    e(&s.parameters.to_string()),
                    e(&s.reasons.join("; ")),
                    e(&preview_text(s))
                )
            })
            .collect();
        let actions = if actions.is_empty() {
            "- none".to_string()
        } else {
            actions.join("\n")
        };
        fill(
            &markup.template(&self.analysis),
            &[
                ("incident", &e(&rec.id)),
                ("verdict", &format!("{:?}", a.verdict).to_lowercase()),
                ("summary", &e(&a.summary)),
                ("findings", &findings.join("\n")),
                ("actions", &actions),
            ],
        )
    }

    /// Render the outcome reply of `run`, every value escaped for `markup`.
    pub fn outcome(&self, run: &ActionRun, markup: Markup) -> String {
        let e = |s: &str| markup.escape(s);
        let outcome = run
            .result
            .as_ref()
            .and_then(|r| r.outcome.as_ref())
            .map(|o| {
                if o.details.is_empty() {
                    o.summary.clone()
                } else {
                    format!("{} ({})", o.summary, o.details)
                }
            })
            .or_else(|| run.error.clone())
            .unwrap_or_default();
        fill(
            &markup.template(&self.outcome),
            &[
                ("incident", &e(&run.incident)),
                ("action", &e(&run.action)),
                ("status", &format!("{:?}", run.status).to_lowercase()),
                ("outcome", &e(&outcome)),
                ("approver", &e(&run.approved_by)),
                ("channel", &e(&run.channel)),
            ],
        )
    }
}

/// The HTTP client every integration uses (15 s timeout per request).
pub fn client() -> crate::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| crate::Error::Sandbox(format!("HTTP client: {e}")))
}

/// Cut `s` to at most `n` characters.
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// Send a request built by `build`, honouring 429 `Retry-After` (capped at 30 s) and retrying
/// 5xx and connection errors with exponential backoff; `attempts` tries in all.
pub async fn send(
    build: impl Fn() -> reqwest::RequestBuilder,
    attempts: u32,
    what: &str,
) -> Result<reqwest::Response, String> {
    let mut backoff = Duration::from_millis(200);
    let mut last = String::new();
    for attempt in 1..=attempts {
        match build().send().await {
            Ok(r) if r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS => {
                let wait = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1);
                last = format!("{what}: 429 Too Many Requests (Retry-After {wait})");
                tracing::warn!("{last}; attempt {attempt}/{attempts}");
                if attempt < attempts {
                    tokio::time::sleep(Duration::from_secs(wait.min(30))).await;
                }
            }
            Ok(r) if r.status().is_server_error() => {
                last = format!("{what}: {}", r.status());
                tracing::warn!("{last}; attempt {attempt}/{attempts}");
                if attempt < attempts {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
            }
            Ok(r) if r.status().is_success() => return Ok(r),
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                return Err(format!("{what}: {status}: {}", truncate(&body, 300)));
            }
            Err(e) => {
                last = format!("{what}: {e}");
                if attempt < attempts {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
            }
        }
    }
    Err(format!("{last} — gave up after {attempts} attempts"))
}

/// What a suggestion would change, for a chat card: the preview's diff lines, why the preview
/// failed, or that no actor is installed (so no button is shown).
pub fn preview_text(s: &crate::incident::ActionSuggestion) -> String {
    match (&s.actor, &s.preview) {
        (None, _) => "\n    no actor installed: nothing to approve".into(),
        (Some(_), None) => String::new(),
        (Some(_), Some(p)) if p.ok => p
            .lines()
            .iter()
            .take(5)
            .map(|l| format!("\n    would change: {}", truncate(l, 200)))
            .collect(),
        (Some(_), Some(p)) => format!("\n    preview failed: {}", truncate(&p.summary, 200)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_filled_once() {
        assert_eq!(fill("{a} and {b} {c}", &[("a", "{b}"), ("b", "x")]), "{b} and x {c}");
        assert_eq!(
            Markup::Slack.escape("<!channel> & <@U1>"),
            "&lt;!channel&gt; &amp; &lt;@U1&gt;"
        );
        assert_eq!(
            Markup::Markdown.escape("<@all> **x** [l](u)"),
            "&lt;@all&gt; \\*\\*x\\*\\* \\[l\\](u)"
        );
        assert_eq!(Markup::Plain.escape("<@all>"), "<@all>");
    }

    #[test]
    fn approver_allow_list() {
        let a = Approvers(vec!["alice@example.com".into(), "@sre.example.com".into()]);
        assert!(a.allows("Alice@Example.com"));
        assert!(a.allows("bob@sre.example.com"));
        assert!(!a.allows("bob@example.com"));
        assert!(!a.allows("mallory@evil-sre.example.com"));
        assert!(!a.allows("not-an-email"));
        assert!(!Approvers::default().allows("alice@example.com"));
    }

    #[test]
    fn signatures_match_published_examples() {
        // RFC 2202 test case 2 (HMAC-SHA1) and RFC 4231 test case 2 (HMAC-SHA256).
        assert_eq!(
            hmac_sha1_hex(b"Jefe", b"what do ya want for nothing?"),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let g = ReplayGuard::default();
        assert!(g.first("x") && !g.first("x"));
    }
}
