//! Friendly Rust types for the WIT records, and the conversions both ways.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::bindings::types as wit;

/// Whether an alert still fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// The condition holds.
    Firing,
    /// The condition cleared.
    Resolved,
}

/// One alert, as Alertmanager sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Firing or resolved.
    pub status: AlertStatus,
    /// The alert's labels (`alertname`, `namespace`, `pod`, …).
    pub labels: BTreeMap<String, String>,
    /// The alert's annotations (`summary`, `description`, `runbook_url`, …).
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339; `None` while firing.
    pub ends_at: Option<String>,
    /// Link to the expression that fired.
    pub generator_url: String,
    /// Alertmanager's fingerprint of the label set.
    pub fingerprint: String,
}

impl Alert {
    /// A firing alert with these labels, for tests and examples.
    pub fn firing(labels: &[(&str, &str)]) -> Self {
        Alert {
            status: AlertStatus::Firing,
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            annotations: BTreeMap::new(),
            starts_at: "2026-01-01T00:00:00Z".into(),
            ends_at: None,
            generator_url: String::new(),
            fingerprint: String::new(),
        }
    }

    /// Add an annotation (builder style).
    pub fn with_annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }

    /// The value of annotation `name`.
    pub fn annotation(&self, name: &str) -> Option<&str> {
        self.annotations.get(name).map(String::as_str)
    }
}

/// The incident a debugger is asked about: one or more alerts grouped together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// The incident id, stable across the incident's life.
    pub id: String,
    /// Where the alerts came from (`alertmanager`, `grafana`, `generic`).
    pub source: String,
    /// The alerts, firing and resolved.
    pub alerts: Vec<Alert>,
    /// Labels every alert shares.
    pub common_labels: BTreeMap<String, String>,
}

impl Incident {
    /// An incident of one firing alert with these labels, for tests and examples.
    pub fn from_labels(id: &str, labels: &[(&str, &str)]) -> Self {
        Incident::from_alerts(id, vec![Alert::firing(labels)])
    }

    /// An incident of these alerts; common labels are computed.
    pub fn from_alerts(id: &str, alerts: Vec<Alert>) -> Self {
        let mut common = alerts.first().map(|a| a.labels.clone()).unwrap_or_default();
        for a in alerts.iter().skip(1) {
            common.retain(|k, v| a.labels.get(k) == Some(v));
        }
        Incident {
            id: id.into(),
            source: "test".into(),
            alerts,
            common_labels: common,
        }
    }

    /// A label shared by all alerts, else the first firing alert's. An incident of several
    /// alerts names several objects: to examine each, use [`Incident::objects`].
    pub fn label(&self, name: &str) -> Option<&str> {
        self.common_labels
            .get(name)
            .map(String::as_str)
            .or_else(|| self.firing().next().or(self.alerts.first()).and_then(|a| a.label(name)))
    }

    /// The alerts that still fire.
    pub fn firing(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.iter().filter(|a| a.status == AlertStatus::Firing)
    }
}

/// Did the recipe find the cause?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The cause is known; the suggested actions address it.
    Identified,
    /// Nothing conclusive; findings may still help a human.
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
    /// The cause, or close to it.
    Critical,
}

/// One observation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Short title.
    pub title: String,
    /// What was seen, with the evidence.
    pub detail: String,
    /// How much it matters.
    pub severity: Severity,
}

impl Finding {
    /// A finding of the given severity.
    pub fn new(severity: Severity, title: impl Into<String>, detail: impl Into<String>) -> Self {
        Finding {
            title: title.into(),
            detail: detail.into(),
            severity,
        }
    }
    /// An informational finding.
    pub fn info(title: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(Severity::Info, title, detail)
    }
    /// A warning.
    pub fn warning(title: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(Severity::Warning, title, detail)
    }
    /// A critical finding.
    pub fn critical(title: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(Severity::Critical, title, detail)
    }
}

/// An action a debugger proposes. A human approves it before an actor runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuggestedAction {
    /// The action name an actor declares, e.g. `restart-workload`.
    pub action: String,
    /// The action's parameters (a JSON object).
    pub parameters: serde_json::Value,
    /// Why this action.
    pub reason: String,
}

/// What a debugger returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Identified or inconclusive.
    pub verdict: Verdict,
    /// One or two sentences for the on-call engineer.
    pub summary: String,
    /// The evidence.
    pub findings: Vec<Finding>,
    /// What to do about it.
    pub actions: Vec<SuggestedAction>,
}

