//! `cordon-node` and `uncordon-node` (action): mark a node unschedulable or schedulable again,
//! like `kubectl cordon` / `kubectl uncordon`. Cordoning says, in its outcome, that it also
//! resolves `KubeNodeNotReady`, so the incident is not mistaken for fixed.
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

/// `KubeNodeNotReady` (kubernetes-mixin) fires only while `kube_node_spec_unschedulable == 0`:
/// cordoning makes it resolve although the node is still not ready.
const NOT_READY_NOTE: &str = "note: cordoning also resolves KubeNodeNotReady (its rule requires kube_node_spec_unschedulable == 0), so that alert clearing does not mean the node recovered; watch the node's Ready condition";

impl Actor for CordonNode {
    fn act(request: ActionRequest) -> Result<Outcome, RecipeError> {
        let p: Params = request.params()?;
        let cordon = match request.action.as_str() {
            "cordon-node" => true,
            "uncordon-node" => false,
            other => return Ok(Outcome::failure(format!("this recipe does not implement `{other}`"))),
        };
        let Some(node) = kube::get_opt("v1", "Node", None, &p.node)? else {
            return Ok(Outcome::failure(format!("node {} does not exist", p.node)));
        };
        let done = if cordon { "cordoned" } else { "uncordoned" };
        if node["spec"]["unschedulable"].as_bool().unwrap_or(false) == cordon {
            return Ok(Outcome::success(format!("node {} was already {done}", p.node)));
        }
        let after = kube::patch(
            "v1",
            "Node",
            None,
            &p.node,
            &json!({ "spec": { "unschedulable": cordon } }),
        )?;
        let object = ObjectRef::new("v1", "Node", None, &p.node);
        let changes = kube::diff(&object, &node, &after)
            .into_iter()
            .map(|c| c.described("unschedulable"));
        let summary = match (request.dry_run, cordon) {
            (true, true) => format!("would cordon node {}", p.node),
            (true, false) => format!("would uncordon node {}", p.node),
            (false, _) => format!("node {} {done}", p.node),
        };
        let mut details = format!("spec.unschedulable={cordon}; approved by {}", request.approved_by);
        if cordon {
            details.push('\n');
            details.push_str(NOT_READY_NOTE);
        }
        Ok(Outcome::success(summary).details(details).changes(changes))
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
    fn cordon_notes_not_ready_and_uncordon_undoes_it() {
        let h = Harness::new().kube_object("v1", "Node", None, "w1", json!({ "spec": {} }));
        let out = h
            .act::<CordonNode>(ActionRequest::new("cordon-node", json!({"node": "w1"}), "bob"))
            .unwrap();
        assert!(
            out.details.contains("also resolves KubeNodeNotReady"),
            "{}",
            out.details
        );
        assert_eq!(out.changes[0].to_string(), "unschedulable in Node w1: (none) → true");
        let out = h
            .act::<CordonNode>(ActionRequest::new("uncordon-node", json!({"node": "w1"}), "bob"))
            .unwrap();
        assert!(out.success && out.summary.contains("uncordoned"), "{}", out.summary);
        assert_eq!(
            h.kube_object_now("v1", "Node", None, "w1").unwrap()["spec"]["unschedulable"],
            false
        );
    }

    #[test]
    fn unknown_node_fails() {
        let req = ActionRequest::new("cordon-node", json!({"node": "ghost"}), "bob");
        assert!(!Harness::new().act::<CordonNode>(req).unwrap().success);
    }
}
