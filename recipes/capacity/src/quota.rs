//! ResourceQuotas filling up: used against hard, and who uses it.

use recipe_sdk::objects::{Named, group};
use recipe_sdk::pod::Owners;
use recipe_sdk::prelude::*;
use recipe_sdk::quantity::Quantity;
use serde_json::{Value, json};

use crate::Report;

pub const ALERTS: &[&str] = &["KubeQuotaAlmostFull", "KubeQuotaFullyUsed", "KubeQuotaExceeded"];

/// How much of `resource` (`requests.cpu`, `limits.memory`, `pods`, …) one pod counts for.
fn usage(pod: &Value, resource: &str) -> Option<f64> {
    if resource == "pods" || resource == "count/pods" {
        return Some(1.0);
    }
    let (kind, what) = match resource.split_once('.') {
        Some(("requests", w)) => ("requests", w),
        Some(("limits", w)) => ("limits", w),
        _ if matches!(resource, "cpu" | "memory") => ("requests", resource),
        _ => return None,
    };
    let sum = pod["spec"]["containers"]
        .as_array()?
        .iter()
        .filter_map(|c| c["resources"][kind][what].as_str())
        .filter_map(|q| q.parse::<Quantity>().ok())
        .map(|q| q.value())
        .sum();
    Some(sum)
}

fn show(resource: &str, v: f64) -> String {
    if resource.ends_with("memory") || resource.ends_with("storage") {
        format!("{:.0}Mi", v / 1_048_576.0)
    } else if resource.ends_with("cpu") || resource == "cpu" {
        format!("{:.0}m", v * 1000.0)
    } else {
        format!("{v:.0}")
    }
}

pub fn examine(q: &Named, r: &mut Report) -> Result<(), RecipeError> {
    let ns = q.namespace.as_deref().unwrap_or("default");
    let subject = format!("ResourceQuota {ns}/{}", q.name);
    let Some(quota) = kube::get_opt("v1", "ResourceQuota", Some(ns), &q.name)? else {
        r.lines.push(format!("{subject} no longer exists"));
        return Ok(());
    };
    let resources: Vec<String> = match q.label("resource") {
        Some(res) => vec![res.to_string()],
        None => quota["status"]["hard"]
            .as_object()
            .map(|h| h.keys().cloned().collect())
            .unwrap_or_default(),
    };
    let pods = kube::list("v1", "Pod", Some(ns), None, None)?;
    let live: Vec<&Value> = pods
        .iter()
        .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
        .collect();
    let mut owners = Owners::default();
    let owned: Vec<_> = live.iter().map(|p| (owners.of(p, ns), *p)).collect();
    for resource in resources {
        let hard = quota["status"]["hard"][&resource].as_str().unwrap_or("?");
        let used = quota["status"]["used"][&resource].as_str().unwrap_or("?");
        let pct = match (hard.parse::<Quantity>(), used.parse::<Quantity>()) {
            (Ok(h), Ok(u)) if h.value() > 0.0 => format!(" ({:.0}%)", 100.0 * u.value() / h.value()),
            _ => String::new(),
        };
        let mut users: Vec<(String, f64)> =
            group(owned.iter().filter_map(|(o, p)| Some((o.path(), usage(p, &resource)?))))
                .into_iter()
                .map(|(who, vs)| (who, vs.iter().sum::<f64>()))
                .filter(|(_, v)| *v > 0.0)
                .collect();
        users.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top: Vec<String> = users
            .iter()
            .take(5)
            .map(|(who, v)| format!("{who} {}", show(&resource, *v)))
            .collect();
        r.identified = true;
        let users_said = if top.is_empty() {
            String::new()
        } else {
            format!("; most used by {}", top.join(", "))
        };
        let line = format!("{subject}: {resource} {used} of {hard} used{pct}{users_said}");
        r.findings.push(Finding::warning("Quota", line.clone()));
        r.lines.push(line.clone());
        r.suggest(
            "open-ticket",
            json!({ "summary": format!("{subject}: {resource} nearly exhausted"), "description": line }),
            "no bundled action changes a quota: raise it, or lower the top users' requests",
        );
    }
    Ok(())
}
