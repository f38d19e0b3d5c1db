//! Previews: an action run as a dry run — the actor does everything it would do, the host sends
//! every write with `dryRun=All` — so a person sees the diff before approving. When an analysis
//! is ready each suggested action is previewed by itself (at most [`MAX_PREVIEWS`], in parallel,
//! under the incident deadline); `POST /api/actions` with `"dry_run": true` previews on demand;
//! an action that ends in `conflict` gets a fresh one.

use std::time::Instant;

use tokio::task::JoinSet;

use crate::incident::{ActionSuggestion, Preview, action_id};
use crate::model::{ActionRequest, Incident, now_rfc3339};
use crate::recipe::Recipe;
use crate::sandbox::{RunInput, RunResult, RunStatus};

use super::Reconciler;
use super::analysis::{run_id, run_job};
use super::approval::{Approval, ApproveError, Caller, resolve};

/// Suggestions previewed per analysis; the rest have no preview and can be previewed on demand.
pub const MAX_PREVIEWS: usize = 8;

/// The approver a preview's request names.
const PREVIEWER: &str = "preview (not approved)";

impl Reconciler {
    /// The actor recipe that implements `action`, if one is installed.
    pub(super) fn actor_for(&self, action: &str) -> Option<Recipe> {
        self.catalog.recipes().iter().find(|r| r.implements(action)).cloned()
    }

    /// Every action name an installed actor implements, for messages.
    pub(super) fn available_actions(&self) -> String {
        let names: Vec<String> = self
            .catalog
            .recipes()
            .iter()
            .flat_map(|r| r.manifest.actions.clone())
            .collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }

    /// Run `actor` on `action` as a dry run against `incident`, bounded by `deadline`.
    pub(super) async fn dry_run(
        &self,
        actor: &Recipe,
        incident: Incident,
        action: &str,
        params: &serde_json::Value,
        deadline: tokio::time::Instant,
    ) -> Preview {
        let started = Instant::now();
        let input = RunInput::Action(ActionRequest {
            incident,
            action: action.to_string(),
            parameters: params.clone(),
            approved_by: PREVIEWER.into(),
            dry_run: true,
            preconditions: vec![],
        });
        let job = actor.job(run_id(), input);
        let closed = RunResult::closed(
            &job,
            RunStatus::TimedOut,
            "the preview did not finish within the incident deadline",
        );
        let result = tokio::time::timeout_at(deadline, run_job(&*self.executor, &self.metrics, job))
            .await
            .unwrap_or(closed);
        let ms = started.elapsed().as_millis() as u64;
        self.metrics.preview_finished(action, started.elapsed().as_secs_f64());
        Preview::of(&result, ms, &now_rfc3339())
    }

    /// Mark which suggestions of incident `id` have an actor, and preview those that do, in
    /// parallel, until `deadline`.
    pub(super) async fn preview_suggestions(&self, id: &str, deadline: tokio::time::Instant) -> Option<()> {
        let (model, suggestions) = {
            let mut book = self.book.lock();
            book.set_actors(id, |action| self.actor_for(action).map(|r| r.name().to_string()));
            let rec = book.get(id)?;
            let suggestions: Vec<ActionSuggestion> = rec.analysis.as_ref()?.actions.clone();
            (rec.model(), suggestions)
        };
        let mut set = JoinSet::new();
        for s in suggestions.into_iter().filter(|s| s.actor.is_some()).take(MAX_PREVIEWS) {
            let Some(actor) = self.actor_for(&s.action) else {
                continue;
            };
            let Some(this) = self.this() else { break };
            let model = model.clone();
            set.spawn(async move {
                let preview = this.dry_run(&actor, model, &s.action, &s.parameters, deadline).await;
                (s.id, preview)
            });
        }
        while let Some(done) = set.join_next().await {
            match done {
                Ok((suggestion, preview)) => {
                    tracing::info!(incident_id = %id, suggestion = %suggestion, ok = preview.ok, ms = preview.duration_ms, "action previewed");
                    self.book.lock().set_preview(id, &suggestion, preview, &now_rfc3339());
                }
                Err(e) => tracing::error!(incident_id = %id, "a preview task failed: {e}"),
            }
        }
        Some(())
    }

    /// Preview an action on demand (`POST /api/actions` with `"dry_run": true`): resolved and
    /// authorized exactly like an approval, run as a dry run, recorded in the event log; nothing
    /// is approved and nothing changes. The preview of a suggestion replaces its earlier one (an
    /// approval pins the newest).
    pub async fn preview(
        &self,
        req: Approval,
        caller: &Caller,
    ) -> Result<(String, serde_json::Value, Preview), ApproveError> {
        let (model, resolved) = {
            let book = self.book.lock();
            let rec = book
                .get(&req.incident)
                .ok_or_else(|| ApproveError::UnknownIncident(req.incident.clone()))?;
            let suggestions = rec.analysis.as_ref().map(|a| a.actions.clone()).unwrap_or_default();
            (rec.model(), resolve(&suggestions, &req, caller.role)?)
        };
        let actor = self
            .actor_for(&resolved.action)
            .ok_or_else(|| self.no_actor(&resolved.action))?;
        let deadline = tokio::time::Instant::now() + self.settings.incident_deadline;
        let preview = self
            .dry_run(&actor, model, &resolved.action, &resolved.params, deadline)
            .await;
        let who = format!("{} (token {})", req.approver, caller.token);
        let mut book = self.book.lock();
        let now = now_rfc3339();
        if resolved.suggested {
            // A suggestion's newest preview is the one its approval pins.
            let id = action_id(&req.incident, &resolved.action, &resolved.params);
            book.set_preview(&req.incident, &id, preview.clone(), &now);
        } else {
            for line in crate::incident::write_lines(&preview.writes) {
                book.note(
                    &req.incident,
                    &now,
                    "action-write",
                    &line,
                    Some(who.clone()),
                    Some(&caller.channel),
                );
            }
            let detail = format!(
                "{} {}: {}",
                resolved.action,
                resolved.params,
                preview.lines().join("; ")
            );
            book.note(
                &req.incident,
                &now,
                "action-previewed",
                &detail,
                Some(who),
                Some(&caller.channel),
            );
        }
        Ok((resolved.action, resolved.params, preview))
    }

    /// The refusal for an action no installed actor implements.
    pub(super) fn no_actor(&self, action: &str) -> ApproveError {
        ApproveError::NoActor(format!(
            "no action recipe implements `{action}` (actions available: {}); install an actor for it",
            self.available_actions()
        ))
    }
}
