//! `node-health`: what is wrong with these nodes, and who runs on them?
//!
//! Handles `KubeNodeNotReady`, `KubeNodeUnreachable`, `KubeNodeReadinessFlapping`,
//! `KubeNodePressure`, `KubeletTooManyPods` (label `node`) and node-exporter's
//! `NodeFilesystemSpaceFillingUp` / `NodeFilesystemAlmostOutOfSpace` (label `instance`, the node
//! name in kube-prometheus, a port stripped). For each node (up to config `max_objects`) reads
//! its conditions (Ready, MemoryPressure, DiskPressure, PIDPressure, NetworkUnavailable), taints,
//! whether it is cordoned, and the pods on it: how many against its allocatable pods, and which a
//! drain would evict (not DaemonSet or mirror pods, not finished ones).
//!
//! Suggests `cordon-node` for a node that is unhealthy and still schedulable, and `drain-node`
//! when the pods on it should move (not ready, under pressure, out of disk).

use recipe_sdk::objects::{Named, count, list_some};
use recipe_sdk::pod::drain_skip;
use recipe_sdk::prelude::*;
use recipe_sdk::report::Report;
use serde_json::{Value, json};

/// The recipe.
pub struct NodeHealth;

const BY_NODE: &[&str] = &[
    "KubeNodeNotReady",
    "KubeNodeUnreachable",
    "KubeNodeReadinessFlapping",
    "KubeNodePressure",
    "KubeletTooManyPods",
    "NodeNotReady",
];
const BY_INSTANCE: &[&str] = &["NodeFilesystemSpaceFillingUp", "NodeFilesystemAlmostOutOfSpace"];
const PRESSURES: [&str; 4] = ["MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable"];

impl Debugger for NodeHealth {
    fn debug(incident: Incident) -> Result<Analysis, RecipeError> {
        let by_node = incident.objects("node", BY_NODE)?;
        let by_instance = incident.objects("instance", BY_INSTANCE)?;
        let mut nodes: Vec<(String, Vec<&Named>)> = Vec::new();
        for n in by_node.items.iter().chain(&by_instance.items) {
            // node-exporter's `instance` may carry a port; the node's name does not.
            let name = if n.label("node").is_some() || by_node.items.contains(n) {
                n.name.clone()
            } else {
                n.name.split(':').next().unwrap_or(&n.name).to_string()
            };
            match nodes.iter_mut().find(|(m, _)| *m == name) {
                Some((_, alerts)) => alerts.push(n),
                None => nodes.push((name, vec![n])),
            }
        }
        if nodes.is_empty() {
            return Ok(Analysis::inconclusive("no node alert in this incident names a node"));
        }
        let mut r = Report::default();
        for (name, named) in &nodes {
            examine(name, named, &mut r)?;
        }
        let notes = [by_node.notes("nodes"), by_instance.notes("nodes")].concat();
        Ok(r.into_analysis(notes))
    }
}

recipe_sdk::export_debugger!(NodeHealth);

