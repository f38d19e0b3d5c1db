//! The bundled actors on a real control plane (`scripts/kube-up`: etcd, kube-apiserver with an
//! audit log, and the job, deployment, replicaset, statefulset and daemonset controllers), run
//! in-process by a real host that impersonates the recipe ServiceAccounts of `manifests/rbac.yaml`:
//!
//! - an OOMKilled pod of a Deployment whose ReplicaSets are the controller's own → `pod-crashloop`
//!   suggests `raise-memory-limit`; the host previews it by itself (dry run) and the incident
//!   shows "memory limit of container api in Deployment …: 128Mi → 256Mi", with the
//!   Deployment's `resourceVersion` unchanged and, in the apiserver's audit log, no write by a
//!   recipe that was not a dry run;
//! - the Deployment changes, then the preview is approved → the action ends `conflict`, writes
//!   nothing, and carries a fresh preview; approved again → applied, read back;
//! - every other actor, previewed (`POST /api/actions` with `"dry_run": true`: the object read
//!   back unchanged) then applied and read back: `rollback-deployment`, `scale-workload`,
//!   `raise-hpa-max`, `delete-pod`, `expand-pvc` (and its refusal when the StorageClass does not
//!   allow expansion), `drain-node` (a PodDisruptionBudget respected, reported) and
//!   `uncordon-node`, `rerun-job`;
//! - `POST /api/actions` for an action no actor implements answers 409 before anything is queued.

mod common;

use std::path::Path;

use common::cluster::{ControlPlane, ok};
use common::fixtures::{self, ACTORS, deployment_until, get, revision};
use common::host::*;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;
use kube::{Api, Client};
use serde_json::{Value, json};

const NS: &str = "euphrosyne";

fn rv(o: &Value) -> String {
    o["metadata"]["resourceVersion"].as_str().unwrap().to_string()
}

/// What a write could change: everything but `status` and the server's bookkeeping. (A
/// Deployment's `resourceVersion` also moves when its controller updates its status.)
fn desired(o: &Value) -> Value {
    json!({"spec": o["spec"], "labels": o["metadata"]["labels"], "annotations": o["metadata"]["annotations"]})
}

/// When the previews ran: no recipe write outside a dry run may fall inside these.
type Windows = std::sync::Mutex<Vec<(std::time::SystemTime, std::time::SystemTime)>>;

static PREVIEWS: Windows = std::sync::Mutex::new(Vec::new());

fn previewing<T>(started: std::time::SystemTime, out: T) -> T {
    PREVIEWS.lock().unwrap().push((started, std::time::SystemTime::now()));
    out
}

/// A preview, its time window remembered.
async fn preview(host: &Host, incident: &str, action: &str, params: Value) -> Value {
    let started = std::time::SystemTime::now();
    let v = host.dry_run(incident, action, params).await;
    previewing(started, v)
}

/// Approve as the operator and wait for the action to end; the action.
async fn apply(host: &Host, incident: &str, action: &str, params: Value) -> Value {
    let body = json!({"incident": incident, "action": action, "params": params, "approver": "olga"});
    let (_, id) = host.approve(OPERATOR, body).await;
    finished(host, &id).await
}

async fn finished(host: &Host, id: &str) -> Value {
    host.wait_for(&format!("/api/actions/{id}"), |a| {
        !matches!(a["status"].as_str(), Some("pending" | "running"))
    })
    .await
}

