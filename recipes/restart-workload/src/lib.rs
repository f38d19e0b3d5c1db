//! `restart-workload` (action): a rolling restart, the way `kubectl rollout restart` does it —
//! set `kubectl.kubernetes.io/restartedAt` on the pod template of a Deployment, StatefulSet or
//! DaemonSet.
//!
//! Parameters: `{"namespace": "shop", "kind": "Deployment", "name": "web"}`.

use recipe_sdk::prelude::*;
use serde::Deserialize;
use serde_json::json;

/// The recipe.
pub struct RestartWorkload;

#[derive(Deserialize)]
struct Params {
    namespace: String,
    #[serde(default = "deployment")]
    kind: String,
    name: String,
}

fn deployment() -> String {
    "Deployment".into()
}

const ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";

impl Actor for RestartWorkload {
    fn act(request: ActionRequest) -> Result<Outcome, RecipeError> {
        let p: Params = request.params()?;
        if !matches!(p.kind.as_str(), "Deployment" | "StatefulSet" | "DaemonSet") {
            return Ok(Outcome::failure(format!(
                "cannot restart a {}: only Deployment, StatefulSet and DaemonSet have a pod template to restart",
                p.kind
            )));
        }
        let at = recipe_sdk::now_rfc3339();
        let patch = json!({ "spec": { "template": { "metadata": { "annotations": { ANNOTATION: at } } } } });
        match kube::patch("apps/v1", &p.kind, Some(&p.namespace), &p.name, &patch) {
            Ok(obj) => {
                let generation = obj["metadata"]["generation"].as_i64().unwrap_or(0);
                log::info(&format!(
                    "restarted {}/{}/{} for {}",
                    p.kind, p.namespace, p.name, request.approved_by
                ));
                Ok(Outcome::success(format!(
                    "rolling restart of {} {}/{} started",
                    p.kind, p.namespace, p.name
                ))
                .details(format!(
                    "{ANNOTATION}={at}; generation {generation}; approved by {}",
                    request.approved_by
                )))
            }
            Err(kube::KubeError::NotFound(what)) => Ok(Outcome::failure(format!("{what} does not exist"))),
            Err(e) => Err(e.into()),
        }
    }
}

recipe_sdk::export_actor!(RestartWorkload);

#[cfg(test)]
mod tests {
    use super::*;
    use recipe_sdk::testing::Harness;

    #[test]
    fn sets_the_restarted_at_annotation() {
        let h = Harness::new().kube_object(
            "apps/v1",
            "Deployment",
            Some("shop"),
            "web",
            json!({ "spec": { "replicas": 3 } }),
        );
        let req = ActionRequest::new(
            "restart-workload",
            json!({"namespace": "shop", "kind": "Deployment", "name": "web"}),
            "alice",
        );
        let out = h.act::<RestartWorkload>(req).unwrap();
        assert!(out.success, "{out:?}");
        let dep = h.kube_object_now("apps/v1", "Deployment", Some("shop"), "web").unwrap();
        let at = dep["spec"]["template"]["metadata"]["annotations"][ANNOTATION]
            .as_str()
            .unwrap();
        assert!(at.ends_with('Z') && at.len() == 20, "{at}");
        assert_eq!(dep["spec"]["replicas"], 3, "merge patch keeps the rest");
    }

    #[test]
    fn missing_workload_and_wrong_kind_fail_cleanly() {
        let req = ActionRequest::new(
            "restart-workload",
            json!({"namespace": "shop", "name": "nope"}),
            "alice",
        );
        assert!(!Harness::new().act::<RestartWorkload>(req).unwrap().success);
        let req = ActionRequest::new(
            "restart-workload",
            json!({"namespace": "shop", "kind": "Pod", "name": "p"}),
            "alice",
        );
        let out = Harness::new().act::<RestartWorkload>(req).unwrap();
        assert!(!out.success && out.summary.contains("Pod"));
        let req = ActionRequest::new("restart-workload", json!({"kind": "Deployment"}), "alice");
        assert!(
            Harness::new()
                .act::<RestartWorkload>(req)
                .unwrap_err()
                .message
                .contains("invalid parameters")
        );
    }
}
