//! The Kubernetes executor on the test cluster with its real node (`scripts/bench-kube`: a
//! kubelet with containerd and runc, the image `scripts/build-image` makes): per-run overhead of
//! a Job run and its parts (the cluster's: Job created → sandbox process started; the sandbox's:
//! process started → recipe running; the host's own), the sandbox process's CPU time and peak
//! memory, a fan-out of 50 (its runs' parts too), the host's API requests per run (from the
//! apiserver's audit log), and every bundled debugger once (peak memory and CPU per recipe).

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
    // The manifests as deployed (RBAC, the bundled recipes' ConfigMaps; the Deployments at 0).
    cp.apply_manifests();
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
    // The incident deadline well past any run here: a fan-out's slowest runs are measured, not
    // cut off.
    let start_host = |prefix: &str, key: Option<&str>, cpu_request: u32| {
        let config = format!(
            "executor = \"kube\"\nredis_prefix = \"{prefix}\"\nkubeconfig = \"{}\"\nmax_incidents = 1000\nincident_deadline_ms = 120000\n[kube]\nnamespace = \"{NS}\"\nimage = \"euphrosyne:latest\"\nimage_pull_policy = \"Never\"\ncpu_request_millicores = {cpu_request}",
            kubeconfig.display()
        );
        let mut env = vec![("EUPHROSYNE_REDIS_URL", redis.url())];
        env.extend(key.map(|k| ("EUPHROSYNE_ARTIFACT_KEY", k.to_string())));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Host::start_with_env(|_| {}, &config, &[], &env)
    };
    let idle = || {
        // The next phase starts on an idle node.
        kubectl(&["-n", NS, "delete", "jobs", "--all", "--wait=true"]);
        kubectl(&["-n", NS, "wait", "--for=delete", "pods", "--all", "--timeout=120s"]);
    };

    // Each sandbox compiles the recipe (no artifact key), then the host ships it precompiled;
    // then the fan-out once more with a smaller CPU request, so that all 50 pods fit the node.
    let mut one_by_one = vec![];
    let mut fans = vec![];
    for (prefix, key, cpu) in [
        ("compiling", None, 50),
        ("shipped", Some(ARTIFACT_KEY), 50),
        ("shipped-10m", Some(ARTIFACT_KEY), 10),
    ] {
        let host = start_host(prefix, key, cpu);
        host.wait_for("/api/status", |s| {
            s["recipes"].as_array().is_some_and(|r| r.len() > common::BUNDLED.len())
        })
        .await;
        if cpu == 50 {
            let audit_before = host_requests(&audit_log());
            let runs = sequential(&host, prefix, n).await;
            tokio::time::sleep(Duration::from_millis(500)).await; // the audit log flushes
            let audit = audit_log();
            let per_run_requests = (host_requests(&audit) - audit_before) as f64 / n as f64;
            let published = publish_times(&redis.url(), prefix).await;
            one_by_one.push((
                Measures::of(&runs, &job_creations(&audit), &published),
                per_run_requests,
            ));
        }
        let (took, runs) = fan_out(&host, prefix).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let published = publish_times(&redis.url(), prefix).await;
        fans.push((
            took,
            runs.len(),
            Measures::of(&runs, &job_creations(&audit_log()), &published),
        ));
        drop(host);
        idle();
    }

    let row = |what: &str, columns: &[&Vec<Duration>]| {
        let cells: Vec<String> = columns
            .iter()
            .map(|v| format!("{} | {}", ms(pct(v, 0.5)), ms(pct(v, 0.99))))
            .collect();
        println!("| {what} | {} |", cells.join(" | "));
    };
    let rows = |m: &[&Measures]| {
        let col = |f: fn(&Measures) -> &Vec<Duration>| m.iter().map(|x| f(x)).collect::<Vec<_>>();
        row("**Job created → result recorded**", &col(|m| &m.job_to_result));
        row(
            "the cluster's share: Job created → sandbox process started (Job controller, scheduler, kubelet, containerd, runc)",
            &col(|m| &m.cluster),
        );
        row("the sandbox process: started → result published", &col(|m| &m.process));
        row(
            "**sandbox start → recipe running** (runtime, Redis, engine, verify, compile or load, instantiate)",
            &col(|m| &m.startup),
        );
        row("of which compile (or load the shipped code)", &col(|m| &m.compile));
        row("the recipe's call", &col(|m| &m.call));
        row(
            "**the host's own share**: alert → Job create at the apiserver, + result published → recorded",
            &col(|m| &m.host_only),
        );
        row("the sandbox process's CPU time (user + system)", &col(|m| &m.cpu));
        let cells: Vec<String> = m
            .iter()
            .map(|x| format!("{} | {}", mib(pct(&x.rss, 0.5)), mib(pct(&x.rss, 0.99))))
            .collect();
        println!("| the sandbox process's peak resident memory | {} |", cells.join(" | "));
    };

    let [(a, req_a), (b, req_b)] = &one_by_one[..] else {
        unreachable!()
    };
    println!("| one run at a time | each sandbox compiles: p50 | p99 | precompiled, shipped sealed: p50 | p99 |");
    println!("|---|---|---|---|---|");
    row(
        &format!("alert → analysed, one Job run ({n} runs, one at a time)"),
        &[&a.e2e, &b.e2e],
    );
    rows(&[a, b]);
    println!("| the host's Kubernetes API requests per run (audit log) | {req_a:.1} | | {req_b:.1} | |");
    println!();
    println!(
        "| fan-out: 50 alerts at once | each sandbox compiles (CPU request 50m): p50 | p99 | shipped (50m): p50 | p99 | shipped (10m): p50 | p99 |"
    );
    println!("|---|---|---|---|---|---|---|");
    let cells: Vec<String> = fans
        .iter()
        .map(|(took, ok, _)| format!("{} ({ok} ok) | ", ms(*took)))
        .collect();
    println!("| **all 50 analysed** | {} |", cells.join(" | "));
    let fm: Vec<&Measures> = fans.iter().map(|(_, _, m)| m).collect();
    row(
        "alert → analysed, per run",
        &fm.iter().map(|m| &m.e2e).collect::<Vec<_>>(),
    );
    rows(&fm);

    // Every bundled debugger once, each from an example alert, on the shipped path: the sandbox
    // process's peak memory and CPU per recipe (what the Job's resources are sized from).
    let host = start_host("bundled", Some(ARTIFACT_KEY), 50);
    let examples = bundled_examples();
    let per_recipe = each_example(&host, &examples).await;
    drop(host);
    println!();
    println!(
        "| each bundled debugger, as a Job from its example alerts (runs) | peak resident memory: max | CPU time: max | sandbox start → recipe running: p50 |"
    );
    println!("|---|---|---|---|");
    for (recipe, m) in &per_recipe {
        println!(
            "| {recipe} ({}) | {} | {} | {} |",
            m.rss.len(),
            mib(*m.rss.last().unwrap()),
            ms(*m.cpu.last().unwrap()),
            ms(pct(&m.startup, 0.5))
        );
    }
    idle();
}

