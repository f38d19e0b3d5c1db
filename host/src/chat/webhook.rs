//! Plain webhook notifier: a JSON POST of each analysis and outcome, optionally signed
//! (`X-Euphrosyne-Signature: sha256=<hex HMAC-SHA256 of the body>`).
//!
//! Two formats: `native` (`{"event": "analysis"|"outcome", "incident": {…}, "action": {…}}`) and
//! `euphrosyne-bot`, what the original Euphrosyne bot's `/api/analysis` takes:
//! `{"uuid": INCIDENT, "actions": [names], "analysis": TEXT}` (analyses only).

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Templates, send};
use crate::access::SecretRef;
use crate::incident::{ActionRun, IncidentRecord};
use crate::notify::Notifier;

/// Body format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Our JSON.
    #[default]
    Native,
    /// The original bot's `/api/analysis` body.
    EuphrosyneBot,
}

/// One `[[notify_webhooks]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST.
    pub url: String,
    /// Body format.
    #[serde(default)]
    pub format: Format,
    /// HMAC key for the signature header.
    #[serde(default)]
    pub secret: Option<SecretRef>,
}

/// A plain webhook notifier.
pub struct WebhookNotifier {
    cfg: WebhookConfig,
    secret: Option<String>,
    http: reqwest::Client,
    templates: Templates,
    name: String,
}

impl WebhookNotifier {
    /// Read the secret and build the client.
    pub fn new(cfg: WebhookConfig, templates: Templates) -> crate::Result<Self> {
        let secret = cfg
            .secret
            .as_ref()
            .map(|s| s.read("notify_webhooks.secret"))
            .transpose()?;
        let http = super::client()?;
        let name = format!("webhook {}", cfg.url);
        Ok(WebhookNotifier {
            cfg,
            secret,
            http,
            templates,
            name,
        })
    }

    async fn post(&self, body: Value) -> Result<(), String> {
        let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
        let sig = self
            .secret
            .as_ref()
            .map(|s| format!("sha256={}", super::hmac_sha256_hex(s.as_bytes(), &bytes)));
        send(
            || {
                let r = self
                    .http
                    .post(&self.cfg.url)
                    .header("content-type", "application/json")
                    .body(bytes.clone());
                match &sig {
                    Some(s) => r.header("x-euphrosyne-signature", s),
                    None => r,
                }
            },
            4,
            &self.name,
        )
        .await
        .map(|_| ())
    }
}

#[async_trait::async_trait]
impl Notifier for WebhookNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn analysis(&self, rec: &IncidentRecord) -> Result<(), String> {
        let body = match self.cfg.format {
            Format::Native => {
                json!({"event": "analysis", "text": self.templates.analysis(rec, super::Markup::Plain), "incident": rec})
            }
            Format::EuphrosyneBot => json!({
                "uuid": rec.id,
                "actions": rec.analysis.iter().flat_map(|a| a.actions.iter().map(|s| s.action.clone())).collect::<Vec<_>>(),
                "analysis": self.templates.analysis(rec, super::Markup::Plain),
            }),
        };
        self.post(body).await
    }

    async fn outcome(&self, rec: &IncidentRecord, run: &ActionRun) -> Result<(), String> {
        if self.cfg.format == Format::EuphrosyneBot {
            return Ok(());
        }
        self.post(json!({"event": "outcome", "text": self.templates.outcome(run, super::Markup::Plain), "incident": rec.id, "action": run}))
            .await
    }
}
