//! Preview latency per actor on the test control plane (`scripts/bench-previews`): how long from
//! asking for a suggested action's preview to its diff (`POST /api/actions` with `"dry_run":
//! true`, measured by the client) — the actor run in the host's own process, impersonating the
//! recipe ServiceAccounts of `manifests/rbac.yaml`, every write `dryRun=All` and read back by the
//! host for its own diff. The first preview of each actor compiles its component (cold); the
//! rest find it compiled.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::cluster::ControlPlane;
use common::fixtures;
use common::host::{Host, alertmanager_body, pack_into};
use common::pct;
use serde_json::{Value, json};

const NS: &str = "euphrosyne";
const ROUNDS: usize = 20;

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let cp = ControlPlane::start().await;
    let client = cp.client.clone();
    let kubectl = |args: &[&str]| {
        let out = cp.kubectl(args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    kubectl(&["create", "namespace", NS]);
    let rbac = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/rbac.yaml");
    kubectl(&["apply", "-n", NS, "-f", rbac.to_str().unwrap()]);
    let pod = fixtures::deployment_with_history(&client, NS).await;
    fixtures::hpa(&client, NS).await;
    fixtures::bound_claim(&client, NS, "expandable", true).await;
    fixtures::node_with_pods(&client, NS, "worker-1").await;
    fixtures::failed_job(&client, NS, "report").await;

    let config = format!(
        "kubeconfig = \"{}\"\n[kube]\nnamespace = \"{NS}\"",
        cp.kubeconfig.display()
    );
    let host = Host::start(
        |dir| {
            for a in fixtures::ACTORS {
                pack_into(dir, a, |_| {});
            }
        },
        &config,
        &[],
    );
    let alert = alertmanager_body(
        "bench",
        "firing",
        json!({"alertname": "BenchPreview", "namespace": NS}),
        json!({}),
        common::firing_since(),
        "fp-bench",
    );
    host.post("/webhook", None).json(&alert).send().await.unwrap();
    let list = host
        .wait_for("/api/incidents", |v| {
            v["incidents"].as_array().is_some_and(|l| !l.is_empty())
        })
        .await;
    let id = list["incidents"][0]["id"].as_str().unwrap().to_string();
    let pod = pod.metadata.name.unwrap();
    let cases: Vec<(&str, Value)> = vec![
        (
            "raise-memory-limit",
            json!({"namespace": NS, "name": "api", "container": "api", "memory": "256Mi"}),
        ),
        ("rollback-deployment", json!({"namespace": NS, "name": "api"})),
        ("scale-workload", json!({"namespace": NS, "name": "api", "replicas": 3})),
        (
            "raise-hpa-max",
            json!({"namespace": NS, "name": "api", "max_replicas": 6}),
        ),
        (
            "expand-pvc",
            json!({"namespace": NS, "name": "data-expandable", "size": "2Gi"}),
        ),
        ("delete-pod", json!({"namespace": NS, "pod": pod})),
        ("drain-node", json!({"node": "worker-1"})),
        ("cordon-node", json!({"node": "worker-1"})),
        ("rerun-job", json!({"namespace": NS, "name": "report"})),
    ];
    println!("| action | first (compiles the actor) | p50 | p99 | writes per preview |");
    println!("|---|---|---|---|---|");
    for (action, params) in cases {
        let mut took = Vec::new();
        let mut writes = 0;
        for _ in 0..=ROUNDS {
            let t = Instant::now();
            let v = host.dry_run(&id, action, params.clone()).await;
            took.push(t.elapsed());
            // drain-node's preview reports the pod its disruption budget keeps: not `ok`, but a diff.
            assert!(v["diff"].as_array().is_some_and(|d| !d.is_empty()), "{action}: {v:#}");
            writes = v["writes"].as_array().map_or(0, Vec::len);
        }
        let first = took.remove(0);
        took.sort();
        println!(
            "| `{action}` | {} | {} | {} | {writes} |",
            ms(first),
            ms(pct(&took, 0.5)),
            ms(pct(&took, 0.99))
        );
    }
}
