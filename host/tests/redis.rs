//! The Redis result bus with a real `redis-server` (password auth, key prefix): `serve --redis`
//! running every recipe as an `euphrosyne sandbox` subprocess, results published while nobody
//! listened, redelivery after a crash, a tampered component, and Redis restarting mid-run.

mod common;
/// The store contract (memory and Redis) and lease fencing, in this binary: it needs Redis too.
#[path = "suites/store.rs"]
mod store;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::host::*;
use common::redis::RedisServer;
use common::*;
use euphrosyne::bus::{Bus, RunSpec};
use euphrosyne::sandbox::RunStatus;
use serde_json::json;

#[tokio::test]
async fn serve_with_redis_runs_recipes_as_sandbox_subprocesses() {
    let redis = RedisServer::start();
    let w = World::start_with_env(
        "redis_prefix = \"e2e\"",
        &[],
        &[],
        &[("EUPHROSYNE_REDIS_URL", &redis.url())],
    );
    let h = &w.host;
    h.post("/webhook", None)
        .json(&w.endpoint_alert("fp-redis"))
        .send()
        .await
        .unwrap();
    let v = h.analysed_incident().await;
    let inc = &v["incident"];
    assert_eq!(inc["runs"][0]["status"], "ok", "{:#}", inc["runs"]);
    assert!(inc["analysis"]["summary"].as_str().unwrap().contains("answers 503"));
    let id = inc["id"].as_str().unwrap();
    let r = h
        .post("/api/actions", Some(APPROVER))
        .json(&json!({"incident": id, "action": "open-ticket", "approver": "alice"}))
        .send()
        .await
        .unwrap();
    let action_id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let a = h
        .wait_for(&format!("/api/actions/{action_id}"), |a| {
            a["status"] == "succeeded" || a["status"] == "failed"
        })
        .await;
    assert_eq!(a["status"], "succeeded", "{a:#}");
    assert_eq!(w.jira.hits(), 1);
    // The three results — the debugger's, the suggested action's preview (a dry run) and the
    // action's — went through the stream under the prefix, and were acknowledged.
    let bus = Bus::connect(&redis.url(), "e2e", Duration::from_secs(5)).await.unwrap();
    let mut conn = ::redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    assert_eq!(common::redis::xlen(&redis.url(), &bus.results_key()).await, 3);
    let pending: Vec<::redis::Value> = ::redis::cmd("XPENDING")
        .arg(bus.results_key())
        .arg("hosts")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(pending[0], ::redis::Value::Int(0), "everything acknowledged");
}

#[tokio::test]
async fn serve_over_tls_redis_with_a_private_ca() {
    let redis = RedisServer::start_tls();
    let ca = redis.ca_file();
    let ca = ca.to_str().unwrap();
    // Without the CA the server's certificate is not trusted: the host says so and stops.
    let out = Command::new(euphrosyne_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--recipes"])
        .arg(tempfile::tempdir().unwrap().path())
        .env("EUPHROSYNE_REDIS_URL", redis.url())
        .env_remove("EUPHROSYNE_REDIS_CA_FILE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Redis"), "{err}");
    // With it, the whole loop runs over TLS: host, sandbox subprocesses, store.
    let w = World::start_with_env(
        "redis_prefix = \"tls\"",
        &[],
        &[],
        &[("EUPHROSYNE_REDIS_URL", &redis.url()), ("EUPHROSYNE_REDIS_CA_FILE", ca)],
    );
    assert!(redis.url().starts_with("rediss://"));
    w.host
        .post("/webhook", None)
        .json(&w.endpoint_alert("fp-tls"))
        .send()
        .await
        .unwrap();
    let v = w.host.analysed_incident().await;
    assert_eq!(v["incident"]["runs"][0]["status"], "ok", "{:#}", v["incident"]["runs"]);
    // The sandbox's results (the debugger's and its suggestion's preview) went through the TLS
    // server's stream.
    let tls = ::redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(std::fs::read(ca).unwrap()),
    };
    let mut c = ::redis::Client::build_with_tls(redis.url(), tls)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let len: u64 = ::redis::cmd("XLEN")
        .arg("tls:results")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(len, 2);
}

fn hostile_job(mode: &str) -> euphrosyne::sandbox::RunJob {
    let mut j = job("hostile", &guest("hostile"), debug(&[("alertname", "X")]));
    j.run_id = format!("run-{mode}-{}", std::process::id());
    j.config.insert("mode".into(), mode.into());
    j.capabilities = euphrosyne::manifest::Capabilities {
        http: vec!["x.invalid".into()],
        secrets: vec!["x".into()],
        kubernetes: euphrosyne::manifest::KubeGrants::of(
            euphrosyne::manifest::Scope::Namespace,
            &[("pods", &[euphrosyne::manifest::KubeVerb::Get])],
        ),
        dirs: vec![],
    };
    j
}

