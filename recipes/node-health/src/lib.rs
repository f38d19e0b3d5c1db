//! `node-not-ready`: what is wrong with this node, and who runs on it?
//!
//! Reads the node's conditions (Ready, MemoryPressure, DiskPressure, PIDPressure,
//! NetworkUnavailable) and the pods scheduled on it; suggests `cordon-node` when the node is not
//! Ready or under pressure and is still schedulable.

use recipe_sdk::prelude::*;
use serde_json::json;

/// The recipe.
pub struct NodeNotReady;

const PRESSURES: [&str; 4] = ["MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable"];

impl Debugger for NodeNotReady {
    fn debug(incident: Incident) -> Result<Analysis, RecipeError> {
        let node_name = incident
            .label("node")
            .or_else(|| incident.label("instance").map(|i| i.split(':').next().unwrap_or(i)))
            .ok_or_else(|| RecipeError::new("the alert has neither a `node` nor an `instance` label"))?
            .to_string();
        let node = match kube::get("v1", "Node", None, &node_name) {
            Ok(n) => n,
            Err(kube::KubeError::NotFound(_)) => {
                return Ok(Analysis::inconclusive(format!(
                    "node {node_name} is not registered any more"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let conditions = node["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let status_of = |t: &str| {
            conditions.iter().find(|c| c["type"] == t).map(|c| {
                (
                    c["status"].as_str().unwrap_or("Unknown").to_string(),
                    c["reason"].as_str().unwrap_or("").to_string(),
                    c["message"].as_str().unwrap_or("").to_string(),
                )
            })
        };
        let mut findings = Vec::new();
        let mut problems = Vec::new();
        match status_of("Ready") {
            Some((s, _, _)) if s == "True" => findings.push(Finding::info("Ready", "the node reports Ready")),
            Some((s, reason, message)) => {
                problems.push(format!("not Ready ({s}: {reason})"));
                findings.push(Finding::critical("NotReady", format!("Ready={s} {reason}: {message}")));
            }
            None => {
                problems.push("no Ready condition".to_string());
                findings.push(Finding::critical(
                    "NotReady",
                    "the node has never reported a Ready condition",
                ));
            }
        }
        for p in PRESSURES {
            if let Some((s, reason, message)) = status_of(p)
                && s == "True"
            {
                problems.push(p.to_string());
                findings.push(Finding::critical(p, format!("{reason}: {message}")));
            }
        }
        let pods = kube::list("v1", "Pod", None, None, Some(&format!("spec.nodeName={node_name}"))).unwrap_or_default();
        let names: Vec<String> = pods
            .iter()
            .map(|p| {
                format!(
                    "{}/{}",
                    p["metadata"]["namespace"].as_str().unwrap_or("?"),
                    p["metadata"]["name"].as_str().unwrap_or("?")
                )
            })
            .collect();
        findings.push(Finding::info(
            format!("{} pods on the node", names.len()),
            names.join(", "),
        ));
        let unschedulable = node["spec"]["unschedulable"].as_bool().unwrap_or(false);
        if problems.is_empty() {
            return Ok(findings.into_iter().fold(
                Analysis::inconclusive(format!(
                    "node {node_name} looks healthy now; the alert may have cleared"
                )),
                Analysis::finding,
            ));
        }
        let mut analysis = Analysis::identified(format!("node {node_name}: {}", problems.join(", ")));
        if unschedulable {
            findings.push(Finding::info("Cordoned", "the node is already unschedulable"));
        } else {
            analysis = analysis.suggest(
                "cordon-node",
                json!({ "node": node_name }),
                format!(
                    "stop scheduling onto a node that is {}; {} pods run there",
                    problems.join(", "),
                    names.len()
                ),
            );
        }
        Ok(findings.into_iter().fold(analysis, Analysis::finding))
    }
}

recipe_sdk::export_debugger!(NodeNotReady);

#[cfg(test)]
mod tests {
    use super::*;
    use recipe_sdk::testing::Harness;
    use serde_json::Value;

    fn node(ready: &str, disk: &str, unschedulable: bool) -> Value {
        json!({
            "spec": { "unschedulable": unschedulable },
            "status": { "conditions": [
                { "type": "Ready", "status": ready, "reason": "KubeletNotReady", "message": "PLEG is not healthy" },
                { "type": "DiskPressure", "status": disk, "reason": "KubeletHasDiskPressure", "message": "ephemeral storage low" },
                { "type": "MemoryPressure", "status": "False" },
            ] },
        })
    }

    fn harness(n: Value) -> Harness {
        Harness::new()
            .kube_object("v1", "Node", None, "worker-1", n)
            .kube_object(
                "v1",
                "Pod",
                Some("shop"),
                "web-1",
                json!({ "spec": { "nodeName": "worker-1" } }),
            )
            .kube_object(
                "v1",
                "Pod",
                Some("shop"),
                "web-2",
                json!({ "spec": { "nodeName": "worker-2" } }),
            )
    }

    fn incident() -> Incident {
        Incident::from_labels("inc", &[("alertname", "KubeNodeNotReady"), ("node", "worker-1")])
    }

    #[test]
    fn not_ready_node_is_cordoned() {
        let a = harness(node("False", "True", false))
            .debug::<NodeNotReady>(incident())
            .unwrap();
        assert_eq!(a.verdict, Verdict::Identified);
        assert!(
            a.summary.contains("not Ready") && a.summary.contains("DiskPressure"),
            "{}",
            a.summary
        );
        assert_eq!(a.actions[0].action, "cordon-node");
        assert_eq!(a.actions[0].parameters, json!({"node": "worker-1"}));
        assert!(
            a.findings
                .iter()
                .any(|f| f.title == "1 pods on the node" && f.detail == "shop/web-1")
        );
    }

    #[test]
    fn cordoned_node_gets_no_second_cordon() {
        let a = harness(node("False", "False", true))
            .debug::<NodeNotReady>(incident())
            .unwrap();
        assert!(a.actions.is_empty());
    }

    #[test]
    fn healthy_node_is_inconclusive() {
        let a = harness(node("True", "False", false))
            .debug::<NodeNotReady>(incident())
            .unwrap();
        assert_eq!(a.verdict, Verdict::Inconclusive);
        assert!(a.actions.is_empty());
    }

    #[test]
    fn instance_label_works_too() {
        let i = Incident::from_labels(
            "inc",
            &[("alertname", "KubeNodeNotReady"), ("instance", "worker-1:9100")],
        );
        let a = harness(node("Unknown", "False", false))
            .debug::<NodeNotReady>(i)
            .unwrap();
        assert_eq!(a.actions[0].action, "cordon-node");
    }
}
