//! The pages, rendered on the server with maud (which HTML-escapes every interpolated value:
//! labels, annotations, findings and logs come from alerts and recipes, untrusted).

use std::time::SystemTime;

use maud::{DOCTYPE, Markup, html};

use super::session::Identity;
use crate::catalog::RecipeInfo;
use crate::incident::{ActionRun, ActionStatus, ActionSuggestion, IncidentRecord, Preview};
use crate::model::{AlertStatus, Change, Severity};
use crate::reconciler::Status;

/// Values longer than this show their start, the whole behind a disclosure.
const LONG: usize = 160;

/// The page frame: header, navigation, who is signed in.
pub fn layout(title: &str, who: Option<&Identity>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Euphrosyne" }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/console.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/incidents" { "Euphrosyne" }
                    nav {
                        a href="/incidents" { "Incidents" }
                        a href="/recipes" { "Recipes" }
                        a href="/api/docs" { "API" }
                    }
                    div.who {
                        @match who {
                            Some(w) if w.via == super::session::Via::Anonymous => {
                                span { "read-only (no tokens configured)" }
                            }
                            Some(w) => {
                                span #who { (w.name) " · " (role(w)) }
                                @if matches!(w.via, super::session::Via::Session(_)) {
                                    form.inline method="post" action="/sign-out" {
                                        input type="hidden" name="csrf" value=(w.csrf());
                                        button.link type="submit" { "Sign out" }
                                    }
                                }
                            }
                            None => { a href="/sign-in" { "Sign in" } }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

fn role(w: &Identity) -> &'static str {
    match w.role {
        crate::access::Role::Viewer => "viewer",
        crate::access::Role::Approver => "approver",
        crate::access::Role::Operator => "operator",
    }
}

/// A value that may be long: whole when short, else its start and the rest behind a click.
fn long(value: &str) -> Markup {
    if value.chars().count() <= LONG {
        return html! { span.wrap { (value) } };
    }
    let start: String = value.chars().take(LONG).collect();
    html! {
        details.long {
            summary { span.wrap { (start) "…" } }
            span.wrap { (value) }
        }
    }
}

/// "42 s ago", "5 min ago", … from an RFC 3339 time.
pub fn age(rfc3339: &str, now: SystemTime) -> String {
    let Ok(t) = humantime::parse_rfc3339_weak(rfc3339) else {
        return rfc3339.to_string();
    };
    let s = now.duration_since(t).map(|d| d.as_secs()).unwrap_or(0);
    match s {
        0..60 => format!("{s} s ago"),
        60..3600 => format!("{} min ago", s / 60),
        3600..86400 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86400),
    }
}

/// What the list shows, and how it was filtered.
pub struct ListPage<'a> {
    /// The incidents of this page.
    pub incidents: &'a [IncidentRecord],
    /// Incidents matching the filters, in all.
    pub total: usize,
    /// Page number, from 1.
    pub page: usize,
    /// Pages in all.
    pub pages: usize,
    /// The filters, as given.
    pub state: &'a str,
    /// `name=value`.
    pub label: &'a str,
    /// Free text.
    pub q: &'a str,
    /// A filter that could not be applied, and why.
    pub error: Option<String>,
}

/// The distinct values of label `name` among the incident's alerts, sorted.
fn distinct<'a>(rec: &'a IncidentRecord, name: &str) -> Vec<&'a str> {
    let mut values: Vec<&str> = rec
        .alerts
        .iter()
        .filter_map(|a| a.labels.get(name).map(String::as_str))
        .collect();
    values.sort_unstable();
    values.dedup();
    values
}

fn namespaces(rec: &IncidentRecord) -> String {
    let ns = distinct(rec, "namespace");
    match ns.len() {
        0 => "—".into(),
        1..=3 => ns.join(", "),
        n => format!("{} +{}", ns[..2].join(", "), n - 2),
    }
}

fn verdict(rec: &IncidentRecord) -> &'static str {
    match rec.analysis.as_ref().map(|a| a.verdict) {
        Some(crate::model::Verdict::Identified) => "identified",
        Some(crate::model::Verdict::Inconclusive) => "inconclusive",
        None => "—",
    }
}

