//! A suggested action's preview: what a dry run of its actor would change, and the
//! `resourceVersion`s an approval of it pins.

use serde::{Deserialize, Serialize};

use crate::model::{Change, Precondition, Write};
use crate::sandbox::{RunResult, RunStatus};

/// A dry run of an action: what it would change, and the `resourceVersion` of every object it
/// would write, which an approval of it pins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Preview {
    /// The preview's run id.
    pub run_id: String,
    /// The actor ran and reported success: the changes are what approving would do.
    pub ok: bool,
    /// The actor's summary, or why the preview failed.
    pub summary: String,
    /// Field by field, as the actor reported them (or, when it reported none, as the host saw
    /// its dry-run writes).
    #[serde(default)]
    pub changes: Vec<Change>,
    /// The writes the host made for it, all dry runs, with each object's `resourceVersion`.
    #[serde(default)]
    pub writes: Vec<Write>,
    /// Milliseconds from start to result.
    pub duration_ms: u64,
    /// RFC 3339.
    pub created_at: String,
}

impl Preview {
    /// A preview from a dry run's result.
    pub fn of(result: &RunResult, duration_ms: u64, now: &str) -> Preview {
        let outcome = result.outcome.as_ref();
        let ok = result.status == RunStatus::Ok && outcome.is_some_and(|o| o.success);
        let summary = match outcome {
            Some(o) => o.summary.clone(),
            None => format!("{}: {}", result.status, result.message),
        };
        let mut changes = outcome.map(|o| o.changes.clone()).unwrap_or_default();
        if changes.is_empty() {
            changes = result.writes.iter().flat_map(|w| w.changes.clone()).collect();
        }
        Preview {
            run_id: result.run_id.clone(),
            ok,
            summary,
            changes,
            writes: result.writes.clone(),
            duration_ms,
            created_at: now.to_string(),
        }
    }

    /// The preconditions an approval of this preview carries: each object it would write, at
    /// the `resourceVersion` the preview saw (only an ok preview pins anything).
    pub fn preconditions(&self) -> Vec<Precondition> {
        if !self.ok {
            return vec![];
        }
        let mut out: Vec<Precondition> = Vec::new();
        for w in &self.writes {
            if let Some(rv) = &w.resource_version
                && !out.iter().any(|p| p.object == w.object)
            {
                out.push(Precondition {
                    object: w.object.clone(),
                    resource_version: rv.clone(),
                    fingerprint: w.fingerprint.clone(),
                });
            }
        }
        out
    }

    /// One line per change (`memory limit of container api in Deployment shop/api: 128Mi →
    /// 256Mi`), or the summary when there are none.
    pub fn lines(&self) -> Vec<String> {
        if self.changes.is_empty() {
            return vec![self.summary.clone()];
        }
        self.changes.iter().map(ToString::to_string).collect()
    }
}

/// One event-log line per write the host made for a run: verb, object, dry run or not, and the
/// diff it computed (`patch Deployment shop/api (dry run): spec.replicas in Deployment shop/api: 1 → 3`).
pub fn write_lines(writes: &[Write]) -> Vec<String> {
    writes
        .iter()
        .map(|w| {
            let mode = if w.dry_run { " (dry run)" } else { "" };
            let what = match (&w.error, w.changes.is_empty()) {
                (Some(e), _) => format!("refused: {e}"),
                (None, true) => "no field changed".to_string(),
                (None, false) => w.changes.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
            };
            format!("{} {}{mode}: {what}", w.verb, w.object)
        })
        .collect()
}
