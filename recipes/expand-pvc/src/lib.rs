//! `expand-pvc` (action): raise a PersistentVolumeClaim's `spec.resources.requests.storage`.
//! Only when its StorageClass has `allowVolumeExpansion: true` (otherwise the API server
//! refuses the change, and the recipe says why first), only upwards (volumes do not shrink), and
//! never above the recipe's `max_size`. The recipe holds cluster scope to read StorageClasses,
//! so it checks itself that the claim is in a namespace the incident's alerts name.
//!
//! Parameters: `{"namespace": "shop", "name": "data-db-0", "size": "20Gi"}`; without `size`,
//! the request is doubled.

use recipe_sdk::prelude::*;
use recipe_sdk::quantity::Quantity;
use serde::Deserialize;
use serde_json::json;

/// The recipe.
pub struct ExpandPvc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    namespace: String,
    name: String,
    #[serde(default)]
    size: Option<String>,
}

fn q(what: &str, v: &str) -> Result<Quantity, String> {
    v.parse().map_err(|e| format!("{what}: {e}"))
}

impl Actor for ExpandPvc {
    fn act(request: ActionRequest) -> Result<Outcome, RecipeError> {
        let p: Params = request.params()?;
        let what = format!("PersistentVolumeClaim {}/{}", p.namespace, p.name);
        if let Some(no) = request.outside_incident(&p.namespace) {
            return Ok(no);
        }
        let Some(pvc) = kube::get_opt("v1", "PersistentVolumeClaim", Some(&p.namespace), &p.name)? else {
            return Ok(Outcome::failure(format!("{what} does not exist")));
        };
        let Some(class) = pvc["spec"]["storageClassName"].as_str() else {
            return Ok(Outcome::failure(format!(
                "{what} has no StorageClass: a statically bound volume cannot be expanded through its claim"
            )));
        };
        let Some(sc) = kube::get_opt("storage.k8s.io/v1", "StorageClass", None, class)? else {
            return Ok(Outcome::failure(format!(
                "{what}'s StorageClass `{class}` does not exist"
            )));
        };
        if sc["allowVolumeExpansion"].as_bool() != Some(true) {
            return Ok(Outcome::failure(format!(
                "StorageClass `{class}` does not allow volume expansion (allowVolumeExpansion is not true); {what} cannot grow in place — move the data to a larger volume"
            )));
        }
        let current = pvc["spec"]["resources"]["requests"]["storage"].as_str().unwrap_or("0");
        let plan = (|| {
            let now = q("the current request", current)?;
            let target = match &p.size {
                Some(s) => q("parameter `size`", s)?,
                None => now.doubled(),
            };
            let cap = config::get("max_size").unwrap_or_else(|| "1Ti".into());
            if target <= now {
                return Err(format!(
                    "{target} is not above the current {current}; volumes only grow"
                ));
            }
            if target > q("the recipe's max_size", &cap)? {
                return Err(format!(
                    "{target} is above this recipe's maximum {cap} (config `max_size`)"
                ));
            }
            Ok(target.to_string())
        })();
        let target = match plan {
            Ok(t) => t,
            Err(why) => return Ok(Outcome::failure(why)),
        };
        let patch = json!({"spec": {"resources": {"requests": {"storage": target}}}});
        let after = kube::patch("v1", "PersistentVolumeClaim", Some(&p.namespace), &p.name, &patch)?;
        let object = ObjectRef::new("v1", "PersistentVolumeClaim", Some(&p.namespace), &p.name);
        let changes = kube::diff(&object, &pvc, &after)
            .into_iter()
            .map(|c| c.described("requested storage"));
        let verb = if request.dry_run { "would expand" } else { "expanded" };
        Ok(Outcome::success(format!("{verb} {what} from {current} to {target}"))
            .details(format!(
                "StorageClass {class} allows expansion; approved by {}",
                request.approved_by
            ))
            .changes(changes))
    }
}

recipe_sdk::export_actor!(ExpandPvc);

#[cfg(test)]
mod tests {
    use super::*;
    use recipe_sdk::testing::Harness;

    fn req(params: serde_json::Value) -> ActionRequest {
        let incident = Incident::from_labels(
            "inc-1",
            &[("alertname", "KubePersistentVolumeFillingUp"), ("namespace", "shop")],
        );
        ActionRequest::new("expand-pvc", params, "alice").about(incident)
    }

    fn harness(expandable: bool) -> Harness {
        Harness::new()
            .config("max_size", "100Gi")
            .kube_object(
                "storage.k8s.io/v1",
                "StorageClass",
                None,
                "fast",
                json!({"allowVolumeExpansion": expandable}),
            )
            .kube_object(
                "v1",
                "PersistentVolumeClaim",
                Some("shop"),
                "data",
                json!({"spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "10Gi"}}}}),
            )
    }

    #[test]
    fn expands_when_the_class_allows_it() {
        let h = harness(true);
        let out = h
            .act::<ExpandPvc>(req(json!({"namespace": "shop", "name": "data"})))
            .unwrap();
        assert!(out.success, "{}", out.summary);
        assert_eq!(
            out.changes[0].to_string(),
            "requested storage in PersistentVolumeClaim shop/data: \"10Gi\" → \"20Gi\""
        );
    }

    #[test]
    fn says_why_not() {
        let out = harness(false)
            .act::<ExpandPvc>(req(json!({"namespace": "shop", "name": "data"})))
            .unwrap();
        assert!(
            out.summary.contains("does not allow volume expansion"),
            "{}",
            out.summary
        );
        let h = harness(true);
        for (size, why) in [
            ("5Gi", "volumes only grow"),
            ("200Gi", "above this recipe's maximum 100Gi"),
            ("big", "not a Kubernetes quantity"),
        ] {
            let out = h
                .act::<ExpandPvc>(req(json!({"namespace": "shop", "name": "data", "size": size})))
                .unwrap();
            assert!(!out.success && out.summary.contains(why), "{}", out.summary);
        }
        let out = h
            .act::<ExpandPvc>(req(json!({"namespace": "other", "name": "data"})))
            .unwrap();
        assert!(out.summary.contains("not one the incident's"), "{}", out.summary);
        assert!(h.kube_writes().is_empty());
    }
}
