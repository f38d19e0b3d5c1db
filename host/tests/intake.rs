//! Intake edge cases that are hard to force over HTTP: a full queue, shutdown, Grafana's body.

use std::sync::Arc;

use euphrosyne::config::ServeConfig;
use euphrosyne::executor::{Executor, InProcess};
use euphrosyne::metrics::Metrics;
use euphrosyne::reconciler::{IntakeError, Reconciler};
use euphrosyne::sandbox::{Sandbox, SandboxConfig};

fn reconciler(queue_capacity: usize) -> Arc<Reconciler> {
    reconciler_with(ServeConfig {
        queue_capacity,
        ..Default::default()
    })
}

fn reconciler_with(config: ServeConfig) -> Arc<Reconciler> {
    let metrics = Arc::new(Metrics::default());
    let executor: Arc<dyn Executor> = Arc::new(InProcess::new(
        Arc::new(
            Sandbox::new(SandboxConfig {
                pool_slots: 4,
                ..Default::default()
            })
            .unwrap(),
        ),
        4,
    ));
    Reconciler::start(
        config.reconciler_settings().unwrap(),
        euphrosyne::catalog::Catalog::new(vec![], vec![]),
        executor,
        vec![],
        metrics,
    )
}

fn alert(name: &str) -> String {
    format!(r#"{{"labels": {{"alertname": "{name}"}}}}"#)
}

// current_thread: the worker cannot drain the queue between two synchronous calls.
#[tokio::test(flavor = "current_thread")]
async fn a_full_queue_refuses_and_loses_nothing() {
    let r = reconciler(1);
    assert_eq!(r.accept(alert("A").as_bytes()).unwrap().accepted, 1);
    let err = r.accept(alert("B").as_bytes()).unwrap_err();
    assert!(matches!(err, IntakeError::QueueFull(1)), "{err}");
    assert!(err.to_string().contains("retry later"));
    // The refused alert was not remembered as seen: its retry is accepted once there is room.
    tokio::task::yield_now().await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(r.accept(alert("B").as_bytes()).unwrap().accepted, 1);
    assert_eq!(r.queue_depth(), 1);
}

#[tokio::test]
async fn shutting_down_refuses_new_alerts() {
    let r = reconciler(10);
    assert!(r.ready());
    r.shutdown_intake();
    assert!(!r.ready());
    assert!(matches!(
        r.accept(alert("A").as_bytes()),
        Err(IntakeError::ShuttingDown)
    ));
}

#[tokio::test]
async fn grafana_webhooks_are_understood() {
    // Grafana Alerting's webhook contact point: Alertmanager's shape plus its own fields.
    let body = serde_json::json!({
        "receiver": "euphrosyne", "status": "firing", "orgId": 1, "version": "4", "truncatedAlerts": 0,
        "groupKey": "{}/{}:{alertname=\"HighLatency\"}", "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": {"alertname": "HighLatency", "grafana_folder": "shop"}, "commonAnnotations": {},
        "externalURL": "http://grafana.test/", "title": "[FIRING:1] HighLatency", "state": "alerting", "message": "latency high",
        "alerts": [{"status": "firing", "labels": {"alertname": "HighLatency", "grafana_folder": "shop"}, "annotations": {"summary": "p99 2s"},
                    "startsAt": "2026-11-24T08:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://grafana.test/alerting/1/edit",
                    "fingerprint": "c6eadffa33fcdf37", "silenceURL": "http://grafana.test/alerting/silence/new", "dashboardURL": "http://grafana.test/d/1",
                    "panelURL": "http://grafana.test/d/1?viewPanel=2", "values": {"B": 2.1}, "valueString": "[ var='B' value=2.1 ]"}]
    });
    let p = euphrosyne::alert::parse(body.to_string().as_bytes(), "now").unwrap();
    assert_eq!(p.source, "grafana");
    assert_eq!(p.group_key.as_deref(), Some("{}/{}:{alertname=\"HighLatency\"}"));
    assert_eq!(p.alerts[0].fingerprint, "c6eadffa33fcdf37");
    let r = reconciler(10);
    assert_eq!(r.accept(body.to_string().as_bytes()).unwrap().accepted, 1);
}

#[tokio::test]
async fn evicted_incidents_never_swallow_new_alerts() {
    let r = reconciler_with(ServeConfig {
        max_incidents: 2,
        ..Default::default()
    });
    let wait = |n: usize, with_a: bool| {
        let r = r.clone();
        async move {
            for _ in 0..500 {
                let all = r.incidents(None, None);
                let has_a = all.iter().any(|i| i.group_key.contains("\"A\""));
                let settled = all
                    .iter()
                    .all(|i| i.state != euphrosyne::incident::IncidentState::Analyzing);
                if all.len() == n && has_a == with_a && settled {
                    return all;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            panic!(
                "never settled at {n} incidents: {:?}",
                r.incidents(None, None)
                    .iter()
                    .map(|i| (&i.group_key, i.state))
                    .collect::<Vec<_>>()
            );
        }
    };
    for name in ["A", "B", "C"] {
        r.accept(alert(name).as_bytes()).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let _ = wait(2, false).await; // the oldest closed incident (A) was evicted
    // A new alert for A's group opens a new incident rather than vanishing.
    r.accept(br#"{"labels": {"alertname": "A", "instance": "db-2"}}"#)
        .unwrap();
    let kept = wait(2, true).await;
    let a = kept
        .iter()
        .find(|i| i.group_key.contains("\"A\""))
        .expect("A's new alert has an incident");
    assert_eq!(a.alerts[0].labels["instance"], "db-2");
    // Its group was analysed moments ago, so the cooldown holds the debuggers back, visibly.
    let (full, _) = r.incident(&a.id).unwrap();
    assert!(full.events.iter().any(|e| e.kind == "suppressed"), "{:?}", full.events);
}
