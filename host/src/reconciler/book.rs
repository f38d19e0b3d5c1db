//! The incident book: every incident kept, in arrival order, the open one of each group, and the
//! actions approved on them — with the synchronous transitions that change them (ingest a batch,
//! record a run once, complete an analysis, start and finish an action once) and bounded eviction.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::incident::{ActionRun, ActionStatus, IncidentRecord, IncidentState, merge};
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
        if rec.state == IncidentState::Analyzing {
            rec.state = IncidentState::Analyzed;
        }
        rec.log(now, "analysis-complete", detail, None, None);
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
        a.status = if ok {
            ActionStatus::Succeeded
        } else {
            ActionStatus::Failed
        };
        let detail = match &result.outcome {
            Some(o) => format!("{id} {}: {}", if o.success { "succeeded" } else { "failed" }, o.summary),
            None => format!("{id} failed: {} {}", result.status, result.message),
        };
        if !ok && result.outcome.is_none() && a.error.is_none() {
            a.error = Some(format!("{}: {}", result.status, result.message));
        }
        a.result = Some(result);
        let run = a.clone();
        let rec = self.incidents.get_mut(&run.incident)?;
        rec.log(now, "action-finished", detail, None, None);
        Some((rec.clone(), run))
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

    /// Every action kept, to change (restore).
    pub fn actions_mut(&mut self) -> impl Iterator<Item = &mut ActionRun> {
        self.actions.values_mut()
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
mod tests {
    use super::*;
    use crate::model::{Alert, AlertStatus};

    fn alert(fp: &str, status: AlertStatus) -> Alert {
        Alert {
            status,
            labels: [("alertname".to_string(), "A".to_string())].into(),
            annotations: Default::default(),
            starts_at: "2026-01-01T00:00:00Z".into(),
            ends_at: None,
            generator_url: String::new(),
            fingerprint: fp.into(),
        }
    }

    fn batch(group: &str, alerts: Vec<Alert>) -> AlertBatch {
        AlertBatch {
            group_key: group.into(),
            source: "test".into(),
            alerts,
        }
    }

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("inc-{n}")
        }
    }

    #[test]
    fn a_group_stays_in_its_open_incident_until_resolved() {
        let mut b = IncidentBook::new(10);
        let mut next = ids();
        let first = b.ingest(batch("g", vec![alert("f1", AlertStatus::Firing)]), "t", &mut next);
        assert_eq!((first.id.as_str(), first.news, first.resolved), ("inc-1", true, false));
        let second = b.ingest(batch("g", vec![alert("f2", AlertStatus::Firing)]), "t", &mut next);
        assert_eq!(second.id, "inc-1");
        assert_eq!(b.get("inc-1").unwrap().occurrences, 2);
        let done = b.ingest(
            batch(
                "g",
                vec![alert("f1", AlertStatus::Resolved), alert("f2", AlertStatus::Resolved)],
            ),
            "t",
            &mut next,
        );
        assert!(done.resolved && !done.news);
        assert_eq!(b.get("inc-1").unwrap().state, IncidentState::Resolved);
        let again = b.ingest(batch("g", vec![alert("f1", AlertStatus::Firing)]), "t", &mut next);
        assert_eq!(again.id, "inc-2", "a resolved incident is not reopened");
    }

    #[test]
    fn eviction_drops_the_oldest_closed_incident_never_an_open_one() {
        let mut b = IncidentBook::new(2);
        let mut next = ids();
        for g in ["a", "b"] {
            b.ingest(batch(g, vec![alert(g, AlertStatus::Firing)]), "t", &mut next);
        }
        // Both open: a third is kept beyond the bound rather than lose alerts.
        let c = b.ingest(batch("c", vec![alert("c", AlertStatus::Firing)]), "t", &mut next);
        assert!(c.evicted.is_empty());
        assert_eq!(b.all().count(), 3);
        b.get_mut("inc-2").unwrap().state = IncidentState::Analyzed;
        b.add_action(action("act-1", "inc-2"));
        let d = b.ingest(batch("d", vec![alert("d", AlertStatus::Firing)]), "t", &mut next);
        assert_eq!(d.evicted, vec!["inc-2".to_string()]);
        assert!(b.action("act-1").is_none(), "its actions go with it");
        assert!(b.contains("inc-1") && b.contains("inc-3"));
    }

    fn action(id: &str, incident: &str) -> ActionRun {
        ActionRun {
            id: id.into(),
            incident: incident.into(),
            action: "restart".into(),
            parameters: serde_json::json!({}),
            suggested: true,
            approved_by: "alice".into(),
            token: "t".into(),
            channel: "api".into(),
            status: ActionStatus::Pending,
            recipe: Some("r".into()),
            error: None,
            run_id: None,
            result: None,
            created_at: "t".into(),
        }
    }

    #[test]
    fn an_action_starts_and_finishes_once() {
        let mut b = IncidentBook::new(10);
        b.ingest(batch("g", vec![alert("f", AlertStatus::Firing)]), "t", ids());
        b.add_action(action("act-1", "inc-1"));
        assert_eq!(b.start_action("act-1", "run-1", "t").as_deref(), Some("inc-1"));
        assert_eq!(b.owner_of("run-1"), Some(Owner::Action("act-1".into())));
        let lost = RunResult::lost("run-1", "r", "", "gone");
        let (rec, run) = b.finish_action("act-1", lost.clone(), "t").unwrap();
        assert_eq!(run.status, ActionStatus::Failed);
        assert!(run.error.as_deref().unwrap().contains("gone"));
        assert_eq!(rec.events.last().unwrap().kind, "action-finished");
        assert!(
            b.finish_action("act-1", lost, "t").is_none(),
            "a duplicate delivery changes nothing"
        );
        assert_eq!(b.get("inc-1").unwrap().actions, vec!["act-1".to_string()]);
    }

    #[test]
    fn changed_since_lists_only_what_moved() {
        let mut b = IncidentBook::new(10);
        b.ingest(batch("g", vec![alert("f", AlertStatus::Firing)]), "t", ids());
        let (all, _) = b.changed_since(&HashMap::new());
        let written: HashMap<_, _> = all.iter().map(|r| (r.id.clone(), r.version)).collect();
        assert!(b.changed_since(&written).0.is_empty());
        b.note("inc-1", "t", "rejected", "no", None, Some("api"));
        assert_eq!(b.changed_since(&written).0.len(), 1);
    }
}
