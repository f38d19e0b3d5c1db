use super::*;
use recipe_sdk::testing::Harness;

fn alert(name: &str, label: &str, value: &str) -> Incident {
    Incident::from_labels("inc-1", &[("alertname", name), ("namespace", "shop"), (label, value)])
}

fn deployment(extra: Value) -> Value {
    let mut d = json!({
        "metadata": {"generation": 2, "annotations": {"deployment.kubernetes.io/revision": "2"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "api"}}},
        "status": {"observedGeneration": 2, "replicas": 4, "readyReplicas": 3, "updatedReplicas": 1},
    });
    if let (Some(d), Some(e)) = (d.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            d.insert(k.clone(), v.clone());
        }
    }
    d
}

fn replica_set(h: Harness, hash: &str, revision: &str) -> Harness {
    h.kube_object(
        "apps/v1",
        "ReplicaSet",
        Some("shop"),
        &format!("api-{hash}"),
        json!({"metadata": {"labels": {"app": "api", "pod-template-hash": hash},
            "annotations": {"deployment.kubernetes.io/revision": revision},
            "ownerReferences": [{"kind": "Deployment", "name": "api", "controller": true}]}}),
    )
}

fn pod(h: Harness, name: &str, hash: &str, status: Value) -> Harness {
    h.kube_object(
        "v1",
        "Pod",
        Some("shop"),
        name,
        json!({"metadata": {"labels": {"app": "api", "pod-template-hash": hash},
            "ownerReferences": [{"kind": "ReplicaSet", "name": format!("api-{hash}"), "controller": true}]},
            "spec": {"containers": [{"name": "api"}]},
            "status": status}),
    )
}

fn running() -> Value {
    json!({"phase": "Running", "containerStatuses": [{"name": "api", "ready": true, "restartCount": 0, "state": {"running": {}}}]})
}

fn rollout(h: Harness) -> Harness {
    let h = replica_set(replica_set(h, "old1", "1"), "new2", "2");
    let h = (0..3).fold(h, |h, i| pod(h, &format!("api-old1-{i}"), "old1", running()));
    pod(
        h,
        "api-new2-a",
        "new2",
        json!({"phase": "Pending", "containerStatuses": [{"name": "api", "ready": false, "image": "registry.example.com/api:v2",
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]}),
    )
    .kube_event(
        "shop",
        "Pod",
        "api-new2-a",
        "Failed",
        "Failed to pull image \"registry.example.com/api:v2\": not found",
    )
}

#[test]
fn a_new_revision_that_fails_while_the_old_runs_is_rolled_back() {
    let h = rollout(Harness::new()).kube_object("apps/v1", "Deployment", Some("shop"), "api", deployment(json!({})));
    let a = h
        .debug::<WorkloadRollout>(alert("KubeDeploymentRolloutStuck", "deployment", "api"))
        .unwrap();
    assert_eq!(a.verdict, Verdict::Identified);
    assert_eq!(a.actions[0].action, "rollback-deployment");
    assert_eq!(
        a.actions[0].parameters,
        json!({"namespace": "shop", "kind": "Deployment", "name": "api"})
    );
    assert_eq!(a.actions.len(), 1, "{:?}", a.actions);
    assert!(
        a.summary
            .contains("1 pod of revision 2: container api cannot pull image registry.example.com/api:v2"),
        "{}",
        a.summary
    );
    assert!(
        a.summary
            .contains("pods of the new revision 2 fail while 3 pods of the previous revision run")
    );
}

#[test]
fn quota_and_paused_rollouts_say_why_no_action_applies() {
    let quota = json!({"status": {"observedGeneration": 2, "readyReplicas": 1, "conditions": [
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
         "message": "pods \"api-x\" is forbidden: exceeded quota: compute, requested: requests.cpu=500m, used: requests.cpu=2, limited: requests.cpu=2"}]}});
    let h = Harness::new().kube_object("apps/v1", "Deployment", Some("shop"), "api", deployment(quota));
    let a = h
        .debug::<WorkloadRollout>(alert("KubeDeploymentReplicasMismatch", "deployment", "api"))
        .unwrap();
    assert_eq!(a.verdict, Verdict::Identified);
    assert!(
        a.summary
            .contains("cannot create pods: pods \"api-x\" is forbidden: exceeded quota: compute"),
        "{}",
        a.summary
    );
    assert!(a.actions.is_empty());
    assert!(a.findings.iter().any(|f| f.detail.contains("ResourceQuota is full")));
    let paused = json!({"spec": {"replicas": 3, "paused": true, "selector": {"matchLabels": {"app": "api"}}}});
    let h = Harness::new().kube_object("apps/v1", "Deployment", Some("shop"), "api", deployment(paused));
    let a = h
        .debug::<WorkloadRollout>(alert("KubeDeploymentRolloutStuck", "deployment", "api"))
        .unwrap();
    assert!(a.summary.contains("the rollout is paused"), "{}", a.summary);
}

#[test]
fn a_statefulset_on_delete_suggests_deleting_an_old_pod() {
    let sts = json!({"metadata": {"generation": 3},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "db"}}, "updateStrategy": {"type": "OnDelete"}},
        "status": {"observedGeneration": 3, "readyReplicas": 2, "updatedReplicas": 0,
            "currentRevision": "db-aaa", "updateRevision": "db-bbb"}});
    let db = |h: Harness, n: &str| {
        h.kube_object(
            "v1",
            "Pod",
            Some("shop"),
            n,
            json!({"metadata": {"labels": {"app": "db", "controller-revision-hash": "db-aaa"}}, "status": running()}),
        )
    };
    let h = db(db(Harness::new(), "db-0"), "db-1").kube_object("apps/v1", "StatefulSet", Some("shop"), "db", sts);
    let a = h
        .debug::<WorkloadRollout>(alert("KubeStatefulSetUpdateNotRolledOut", "statefulset", "db"))
        .unwrap();
    assert!(
        a.summary
            .contains("update strategy OnDelete: 2 pods still run the old revision"),
        "{}",
        a.summary
    );
    assert_eq!(a.actions[0].action, "delete-pod");
    assert_eq!(a.actions[0].parameters, json!({"namespace": "shop", "pod": "db-0"}));
}

#[test]
fn a_misscheduled_daemonset_is_named() {
    let ds = json!({"spec": {"selector": {"matchLabels": {"app": "agent"}}},
        "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 3,
            "updatedNumberScheduled": 3, "numberMisscheduled": 2}});
    let h = Harness::new().kube_object("apps/v1", "DaemonSet", Some("shop"), "agent", ds);
    let a = h
        .debug::<WorkloadRollout>(alert("KubeDaemonSetMisScheduled", "daemonset", "agent"))
        .unwrap();
    assert!(
        a.summary.contains("2 pods run on nodes that no longer match"),
        "{}",
        a.summary
    );
}

#[test]
fn gone_workloads_are_inconclusive_and_a_missing_label_is_named() {
    let a = Harness::new()
        .debug::<WorkloadRollout>(alert("KubeDeploymentReplicasMismatch", "deployment", "api"))
        .unwrap();
    assert_eq!(a.verdict, Verdict::Inconclusive);
    assert!(
        a.summary.contains("Deployment shop/api no longer exist"),
        "{}",
        a.summary
    );
    let err = Harness::new()
        .debug::<WorkloadRollout>(Incident::from_labels(
            "i",
            &[("alertname", "KubeDaemonSetNotScheduled")],
        ))
        .unwrap_err();
    assert!(err.message.contains("`daemonset` label"), "{}", err.message);
}
