//! The Kubernetes executor on the test cluster with its real node (`scripts/bench-kube`: a
//! kubelet with containerd and runc, the image `scripts/build-image` makes): per-run overhead of
//! a Job run and its parts (the cluster's: Job created → sandbox process started; the sandbox's:
//! process started → recipe running; the host's own), a fan-out of 50, and the host's API
//! requests per run (from the apiserver's audit log).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use common::cluster::{ARTIFACT_KEY, ControlPlane};
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
    cp.redis_secret_with_artifact_key(NS, &redis.url_at(&node.gateway));
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
    let n = 30;
    let audit_log = || std::fs::read_to_string(cp.dir.path().join("audit.log")).unwrap_or_default();

    // Each sandbox compiles the recipe (no artifact key), then the host ships it precompiled.
    let mut phases = vec![];
    for (prefix, key) in [("compiling", None), ("shipped", Some(ARTIFACT_KEY))] {
        let config = format!(
            "executor = \"kube\"\nredis_prefix = \"{prefix}\"\nkubeconfig = \"{}\"\nmax_incidents = 1000\n[kube]\nnamespace = \"{NS}\"\nimage = \"euphrosyne:latest\"\nimage_pull_policy = \"Never\"",
            kubeconfig.display()
        );
        let mut env = vec![("EUPHROSYNE_REDIS_URL", redis.url())];
        env.extend(key.map(|k| ("EUPHROSYNE_ARTIFACT_KEY", k.to_string())));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let host = Host::start_with_env(|_| {}, &config, &[], &env);
        host.wait_for("/api/status", |s| {
            s["recipes"].as_array().is_some_and(|r| !r.is_empty())
        })
        .await;
        let audit_before = host_requests(&audit_log());
        let runs = sequential(&host, prefix, n).await;
        tokio::time::sleep(Duration::from_millis(500)).await; // the audit log flushes
        let audit = audit_log();
        let per_run_requests = (host_requests(&audit) - audit_before) as f64 / n as f64;
        let published = publish_times(&redis.url(), prefix).await;
        let measures = Measures::of(&runs, &job_creations(&audit), &published);
        let fan = fan_out(&host, prefix).await;
        phases.push((prefix, measures, fan, per_run_requests));
        drop(host);
        // The next phase starts on an idle node.
        kubectl(&["-n", NS, "delete", "jobs", "--all", "--wait=true"]);
        kubectl(&["-n", NS, "wait", "--for=delete", "pods", "--all", "--timeout=120s"]);
    }

    println!("| measure | each sandbox compiles: p50 | p99 | precompiled, shipped sealed: p50 | p99 |");
    println!("|---|---|---|---|---|");
    let [(_, a, fan_a, req_a), (_, b, fan_b, req_b)] = &phases[..] else {
        unreachable!()
    };
    let row = |what: &str, f: fn(&Measures) -> &Vec<Duration>| {
        let (x, y) = (f(a), f(b));
        println!(
            "| {what} | {} | {} | {} | {} |",
            ms(pct(x, 0.5)),
            ms(pct(x, 0.99)),
            ms(pct(y, 0.5)),
            ms(pct(y, 0.99))
        );
    };
    row(
        &format!("alert → analysed, one Job run ({n} runs, one at a time)"),
        |m| &m.e2e,
    );
    row("**Job created → result recorded**", |m| &m.job_to_result);
    row(
        "the cluster's share: Job created → sandbox process started (Job controller, scheduler, kubelet, containerd, runc)",
        |m| &m.cluster,
    );
    row("the sandbox process: started → result published", |m| &m.process);
    row(
        "**sandbox start → recipe running** (runtime, Redis, engine, verify, compile or load, instantiate)",
        |m| &m.startup,
    );
    row("of which compile (or load the shipped code)", |m| &m.compile);
    row("the recipe's call", |m| &m.call);
    row(
        "**the host's own share**: alert → Job create at the apiserver, + result published → recorded",
        |m| &m.host_only,
    );
    println!(
        "| fan-out: 50 alerts at once → all 50 analysed | {} | | {} | |",
        ms(*fan_a),
        ms(*fan_b)
    );
    println!("| the host's Kubernetes API requests per run (audit log) | {req_a:.1} | | {req_b:.1} | |");
}

