//! Analysis: every debugger whose matchers select a firing alert, run in parallel under the
//! incident deadline; each result recorded once; the suggested actions previewed under the same
//! deadline; the merged analysis, with the diffs, sent to every notifier.

use std::time::{Duration, Instant};

use crate::incident::{IncidentState, RunRecord};
use crate::model::{AlertStatus, Incident, now_rfc3339};
use crate::recipe::Recipe;
use crate::sandbox::{RunInput, RunJob, RunResult, RunStatus};

use super::Reconciler;
use super::book::IncidentBook;

/// The debuggers that handle `incident`: those whose matchers select one of its firing alerts.
pub fn select<'a>(recipes: &'a [Recipe], incident: &Incident) -> Vec<&'a Recipe> {
    recipes
        .iter()
        .filter(|r| {
            incident
                .alerts
                .iter()
                .any(|a| a.status == AlertStatus::Firing && r.selects(&a.labels))
        })
        .collect()
}

/// A fresh run id.
pub fn run_id() -> String {
    format!("run-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

impl Reconciler {
    /// Put incident `id` in analysis: one pending run per selected debugger, on record in its
    /// log, then the fan-out as a task. The group's cooldown starts now.
    pub(super) fn start_analysis(&self, book: &mut IncidentBook, id: &str, now: &str) {
        let recipes = self.catalog.recipes();
        let Some(rec) = book.get_mut(id) else { return };
        let model = rec.model();
        rec.state = IncidentState::Analyzing;
        let mut jobs = Vec::new();
        for r in select(&recipes, &model) {
            let run_id = run_id();
            rec.runs.push(RunRecord {
                run_id: run_id.clone(),
                recipe: r.name().into(),
                digest: r.digest.to_string(),
                status: "pending".into(),
                result: None,
            });
            let detail = format!("{} {} pinned {}", r.name(), run_id, r.digest);
            rec.log(now, "run-started", detail, None, None);
            jobs.push(r.job(run_id, RunInput::Debug(model.clone())));
        }
        self.trigger.lock().analysed(&rec.group_key, Instant::now());
        tracing::info!(incident_id = %id, runs = jobs.len(), "fan-out");
        if let Some(this) = self.this() {
            let id = id.to_string();
            self.spawn(async move { this.analyze(id, jobs).await });
        }
    }

    async fn analyze(&self, id: String, jobs: Vec<RunJob>) {
        // The runs are on record before any starts: a host that dies now is succeeded by one
        // that knows them and adopts their results.
        if !self.journal.persist_point(Duration::from_secs(5)).await {
            tracing::warn!(incident_id = %id, "the store did not take the runs within 5 s; starting them anyway");
        }
        let mut set = tokio::task::JoinSet::new();
        let pending = jobs.clone();
        for job in jobs {
            let executor = self.executor.clone();
            let metrics = self.metrics.clone();
            set.spawn(async move { run_job(&*executor, &metrics, job).await });
        }
        let deadline = tokio::time::Instant::now() + self.settings.incident_deadline;
        loop {
            match tokio::time::timeout_at(deadline, set.join_next()).await {
                Ok(Some(Ok(result))) => self.record_run(&id, result),
                Ok(Some(Err(e))) => tracing::error!(incident_id = %id, "a run task failed: {e}"),
                Ok(None) => break,
                Err(_) => {
                    set.abort_all();
                    break;
                }
            }
        }
        // Whatever did not report by now is closed, never left pending.
        let msg = format!(
            "did not report within the incident deadline ({} ms)",
            self.settings.incident_deadline.as_millis()
        );
        for job in pending {
            self.record_run(&id, RunResult::closed(&job, RunStatus::TimedOut, msg.clone()));
        }
        self.finish_analysis(&id, deadline).await;
    }

    /// Record a run's result, exactly once per run id (later duplicates are ignored).
    pub(super) fn record_run(&self, id: &str, result: RunResult) {
        let (run_id, recipe, status) = (result.run_id.clone(), result.recipe.clone(), result.status);
        if self.book.lock().record_run(id, result, &now_rfc3339()) {
            tracing::info!(incident_id = %id, run_id = %run_id, recipe = %recipe, status = %status, "run recorded");
        }
    }

    /// Merge the runs into the analysis, mark the incident analysed, preview its suggested
    /// actions until `deadline`, and notify (the diffs go out with the analysis).
    pub(super) async fn finish_analysis(&self, id: &str, deadline: tokio::time::Instant) {
        if self.book.lock().complete_analysis(id, &now_rfc3339()).is_none() {
            return;
        }
        self.preview_suggestions(id, deadline).await;
        let Some(snapshot) = self.book.lock().mark_analyzed(id) else {
            return;
        };
        for n in &self.notifiers {
            let (kind, detail) = match n.analysis(&snapshot).await {
                Ok(()) => ("analysis-sent", format!("sent to {}", n.name())),
                Err(e) => ("notify-failed", format!("{}: {e}", n.name())),
            };
            self.book
                .lock()
                .note(id, &now_rfc3339(), kind, &detail, None, Some(n.name()));
        }
    }
}

/// Run a job on the executor, counted in the in-flight gauge and the run metrics.
pub(super) async fn run_job(
    executor: &dyn crate::executor::Executor,
    metrics: &crate::metrics::Metrics,
    job: RunJob,
) -> RunResult {
    let started = Instant::now();
    let recipe = job.recipe.clone();
    let _flight = metrics.run_started();
    let result = executor.run(job).await;
    metrics.run_finished(&recipe, result.status.as_str(), started.elapsed().as_secs_f64());
    result
}
