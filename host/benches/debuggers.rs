//! Alert → analysis for a grouped incident of 20 pods (`scripts/bench-debuggers`): one
//! Alertmanager webhook naming 20 OOMKilled pods of one StatefulSet, analysed by the bundled
//! `pod-crashloop` (20 pods read with their events, grouped into one cause), on the test control
//! plane — in the host's own process, and as a sandbox Job on the real node (a kubelet with
//! containerd, as in the Kubernetes suite; the host's precompiled code shipped sealed), with the
//! sandbox process's peak memory and CPU time. The 20 pods are bound to a node that does not exist
//! (so no kubelet runs them) and their statuses written as a kubelet would.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::cluster::{ARTIFACT_KEY, ControlPlane, ok};
use common::fixtures::{create, set_status};
use common::host::{Host, pack_into};
use common::pct;
use common::redis::RedisServer;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use serde_json::{Value, json};

const NS: &str = "euphrosyne";
const PODS: usize = 20;
const ROUNDS: usize = 15;

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// One webhook: 20 KubePodCrashLooping alerts, one per pod, in one group.
fn grouped(group: &str) -> Value {
    let alerts: Vec<Value> = (0..PODS)
        .map(|i| {
            json!({"status": "firing", "labels": {"alertname": "KubePodCrashLooping", "namespace": NS, "pod": format!("web-{i}"),
                    "container": "web", "severity": "warning"},
                "annotations": {}, "startsAt": common::firing_since(), "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.test/graph", "fingerprint": format!("{group}-{i}")})
        })
        .collect();
    json!({"version": "4", "groupKey": group, "truncatedAlerts": 0, "status": "firing", "receiver": "euphrosyne",
        "groupLabels": {"namespace": NS}, "commonLabels": {"alertname": "KubePodCrashLooping", "namespace": NS},
        "commonAnnotations": {}, "externalURL": "http://alertmanager.test:9093", "alerts": alerts})
}

/// What `ROUNDS` rounds measured.
struct Rounds {
    /// Alert → analysed, the first round.
    first: Duration,
    /// Alert → analysed, the rounds after it, sorted.
    e2e: Vec<Duration>,
    /// The recipe's call, sorted.
    call: Vec<Duration>,
    /// In a sandbox process: its start → the recipe's call, sorted.
    startup: Vec<Duration>,
    /// The largest peak memory (KiB) and CPU time (µs) a sandbox process reported.
    rss: u64,
    cpu: u64,
}

