//! Actions: an approval becomes one action run — kept before it starts, claimed once across
//! replicas, run by the actor recipe that implements it, finished once — and chat hears of it in
//! order: "approved" before the outcome, from one task.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::incident::{ActionRun, ActionStatus, IncidentRecord, Preview, action_id};
use crate::model::{ActionRequest, now_rfc3339};
use crate::recipe::Recipe;
use crate::sandbox::{RunInput, RunJob, RunResult, RunStatus};

use super::Reconciler;
use super::analysis::{run_id, run_job};
use super::approval::{Approval, Approvals, ApproveError, Caller, Resolved, resolve};
use super::book::IncidentBook;

impl Approvals for Reconciler {
    fn approve(&self, req: Approval, caller: &Caller) -> Result<(ActionRun, bool), ApproveError> {
        let now = now_rfc3339();
        let who = format!("{} (token {})", req.approver, caller.token);
        let channel = Some(caller.channel.as_str());
        let mut book = self.book.lock();
        let rec = book
            .get_mut(&req.incident)
            .ok_or_else(|| ApproveError::UnknownIncident(req.incident.clone()))?;
        let suggestions = rec.analysis.as_ref().map(|a| a.actions.clone()).unwrap_or_default();
        let resolved = resolve(&suggestions, &req, caller.role).inspect_err(|e| {
            if let ApproveError::NotSuggested(msg) = e {
                rec.log(&now, "action-refused", msg.clone(), Some(who.clone()), channel);
            }
        })?;
        let base = action_id(&req.incident, &resolved.action, &resolved.params);
        let Some(actor) = self.actor_for(&resolved.action) else {
            let e = self.no_actor(&resolved.action);
            book.note(
                &req.incident,
                &now,
                "action-refused",
                &e.to_string(),
                Some(who),
                channel,
            );
            return Err(e);
        };
        // An action runs once; one that ended in `conflict` wrote nothing, so approving it again
        // (against its fresh preview) is a new attempt: `ID-2`, `ID-3`, ….
        let mut id = base.clone();
        for attempt in 2.. {
            match book.action(&id).cloned() {
                Some(existing) if existing.status != ActionStatus::Conflict => {
                    let detail = format!("{id} approved again; it runs once");
                    book.note(&req.incident, &now, "action-duplicate", &detail, Some(who), channel);
                    return Ok((existing, false));
                }
                Some(_) => id = format!("{base}-{attempt}"),
                None => break,
            }
        }
        let target = format!("{} {}", resolved.action, resolved.params);
        if let Err(msg) = self.breaker.lock().admit(&target, Instant::now()) {
            book.note(&req.incident, &now, "action-refused", &msg, Some(who), channel);
            return Err(ApproveError::Breaker(msg));
        }
        let operator = if resolved.suggested {
            ""
        } else {
            " (not suggested; operator)"
        };
        let detail = format!("{id} {} {}{operator}", resolved.action, resolved.params);
        book.note(&req.incident, &now, "action-approved", &detail, Some(who), channel);
        let (run, job) = self.plan(&book, &req, caller, resolved, id, &now, &actor);
        book.add_action(run.clone());
        drop(book);
        self.launch(run.clone(), job);
        Ok((run, true))
    }

    fn note(&self, incident: &str, kind: &str, detail: &str, by: Option<String>, channel: &str) {
        Reconciler::note(self, incident, kind, detail, by, channel)
    }
}

impl Reconciler {
    /// Approve an action (see [`Approvals::approve`]).
    pub fn approve(&self, req: Approval, caller: &Caller) -> Result<(ActionRun, bool), ApproveError> {
        Approvals::approve(self, req, caller)
    }

    /// The action run for an approval and the job of `actor`, which implements it. An approved
    /// suggestion that was previewed carries its preview: the run's writes are pinned to the
    /// `resourceVersion`s it saw.
    #[allow(clippy::too_many_arguments)]
    fn plan(
        &self,
        book: &IncidentBook,
        req: &Approval,
        caller: &Caller,
        resolved: Resolved,
        id: String,
        now: &str,
        actor: &Recipe,
    ) -> (ActionRun, Option<RunJob>) {
        let rec = book.get(&req.incident);
        let preview = rec
            .and_then(|r| r.analysis.as_ref())
            .and_then(|a| {
                a.actions
                    .iter()
                    .find(|s| s.action == resolved.action && s.parameters == resolved.params)
            })
            .and_then(|s| s.preview.clone());
        let run = ActionRun {
            id,
            incident: req.incident.clone(),
            action: resolved.action.clone(),
            parameters: resolved.params.clone(),
            suggested: resolved.suggested,
            approved_by: req.approver.clone(),
            token: caller.token.clone(),
            channel: caller.channel.clone(),
            status: ActionStatus::Pending,
            recipe: Some(actor.name().to_string()),
            error: None,
            run_id: None,
            result: None,
            preview: preview.clone(),
            fresh_preview: None,
            created_at: now.to_string(),
        };
        let job = rec.map(|rec| {
            let input = RunInput::Action(ActionRequest {
                incident: rec.model(),
                action: resolved.action,
                parameters: resolved.params,
                approved_by: req.approver.clone(),
                dry_run: false,
                preconditions: preview.map(|p| p.preconditions()).unwrap_or_default(),
            });
            actor.job(run_id(), input)
        });
        (run, job)
    }

