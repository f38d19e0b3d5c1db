//! Notifiers: where analyses and action outcomes go. The chat integrations (Webex, Slack, plain
//! webhooks) implement [`Notifier`]; the [`LogNotifier`] is built in and always on.

use crate::incident::{ActionRun, IncidentRecord};

/// Something that tells humans about an incident.
#[async_trait::async_trait]
pub trait Notifier: Send + Sync {
    /// A name for logs and the event log (`log`, `webex`, …).
    fn name(&self) -> &str;
    /// The analysis of `incident` is complete.
    async fn analysis(&self, incident: &IncidentRecord) -> Result<(), String>;
    /// An action was approved (through any channel); its outcome follows, from the same task.
    async fn approved(&self, _incident: &IncidentRecord, _action: &ActionRun) -> Result<(), String> {
        Ok(())
    }
    /// An approved action finished (or could not run).
    async fn outcome(&self, incident: &IncidentRecord, action: &ActionRun) -> Result<(), String>;
}

/// Writes analyses and outcomes to the structured log.
pub struct LogNotifier;

#[async_trait::async_trait]
impl Notifier for LogNotifier {
    fn name(&self) -> &str {
        "log"
    }

    async fn analysis(&self, incident: &IncidentRecord) -> Result<(), String> {
        if let Some(a) = &incident.analysis {
            let actions: Vec<String> = a
                .actions
                .iter()
                .map(|s| format!("{} {} ({})", s.id, s.action, s.parameters))
                .collect();
            tracing::info!(incident_id = %incident.id, verdict = ?a.verdict, suggested = ?actions, "analysis: {}", a.summary);
        }
        Ok(())
    }

    async fn outcome(&self, incident: &IncidentRecord, action: &ActionRun) -> Result<(), String> {
        let summary = action
            .result
            .as_ref()
            .and_then(|r| r.outcome.as_ref())
            .map(|o| o.summary.clone())
            .or_else(|| action.error.clone())
            .unwrap_or_default();
        tracing::info!(incident_id = %incident.id, action_id = %action.id, action = %action.action, status = ?action.status, "action: {summary}");
        Ok(())
    }
}
