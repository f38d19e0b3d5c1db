//! Slack: the analysis as a `chat.postMessage` with Block Kit buttons, approvals from the
//! interactivity request URL, decisions and outcomes written into the same message
//! (`chat.update`).
//!
//! Slack API used (base URL configurable): `chat.postMessage`, `chat.update`, `users.info` (the
//! clicker's email, scope `users:read.email`). Requests from Slack are verified with the signing
//! secret: `X-Slack-Signature: v0=hex(HMAC-SHA256("v0:" + X-Slack-Request-Timestamp + ":" + body))`,
//! and refused when the timestamp is more than 5 minutes off.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Approvers, ReplayGuard, Templates, approved_line, send};
use crate::access::SecretRef;
use crate::access::same;
use crate::incident::{ActionRun, IncidentRecord};
use crate::notify::Notifier;
use crate::reconciler::approval::Approvals;

/// `[slack]` configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// API base URL.
    #[serde(default = "default_base")]
    pub api_base: String,
    /// Channel id analyses go to.
    pub channel: String,
    /// Bot token (`xoxb-…`).
    pub token: SecretRef,
    /// The app's signing secret.
    pub signing_secret: SecretRef,
    /// Who may approve.
    pub approvers: Approvers,
}

fn default_base() -> String {
    "https://slack.com/api".into()
}

struct Posted {
    channel: String,
    ts: String,
    blocks: Vec<Value>,
    lines: Vec<String>,
}

/// The Slack integration.
pub struct Slack {
    cfg: SlackConfig,
    token: String,
    signing_secret: String,
    http: reqwest::Client,
    templates: Templates,
    posted: Mutex<HashMap<String, Posted>>,
    replays: ReplayGuard,
}

/// How far a request's timestamp may be from now.
const MAX_SKEW_SECS: i64 = 300;

#[derive(Deserialize)]
struct Interaction {
    #[serde(rename = "type")]
    kind: String,
    user: SlackUser,
    #[serde(default)]
    actions: Vec<SlackAction>,
}

#[derive(Deserialize)]
struct SlackUser {
    id: String,
}

#[derive(Deserialize)]
struct SlackAction {
    action_id: String,
    #[serde(default)]
    value: String,
}

/// What an (authenticated) interaction callback asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callback {
    /// Not a button press (its `type`): acknowledged and ignored.
    Ignored(String),
    /// A button press on one of our messages.
    Press {
        /// The Slack user id.
        user: String,
        /// `approve` or `reject`.
        action_id: String,
        /// The incident the button belongs to.
        incident: String,
        /// The suggestion it approves (empty for `reject`).
        suggestion: String,
    },
}

/// Read an interaction callback body (`application/x-www-form-urlencoded` with a JSON
/// `payload`). Untrusted input: any bytes give a value or a message saying what is wrong.
pub fn parse_callback(body: &[u8]) -> Result<Callback, String> {
    let payload = form_urlencoded::parse(body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned())
        .ok_or("no `payload` form field")?;
    let interaction: Interaction = serde_json::from_str(&payload).map_err(|e| format!("payload: {e}"))?;
    if interaction.kind != "block_actions" {
        return Ok(Callback::Ignored(interaction.kind));
    }
    let action = interaction.actions.first().ok_or("no action in the payload")?;
    let value: Value = serde_json::from_str(&action.value).unwrap_or(Value::Null);
    let incident = value["incident"].as_str().unwrap_or_default().to_string();
    if incident.is_empty() {
        return Err("the button carries no incident".into());
    }
    Ok(Callback::Press {
        user: interaction.user.id,
        action_id: action.action_id.clone(),
        incident,
        suggestion: value["suggestion"].as_str().unwrap_or_default().to_string(),
    })
}

impl Slack {
    /// Read the secrets and build the client.
    pub fn new(cfg: SlackConfig, templates: Templates) -> crate::Result<Arc<Self>> {
        let token = cfg.token.read("slack.token")?;
        let signing_secret = cfg.signing_secret.read("slack.signing_secret")?;
        let http = super::client()?;
        Ok(Arc::new(Slack {
            cfg,
            token,
            signing_secret,
            http,
            templates,
            posted: Mutex::default(),
            replays: ReplayGuard::default(),
        }))
    }

