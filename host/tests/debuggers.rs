//! The bundled debuggers on a real control plane (`scripts/kube-up`: etcd, kube-apiserver and
//! the job, deployment, replicaset, statefulset and daemonset controllers), run in-process by a
//! real host that impersonates the recipe ServiceAccounts of `manifests/rbac.yaml`.
//!
//! The test builds one world the way the controllers and the kubelet leave it — a StatefulSet
//! whose pods are OOMKilled, a pod waiting for a missing ConfigMap, a Deployment whose new
//! revision cannot pull its image while the old one runs, a StatefulSet with `OnDelete` updates,
//! a DaemonSet whose pods do not schedule, a failed Job and a Job that does not complete, a
//! claim filling up, a failed PersistentVolume, autoscalers, a quota, and two nodes — then posts
//! every example in `examples/alerts/` to `/webhook` as Alertmanager would and checks that each
//! analysis names the cause and suggests the action a bundled actor implements (or none, and
//! says why) — and runs `euphrosyne recipe run` on each file with the same expectations.

mod common;

use std::path::Path;
use std::time::Duration;

use common::cluster::{ControlPlane, ok};
use common::fixtures::{self, create, set_status};
use common::host::*;
use common::until;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const NS: &str = "euphrosyne";
/// How long the controllers may take to act on what a test made.
const CONTROLLERS: Duration = Duration::from_secs(60);

/// Example file → (what the summary must say, the first suggested action, if any).
const EXPECTED: &[(&str, &str, Option<&str>)] = &[
    (
        "KubePodCrashLooping",
        "3 pods of StatefulSet shop/web: container web OOMKilled at its 128Mi memory limit",
        Some("raise-memory-limit"),
    ),
    (
        "KubePodNotReady",
        "pod shop/web-0 of StatefulSet shop/web: container web OOMKilled",
        Some("raise-memory-limit"),
    ),
    (
        "KubeContainerWaiting",
        "container cfg cannot start: configmap \"cfg-settings\" not found",
        Some("open-ticket"),
    ),
    (
        "KubeDeploymentReplicasMismatch",
        "cannot pull image registry.example.com/shop/api:v2",
        Some("rollback-deployment"),
    ),
    (
        "KubeDeploymentRolloutStuck",
        "pods of the new revision 2 fail while 2 pods of the previous revision run",
        Some("rollback-deployment"),
    ),
    (
        "KubeDeploymentGenerationMismatch",
        "from registry.example.com (ImagePullBackOff)",
        Some("rollback-deployment"),
    ),
    (
        "KubeStatefulSetReplicasMismatch",
        "update strategy OnDelete: 2 pods still run the old revision",
        Some("delete-pod"),
    ),
    (
        "KubeStatefulSetUpdateNotRolledOut",
        "update strategy OnDelete",
        Some("delete-pod"),
    ),
    (
        "KubeDaemonSetRolloutStuck",
        "1 pod of revision 1: unschedulable: 0/2 nodes are available: 1 Insufficient cpu",
        None,
    ),
    ("KubeDaemonSetNotScheduled", "DaemonSet shop/agent: ", None),
    ("KubeDaemonSetMisScheduled", "DaemonSet shop/agent: ", None),
    (
        "KubeJobFailed",
        "Job shop/report failed: BackoffLimitExceeded",
        Some("open-ticket"),
    ),
    (
        "KubeJobNotCompleted",
        "Job shop/backfill has not completed: 1 active; 1 pod: unschedulable: 0/2 nodes are available",
        Some("open-ticket"),
    ),
    (
        "KubePersistentVolumeFillingUp",
        "PersistentVolumeClaim shop/data-fast (1Gi) is running out of space; StorageClass fast allows expansion to 2Gi",
        Some("expand-pvc"),
    ),
    (
        "KubePersistentVolumeInodesFillingUp",
        "is running out of inodes",
        Some("expand-pvc"),
    ),
    (
        "KubePersistentVolumeErrors",
        "PersistentVolume pv-failed is Failed: Recycle failed: no volume plugin matched",
        Some("open-ticket"),
    ),
    (
        "KubeHpaMaxedOut",
        "HorizontalPodAutoscaler shop/api has run at its maximum of 4 replicas",
        Some("raise-hpa-max"),
    ),
    (
        "KubeHpaReplicasMismatch",
        "cannot scale: the HPA was unable to compute the replica count: missing request for cpu",
        None,
    ),
    (
        "CPUThrottlingHigh",
        "pod shop/web-0: container web is throttled at its CPU limit 500m (request 250m)",
        Some("raise-cpu-limit"),
    ),
    (
        "KubeQuotaAlmostFull",
        "ResourceQuota data/compute: requests.cpu 1900m of 2 used (95%); most used by StatefulSet data/etl 1500m",
        Some("open-ticket"),
    ),
    (
        "KubeQuotaFullyUsed",
        "requests.cpu 1900m of 2 used",
        Some("open-ticket"),
    ),
    (
        "KubeQuotaExceeded",
        "most used by StatefulSet data/etl 1500m, Deployment data/loader 400m",
        Some("open-ticket"),
    ),
    (
        "KubeNodeNotReady",
        "node worker-2: not Ready (False), DiskPressure",
        Some("cordon-node"),
    ),
    (
        "KubeNodeUnreachable",
        "node worker-2: not Ready (False)",
        Some("cordon-node"),
    ),
    (
        "KubeNodeReadinessFlapping",
        "node worker-1: Ready now but flapping",
        Some("cordon-node"),
    ),
    ("KubeNodePressure", "DiskPressure", Some("cordon-node")),
    (
        "KubeletTooManyPods",
        "node worker-1: runs 3 of its 3 allocatable pods",
        Some("cordon-node"),
    ),
    (
        "NodeFilesystemSpaceFillingUp",
        "node worker-1: filesystem /var/lib/containerd (/dev/sda1) filling up",
        Some("cordon-node"),
    ),
    (
        "NodeFilesystemAlmostOutOfSpace",
        "filesystem /var/lib/containerd",
        Some("cordon-node"),
    ),
];

