//! `rollback-deployment` (action): roll a workload back to its previous revision, with the
//! semantics of `kubectl rollout undo`:
//!
//! - **Deployment**: the ReplicaSets it owns carry `deployment.kubernetes.io/revision`; the
//!   Deployment's pod template is replaced (JSON patch) by the template of the ReplicaSet with
//!   the highest revision below the current one, minus its `pod-template-hash` label.
//! - **StatefulSet / DaemonSet**: the ControllerRevisions it owns carry `revision` and, in
//!   `data`, a patch of the pod template; the one before the newest is applied (strategic merge).
//!
//! Refuses when there is no earlier revision, saying so. Parameters:
//! `{"namespace": "shop", "kind": "Deployment", "name": "api"}` (kind defaults to Deployment).

use recipe_sdk::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

/// The recipe.
pub struct Rollback;

#[derive(Deserialize)]
struct Params {
    namespace: String,
    #[serde(default = "deployment")]
    kind: String,
    name: String,
}

fn deployment() -> String {
    "Deployment".into()
}

const REVISION: &str = "deployment.kubernetes.io/revision";

fn uid(o: &Value) -> &str {
    o["metadata"]["uid"].as_str().unwrap_or_default()
}

fn owned_by<'a>(items: &'a [Value], owner: &Value) -> impl Iterator<Item = &'a Value> {
    let id = uid(owner).to_string();
    items.iter().filter(move |i| {
        i["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|refs| refs.iter().any(|r| r["uid"] == id.as_str() && r["controller"] == true))
    })
}

fn rs_revision(rs: &Value) -> Option<u64> {
    rs["metadata"]["annotations"][REVISION].as_str()?.parse().ok()
}

/// The template to go back to, and the revision it had: the highest below `current`.
fn previous_template(replicasets: &[Value], deployment: &Value) -> Result<(Value, u64), String> {
    let current: Option<u64> = deployment["metadata"]["annotations"][REVISION]
        .as_str()
        .and_then(|r| r.parse().ok());
    let mut revs: Vec<(u64, &Value)> = owned_by(replicasets, deployment)
        .filter_map(|rs| rs_revision(rs).map(|r| (r, rs)))
        .collect();
    revs.sort_by_key(|(r, _)| *r);
    let current = current.or(revs.last().map(|(r, _)| *r)).unwrap_or(0);
    let Some((rev, rs)) = revs.into_iter().rev().find(|(r, _)| *r < current) else {
        return Err(format!(
            "there is no revision before the current one ({current}) to roll back to"
        ));
    };
    let mut template = rs["spec"]["template"].clone();
    if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
        labels.remove("pod-template-hash");
    }
    Ok((template, rev))
}

/// The ControllerRevision before the newest one (its `data` patch and revision).
fn previous_revision(revisions: &[Value], owner: &Value) -> Result<(Value, u64), String> {
    let mut revs: Vec<(u64, &Value)> = owned_by(revisions, owner)
        .filter_map(|r| r["revision"].as_u64().map(|n| (n, r)))
        .collect();
    revs.sort_by_key(|(r, _)| *r);
    match revs.as_slice() {
        [.., (rev, prev), (_, _)] => Ok((prev["data"].clone(), *rev)),
        _ => Err(format!(
            "there is no revision before the current one ({}) to roll back to",
            revs.last().map_or(0, |(r, _)| *r)
        )),
    }
}

impl Actor for Rollback {
    fn act(request: ActionRequest) -> Result<Outcome, RecipeError> {
        let p: Params = request.params()?;
        if let Some(no) = request.outside_incident(&p.namespace) {
            return Ok(no);
        }
        let what = format!("{} {}/{}", p.kind, p.namespace, p.name);
        let (owners, revisions) = match p.kind.as_str() {
            "Deployment" => ("ReplicaSet", "apps/v1"),
            "StatefulSet" | "DaemonSet" => ("ControllerRevision", "apps/v1"),
            other => {
                return Ok(Outcome::failure(format!(
                    "cannot roll back a {other}: only a Deployment, StatefulSet or DaemonSet has revisions"
                )));
            }
        };
        let Some(before) = kube::get_opt("apps/v1", &p.kind, Some(&p.namespace), &p.name)? else {
            return Ok(Outcome::failure(format!("{what} does not exist")));
        };
        let history = kube::list(revisions, owners, Some(&p.namespace), None, None)?;
        let planned = if p.kind == "Deployment" {
            previous_template(&history, &before).map(|(t, rev)| {
                let ops = json!([{"op": "replace", "path": "/spec/template", "value": t}]);
                (kube::PatchType::Json, ops, rev)
            })
        } else {
            previous_revision(&history, &before).map(|(data, rev)| (kube::PatchType::Strategic, data, rev))
        };
        let (ptype, patch, rev) = match planned {
            Ok(p) => p,
            Err(why) => return Ok(Outcome::failure(format!("cannot roll back {what}: {why}"))),
        };
        let after = kube::patch_with(
            "apps/v1",
            &p.kind,
            Some(&p.namespace),
            &p.name,
            ptype,
            &patch,
            &kube::WriteOptions::default(),
        )?;
        let object = ObjectRef::new("apps/v1", &p.kind, Some(&p.namespace), &p.name);
        let changes = kube::diff(&object, &before["spec"]["template"], &after["spec"]["template"])
            .into_iter()
            .map(|mut c| {
                c.path = format!("spec.template.{}", c.path);
                c
            });
        let verb = if request.dry_run {
            "would roll back"
        } else {
            "rolled back"
        };
        Ok(Outcome::success(format!("{verb} {what} to revision {rev}"))
            .details(format!("approved by {}", request.approved_by))
            .changes(changes))
    }
}