/// One run's timeline: (run id, alert posted, analysis recorded, sandbox process started,
/// startup, compile, the call).
type Run = (String, SystemTime, SystemTime, SystemTime, Duration, Duration, Duration);

/// `n` alerts, one at a time, each analysed before the next.
async fn sequential(host: &Host, prefix: &str, n: usize) -> Vec<Run> {
    let mut runs = Vec::new();
    for i in 0..n {
        let group = format!("{prefix}-seq-{i}");
        let posted = SystemTime::now();
        host.post("/webhook", None).json(&alert(&group)).send().await.unwrap();
        let inc = analysed(host, &group).await;
        let recorded = SystemTime::now();
        let id = inc["id"].as_str().unwrap();
        let full = host.json(&format!("/api/incidents/{id}")).await;
        let run = &full["incident"]["runs"][0];
        assert_eq!(run["status"], "ok", "{run:#}");
        let t = &run["result"]["timings"];
        let field = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("no timings.{k} in {run:#}"));
        runs.push((
            run["run_id"].as_str().unwrap().to_string(),
            posted,
            recorded,
            std::time::UNIX_EPOCH + Duration::from_millis(field("process_start_unix_ms")),
            Duration::from_micros(field("startup_us")),
            Duration::from_micros(field("compile_us")),
            Duration::from_micros(field("run_us")),
        ));
    }
    runs
}

/// 50 alerts at once, 50 Jobs: until all 50 are analysed.
async fn fan_out(host: &Host, prefix: &str) -> Duration {
    let t0 = Instant::now();
    let posts: Vec<_> = (0..50)
        .map(|i| {
            host.post("/webhook", None)
                .json(&alert(&format!("{prefix}-fan-{i}")))
                .send()
        })
        .collect();
    for p in posts {
        p.await.unwrap();
    }
    let fan = format!("{prefix}-fan-");
    loop {
        let list = host.json("/api/incidents?state=analyzed").await;
        let done = list["incidents"].as_array().map_or(0, |l| {
            l.iter()
                .filter(|i| i["group_key"].as_str().unwrap().starts_with(&fan))
                .count()
        });
        if done == 50 {
            return t0.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The sorted durations of a phase's runs.
#[derive(Default)]
struct Measures {
    e2e: Vec<Duration>,
    process: Vec<Duration>,
    job_to_result: Vec<Duration>,
    host_only: Vec<Duration>,
    cluster: Vec<Duration>,
    startup: Vec<Duration>,
    compile: Vec<Duration>,
    call: Vec<Duration>,
}

impl Measures {
    fn of(
        runs: &[Run],
        created: &HashMap<String, (SystemTime, SystemTime)>,
        published: &HashMap<String, SystemTime>,
    ) -> Measures {
        let mut m = Measures::default();
        for (run_id, posted, recorded, start, startup, compile, call) in runs {
            let (received, done) = created[&format!("euphrosyne-{run_id}")];
            let publish = published[run_id];
            let d = |a: SystemTime, b: SystemTime| b.duration_since(a).unwrap_or_default();
            m.e2e.push(d(*posted, *recorded));
            m.process.push(d(*start, publish));
            m.job_to_result.push(d(done, *recorded));
            // The host's own share: alert → Job create request at the apiserver, and result
            // published → recorded (what remains is the cluster's and the sandbox process's).
            m.host_only.push(d(*posted, received) + d(publish, *recorded));
            // The cluster's: the Job controller, the scheduler, the kubelet, containerd and runc.
            m.cluster.push(d(done, *start));
            m.startup.push(*startup);
            m.compile.push(*compile);
            m.call.push(*call);
        }
        for v in [
            &mut m.e2e,
            &mut m.process,
            &mut m.job_to_result,
            &mut m.host_only,
            &mut m.cluster,
            &mut m.startup,
            &mut m.compile,
            &mut m.call,
        ] {
            v.sort();
        }
        m
    }
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
async fn publish_times(url: &str, prefix: &str) -> HashMap<String, SystemTime> {
    let mut conn = ::redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let reply: ::redis::streams::StreamRangeReply = ::redis::cmd("XRANGE")
        .arg(format!("{prefix}:results"))
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
