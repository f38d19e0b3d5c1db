//! `CPUThrottlingHigh`: containers held back by their CPU limit.

use recipe_sdk::objects::{Named, count, group, list_some};
use recipe_sdk::pod::{Owner, Owners, double_quantity};
use recipe_sdk::prelude::*;
use serde_json::json;

use crate::Report;

pub const ALERTS: &[&str] = &["CPUThrottlingHigh"];

pub fn examine(pods: &[Named], r: &mut Report) -> Result<(), RecipeError> {
    let mut owners = Owners::default();
    let mut seen = Vec::new();
    for p in pods {
        let ns = p.namespace.clone().unwrap_or_else(|| "default".into());
        let Some(container) = p.label("container").map(str::to_string) else {
            r.lines
                .push(format!("pod {}: the alert has no `container` label", p.path()));
            continue;
        };
        let Some(pod) = kube::get_opt("v1", "Pod", Some(&ns), &p.name)? else {
            r.lines.push(format!("pod {} no longer exists", p.path()));
            continue;
        };
        let spec = pod["spec"]["containers"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == container.as_str()))
            .cloned()
            .unwrap_or_default();
        let resources = &spec["resources"];
        let limit = resources["limits"]["cpu"].as_str().map(str::to_string);
        let request = resources["requests"]["cpu"].as_str().map(str::to_string);
        let owner = owners.of(&pod, &ns);
        seen.push(((owner, container, limit, request), p.name.clone()));
    }
    for ((owner, container, limit, request), names) in group(seen) {
        let subject = match names.len() {
            1 => format!("pod {}/{}", owner.namespace, names[0]),
            n => format!("{} of {}", count(n, "pod", "pods"), owner.path()),
        };
        throttled(&subject, &owner, &container, limit, request, &names, r);
    }
    Ok(())
}

fn throttled(
    subject: &str,
    owner: &Owner,
    container: &str,
    limit: Option<String>,
    request: Option<String>,
    names: &[String],
    r: &mut Report,
) {
    let request = request.unwrap_or_else(|| "none".into());
    let Some(limit) = limit else {
        r.lines.push(format!(
            "{subject}: container {container} has no CPU limit now (request {request}); the throttling has stopped or comes from the namespace's LimitRange"
        ));
        return;
    };
    r.identified = true;
    let line = format!("{subject}: container {container} is throttled at its CPU limit {limit} (request {request})");
    r.findings.push(Finding::critical(
        "CPU throttling",
        format!("{line}; pods: {}", list_some(names, 10)),
    ));
    r.lines.push(line);
    if !owner.is_workload() {
        r.findings.push(Finding::info(
            "No automatic remedy",
            format!("{subject} belongs to no Deployment, StatefulSet or DaemonSet; raise the limit in its spec"),
        ));
        return;
    }
    let mut params = owner.params();
    params["container"] = json!(container);
    let raised = double_quantity(&limit);
    if let Some(cpu) = &raised {
        params["cpu"] = json!(cpu);
    }
    r.suggest(
        "raise-cpu-limit",
        params,
        format!(
            "the container needs more CPU than its {limit} limit{}",
            raised.map(|c| format!("; raise it to {c}")).unwrap_or_default()
        ),
    );
}