/// The pods matching `selector` once there are `n`, by name.
async fn pods(client: &Client, ns: &str, selector: &str, n: usize) -> Vec<String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    until(&format!("{n} pods {selector} in {ns}"), CONTROLLERS, || async {
        let list = api.list(&ListParams::default().labels(selector)).await.ok()?;
        let mut names: Vec<String> = list.items.into_iter().filter_map(|p| p.metadata.name).collect();
        names.sort();
        (names.len() >= n).then_some(names)
    })
    .await
}

fn running(container: &str, image: &str) -> Value {
    json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": container, "image": image, "imageID": "", "ready": true, "restartCount": 0,
            "state": {"running": {"startedAt": common::ago(600)}}}]})
}

fn unschedulable(message: &str) -> Value {
    json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": message, "lastProbeTime": null, "lastTransitionTime": common::ago(60)}]})
}

/// Set a pod's status as the kubelet (or, when pending, the scheduler) writes it.
async fn pod_status(client: &Client, ns: &str, name: &str, status: Value) {
    set_status(client, "v1", "Pod", ns, name, status).await;
}

/// A core/v1 Event about a pod, as the kubelet records it.
async fn event(client: &Client, ns: &str, pod: &str, reason: &str, message: &str) {
    let e = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": format!("{pod}.{}", reason.to_lowercase())},
        "involvedObject": {"kind": "Pod", "name": pod, "namespace": ns, "apiVersion": "v1"},
        "reason": reason, "message": message, "type": "Warning", "count": 3,
        "firstTimestamp": common::ago(300), "lastTimestamp": common::ago(10), "source": {"component": "kubelet"}});
    create(client, "v1", "Event", Some(ns), e).await;
}

/// Create workload `kind`/`name` in `ns` with one container, `replicas` (not for a DaemonSet)
/// and more `spec` fields; its controller makes the pods.
async fn create_workload(
    client: &Client,
    ns: &str,
    kind: &str,
    name: &str,
    replicas: u32,
    spec_extra: Value,
    container: Value,
) {
    create(
        client,
        "apps/v1",
        kind,
        Some(ns),
        workload(kind, name, replicas, spec_extra, container),
    )
    .await;
}