    /// Start an approved action's task (when it has a job) and the task that tells chat about
    /// it: "approved" first, then the outcome (after a conflict, with a fresh preview).
    fn launch(&self, run: ActionRun, job: Option<RunJob>) {
        let Some(this) = self.this() else { return };
        let (done_tx, done_rx) = oneshot::channel();
        tokio::spawn(this.clone().notify_approval(run.clone(), done_rx));
        match job {
            Some(job) => self.spawn(async move {
                let done = this.run_action(&run.id, job).await;
                let _ = done_tx.send(done);
            }),
            None => {
                let done = self.book.lock().get(&run.incident).cloned().map(|rec| (rec, run));
                let _ = done_tx.send(done);
            }
        }
    }

    /// Start action `id` as `job` once it is on record and claimed; record its result once.
    async fn run_action(&self, id: &str, job: RunJob) -> Option<(IncidentRecord, ActionRun)> {
        let started = self.book.lock().start_action(id, &job.run_id, &now_rfc3339());
        if started.is_some() && !self.journal.persist_point(Duration::from_secs(5)).await {
            tracing::warn!(action_id = %id, "the store did not take the action's run within 5 s; starting it anyway");
        }
        // Once across replicas, fenced by the leader lease; after it is on record.
        if let Some(fence) = self.fence.get() {
            let refused = match fence.claim(id).await {
                Ok(true) => None,
                Ok(false) => Some("it was claimed before (by this or another replica); it runs once".to_string()),
                Err(e) => Some(format!("it could not be claimed: {e}")),
            };
            if let Some(why) = refused {
                tracing::warn!(action_id = %id, "action not started: {why}");
                let refused = RunResult::closed(&job, RunStatus::Denied, format!("not started: {why}"));
                return self.finish_action(id, refused);
            }
        }
        let result = run_job(&*self.executor, &self.metrics, job).await;
        self.conclude_action(id, result).await
    }

    /// Record an action's result, once. After a conflict nothing was written over the other
    /// change: the action is previewed again first, so that it ends `conflict` together with
    /// its fresh preview (what approving again would do now) — nobody sees one without the
    /// other — and the suggestion shows (and a new approval pins) the objects as they are now.
    pub(super) async fn conclude_action(&self, id: &str, result: RunResult) -> Option<(IncidentRecord, ActionRun)> {
        let fresh = match result.writes.iter().any(|w| w.conflict) {
            true => self.fresh_preview(id).await,
            false => None,
        };
        let Some((suggestion, fresh)) = fresh else {
            return self.finish_action(id, result);
        };
        let now = now_rfc3339();
        let done = {
            let mut book = self.book.lock();
            let (rec, run) = book.finish_action(id, result, &now)?;
            book.set_preview(&run.incident, &suggestion, fresh.clone(), &now);
            let run = book.set_fresh_preview(id, fresh).unwrap_or(run);
            (book.get(&run.incident).cloned().unwrap_or(rec), run)
        };
        self.metrics.action_finished(&done.1.action, "conflict");
        Some(done)
    }

    /// A dry run of action `id` as the objects are now, and the suggestion it shows on.
    /// `None` when the action is unknown or finished, or no actor implements it any more.
    async fn fresh_preview(&self, id: &str) -> Option<(String, Preview)> {
        let (rec, run) = {
            let book = self.book.lock();
            let run = book.action(id).filter(|a| a.result.is_none())?.clone();
            (book.get(&run.incident)?.clone(), run)
        };
        let actor = self.actor_for(&run.action)?;
        let deadline = tokio::time::Instant::now() + self.settings.incident_deadline;
        let fresh = self
            .dry_run(&actor, rec.model(), &run.action, &run.parameters, deadline)
            .await;
        Some((action_id(&run.incident, &run.action, &run.parameters), fresh))
    }

    /// Record an action's result (once, counted in the metrics): its incident and the action.
    pub(super) fn finish_action(&self, id: &str, result: RunResult) -> Option<(IncidentRecord, ActionRun)> {
        let done = self.book.lock().finish_action(id, result, &now_rfc3339())?;
        let status = match done.1.status {
            ActionStatus::Succeeded => "succeeded",
            ActionStatus::Conflict => "conflict",
            _ => "failed",
        };
        self.metrics.action_finished(&done.1.action, status);
        Some(done)
    }

    /// Tell every notifier that `run` was approved, then (when it is done) its outcome.
    async fn notify_approval(
        self: Arc<Self>,
        run: ActionRun,
        done: oneshot::Receiver<Option<(IncidentRecord, ActionRun)>>,
    ) {
        let rec = self.book.lock().get(&run.incident).cloned();
        if let Some(rec) = rec {
            for n in &self.notifiers {
                if let Err(e) = n.approved(&rec, &run).await {
                    self.note(&rec.id, "notify-failed", &format!("{}: {e}", n.name()), None, n.name());
                }
            }
        }
        if let Ok(Some((rec, run))) = done.await {
            self.notify_outcome(&rec, &run).await;
        }
    }

    /// Tell every notifier how an action ended.
    pub(super) async fn notify_outcome(&self, incident: &IncidentRecord, run: &ActionRun) {
        for n in &self.notifiers {
            let (kind, detail) = match n.outcome(incident, run).await {
                Ok(()) => ("outcome-sent", format!("{} sent to {}", run.id, n.name())),
                Err(e) => ("notify-failed", format!("{}: {e}", n.name())),
            };
            self.note(&incident.id, kind, &detail, None, n.name());
        }
    }
}