    /// Call a Web API method; Slack answers 200 with `ok: false` on errors.
    async fn call(&self, method: &str, body: &Value) -> Result<Value, String> {
        let url = format!("{}/{method}", self.cfg.api_base.trim_end_matches('/'));
        let r = send(|| self.http.post(&url).bearer_auth(&self.token).json(body), 4, method).await?;
        let v: Value = r.json().await.map_err(|e| format!("{method}: {e}"))?;
        if v["ok"] != true {
            return Err(format!("{method}: {}", v["error"].as_str().unwrap_or("not ok")));
        }
        Ok(v)
    }

    async fn email_of(&self, user: &str) -> Result<String, String> {
        let url = format!("{}/users.info", self.cfg.api_base.trim_end_matches('/'));
        let r = send(
            || self.http.get(&url).bearer_auth(&self.token).query(&[("user", user)]),
            4,
            "users.info",
        )
        .await?;
        let v: Value = r.json().await.map_err(|e| format!("users.info: {e}"))?;
        if v["ok"] != true {
            return Err(format!("users.info: {}", v["error"].as_str().unwrap_or("not ok")));
        }
        v["user"]["profile"]["email"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| "users.info: no email (the app needs users:read.email)".into())
    }

    /// The blocks for an analysis: the text (with each suggestion's preview), then one button per
    /// suggested action an actor implements, and Reject.
    pub fn blocks(&self, rec: &IncidentRecord) -> Vec<Value> {
        let mut buttons: Vec<Value> = rec
            .analysis
            .iter()
            .flat_map(|a| a.actions.iter())
            .filter(|s| s.actor.is_some())
            .map(|s| {
                json!({"type": "button", "style": "primary", "action_id": format!("approve:{}", s.id),
                       "text": {"type": "plain_text", "text": super::truncate(&format!("Approve {}", s.action), 70)},
                       "value": json!({"incident": rec.id, "suggestion": s.id}).to_string()})
            })
            .collect();
        buttons.push(json!({"type": "button", "style": "danger", "action_id": "reject", "text": {"type": "plain_text", "text": "Reject"}, "value": json!({"incident": rec.id}).to_string()}));
        vec![
            json!({"type": "section", "text": {"type": "mrkdwn", "text": super::truncate(&self.templates.analysis(rec, super::Markup::Slack), 2900)}}),
            json!({"type": "actions", "block_id": format!("euphrosyne:{}", rec.id), "elements": buttons}),
        ]
    }

    /// Add a line under the incident's message and update it.
    async fn annotate(&self, incident: &str, line: String) -> Result<(), String> {
        let body = {
            let mut posted = self.posted.lock();
            let Some(p) = posted.get_mut(incident) else {
                return Err(format!("no Slack message for incident {incident}"));
            };
            p.lines.push(line);
            let mut blocks = p.blocks.clone();
            blocks.push(json!({"type": "context", "elements": p.lines.iter().map(|l| json!({"type": "mrkdwn", "text": l})).collect::<Vec<_>>()}));
            json!({"channel": p.channel, "ts": p.ts, "text": p.lines.last().cloned().unwrap_or_default(), "blocks": blocks})
        };
        self.call("chat.update", &body).await.map(|_| ())
    }

