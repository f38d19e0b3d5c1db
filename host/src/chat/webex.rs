//! Webex: the analysis as a message with an Adaptive Card (one Approve button per suggested
//! action, plus Reject), approvals from `attachmentActions` webhooks, outcomes in the thread.
//!
//! Webex API used (base URL configurable): `POST /messages` (`roomId`, `markdown`, `parentId`,
//! `attachments` with `contentType: application/vnd.microsoft.card.adaptive`), `PUT
//! /messages/{id}`, `GET /attachment/actions/{id}`, `GET /people/{id}`, `GET`/`POST /webhooks`.

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

/// `[webex]` configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebexConfig {
    /// API base URL.
    #[serde(default = "default_base")]
    pub api_base: String,
    /// The room analyses go to.
    pub room_id: String,
    /// The bot's access token.
    pub token: SecretRef,
    /// The secret Webex signs webhook calls with.
    pub webhook_secret: SecretRef,
    /// This host's public base URL; when set, the `attachmentActions` webhook is registered on
    /// start (idempotently) with `targetUrl` = this + `/webhook/webex`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Who may approve.
    pub approvers: Approvers,
}

fn default_base() -> String {
    "https://webexapis.com/v1".into()
}

/// The Webex integration: a notifier and the callback handler.
pub struct Webex {
    cfg: WebexConfig,
    token: String,
    secret: String,
    http: reqwest::Client,
    templates: Templates,
    /// Incident id → the analysis message id (threads replies, edited on reject).
    messages: Mutex<HashMap<String, String>>,
    replays: ReplayGuard,
}

#[derive(Deserialize)]
struct Envelope {
    resource: String,
    event: String,
    data: EnvelopeData,
}

#[derive(Deserialize)]
struct EnvelopeData {
    id: String,
}

/// What an (authenticated) webhook callback is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callback {
    /// Another resource or event (`resource/event`): acknowledged and ignored.
    Ignored(String),
    /// A card button was pressed: the attachment action's id, to fetch.
    AttachmentAction(String),
}

