//! The incident book: every incident kept, in arrival order, the open one of each group, and the
//! actions approved on them — with the synchronous transitions that change them (ingest a batch,
//! record a run once, complete an analysis, start and finish an action once) and bounded eviction.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::incident::{ActionRun, ActionStatus, IncidentRecord, IncidentState, Preview, merge, write_lines};
use crate::sandbox::{RunResult, RunStatus};

use super::intake::AlertBatch;

/// What a batch did to its incident.
#[derive(Debug, PartialEq, Eq)]
pub struct Ingested {
    /// The incident.
    pub id: String,
    /// Did a new firing notification arrive?
    pub news: bool,
    /// Did the batch resolve every alert?
    pub resolved: bool,
    /// Incidents dropped to make room (their timers can go).
    pub evicted: Vec<String>,
}

/// Whose run a result belongs to.
#[derive(Debug, PartialEq, Eq)]
pub enum Owner {
    /// A debugging run of this incident.
    Incident(String),
    /// The actor run of this action.
    Action(String),
}

/// Incidents and actions.
#[derive(Debug)]
pub struct IncidentBook {
    incidents: HashMap<String, IncidentRecord>,
    order: VecDeque<String>,
    open_by_group: HashMap<String, String>,
    actions: HashMap<String, ActionRun>,
    max: usize,
}

impl IncidentBook {
    /// Keep at most `max` incidents (beyond, the oldest resolved or analysed go first; open ones
    /// are never dropped).
    pub fn new(max: usize) -> Self {
        IncidentBook {
            incidents: HashMap::new(),
            order: VecDeque::new(),
            open_by_group: HashMap::new(),
            actions: HashMap::new(),
            max,
        }
    }

    /// Put `batch` into its group's open incident, or a new one named by `new_id`.
    pub fn ingest(&mut self, batch: AlertBatch, now: &str, new_id: impl FnOnce() -> String) -> Ingested {
        let open = self
            .open_by_group
            .get(&batch.group_key)
            .filter(|id| self.incidents.contains_key(*id))
            .cloned();
        let mut evicted = Vec::new();
        let id = match open {
            Some(id) => id,
            None => {
                let id = new_id();
                let rec = IncidentRecord::new(id.clone(), batch.group_key.clone(), batch.source.clone(), now);
                self.incidents.insert(id.clone(), rec);
                self.order.push_back(id.clone());
                self.open_by_group.insert(batch.group_key.clone(), id.clone());
                evicted = self.evict();
                id
            }
        };
        let rec = self.incidents.get_mut(&id).expect("an open incident is kept");
        let mut news = false;
        for alert in batch.alerts {
            let what = format!(
                "{} {}",
                alert.labels.get("alertname").map(String::as_str).unwrap_or("alert"),
                alert.fingerprint
            );
            let firing = rec.upsert_alert(alert);
            let kind = if firing { "alert-received" } else { "alert-resolved" };
            rec.log(now, kind, what, None, None);
            news |= firing;
        }
        let resolved = rec.all_resolved();
        if resolved {
            rec.state = IncidentState::Resolved;
            rec.log(now, "resolved", "every alert resolved", None, None);
            self.open_by_group.remove(&batch.group_key);
        }
        Ingested {
            id,
            news: news && !resolved,
            resolved,
            evicted,
        }
    }

    /// Drop the oldest incidents that are no longer open, past the bound.
    fn evict(&mut self) -> Vec<String> {
        let mut gone = Vec::new();
        while self.incidents.len() > self.max {
            let Some(pos) = self.order.iter().position(|id| {
                self.incidents
                    .get(id)
                    .is_none_or(|r| matches!(r.state, IncidentState::Resolved | IncidentState::Analyzed))
            }) else {
                break; // everything kept is still open: keep it rather than lose alerts
            };
            if let Some(id) = self.order.remove(pos)
                && let Some(rec) = self.incidents.remove(&id)
            {
                for a in &rec.actions {
                    self.actions.remove(a);
                }
                if self.open_by_group.get(&rec.group_key) == Some(&id) {
                    self.open_by_group.remove(&rec.group_key);
                }
                gone.push(id);
            }
        }
        gone
    }

    /// One incident.
    pub fn get(&self, id: &str) -> Option<&IncidentRecord> {
        self.incidents.get(id)
    }

    /// One incident, to change (every change logs an event, which bumps its version).
    pub fn get_mut(&mut self, id: &str) -> Option<&mut IncidentRecord> {
        self.incidents.get_mut(id)
    }

    /// Append an event to an incident's log.
    pub fn note(&mut self, id: &str, now: &str, kind: &str, detail: &str, by: Option<String>, channel: Option<&str>) {
        if let Some(rec) = self.incidents.get_mut(id) {
            rec.log(now, kind, detail, by, channel);
        }
    }