fn mib(d: Duration) -> String {
    // Peak memory travels as a "duration" of KiB-as-microseconds to share the percentile helper.
    format!("{:.1} MiB", d.as_micros() as f64 / 1024.0)
}

/// One run's timeline and what the sandbox process reported of itself.
struct Run {
    run_id: String,
    posted: SystemTime,
    recorded: SystemTime,
    process_start: SystemTime,
    startup: Duration,
    compile: Duration,
    call: Duration,
    cpu: Duration,
    /// KiB, as microseconds (see [`mib`]).
    rss: Duration,
}

impl Run {
    /// From a run as `/api/incidents/ID` shows it; `None` if no sandbox process reported on it
    /// (it never started, or died before publishing).
    fn of(run: &serde_json::Value, posted: SystemTime, recorded: SystemTime) -> Option<Run> {
        let t = &run["result"]["timings"];
        if t["process_start_unix_ms"].as_u64().unwrap_or(0) == 0 {
            eprintln!("no sandbox process reported: {run:#}");
            return None;
        }
        let field = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("no timings.{k} in {run:#}"));
        Some(Run {
            run_id: run["run_id"].as_str().unwrap().to_string(),
            posted,
            recorded,
            process_start: std::time::UNIX_EPOCH + Duration::from_millis(field("process_start_unix_ms")),
            startup: Duration::from_micros(field("startup_us")),
            compile: Duration::from_micros(field("compile_us")),
            call: Duration::from_micros(field("run_us")),
            cpu: Duration::from_micros(field("process_cpu_us")),
            rss: Duration::from_micros(field("process_peak_rss_kib")),
        })
    }
}

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
        runs.push(Run::of(run, posted, recorded).unwrap());
    }
    runs
}