/// Run `euphrosyne sandbox` for `job` with `component` as its recipe file.
fn sandbox_process(redis: &RedisServer, prefix: &str, run_id: &str, component: &[u8]) -> std::process::Child {
    let dir = tempfile::tempdir().unwrap().keep();
    let file = dir.join("component.wasm");
    std::fs::write(&file, component).unwrap();
    Command::new(euphrosyne_bin())
        .args(["sandbox", "--run", run_id, "--prefix", prefix, "--recipe"])
        .arg(&file)
        .env("EUPHROSYNE_REDIS_URL", redis.url())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// A bus under `prefix` with its consumer group, and a harmless run of the hostile guest whose
/// input is stored (30 s to run, kept 60 s), as a host stages it for a sandbox process.
async fn staged_run(redis: &RedisServer, prefix: &str) -> (Bus, euphrosyne::sandbox::RunJob) {
    let bus = Bus::connect(&redis.url(), prefix, Duration::from_secs(5))
        .await
        .unwrap();
    bus.ensure_group().await.unwrap();
    let job = hostile_job("ok");
    bus.put_run(&RunSpec::of(&job, Duration::from_secs(30)), Duration::from_secs(60))
        .await
        .unwrap();
    (bus, job)
}

#[tokio::test]
async fn results_published_while_nobody_listens_are_collected_once() {
    let redis = RedisServer::start();
    let (bus, job) = staged_run(&redis, "t1").await;
    // The sandbox publishes while no host reads.
    let out = sandbox_process(&redis, "t1", &job.run_id, &job.bytes)
        .wait_with_output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A host that starts now gets it…
    let got = bus.read("host-a", false, Duration::from_millis(500)).await.unwrap();
    assert_eq!(got.len(), 1);
    let result = got[0].result.as_ref().unwrap();
    assert_eq!(
        (result.run_id.as_str(), result.status),
        (job.run_id.as_str(), RunStatus::Ok)
    );
    assert_eq!(result.analysis.as_ref().unwrap().summary, "all good: 1 alert(s)");
    // …and, if it dies before acknowledging, gets it again when it comes back (same consumer name).
    let again = bus.read("host-a", true, Duration::ZERO).await.unwrap();
    assert_eq!(again.len(), 1);
    bus.ack(&[again[0].entry.clone()]).await.unwrap();
    // Once acknowledged: never again, for this host or another.
    assert!(bus.read("host-a", true, Duration::ZERO).await.unwrap().is_empty());
    assert!(
        bus.read("host-b", false, Duration::from_millis(200))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_tampered_component_is_refused_and_reported() {
    let redis = RedisServer::start();
    let (bus, job) = staged_run(&redis, "t2").await;
    let mut tampered = job.bytes.to_vec();
    tampered.push(0);
    let out = sandbox_process(&redis, "t2", &job.run_id, &tampered)
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success(),
        "the refusal is published: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = bus.read("host", false, Duration::from_millis(500)).await.unwrap();
    let result = got[0].result.as_ref().unwrap();
    assert_eq!(result.status, RunStatus::DigestMismatch);
    assert!(result.message.contains(&job.digest.to_string()));
    // An unknown run id: nothing to run, a clear message, a distinct exit code.
    let out = sandbox_process(&redis, "t2", "run-nope", &job.bytes)
        .wait_with_output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no input in Redis"));
}

#[tokio::test]
async fn the_sandbox_retries_publishing_until_redis_is_back() {
    let mut redis = RedisServer::start();
    let bus = Bus::connect(&redis.url(), "t3", Duration::from_secs(5)).await.unwrap();
    let mut job = hostile_job("loop");
    job.limits.timeout_ms = 1500;
    bus.put_run(&RunSpec::of(&job, Duration::from_secs(30)), Duration::from_secs(60))
        .await
        .unwrap();
    let child = sandbox_process(&redis, "t3", &job.run_id, &job.bytes);
    // Redis goes away while the recipe runs, and comes back after the run ended.
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.stop();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    redis.restart();
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("retrying"),
        "it did retry"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // Redis kept nothing across its restart but the result, published after it came back.
    let bus = Bus::connect(&redis.url(), "t3", Duration::from_secs(5)).await.unwrap();
    bus.ensure_group().await.unwrap();
    let got = bus.read("host", false, Duration::from_millis(500)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].result.as_ref().unwrap().status, RunStatus::TimedOut);
    let _ = Arc::new(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_away_means_not_ready_and_503_then_back_to_work() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let env = [("EUPHROSYNE_REDIS_URL", url.as_str())];
    let host = Host::start_with_env(|d| pack_slow(d, 10), "redis_prefix = \"away\"", &[], &env);
    let alert = |i: u32| json!({"labels": {"alertname": format!("Slow{i}")}});
    assert_eq!(
        host.post("/webhook", None)
            .json(&alert(1))
            .send()
            .await
            .unwrap()
            .status(),
        reqwest::StatusCode::ACCEPTED
    );
    host.analysed_incident().await;

    redis.stop();
    let started = Instant::now();
    while host.get("/readyz", None).send().await.unwrap().status() != reqwest::StatusCode::SERVICE_UNAVAILABLE {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "/readyz stayed ready without Redis"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = host.post("/webhook", None).json(&alert(2)).send().await.unwrap();
    assert_eq!(
        r.status(),
        reqwest::StatusCode::SERVICE_UNAVAILABLE,
        "nothing accepted that cannot be stored"
    );
    assert!(r.headers().contains_key("retry-after"));

    redis.restart();
    let started = Instant::now();
    while host.get("/readyz", None).send().await.unwrap().status() != reqwest::StatusCode::OK {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the host did not reconnect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Alertmanager's retry of the refused alert is accepted now and analysed through the bus.
    assert_eq!(
        host.post("/webhook", None)
            .json(&alert(2))
            .send()
            .await
            .unwrap()
            .status(),
        reqwest::StatusCode::ACCEPTED
    );
    host.wait_for("/api/incidents?state=analyzed", |v| {
        v["incidents"].as_array().is_some_and(|a| a.len() == 2)
    })
    .await;
    let list = host.json("/api/incidents?label=alertname=Slow2").await;
    let id = list["incidents"][0]["id"].as_str().unwrap();
    let full = host.json(&format!("/api/incidents/{id}")).await;
    assert_eq!(
        full["incident"]["runs"][0]["status"], "ok",
        "{:#}",
        full["incident"]["runs"]
    );
}

#[tokio::test]
async fn an_alert_acknowledged_right_before_a_sigkill_is_not_lost() {
    let redis = RedisServer::start();
    let url = redis.url();
    let env = [("EUPHROSYNE_REDIS_URL", url.as_str())];
    // A wait-for-more window: when the host dies the incident is still collecting, its timer gone.
    // A short lease: the dead host's lease runs out (and the second takes over) in about a
    // second, well inside the wait below, not after the default 10 s.
    let config = "redis_prefix = \"ack\"\nleader_lease_ms = 1000\n[trigger]\nwait_for_more_ms = 300";
    let first = Host::start_with_env(|d| pack_slow(d, 100), config, &[], &env);
    // As Alertmanager sends it (a fixed startsAt and fingerprint: its retry is the same alert).
    let alert = alertmanager_body(
        "{}:{alertname=\"SlowAck\"}",
        "firing",
        json!({"alertname": "SlowAck", "instance": "db-1"}),
        json!({}),
        common::firing_since(),
        "fp-ack",
    );
    let r = first.post("/webhook", None).json(&alert).send().await.unwrap();
    assert_eq!(r.status(), 202);
    // SIGKILL the moment it said yes: Alertmanager will not send this alert again.
    let mut first = first;
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let second = Host::start_with_env(|d| pack_slow(d, 100), config, &[], &env);
    let v = second.analysed_incident().await;
    let inc = &v["incident"];
    assert_eq!(inc["alerts"][0]["labels"]["alertname"], "SlowAck");
    assert_eq!(inc["runs"].as_array().unwrap().len(), 1);
    assert_eq!(inc["runs"][0]["status"], "ok", "{:#}", inc["runs"]);
    // A retry of it is still a duplicate.
    let r = second.post("/webhook", None).json(&alert).send().await.unwrap();
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["duplicates"], 1);
}

/// A second sandbox process for the same run (a Job's replacement pod after an eviction) does
/// not run it again: it says who started it, exits 4, and publishes nothing.
#[tokio::test]
async fn a_run_is_executed_once_even_when_its_sandbox_starts_twice() {
    let redis = RedisServer::start();
    let (bus, job) = staged_run(&redis, "t9").await;
    let first = sandbox_process(&redis, "t9", &job.run_id, &job.bytes)
        .wait_with_output()
        .unwrap();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let second = sandbox_process(&redis, "t9", &job.run_id, &job.bytes)
        .wait_with_output()
        .unwrap();
    assert_eq!(second.status.code(), Some(4));
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(
        said.contains("already started by") && said.contains("not running it twice"),
        "{said}"
    );
    let got = bus.read("host", false, Duration::from_millis(500)).await.unwrap();
    assert_eq!(got.len(), 1, "one result");
}
