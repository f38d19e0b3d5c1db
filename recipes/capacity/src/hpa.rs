//! Autoscalers: at the maximum, or unable to reach the replicas they want.

use recipe_sdk::pod::Cause;
use recipe_sdk::prelude::*;
use serde_json::{Value, json};

use crate::{Report, int};

pub const ALERTS: &[&str] = &["KubeHpaMaxedOut", "KubeHpaReplicasMismatch"];

/// `autoscaling/v1` is served by every Kubernetes version; its conditions are in an annotation.
const HPA: (&str, &str) = ("autoscaling/v1", "HorizontalPodAutoscaler");
const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";

fn conditions(hpa: &Value) -> Vec<Value> {
    hpa["metadata"]["annotations"][CONDITIONS]
        .as_str()
        .and_then(|s| serde_json::from_str::<Vec<Value>>(s).ok())
        .or_else(|| hpa["status"]["conditions"].as_array().cloned())
        .unwrap_or_default()
}

pub fn examine(ns: &str, name: &str, r: &mut Report) -> Result<(), RecipeError> {
    let subject = format!("HorizontalPodAutoscaler {ns}/{name}");
    let Some(hpa) = kube::get_opt(HPA.0, HPA.1, Some(ns), name)? else {
        r.lines.push(format!("{subject} no longer exists"));
        return Ok(());
    };
    let (spec, st) = (&hpa["spec"], &hpa["status"]);
    let (max, current, desired) = (
        int(&spec["maxReplicas"]),
        int(&st["currentReplicas"]),
        int(&st["desiredReplicas"]),
    );
    let target = (
        spec["scaleTargetRef"]["kind"]
            .as_str()
            .unwrap_or("Deployment")
            .to_string(),
        spec["scaleTargetRef"]["name"].as_str().unwrap_or("?").to_string(),
    );
    r.findings.push(Finding::info(
        subject.clone(),
        format!(
            "replicas {current} (wants {desired}), min {}, max {max}; target {} {}; CPU {}% of target {}%",
            spec["minReplicas"].as_i64().unwrap_or(1),
            target.0,
            target.1,
            st["currentCPUUtilizationPercentage"]
                .as_i64()
                .map_or("?".into(), |v| v.to_string()),
            spec["targetCPUUtilizationPercentage"]
                .as_i64()
                .map_or("?".into(), |v| v.to_string()),
        ),
    ));
    // The autoscaler's own word on why it cannot scale.
    let unable = conditions(&hpa)
        .into_iter()
        .find(|c| (c["type"] == "ScalingActive" || c["type"] == "AbleToScale") && c["status"] == "False");
    if let Some(c) = unable {
        r.identified = true;
        let line = format!(
            "{subject} cannot scale: {} ({})",
            c["message"].as_str().unwrap_or(""),
            c["reason"].as_str().unwrap_or("")
        );
        r.findings
            .push(Finding::critical("Autoscaler cannot scale", line.clone()));
        r.findings.push(Finding::info(
            "No automatic remedy",
            format!("{subject}: raising the maximum would not help; give every container a CPU request and make sure metrics-server answers"),
        ));
        r.lines.push(line);
        return Ok(());
    }
    if let Some(blocked) = blocked(ns, &target)? {
        r.identified = true;
        let line = format!(
            "{subject} wants {desired} replicas but {} {} cannot grow: {blocked}",
            target.0, target.1
        );
        r.findings.push(Finding::critical("Target cannot grow", line.clone()));
        r.findings.push(Finding::info(
            "No automatic remedy",
            format!(
                "{subject}: raising the maximum would not help until the target's pods can be created and scheduled"
            ),
        ));
        r.lines.push(line);
        return Ok(());
    }
    if current >= max && max > 0 {
        r.identified = true;
        let cap = config::parse_or("max_replicas_suggested", 100i64);
        let proposed = (max * 2).min(cap).max(max + 1);
        r.lines.push(format!(
            "{subject} has run at its maximum of {max} replicas; its target can grow, so raise the maximum to {proposed}"
        ));
        r.suggest(
            "raise-hpa-max",
            json!({ "namespace": ns, "name": name, "max_replicas": proposed }),
            format!("the autoscaler wants more than {max} replicas and nothing else blocks them"),
        );
        return Ok(());
    }
    r.lines.push(format!(
        "{subject}: {current} replicas, wants {desired}, max {max}; no cause seen (the alert may clear)"
    ));
    Ok(())
}

/// Why the target cannot grow: the controller cannot create pods (quota), or they do not schedule.
fn blocked(ns: &str, target: &(String, String)) -> Result<Option<String>, RecipeError> {
    let (kind, name) = (target.0.as_str(), target.1.as_str());
    if !matches!(kind, "Deployment" | "StatefulSet") {
        return Ok(None);
    }
    let Some(w) = kube::get_opt("apps/v1", kind, Some(ns), name)? else {
        return Ok(Some(format!("the target {kind} {ns}/{name} does not exist")));
    };
    let failure = w["status"]["conditions"]
        .as_array()
        .and_then(|cs| {
            cs.iter()
                .find(|c| c["type"] == "ReplicaFailure" && c["status"] == "True")
        })
        .and_then(|c| c["message"].as_str());
    if let Some(m) = failure {
        return Ok(Some(m.to_string()));
    }
    let Some(sel) = kube::match_labels(&w) else {
        return Ok(None);
    };
    let pods = kube::list("v1", "Pod", Some(ns), Some(&sel), None)?;
    let pending =
        pods.iter().filter(|p| p["status"]["phase"] == "Pending").find_map(|p| {
            match recipe_sdk::pod::classify(p, &[]) {
                Some(Cause::Unschedulable { message }) => Some(format!("its pods are unschedulable: {message}")),
                _ => None,
            }
        });
    Ok(pending)
}