fn page_link(p: &ListPage, page: usize) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [("state", p.state), ("label", p.label), ("q", p.q)] {
        if !v.is_empty() {
            q.append_pair(k, v);
        }
    }
    q.append_pair("page", &page.to_string());
    format!("/incidents?{}", q.finish())
}

/// `/incidents`.
pub fn incident_list(p: &ListPage, who: Option<&Identity>) -> Markup {
    let now = SystemTime::now();
    let body = html! {
        h1 { "Incidents" }
        form.filters method="get" action="/incidents" {
            label { "State "
                select name="state" {
                    option value="" selected[p.state.is_empty()] { "any" }
                    @for s in crate::incident::IncidentState::ALL {
                        option value=(s.as_str()) selected[p.state == s.as_str()] { (s.as_str()) }
                    }
                }
            }
            label { "Label " input type="text" name="label" placeholder="namespace=shop" value=(p.label); }
            label { "Text " input type="search" name="q" placeholder="alert, pod, summary…" value=(p.q); }
            button type="submit" { "Filter" }
            @if !p.state.is_empty() || !p.label.is_empty() || !p.q.is_empty() {
                a href="/incidents" { "clear" }
            }
        }
        @if let Some(e) = &p.error { p.error role="alert" { (e) } }
        p.count { (p.total) " incident" @if p.total != 1 { "s" } ", newest first" }
        table.incidents {
            thead { tr { th { "Incident" } th { "State" } th { "Alerts" } th { "Namespace" } th { "Age" } th { "Verdict" } } }
            tbody {
                @for rec in p.incidents {
                    @let names = distinct(rec, "alertname");
                    tr {
                        td { a href={ "/incidents/" (rec.id) } { (rec.id) } }
                        td { span class={ "state " (rec.state.as_str()) } { (rec.state.as_str()) } }
                        td.wrap {
                            @for (i, n) in names.iter().take(3).enumerate() {
                                @if i > 0 { ", " }
                                (n)
                            }
                            @if names.len() > 3 { " +" (names.len() - 3) }
                            " " span.dim { "(" (rec.alerts.len()) ")" }
                        }
                        td.wrap { (namespaces(rec)) }
                        td title=(rec.created_at) { (age(&rec.created_at, now)) }
                        td { span class={ "verdict " (verdict(rec)) } { (verdict(rec)) } }
                    }
                }
                @if p.incidents.is_empty() {
                    tr { td colspan="6" .dim { "No incident matches." } }
                }
            }
        }
        @if p.pages > 1 {
            nav.pager {
                @if p.page > 1 { a rel="prev" href=(page_link(p, p.page - 1)) { "← newer" } }
                span { "page " (p.page) " of " (p.pages) }
                @if p.page < p.pages { a rel="next" href=(page_link(p, p.page + 1)) { "older →" } }
            }
        }
    };
    layout("Incidents", who, body)
}

/// The whole incident page; the part that changes lives in `#live` and is replaced by the live
/// updates ([`incident_live`]).
pub fn incident_page(rec: &IncidentRecord, actions: &[ActionRun], who: Option<&Identity>, executor: &str) -> Markup {
    let body = html! {
        p.crumbs { a href="/incidents" { "Incidents" } " / " (rec.id) }
        div #live data-live={ "/incidents/" (rec.id) "/live" } {
            (incident_live(rec, actions, who, executor))
        }
        p #live-status .dim aria-live="polite" { "" }
    };
    layout(&rec.id, who, body)
}

fn severity_rank(s: Severity) -> u8 {
    match s {
        Severity::Critical => 0,
        Severity::Warning => 1,
        Severity::Info => 2,
    }
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

fn status_name(s: ActionStatus) -> &'static str {
    match s {
        ActionStatus::Pending => "pending",
        ActionStatus::Running => "running",
        ActionStatus::Succeeded => "succeeded",
        ActionStatus::Failed => "failed",
        ActionStatus::Conflict => "conflict",
    }
}