/// Read a webhook callback body. Untrusted input: any bytes give a value or a message.
pub fn parse_callback(body: &[u8]) -> Result<Callback, String> {
    let env: Envelope = serde_json::from_slice(body).map_err(|e| format!("not a Webex webhook body: {e}"))?;
    if env.resource != "attachmentActions" || env.event != "created" {
        return Ok(Callback::Ignored(format!("{}/{}", env.resource, env.event)));
    }
    Ok(Callback::AttachmentAction(env.data.id))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AttachmentAction {
    message_id: String,
    person_id: String,
    #[serde(default)]
    inputs: Value,
}

#[derive(Deserialize)]
struct Person {
    #[serde(default)]
    emails: Vec<String>,
}

impl Webex {
    /// Read the secrets and build the client.
    pub fn new(cfg: WebexConfig, templates: Templates) -> crate::Result<Arc<Self>> {
        let token = cfg.token.read("webex.token")?;
        let secret = cfg.webhook_secret.read("webex.webhook_secret")?;
        let http = super::client()?;
        Ok(Arc::new(Webex {
            cfg,
            token,
            secret,
            http,
            templates,
            messages: Mutex::default(),
            replays: ReplayGuard::default(),
        }))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.api_base.trim_end_matches('/'))
    }

    async fn get_json(&self, path: &str) -> Result<Value, String> {
        let r = send(
            || self.http.get(self.url(path)).bearer_auth(&self.token),
            4,
            &format!("GET {path}"),
        )
        .await?;
        r.json().await.map_err(|e| format!("GET {path}: {e}"))
    }

    async fn post_message(&self, body: Value) -> Result<Value, String> {
        let r = send(
            || {
                self.http
                    .post(self.url("/messages"))
                    .bearer_auth(&self.token)
                    .json(&body)
            },
            4,
            "POST /messages",
        )
        .await?;
        r.json().await.map_err(|e| format!("POST /messages: {e}"))
    }

    /// Reply in the incident's thread.
    async fn reply(&self, incident: &str, markdown: &str) -> Result<(), String> {
        let parent = self.messages.lock().get(incident).cloned();
        let mut body = json!({ "roomId": self.cfg.room_id, "markdown": markdown });
        if let Some(p) = parent {
            body["parentId"] = json!(p);
        }
        self.post_message(body).await.map(|_| ())
    }

    /// Register the `attachmentActions` webhook unless one with our target URL exists.
    pub async fn register_webhook(&self) -> Result<(), String> {
        let Some(base) = &self.cfg.public_url else {
            return Ok(());
        };
        let target = format!("{}/webhook/webex", base.trim_end_matches('/'));
        let existing = self.get_json("/webhooks").await?;
        let found = existing["items"].as_array().is_some_and(|items| {
            items
                .iter()
                .any(|w| w["targetUrl"] == target.as_str() && w["resource"] == "attachmentActions")
        });
        if found {
            return Ok(());
        }
        let body = json!({ "name": "euphrosyne approvals", "targetUrl": target, "resource": "attachmentActions", "event": "created", "secret": self.secret });
        send(
            || {
                self.http
                    .post(self.url("/webhooks"))
                    .bearer_auth(&self.token)
                    .json(&body)
            },
            4,
            "POST /webhooks",
        )
        .await
        .map(|_| ())
    }

    /// The Adaptive Card for an analysis.
    pub fn card(rec: &IncidentRecord) -> Value {
        let a = rec.analysis.as_ref();
        let facts: Vec<Value> = a
            .map(|a| a.findings.iter().take(8).map(|f| json!({"title": format!("{:?} · {}", f.finding.severity, f.finding.title), "value": super::truncate(&f.finding.detail, 200)})).collect())
            .unwrap_or_default();
        let suggestions: String = a
            .map(|a| {
                a.actions
                    .iter()
                    .map(|s| format!("{} {}{}", s.action, s.parameters, super::preview_text(s)))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
        let mut actions: Vec<Value> = a
            .map(|a| {
                a.actions
                    .iter()
                    .filter(|s| s.actor.is_some())
                    .map(|s| json!({"type": "Action.Submit", "title": format!("Approve {}", s.action), "data": {"incident": rec.id, "suggestion": s.id, "decision": "approve"}}))
                    .collect()
            })
            .unwrap_or_default();
        actions.push(
            json!({"type": "Action.Submit", "title": "Reject", "data": {"incident": rec.id, "decision": "reject"}}),
        );
        json!({
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "type": "AdaptiveCard", "version": "1.2", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "body": [
                    {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "text": format!("Incident {} — {}", rec.id, a.map(|a| format!("{:?}", a.verdict).to_lowercase()).unwrap_or_default())},
                    {"type": "TextBlock", "wrap": true, "text": a.map(|a| a.summary.clone()).unwrap_or_default()},
                    {"type": "FactSet", "facts": facts},
                    {"type": "TextBlock", "wrap": true, "text": suggestions},
                ],
                "actions": actions,
            }
        })
    }

    /// Handle an `attachmentActions` webhook call. The signature is checked before the body is
    /// parsed; replays are refused; only allow-listed people approve.
    pub async fn callback(&self, approvals: &dyn Approvals, headers: &HeaderMap, body: &[u8]) -> (StatusCode, String) {
        let sig = headers
            .get("x-spark-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let expected = super::hmac_sha1_hex(self.secret.as_bytes(), body);
        if !same(sig.as_bytes(), expected.as_bytes()) {
            return (StatusCode::UNAUTHORIZED, "bad or missing X-Spark-Signature".into());
        }
        let action_id = match parse_callback(body) {
            Err(e) => return (StatusCode::BAD_REQUEST, e),
            Ok(Callback::Ignored(what)) => return (StatusCode::OK, format!("ignored {what}")),
            Ok(Callback::AttachmentAction(id)) => id,
        };
        if !self.replays.first(&action_id) {
            let msg = format!("attachment action {action_id} was already handled; replay refused");
            return (StatusCode::CONFLICT, msg);
        }
        let (action, email) = match self.click(&action_id).await {
            Ok(click) => click,
            Err(e) => return (StatusCode::BAD_GATEWAY, e),
        };
        let incident = action.inputs["incident"].as_str().unwrap_or_default().to_string();
        if incident.is_empty() {
            return (StatusCode::BAD_REQUEST, "the card's inputs carry no incident".into());
        }
        self.messages
            .lock()
            .entry(incident.clone())
            .or_insert(action.message_id.clone());
        if !self.cfg.approvers.allows(&email) {
            let msg = format!("{email} is not on the Webex approver allow-list");
            approvals.note(&incident, "action-refused", &msg, Some(email.clone()), "webex");
            let _ = self.reply(&incident, &format!("⛔ {msg}; nothing was run.")).await;
            return (StatusCode::FORBIDDEN, msg);
        }
        match action.inputs["decision"].as_str() {
            Some("reject") => self.reject(approvals, &incident, &email, &action.message_id).await,
            Some("approve") => {
                let suggestion = action.inputs["suggestion"].as_str().unwrap_or_default().to_string();
                self.approve(approvals, incident, suggestion, email).await
            }
            _ => (StatusCode::BAD_REQUEST, "the card's inputs carry no decision".into()),
        }
    }

    /// The attachment action behind a click, and the email of the person who clicked.
    async fn click(&self, action_id: &str) -> Result<(AttachmentAction, String), String> {
        let action: AttachmentAction = self
            .get_json(&format!("/attachment/actions/{action_id}"))
            .await
            .and_then(|v| serde_json::from_value(v).map_err(|e| e.to_string()))
            .map_err(|e| format!("fetching the attachment action: {e}"))?;
        let person: Person = self
            .get_json(&format!("/people/{}", action.person_id))
            .await
            .and_then(|v| serde_json::from_value(v).map_err(|e| e.to_string()))
            .map_err(|e| format!("fetching the person: {e}"))?;
        let email = person.emails.first().cloned().unwrap_or_default();
        Ok((action, email))
    }

    /// Record the rejection and edit the card to say so.
    async fn reject(
        &self,
        approvals: &dyn Approvals,
        incident: &str,
        email: &str,
        message: &str,
    ) -> (StatusCode, String) {
        let what = "the suggested actions were rejected";
        approvals.note(incident, "rejected", what, Some(email.to_string()), "webex");
        let markdown = format!("Incident {incident}: **rejected** by {email}; no action will run.");
        let edit = json!({ "roomId": self.cfg.room_id, "markdown": markdown });
        let put = || {
            self.http
                .put(self.url(&format!("/messages/{message}")))
                .bearer_auth(&self.token)
                .json(&edit)
        };
        if let Err(e) = send(put, 4, "PUT /messages").await {
            tracing::warn!(incident_id = %incident, "could not edit the Webex card: {e}");
        }
        (StatusCode::OK, "rejected".into())
    }

    /// Approve the clicked suggestion; a refusal is replied in the thread.
    async fn approve(
        &self,
        approvals: &dyn Approvals,
        incident: String,
        suggestion: String,
        email: String,
    ) -> (StatusCode, String) {
        match super::approve_click(approvals, "webex", incident.clone(), suggestion, email) {
            Ok(answer) => answer,
            Err(e) => {
                let _ = self.reply(&incident, &format!("⚠️ {e}")).await;
                (StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            }
        }
    }
}

#[async_trait::async_trait]
impl Notifier for Webex {
    fn name(&self) -> &str {
        "webex"
    }

    async fn analysis(&self, rec: &IncidentRecord) -> Result<(), String> {
        let body = json!({ "roomId": self.cfg.room_id, "markdown": self.templates.analysis(rec, super::Markup::Markdown), "attachments": [Self::card(rec)] });
        let msg = self.post_message(body).await?;
        let id = msg["id"]
            .as_str()
            .ok_or("POST /messages: no message id in the answer")?;
        self.messages.lock().insert(rec.id.clone(), id.to_string());
        Ok(())
    }

    async fn approved(&self, rec: &IncidentRecord, run: &ActionRun) -> Result<(), String> {
        self.reply(&rec.id, &approved_line(run, super::Markup::Markdown, "✅"))
            .await
    }

    async fn outcome(&self, rec: &IncidentRecord, run: &ActionRun) -> Result<(), String> {
        self.reply(&rec.id, &self.templates.outcome(run, super::Markup::Markdown))
            .await
    }
}
