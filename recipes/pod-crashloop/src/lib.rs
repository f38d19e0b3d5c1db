//! `pod-crashloop`: why does this pod keep restarting (or never get ready)?
//!
//! Reads the pod, each container's current and last state, the pod's recent events and the log
//! tail of the crashing container, then tells apart:
//! - **OOMKilled** → `raise-memory-limit` (current limit doubled),
//! - **image pull failure** (`ErrImagePull`, `ImagePullBackOff`, `InvalidImageName`) → `rollback-deployment`,
//! - **config error** (`CreateContainerConfigError`, a missing ConfigMap/Secret) → `open-ticket`,
//! - **failing probes** (`Unhealthy` events) → `restart-workload`,
//! - an application crash (non-zero exit) → `rollback-deployment`, with the log tail as evidence.

use recipe_sdk::prelude::*;
use serde_json::{Value, json};

/// The recipe.
pub struct PodCrashloop;

/// What the evidence says, most specific first.
#[derive(Debug, PartialEq)]
enum Cause {
    OomKilled {
        container: String,
        limit: Option<String>,
    },
    ImagePull {
        container: String,
        reason: String,
        image: String,
    },
    ConfigError {
        container: String,
        detail: String,
    },
    FailingProbe {
        detail: String,
    },
    AppCrash {
        container: String,
        exit_code: i64,
        reason: String,
    },
}

