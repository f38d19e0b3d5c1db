//! Two hosts sharing one Redis: one leads, the other forwards to it; the leader is killed with
//! SIGKILL mid-incident and the other finishes the incident; no run and no action executes twice,
//! and Alertmanager's retries are still duplicates at the new leader. (Its own test binary: it
//! starts processes of its own.)

mod common;

use std::time::{Duration, Instant};

use common::host::*;
use common::redis::RedisServer;
use common::*;
use serde_json::json;

const CONFIG: &str = "redis_prefix = \"ha\"\nleader_lease_ms = 1500";

fn replica(id: &str, redis: &str, endpoint: u16, jira: u16) -> Host {
    let jira_url = format!("http://127.0.0.1:{jira}");
    Host::start_with_env(
        |dir| {
            pack_into(dir, "http-probe", |m| {
                m.capabilities.http = vec![format!("127.0.0.1:{endpoint}")]
            });
            pack_into(dir, "open-ticket", |m| {
                m.capabilities.http = vec![format!("127.0.0.1:{jira}")]
            });
            pack_slow(dir, 2500);
        },
        CONFIG,
        &[("jira-url", &jira_url), ("jira-user", "bot"), ("jira-token", "s3cret")],
        &[("EUPHROSYNE_REDIS_URL", redis), ("EUPHROSYNE_REPLICA_ID", id)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_surviving_replica_finishes_what_the_killed_leader_started_and_nothing_runs_twice() {
    let redis = RedisServer::start();
    let url = redis.url();
    let endpoint = HttpServer::start(503, "upstream down");
    let jira = HttpServer::start(
        201,
        r#"{"id":"10001","key":"OPS-7","self":"http://jira.test/rest/api/2/issue/10001"}"#,
    );
    let a = replica("replica-a", &url, endpoint.port, jira.port);
    let b = replica("replica-b", &url, endpoint.port, jira.port);

    // b follows a: its readiness names the leader, and everything sent to b is done by a.
    let ready = b.get("/readyz", None).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert!(ready.text().await.unwrap().contains("following replica-a"));
    let probe_alert = alertmanager_body(
        "{}:{alertname=\"EndpointDown\"}",
        "firing",
        json!({"alertname": "EndpointDown", "service": "shop"}),
        json!({"probe_url": format!("http://127.0.0.1:{}/health", endpoint.port)}),
        common::firing_since(),
        "fp-shop",
    );
    let r = b.post("/webhook", None).json(&probe_alert).send().await.unwrap();
    assert_eq!(r.status(), 202, "forwarded to the leader");
    let inc = b.analysed_incident().await;
    let probe_incident = inc["incident"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        a.json(&format!("/api/incidents/{probe_incident}")).await["incident"]["id"],
        probe_incident
    );
    // Approved through b, run by a, once.
    let approval = json!({"incident": probe_incident, "action": "open-ticket", "approver": "alice"});
    let r = b
        .post("/api/actions", Some(APPROVER))
        .json(&approval)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let action_id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = b
        .wait_for(&format!("/api/actions/{action_id}"), |v| v["status"] == "succeeded")
        .await;
    assert_eq!(done["status"], "succeeded");
    assert_eq!(jira.hits(), 1);

    // A slow analysis in flight on a; then a dies without a word.
    let slow = json!({"labels": {"alertname": "SlowDb", "instance": "db-1"}});
    assert_eq!(b.post("/webhook", None).json(&slow).send().await.unwrap().status(), 202);
    a.wait_for("/api/status", |s| s["runs_in_flight"] == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await; // past one write-behind tick
    let mut a = a;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let killed = Instant::now();

    // b takes the lease over (within the 1.5 s lease) and finishes the incident a started.
    let ready = loop {
        let r = b.get("/readyz", None).send().await.unwrap();
        let text = r.text().await.unwrap();
        if text == "ready\n" {
            break killed.elapsed();
        }
        assert!(killed.elapsed() < Duration::from_secs(15), "b never took over: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(ready < Duration::from_secs(6), "took {ready:?} to take over");
    let list = b
        .wait_for("/api/incidents?state=analyzed", |v| {
            v["incidents"].as_array().is_some_and(|l| l.len() == 2)
        })
        .await;
    let slow_id = list["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] != probe_incident.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let slow_inc = b.json(&format!("/api/incidents/{slow_id}")).await;
    let runs = slow_inc["incident"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "the run was not started again: {runs:#?}");
    assert_eq!(runs[0]["status"], "ok");
    assert_eq!(slow_inc["incident"]["analysis"]["summary"], "slow: slept 2500 ms");
    let kinds: Vec<&str> = slow_inc["incident"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"resumed"), "{kinds:?}");

    // The action a ran is known to b and does not run again; Alertmanager's retry of the
    // first alert is a duplicate at b too.
    let r = b
        .post("/api/actions", Some(APPROVER))
        .json(&approval)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "approved before: nothing new");
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["status"], "succeeded");
    let r = b.post("/webhook", None).json(&probe_alert).send().await.unwrap();
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["duplicates"], 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(jira.hits(), 1, "one ticket in all");

    // Four results in all went through the stream: the probe, the ticket's preview (a dry run),
    // the ticket, the slow run.
    assert_eq!(common::redis::xlen(&url, "ha:results").await, 4);
}
