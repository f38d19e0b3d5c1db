//! `raise-hpa-max` (action): raise a HorizontalPodAutoscaler's `spec.maxReplicas`, never above
//! the recipe's `max_replicas` and never below what it is.
//!
//! Parameters: `{"namespace": "shop", "name": "api", "max_replicas": 20}`; without
//! `max_replicas`, half as many again (at least one more).

use recipe_sdk::prelude::*;
use serde::Deserialize;
use serde_json::json;

/// The recipe.
pub struct RaiseHpaMax;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    namespace: String,
    name: String,
    #[serde(default)]
    max_replicas: Option<u32>,
}

const HPA: (&str, &str) = ("autoscaling/v1", "HorizontalPodAutoscaler");

impl Actor for RaiseHpaMax {
    fn act(request: ActionRequest) -> Result<Outcome, RecipeError> {
        let p: Params = request.params()?;
        let what = format!("HorizontalPodAutoscaler {}/{}", p.namespace, p.name);
        if let Some(no) = request.outside_incident(&p.namespace) {
            return Ok(no);
        }
        let Some(before) = kube::get_opt(HPA.0, HPA.1, Some(&p.namespace), &p.name)? else {
            return Ok(Outcome::failure(format!("{what} does not exist")));
        };
        let now = before["spec"]["maxReplicas"].as_u64().unwrap_or(0) as u32;
        let target = p.max_replicas.unwrap_or(now + (now / 2).max(1));
        let cap = config::parse_or("max_replicas", 100u32);
        if target <= now {
            return Ok(Outcome::failure(format!(
                "{target} is not above the current maxReplicas {now}; this action only raises it"
            )));
        }
        if target > cap {
            return Ok(Outcome::failure(format!(
                "{target} is above this recipe's maximum {cap} (config `max_replicas`); a person must decide on more"
            )));
        }
        let after = kube::patch(
            HPA.0,
            HPA.1,
            Some(&p.namespace),
            &p.name,
            &json!({"spec": {"maxReplicas": target}}),
        )?;
        let object = ObjectRef::new(HPA.0, HPA.1, Some(&p.namespace), &p.name);
        let changes = kube::diff(&object, &before, &after)
            .into_iter()
            .map(|c| c.described("maximum replicas"));
        let verb = if request.dry_run { "would raise" } else { "raised" };
        Ok(
            Outcome::success(format!("{verb} the maxReplicas of {what} from {now} to {target}"))
                .details(format!("approved by {}", request.approved_by))
                .changes(changes),
        )
    }
}

recipe_sdk::export_actor!(RaiseHpaMax);

#[cfg(test)]
mod tests {
    use super::*;
    use recipe_sdk::testing::Harness;

    fn req(params: serde_json::Value) -> ActionRequest {
        let incident = Incident::from_labels("inc-1", &[("alertname", "KubeHpaMaxedOut"), ("namespace", "shop")]);
        ActionRequest::new("raise-hpa-max", params, "alice").about(incident)
    }

    fn harness() -> Harness {
        Harness::new().config("max_replicas", "12").kube_object(
            HPA.0,
            HPA.1,
            Some("shop"),
            "api",
            json!({"spec": {"minReplicas": 2, "maxReplicas": 6}}),
        )
    }

    #[test]
    fn raises_by_half_by_default() {
        let h = harness();
        let out = h
            .act::<RaiseHpaMax>(req(json!({"namespace": "shop", "name": "api"})))
            .unwrap();
        assert!(out.success, "{}", out.summary);
        assert_eq!(
            out.changes[0].to_string(),
            "maximum replicas in HorizontalPodAutoscaler shop/api: 6 → 9"
        );
    }

    #[test]
    fn capped_and_only_up() {
        let h = harness();
        for (n, why) in [
            (13, "above this recipe's maximum 12"),
            (6, "not above the current maxReplicas 6"),
        ] {
            let out = h
                .act::<RaiseHpaMax>(req(json!({"namespace": "shop", "name": "api", "max_replicas": n})))
                .unwrap();
            assert!(!out.success && out.summary.contains(why), "{}", out.summary);
        }
        assert!(h.kube_writes().is_empty());
    }
}