fn workload(kind: &str, name: &str, replicas: u32, spec_extra: Value, container: Value) -> Value {
    let mut spec = json!({"selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}});
    if kind != "DaemonSet" {
        spec["replicas"] = json!(replicas);
    }
    for (k, v) in spec_extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": spec})
}

/// Pods of the StatefulSet `web` OOMKilled (the kubelet's status), and `cfg-0` waiting for a
/// ConfigMap that does not exist.
async fn pods_world(client: &Client) {
    let web = json!({"name": "web", "image": "shop/web:3",
        "resources": {"limits": {"memory": "128Mi", "cpu": "500m"}, "requests": {"cpu": "250m"}}});
    let parallel = json!({"podManagementPolicy": "Parallel", "serviceName": "web"});
    create_workload(client, "shop", "StatefulSet", "web", 3, parallel.clone(), web).await;
    for name in pods(client, "shop", "app=web", 3).await {
        let status = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}], "containerStatuses": [
            {"name": "web", "image": "shop/web:3", "imageID": "", "ready": false, "restartCount": 6,
             "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}},
             "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": common::ago(120), "finishedAt": common::ago(100)}}}]});
        pod_status(client, "shop", &name, status).await;
    }
    let cfg = json!({"name": "cfg", "image": "shop/cfg:1", "envFrom": [{"configMapRef": {"name": "cfg-settings"}}]});
    create_workload(client, "shop", "StatefulSet", "cfg", 1, parallel, cfg).await;
    pods(client, "shop", "app=cfg", 1).await;
    let waiting = json!({"phase": "Pending", "containerStatuses": [{"name": "cfg", "image": "shop/cfg:1", "imageID": "",
        "ready": false, "restartCount": 0,
        "state": {"waiting": {"reason": "CreateContainerConfigError", "message": "configmap \"cfg-settings\" not found"}}}]});
    pod_status(client, "shop", "cfg-0", waiting).await;
}

/// Deployment `api`: revision 1 runs (2 pods ready); revision 2's pod cannot pull its image.
async fn deployment_world(client: &Client) {
    let api = json!({"name": "api", "image": "registry.example.com/shop/api:v1"});
    create_workload(client, "shop", "Deployment", "api", 2, json!({}), api).await;
    for name in pods(client, "shop", "app=api", 2).await {
        pod_status(
            client,
            "shop",
            &name,
            running("api", "registry.example.com/shop/api:v1"),
        )
        .await;
    }
    let v2 = json!({"spec": {"template": {"spec": {"containers": [{"name": "api", "image": "registry.example.com/shop/api:v2"}]}}}});
    let deployments = fixtures::api(client, "apps/v1", "Deployment", Some("shop"));
    deployments
        .patch("api", &PatchParams::default(), &Patch::Strategic(v2))
        .await
        .unwrap();
    let all = pods(client, "shop", "app=api", 3).await;
    let podapi: Api<Pod> = Api::namespaced(client.clone(), "shop");
    for name in all {
        let p = podapi.get(&name).await.unwrap();
        if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
            continue;
        }
        let status = json!({"phase": "Pending", "containerStatuses": [{"name": "api", "image": "registry.example.com/shop/api:v2",
            "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"registry.example.com/shop/api:v2\""}}}]});
        pod_status(client, "shop", &name, status).await;
        let failed = "Failed to pull image \"registry.example.com/shop/api:v2\": rpc error: code = NotFound desc = failed to resolve reference \"registry.example.com/shop/api:v2\": registry.example.com/shop/api:v2: not found";
        event(client, "shop", &name, "Failed", failed).await;
    }
}

