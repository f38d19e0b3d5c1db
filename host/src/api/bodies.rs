//! The API's bodies on the wire: what the handlers answer and the requests they read that have
//! no type elsewhere. The OpenAPI document's schemas are derived from them.

use serde::{Deserialize, Serialize};

use crate::incident::{ActionRun, ActionStatus, IncidentRecord};

/// `GET /api/incidents`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IncidentList {
    /// Newest first; without event logs and run results (`GET /api/incidents/{id}` has them).
    pub incidents: Vec<IncidentRecord>,
}

/// `GET /api/incidents/{id}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IncidentDetail {
    /// The incident: alerts, runs with results, analysis, event log.
    pub incident: IncidentRecord,
    /// Its approved actions.
    pub actions: Vec<ActionRun>,
}

/// `POST /api/actions`: one approved action.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Approved {
    /// The action's id (`GET /api/actions/{id}`).
    pub id: String,
    /// The action name.
    pub action: String,
    /// Where it is.
    pub status: ActionStatus,
    /// `false`: approved before; nothing runs again.
    pub new: bool,
    /// Why it cannot run, when it cannot.
    pub error: Option<String>,
}

/// `POST /api/actions` with several actions (the original reconciler's body).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApprovedMany {
    /// One per action asked for.
    pub actions: Vec<Approved>,
}

/// `POST /api/actions` with `"dry_run": true`: what approving would change.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Previewed {
    /// The action name.
    pub action: String,
    /// Its parameters.
    pub parameters: serde_json::Value,
    /// Always `true`.
    pub dry_run: bool,
    /// The actor ran and reported success: the changes are what approving would do.
    pub ok: bool,
    /// The actor's summary, or why the preview failed.
    pub summary: String,
    /// Field by field.
    pub changes: Vec<crate::model::Change>,
    /// One line per change.
    pub diff: Vec<String>,
    /// The dry-run writes the host made, each object's `resourceVersion` pinned.
    pub writes: Vec<crate::model::Write>,
    /// The preview's run id.
    pub run_id: String,
    /// Milliseconds from start to result.
    pub duration_ms: u64,
}

/// A chat callback handled.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ChatAnswer {
    /// What was done.
    pub result: String,
}

/// The original reconciler's body: `{"uuid": INCIDENT, "actions": [{"name": ACTION, "data": {...}}]}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegacyApproval {
    /// The incident.
    pub uuid: String,
    /// The actions to approve (at least one).
    #[schema(min_items = 1)]
    pub actions: Vec<LegacyAction>,
}

/// One action of a [`LegacyApproval`].
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegacyAction {
    /// The action name.
    #[schema(pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", max_length = 63)]
    pub name: String,
    /// Its parameters (a JSON object).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
}
