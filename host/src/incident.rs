//! Incidents: the alerts of one group, the runs they caused, the merged analysis, the actions
//! approved on it, and an append-only event log (who did what, when, through which channel).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Alert, AlertStatus, Finding, Incident, SuggestedAction, Verdict};
use crate::sandbox::{RunResult, RunStatus};

mod preview;

pub use self::preview::{Preview, write_lines};

/// Where an incident is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum IncidentState {
    /// Alerts arrived; waiting for more, for enough occurrences, or for the cooldown.
    Collecting,
    /// Debuggers are running.
    Analyzing,
    /// The analysis is complete; suggested actions can be approved.
    Analyzed,
    /// Every alert resolved.
    Resolved,
}

impl IncidentState {
    /// Every state, for metrics.
    pub const ALL: [IncidentState; 4] = [
        IncidentState::Collecting,
        IncidentState::Analyzing,
        IncidentState::Analyzed,
        IncidentState::Resolved,
    ];

    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Collecting => "collecting",
            IncidentState::Analyzing => "analyzing",
            IncidentState::Analyzed => "analyzed",
            IncidentState::Resolved => "resolved",
        }
    }
}

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// RFC 3339.
    pub at: String,
    /// `alert-received`, `alert-resolved`, `suppressed`, `run-started`, `run-finished`,
    /// `analysis-complete`, `analysis-sent`, `action-approved`, `action-refused`, `action-finished`, …
    pub kind: String,
    /// What happened.
    pub detail: String,
    /// Who (approver, token name), when a person did it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Through which channel (`api`, `webex`, `slack`, `web`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

/// A debugging run of the incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunRecord {
    /// Run id.
    pub run_id: String,
    /// Recipe.
    pub recipe: String,
    /// The digest pinned at fan-out.
    pub digest: String,
    /// `pending` until the result arrives, then the run's status.
    pub status: String,
    /// The result, once recorded (exactly once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<RunResult>,
}

/// A suggested action, merged across debuggers, with a stable id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActionSuggestion {
    /// Stable id: the same action with the same parameters on the same incident has the same id.
    pub id: String,
    /// Action name.
    pub action: String,
    /// Parameters.
    pub parameters: serde_json::Value,
    /// Reasons, one per recipe that suggested it.
    pub reasons: Vec<String>,
    /// The recipes that suggested it.
    pub recipes: Vec<String>,
    /// The actor recipe installed for it; `None`: no actor installed, nothing to approve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// What it would change, from a dry run made when the analysis was ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<Preview>,
}

/// A finding, with the recipe it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttributedFinding {
    /// Recipe.
    pub recipe: String,
    /// Finding.
    #[serde(flatten)]
    pub finding: Finding,
}

/// The merged analysis of all debuggers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MergedAnalysis {
    /// Identified when any debugger identified the cause.
    pub verdict: Verdict,
    /// Summaries of the debuggers that identified something (else of all).
    pub summary: String,
    /// All findings.
    pub findings: Vec<AttributedFinding>,
    /// Suggested actions, deduplicated.
    pub actions: Vec<ActionSuggestion>,
    /// Runs per status.
    pub runs: BTreeMap<String, usize>,
}

/// The stable id of `action` with `parameters` on `incident`.
pub fn action_id(incident: &str, action: &str, parameters: &serde_json::Value) -> String {
    // serde_json's maps are sorted, so `to_string` is canonical.
    let digest = crate::digest::Digest::of(format!("{incident}\u{0}{action}\u{0}{parameters}").as_bytes());
    format!("act-{}", &digest.hex()[..12])
}

/// Merge the results of an incident's debugging runs.
pub fn merge(incident_id: &str, runs: &[RunRecord]) -> MergedAnalysis {
    let mut findings = Vec::new();
    let mut actions: Vec<ActionSuggestion> = Vec::new();
    let mut identified = Vec::new();
    let mut inconclusive = Vec::new();
    let mut counts = BTreeMap::new();
    for run in runs {
        *counts.entry(run.status.clone()).or_insert(0) += 1;
        let Some(result) = &run.result else { continue };
        let Some(analysis) = &result.analysis else {
            if result.status != RunStatus::Ok {
                findings.push(AttributedFinding {
                    recipe: run.recipe.clone(),
                    finding: Finding {
                        title: format!("{} {}", run.recipe, result.status),
                        detail: result.message.clone(),
                        severity: crate::model::Severity::Info,
                    },
                });
            }
            continue;
        };
        match analysis.verdict {
            Verdict::Identified => identified.push(format!("{}: {}", run.recipe, analysis.summary)),
            Verdict::Inconclusive => inconclusive.push(format!("{}: {}", run.recipe, analysis.summary)),
        }
        for f in &analysis.findings {
            findings.push(AttributedFinding {
                recipe: run.recipe.clone(),
                finding: f.clone(),
            });
        }
        for SuggestedAction {
            action,
            parameters,
            reason,
        } in &analysis.actions
        {
            let id = action_id(incident_id, action, parameters);
            match actions.iter_mut().find(|a| a.id == id) {
                Some(a) => {
                    a.reasons.push(reason.clone());
                    a.recipes.push(run.recipe.clone());
                }
                None => actions.push(ActionSuggestion {
                    id,
                    action: action.clone(),
                    parameters: parameters.clone(),
                    reasons: vec![reason.clone()],
                    recipes: vec![run.recipe.clone()],
                    actor: None,
                    preview: None,
                }),
            }
        }
    }
    let verdict = if identified.is_empty() {
        Verdict::Inconclusive
    } else {
        Verdict::Identified
    };
    let summary = if !identified.is_empty() {
        identified.join("\n")
    } else if !inconclusive.is_empty() {
        inconclusive.join("\n")
    } else if runs.is_empty() {
        "no debugging recipe handles these alerts".into()
    } else {
        "no debugger produced an analysis; see the runs".into()
    };
    MergedAnalysis {
        verdict,
        summary,
        findings,
        actions,
        runs: counts,
    }
}

