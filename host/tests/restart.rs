//! A host killed with SIGKILL while 50 runs are in flight, then restarted: every result is
//! collected and every incident completes, and no run is started twice. (Its own test binary:
//! 50 sandbox processes should not compete with other tests for the two cores.)

mod common;

use std::time::{Duration, Instant};

use common::host::*;
use common::redis::RedisServer;
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_with_50_runs_in_flight_finishes_them_after_restart() {
    let redis = RedisServer::start();
    let url = redis.url();
    let env = [("EUPHROSYNE_REDIS_URL", url.as_str())];
    // The deadline is not what this tests: generous, so 50 sandbox processes starting on a busy
    // machine finish within it.
    let config = "redis_prefix = \"kill\"\nincident_deadline_ms = 60000";
    let first = Host::start_with_env(|d| pack_slow(d, 3000), config, &[], &env);
    for i in 0..50 {
        let alert = json!({"labels": {"alertname": format!("Slow{i}"), "instance": "db-1"}});
        assert!(
            first
                .post("/webhook", None)
                .json(&alert)
                .send()
                .await
                .unwrap()
                .status()
                .is_success()
        );
    }
    let started = Instant::now();
    loop {
        let status = first.json("/api/status").await;
        if status["runs_in_flight"] == 50 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "50 runs never in flight: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await; // past one write-behind tick
    // SIGKILL: no shutdown, no flush; its sandbox processes live on and publish.
    let mut first = first;
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let second = Host::start_with_env(|d| pack_slow(d, 3000), config, &[], &env);
    let started = Instant::now();
    let done = loop {
        let list = second.json("/api/incidents?state=analyzed").await;
        let n = list["incidents"].as_array().map_or(0, |a| a.len());
        if n == 50 {
            break list;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "only {n} of 50 incidents completed after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for inc in done["incidents"].as_array().unwrap() {
        let id = inc["id"].as_str().unwrap();
        let full = second.json(&format!("/api/incidents/{id}")).await;
        let runs = full["incident"]["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 1, "no run was started twice: {id}");
        assert_eq!(runs[0]["status"], "ok", "{:#}", runs[0]);
        assert_eq!(full["incident"]["analysis"]["summary"], "slow: slept 3000 ms");
        assert!(
            full["incident"]["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "resumed")
        );
    }
}
