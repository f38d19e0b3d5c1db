//! The incident book's transitions, without a runtime.
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
        preview: None,
        fresh_preview: None,
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