impl Analysis {
    /// The cause is known.
    pub fn identified(summary: impl Into<String>) -> Self {
        Analysis {
            verdict: Verdict::Identified,
            summary: summary.into(),
            findings: vec![],
            actions: vec![],
        }
    }
    /// Nothing conclusive.
    pub fn inconclusive(summary: impl Into<String>) -> Self {
        Analysis {
            verdict: Verdict::Inconclusive,
            ..Self::identified(summary)
        }
    }
    /// Add a finding (builder style).
    pub fn finding(mut self, finding: Finding) -> Self {
        self.findings.push(finding);
        self
    }
    /// Suggest an action with parameters (any serializable value; normally an object).
    pub fn suggest(mut self, action: &str, parameters: impl Serialize, reason: impl Into<String>) -> Self {
        let parameters = serde_json::to_value(parameters).unwrap_or(serde_json::Value::Null);
        self.actions.push(SuggestedAction {
            action: action.into(),
            parameters,
            reason: reason.into(),
        });
        self
    }
}

/// An approved action for an actor to carry out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRequest {
    /// The incident the action belongs to.
    pub incident: Incident,
    /// The action name.
    pub action: String,
    /// The parameters (a JSON object).
    pub parameters: serde_json::Value,
    /// Who approved it.
    pub approved_by: String,
    /// A preview: the host sends every write of this run with `dryRun=All`, so nothing
    /// changes. Do everything as you would for real and report the changes in the outcome.
    #[serde(default)]
    pub dry_run: bool,
}

impl ActionRequest {
    /// A request for tests and examples.
    pub fn new(action: &str, parameters: serde_json::Value, approved_by: &str) -> Self {
        ActionRequest {
            incident: Incident::from_alerts("test", vec![]),
            action: action.into(),
            parameters,
            approved_by: approved_by.into(),
            dry_run: false,
        }
    }

    /// The same request as a preview (builder style, for tests).
    pub fn preview(mut self) -> Self {
        self.dry_run = true;
        self
    }

    /// The same request about `incident` (builder style, for tests).
    pub fn about(mut self, incident: Incident) -> Self {
        self.incident = incident;
        self
    }

    /// Is `namespace` one the incident's alerts name? Actors use it to refuse parameters that
    /// point elsewhere (the host refuses such writes too, unless the recipe has cluster scope).
    pub fn in_incident(&self, namespace: &str) -> bool {
        self.incident
            .alerts
            .iter()
            .any(|a| a.label("namespace") == Some(namespace))
            || self.incident.common_labels.get("namespace").map(String::as_str) == Some(namespace)
    }

    /// The failed outcome for parameters naming a namespace the incident's alerts do not, or
    /// `None` when `namespace` is the incident's:
    /// `if let Some(no) = request.outside_incident(&p.namespace) { return Ok(no); }`.
    pub fn outside_incident(&self, namespace: &str) -> Option<Outcome> {
        (!self.in_incident(namespace)).then(|| {
            Outcome::failure(format!(
                "namespace `{namespace}` is not one the incident's alerts name; refusing to change anything there"
            ))
        })
    }

    /// The parameters as your own type: `let p: RestartParams = request.params()?;`.
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, RecipeError> {
        serde_json::from_value(self.parameters.clone())
            .map_err(|e| RecipeError::new(format!("action `{}`: invalid parameters: {e}", self.action)))
    }
}

/// What an actor returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Did the action do what it should?
    pub success: bool,
    /// One sentence.
    pub summary: String,
    /// Evidence: what changed, ids, links.
    pub details: String,
    /// What changed (in a preview: would change), field by field. [`crate::kube::diff`] makes
    /// them from an object before and after a write.
    #[serde(default)]
    pub changes: Vec<Change>,
}

/// The object a change is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// `apps/v1`.
    pub api_version: String,
    /// `Deployment`.
    pub kind: String,
    /// `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
}

impl ObjectRef {
    /// A reference to `kind` `namespace/name` in `api_version`.
    pub fn new(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Self {
        ObjectRef {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: namespace.map(Into::into),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// One planned or applied change to one field of one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The object.
    pub object: ObjectRef,
    /// JSON path of the field (`spec.template.spec.containers[api].resources.limits.memory`).
    pub path: String,
    /// The value before, as JSON text; `None` when the field did not exist.
    pub before: Option<String>,
    /// The value after, as JSON text; `None` when the field is removed.
    pub after: Option<String>,
    /// What the field means to a person (`memory limit of container api`); may be empty.
    pub description: String,
}

impl Change {
    /// Describe the change for a person (builder style).
    pub fn described(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }
}

impl fmt::Display for Change {
    /// `memory limit of container api in Deployment shop/api: "128Mi" → "256Mi"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.description.is_empty() {
            &self.path
        } else {
            &self.description
        };
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
        write!(
            f,
            "{what} in {}: {} → {}",
            self.object,
            show(&self.before),
            show(&self.after)
        )
    }
}

impl Outcome {
    /// The action worked.
    pub fn success(summary: impl Into<String>) -> Self {
        Outcome {
            success: true,
            summary: summary.into(),
            details: String::new(),
            changes: vec![],
        }
    }

    /// Add changes (builder style).
    pub fn changes(mut self, changes: impl IntoIterator<Item = Change>) -> Self {
        self.changes.extend(changes);
        self
    }
    /// The action ran and failed.
    pub fn failure(summary: impl Into<String>) -> Self {
        Outcome {
            success: false,
            ..Self::success(summary)
        }
    }
    /// Add details (builder style).
    pub fn details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }
}

