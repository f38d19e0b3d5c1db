//! Recovery after a restart (Redis mode): take back the incidents and actions a previous host
//! left, adopt the results of runs it started, and close at the incident deadline whatever did
//! not report — never leave anything pending.

use tokio::sync::mpsc;

use crate::incident::{ActionRun, ActionStatus, IncidentRecord, IncidentState};
use crate::model::now_rfc3339;
use crate::sandbox::RunResult;

use super::book::Owner;
use super::{Msg, Reconciler};

impl Reconciler {
    /// Take back incidents and actions a previous host left (oldest first). Analyses that were
    /// running get their results as they arrive (see [`Reconciler::adopt`]) and are closed at the
    /// incident deadline otherwise.
    pub fn restore(&self, incidents: Vec<IncidentRecord>, mut actions: Vec<ActionRun>) {
        let now = now_rfc3339();
        let mut resume = Vec::new();
        let mut windows = Vec::new();
        let mut incidents = incidents;
        for rec in &mut incidents {
            if rec.state == IncidentState::Analyzing {
                rec.log(&now, "resumed", "a restarted host took the analysis over", None, None);
                resume.push(rec.id.clone());
            }
            if let Some(after) = self.trigger.lock().resume(rec) {
                windows.push((rec.id.clone(), after));
            }
            // Retries of alerts the previous host accepted are still duplicates here.
            self.intake.remember_alerts(&rec.alerts);
        }
        let mut running = Vec::new();
        for a in &mut actions {
            if a.status == ActionStatus::Pending && a.run_id.is_none() && a.result.is_none() && a.error.is_none() {
                // Approved, but its host died before starting it: say so rather than leave it
                // pending for ever.
                a.status = ActionStatus::Failed;
                a.error = Some("its host stopped before starting it; nothing ran".into());
            }
            if a.status == ActionStatus::Running && a.result.is_none() {
                running.push(a.id.clone());
            }
        }
        self.book.lock().restore(incidents, actions);
        for (incident, after) in windows {
            let _ = self.control.send(Msg::Window { incident, after });
        }
        if resume.is_empty() && running.is_empty() {
            return;
        }
        // Not a tracked task: shutdown does not wait for a sweep (a successor sweeps again).
        if let Some(this) = self.this() {
            tokio::spawn(async move { this.sweep(resume, running).await });
        }
    }

    /// At the incident deadline, close the runs and actions a restart left that have not reported.
    async fn sweep(&self, analyses: Vec<String>, actions: Vec<String>) {
        tokio::time::sleep(self.settings.incident_deadline).await;
        for id in analyses {
            let pending = self.book.lock().pending_runs(&id);
            if pending.is_empty() {
                continue; // adopt() finished it
            }
            for (run_id, recipe, digest) in pending {
                let why = "its host restarted and the run did not report before the incident deadline";
                self.record_run(&id, RunResult::lost(&run_id, &recipe, &digest, why));
            }
            self.finish_analysis(&id, tokio::time::Instant::now() + self.settings.incident_deadline)
                .await;
        }
        for id in actions {
            let job = self.book.lock().action(&id).and_then(|a| {
                a.result.is_none().then(|| {
                    (
                        a.run_id.clone().unwrap_or_default(),
                        a.recipe.clone().unwrap_or_default(),
                    )
                })
            });
            if let Some((run_id, recipe)) = job {
                let why = "its host stopped and no result arrived before the incident deadline";
                if let Some((rec, run)) = self.finish_action(&id, RunResult::lost(&run_id, &recipe, "", why)) {
                    self.notify_outcome(&rec, &run).await;
                }
            }
        }
    }

    /// Adopt every result arriving on `orphans`.
    pub fn adopt_from(&self, mut orphans: mpsc::UnboundedReceiver<RunResult>) {
        if let Some(this) = self.this() {
            tokio::spawn(async move {
                while let Some(r) = orphans.recv().await {
                    this.adopt(r).await;
                }
            });
        }
    }

    /// Take a result nobody in this process was waiting for (its run started before a restart):
    /// record it on its incident or action, once, and finish what it completes.
    pub async fn adopt(&self, result: RunResult) {
        let owner = self.book.lock().owner_of(&result.run_id);
        match owner {
            Some(Owner::Incident(id)) => {
                self.record_run(&id, result);
                let complete = {
                    let book = self.book.lock();
                    let analyzing = book.get(&id).is_some_and(|r| r.state == IncidentState::Analyzing);
                    analyzing && book.pending_runs(&id).is_empty()
                };
                if complete {
                    self.finish_analysis(&id, tokio::time::Instant::now() + self.settings.incident_deadline)
                        .await;
                }
            }
            Some(Owner::Action(id)) => {
                if let Some((rec, run)) = self.conclude_action(&id, result).await {
                    self.notify_outcome(&rec, &run).await;
                }
            }
            None => tracing::warn!(run_id = ?result.run_id, "a result for a run no incident knows; dropped"),
        }
    }
}
