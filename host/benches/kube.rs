//! The Kubernetes executor on the test cluster with its real node (`scripts/bench-kube`: a
//! kubelet with containerd and runc, the image `scripts/build-image` makes): per-run overhead of
//! a Job run and its parts (the cluster's: Job created → sandbox process started; the sandbox's:
//! process started → recipe running; the host's own), a fan-out of 50, and the host's API
//! requests per run (from the apiserver's audit log).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use common::cluster::ControlPlane;
use common::host::{Host, alertmanager_body};
use common::pct;
use common::redis::RedisServer;
use serde_json::json;

const NS: &str = "euphrosyne";

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn analysed(host: &Host, group: &str) -> serde_json::Value {
    loop {
        let list = host.json("/api/incidents?state=analyzed").await;
        if let Some(i) = list["incidents"]
            .as_array()
            .and_then(|l| l.iter().find(|i| i["group_key"] == group))
        {
            return i.clone();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn alert(group: &str) -> serde_json::Value {
    alertmanager_body(
        group,
        "firing",
        json!({"alertname": "BenchJob", "group": group}),
        json!({}),
        common::firing_since(),
        group,
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let cp = ControlPlane::with_node(true).await;
    let node = cp.node.as_ref().unwrap();
    let redis = RedisServer::start_for_node(&node.gateway);
    let kubectl = |args: &[&str]| {
        let out = cp.kubectl(args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    kubectl(&["create", "namespace", NS]);
    let rbac = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/rbac.yaml");
    kubectl(&["-n", NS, "apply", "--server-side", "-f", rbac.to_str().unwrap()]);
    cp.redis_secret(NS, &redis.url_at(&node.gateway));
    // A quick recipe: the hostile guest's harmless mode, with the grants its imports need (so its
    // Job mounts a Secret and a ServiceAccount token, like a real recipe's).
    kubectl(&[
        "-n",
        NS,
        "create",
        "secret",
        "generic",
        "x",
        "--from-literal=value=bench",
    ]);
    let bytes = common::guest("hostile");
    let toml = format!(
        "name = \"quick\"\nkind = \"debug\"\nversion = \"1\"\ndigest = \"{}\"\nmatchers = ['alertname=\"BenchJob\"']\n[capabilities]\nhttp = [\"x.invalid\"]\nsecrets = [\"x\"]\nkubernetes = {{ pods = [\"get\"] }}\n",
        euphrosyne::digest::Digest::of(&bytes)
    );
    let m = euphrosyne::manifest::Manifest::from_toml(&toml, "quick").unwrap();
    let yaml = std::env::temp_dir().join(format!("bench-quick-{}.yaml", std::process::id()));
    std::fs::write(&yaml, euphrosyne::pack::pack(&m, &bytes).unwrap()).unwrap();
    kubectl(&["-n", NS, "apply", "--server-side", "-f", yaml.to_str().unwrap()]);
    let _ = std::fs::remove_file(&yaml);
    let kubeconfig = cp.service_account_kubeconfig(NS, "euphrosyne").await;
    let config = format!(
        "executor = \"kube\"\nredis_prefix = \"bench\"\nkubeconfig = \"{}\"\nmax_incidents = 1000\n[kube]\nnamespace = \"{NS}\"\nimage = \"euphrosyne:latest\"\nimage_pull_policy = \"Never\"",
        kubeconfig.display()
    );
    let host = Host::start_with_env(|_| {}, &config, &[], &[("EUPHROSYNE_REDIS_URL", &redis.url())]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let audit_before = host_requests(&std::fs::read_to_string(cp.dir.path().join("audit.log")).unwrap_or_default());

    // One run at a time.
    let n = 30;
    let mut runs = Vec::new();
    for i in 0..n {
        let group = format!("seq-{i}");
        let posted = SystemTime::now();
        host.post("/webhook", None).json(&alert(&group)).send().await.unwrap();
        let inc = analysed(&host, &group).await;
        let recorded = SystemTime::now();
        let id = inc["id"].as_str().unwrap();
        let full = host.json(&format!("/api/incidents/{id}")).await;
        let run = &full["incident"]["runs"][0];
        assert_eq!(run["status"], "ok", "{run:#}");
        let t = &run["result"]["timings"];
        let field = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("no timings.{k} in {run:#}"));
        let timings = (
            std::time::UNIX_EPOCH + Duration::from_millis(field("process_start_unix_ms")),
            Duration::from_micros(field("startup_us")),
            Duration::from_micros(field("run_us")),
        );
        runs.push((run["run_id"].as_str().unwrap().to_string(), posted, recorded, timings));
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // processes exit, the audit log flushes
    let audit = std::fs::read_to_string(cp.dir.path().join("audit.log")).unwrap_or_default();
    let created = job_creations(&audit);
    let published = publish_times(&redis.url()).await;
    let per_run_requests = (host_requests(&audit) - audit_before) as f64 / n as f64;
    let (mut e2e, mut process, mut job_to_result, mut host_only, mut cluster, mut startup, mut call) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for (run_id, posted, recorded, (start, startup_time, call_time)) in &runs {
        let (received, done) = created[&format!("euphrosyne-{run_id}")];
        let publish = published[run_id];
        let d = |a: SystemTime, b: SystemTime| b.duration_since(a).unwrap_or_default();
        e2e.push(d(*posted, *recorded));
        process.push(d(*start, publish));
        job_to_result.push(d(done, *recorded));
        // The host's own share: alert → Job create request at the apiserver, and result
        // published → recorded (what remains is the cluster's and the sandbox process's).
        host_only.push(d(*posted, received) + d(publish, *recorded));
        // The cluster's: the Job controller, the scheduler, the kubelet, containerd and runc.
        cluster.push(d(done, *start));
        startup.push(*startup_time);
        call.push(*call_time);
    }
    for v in [
        &mut e2e,
        &mut process,
        &mut job_to_result,
        &mut host_only,
        &mut cluster,
        &mut startup,
        &mut call,
    ] {
        v.sort();
    }

    // Fan-out: 50 alerts at once, 50 Jobs.
    let t0 = Instant::now();
    let posts: Vec<_> = (0..50)
        .map(|i| host.post("/webhook", None).json(&alert(&format!("fan-{i}"))).send())
        .collect();
    for p in posts {
        p.await.unwrap();
    }
    loop {
        let list = host.json("/api/incidents?state=analyzed").await;
        let done = list["incidents"].as_array().map_or(0, |l| {
            l.iter()
                .filter(|i| i["group_key"].as_str().unwrap().starts_with("fan-"))
                .count()
        });
        if done == 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let fan = t0.elapsed();

    println!("| measure | p50 | p99 |");
    println!("|---|---|---|");
    let row = |what: &str, v: &[Duration]| println!("| {what} | {} | {} |", ms(pct(v, 0.5)), ms(pct(v, 0.99)));
    row(
        &format!("alert → analysed, one Job run ({n} runs, one at a time)"),
        &e2e,
    );
    row("**Job created → result recorded**", &job_to_result);
    row(
        "the cluster's share: Job created → sandbox process started (Job controller, scheduler, kubelet, containerd, runc)",
        &cluster,
    );
    row("the sandbox process: started → result published", &process);
    row(
        "**sandbox start → recipe running** (runtime, Redis, engine, verify, compile, instantiate)",
        &startup,
    );
    row("the recipe's call", &call);
    row(
        "**the host's own share**: alert → Job create at the apiserver, + result published → recorded",
        &host_only,
    );
    println!("| fan-out: 50 alerts at once → all 50 analysed | {} | |", ms(fan));
    println!("| the host's Kubernetes API requests per run (audit log) | {per_run_requests:.1} | |");
}

/// Requests the host's ServiceAccount made (the apiserver's audit log has a line per stage:
/// counted once, at `ResponseComplete`, or `ResponseStarted` for a watch).
fn host_requests(audit: &str) -> usize {
    audit
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["user"]["username"] == "system:serviceaccount:euphrosyne:euphrosyne")
        .filter(|e| match e["verb"].as_str() {
            Some("watch") => e["stage"] == "ResponseStarted",
            _ => e["stage"] == "ResponseComplete",
        })
        .count()
}

/// Job name → (create request received, created), from the audit log.
fn job_creations(audit: &str) -> HashMap<String, (SystemTime, SystemTime)> {
    let time = |v: &serde_json::Value| humantime::parse_rfc3339(v.as_str().unwrap_or("")).unwrap();
    audit
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["verb"] == "create" && e["objectRef"]["resource"] == "jobs" && e["stage"] == "ResponseComplete")
        .filter_map(|e| {
            let name = e["objectRef"]["name"].as_str()?.to_string();
            Some((name, (time(&e["requestReceivedTimestamp"]), time(&e["stageTimestamp"]))))
        })
        .collect()
}

/// Run id → when its result was published (the stream entry id's milliseconds).
async fn publish_times(url: &str) -> HashMap<String, SystemTime> {
    let mut conn = ::redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let reply: ::redis::streams::StreamRangeReply = ::redis::cmd("XRANGE")
        .arg("bench:results")
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    reply
        .ids
        .into_iter()
        .filter_map(|e| {
            let ms: u64 = e.id.split('-').next()?.parse().ok()?;
            let run: String = e.get("run_id")?;
            Some((run, std::time::UNIX_EPOCH + Duration::from_millis(ms)))
        })
        .collect()
}