/// Parameters as `key = value` rows (a JSON object), or the JSON text.
fn parameters(p: &serde_json::Value) -> Markup {
    match p.as_object() {
        Some(map) if !map.is_empty() => html! {
            table.params {
                @for (k, v) in map {
                    tr { th { (k) } td { @match v.as_str() { Some(s) => (long(s)), None => (long(&v.to_string())) } } }
                }
            }
        },
        Some(_) => html! { span.dim { "no parameters" } },
        None => html! { code { (long(&p.to_string())) } },
    }
}

/// The changes a preview found, field by field.
fn changes(list: &[Change]) -> Markup {
    html! {
        table.diff {
            thead { tr { th { "Object" } th { "Field" } th { "Before" } th { "After" } } }
            tbody {
                @for c in list {
                    tr {
                        td.wrap { (c.object.to_string()) }
                        td.wrap { @if c.description.is_empty() { code { (c.path) } } @else { (c.description) br; code.dim { (c.path) } } }
                        td.before { code { (long(c.before.as_deref().unwrap_or("(absent)"))) } }
                        td.after { code { (long(c.after.as_deref().unwrap_or("(removed)"))) } }
                    }
                }
            }
        }
    }
}

fn preview_block(p: &Preview) -> Markup {
    html! {
        div class={ "preview " @if p.ok { "ok" } @else { "failed" } } {
            p {
                strong { @if p.ok { "Dry run: " } @else { "Dry run failed: " } }
                (long(&p.summary))
                " " span.dim { "(" (p.duration_ms) " ms, " (p.run_id) ")" }
            }
            @if !p.changes.is_empty() { (changes(&p.changes)) }
        }
    }
}

/// Why a suggestion cannot be approved from the page now (`None`: it can).
pub fn not_approvable(rec: &IncidentRecord, s: &ActionSuggestion, actions: &[ActionRun]) -> Option<String> {
    if rec.state == crate::incident::IncidentState::Resolved {
        return Some("the incident is resolved".into());
    }
    if s.actor.is_none() {
        return Some("no installed actor implements this action".into());
    }
    if let Some(a) = actions
        .iter()
        .find(|a| a.action == s.action && a.parameters == s.parameters)
    {
        return Some(format!("approved by {} ({})", a.approved_by, status_name(a.status)));
    }
    if let Some(e) = rejection(rec) {
        return Some(e);
    }
    None
}

/// The latest rejection of the incident's suggestions, said for people.
fn rejection(rec: &IncidentRecord) -> Option<String> {
    rec.events.iter().rev().find(|e| e.kind == "rejected").map(|e| {
        format!(
            "rejected by {} via {}",
            e.by.as_deref().unwrap_or("someone"),
            e.channel.as_deref().unwrap_or("?")
        )
    })
}

