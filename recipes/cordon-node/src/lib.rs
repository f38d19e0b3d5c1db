//! `cordon-node` (action): mark a node unschedulable, like `kubectl cordon`.
//!
//! Parameters: `{"node": "worker-1"}`.

use recipe_sdk::prelude::*;
use serde::Deserialize;
use serde_json::json;

/// The recipe.
pub struct CordonNode;

#[derive(Deserialize)]
struct Params {
    node: String,
}

impl Actor for CordonNode {
    fn act(request: ActionRequest) -> Result<Outcome, RecipeError> {
        let p: Params = request.params()?;
        let node = match kube::get("v1", "Node", None, &p.node) {
            Ok(n) => n,
            Err(kube::KubeError::NotFound(_)) => {
                return Ok(Outcome::failure(format!("node {} does not exist", p.node)));
            }
            Err(e) => return Err(e.into()),
        };
        if node["spec"]["unschedulable"].as_bool() == Some(true) {
            return Ok(Outcome::success(format!("node {} was already cordoned", p.node)));
        }
        kube::patch(
            "v1",
            "Node",
            None,
            &p.node,
            &json!({ "spec": { "unschedulable": true } }),
        )?;
        Ok(Outcome::success(format!("node {} cordoned", p.node))
            .details(format!("spec.unschedulable=true; approved by {}", request.approved_by)))
    }
}

recipe_sdk::export_actor!(CordonNode);

#[cfg(test)]
mod tests {
    use super::*;
    use recipe_sdk::testing::Harness;

    #[test]
    fn cordons_once() {
        let h = Harness::new().kube_object("v1", "Node", None, "worker-1", json!({ "spec": {} }));
        let req = ActionRequest::new("cordon-node", json!({"node": "worker-1"}), "bob");
        assert!(h.act::<CordonNode>(req.clone()).unwrap().success);
        assert_eq!(
            h.kube_object_now("v1", "Node", None, "worker-1").unwrap()["spec"]["unschedulable"],
            true
        );
        let again = h.act::<CordonNode>(req).unwrap();
        assert!(again.summary.contains("already"));
        assert_eq!(h.kube_writes().len(), 1, "a second cordon writes nothing");
    }

    #[test]
    fn unknown_node_fails() {
        let req = ActionRequest::new("cordon-node", json!({"node": "ghost"}), "bob");
        assert!(!Harness::new().act::<CordonNode>(req).unwrap().success);
    }
}
