//! `drain-node` (action): what `kubectl drain` does, through the eviction API so every
//! PodDisruptionBudget is respected: cordon the node, then evict each pod on it — except
//! DaemonSet pods (their controller would put them right back) and mirror pods (the kubelet
//! owns them) — and report every pod it could not evict, and why. It does not wait for the
//! evicted pods to terminate.
//!
//! Parameters: `{"node": "worker-1"}`.

use recipe_sdk::pod::drain_skip;
use recipe_sdk::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

/// The recipe.
pub struct DrainNode;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    node: String,
}

fn name(pod: &Value) -> String {
    format!(
        "{}/{}",
        pod["metadata"]["namespace"].as_str().unwrap_or("?"),
        pod["metadata"]["name"].as_str().unwrap_or("?")
    )
}

impl Actor for DrainNode {
    fn act(request: ActionRequest) -> Result<Outcome, RecipeError> {
        let p: Params = request.params()?;
        let Some(node) = kube::get_opt("v1", "Node", None, &p.node)? else {
            return Ok(Outcome::failure(format!("node {} does not exist", p.node)));
        };
        let pods = kube::list("v1", "Pod", None, None, Some(&format!("spec.nodeName={}", p.node)))?;
        let max = config::parse_or("max_pods", 110usize);
        if pods.len() > max {
            return Ok(Outcome::failure(format!(
                "node {} runs {} pods, more than this recipe drains (config `max_pods` = {max}); drain it by hand",
                p.node,
                pods.len()
            )));
        }
        let object = ObjectRef::new("v1", "Node", None, &p.node);
        let mut changes = Vec::new();
        if node["spec"]["unschedulable"].as_bool() != Some(true) {
            let after = kube::patch("v1", "Node", None, &p.node, &json!({"spec": {"unschedulable": true}}))?;
            changes.extend(
                kube::diff(&object, &node, &after)
                    .into_iter()
                    .map(|c| c.described("schedulable")),
            );
        }
        let (mut evicted, mut kept, mut refused) = (Vec::new(), Vec::new(), Vec::new());
        for pod in &pods {
            if let Some(why) = drain_skip(pod) {
                kept.push(format!("{} ({why})", name(pod)));
                continue;
            }
            let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
            let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
            match kube::evict(ns, pod_name) {
                Ok(()) => {
                    evicted.push(name(pod));
                    changes.push(Change {
                        object: ObjectRef::new("v1", "Pod", Some(ns), pod_name),
                        path: "eviction".into(),
                        before: None,
                        after: Some("\"evicted\"".into()),
                        description: format!("pod on node {}", p.node),
                    });
                }
                Err(kube::KubeError::Conflict(m)) => {
                    refused.push(format!("{} (a disruption budget refuses it now: {m})", name(pod)))
                }
                Err(e) => refused.push(format!("{} ({e})", name(pod))),
            }
        }
        let verb = if request.dry_run { "would drain" } else { "drained" };
        let summary = format!(
            "{verb} node {}: {} pods evicted, {} left on it, {} could not be evicted",
            p.node,
            evicted.len(),
            kept.len(),
            refused.len()
        );
        let details = format!(
            "evicted: {}\nleft: {}\nnot evicted: {}\napproved by {}",
            list(&evicted),
            list(&kept),
            list(&refused),
            request.approved_by
        );
        let outcome = if refused.is_empty() {
            Outcome::success(summary)
        } else {
            Outcome::failure(summary)
        };
        Ok(outcome.details(details).changes(changes))
    }
}

fn list(v: &[String]) -> String {
    if v.is_empty() { "none".into() } else { v.join(", ") }
}

recipe_sdk::export_actor!(DrainNode);

#[cfg(test)]
mod tests {
    use super::*;
    use recipe_sdk::testing::Harness;

    fn pod(ns: &str, name: &str, owner: &str) -> Value {
        json!({"metadata": {"namespace": ns, "name": name, "ownerReferences": [{"kind": owner, "name": "x", "controller": true}]},
               "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}})
    }

    #[test]
    fn cordons_evicts_skips_daemonsets_and_reports_budgets() {
        let h = Harness::new()
            .kube_object("v1", "Node", None, "n1", json!({"spec": {}}))
            .kube_object("v1", "Pod", Some("shop"), "api-1", pod("shop", "api-1", "ReplicaSet"))
            .kube_object("v1", "Pod", Some("shop"), "db-0", pod("shop", "db-0", "StatefulSet"))
            .kube_object(
                "v1",
                "Pod",
                Some("kube-system"),
                "proxy",
                pod("kube-system", "proxy", "DaemonSet"),
            )
            .kube_object(
                "v1",
                "Pod",
                Some("web"),
                "elsewhere",
                json!({"metadata": {"namespace": "web", "name": "elsewhere"}, "spec": {"nodeName": "n2"}}),
            )
            .eviction_blocked("shop", "db-0");
        let out = h
            .act::<DrainNode>(ActionRequest::new("drain-node", json!({"node": "n1"}), "alice"))
            .unwrap();
        assert!(!out.success, "a pod could not be evicted");
        assert!(
            out.summary
                .contains("1 pods evicted, 1 left on it, 1 could not be evicted"),
            "{}",
            out.summary
        );
        assert!(
            out.details.contains("shop/db-0 (a disruption budget"),
            "{}",
            out.details
        );
        assert!(
            out.details.contains("kube-system/proxy (DaemonSet pod)"),
            "{}",
            out.details
        );
        assert_eq!(
            h.kube_object_now("v1", "Node", None, "n1").unwrap()["spec"]["unschedulable"],
            true
        );
        assert!(h.kube_object_now("v1", "Pod", Some("shop"), "api-1").is_none());
        assert!(
            h.kube_object_now("v1", "Pod", Some("web"), "elsewhere").is_some(),
            "another node's pod stays"
        );
    }

    #[test]
    fn a_preview_evicts_nothing() {
        let h = Harness::new()
            .kube_object("v1", "Node", None, "n1", json!({"spec": {}}))
            .kube_object("v1", "Pod", Some("shop"), "api-1", pod("shop", "api-1", "ReplicaSet"));
        let out = h
            .act::<DrainNode>(ActionRequest::new("drain-node", json!({"node": "n1"}), "alice").preview())
            .unwrap();
        assert!(out.success && out.summary.starts_with("would drain"), "{}", out.summary);
        assert_eq!(out.changes.len(), 2, "{:?}", out.changes);
        assert!(h.kube_object_now("v1", "Pod", Some("shop"), "api-1").is_some());
        assert!(
            h.kube_object_now("v1", "Node", None, "n1").unwrap()["spec"]
                .get("unschedulable")
                .is_none()
        );
    }
}
