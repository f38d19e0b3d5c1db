use super::*;
use recipe_sdk::testing::Harness;
use serde_json::json;

fn incident(labels: &[(&str, &str)]) -> Incident {
    let mut all = vec![("namespace", "shop")];
    all.extend_from_slice(labels);
    Incident::from_labels("inc-1", &all)
}

fn deployment(h: Harness, extra_status: serde_json::Value) -> Harness {
    h.kube_object(
        "apps/v1",
        "Deployment",
        Some("shop"),
        "api",
        json!({
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "api"}}},
        "status": extra_status}),
    )
}

fn hpa(h: Harness, current: i64, conditions: &str) -> Harness {
    h.kube_object(
        "autoscaling/v1",
        "HorizontalPodAutoscaler",
        Some("shop"),
        "api",
        json!({
        "metadata": {"annotations": {"autoscaling.alpha.kubernetes.io/conditions": conditions}},
        "spec": {"minReplicas": 2, "maxReplicas": 4, "scaleTargetRef": {"kind": "Deployment", "name": "api"},
            "targetCPUUtilizationPercentage": 70},
        "status": {"currentReplicas": current, "desiredReplicas": 4, "currentCPUUtilizationPercentage": 140}}),
    )
}

#[test]
fn a_maxed_out_autoscaler_gets_a_concrete_maximum() {
    let h = deployment(hpa(Harness::new(), 4, "[]"), json!({"readyReplicas": 4}));
    let a = h
        .debug::<Capacity>(incident(&[
            ("alertname", "KubeHpaMaxedOut"),
            ("horizontalpodautoscaler", "api"),
        ]))
        .unwrap();
    assert_eq!(a.verdict, Verdict::Identified);
    assert_eq!(a.actions[0].action, "raise-hpa-max");
    assert_eq!(
        a.actions[0].parameters,
        json!({"namespace": "shop", "name": "api", "max_replicas": 8})
    );
}

#[test]
fn an_autoscaler_that_cannot_scale_says_why_instead() {
    let cond = r#"[{"type":"ScalingActive","status":"False","reason":"FailedGetResourceMetric","message":"the HPA was unable to compute the replica count: missing request for cpu"}]"#;
    let a = deployment(hpa(Harness::new(), 2, cond), json!({}))
        .debug::<Capacity>(incident(&[
            ("alertname", "KubeHpaReplicasMismatch"),
            ("horizontalpodautoscaler", "api"),
        ]))
        .unwrap();
    assert!(
        a.summary
            .contains("cannot scale: the HPA was unable to compute the replica count: missing request for cpu"),
        "{}",
        a.summary
    );
    assert!(a.actions.is_empty());
    let quota = json!({"conditions": [{"type": "ReplicaFailure", "status": "True", "message": "pods \"api-x\" is forbidden: exceeded quota: compute"}]});
    let a = deployment(hpa(Harness::new(), 4, "[]"), quota)
        .debug::<Capacity>(incident(&[
            ("alertname", "KubeHpaMaxedOut"),
            ("horizontalpodautoscaler", "api"),
        ]))
        .unwrap();
    assert!(
        a.summary
            .contains("cannot grow: pods \"api-x\" is forbidden: exceeded quota"),
        "{}",
        a.summary
    );
    assert!(a.actions.is_empty(), "raising the maximum would not help");
}

fn throttled_pod(h: Harness, name: &str) -> Harness {
    h.kube_object("v1", "Pod", Some("shop"), name, json!({
        "metadata": {"ownerReferences": [{"kind": "ReplicaSet", "name": "api-5d8", "controller": true}]},
        "spec": {"containers": [{"name": "api", "resources": {"limits": {"cpu": "500m"}, "requests": {"cpu": "250m"}}}]}}))
}

#[test]
fn throttled_pods_of_one_workload_are_one_line() {
    let h = throttled_pod(throttled_pod(Harness::new(), "api-5d8-a"), "api-5d8-b").kube_object(
        "apps/v1",
        "ReplicaSet",
        Some("shop"),
        "api-5d8",
        json!({"metadata": {"ownerReferences": [{"kind": "Deployment", "name": "api"}]}}),
    );
    let alerts = ["api-5d8-a", "api-5d8-b"].map(|p| {
        Alert::firing(&[
            ("alertname", "CPUThrottlingHigh"),
            ("namespace", "shop"),
            ("pod", p),
            ("container", "api"),
        ])
    });
    let a = h
        .debug::<Capacity>(Incident::from_alerts("i", alerts.to_vec()))
        .unwrap();
    assert_eq!(
        a.summary,
        "2 pods of Deployment shop/api: container api is throttled at its CPU limit 500m (request 250m)"
    );
    assert_eq!(a.actions.len(), 1);
    assert_eq!(
        a.actions[0].parameters,
        json!({"namespace": "shop", "kind": "Deployment", "name": "api", "container": "api", "cpu": "1000m"})
    );
}

#[test]
fn a_quota_names_its_top_users() {
    let pod = |n: &str, cpu: &str, owner: &str| {
        json!({"metadata": {"name": n, "ownerReferences": [{"kind": "StatefulSet", "name": owner, "controller": true}]},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}, "status": {"phase": "Running"}})
    };
    let h = Harness::new()
        .kube_object(
            "v1",
            "ResourceQuota",
            Some("shop"),
            "compute",
            json!({
            "status": {"hard": {"requests.cpu": "2"}, "used": {"requests.cpu": "1900m"}}}),
        )
        .kube_object("v1", "Pod", Some("shop"), "db-0", pod("db-0", "1", "db"))
        .kube_object("v1", "Pod", Some("shop"), "db-1", pod("db-1", "500m", "db"))
        .kube_object("v1", "Pod", Some("shop"), "web-0", pod("web-0", "400m", "web"));
    let a = h
        .debug::<Capacity>(incident(&[
            ("alertname", "KubeQuotaAlmostFull"),
            ("resourcequota", "compute"),
            ("resource", "requests.cpu"),
        ]))
        .unwrap();
    assert_eq!(
        a.summary,
        "ResourceQuota shop/compute: requests.cpu 1900m of 2 used (95%); most used by StatefulSet shop/db 1500m, StatefulSet shop/web 400m"
    );
    assert_eq!(a.actions[0].action, "open-ticket");
}

#[test]
fn missing_labels_and_gone_objects() {
    let err = Harness::new()
        .debug::<Capacity>(incident(&[("alertname", "KubeHpaMaxedOut")]))
        .unwrap_err();
    assert!(err.message.contains("`horizontalpodautoscaler`"), "{}", err.message);
    let a = Harness::new()
        .debug::<Capacity>(incident(&[
            ("alertname", "KubeQuotaExceeded"),
            ("resourcequota", "gone"),
        ]))
        .unwrap();
    assert_eq!(a.verdict, Verdict::Inconclusive);
    assert!(a.summary.contains("no longer exists"));
}