/// 50 alerts at once, 50 Jobs: until all 50 are analysed; the runs that ended ok.
async fn fan_out(host: &Host, prefix: &str) -> (Duration, Vec<Run>) {
    let t0 = Instant::now();
    let posted = SystemTime::now();
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
    let mut seen: HashMap<String, SystemTime> = HashMap::new();
    let took = loop {
        let list = host.json("/api/incidents?state=analyzed").await;
        for i in list["incidents"].as_array().into_iter().flatten() {
            if i["group_key"].as_str().unwrap().starts_with(&fan) {
                seen.entry(i["id"].as_str().unwrap().to_string())
                    .or_insert_with(SystemTime::now);
            }
        }
        if seen.len() == 50 {
            break t0.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let mut runs = vec![];
    for (id, recorded) in seen {
        let full = host.json(&format!("/api/incidents/{id}")).await;
        let run = &full["incident"]["runs"][0];
        if run["status"] == "ok" {
            runs.extend(Run::of(run, posted, recorded));
        } else {
            eprintln!("fan-out run not ok: {run:#}");
        }
    }
    (took, runs)
}

/// The example alerts the bundled debuggers answer (all but `endpoint-down`, whose probe would
/// leave the machine).
fn bundled_examples() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(common::repo().join("examples/alerts"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".json").map(str::to_string))
        .filter(|n| n != "endpoint-down")
        .collect();
    names.sort();
    names
}

/// Post every example at once; the runs per recipe.
async fn each_example(host: &Host, names: &[String]) -> std::collections::BTreeMap<String, Measures> {
    let posted = SystemTime::now();
    for name in names {
        host.post_example(name).await;
    }
    let mut by_recipe: std::collections::BTreeMap<String, Vec<Run>> = Default::default();
    for name in names {
        let full = host.analysed_example(name).await;
        for run in full["incident"]["runs"].as_array().into_iter().flatten() {
            if let Some(r) = Run::of(run, posted, SystemTime::now()) {
                by_recipe
                    .entry(run["recipe"].as_str().unwrap().to_string())
                    .or_default()
                    .push(r);
            }
        }
    }
    by_recipe
        .into_iter()
        .map(|(recipe, runs)| (recipe, Measures::of(&runs, &HashMap::new(), &HashMap::new())))
        .collect()
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
    cpu: Vec<Duration>,
    rss: Vec<Duration>,
}

impl Measures {
    /// The runs' parts; those that need a Job's creation (from the audit log) or the result's
    /// publish time only for runs found in `created` and `published`.
    fn of(
        runs: &[Run],
        created: &HashMap<String, (SystemTime, SystemTime)>,
        published: &HashMap<String, SystemTime>,
    ) -> Measures {
        let mut m = Measures::default();
        let d = |a: SystemTime, b: SystemTime| b.duration_since(a).unwrap_or_default();
        for r in runs {
            m.e2e.push(d(r.posted, r.recorded));
            m.startup.push(r.startup);
            m.compile.push(r.compile);
            m.call.push(r.call);
            m.cpu.push(r.cpu);
            m.rss.push(r.rss);
            let (Some((received, done)), Some(publish)) = (
                created.get(&format!("euphrosyne-{}", r.run_id)),
                published.get(&r.run_id),
            ) else {
                continue;
            };
            m.process.push(d(r.process_start, *publish));
            m.job_to_result.push(d(*done, r.recorded));
            // The host's own share: alert → Job create request at the apiserver, and result
            // published → recorded (what remains is the cluster's and the sandbox process's).
            m.host_only.push(d(r.posted, *received) + d(*publish, r.recorded));
            // The cluster's: the Job controller, the scheduler, the kubelet, containerd and runc.
            m.cluster.push(d(*done, r.process_start));
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
            &mut m.cpu,
            &mut m.rss,
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