/// A recipe's own failure: it ran but could not do its job. Every SDK error converts into it,
/// so `?` works throughout a recipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipeError {
    /// What went wrong, for the on-call engineer.
    pub message: String,
}

impl RecipeError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        RecipeError {
            message: message.into(),
        }
    }
}

impl fmt::Display for RecipeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RecipeError {}

impl From<serde_json::Error> for RecipeError {
    fn from(e: serde_json::Error) -> Self {
        RecipeError::new(format!("JSON: {e}"))
    }
}

// ---- conversions to and from the generated bindings ----

fn map(pairs: Vec<(String, String)>) -> BTreeMap<String, String> {
    pairs.into_iter().collect()
}

fn pairs(map: BTreeMap<String, String>) -> Vec<(String, String)> {
    map.into_iter().collect()
}

impl From<wit::Alert> for Alert {
    fn from(a: wit::Alert) -> Self {
        Alert {
            status: match a.status {
                wit::AlertStatus::Firing => AlertStatus::Firing,
                wit::AlertStatus::Resolved => AlertStatus::Resolved,
            },
            labels: map(a.labels),
            annotations: map(a.annotations),
            starts_at: a.starts_at,
            ends_at: a.ends_at,
            generator_url: a.generator_url,
            fingerprint: a.fingerprint,
        }
    }
}

impl From<Alert> for wit::Alert {
    fn from(a: Alert) -> Self {
        wit::Alert {
            status: match a.status {
                AlertStatus::Firing => wit::AlertStatus::Firing,
                AlertStatus::Resolved => wit::AlertStatus::Resolved,
            },
            labels: pairs(a.labels),
            annotations: pairs(a.annotations),
            starts_at: a.starts_at,
            ends_at: a.ends_at,
            generator_url: a.generator_url,
            fingerprint: a.fingerprint,
        }
    }
}

impl From<wit::Incident> for Incident {
    fn from(i: wit::Incident) -> Self {
        Incident {
            id: i.id,
            source: i.source,
            alerts: i.alerts.into_iter().map(Into::into).collect(),
            common_labels: map(i.common_labels),
        }
    }
}

impl From<Incident> for wit::Incident {
    fn from(i: Incident) -> Self {
        wit::Incident {
            id: i.id,
            source: i.source,
            alerts: i.alerts.into_iter().map(Into::into).collect(),
            common_labels: pairs(i.common_labels),
        }
    }
}

impl From<Analysis> for wit::Analysis {
    fn from(a: Analysis) -> Self {
        wit::Analysis {
            verdict: match a.verdict {
                Verdict::Identified => wit::Verdict::Identified,
                Verdict::Inconclusive => wit::Verdict::Inconclusive,
            },
            summary: a.summary,
            findings: a
                .findings
                .into_iter()
                .map(|f| wit::Finding {
                    title: f.title,
                    detail: f.detail,
                    severity: match f.severity {
                        Severity::Info => wit::Severity::Info,
                        Severity::Warning => wit::Severity::Warning,
                        Severity::Critical => wit::Severity::Critical,
                    },
                })
                .collect(),
            actions: a
                .actions
                .into_iter()
                .map(|s| wit::SuggestedAction {
                    action: s.action,
                    parameters: s.parameters.to_string(),
                    reason: s.reason,
                })
                .collect(),
        }
    }
}

impl TryFrom<wit::ActionRequest> for ActionRequest {
    type Error = wit::RecipeError;
    fn try_from(r: wit::ActionRequest) -> Result<Self, Self::Error> {
        let parameters = if r.parameters.trim().is_empty() {
            serde_json::Value::Object(Default::default())
        } else {
            serde_json::from_str(&r.parameters).map_err(|e| wit::RecipeError {
                message: format!("action `{}`: parameters are not JSON: {e}", r.action),
            })?
        };
        Ok(ActionRequest {
            incident: r.incident.into(),
            action: r.action,
            parameters,
            approved_by: r.approved_by,
            dry_run: r.dry_run,
        })
    }
}

impl From<Outcome> for wit::Outcome {
    fn from(o: Outcome) -> Self {
        wit::Outcome {
            success: o.success,
            summary: o.summary,
            details: o.details,
            changes: o
                .changes
                .into_iter()
                .map(|c| wit::Change {
                    object: wit::ObjectRef {
                        api_version: c.object.api_version,
                        kind: c.object.kind,
                        namespace: c.object.namespace,
                        name: c.object.name,
                    },
                    path: c.path,
                    before: c.before,
                    after: c.after,
                    description: c.description,
                })
                .collect(),
        }
    }
}

impl From<RecipeError> for wit::RecipeError {
    fn from(e: RecipeError) -> Self {
        wit::RecipeError { message: e.message }
    }
}
