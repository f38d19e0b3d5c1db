//! Objects on the test control plane as their controllers and the kubelet leave them, for the
//! actors suite and the preview benchmark: a Deployment with two revisions (its ReplicaSets the
//! deployment controller's own) and an OOMKilled pod, an HPA, a bound claim, a node with
//! running pods (one under a disruption budget), a failed Job.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

/// The bundled actors.
pub const ACTORS: &[&str] = &[
    "raise-limit",
    "rollback-deployment",
    "scale-workload",
    "raise-hpa-max",
    "delete-pod",
    "expand-pvc",
    "drain-node",
    "cordon-node",
    "rerun-job",
];

/// A dynamic API for `api_version`/`kind`, namespaced or cluster-wide.
pub fn api(client: &Client, api_version: &str, kind: &str, ns: Option<&str>) -> Api<DynamicObject> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let ar = kube::core::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(group, version, kind));
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

/// Create `obj`; the object as stored.
pub async fn create(client: &Client, api_version: &str, kind: &str, ns: Option<&str>, obj: Value) -> Value {
    let o: DynamicObject = serde_json::from_value(obj).unwrap();
    let created = api(client, api_version, kind, ns)
        .create(&PostParams::default(), &o)
        .await
        .unwrap();
    serde_json::to_value(created).unwrap()
}

/// Read an object back.
pub async fn get(client: &Client, api_version: &str, kind: &str, ns: Option<&str>, name: &str) -> Value {
    serde_json::to_value(api(client, api_version, kind, ns).get(name).await.unwrap()).unwrap()
}

/// Set an object's status as its controller or the kubelet would.
pub async fn set_status(client: &Client, api_version: &str, kind: &str, ns: &str, name: &str, status: Value) {
    api(client, api_version, kind, Some(ns))
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .unwrap();
}

/// The Deployment's revision annotation.
pub fn revision(d: &Deployment) -> Option<&str> {
    d.metadata
        .annotations
        .as_ref()?
        .get("deployment.kubernetes.io/revision")
        .map(String::as_str)
}

/// Poll until `done` holds for Deployment `api` (the controllers work asynchronously).
pub async fn deployment_until(client: &Client, ns: &str, what: &str, done: impl Fn(&Deployment) -> bool) -> Deployment {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let started = Instant::now();
    loop {
        let d = api.get("api").await.unwrap();
        if done(&d) {
            return d;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "Deployment never {what}: {d:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deployment `api` at revision 2 (`shop:1` then `shop:2`; containers `api` at 128Mi and
/// `envoy` at 64Mi), and the new ReplicaSet's pod, OOMKilled as the kubelet reports it.
pub async fn deployment_with_history(client: &Client, ns: &str) -> Pod {
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "api"}},
                 "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [
                     {"name": "api", "image": "shop:1", "resources": {"limits": {"memory": "128Mi"}}},
                     {"name": "envoy", "image": "envoy:1", "resources": {"limits": {"memory": "64Mi"}}}]}}}}))
    .unwrap();
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    api.create(&PostParams::default(), &d).await.unwrap();
    deployment_until(client, ns, "reached revision 1", |d| revision(d) == Some("1")).await;
    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "api", "image": "shop:2"}]}}}});
    api.patch("api", &PatchParams::default(), &Patch::Strategic(image))
        .await
        .unwrap();
    deployment_until(client, ns, "reached revision 2", |d| revision(d) == Some("2")).await;
    let rs: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let started = Instant::now();
    let pod = loop {
        let new_rs = rs
            .list(&ListParams::default().labels("app=api"))
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|r| {
                r.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("deployment.kubernetes.io/revision"))
                    .map(String::as_str)
                    == Some("2")
            });
        let hash = new_rs.and_then(|r| r.metadata.labels.and_then(|l| l.get("pod-template-hash").cloned()));
        if let Some(hash) = hash {
            let list = pods
                .list(&ListParams::default().labels(&format!("pod-template-hash={hash}")))
                .await
                .unwrap();
            if let Some(p) = list.items.into_iter().next() {
                break p;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the ReplicaSet controller made no pod"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let name = pod.metadata.name.clone().unwrap();
    let status = json!({"phase": "Running", "containerStatuses": [
        {"name": "api", "image": "shop:2", "imageID": "", "ready": false, "restartCount": 4,
         "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
         "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}},
        {"name": "envoy", "image": "envoy:1", "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {}}}]});
    set_status(client, "v1", "Pod", ns, &name, status).await;
    pods.get(&name).await.unwrap()
}

/// HPA `api` (1–4 replicas) on Deployment `api`; no HPA controller runs here.
pub async fn hpa(client: &Client, ns: &str) -> Value {
    let hpa = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "api"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}, "minReplicas": 1, "maxReplicas": 4}});
    create(client, "autoscaling/v1", "HorizontalPodAutoscaler", Some(ns), hpa).await
}

/// StorageClass `class` (allowing expansion or not) and claim `data-CLASS` of 1Gi, bound as the
/// PersistentVolume controller would mark it (only a bound claim grows).
pub async fn bound_claim(client: &Client, ns: &str, class: &str, expandable: bool) {
    let sc = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": class},
                    "provisioner": "example.com/none", "allowVolumeExpansion": expandable});
    create(client, "storage.k8s.io/v1", "StorageClass", None, sc).await;
    let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": format!("data-{class}")},
        "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"], "volumeName": format!("pv-{class}"),
                 "resources": {"requests": {"storage": "1Gi"}}}});
    create(client, "v1", "PersistentVolumeClaim", Some(ns), pvc).await;
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let status =
        json!({"status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}});
    api.patch_status(&format!("data-{class}"), &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
}

/// Node `node` with running pods `free-1` and `guarded-1`, the second under a
/// PodDisruptionBudget that allows no disruption (no disruption controller runs here).
pub async fn node_with_pods(client: &Client, ns: &str, node: &str) {
    let n = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}});
    create(client, "v1", "Node", None, n).await;
    for (name, app) in [("free-1", "free"), ("guarded-1", "guarded")] {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": app}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x:1"}]}});
        create(client, "v1", "Pod", Some(ns), pod).await;
        // Running, as the kubelet reports it (a pending pod's eviction ignores budgets).
        set_status(client, "v1", "Pod", ns, name, json!({"phase": "Running"})).await;
    }
    let pdb = json!({"apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget", "metadata": {"name": "guarded"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}}});
    create(client, "policy/v1beta1", "PodDisruptionBudget", Some(ns), pdb).await;
}

/// Job `name` (labelled `team=data`), failed as the Job controller marks it.
pub async fn failed_job(client: &Client, ns: &str, name: &str) {
    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "labels": {"team": "data"}},
        "spec": {"parallelism": 0, "backoffLimit": 1, "template": {"metadata": {"labels": {"app": name}},
                 "spec": {"restartPolicy": "Never", "containers": [{"name": "r", "image": "report:1"}]}}}});
    create(client, "batch/v1", "Job", Some(ns), job).await;
    let now = super::ago(0);
    let failed = json!({"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
        "lastProbeTime": now, "lastTransitionTime": now}]});
    set_status(client, "batch/v1", "Job", ns, name, failed).await;
}