    /// Record a run's result, exactly once per run id; `false` for a duplicate or an unknown run.
    pub fn record_run(&mut self, id: &str, result: RunResult, now: &str) -> bool {
        let Some(rec) = self.incidents.get_mut(id) else {
            return false;
        };
        let Some(run) = rec.runs.iter_mut().find(|r| r.run_id == result.run_id) else {
            return false;
        };
        if run.result.is_some() {
            return false;
        }
        run.status = result.status.as_str().into();
        let message = if result.message.is_empty() {
            String::new()
        } else {
            format!(": {}", result.message)
        };
        let detail = format!("{} {} {}{message}", run.recipe, run.run_id, result.status);
        run.result = Some(result);
        rec.log(now, "run-finished", detail, None, None);
        true
    }

    /// The runs of incident `id` that have not reported: (run id, recipe, digest).
    pub fn pending_runs(&self, id: &str) -> Vec<(String, String, String)> {
        self.incidents
            .get(id)
            .map(|r| {
                r.runs
                    .iter()
                    .filter(|run| run.result.is_none())
                    .map(|run| (run.run_id.clone(), run.recipe.clone(), run.digest.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Merge the runs into the analysis and mark the incident analysed; the incident as it is now.
    pub fn complete_analysis(&mut self, id: &str, now: &str) -> Option<IncidentRecord> {
        let rec = self.incidents.get_mut(id)?;
        let analysis = merge(id, &rec.runs);
        let detail = format!(
            "{:?}: {} ({} suggested actions)",
            analysis.verdict,
            analysis.summary,
            analysis.actions.len()
        );
        rec.analysis = Some(analysis);
        rec.log(now, "analysis-complete", detail, None, None);
        Some(rec.clone())
    }

    /// The analysis of incident `id` is ready, previews included: it is `analyzed` now.
    pub fn mark_analyzed(&mut self, id: &str) -> Option<IncidentRecord> {
        let rec = self.incidents.get_mut(id)?;
        if rec.state == IncidentState::Analyzing {
            rec.state = IncidentState::Analyzed;
        }
        Some(rec.clone())
    }

    /// Who a run id belongs to.
    pub fn owner_of(&self, run_id: &str) -> Option<Owner> {
        if let Some(r) = self
            .incidents
            .values()
            .find(|r| r.runs.iter().any(|x| x.run_id == run_id))
        {
            return Some(Owner::Incident(r.id.clone()));
        }
        self.actions
            .values()
            .find(|a| a.run_id.as_deref() == Some(run_id))
            .map(|a| Owner::Action(a.id.clone()))
    }

    /// One approved action.
    pub fn action(&self, id: &str) -> Option<&ActionRun> {
        self.actions.get(id)
    }

    /// Keep a newly approved action (its incident lists it).
    pub fn add_action(&mut self, run: ActionRun) {
        if let Some(rec) = self.incidents.get_mut(&run.incident)
            && !rec.actions.contains(&run.id)
        {
            rec.actions.push(run.id.clone());
        }
        self.actions.insert(run.id.clone(), run);
    }

    /// Action `id` starts as run `run_id`; its incident, when it is kept.
    pub fn start_action(&mut self, id: &str, run_id: &str, now: &str) -> Option<String> {
        let a = self.actions.get_mut(id)?;
        a.status = ActionStatus::Running;
        a.run_id = Some(run_id.to_string());
        let incident = a.incident.clone();
        // Logging bumps the incident, so the write-behind stores the action's run id.
        let rec = self.incidents.get_mut(&incident)?;
        rec.log(now, "action-started", format!("{id} {run_id}"), None, None);
        Some(incident)
    }

    /// Record an action's result, once; its incident and the action as they are now.
    pub fn finish_action(&mut self, id: &str, result: RunResult, now: &str) -> Option<(IncidentRecord, ActionRun)> {
        let a = self.actions.get_mut(id)?;
        if a.result.is_some() {
            return None; // recorded already: a duplicate delivery
        }
        let ok = result.status == RunStatus::Ok && result.outcome.as_ref().is_some_and(|o| o.success);
        let conflict = result.writes.iter().any(|w| w.conflict);
        a.status = match (ok, conflict) {
            (_, true) => ActionStatus::Conflict,
            (true, false) => ActionStatus::Succeeded,
            (false, false) => ActionStatus::Failed,
        };
        let detail = match (&result.outcome, conflict) {
            (_, true) => format!("{id} conflict: an object changed since the preview; nothing was written over it"),
            (Some(o), _) => format!("{id} {}: {}", if o.success { "succeeded" } else { "failed" }, o.summary),
            (None, _) => format!("{id} failed: {} {}", result.status, result.message),
        };
        let writes = write_lines(&result.writes);
        if !ok && result.outcome.is_none() && a.error.is_none() {
            a.error = Some(format!("{}: {}", result.status, result.message));
        }
        a.result = Some(result);
        let run = a.clone();
        let rec = self.incidents.get_mut(&run.incident)?;
        for line in writes {
            rec.log(now, "action-write", format!("{id} {line}"), None, None);
        }
        rec.log(now, "action-finished", detail, None, None);
        Some((rec.clone(), run))
    }

    /// Record which actor implements each suggestion of incident `id` (`None`: no actor
    /// installed).
    pub fn set_actors(&mut self, id: &str, actor_of: impl Fn(&str) -> Option<String>) {
        if let Some(a) = self.incidents.get_mut(id).and_then(|r| r.analysis.as_mut()) {
            for s in &mut a.actions {
                s.actor = actor_of(&s.action);
            }
        }
    }

    /// Keep the preview of suggestion `suggestion` of incident `id`, its diff in the event log.
    pub fn set_preview(&mut self, id: &str, suggestion: &str, preview: Preview, now: &str) {
        let Some(rec) = self.incidents.get_mut(id) else { return };
        let lines = write_lines(&preview.writes);
        let detail = format!(
            "{suggestion} {}: {}",
            if preview.ok { "previewed" } else { "preview failed" },
            preview.lines().join("; ")
        );
        if let Some(s) = rec
            .analysis
            .as_mut()
            .and_then(|a| a.actions.iter_mut().find(|s| s.id == suggestion))
        {
            s.preview = Some(preview);
        }
        for line in lines {
            rec.log(now, "action-write", format!("{suggestion} {line}"), None, None);
        }
        rec.log(now, "action-previewed", detail, None, None);
    }

    /// Keep a fresh preview on action `id` (after a conflict).
    pub fn set_fresh_preview(&mut self, id: &str, preview: Preview) -> Option<ActionRun> {
        let a = self.actions.get_mut(id)?;
        a.fresh_preview = Some(preview);
        Some(a.clone())
    }

    /// Take back what a previous host kept, oldest first: the incidents go to the end of the
    /// order, the open ones are their groups' open incidents again.
    pub fn restore(&mut self, incidents: Vec<IncidentRecord>, actions: Vec<ActionRun>) {
        for rec in incidents {
            if rec.state != IncidentState::Resolved {
                self.open_by_group.insert(rec.group_key.clone(), rec.id.clone());
            }
            if !self.incidents.contains_key(&rec.id) {
                self.order.push_back(rec.id.clone());
            }
            self.incidents.insert(rec.id.clone(), rec);
        }
        for a in actions {
            self.actions.insert(a.id.clone(), a);
        }
    }

    /// Every incident kept.
    pub fn all(&self) -> impl Iterator<Item = &IncidentRecord> {
        self.incidents.values()
    }

    /// Incidents per state, every state listed.
    pub fn by_state(&self) -> BTreeMap<IncidentState, usize> {
        let mut out: BTreeMap<IncidentState, usize> = IncidentState::ALL.iter().map(|s| (*s, 0)).collect();
        for r in self.incidents.values() {
            *out.entry(r.state).or_insert(0) += 1;
        }
        out
    }

    /// Incidents, newest first, optionally by state and one `label=value`; summaries (no event
    /// logs, no run results: the full record is at `/api/incidents/{id}`).
    pub fn list(&self, state: Option<IncidentState>, label: Option<(&str, &str)>) -> Vec<IncidentRecord> {
        self.order
            .iter()
            .rev()
            .filter_map(|id| self.incidents.get(id))
            .filter(|r| state.is_none_or(|s| r.state == s))
            .filter(|r| label.is_none_or(|(k, v)| r.has_label(k, v)))
            .map(|r| {
                let mut r = r.clone();
                r.events.clear();
                for run in &mut r.runs {
                    run.result = None;
                }
                r
            })
            .collect()
    }

    /// One incident with its actions.
    pub fn incident(&self, id: &str) -> Option<(IncidentRecord, Vec<ActionRun>)> {
        let rec = self.incidents.get(id)?.clone();
        let actions = rec
            .actions
            .iter()
            .filter_map(|a| self.actions.get(a).cloned())
            .collect();
        Some((rec, actions))
    }

    /// Incidents whose version differs from `written`, with their actions (the write-behind).
    pub fn changed_since(&self, written: &HashMap<String, u64>) -> (Vec<IncidentRecord>, Vec<ActionRun>) {
        let incidents: Vec<IncidentRecord> = self
            .incidents
            .values()
            .filter(|r| written.get(&r.id) != Some(&r.version))
            .cloned()
            .collect();
        let actions = incidents
            .iter()
            .flat_map(|r| r.actions.iter())
            .filter_map(|a| self.actions.get(a).cloned())
            .collect();
        (incidents, actions)
    }

    /// Is incident `id` kept?
    pub fn contains(&self, id: &str) -> bool {
        self.incidents.contains_key(id)
    }

    /// The bound.
    pub fn max(&self) -> usize {
        self.max
    }
}

#[cfg(test)]
mod tests;