/// Status of an approved action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ActionStatus {
    /// Approved, waiting for a run slot.
    Pending,
    /// The actor runs.
    Running,
    /// The actor reported success.
    Succeeded,
    /// The actor failed, or could not run (no actor, sandbox status not ok).
    Failed,
    /// An object changed between the preview and the approval: nothing was written over it;
    /// `fresh_preview` shows what approving again would do now.
    Conflict,
}

/// An approved action and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActionRun {
    /// Id (the suggestion's stable id, so approving twice finds the same run).
    pub id: String,
    /// Incident.
    pub incident: String,
    /// Action name.
    pub action: String,
    /// Parameters.
    pub parameters: serde_json::Value,
    /// Was it suggested by a debugger?
    pub suggested: bool,
    /// Who approved (as they said), and with which token.
    pub approved_by: String,
    /// Token name.
    pub token: String,
    /// Channel.
    pub channel: String,
    /// Status.
    pub status: ActionStatus,
    /// The actor recipe that runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<String>,
    /// Why it failed, when it did not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The actor's run id, once it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The actor's run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<RunResult>,
    /// The preview that was approved (its `resourceVersion`s pin the run's writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<Preview>,
    /// After a conflict: a new preview against the objects as they are now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fresh_preview: Option<Preview>,
    /// RFC 3339.
    pub created_at: String,
}

/// An incident and everything that happened to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IncidentRecord {
    /// Id.
    pub id: String,
    /// The grouping key (Alertmanager's groupKey, or built from `group_by` labels).
    pub group_key: String,
    /// Source of the first alerts.
    pub source: String,
    /// State.
    pub state: IncidentState,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// The alerts, latest notification per fingerprint.
    pub alerts: Vec<Alert>,
    /// Firing notifications received (after dedup).
    pub occurrences: u32,
    /// Debugging runs, all rounds.
    pub runs: Vec<RunRecord>,
    /// The latest merged analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<MergedAnalysis>,
    /// Approved actions' ids.
    pub actions: Vec<String>,
    /// The event log.
    pub events: Vec<Event>,
    /// Bumped on every change (each change logs an event); what the Redis write-behind compares.
    #[serde(default)]
    pub version: u64,
}

impl IncidentRecord {
    /// A new incident.
    pub fn new(id: String, group_key: String, source: String, now: &str) -> Self {
        IncidentRecord {
            id,
            group_key,
            source,
            state: IncidentState::Collecting,
            created_at: now.into(),
            updated_at: now.into(),
            alerts: vec![],
            occurrences: 0,
            runs: vec![],
            analysis: None,
            actions: vec![],
            events: vec![],
            version: 0,
        }
    }

    /// Append an event.
    pub fn log(&mut self, now: &str, kind: &str, detail: impl Into<String>, by: Option<String>, channel: Option<&str>) {
        self.updated_at = now.into();
        self.version += 1;
        self.events.push(Event {
            at: now.into(),
            kind: kind.into(),
            detail: detail.into(),
            by,
            channel: channel.map(Into::into),
        });
    }

    /// Record an alert notification; true when it is new firing news (counts as an occurrence).
    pub fn upsert_alert(&mut self, alert: Alert) -> bool {
        let firing = alert.status == AlertStatus::Firing;
        match self.alerts.iter_mut().find(|a| a.fingerprint == alert.fingerprint) {
            Some(existing) => *existing = alert,
            None => self.alerts.push(alert),
        }
        if firing {
            self.occurrences += 1;
        }
        firing
    }

    /// Are all alerts resolved?
    pub fn all_resolved(&self) -> bool {
        !self.alerts.is_empty() && self.alerts.iter().all(|a| a.status == AlertStatus::Resolved)
    }

    /// The incident as recipes see it.
    pub fn model(&self) -> Incident {
        let common = crate::alert::common_labels(&self.alerts);
        Incident {
            id: self.id.clone(),
            source: self.source.clone(),
            alerts: self.alerts.clone(),
            common_labels: common,
        }
    }

    /// Does any alert carry `label=value`?
    pub fn has_label(&self, name: &str, value: &str) -> bool {
        self.alerts
            .iter()
            .any(|a| a.labels.get(name).map(String::as_str) == Some(value))
    }
}