/// StatefulSet `db` (OnDelete) after a template change; DaemonSet `agent`, whose pods the
/// scheduler cannot place.
async fn rollout_world(cp: &ControlPlane) {
    let client = &cp.client;
    let db = json!({"name": "db", "image": "postgres:15"});
    let spec = json!({"podManagementPolicy": "Parallel", "serviceName": "db", "updateStrategy": {"type": "OnDelete"}});
    create_workload(client, "shop", "StatefulSet", "db", 2, spec, db).await;
    for name in pods(client, "shop", "app=db", 2).await {
        pod_status(client, "shop", &name, running("db", "postgres:15")).await;
    }
    ok(cp.kubectl(&["-n", "shop", "set", "image", "statefulset/db", "db=postgres:16"]));
    let sts = fixtures::api(client, "apps/v1", "StatefulSet", Some("shop"));
    until(
        "the StatefulSet controller records the update revision",
        CONTROLLERS,
        || async {
            let s = serde_json::to_value(sts.get("db").await.ok()?).ok()?;
            (s["status"]["updateRevision"].is_string()
                && s["status"]["updateRevision"] != s["status"]["currentRevision"])
                .then_some(())
        },
    )
    .await;
    let agent = json!({"name": "agent", "image": "agent:1", "resources": {"requests": {"cpu": "1"}}});
    create_workload(client, "shop", "DaemonSet", "agent", 0, json!({}), agent).await;
    // One pod: worker-2 keeps its not-ready taint, which DaemonSet pods do not tolerate.
    let said = "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had taint {node.kubernetes.io/not-ready: }, that the pod didn't tolerate.";
    for name in pods(client, "shop", "app=agent", 1).await {
        pod_status(client, "shop", &name, unschedulable(said)).await;
    }
}

/// Job `report`, failed with its pod's exit code; Job `backfill`, whose pod does not schedule.
async fn jobs_world(client: &Client) {
    fixtures::failed_job(client, "shop", "report").await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "report-x7k2p", "labels": {"job-name": "report"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "report", "image": "report:1"}]}});
    create(client, "v1", "Pod", Some("shop"), pod).await;
    let failed = json!({"phase": "Failed", "containerStatuses": [{"name": "report", "image": "report:1", "imageID": "",
        "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 2, "reason": "Error", "startedAt": common::ago(90), "finishedAt": common::ago(80)}}}]});
    pod_status(client, "shop", "report-x7k2p", failed).await;
    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "backfill"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "b", "image": "backfill:1"}]}}}});
    create(client, "batch/v1", "Job", Some("shop"), job).await;
    for name in pods(client, "shop", "job-name=backfill", 1).await {
        pod_status(
            client,
            "shop",
            &name,
            unschedulable(
                "0/2 nodes are available: 2 node(s) had taint {dedicated: batch}, that the pod didn't tolerate.",
            ),
        )
        .await;
    }
    let jobs = fixtures::api(client, "batch/v1", "Job", Some("shop"));
    until(
        "the Job controller counts backfill's pod active",
        CONTROLLERS,
        || async {
            let j = serde_json::to_value(jobs.get("backfill").await.ok()?).ok()?;
            (j["status"]["active"] == 1).then_some(())
        },
    )
    .await;
}

/// Claim `data-fast` (expandable class), a failed PersistentVolume, two autoscalers, and a
/// quota in `data` with the workloads that use it.
async fn capacity_world(client: &Client) {
    fixtures::bound_claim(client, "shop", "fast", true).await;
    let pv = json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-failed"},
        "spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Recycle",
                 "hostPath": {"path": "/tmp/pv-failed"}, "claimRef": {"namespace": "shop", "name": "old-data"}}});
    create(client, "v1", "PersistentVolume", None, pv).await;
    let failed = json!({"status": {"phase": "Failed", "message": "Recycle failed: no volume plugin matched"}});
    let pvs = fixtures::api(client, "v1", "PersistentVolume", None);
    pvs.patch_status("pv-failed", &PatchParams::default(), &Patch::Merge(failed))
        .await
        .unwrap();
    fixtures::hpa(client, "shop").await;
    // As the HPA controller writes it: at its maximum.
    set_status(
        client,
        "autoscaling/v1",
        "HorizontalPodAutoscaler",
        "shop",
        "api",
        json!({"currentReplicas": 4, "desiredReplicas": 4, "currentCPUUtilizationPercentage": 180}),
    )
    .await;
    // As the HPA controller reports an autoscaler that cannot compute its replicas (in
    // autoscaling/v2beta2's status; autoscaling/v1 shows it as the conditions annotation).
    let search = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "search"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "search"}, "minReplicas": 2, "maxReplicas": 6}});
    create(
        client,
        "autoscaling/v1",
        "HorizontalPodAutoscaler",
        Some("shop"),
        search,
    )
    .await;
    let now = common::ago(0);
    let cannot = json!({"currentReplicas": 2, "desiredReplicas": 2, "conditions": [
        {"type": "AbleToScale", "status": "True", "reason": "SucceededGetScale", "message": "the HPA controller was able to get the target's current scale", "lastTransitionTime": now},
        {"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric",
         "message": "the HPA was unable to compute the replica count: missing request for cpu", "lastTransitionTime": now}]});
    set_status(
        client,
        "autoscaling/v2beta2",
        "HorizontalPodAutoscaler",
        "shop",
        "search",
        cannot,
    )
    .await;
    // The quota's users, made by their controllers, before the quota (whose status no quota
    // controller fills in here; it is written below as that controller writes it).
    let etl = json!({"name": "etl", "image": "etl:1", "resources": {"requests": {"cpu": "750m"}}});
    create_workload(
        client,
        "data",
        "StatefulSet",
        "etl",
        2,
        json!({"podManagementPolicy": "Parallel", "serviceName": "etl"}),
        etl,
    )
    .await;
    let loader = json!({"name": "loader", "image": "loader:1", "resources": {"requests": {"cpu": "400m"}}});
    create_workload(client, "data", "Deployment", "loader", 1, json!({}), loader).await;
    pods(client, "data", "app=etl", 2).await;
    pods(client, "data", "app=loader", 1).await;
    let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "compute"}, "spec": {"hard": {"requests.cpu": "2"}}});
    create(client, "v1", "ResourceQuota", Some("data"), quota).await;
    set_status(
        client,
        "v1",
        "ResourceQuota",
        "data",
        "compute",
        json!({"hard": {"requests.cpu": "2"}, "used": {"requests.cpu": "1900m"}}),
    )
    .await;
}