    /// Handle an interactivity request. Signature and timestamp are checked before parsing.
    pub async fn callback(
        self: &Arc<Self>,
        approvals: &dyn Approvals,
        headers: &HeaderMap,
        body: &[u8],
    ) -> (StatusCode, String) {
        if let Err(refused) = self.verify(headers, body) {
            return refused;
        }
        let (user, action_id, incident, suggestion) = match parse_callback(body) {
            Err(e) => return (StatusCode::BAD_REQUEST, e),
            Ok(Callback::Ignored(kind)) => return (StatusCode::OK, format!("ignored {kind}")),
            Ok(Callback::Press {
                user,
                action_id,
                incident,
                suggestion,
            }) => (user, action_id, incident, suggestion),
        };
        let email = match self.email_of(&user).await {
            Ok(e) => e,
            Err(e) => return (StatusCode::BAD_GATEWAY, e),
        };
        if !self.cfg.approvers.allows(&email) {
            let msg = format!("{email} is not on the Slack approver allow-list");
            approvals.note(&incident, "action-refused", &msg, Some(email.clone()), "slack");
            self.annotate_later(&incident, format!(":no_entry: {msg}; nothing was run."));
            return (StatusCode::FORBIDDEN, msg);
        }
        if action_id == "reject" {
            let what = "the suggested actions were rejected";
            approvals.note(&incident, "rejected", what, Some(email.clone()), "slack");
            self.annotate_later(&incident, format!(":x: rejected by {email}; no action will run."));
            return (StatusCode::OK, "rejected".into());
        }
        match super::approve_click(approvals, "slack", incident, suggestion, email) {
            Ok(answer) => answer,
            Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        }
    }

    /// The request is Slack's: a fresh timestamp, a valid `v0` signature, not seen before.
    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), (StatusCode, String)> {
        let ts = headers
            .get("x-slack-request-timestamp")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let sig = headers
            .get("x-slack-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let Ok(when) = ts.parse::<i64>() else {
            return Err((StatusCode::UNAUTHORIZED, "missing X-Slack-Request-Timestamp".into()));
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        if (now - when).abs() > MAX_SKEW_SECS {
            return Err((
                StatusCode::UNAUTHORIZED,
                "X-Slack-Request-Timestamp is more than 5 minutes off; refused".into(),
            ));
        }
        let mut base = format!("v0:{ts}:").into_bytes();
        base.extend_from_slice(body);
        let expected = format!("v0={}", super::hmac_sha256_hex(self.signing_secret.as_bytes(), &base));
        if !same(sig.as_bytes(), expected.as_bytes()) {
            return Err((StatusCode::UNAUTHORIZED, "bad or missing X-Slack-Signature".into()));
        }
        if !self.replays.first(sig) {
            return Err((
                StatusCode::CONFLICT,
                "this request was already handled; replay refused".into(),
            ));
        }
        Ok(())
    }

    /// Add `line` under the incident's message, in the background.
    fn annotate_later(self: &Arc<Self>, incident: &str, line: String) {
        let (this, incident) = (self.clone(), incident.to_string());
        tokio::spawn(async move { this.annotate(&incident, line).await });
    }
}

#[async_trait::async_trait]
impl Notifier for Slack {
    fn name(&self) -> &str {
        "slack"
    }

    async fn analysis(&self, rec: &IncidentRecord) -> Result<(), String> {
        let blocks = self.blocks(rec);
        let text = format!(
            "Incident {}: {}",
            rec.id,
            rec.analysis.as_ref().map(|a| a.summary.as_str()).unwrap_or("")
        );
        let v = self
            .call(
                "chat.postMessage",
                &json!({"channel": self.cfg.channel, "text": super::truncate(&text, 300), "blocks": blocks}),
            )
            .await?;
        let posted = Posted {
            channel: v["channel"].as_str().unwrap_or(&self.cfg.channel).to_string(),
            ts: v["ts"]
                .as_str()
                .ok_or("chat.postMessage: no ts in the answer")?
                .to_string(),
            blocks,
            lines: vec![],
        };
        self.posted.lock().insert(rec.id.clone(), posted);
        Ok(())
    }

    async fn approved(&self, rec: &IncidentRecord, run: &ActionRun) -> Result<(), String> {
        self.annotate(&rec.id, approved_line(run, super::Markup::Slack, ":white_check_mark:"))
            .await
    }

    async fn outcome(&self, rec: &IncidentRecord, run: &ActionRun) -> Result<(), String> {
        self.annotate(&rec.id, self.templates.outcome(run, super::Markup::Slack))
            .await
    }
}
