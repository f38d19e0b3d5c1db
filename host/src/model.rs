//! The data that crosses the recipe boundary, as the host stores and serves it (JSON via serde).
//! The sandbox converts these to and from the WIT types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// The condition holds.
    Firing,
    /// The condition cleared.
    Resolved,
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Cause known.
    Identified,
    /// Nothing conclusive.
    Inconclusive,
}

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Finding {
    /// Title.
    pub title: String,
    /// Evidence.
    pub detail: String,
    /// Severity.
    pub severity: Severity,
}

/// An action a debugger proposes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SuggestedAction {
    /// Action name.
    pub action: String,
    /// Parameters (JSON object).
    pub parameters: serde_json::Value,
    /// Why.
    pub reason: String,
}

/// A debugger's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// A preview: every Kubernetes write of the run is sent with `dryRun=All`.
    #[serde(default)]
    pub dry_run: bool,
    /// The `resourceVersion` each object had when its preview was made; a write to one of
    /// these objects is sent with it as precondition, so a changed object ends `conflict`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preconditions: Vec<Precondition>,
}

/// The object a change or a write is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// `apps/v1`.
    pub api_version: String,
    /// `Deployment`.
    pub kind: String,
    /// None for cluster-scoped kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// An object's `resourceVersion` when a preview looked at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Precondition {
    /// The object.
    pub object: ObjectRef,
    /// Its `metadata.resourceVersion` then.
    pub resource_version: String,
    /// The sha256 of what a person or a controller asks of it then — the object without
    /// `status` and the fields the API server keeps for itself. A newer `resourceVersion` with
    /// the same fingerprint is a status update (controllers write those all the time): the
    /// write goes ahead, pinned to the newer version. Absent: any change is a conflict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// One planned or applied change to one field of one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Change {
    /// The object.
    pub object: ObjectRef,
    /// JSON path of the field (`spec.replicas`, `spec.template.spec.containers[api].image`).
    pub path: String,
    /// The value before, as JSON text; `None` when the field did not exist.
    #[serde(default)]
    pub before: Option<String>,
    /// The value after, as JSON text; `None` when it is removed.
    #[serde(default)]
    pub after: Option<String>,
    /// What the field means to a person (`memory limit of container api`); may be empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

impl std::fmt::Display for Change {
    /// `memory limit of container api in Deployment shop/api: 128Mi → 256Mi`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.description.is_empty() {
            &self.path
        } else {
            &self.description
        };
        let show = |v: &Option<String>| match v.as_deref() {
            None => "(none)".to_string(),
            Some(t) => match serde_json::from_str::<serde_json::Value>(t) {
                Ok(serde_json::Value::String(s)) => s,
                _ => t.to_string(),
            },
        };
        write!(
            f,
            "{what} in {}: {} → {}",
            self.object,
            show(&self.before),
            show(&self.after)
        )
    }
}

/// An actor's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Outcome {
    /// Did it work?
    pub success: bool,
    /// One sentence.
    pub summary: String,
    /// Evidence.
    pub details: String,
    /// What changed, or in a dry run would change, as the actor reports it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
}

/// Now, as RFC 3339 UTC with seconds (`2026-11-24T08:41:41Z`).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// One Kubernetes write the host made for a recipe, as the host saw it: recorded for every
/// write, refused or not, with the diff the host computed itself from the object before and
/// the API server's answer — what the event log shows and what previews are pinned by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Write {
    /// `patch`, `create`, `delete`, `evict`, `scale`.
    pub verb: String,
    /// The object written.
    pub object: ObjectRef,
    /// Sent with `dryRun=All`: nothing was persisted.
    pub dry_run: bool,
    /// The object's `resourceVersion` before the write (what an approval's precondition pins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// The object's fingerprint before the write (see [`Precondition::fingerprint`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The fields the write changed, or in a dry run would change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// Why the write failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// It failed because the object changed since the preview (a precondition did not hold).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub conflict: bool,
}