/// Node `worker-1` (Ready, 3 allocatable pods, running 3) and `worker-2` (not Ready, disk
/// pressure, still tainted not-ready), with their conditions as the kubelet reports them.
async fn nodes_world(client: &Client) {
    for (node, ready, disk) in [("worker-1", "True", "False"), ("worker-2", "False", "True")] {
        create(
            client,
            "v1",
            "Node",
            None,
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}),
        )
        .await;
        let now = common::ago(0);
        let status = json!({"status": {"allocatable": {"pods": "3", "cpu": "1", "memory": "2Gi"}, "capacity": {"pods": "3", "cpu": "1", "memory": "2Gi"},
            "conditions": [
                {"type": "Ready", "status": ready, "reason": if ready == "True" { "KubeletReady" } else { "KubeletNotReady" },
                 "message": if ready == "True" { "kubelet is posting ready status" } else { "PLEG is not healthy: pleg was last seen active 3m0s ago" },
                 "lastHeartbeatTime": now, "lastTransitionTime": now},
                {"type": "DiskPressure", "status": disk, "reason": "KubeletHasDiskPressure", "message": "kubelet has disk pressure",
                 "lastHeartbeatTime": now, "lastTransitionTime": now}]}});
        let nodes = fixtures::api(client, "v1", "Node", None);
        nodes
            .patch_status(node, &PatchParams::default(), &Patch::Merge(status))
            .await
            .unwrap(); // The apiserver taints a new node not-ready; the node lifecycle controller (not run
        // here) lifts that taint once the node reports Ready.
        if ready == "True" {
            let untaint = json!({"spec": {"taints": null}});
            nodes
                .patch(node, &PatchParams::default(), &Patch::Merge(untaint))
                .await
                .unwrap();
        }
    }
    for (i, node) in ["worker-1", "worker-1", "worker-1", "worker-2"].iter().enumerate() {
        let name = format!("batch-{i}");
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x:1"}]}});
        create(client, "v1", "Pod", Some("batch"), pod).await;
        pod_status(client, "batch", &name, running("c", "x:1")).await;
    }
}

/// The bundled debugger whose matchers select example `name`.
fn recipe_for(name: &str) -> &'static str {
    match name {
        n if n.starts_with("KubePod") || n == "KubeContainerWaiting" => "pod-crashloop",
        n if ["KubeDeployment", "KubeStatefulSet", "KubeDaemonSet"]
            .iter()
            .any(|p| n.starts_with(p)) =>
        {
            "workload-rollout"
        }
        n if n.starts_with("KubeJob") => "job-failure",
        n if n.starts_with("KubePersistentVolume") => "persistent-volume",
        n if n.starts_with("KubeHpa") || n.starts_with("KubeQuota") || n == "CPUThrottlingHigh" => "capacity",
        _ => "node-health",
    }
}

