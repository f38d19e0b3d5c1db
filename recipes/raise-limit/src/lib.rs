//! `raise-memory-limit` and `raise-cpu-limit` (action): raise one container's limit in the pod
//! template of its Deployment, StatefulSet or DaemonSet, with a strategic merge patch (the other
//! containers and the container's other resources stay as they are), never above the recipe's
//! `max_memory` / `max_cpu` and never below what the container has now.
//!
//! Parameters: `{"namespace": "shop", "kind": "Deployment", "name": "api", "container": "api",
//! "memory": "256Mi"}` (`cpu` for CPU). Without `memory`/`cpu` the limit is doubled; a
//! container with no limit yet needs an explicit value.

use recipe_sdk::prelude::*;
use recipe_sdk::quantity::Quantity;
use serde::Deserialize;
use serde_json::json;

/// The recipe.
pub struct RaiseLimit;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    namespace: String,
    #[serde(default = "deployment")]
    kind: String,
    name: String,
    container: String,
    #[serde(default)]
    memory: Option<String>,
    #[serde(default)]
    cpu: Option<String>,
}

fn deployment() -> String {
    "Deployment".into()
}

/// Which resource an action raises: (resource key, config key of its cap, default cap, words).
fn resource(action: &str) -> Option<(&'static str, &'static str, &'static str, &'static str)> {
    match action {
        "raise-memory-limit" => Some(("memory", "max_memory", "8Gi", "memory limit")),
        "raise-cpu-limit" => Some(("cpu", "max_cpu", "8", "CPU limit")),
        _ => None,
    }
}

fn quantity(what: &str, v: &str) -> Result<Quantity, String> {
    v.parse().map_err(|e| format!("{what}: {e}"))
}

impl Actor for RaiseLimit {
    fn act(request: ActionRequest) -> Result<Outcome, RecipeError> {
        let Some((res, cap_key, cap_default, words)) = resource(&request.action) else {
            return Ok(Outcome::failure(format!(
                "this recipe does not implement `{}`",
                request.action
            )));
        };
        let p: Params = request.params()?;
        if !matches!(p.kind.as_str(), "Deployment" | "StatefulSet" | "DaemonSet") {
            return Ok(Outcome::failure(format!(
                "cannot change a {}: only a Deployment, StatefulSet or DaemonSet has a pod template to change",
                p.kind
            )));
        }
        if let Some(no) = request.outside_incident(&p.namespace) {
            return Ok(no);
        }
        let Some(workload) = kube::get_opt("apps/v1", &p.kind, Some(&p.namespace), &p.name)? else {
            return Ok(Outcome::failure(format!(
                "{} {}/{} does not exist",
                p.kind, p.namespace, p.name
            )));
        };
        let containers = workload["spec"]["template"]["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let Some(c) = containers.iter().find(|c| c["name"] == p.container.as_str()) else {
            let names: Vec<&str> = containers.iter().filter_map(|c| c["name"].as_str()).collect();
            return Ok(Outcome::failure(format!(
                "{} {}/{} has no container `{}` (containers: {})",
                p.kind,
                p.namespace,
                p.name,
                p.container,
                names.join(", ")
            )));
        };
        let current = c["resources"]["limits"][res].as_str().map(str::to_string);
        let asked = if res == "memory" {
            p.memory.clone()
        } else {
            p.cpu.clone()
        };
        let plan = plan(
            res,
            words,
            current.as_deref(),
            asked.as_deref(),
            &config::get(cap_key).unwrap_or(cap_default.into()),
        );
        let target = match plan {
            Ok(t) => t,
            Err(why) => return Ok(Outcome::failure(why)),
        };
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": p.container, "resources": {"limits": {res: target}}}
        ]}}}});
        let after = kube::patch_strategic("apps/v1", &p.kind, Some(&p.namespace), &p.name, &patch)?;
        let object = ObjectRef::new("apps/v1", &p.kind, Some(&p.namespace), &p.name);
        let changes: Vec<Change> = kube::diff(&object, &workload, &after)
            .into_iter()
            .map(|c| describe(c, &p.container, words))
            .collect();
        let verb = if request.dry_run { "would raise" } else { "raised" };
        Ok(Outcome::success(format!(
            "{verb} the {words} of container {} in {} {}/{}: {} → {target}",
            p.container,
            p.kind,
            p.namespace,
            p.name,
            current.as_deref().unwrap_or("none")
        ))
        .details(format!("approved by {}", request.approved_by))
        .changes(changes))
    }
}

/// The new limit: the one asked for, or double the current one; refused when it is not above
/// the current limit, or above `cap`.
fn plan(res: &str, words: &str, current: Option<&str>, asked: Option<&str>, cap: &str) -> Result<String, String> {
    let cap_q = quantity("the recipe's cap", cap)?;
    let current_q = current.map(|c| quantity("the current limit", c)).transpose()?;
    let target = match (asked, &current_q) {
        (Some(a), _) => quantity(&format!("parameter `{res}`"), a)?,
        (None, Some(c)) => c.doubled(),
        (None, None) => {
            return Err(format!(
                "the container has no {words} yet; give one in the parameter `{res}`"
            ));
        }
    };
    if let Some(c) = &current_q
        && target <= *c
    {
        return Err(format!(
            "{target} is not above the current {words} {}; this action only raises it",
            current.unwrap_or_default()
        ));
    }
    if target > cap_q {
        return Err(format!(
            "{target} is above this recipe's maximum {cap} (config `max_{res}`); a person must decide on more"
        ));
    }
    Ok(target.to_string())
}

