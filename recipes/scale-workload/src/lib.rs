//! `scale-workload` (action): set the replicas of a Deployment or StatefulSet through its
//! `scale` subresource, like `kubectl scale`, never above the recipe's `max_replicas`.
//!
//! Parameters: `{"namespace": "shop", "kind": "Deployment", "name": "api", "replicas": 5}`.

use recipe_sdk::prelude::*;
use serde::Deserialize;

/// The recipe.
pub struct ScaleWorkload;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    namespace: String,
    #[serde(default = "deployment")]
    kind: String,
    name: String,
    replicas: u32,
}

fn deployment() -> String {
    "Deployment".into()
}

impl Actor for ScaleWorkload {
    fn act(request: ActionRequest) -> Result<Outcome, RecipeError> {
        let p: Params = request.params()?;
        let what = format!("{} {}/{}", p.kind, p.namespace, p.name);
        if !matches!(p.kind.as_str(), "Deployment" | "StatefulSet") {
            return Ok(Outcome::failure(format!(
                "cannot scale a {}: only a Deployment or StatefulSet",
                p.kind
            )));
        }
        if let Some(no) = request.outside_incident(&p.namespace) {
            return Ok(no);
        }
        let max = config::parse_or("max_replicas", 50u32);
        if p.replicas > max {
            return Ok(Outcome::failure(format!(
                "{} replicas is above this recipe's maximum {max} (config `max_replicas`); a person must decide on more",
                p.replicas
            )));
        }
        let scale = match kube::get_scale("apps/v1", &p.kind, &p.namespace, &p.name) {
            Ok(s) => s,
            Err(kube::KubeError::NotFound(_)) => return Ok(Outcome::failure(format!("{what} does not exist"))),
            Err(e) => return Err(e.into()),
        };
        let now = scale["spec"]["replicas"].as_u64().unwrap_or(0);
        if now == u64::from(p.replicas) {
            return Ok(Outcome::success(format!("{what} already has {now} replicas")));
        }
        let after = kube::scale("apps/v1", &p.kind, &p.namespace, &p.name, p.replicas)?;
        let object = ObjectRef::new("apps/v1", &p.kind, Some(&p.namespace), &p.name);
        let changes = kube::diff(&object, &scale, &after)
            .into_iter()
            .filter(|c| c.path == "spec.replicas")
            .map(|c| c.described("replicas"));
        let verb = if request.dry_run { "would scale" } else { "scaled" };
        Ok(
            Outcome::success(format!("{verb} {what} from {now} to {} replicas", p.replicas))
                .details(format!("approved by {}", request.approved_by))
                .changes(changes),
        )
    }
}

recipe_sdk::export_actor!(ScaleWorkload);

#[cfg(test)]
mod tests {
    use super::*;
    use recipe_sdk::testing::Harness;
    use serde_json::json;

    fn req(params: serde_json::Value) -> ActionRequest {
        let incident = Incident::from_labels("inc-1", &[("alertname", "KubeHpaMaxedOut"), ("namespace", "shop")]);
        ActionRequest::new("scale-workload", params, "alice").about(incident)
    }

    fn harness() -> Harness {
        Harness::new().config("max_replicas", "10").kube_object(
            "apps/v1",
            "Deployment",
            Some("shop"),
            "api",
            json!({"metadata": {"name": "api"}, "spec": {"replicas": 2}, "status": {"replicas": 2}}),
        )
    }

    #[test]
    fn scales_and_reports_the_replicas() {
        let h = harness();
        let out = h
            .act::<ScaleWorkload>(req(json!({"namespace": "shop", "name": "api", "replicas": 5})))
            .unwrap();
        assert!(out.success, "{}", out.summary);
        assert_eq!(out.changes[0].to_string(), "replicas in Deployment shop/api: 2 → 5");
        assert_eq!(
            h.kube_object_now("apps/v1", "Deployment", Some("shop"), "api").unwrap()["spec"]["replicas"],
            5
        );
        assert_eq!(h.kube_writes()[0].verb, "scale");
    }

    #[test]
    fn refuses_above_the_cap_and_elsewhere() {
        let h = harness();
        let out = h
            .act::<ScaleWorkload>(req(json!({"namespace": "shop", "name": "api", "replicas": 11})))
            .unwrap();
        assert!(
            out.summary.contains("above this recipe's maximum 10"),
            "{}",
            out.summary
        );
        let out = h
            .act::<ScaleWorkload>(req(json!({"namespace": "web", "name": "api", "replicas": 3})))
            .unwrap();
        assert!(out.summary.contains("not one the incident's"), "{}", out.summary);
        assert!(
            h.act::<ScaleWorkload>(req(json!({"namespace": "shop", "name": "api", "replicas": -1})))
                .is_err()
        );
        assert!(h.kube_writes().is_empty());
    }
}