/// `euphrosyne recipe run build/recipes/RECIPE.yaml --alert examples/alerts/NAME.json --json`.
fn recipe_run(name: &str, kubeconfig: &Path) -> (&'static str, Value) {
    let recipe = recipe_for(name);
    let repo = common::repo();
    let out = std::process::Command::new(common::euphrosyne_bin())
        .arg("recipe")
        .arg("run")
        .arg(repo.join(format!("build/recipes/{recipe}.yaml")))
        .arg("--alert")
        .arg(repo.join(format!("examples/alerts/{name}.json")))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--json")
        .output()
        .unwrap();
    let parsed = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| json!({"error": e.to_string(), "stderr": String::from_utf8_lossy(&out.stderr)}));
    (recipe, parsed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_alert_gets_an_analysis_that_names_its_cause_on_a_real_apiserver() {
    let cp = ControlPlane::start().await;
    let client = cp.client.clone();
    let rbac = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/rbac.yaml");
    for ns in [NS, "shop", "data", "batch"] {
        ok(cp.kubectl(&["create", "namespace", ns]));
    }
    ok(cp.kubectl(&["apply", "-n", NS, "-f", rbac.to_str().unwrap()]));
    // The reading Role where the workloads live, bound to the host's reader ServiceAccount, as
    // an operator grants it in an application's namespace.
    for ns in ["shop", "data"] {
        ok(cp.kubectl(&["apply", "-n", ns, "-f", rbac.to_str().unwrap()]));
        let reader = format!("--serviceaccount={NS}:euphrosyne-recipe-reader");
        ok(cp.kubectl(&[
            "-n",
            ns,
            "create",
            "rolebinding",
            "debuggers",
            "--role=euphrosyne-recipe-reader",
            &reader,
        ]));
    }
    nodes_world(&client).await;
    pods_world(&client).await;
    deployment_world(&client).await;
    rollout_world(&cp).await;
    jobs_world(&client).await;
    capacity_world(&client).await;

    let config = format!(
        "kubeconfig = \"{}\"\n[kube]\nnamespace = \"{NS}\"",
        cp.kubeconfig.display()
    );
    let host = Host::start(
        |dir| {
            for r in common::BUNDLED {
                pack_into(dir, r, |_| {});
            }
        },
        &config,
        &[],
    );
    let status = host.json("/api/status").await;
    assert_eq!(status["recipe_errors"], json!([]), "{status:#}");
    assert_eq!(status["dangling_actions"], json!([]), "{status:#}");

    for (name, _, _) in EXPECTED {
        host.post_example(name).await;
    }
    let mut failures = Vec::new();
    for (name, says, action) in EXPECTED {
        let inc = host.analysed_example(name).await;
        let analysis = &inc["incident"]["analysis"];
        let summary = analysis["summary"].as_str().unwrap_or_default();
        let first = analysis["actions"][0]["action"].as_str();
        let verdict_ok = analysis["verdict"] == "identified";
        if !summary.contains(says) || first != *action || !verdict_ok {
            failures.push(format!(
                "{name}: wanted «{says}» and {action:?}, got verdict {} «{summary}» and {first:?}\n{:#}",
                analysis["verdict"], analysis["findings"]
            ));
        }
        // And `euphrosyne recipe run` on the same file, with an operator's own kubeconfig.
        let (recipe, ran) = recipe_run(name, &cp.kubeconfig);
        let summary = ran["analysis"]["summary"].as_str().unwrap_or_default();
        if ran["status"] != "ok"
            || !summary.contains(says)
            || ran["analysis"]["actions"][0]["action"].as_str() != *action
        {
            failures.push(format!(
                "recipe run {recipe} --alert {name}.json: wanted «{says}» and {action:?}, got {ran:#}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} examples:\n{}",
        failures.len(),
        EXPECTED.len(),
        failures.join("\n\n")
    );
    let examples = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/alerts"))
        .unwrap()
        .count();
    assert_eq!(
        examples,
        EXPECTED.len() + 1,
        "every example but endpoint-down (http-probe, its own test) is checked here"
    );
}
