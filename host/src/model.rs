//! The data that crosses the recipe boundary, as the host stores and serves it (JSON via serde).
//! The sandbox converts these to and from the WIT types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// The condition holds.
    Firing,
    /// The condition cleared.
    Resolved,
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Firing or resolved.
    pub status: AlertStatus,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339, absent while firing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    /// Link to the source expression.
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    /// Alertmanager's fingerprint of the label set.
    #[serde(default)]
    pub fingerprint: String,
}

/// An incident as a recipe sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Incident {
    /// Stable id.
    pub id: String,
    /// `alertmanager`, `grafana`, `generic`.
    pub source: String,
    /// The alerts.
    pub alerts: Vec<Alert>,
    /// Labels all alerts share.
    pub common_labels: BTreeMap<String, String>,
}

impl Incident {
    /// The namespaces the incident is about: every `namespace` label of its alerts, sorted,
    /// without duplicates. A recipe with namespace scope reaches only these.
    pub fn namespaces(&self) -> Vec<String> {
        let mut ns: Vec<String> = self
            .alerts
            .iter()
            .filter_map(|a| a.labels.get("namespace"))
            .chain(self.common_labels.get("namespace"))
            .filter(|n| !n.is_empty())
            .cloned()
            .collect();
        ns.sort();
        ns.dedup();
        ns
    }
}

/// Did the recipe find the cause?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Cause known.
    Identified,
    /// Nothing conclusive.
    Inconclusive,
}

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Context.
    Info,
    /// Probably related.
    Warning,
    /// The cause.
    Critical,
}

/// One observation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Title.
    pub title: String,
    /// Evidence.
    pub detail: String,
    /// Severity.
    pub severity: Severity,
}

/// An action a debugger proposes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuggestedAction {
    /// Action name.
    pub action: String,
    /// Parameters (JSON object).
    pub parameters: serde_json::Value,
    /// Why.
    pub reason: String,
}

/// A debugger's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Verdict.
    pub verdict: Verdict,
    /// Summary.
    pub summary: String,
    /// Findings.
    pub findings: Vec<Finding>,
    /// Suggested actions.
    pub actions: Vec<SuggestedAction>,
}

/// An approved action for an actor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionRequest {
    /// The incident.
    pub incident: Incident,
    /// Action name.
    pub action: String,
    /// Parameters (JSON object).
    pub parameters: serde_json::Value,
    /// Who approved it.
    pub approved_by: String,
}

/// An actor's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Did it work?
    pub success: bool,
    /// One sentence.
    pub summary: String,
    /// Evidence.
    pub details: String,
}

/// Now, as RFC 3339 UTC with seconds (`2026-11-24T08:41:41Z`).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