/// The part of the incident page the live updates replace.
pub fn incident_live(rec: &IncidentRecord, actions: &[ActionRun], who: Option<&Identity>, executor: &str) -> Markup {
    let now = SystemTime::now();
    let may = who.is_some_and(Identity::may_approve);
    let mut findings: Vec<_> = rec.analysis.iter().flat_map(|a| a.findings.iter()).collect();
    findings.sort_by_key(|f| severity_rank(f.finding.severity));
    let open_suggestions = rec
        .analysis
        .iter()
        .flat_map(|a| a.actions.iter())
        .filter(|s| not_approvable(rec, s, actions).is_none())
        .count();
    html! {
        div.head data-version=(rec.version) data-actions=(actions_key(actions)) {
            h1 { (rec.id) " " span class={ "state " (rec.state.as_str()) } { (rec.state.as_str()) } }
            p.dim {
                "opened " span title=(rec.created_at) { (age(&rec.created_at, now)) }
                " · updated " span title=(rec.updated_at) { (age(&rec.updated_at, now)) }
                " · " (rec.alerts.len()) " alert" @if rec.alerts.len() != 1 { "s" }
                " · " (rec.occurrences) " notification" @if rec.occurrences != 1 { "s" }
                " · source " (rec.source)
            }
            p.dim.wrap { "group " code { (rec.group_key) } }
        }
        section #analysis {
            h2 { "Analysis" }
            @match &rec.analysis {
                None => p.dim { "No analysis yet (" (rec.state.as_str()) ")." }
                Some(a) => {
                    p { span class={ "verdict " (verdict(rec)) } { (verdict(rec)) } }
                    pre.summary { (a.summary) }
                    @if !findings.is_empty() {
                        h3 { "Findings" }
                        ul.findings {
                            @for f in &findings {
                                li class=(severity_name(f.finding.severity)) {
                                    span class={ "sev " (severity_name(f.finding.severity)) } { (severity_name(f.finding.severity)) }
                                    " " strong { (f.finding.title) }
                                    " " span.dim { "(" (f.recipe) ")" }
                                    @if !f.finding.detail.is_empty() { pre.evidence { (f.finding.detail) } }
                                }
                            }
                        }
                    }
                }
            }
        }
        section #actions {
            h2 { "Suggested actions" }
            @let suggestions: Vec<&ActionSuggestion> = rec.analysis.iter().flat_map(|a| a.actions.iter()).collect();
            @if suggestions.is_empty() { p.dim { "None." } }
            @for s in &suggestions {
                @let blocked = not_approvable(rec, s, actions);
                article.suggestion id={ "suggestion-" (s.id) } {
                    h3 { code { (s.action) } " " span.dim { (s.id) } }
                    (parameters(&s.parameters))
                    ul.reasons { @for (r, by) in s.reasons.iter().zip(&s.recipes) { li { (long(r)) " " span.dim { "(" (by) ")" } } } }
                    @match &s.actor { Some(a) => p.dim { "actor " (a) }, None => p.warn { "No installed actor implements this action." } }
                    @match &s.preview {
                        Some(p) => (preview_block(p)),
                        None if s.actor.is_some() => p.dim { "Dry run pending…" },
                        None => {}
                    }
                    @match (&blocked, may) {
                        (None, true) => {
                            a.button.approve href={ "/incidents/" (rec.id) "/actions/" (s.id) } { "Approve…" }
                        }
                        (Some(why), _) => p.dim.why { (why) }
                        (None, false) => {}
                    }
                }
            }
            @if may && open_suggestions > 0 {
                form.reject method="post" action={ "/incidents/" (rec.id) "/reject" } {
                    input type="hidden" name="csrf" value=(who.map(Identity::csrf).unwrap_or(""));
                    button.reject type="submit" { "Reject the suggestions" }
                }
            }
        }
        @if !actions.is_empty() {
            section #approved {
                h2 { "Approved actions" }
                @for a in actions {
                    article.action id={ "action-" (a.id) } data-status=(status_name(a.status)) {
                        h3 {
                            code { (a.action) } " "
                            span class={ "status " (status_name(a.status)) } { (status_name(a.status)) }
                        }
                        p.dim { "approved by " strong { (a.approved_by) } " via " (a.channel) " · " (a.id) @if !a.suggested { " · not suggested (operator)" } }
                        (parameters(&a.parameters))
                        @if let Some(r) = &a.result {
                            @if let Some(o) = &r.outcome { p.outcome { (long(&o.summary)) } }
                            @if !r.writes.is_empty() {
                                ul.writes { @for line in crate::incident::write_lines(&r.writes) { li.wrap { (line) } } }
                            }
                        }
                        @if let Some(e) = &a.error { p.error { (long(e)) } }
                        @if let Some(p) = &a.fresh_preview { h4 { "Fresh dry run (after the conflict)" } (preview_block(p)) }
                    }
                }
            }
        }
        section #runs {
            h2 { "Runs" }
            table.runs {
                thead { tr { th { "Recipe" } th { "Digest" } th { "Executor" } th { "Duration" } th { "Status" } } }
                tbody {
                    @for r in &rec.runs {
                        tr {
                            td { (r.recipe) }
                            td { code title=(r.digest) { (short_digest(&r.digest)) } }
                            td { (run_executor(r.result.as_ref(), executor)) }
                            td { @if let Some(res) = &r.result { (run_ms(res)) " ms" } @else { "—" } }
                            td {
                                span class={ "status " (r.status) } { (r.status) }
                                @if let Some(res) = r.result.as_ref().filter(|res| !res.message.is_empty()) { " " span.dim.wrap { (long(&res.message)) } }
                            }
                        }
                        @if let Some(res) = r.result.as_ref().filter(|res| !res.logs.is_empty() || !res.stderr.is_empty()) {
                            tr.logs { td colspan="5" {
                                details {
                                    summary { "logs of " (r.recipe) }
                                    pre.evidence {
                                        @for l in &res.logs { (l.level) " " (l.message) "\n" }
                                        (res.stderr)
                                    }
                                }
                            } }
                        }
                    }
                    @if rec.runs.is_empty() { tr { td colspan="5" .dim { "No run yet." } } }
                }
            }
        }
        section #alerts {
            h2 { "Alerts" }
            @for a in &rec.alerts {
                article.alert {
                    h3 {
                        span class={ "status " @if a.status == AlertStatus::Firing { "firing" } @else { "resolved" } } {
                            @if a.status == AlertStatus::Firing { "firing" } @else { "resolved" }
                        }
                        " " (a.labels.get("alertname").map(String::as_str).unwrap_or("(no alertname)"))
                        " " span.dim title=(a.starts_at) { "since " (age(&a.starts_at, now)) }
                    }
                    p.labels { @for (k, v) in &a.labels { span.label { b { (k) } "=" (long(v)) } " " } }
                    @if !a.annotations.is_empty() {
                        dl.annotations {
                            @for (k, v) in &a.annotations {
                                dt { (k) }
                                dd {
                                    @if k == "runbook_url" && is_web_link(v) { a href=(v) rel="noopener noreferrer" target="_blank" { (long(v)) } }
                                    @else { (long(v)) }
                                }
                            }
                        }
                    }
                    @if is_web_link(&a.generator_url) {
                        p { a href=(a.generator_url) rel="noopener noreferrer" target="_blank" { "Source (generatorURL)" } }
                    }
                }
            }
        }
        section #timeline {
            h2 { "Timeline" }
            ol.timeline {
                @for e in &rec.events {
                    li {
                        time datetime=(e.at) { (e.at) } " "
                        span class={ "kind " (e.kind) } { (e.kind) } " "
                        span.wrap { (long(&e.detail)) }
                        @if let Some(by) = &e.by { " " span.dim { "by " (by) } }
                        @if let Some(ch) = &e.channel { " " span.dim { "via " (ch) } }
                    }
                }
            }
        }
    }
}

