//! `delete-pod` (action): delete one pod so that its controller (ReplicaSet, StatefulSet,
//! DaemonSet, Job) starts a fresh one. A pod no controller owns would be gone for good, so it is
//! refused unless the parameters say `"orphan": true`.
//!
//! Parameters: `{"namespace": "shop", "pod": "api-7d9f-abcde"}`.

use recipe_sdk::prelude::*;
use serde::Deserialize;

/// The recipe.
pub struct DeletePod;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    namespace: String,
    pod: String,
    #[serde(default)]
    orphan: bool,
}

impl Actor for DeletePod {
    fn act(request: ActionRequest) -> Result<Outcome, RecipeError> {
        let p: Params = request.params()?;
        let what = format!("pod {}/{}", p.namespace, p.pod);
        if let Some(no) = request.outside_incident(&p.namespace) {
            return Ok(no);
        }
        let Some(pod) = kube::get_opt("v1", "Pod", Some(&p.namespace), &p.pod)? else {
            return Ok(Outcome::failure(format!("{what} does not exist")));
        };
        let controller = pod["metadata"]["ownerReferences"]
            .as_array()
            .and_then(|refs| refs.iter().find(|r| r["controller"] == true))
            .map(|r| {
                format!(
                    "{} {}",
                    r["kind"].as_str().unwrap_or("?"),
                    r["name"].as_str().unwrap_or("?")
                )
            });
        if controller.is_none() && !p.orphan {
            return Ok(Outcome::failure(format!(
                "{what} has no controller: deleting it would not bring it back (pass \"orphan\": true to delete it anyway)"
            )));
        }
        kube::delete("v1", "Pod", Some(&p.namespace), &p.pod)?;
        let object = ObjectRef::new("v1", "Pod", Some(&p.namespace), &p.pod);
        let change = Change {
            object,
            path: "metadata.deletionTimestamp".into(),
            before: None,
            after: Some("\"deleted\"".into()),
            description: "the pod".into(),
        };
        let verb = if request.dry_run { "would delete" } else { "deleted" };
        let by = controller.map(|c| format!("; {c} replaces it")).unwrap_or_default();
        Ok(Outcome::success(format!("{verb} {what}{by}"))
            .details(format!("approved by {}", request.approved_by))
            .changes([change]))
    }
}

recipe_sdk::export_actor!(DeletePod);

#[cfg(test)]
mod tests {
    use super::*;
    use recipe_sdk::testing::Harness;
    use serde_json::json;

    fn req(params: serde_json::Value) -> ActionRequest {
        let incident = Incident::from_labels("inc-1", &[("alertname", "KubePodNotReady"), ("namespace", "shop")]);
        ActionRequest::new("delete-pod", params, "alice").about(incident)
    }

    #[test]
    fn deletes_a_controlled_pod_and_refuses_an_orphan() {
        let owned =
            json!({"metadata": {"ownerReferences": [{"kind": "ReplicaSet", "name": "api-7d9f", "controller": true}]}});
        let h = Harness::new()
            .kube_object("v1", "Pod", Some("shop"), "api-1", owned)
            .kube_object("v1", "Pod", Some("shop"), "lonely", json!({"metadata": {}}));
        let out = h
            .act::<DeletePod>(req(json!({"namespace": "shop", "pod": "api-1"})))
            .unwrap();
        assert!(
            out.success && out.summary.contains("ReplicaSet api-7d9f replaces it"),
            "{}",
            out.summary
        );
        assert!(h.kube_object_now("v1", "Pod", Some("shop"), "api-1").is_none());
        let out = h
            .act::<DeletePod>(req(json!({"namespace": "shop", "pod": "lonely"})))
            .unwrap();
        assert!(!out.success && out.summary.contains("no controller"), "{}", out.summary);
        assert!(h.kube_object_now("v1", "Pod", Some("shop"), "lonely").is_some());
    }

    #[test]
    fn a_preview_deletes_nothing() {
        let owned = json!({"metadata": {"ownerReferences": [{"kind": "ReplicaSet", "name": "a", "controller": true}]}});
        let h = Harness::new().kube_object("v1", "Pod", Some("shop"), "api-1", owned);
        let out = h
            .act::<DeletePod>(req(json!({"namespace": "shop", "pod": "api-1"})).preview())
            .unwrap();
        assert!(out.summary.starts_with("would delete"), "{}", out.summary);
        assert!(h.kube_object_now("v1", "Pod", Some("shop"), "api-1").is_some());
    }
}