/// Post `ROUNDS` grouped incidents one after the other, after a first one; each analysed before
/// the next.
async fn rounds(host: &Host, prefix: &str) -> Rounds {
    let mut r = Rounds {
        first: Duration::ZERO,
        e2e: vec![],
        call: vec![],
        startup: vec![],
        rss: 0,
        cpu: 0,
    };
    for i in 0..=ROUNDS {
        let group = format!("{prefix}-{i}");
        let t = Instant::now();
        host.post("/webhook", None).json(&grouped(&group)).send().await.unwrap();
        let id = loop {
            let list = host.json("/api/incidents?state=analyzed").await;
            if let Some(inc) = list["incidents"]
                .as_array()
                .and_then(|l| l.iter().find(|x| x["group_key"] == group.as_str()))
            {
                break inc["id"].as_str().unwrap().to_string();
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let took = t.elapsed();
        let inc = host.json(&format!("/api/incidents/{id}")).await;
        let summary = inc["incident"]["analysis"]["summary"].as_str().unwrap_or_default();
        assert!(
            summary.contains("20 pods of StatefulSet euphrosyne/web: container web OOMKilled"),
            "{inc:#}"
        );
        let t = &inc["incident"]["runs"][0]["result"]["timings"];
        r.rss = t["process_peak_rss_kib"].as_u64().unwrap_or(0).max(r.rss);
        r.cpu = t["process_cpu_us"].as_u64().unwrap_or(0).max(r.cpu);
        if i == 0 {
            r.first = took;
        } else {
            r.e2e.push(took);
            r.call.push(Duration::from_micros(t["run_us"].as_u64().unwrap_or(0)));
            r.startup
                .push(Duration::from_micros(t["startup_us"].as_u64().unwrap_or(0)));
        }
    }
    r.e2e.sort();
    r.call.sort();
    r.startup.sort();
    r
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let cp = ControlPlane::with_node(false).await;
    let node = cp.node.as_ref().unwrap();
    let redis = RedisServer::start_for_node(&node.gateway);
    ok(cp.kubectl(&["create", "namespace", NS]));
    cp.apply_manifests();
    cp.redis_secret_with_artifact_key(NS, &redis.url_at(&node.gateway));
    // StatefulSet `web`: 20 pods, each OOMKilled as the kubelet reports it.
    let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
        "spec": {"replicas": PODS, "serviceName": "web", "podManagementPolicy": "Parallel", "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"nodeName": "elsewhere", "containers": [
                     {"name": "web", "image": "shop/web:3", "resources": {"limits": {"memory": "128Mi"}}}]}}}});
    create(&cp.client, "apps/v1", "StatefulSet", Some(NS), sts).await;
    let pods: Api<Pod> = Api::namespaced(cp.client.clone(), NS);
    let t = Instant::now();
    while pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .len()
        < PODS
    {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the StatefulSet controller made too few pods"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..PODS {
        let status = json!({"phase": "Running", "containerStatuses": [{"name": "web", "image": "shop/web:3", "imageID": "",
            "ready": false, "restartCount": 6, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]});
        set_status(&cp.client, "v1", "Pod", NS, &format!("web-{i}"), status).await;
    }

    // In the host's own process (impersonating the recipe ServiceAccount).
    let config = format!(
        "kubeconfig = \"{}\"\n[kube]\nnamespace = \"{NS}\"",
        cp.kubeconfig.display()
    );
    let host = Host::start(|dir| pack_into(dir, "pod-crashloop", |_| {}), &config, &[]);
    let in_process = rounds(&host, "inproc").await;
    drop(host);

    // As a sandbox Job, the recipe from its ConfigMap, the host as its own ServiceAccount.
    let kubeconfig = cp.service_account_kubeconfig(NS, "euphrosyne").await;
    let config = format!(
        "executor = \"kube\"\nredis_prefix = \"bench\"\nkubeconfig = \"{}\"\n[kube]\nnamespace = \"{NS}\"\nimage = \"euphrosyne:latest\"\nimage_pull_policy = \"Never\"",
        kubeconfig.display()
    );
    let url = redis.url();
    let env = [
        ("EUPHROSYNE_REDIS_URL", url.as_str()),
        ("EUPHROSYNE_ARTIFACT_KEY", ARTIFACT_KEY),
    ];
    let host = Host::start_with_env(|_| {}, &config, &[], &env);
    let as_job = rounds(&host, "job").await;

    println!(
        "| alert → analysis, one incident of {PODS} pods (one webhook) | first | p50 | p99 | of which the recipe's call: p50 | sandbox start → recipe running: p50 |"
    );
    println!("|---|---|---|---|---|---|");
    for (what, r) in [("in the host's process", &in_process), ("as a sandbox Job", &as_job)] {
        println!(
            "| {what} ({ROUNDS} rounds after the first) | {} | {} | {} | {} | {} |",
            ms(r.first),
            ms(pct(&r.e2e, 0.5)),
            ms(pct(&r.e2e, 0.99)),
            ms(pct(&r.call, 0.5)),
            ms(pct(&r.startup, 0.5))
        );
    }
    println!();
    println!("| the sandbox process, as a Job (the largest of the rounds) | peak resident memory | CPU time |");
    println!("|---|---|---|");
    println!(
        "| pod-crashloop reading {PODS} pods | {:.1} MiB | {:.1} ms |",
        as_job.rss as f64 / 1024.0,
        as_job.cpu as f64 / 1000.0
    );
}