recipe_sdk::export_actor!(Rollback);

#[cfg(test)]
mod tests {
    use super::*;
    use recipe_sdk::testing::Harness;

    fn owner(uid: &str) -> Value {
        json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "api", "uid": uid, "controller": true}])
    }

    fn rs(name: &str, rev: &str, image: &str, uid: &str) -> Value {
        json!({"metadata": {"name": name, "annotations": {REVISION: rev}, "ownerReferences": owner(uid)},
               "spec": {"template": {"metadata": {"labels": {"app": "api", "pod-template-hash": name}},
                                     "spec": {"containers": [{"name": "api", "image": image}]}}}})
    }

    fn harness(revisions: &[(&str, &str, &str)]) -> Harness {
        let dep = json!({"metadata": {"name": "api", "uid": "d-1", "annotations": {REVISION: "3"}},
                         "spec": {"template": {"metadata": {"labels": {"app": "api"}},
                                               "spec": {"containers": [{"name": "api", "image": "shop:3"}]}}}});
        let mut h = Harness::new().kube_object("apps/v1", "Deployment", Some("shop"), "api", dep);
        for (name, rev, image) in revisions {
            h = h.kube_object("apps/v1", "ReplicaSet", Some("shop"), name, rs(name, rev, image, "d-1"));
        }
        // Another Deployment's ReplicaSet is never a candidate.
        h.kube_object(
            "apps/v1",
            "ReplicaSet",
            Some("shop"),
            "web-9",
            rs("web-9", "2", "web:9", "other"),
        )
    }

    fn req() -> ActionRequest {
        let incident = Incident::from_labels("inc-1", &[("alertname", "KubePodCrashLooping"), ("namespace", "shop")]);
        ActionRequest::new(
            "rollback-deployment",
            json!({"namespace": "shop", "name": "api"}),
            "alice",
        )
        .about(incident)
    }

    #[test]
    fn goes_back_to_the_previous_revision_template() {
        let h = harness(&[
            ("api-1", "1", "shop:1"),
            ("api-2", "2", "shop:2"),
            ("api-3", "3", "shop:3"),
        ]);
        let out = h.act::<Rollback>(req()).unwrap();
        assert!(out.success, "{}", out.summary);
        assert!(out.summary.contains("to revision 2"), "{}", out.summary);
        assert_eq!(out.changes.len(), 1, "{:?}", out.changes);
        assert_eq!(out.changes[0].path, "spec.template.spec.containers[api].image");
        assert_eq!(out.changes[0].after.as_deref(), Some("\"shop:2\""));
        let now = h.kube_object_now("apps/v1", "Deployment", Some("shop"), "api").unwrap();
        assert_eq!(now["spec"]["template"]["spec"]["containers"][0]["image"], "shop:2");
        assert!(
            now["spec"]["template"]["metadata"]["labels"]
                .get("pod-template-hash")
                .is_none()
        );
    }

    #[test]
    fn refuses_without_an_earlier_revision() {
        let h = harness(&[("api-3", "3", "shop:3")]);
        let out = h.act::<Rollback>(req()).unwrap();
        assert!(!out.success);
        assert!(
            out.summary.contains("no revision before the current one (3)"),
            "{}",
            out.summary
        );
        assert!(h.kube_writes().is_empty());
    }

    #[test]
    fn statefulsets_use_their_controller_revisions() {
        let sts = json!({"metadata": {"name": "db", "uid": "s-1"}, "spec": {"template": {"spec": {"containers": [{"name": "db", "image": "pg:15"}]}}}});
        let cr = |n: &str, rev: u64, image: &str| {
            json!({"metadata": {"name": n, "ownerReferences": [{"uid": "s-1", "controller": true}]},
            "revision": rev, "data": {"spec": {"template": {"spec": {"containers": [{"name": "db", "image": image}]}}}}})
        };
        let h = Harness::new()
            .kube_object("apps/v1", "StatefulSet", Some("shop"), "db", sts)
            .kube_object(
                "apps/v1",
                "ControllerRevision",
                Some("shop"),
                "db-1",
                cr("db-1", 1, "pg:14"),
            )
            .kube_object(
                "apps/v1",
                "ControllerRevision",
                Some("shop"),
                "db-2",
                cr("db-2", 2, "pg:15"),
            );
        let mut r = req();
        r.parameters = json!({"namespace": "shop", "kind": "StatefulSet", "name": "db"});
        let out = h.act::<Rollback>(r).unwrap();
        assert!(out.success, "{}", out.summary);
        let now = h.kube_object_now("apps/v1", "StatefulSet", Some("shop"), "db").unwrap();
        assert_eq!(now["spec"]["template"]["spec"]["containers"][0]["image"], "pg:14");
    }

    #[test]
    fn refuses_other_kinds_and_namespaces() {
        let h = harness(&[]);
        let mut r = req();
        r.parameters = json!({"namespace": "shop", "kind": "Job", "name": "api"});
        assert!(h.act::<Rollback>(r).unwrap().summary.contains("cannot roll back a Job"));
        let mut r = req();
        r.parameters = json!({"namespace": "prod", "name": "api"});
        assert!(h.act::<Rollback>(r).unwrap().summary.contains("not one the incident's"));
    }
}