impl Debugger for PodCrashloop {
    fn debug(incident: Incident) -> Result<Analysis, RecipeError> {
        let pod_name = incident
            .label("pod")
            .ok_or_else(|| RecipeError::new("the alert has no `pod` label; pod-crashloop needs `pod` and `namespace`"))?
            .to_string();
        let ns = incident.label("namespace").unwrap_or("default").to_string();
        let pod = match kube::get("v1", "Pod", Some(&ns), &pod_name) {
            Ok(p) => p,
            Err(kube::KubeError::NotFound(_)) => {
                return Ok(Analysis::inconclusive(format!(
                    "pod {ns}/{pod_name} no longer exists; it was probably replaced by a newer one"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let events = kube::events(Some(&ns), "Pod", &pod_name).unwrap_or_default();
        let mut findings = Vec::new();
        let statuses = pod["status"]["containerStatuses"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for s in &statuses {
            let name = s["name"].as_str().unwrap_or("?");
            findings.push(Finding::info(
                format!("container {name}"),
                format!(
                    "restarts: {}, state: {}, last state: {}",
                    s["restartCount"].as_i64().unwrap_or(0),
                    describe_state(&s["state"]),
                    describe_state(&s["lastState"])
                ),
            ));
        }
        for e in events.iter().rev().take(5) {
            findings.push(Finding::info(
                format!("event {}", e["reason"].as_str().unwrap_or("?")),
                e["message"].as_str().unwrap_or("").to_string(),
            ));
        }
        let cause = classify(&pod, &events);
        // The log tail of the container that crashed, from its previous instance if it restarted.
        let crashed = statuses
            .iter()
            .max_by_key(|s| s["restartCount"].as_i64().unwrap_or(0))
            .and_then(|s| {
                s["name"]
                    .as_str()
                    .map(|n| (n.to_string(), s["restartCount"].as_i64().unwrap_or(0) > 0))
            });
        if let Some((container, previous)) = &crashed {
            let tail = config::parse_or("log_tail_lines", 20u32);
            match kube::pod_logs(&ns, &pod_name, Some(container), Some(tail), *previous) {
                Ok(log) if !log.trim().is_empty() => {
                    findings.push(Finding::info(format!("log tail of {container}"), log))
                }
                Ok(_) => {}
                Err(e) => log::warn(&format!("no log for {ns}/{pod_name}/{container}: {e}")),
            }
        }
        let owner = workload_of(&pod, &ns);
        let target = json!({ "namespace": ns, "kind": owner.0, "name": owner.1 });
        let analysis = match cause {
            Some(Cause::OomKilled { container, limit }) => {
                let suggested = limit.as_deref().and_then(double_quantity);
                let detail = format!(
                    "container {container} was OOMKilled (memory limit {}).",
                    limit.as_deref().unwrap_or("not set")
                );
                let mut params = target.clone();
                params["container"] = json!(container);
                if let Some(s) = &suggested {
                    params["memory"] = json!(s);
                }
                Analysis::identified(format!("{ns}/{pod_name}: {detail}"))
                    .finding(Finding::critical("OOMKilled", detail))
                    .suggest(
                        "raise-memory-limit",
                        params,
                        format!(
                            "the container exceeds its memory limit; raise it{}",
                            suggested.map(|s| format!(" to {s}")).unwrap_or_default()
                        ),
                    )
            }
            Some(Cause::ImagePull {
                container,
                reason,
                image,
            }) => {
                let detail = format!("container {container} cannot pull image {image} ({reason}).");
                Analysis::identified(format!("{ns}/{pod_name}: {detail}"))
                    .finding(Finding::critical("Image pull failure", detail))
                    .suggest(
                        "rollback-deployment",
                        target.clone(),
                        "the new image cannot be pulled; roll back to the last revision that ran",
                    )
            }
            Some(Cause::ConfigError { container, detail }) => {
                let detail = format!("container {container} cannot start: {detail}");
                Analysis::identified(format!("{ns}/{pod_name}: configuration error"))
                    .finding(Finding::critical("Configuration error", detail.clone()))
                    .suggest(
                        "open-ticket",
                        json!({ "summary": format!("{ns}/{pod_name}: missing configuration"), "description": detail }),
                        "a ConfigMap or Secret the pod needs is missing or invalid; a human must provide it",
                    )
            }
            Some(Cause::FailingProbe { detail }) => {
                Analysis::identified(format!("{ns}/{pod_name}: probes are failing"))
                    .finding(Finding::critical("Failing probe", detail))
                    .suggest(
                        "restart-workload",
                        target.clone(),
                        "the probes fail although the process runs; a rolling restart often clears a stuck state",
                    )
            }
            Some(Cause::AppCrash {
                container,
                exit_code,
                reason,
            }) => {
                let detail = format!("container {container} exits with code {exit_code} ({reason}); see the log tail.");
                Analysis::identified(format!("{ns}/{pod_name}: the application crashes"))
                    .finding(Finding::critical("Application crash", detail))
                    .suggest(
                        "rollback-deployment",
                        target.clone(),
                        "the application crashes on start; roll back to the last revision that ran",
                    )
                    .suggest(
                        "restart-workload",
                        target.clone(),
                        "if the crash is transient (a dependency was down), a restart is enough",
                    )
            }
            None => Analysis::inconclusive(format!(
                "{ns}/{pod_name}: no known crash pattern in the pod's state and events"
            ))
            .suggest(
                "open-ticket",
                json!({ "summary": format!("{ns}/{pod_name} crashlooping, cause unknown") }),
                "no automatic remedy fits; hand it to a human",
            ),
        };
        Ok(findings.into_iter().fold(analysis, Analysis::finding))
    }
}

recipe_sdk::export_debugger!(PodCrashloop);

fn describe_state(state: &Value) -> String {
    let Some((phase, detail)) = state.as_object().and_then(|o| o.iter().next()) else {
        return "none".into();
    };
    match detail["reason"].as_str() {
        Some(reason) => match detail["exitCode"].as_i64() {
            Some(code) => format!("{phase} ({reason}, exit {code})"),
            None => format!("{phase} ({reason})"),
        },
        None => phase.clone(),
    }
}

fn classify(pod: &Value, events: &[Value]) -> Option<Cause> {
    let statuses = pod["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let limit_of = |container: &str| {
        pod["spec"]["containers"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == container))
            .and_then(|c| c["resources"]["limits"]["memory"].as_str().map(str::to_string))
    };
    for s in &statuses {
        let name = s["name"].as_str().unwrap_or("?").to_string();
        let terminated = [&s["state"]["terminated"], &s["lastState"]["terminated"]];
        if terminated.iter().any(|t| t["reason"] == "OOMKilled") {
            return Some(Cause::OomKilled {
                limit: limit_of(&name),
                container: name,
            });
        }
    }
    for s in &statuses {
        let name = s["name"].as_str().unwrap_or("?").to_string();
        let waiting = s["state"]["waiting"]["reason"].as_str().unwrap_or("");
        if matches!(waiting, "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName") {
            let image = s["image"].as_str().unwrap_or("?").to_string();
            return Some(Cause::ImagePull {
                container: name,
                reason: waiting.into(),
                image,
            });
        }
        if matches!(waiting, "CreateContainerConfigError" | "CreateContainerError") {
            let detail = s["state"]["waiting"]["message"].as_str().unwrap_or(waiting).to_string();
            return Some(Cause::ConfigError {
                container: name,
                detail,
            });
        }
    }
    let missing = events.iter().find_map(|e| {
        let msg = e["message"].as_str().unwrap_or("");
        let about_config = (msg.contains("configmap") || msg.contains("secret")) && msg.contains("not found");
        about_config.then(|| msg.to_string())
    });
    if let Some(detail) = missing {
        let container = statuses
            .first()
            .and_then(|s| s["name"].as_str())
            .unwrap_or("?")
            .to_string();
        return Some(Cause::ConfigError { container, detail });
    }
    if let Some(e) = events.iter().rev().find(|e| e["reason"] == "Unhealthy") {
        return Some(Cause::FailingProbe {
            detail: e["message"].as_str().unwrap_or("probe failed").to_string(),
        });
    }
    statuses.iter().find_map(|s| {
        let t = &s["lastState"]["terminated"];
        let code = t["exitCode"].as_i64()?;
        (code != 0).then(|| Cause::AppCrash {
            container: s["name"].as_str().unwrap_or("?").to_string(),
            exit_code: code,
            reason: t["reason"].as_str().unwrap_or("Error").to_string(),
        })
    })
}

/// The workload that owns the pod: a ReplicaSet's Deployment, or a StatefulSet/DaemonSet.
fn workload_of(pod: &Value, ns: &str) -> (String, String) {
    let owner = pod["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|o| o.first())
        .cloned();
    let Some(owner) = owner else {
        return ("Pod".into(), pod["metadata"]["name"].as_str().unwrap_or("?").into());
    };
    let kind = owner["kind"].as_str().unwrap_or("?").to_string();
    let name = owner["name"].as_str().unwrap_or("?").to_string();
    if kind != "ReplicaSet" {
        return (kind, name);
    }
    // Ask the ReplicaSet for its Deployment; fall back to the naming convention `<deploy>-<hash>`.
    if let Ok(rs) = kube::get("apps/v1", "ReplicaSet", Some(ns), &name)
        && let Some(dep) = rs["metadata"]["ownerReferences"].as_array().and_then(|o| o.first())
    {
        return (
            dep["kind"].as_str().unwrap_or("Deployment").into(),
            dep["name"].as_str().unwrap_or(&name).into(),
        );
    }
    let base = name.rsplit_once('-').map(|(b, _)| b.to_string()).unwrap_or(name);
    ("Deployment".into(), base)
}

/// `256Mi` → `512Mi`; `1Gi` → `2Gi`; `500M` → `1000M`; plain bytes doubled.
fn double_quantity(q: &str) -> Option<String> {
    let split = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
    let (num, unit) = q.split_at(split);
    let n: u64 = num.parse().ok()?;
    Some(format!("{}{unit}", n * 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use recipe_sdk::testing::Harness;

    fn incident() -> Incident {
        Incident::from_labels(
            "inc-1",
            &[
                ("alertname", "KubePodCrashLooping"),
                ("namespace", "shop"),
                ("pod", "web-7d9f-abcde"),
            ],
        )
    }

    fn pod(status: Value) -> Value {
        json!({
            "metadata": { "ownerReferences": [{ "kind": "ReplicaSet", "name": "web-7d9f" }] },
            "spec": { "containers": [{ "name": "app", "resources": { "limits": { "memory": "256Mi" } } }] },
            "status": { "containerStatuses": [status] },
        })
    }

    fn harness(status: Value) -> Harness {
        Harness::new()
            .kube_object("v1", "Pod", Some("shop"), "web-7d9f-abcde", pod(status))
            .kube_object(
                "apps/v1",
                "ReplicaSet",
                Some("shop"),
                "web-7d9f",
                json!({
                "metadata": { "ownerReferences": [{ "kind": "Deployment", "name": "web" }] } }),
            )
            .pod_log(
                "shop",
                "web-7d9f-abcde",
                "starting\nloading cache\nfatal: out of memory",
            )
    }

    #[test]
    fn oom_killed_suggests_raising_the_limit() {
        let h = harness(json!({ "name": "app", "restartCount": 5,
            "state": { "waiting": { "reason": "CrashLoopBackOff" } },
            "lastState": { "terminated": { "reason": "OOMKilled", "exitCode": 137 } } }));
        let a = h.debug::<PodCrashloop>(incident()).unwrap();
        assert_eq!(a.verdict, Verdict::Identified);
        assert_eq!(a.actions[0].action, "raise-memory-limit");
        assert_eq!(
            a.actions[0].parameters,
            json!({"namespace": "shop", "kind": "Deployment", "name": "web", "container": "app", "memory": "512Mi"})
        );
        assert!(
            a.findings.iter().any(|f| f.detail.contains("fatal: out of memory")),
            "log tail is evidence"
        );
    }

    #[test]
    fn image_pull_failure_suggests_rollback() {
        let h = harness(json!({ "name": "app", "restartCount": 0, "image": "shop/web:v2-typo",
            "state": { "waiting": { "reason": "ImagePullBackOff" } } }));
        let a = h.debug::<PodCrashloop>(incident()).unwrap();
        assert_eq!(a.actions[0].action, "rollback-deployment");
        assert!(a.summary.contains("shop/web:v2-typo"));
    }

    #[test]
    fn missing_configmap_is_a_config_error() {
        let h = harness(json!({ "name": "app", "restartCount": 0,
            "state": { "waiting": { "reason": "CreateContainerConfigError", "message": "configmap \"web-config\" not found" } } }));
        let a = h.debug::<PodCrashloop>(incident()).unwrap();
        assert_eq!(a.actions[0].action, "open-ticket");
        assert!(a.findings[0].detail.contains("web-config"));
    }

    #[test]
    fn failing_probes_suggest_restart() {
        let h = harness(json!({ "name": "app", "restartCount": 2, "state": { "running": {} },
            "lastState": { "terminated": { "reason": "Error", "exitCode": 143 } } }))
        .kube_event(
            "shop",
            "Pod",
            "web-7d9f-abcde",
            "Unhealthy",
            "Liveness probe failed: HTTP probe failed with statuscode: 500",
        );
        let a = h.debug::<PodCrashloop>(incident()).unwrap();
        assert_eq!(a.actions[0].action, "restart-workload");
        assert_eq!(a.actions[0].parameters["name"], "web");
    }

    #[test]
    fn app_crash_suggests_rollback_with_log() {
        let h = harness(json!({ "name": "app", "restartCount": 3,
            "state": { "waiting": { "reason": "CrashLoopBackOff" } },
            "lastState": { "terminated": { "reason": "Error", "exitCode": 1 } } }));
        let a = h.debug::<PodCrashloop>(incident()).unwrap();
        assert_eq!(
            a.actions.iter().map(|a| a.action.as_str()).collect::<Vec<_>>(),
            ["rollback-deployment", "restart-workload"]
        );
    }

    #[test]
    fn gone_pod_is_inconclusive_and_missing_label_is_an_error() {
        let a = Harness::new().debug::<PodCrashloop>(incident()).unwrap();
        assert_eq!(a.verdict, Verdict::Inconclusive);
        let err = Harness::new()
            .debug::<PodCrashloop>(Incident::from_labels("i", &[("alertname", "X")]))
            .unwrap_err();
        assert!(err.message.contains("`pod`"));
    }

    #[test]
    fn doubles_quantities() {
        assert_eq!(double_quantity("256Mi").as_deref(), Some("512Mi"));
        assert_eq!(double_quantity("1Gi").as_deref(), Some("2Gi"));
        assert_eq!(double_quantity("abc"), None);
    }
}