/// What the live updates compare, beyond the incident's version: each action's status.
pub fn actions_key(actions: &[ActionRun]) -> String {
    actions
        .iter()
        .map(|a| format!("{}:{}:{}", a.id, status_name(a.status), a.fresh_preview.is_some()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Only `http(s)` links become links (a `javascript:` URL in an annotation stays text).
fn is_web_link(v: &str) -> bool {
    let lower = v.trim_start().to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

fn short_digest(d: &str) -> String {
    let hex = d.strip_prefix("sha256:").unwrap_or(d);
    format!("sha256:{}…", &hex[..hex.len().min(12)])
}

fn run_ms(r: &crate::sandbox::RunResult) -> u64 {
    let t = &r.timings;
    (t.verify_us + t.compile_us + t.instantiate_us + t.run_us) / 1000
}

/// Where a run executed: a sandbox process reports its own resource use; an in-process run
/// does not.
fn run_executor(r: Option<&crate::sandbox::RunResult>, host: &str) -> String {
    match r {
        Some(r) if r.timings.process_peak_rss_kib > 0 => {
            format!(
                "{host} (sandbox process, {} MiB)",
                r.timings.process_peak_rss_kib / 1024
            )
        }
        Some(_) if host == "kube" || host == "subprocess" => host.to_string(),
        _ => host.to_string(),
    }
}

/// The confirmation page: what approving will do, before it is done.
pub fn confirm_page(rec: &IncidentRecord, s: &ActionSuggestion, who: &Identity) -> Markup {
    let body = html! {
        p.crumbs { a href="/incidents" { "Incidents" } " / " a href={ "/incidents/" (rec.id) } { (rec.id) } " / approve" }
        h1 { "Approve " code { (s.action) } "?" }
        p { "On incident " strong { (rec.id) } ", as " strong { (who.name) } ", with these parameters:" }
        (parameters(&s.parameters))
        @match &s.preview {
            Some(p) if p.ok && !p.changes.is_empty() => {
                p { "It will change:" }
                (changes(&p.changes))
                p.dim { "Each object is pinned at the version the dry run saw: if it changed since, nothing is written over it." }
            }
            Some(p) => { p.warn { "The dry run reported no change: " (long(&p.summary)) } }
            None => { p.warn { "No dry run is available: what it will change was not previewed." } }
        }
        form.confirm method="post" action={ "/incidents/" (rec.id) "/actions/" (s.id) } {
            input type="hidden" name="csrf" value=(who.csrf());
            button.approve type="submit" { "Approve and run" }
            " "
            a href={ "/incidents/" (rec.id) } { "Cancel" }
        }
    };
    layout("Approve", Some(who), body)
}

/// `/recipes`.
pub fn recipes_page(status: &Status, who: Option<&Identity>) -> Markup {
    let body = html! {
        h1 { "Recipes" }
        p.dim { (status.recipes.len()) " loaded · " (status.runs_in_flight) " running now · " (status.queue_depth) " alert batches queued" }
        table.recipes {
            thead { tr { th { "Recipe" } th { "Kind" } th { "Digest" } th { "Handles" } th { "Granted" } th { "Limits" } } }
            tbody {
                @for r in &status.recipes {
                    tr id={ "recipe-" (r.name) } {
                        td { strong { (r.name) } " " span.dim { (r.version) } @if !r.description.is_empty() { br; span.dim.wrap { (r.description) } } }
                        td { (r.kind) }
                        td { code title=(r.digest) { (short_digest(&r.digest)) } }
                        td { ul.plain { @for h in &r.handles { li { code.wrap { (h) } } } } }
                        td { (grants(r)) }
                        td.dim { (r.limits.timeout_ms) " ms · " (r.limits.memory_mib) " MiB · " (r.limits.output_bytes / 1024) " KiB out" }
                    }
                }
            }
        }
        @if !status.recipe_errors.is_empty() {
            h2 { "Did not load" }
            ul.errors { @for e in &status.recipe_errors { li { (serde_json::to_string(e).unwrap_or_default()) } } }
        }
        @if !status.dangling_actions.is_empty() {
            h2 { "Suggested, but no actor installed" }
            ul.errors { @for d in &status.dangling_actions { li { (serde_json::to_string(d).unwrap_or_default()) } } }
        }
    };
    layout("Recipes", who, body)
}

fn grants(r: &RecipeInfo) -> Markup {
    let c = &r.capabilities;
    let kube = serde_json::to_value(&c.kubernetes).unwrap_or_default();
    let kube_empty = kube.as_object().is_none_or(|m| m.is_empty()) || kube.is_null();
    html! {
        @if c.http.is_empty() && c.secrets.is_empty() && c.dirs.is_empty() && kube_empty { span.dim { "nothing" } }
        ul.plain {
            @if !c.http.is_empty() { li { "http: " (c.http.join(", ")) } }
            @if !c.secrets.is_empty() { li { "secrets: " (c.secrets.join(", ")) } }
            @if !kube_empty { li.wrap { "kubernetes: " code { (kube.to_string()) } } }
            @for d in &c.dirs { li.wrap { "dir: " (serde_json::to_string(d).unwrap_or_default()) } }
        }
    }
}

/// The sign-in form.
pub fn sign_in_page(csrf: &str, next: &str, error: Option<&str>) -> Markup {
    let body = html! {
        h1 { "Sign in" }
        p { "Paste an API token (a viewer token reads; an approver or operator token approves). It is exchanged for a session cookie and never stored in the page." }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form.sign-in method="post" action="/sign-in" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="next" value=(next);
            label { "API token " input #token type="password" name="token" autocomplete="current-password" required; }
            button type="submit" { "Sign in" }
        }
    };
    layout("Sign in", None, body)
}

/// An error page.
pub fn problem_page(title: &str, detail: &str, who: Option<&Identity>) -> Markup {
    layout(
        title,
        who,
        html! { h1 { (title) } p.error { (detail) } p { a href="/incidents" { "Back to the incidents" } } },
    )
}

/// `/api/docs`: the OpenAPI document, readable (rendered here, nothing fetched from elsewhere).
pub fn api_docs(doc: &serde_json::Value, who: Option<&Identity>) -> Markup {
    let empty = serde_json::Map::new();
    let paths = doc["paths"].as_object().unwrap_or(&empty);
    let body = html! {
        h1 { "API" }
        p { (doc["info"]["description"].as_str().unwrap_or("")) " The machine-readable document: " a href="/api/openapi.json" { "/api/openapi.json" } "." }
        @for (path, ops) in paths {
            @for (method, op) in ops.as_object().unwrap_or(&empty) {
                article.operation id=(op["operationId"].as_str().unwrap_or("")) {
                    h3 { code { (method.to_uppercase()) " " (path) } }
                    p { (op["summary"].as_str().unwrap_or("")) }
                    @if let Some(role) = op["x-role"].as_str() { p.dim { "access: " (role) } }
                    @if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
                        table.params {
                            @for p in params {
                                tr { th { code { (p["name"].as_str().unwrap_or("")) } " " span.dim { "(" (p["in"].as_str().unwrap_or("")) ")" } } td { (p["description"].as_str().unwrap_or("")) } }
                            }
                        }
                    }
                    @if let Some(content) = op["requestBody"]["content"].as_object() {
                        @for (media, m) in content {
                            p { "Body (" code { (media) } "): " (schema_names(&m["schema"])) }
                        }
                    }
                    table.params {
                        @for (code, r) in op["responses"].as_object().unwrap_or(&empty) {
                            tr {
                                th { (code) }
                                td {
                                    (r["description"].as_str().unwrap_or(""))
                                    @if let Some(content) = r["content"].as_object() {
                                        @for (media, m) in content { " · " code { (media) } " " (schema_names(&m["schema"])) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Errors" }
        p { "Every error is " code { "application/problem+json" } " (RFC 9457): " code { "type" } ", " code { "title" } ", " code { "status" } ", " code { "detail" } "." }
        table.params {
            @for p in crate::api::problem::Problem::ALL {
                tr id={ "problem-" (p.slug()) } { th { code { (p.slug()) } } td { (p.status().as_u16()) " · " (p.title()) } }
            }
        }
        h2 { "Schemas" }
        @for (name, schema) in doc["components"]["schemas"].as_object().unwrap_or(&empty) {
            details.schema id={ "schema-" (name) } {
                summary { code { (name) } " " span.dim { (schema["description"].as_str().unwrap_or("")) } }
                pre { (serde_json::to_string_pretty(schema).unwrap_or_default()) }
            }
        }
    };
    layout("API", who, body)
}

/// The schemas a `schema` object names, as links to their entries.
fn schema_names(schema: &serde_json::Value) -> Markup {
    let mut names = vec![];
    if let Some(r) = schema["$ref"].as_str() {
        names.push(r);
    }
    for r in schema["oneOf"].as_array().into_iter().flatten() {
        if let Some(r) = r["$ref"].as_str() {
            names.push(r);
        }
    }
    html! {
        @if names.is_empty() { span.dim { (schema["type"].as_str().unwrap_or("any")) } }
        @for (i, r) in names.iter().enumerate() {
            @let name = r.rsplit('/').next().unwrap_or(r);
            @if i > 0 { " or " }
            a href={ "#schema-" (name) } { (name) }
        }
    }
}