fn examine(name: &str, named: &[&Named], r: &mut Report) -> Result<(), RecipeError> {
    let subject = format!("node {name}");
    let Some(node) = kube::get_opt("v1", "Node", None, name)? else {
        r.lines.push(format!("{subject} is not registered any more"));
        return Ok(());
    };
    let conditions = node["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let of = |t: &str| conditions.iter().find(|c| c["type"] == t);
    let said = |c: &Value| {
        format!(
            "{}: {}",
            c["reason"].as_str().unwrap_or(""),
            c["message"].as_str().unwrap_or("")
        )
    };
    let mut problems = Vec::new();
    match of("Ready") {
        Some(c) if c["status"] == "True" => {}
        Some(c) => {
            problems.push(format!("not Ready ({})", c["status"].as_str().unwrap_or("Unknown")));
            r.findings.push(Finding::critical(
                "NotReady",
                format!("{subject}: Ready={} {}", c["status"], said(c)),
            ));
        }
        None => problems.push("no Ready condition ever reported".to_string()),
    }
    for p in PRESSURES {
        if let Some(c) = of(p).filter(|c| c["status"] == "True") {
            problems.push(p.to_string());
            r.findings.push(Finding::critical(p, format!("{subject}: {}", said(c))));
        }
    }
    let taints: Vec<String> = node["spec"]["taints"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    format!(
                        "{}:{}",
                        t["key"].as_str().unwrap_or("?"),
                        t["effect"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let pods = kube::list("v1", "Pod", None, None, Some(&format!("spec.nodeName={name}")))?;
    let running = pods.iter().filter(|p| drain_skip(p) != Some("finished")).count();
    let evicted: Vec<String> = pods
        .iter()
        .filter(|p| drain_skip(p).is_none())
        .map(|p| {
            format!(
                "{}/{}",
                p["metadata"]["namespace"].as_str().unwrap_or("?"),
                p["metadata"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect();
    let capacity = node["status"]["allocatable"]["pods"]
        .as_str()
        .and_then(|p| p.parse::<usize>().ok());
    r.findings.push(Finding::info(
        subject.clone(),
        format!(
            "{} running{}; taints: {}; a drain would evict {}",
            count(running, "pod", "pods"),
            capacity.map(|c| format!(" of {c} allocatable")).unwrap_or_default(),
            if taints.is_empty() {
                "none".to_string()
            } else {
                taints.join(", ")
            },
            if evicted.is_empty() {
                "nothing".to_string()
            } else {
                format!("{} ({})", evicted.len(), list_some(&evicted, 10))
            }
        ),
    ));
    let alerted = |a: &str| named.iter().any(|n| n.named_by(a));
    if alerted("KubeletTooManyPods")
        && let Some(c) = capacity
    {
        problems.push(format!("runs {running} of its {c} allocatable pods"));
    }
    if alerted("KubeNodeReadinessFlapping") && problems.is_empty() {
        problems.push(
            "Ready now but flapping (its Ready condition changed often; watch the kubelet and the network)".into(),
        );
    }
    for n in named.iter().filter(|n| BY_INSTANCE.iter().any(|a| n.named_by(a))) {
        problems.push(format!(
            "filesystem {} ({}) filling up",
            n.label("mountpoint").unwrap_or("?"),
            n.label("device").unwrap_or("?")
        ));
    }
    if problems.is_empty() {
        r.lines
            .push(format!("{subject} looks healthy now; the alert may clear"));
        return Ok(());
    }
    r.identified = true;
    r.lines.push(format!("{subject}: {}", problems.join(", ")));
    let unhealthy = problems.join(", ");
    if node["spec"]["unschedulable"] == true {
        r.findings
            .push(Finding::info("Cordoned", format!("{subject} is already unschedulable")));
    } else {
        r.suggest(
            "cordon-node",
            json!({ "node": name }),
            format!("stop scheduling onto {subject}: {unhealthy}"),
        );
    }
    let must_move = problems
        .iter()
        .any(|p| p.starts_with("not Ready") || PRESSURES.contains(&p.as_str()) || p.starts_with("filesystem"));
    if must_move && !evicted.is_empty() {
        r.suggest(
            "drain-node",
            json!({ "node": name }),
            format!(
                "move the {} a drain would evict ({}) off {subject}; DaemonSet and mirror pods stay",
                count(evicted.len(), "pod", "pods"),
                list_some(&evicted, 5)
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use recipe_sdk::testing::Harness;

    fn node(ready: &str, disk: &str, unschedulable: bool) -> Value {
        json!({
            "spec": { "unschedulable": unschedulable, "taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}] },
            "status": { "allocatable": {"pods": "2"}, "conditions": [
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
                Some("kube-system"),
                "agent-x",
                json!({ "spec": { "nodeName": "worker-1" },
                "metadata": {"ownerReferences": [{"kind": "DaemonSet", "name": "agent", "controller": true}]} }),
            )
            .kube_object(
                "v1",
                "Pod",
                Some("shop"),
                "web-2",
                json!({ "spec": { "nodeName": "worker-2" } }),
            )
    }

    fn incident(alert: &str) -> Incident {
        Incident::from_labels("inc", &[("alertname", alert), ("node", "worker-1")])
    }

    #[test]
    fn not_ready_node_is_cordoned_and_drained() {
        let a = harness(node("False", "True", false))
            .debug::<NodeHealth>(incident("KubeNodeNotReady"))
            .unwrap();
        assert_eq!(a.verdict, Verdict::Identified);
        assert_eq!(a.summary, "node worker-1: not Ready (False), DiskPressure");
        assert_eq!(a.actions[0].action, "cordon-node");
        assert_eq!(a.actions[0].parameters, json!({"node": "worker-1"}));
        assert_eq!(a.actions[1].action, "drain-node");
        assert!(
            a.actions[1].reason.contains("1 pod a drain would evict (shop/web-1)"),
            "{}",
            a.actions[1].reason
        );
        let info = &a.findings.iter().find(|f| f.title == "node worker-1").unwrap().detail;
        assert!(info.contains("2 pods running of 2 allocatable"), "{info}");
        assert!(info.contains("node.kubernetes.io/not-ready:NoSchedule"));
    }

    #[test]
    fn too_many_pods_and_filesystems_are_named() {
        let a = harness(node("True", "False", false))
            .debug::<NodeHealth>(incident("KubeletTooManyPods"))
            .unwrap();
        assert_eq!(a.summary, "node worker-1: runs 2 of its 2 allocatable pods");
        assert_eq!(a.actions.len(), 1, "cordon only: the pods are healthy");
        let fs = Incident::from_labels(
            "inc",
            &[
                ("alertname", "NodeFilesystemAlmostOutOfSpace"),
                ("instance", "worker-1:9100"),
                ("mountpoint", "/var/lib/containerd"),
                ("device", "/dev/sda1"),
            ],
        );
        let a = harness(node("True", "False", false)).debug::<NodeHealth>(fs).unwrap();
        assert_eq!(
            a.summary,
            "node worker-1: filesystem /var/lib/containerd (/dev/sda1) filling up"
        );
        assert_eq!(a.actions[1].action, "drain-node");
    }

    #[test]
    fn cordoned_node_gets_no_second_cordon_and_healthy_is_inconclusive() {
        let a = harness(node("False", "False", true))
            .debug::<NodeHealth>(incident("KubeNodeUnreachable"))
            .unwrap();
        assert!(a.actions.iter().all(|a| a.action != "cordon-node"));
        let a = harness(node("True", "False", false))
            .debug::<NodeHealth>(incident("KubeNodeNotReady"))
            .unwrap();
        assert_eq!(a.verdict, Verdict::Inconclusive);
        assert!(a.actions.is_empty());
    }

    #[test]
    fn gone_nodes_and_missing_labels() {
        let a = Harness::new()
            .debug::<NodeHealth>(incident("KubeNodeNotReady"))
            .unwrap();
        assert!(a.summary.contains("not registered any more"));
        let err = Harness::new()
            .debug::<NodeHealth>(Incident::from_labels("i", &[("alertname", "KubeNodePressure")]))
            .unwrap_err();
        assert!(err.message.contains("`node`"), "{}", err.message);
    }
}
