//! `rerun-job` (action): create a fresh Job from a failed Job's pod template, named
//! `NAME-rerun-N`, the way `kubectl create job --from` does for a CronJob. The failed Job stays
//! (its pods' logs are evidence). A Job that has not failed is refused: it is still running or
//! already succeeded. The controller's own labels and selector are dropped so the new Job gets
//! its own.
//!
//! Parameters: `{"namespace": "batch", "name": "nightly-report"}`.

use recipe_sdk::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

/// The recipe.
pub struct RerunJob;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    namespace: String,
    name: String,
}

const CONTROLLER_LABELS: &[&str] = &[
    "controller-uid",
    "job-name",
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
];

fn failed(job: &Value) -> bool {
    job["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Failed" && c["status"] == "True"))
}

/// The new Job: the old one's template and settings, its controller's labels and selector gone.
fn fresh(job: &Value, name: &str) -> Value {
    let mut spec = job["spec"].clone();
    if let Some(s) = spec.as_object_mut() {
        s.remove("selector");
        s.remove("manualSelector");
    }
    if let Some(labels) = spec["template"]["metadata"]["labels"].as_object_mut() {
        labels.retain(|k, _| !CONTROLLER_LABELS.contains(&k.as_str()));
    }
    let mut labels = job["metadata"]["labels"].clone();
    if let Some(l) = labels.as_object_mut() {
        l.retain(|k, _| !CONTROLLER_LABELS.contains(&k.as_str()));
    }
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": labels,
                     "annotations": {"euphrosyne.io/rerun-of": job["metadata"]["name"]}},
        "spec": spec,
    })
}

impl Actor for RerunJob {
    fn act(request: ActionRequest) -> Result<Outcome, RecipeError> {
        let p: Params = request.params()?;
        let what = format!("Job {}/{}", p.namespace, p.name);
        if let Some(no) = request.outside_incident(&p.namespace) {
            return Ok(no);
        }
        let Some(job) = kube::get_opt("batch/v1", "Job", Some(&p.namespace), &p.name)? else {
            return Ok(Outcome::failure(format!("{what} does not exist")));
        };
        if !failed(&job) {
            return Ok(Outcome::failure(format!(
                "{what} has not failed (no Failed condition): it is still running or it succeeded; nothing to rerun"
            )));
        }
        let mut created = None;
        for n in 1..=20 {
            let name = format!("{}-rerun-{n}", &p.name[..p.name.len().min(50)]);
            match kube::create("batch/v1", "Job", Some(&p.namespace), &fresh(&job, &name)) {
                Ok(j) => {
                    created = Some((name, j));
                    break;
                }
                Err(kube::KubeError::Api(m)) if m.contains("already exists") || m.contains("409") => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let Some((name, new_job)) = created else {
            return Ok(Outcome::failure(format!(
                "{what} was rerun 20 times already; clean up the old reruns first"
            )));
        };
        let object = ObjectRef::new("batch/v1", "Job", Some(&p.namespace), &name);
        let change = Change {
            object,
            path: "".into(),
            before: None,
            after: Some(new_job["spec"]["template"]["spec"]["containers"][0]["image"].to_string()),
            description: format!("a new Job from {what}'s template"),
        };
        let verb = if request.dry_run { "would create" } else { "created" };
        Ok(
            Outcome::success(format!("{verb} Job {}/{name} from failed {what}", p.namespace))
                .details(format!("approved by {}", request.approved_by))
                .changes([change]),
        )
    }
}

recipe_sdk::export_actor!(RerunJob);

#[cfg(test)]
mod tests {
    use super::*;
    use recipe_sdk::testing::Harness;

    fn req() -> ActionRequest {
        let incident = Incident::from_labels("inc-1", &[("alertname", "KubeJobFailed"), ("namespace", "batch")]);
        ActionRequest::new("rerun-job", json!({"namespace": "batch", "name": "report"}), "alice").about(incident)
    }

    fn job(failed: bool) -> Value {
        let cond = if failed {
            json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}])
        } else {
            json!([])
        };
        json!({"metadata": {"name": "report", "labels": {"team": "data", "controller-uid": "u1", "job-name": "report"}},
               "spec": {"backoffLimit": 2, "selector": {"matchLabels": {"controller-uid": "u1"}},
                        "template": {"metadata": {"labels": {"controller-uid": "u1", "job-name": "report", "app": "report"}},
                                     "spec": {"restartPolicy": "Never", "containers": [{"name": "r", "image": "report:1"}]}}},
               "status": {"conditions": cond}})
    }

    #[test]
    fn a_failed_job_is_rerun_from_its_template() {
        let h = Harness::new().kube_object("batch/v1", "Job", Some("batch"), "report", job(true));
        let out = h.act::<RerunJob>(req()).unwrap();
        assert!(out.success, "{}", out.summary);
        let new = h
            .kube_object_now("batch/v1", "Job", Some("batch"), "report-rerun-1")
            .unwrap();
        assert!(new["spec"].get("selector").is_none());
        assert_eq!(new["spec"]["template"]["metadata"]["labels"], json!({"app": "report"}));
        assert_eq!(new["metadata"]["labels"], json!({"team": "data"}));
        assert_eq!(new["spec"]["backoffLimit"], 2);
    }

    #[test]
    fn a_job_that_did_not_fail_is_refused() {
        let h = Harness::new().kube_object("batch/v1", "Job", Some("batch"), "report", job(false));
        let out = h.act::<RerunJob>(req()).unwrap();
        assert!(
            !out.success && out.summary.contains("has not failed"),
            "{}",
            out.summary
        );
        assert!(h.kube_writes().is_empty());
    }
}