/// Writes by recipes (impersonated ServiceAccounts) in the audit log that were not dry runs:
/// when each was received, and what it was.
fn persisted_recipe_writes(cp: &ControlPlane) -> Vec<(std::time::SystemTime, String)> {
    let log = std::fs::read_to_string(cp.dir.path().join("audit.log")).unwrap_or_default();
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["stage"] == "ResponseComplete")
        .filter(|e| matches!(e["verb"].as_str(), Some("create" | "update" | "patch" | "delete")))
        .filter(|e| {
            e["impersonatedUser"]["username"]
                .as_str()
                .is_some_and(|u| u.contains("euphrosyne-recipe-"))
        })
        .filter(|e| !e["requestURI"].as_str().unwrap_or_default().contains("dryRun=All"))
        // A DELETE carries its dry run in its body (DeleteOptions).
        .filter(|e| {
            !e["requestObject"]["dryRun"]
                .as_array()
                .is_some_and(|d| d.iter().any(|v| v == "All"))
        })
        .map(|e| {
            let at = humantime::parse_rfc3339(e["requestReceivedTimestamp"].as_str().unwrap()).unwrap();
            (at, format!("{} {}", e["verb"], e["requestURI"]))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actors_preview_apply_and_detect_conflicts_on_a_real_apiserver() {
    let cp = ControlPlane::start_with_request_audit().await;
    let client = cp.client.clone();
    ok(cp.kubectl(&["create", "namespace", NS]));
    let rbac = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/rbac.yaml");
    ok(cp.kubectl(&["apply", "-n", NS, "-f", rbac.to_str().unwrap()]));
    // rerun-job creates Jobs; the manifests grant that nowhere (in the host's namespace a Job
    // could run as the host). The workloads of this test live in the host's namespace, so the
    // test binds it here, as an operator would in an application's namespace.
    ok(cp.kubectl(&[
        "-n",
        NS,
        "create",
        "role",
        "rerun-jobs",
        "--verb=create",
        "--resource=jobs.batch",
    ]));
    let writer = format!("--serviceaccount={NS}:euphrosyne-recipe-writer");
    ok(cp.kubectl(&[
        "-n",
        NS,
        "create",
        "rolebinding",
        "rerun-jobs",
        "--role=rerun-jobs",
        &writer,
    ]));
    let oom = fixtures::deployment_with_history(&client, NS).await;

    let config = format!(
        "kubeconfig = \"{}\"\n[kube]\nnamespace = \"{NS}\"",
        cp.kubeconfig.display()
    );
    let host = Host::start(
        |dir| {
            pack_into(dir, "pod-crashloop", |_| {});
            for a in ACTORS {
                pack_into(dir, a, |_| {});
            }
        },
        &config,
        &[],
    );
    let status = host.json("/api/status").await;
    assert_eq!(status["recipe_errors"], json!([]), "{status:#}");
    // open-ticket and restart-workload are not installed here, and pod-crashloop may suggest them.
    let dangling: Vec<&str> = status["dangling_actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["action"].as_str().unwrap())
        .collect();
    assert_eq!(dangling, ["open-ticket", "restart-workload"], "{status:#}");

    // 1. The alert → analysis → the suggested action previewed by the host itself.
    let before = get(&client, "apps/v1", "Deployment", Some(NS), "api").await;
    let pod = oom.metadata.name.clone().unwrap();
    let alerted = std::time::SystemTime::now();
    let alert = alertmanager_body(
        "g-oom",
        "firing",
        json!({"alertname": "KubePodCrashLooping", "namespace": NS, "pod": pod, "container": "api"}),
        json!({}),
        common::firing_since(),
        "fp-oom",
    );
    let id = host.open_incident(&alert).await;
    let inc = host
        .wait_for(&format!("/api/incidents/{id}"), |v| {
            v["incident"]["state"] == "analyzed"
        })
        .await;
    let inc = previewing(alerted, inc);
    let actions = inc["incident"]["analysis"]["actions"].as_array().unwrap().clone();
    let raise = actions
        .iter()
        .find(|a| a["action"] == "raise-memory-limit")
        .unwrap_or_else(|| panic!("{inc:#}"));
    assert_eq!(raise["actor"], "raise-limit", "{raise:#}");
    let p = &raise["preview"];
    assert_eq!(p["ok"], true, "{raise:#}");
    assert_eq!(p["changes"][0]["description"], "memory limit of container api", "{p:#}");
    let line = format!("memory limit of container api in Deployment {NS}/api: 128Mi → 256Mi");
    let log = serde_json::to_string(&inc["incident"]["events"]).unwrap();
    assert!(log.contains(&line), "the event log shows the diff: {log}");
    assert_eq!(p["writes"][0]["dryRun"], true, "{p:#}");
    assert!(
        p["writes"][0]["resourceVersion"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{p:#}"
    );
    let after_preview = get(&client, "apps/v1", "Deployment", Some(NS), "api").await;
    assert_eq!(desired(&after_preview), desired(&before), "a preview changes nothing");
    assert_eq!(
        persisted_recipe_writes(&cp),
        vec![],
        "the audit log shows no write that was not a dry run"
    );

    // 2. Someone changes the Deployment; approving the old preview ends `conflict`, writes
    //    nothing, and comes back with a fresh preview.
    ok(cp.kubectl(&["-n", NS, "annotate", "deployment", "api", "team=payments"]));
    let suggestion = raise["id"].as_str().unwrap();
    let body = json!({"incident": id, "action": suggestion, "approver": "alice"});
    let (code, action_id) = host.approve(APPROVER, body.clone()).await;
    assert_eq!(code, 202);
    let a = finished(&host, &action_id).await;
    assert_eq!(a["status"], "conflict", "{a:#}");
    assert_eq!(a["fresh_preview"]["ok"], true, "{a:#}");
    let now = get(&client, "apps/v1", "Deployment", Some(NS), "api").await;
    let limits =
        |d: &Value, c: usize| d["spec"]["template"]["spec"]["containers"][c]["resources"]["limits"]["memory"].clone();
    assert_eq!(limits(&now, 0), "128Mi", "nothing was written over the other change");
    assert_eq!(now["metadata"]["annotations"]["team"], "payments");
    // Approved again, against the fresh preview: applied, and read back.
    let (code, retry) = host.approve(APPROVER, body).await;
    assert_eq!(code, 202);
    assert_eq!(retry, format!("{action_id}-2"));
    let a = finished(&host, &retry).await;
    assert_eq!(a["status"], "succeeded", "{a:#}");
    let now = get(&client, "apps/v1", "Deployment", Some(NS), "api").await;
    assert_eq!(limits(&now, 0), "256Mi");
    assert_eq!(limits(&now, 1), "64Mi", "the other container is kept");
    assert_eq!(now["metadata"]["annotations"]["team"], "payments");

    // 3. rollback-deployment: back to revision 3's predecessor (shop:2 at 128Mi).
    deployment_until(&client, NS, "reached revision 3", |d| revision(d) == Some("3")).await;
    let target = json!({"namespace": NS, "kind": "Deployment", "name": "api"});
    let before = get(&client, "apps/v1", "Deployment", Some(NS), "api").await;
    let v = preview(&host, &id, "rollback-deployment", target.clone()).await;
    assert_eq!(v["ok"], true, "{v:#}");
    assert!(v["diff"].to_string().contains("256Mi → 128Mi"), "{v:#}");
    assert_eq!(
        desired(&get(&client, "apps/v1", "Deployment", Some(NS), "api").await),
        desired(&before)
    );
    let a = apply(&host, &id, "rollback-deployment", target).await;
    assert_eq!(a["status"], "succeeded", "{a:#}");
    let now = get(&client, "apps/v1", "Deployment", Some(NS), "api").await;
    assert_eq!(limits(&now, 0), "128Mi");
    assert_eq!(now["spec"]["template"]["spec"]["containers"][0]["image"], "shop:2");

    // 4. scale-workload through the scale subresource. First the deployment controller records
    //    the rollback as revision 4 on the Deployment, in its own time: a change made after
    //    `before` below would be blamed on the preview.
    deployment_until(&client, NS, "recorded the rollback as revision 4", |d| {
        revision(d) == Some("4")
    })
    .await;
    let params = json!({"namespace": NS, "name": "api", "replicas": 3});
    let before = get(&client, "apps/v1", "Deployment", Some(NS), "api").await;
    let v = preview(&host, &id, "scale-workload", params.clone()).await;
    assert_eq!(v["diff"][0], format!("replicas in Deployment {NS}/api: 1 → 3"), "{v:#}");
    assert_eq!(
        desired(&get(&client, "apps/v1", "Deployment", Some(NS), "api").await),
        desired(&before)
    );
    assert_eq!(apply(&host, &id, "scale-workload", params).await["status"], "succeeded");
    assert_eq!(
        get(&client, "apps/v1", "Deployment", Some(NS), "api").await["spec"]["replicas"],
        3
    );

    // 5. raise-hpa-max (no HPA controller runs here: its resourceVersion stands still).
    let hpa_before = fixtures::hpa(&client, NS).await;
    let params = json!({"namespace": NS, "name": "api", "max_replicas": 6});
    let v = preview(&host, &id, "raise-hpa-max", params.clone()).await;
    assert!(v["diff"][0].as_str().unwrap().ends_with(": 4 → 6"), "{v:#}");
    let hpa_now = get(&client, "autoscaling/v1", "HorizontalPodAutoscaler", Some(NS), "api").await;
    assert_eq!(rv(&hpa_now), rv(&hpa_before), "a preview changes nothing");
    assert_eq!(apply(&host, &id, "raise-hpa-max", params).await["status"], "succeeded");
    let hpa_now = get(&client, "autoscaling/v1", "HorizontalPodAutoscaler", Some(NS), "api").await;
    assert_eq!(hpa_now["spec"]["maxReplicas"], 6);

    // 6. delete-pod: a pod the ReplicaSet controller made (the rollouts above replaced the
    //    OOMKilled one).
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let live = pods.list(&ListParams::default().labels("app=api")).await.unwrap().items;
    let victim = live
        .iter()
        .find(|p| p.metadata.deletion_timestamp.is_none())
        .and_then(|p| p.metadata.name.clone())
        .expect("a live pod of Deployment api");
    let params = json!({"namespace": NS, "pod": victim});
    let v = preview(&host, &id, "delete-pod", params.clone()).await;
    assert_eq!(v["ok"], true, "{v:#}");
    assert!(
        pods.get(&victim).await.unwrap().metadata.deletion_timestamp.is_none(),
        "a preview deletes nothing"
    );
    assert_eq!(apply(&host, &id, "delete-pod", params).await["status"], "succeeded");
    assert!(
        pods.get_opt(&victim)
            .await
            .unwrap()
            .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
    );

    expand_pvc(&client, &host, &id).await;
    drain_and_uncordon(&client, &host, &id).await;
    rerun_job(&client, &host, &id).await;

    // Every write a recipe made that was not a dry run came from an approved action, none
    // while a preview ran (the audit log's receive times against the previews' windows).
    let writes = persisted_recipe_writes(&cp);
    assert!(writes.len() >= 8, "the applied actions wrote: {writes:?}");
    for (at, what) in &writes {
        let during = PREVIEWS.lock().unwrap().iter().any(|(a, b)| a <= at && at <= b);
        assert!(!during, "a recipe wrote during a preview: {what}");
    }

    // 7. An action no installed actor implements is refused before anything is queued.
    let body = json!({"incident": id, "action": "open-ticket", "params": {}, "approver": "olga"});
    let r = host
        .post("/api/actions", Some(OPERATOR))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let text = r.text().await.unwrap();
    assert!(text.contains("no action recipe implements `open-ticket`"), "{text}");
}

async fn expand_pvc(client: &Client, host: &Host, id: &str) {
    fixtures::bound_claim(client, NS, "expandable", true).await;
    fixtures::bound_claim(client, NS, "fixed", false).await;
    let params = json!({"namespace": NS, "name": "data-expandable", "size": "2Gi"});
    let before = get(client, "v1", "PersistentVolumeClaim", Some(NS), "data-expandable").await;
    let v = preview(host, id, "expand-pvc", params.clone()).await;
    assert_eq!(v["ok"], true, "{v:#}");
    let storage = |p: Value| p["spec"]["resources"]["requests"]["storage"].clone();
    let now = get(client, "v1", "PersistentVolumeClaim", Some(NS), "data-expandable").await;
    assert_eq!(rv(&now), rv(&before), "a preview changes nothing");
    assert_eq!(storage(now), "1Gi");
    let a = apply(host, id, "expand-pvc", params).await;
    assert_eq!(a["status"], "succeeded", "{a:#}");
    assert_eq!(
        storage(get(client, "v1", "PersistentVolumeClaim", Some(NS), "data-expandable").await),
        "2Gi"
    );
    let a = apply(
        host,
        id,
        "expand-pvc",
        json!({"namespace": NS, "name": "data-fixed", "size": "2Gi"}),
    )
    .await;
    assert_eq!(a["status"], "failed");
    let summary = a["result"]["outcome"]["summary"].as_str().unwrap();
    assert!(summary.contains("does not allow volume expansion"), "{summary}");
}

async fn drain_and_uncordon(client: &Client, host: &Host, id: &str) {
    fixtures::node_with_pods(client, NS, "worker-1").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let params = json!({"node": "worker-1"});
    let v = preview(host, id, "drain-node", params.clone()).await;
    assert!(v["summary"].as_str().unwrap().starts_with("would drain"), "{v:#}");
    let nodes: Api<Node> = Api::all(client.clone());
    let unschedulable = |n: Node| n.spec.and_then(|s| s.unschedulable).unwrap_or(false);
    assert!(
        !unschedulable(nodes.get("worker-1").await.unwrap()),
        "a preview cordons nothing"
    );
    assert!(
        pods.get("free-1").await.unwrap().metadata.deletion_timestamp.is_none(),
        "a preview evicts nothing"
    );
    let a = apply(host, id, "drain-node", params).await;
    let details = a["result"]["outcome"]["details"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(a["status"], "failed", "the budget kept one pod: {a:#}");
    assert!(details.contains(&format!("not evicted: {NS}/guarded-1")), "{details}");
    assert!(unschedulable(nodes.get("worker-1").await.unwrap()));
    assert!(
        pods.get_opt("free-1")
            .await
            .unwrap()
            .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
    );
    assert!(
        pods.get("guarded-1")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
    );
    let a = apply(host, id, "uncordon-node", json!({"node": "worker-1"})).await;
    assert_eq!(a["status"], "succeeded", "{a:#}");
    assert!(!unschedulable(nodes.get("worker-1").await.unwrap()));
}

async fn rerun_job(client: &Client, host: &Host, id: &str) {
    fixtures::failed_job(client, NS, "report").await;
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(client.clone(), NS);
    let params = json!({"namespace": NS, "name": "report"});
    let v = preview(host, id, "rerun-job", params.clone()).await;
    assert_eq!(v["ok"], true, "{v:#}");
    assert!(
        jobs.get_opt("report-rerun-1").await.unwrap().is_none(),
        "a preview creates nothing"
    );
    let a = apply(host, id, "rerun-job", params).await;
    assert_eq!(a["status"], "succeeded", "{a:#}");
    let rerun = get(client, "batch/v1", "Job", Some(NS), "report-rerun-1").await;
    assert_eq!(rerun["spec"]["template"]["spec"]["containers"][0]["image"], "report:1");
    assert_eq!(rerun["metadata"]["labels"]["team"], "data");
    assert_eq!(rerun["metadata"]["annotations"]["euphrosyne.io/rerun-of"], "report");
}