/// Name the change for people: `memory limit of container api`.
fn describe(c: Change, container: &str, words: &str) -> Change {
    if c.path.ends_with("resources.limits.memory") || c.path.ends_with("resources.limits.cpu") {
        c.described(format!("{words} of container {container}"))
    } else {
        c
    }
}

recipe_sdk::export_actor!(RaiseLimit);

#[cfg(test)]
mod tests {
    use super::*;
    use recipe_sdk::testing::Harness;
    use serde_json::Value;

    /// A Deployment with containers `(name, memory limit)`, for tests.
    fn workload(containers: &[(&str, Option<&str>)]) -> Value {
        let cs: Vec<Value> = containers
            .iter()
            .map(|(n, m)| match m {
                Some(m) => json!({"name": n, "image": "shop:1", "resources": {"limits": {"memory": m}, "requests": {"cpu": "100m"}}}),
                None => json!({"name": n, "image": "shop:1"}),
            })
            .collect();
        json!({"metadata": {"name": "api", "namespace": "shop", "resourceVersion": "7"},
               "spec": {"template": {"spec": {"containers": cs}}}})
    }

    fn incident() -> Incident {
        Incident::from_labels("inc-1", &[("alertname", "KubePodCrashLooping"), ("namespace", "shop")])
    }

    fn req(action: &str, params: Value) -> ActionRequest {
        ActionRequest::new(action, params, "alice").about(incident())
    }

    fn harness() -> Harness {
        Harness::new().config("max_memory", "1Gi").kube_object(
            "apps/v1",
            "Deployment",
            Some("shop"),
            "api",
            workload(&[("api", Some("128Mi")), ("envoy", Some("64Mi"))]),
        )
    }

    #[test]
    fn raises_one_container_and_keeps_the_others() {
        let h = harness();
        let params = json!({"namespace": "shop", "name": "api", "container": "api", "memory": "256Mi"});
        let out = h.act::<RaiseLimit>(req("raise-memory-limit", params)).unwrap();
        assert!(out.success, "{}", out.summary);
        assert_eq!(out.changes.len(), 1, "{:?}", out.changes);
        assert_eq!(
            out.changes[0].to_string(),
            "memory limit of container api in Deployment shop/api: \"128Mi\" → \"256Mi\""
        );
        let now = h.kube_object_now("apps/v1", "Deployment", Some("shop"), "api").unwrap();
        let cs = &now["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs[0]["resources"]["limits"]["memory"], "256Mi");
        assert_eq!(cs[0]["resources"]["requests"]["cpu"], "100m", "the request is kept");
        assert_eq!(cs[1]["resources"]["limits"]["memory"], "64Mi", "the sidecar is kept");
        assert_eq!(now["metadata"]["resourceVersion"], "8");
    }

    #[test]
    fn a_preview_changes_nothing_and_says_what_would_change() {
        let h = harness();
        let params = json!({"namespace": "shop", "name": "api", "container": "api"});
        let out = h
            .act::<RaiseLimit>(req("raise-memory-limit", params).preview())
            .unwrap();
        assert!(out.success && out.summary.starts_with("would raise"), "{}", out.summary);
        assert_eq!(out.changes[0].after.as_deref(), Some("\"256Mi\""), "doubled by default");
        assert!(h.kube_writes().iter().all(|w| w.dry_run));
        let now = h.kube_object_now("apps/v1", "Deployment", Some("shop"), "api").unwrap();
        assert_eq!(
            now["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"],
            "128Mi"
        );
    }

    #[test]
    fn refuses_above_the_cap_lowering_bad_input_and_other_namespaces() {
        let h = harness();
        let cases = [
            (
                json!({"namespace": "shop", "name": "api", "container": "api", "memory": "2Gi"}),
                "above this recipe's maximum 1Gi",
            ),
            (
                json!({"namespace": "shop", "name": "api", "container": "api", "memory": "64Mi"}),
                "not above the current",
            ),
            (
                json!({"namespace": "shop", "name": "api", "container": "api", "memory": "lots"}),
                "not a Kubernetes quantity",
            ),
            (
                json!({"namespace": "shop", "name": "api", "container": "db", "memory": "256Mi"}),
                "no container `db` (containers: api, envoy)",
            ),
            (
                json!({"namespace": "kube-system", "name": "api", "container": "api"}),
                "not one the incident's alerts name",
            ),
            (
                json!({"namespace": "shop", "kind": "Pod", "name": "api", "container": "api"}),
                "cannot change a Pod",
            ),
            (
                json!({"namespace": "shop", "name": "gone", "container": "api"}),
                "does not exist",
            ),
        ];
        for (params, why) in cases {
            let out = h.act::<RaiseLimit>(req("raise-memory-limit", params.clone())).unwrap();
            assert!(!out.success && out.summary.contains(why), "{params}: {}", out.summary);
        }
        assert!(h.kube_writes().is_empty(), "nothing refused was written");
        assert!(
            h.act::<RaiseLimit>(req("raise-memory-limit", json!({"namespace": "shop"})))
                .is_err(),
            "missing fields"
        );
    }

    #[test]
    fn raises_cpu_too() {
        let h = Harness::new().kube_object(
            "apps/v1",
            "Deployment",
            Some("shop"),
            "api",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "api", "resources": {"limits": {"cpu": "500m"}}}]}}}}),
        );
        let params = json!({"namespace": "shop", "name": "api", "container": "api"});
        let out = h.act::<RaiseLimit>(req("raise-cpu-limit", params)).unwrap();
        assert!(out.success, "{}", out.summary);
        assert_eq!(out.changes[0].description, "CPU limit of container api");
        assert_eq!(out.changes[0].after.as_deref(), Some("\"1000m\""));
    }
}
