//! `job-failure`: why did this Job fail, or why does it not complete?
//!
//! For every Job the incident's `KubeJobFailed` / `KubeJobNotCompleted` alerts name (`job_name`
//! label; up to config `max_objects`), reads the Job's conditions (`BackoffLimitExceeded`,
//! `DeadlineExceeded`) and its pods: exit codes grouped by cause (the shared
//! [`recipe_sdk::pod`] diagnosis), the log tail of the last failed pod, and for a Job that does
//! not complete the pods that are pending and why (unschedulable, image pull, …).
//!
//! Suggests `rerun-job` when a rerun can help (a deadline, an eviction, a transient crash; the
//! failed Job is kept) and `open-ticket` with the evidence when the code itself fails.

use recipe_sdk::objects::{count, group, list_some};
use recipe_sdk::pod::{self, Cause, Diagnosis};
use recipe_sdk::prelude::*;
use recipe_sdk::report::Report;
use serde_json::{Value, json};

/// The recipe.
pub struct JobFailure;

/// The alerts this recipe examines; each names its Job in `job_name`.
pub const ALERTS: &[&str] = &["KubeJobFailed", "KubeJobNotCompleted"];

impl Debugger for JobFailure {
    fn debug(incident: Incident) -> Result<Analysis, RecipeError> {
        let jobs = incident.objects("job_name", ALERTS)?;
        if jobs.items.is_empty() {
            return Ok(Analysis::inconclusive(
                "no KubeJobFailed/KubeJobNotCompleted alert in this incident names a Job",
            ));
        }
        let mut r = Report::default();
        for j in &jobs.items {
            let ns = j.namespace.as_deref().unwrap_or("default");
            let subject = format!("Job {ns}/{}", j.name);
            match kube::get_opt("batch/v1", "Job", Some(ns), &j.name)? {
                Some(job) => examine(&job, ns, &subject, &mut r)?,
                None => r.line(format!("{subject} no longer exists (deleted, or removed by its TTL)")),
            }
        }
        Ok(r.into_analysis(jobs.notes("Jobs")))
    }
}

recipe_sdk::export_debugger!(JobFailure);

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn examine(job: &Value, ns: &str, subject: &str, r: &mut Report) -> Result<(), RecipeError> {
    let name = job["metadata"]["name"].as_str().unwrap_or("?");
    r.finding(facts(job, subject));
    let pods = kube::list("v1", "Pod", Some(ns), Some(&format!("job-name={name}")), None)?;
    let bound = recipe_sdk::objects::max_objects();
    let mut diagnosed: Vec<Diagnosis> = Vec::new();
    for p in pods.iter().filter(|p| p["status"]["phase"] != "Succeeded").take(bound) {
        diagnosed.push(pod::diagnose_object(p)?);
    }
    let pod_lines = pod_findings(&diagnosed, subject, r);
    if let Some(f) = log_tail(ns, &diagnosed) {
        r.finding(f);
    }
    conclude(job, ns, subject, &diagnosed, &pod_lines, r);
    Ok(())
}

/// The Job's counts, as one finding.
fn facts(job: &Value, subject: &str) -> Finding {
    let (spec, st) = (&job["spec"], &job["status"]);
    Finding::info(
        subject.to_string(),
        format!(
            "active {}, succeeded {} of {}, failed {} (backoffLimit {}); started {}",
            int(&st["active"]),
            int(&st["succeeded"]),
            spec["completions"].as_i64().unwrap_or(1),
            int(&st["failed"]),
            spec["backoffLimit"].as_i64().unwrap_or(6),
            st["startTime"].as_str().unwrap_or("never"),
        ),
    )
}

/// The pods grouped by cause: a finding per group, and one line per known cause.
fn pod_findings(diagnosed: &[Diagnosis], subject: &str, r: &mut Report) -> Vec<String> {
    let mut lines = Vec::new();
    for (headline, ds) in group(diagnosed.iter().map(|d| (d.cause.as_ref().map(Cause::headline), d))) {
        let names: Vec<String> = ds.iter().map(|d| d.name.clone()).collect();
        let who = count(ds.len(), "pod", "pods");
        match headline {
            Some(h) => {
                r.finding(Finding::critical(
                    ds[0].cause.as_ref().map_or("Pod", Cause::title),
                    format!("{subject}, {who} ({}): {h}", list_some(&names, 10)),
                ));
                lines.push(format!("{who}: {h}"));
            }
            None => r.finding(Finding::info(
                format!("{who} without a known cause"),
                list_some(&names, 10),
            )),
        }
    }
    lines
}

/// The log tail of the pod that failed last (it tells most), or of the last pod read.
fn log_tail(ns: &str, diagnosed: &[Diagnosis]) -> Option<Finding> {
    let d = diagnosed
        .iter()
        .rev()
        .find(|d| d.log_from.is_some() && d.phase == "Failed")
        .or(diagnosed.last())?;
    let (container, _) = d.log_from.as_ref()?;
    pod::log_tail(ns, &d.name, container, false)
}

/// The verdict, the line and the actions: from the Job's `Failed` condition, or, for a Job that
/// has not failed (`KubeJobNotCompleted`), from what its pods wait for.
fn conclude(job: &Value, ns: &str, subject: &str, diagnosed: &[Diagnosis], pod_lines: &[String], r: &mut Report) {
    let (spec, st) = (&job["spec"], &job["status"]);
    let name = job["metadata"]["name"].as_str().unwrap_or("?");
    let rerun = json!({ "namespace": ns, "name": name });
    let pods_said = if pod_lines.is_empty() {
        String::new()
    } else {
        format!("; {}", pod_lines.join("; "))
    };
    let failed = st["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Failed" && c["status"] == "True"));
    let Some(failed) = failed else {
        let line = format!("{subject} has not completed: {} active{pods_said}", int(&st["active"]));
        if pod_lines.is_empty() {
            r.line(line);
            r.finding(Finding::info(
                "No automatic remedy",
                "no pod shows a cause; the Job may only be slow",
            ));
        } else {
            r.cause(line.clone());
            let ticket = json!({ "summary": format!("{subject} does not complete"), "description": line });
            r.suggest(
                "open-ticket",
                ticket,
                "its pods cannot run; a human must give them room or fix them",
            );
        }
        return;
    };
    let reason = failed["reason"].as_str().unwrap_or("Failed");
    let said = match failed["message"].as_str() {
        Some(m) if !m.is_empty() => format!(" ({m})"),
        _ => String::new(),
    };
    let line = format!("{subject} failed: {reason}{said}{pods_said}");
    r.cause(line.clone());
    let evicted = diagnosed.iter().any(|d| matches!(d.cause, Some(Cause::Evicted { .. })));
    match reason {
        "DeadlineExceeded" => {
            let deadline = int(&spec["activeDeadlineSeconds"]);
            let why =
                format!("the Job ran past activeDeadlineSeconds ({deadline}s); rerun it if the run was only slow");
            r.suggest("rerun-job", rerun, why);
        }
        _ if evicted => r.suggest(
            "rerun-job",
            rerun,
            "its pods were evicted, not failed by their own code; a rerun on a healthy node should pass",
        ),
        _ => {
            let ticket = json!({ "summary": format!("{subject} failed"), "description": line });
            r.suggest(
                "open-ticket",
                ticket,
                "the Job's code fails; its owner must look at the log tail",
            );
            r.suggest(
                "rerun-job",
                rerun,
                "if the failure was transient (a dependency was down), a rerun is enough",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use recipe_sdk::testing::Harness;

    fn incident(alert: &str) -> Incident {
        Incident::from_labels(
            "inc-1",
            &[("alertname", alert), ("namespace", "batch"), ("job_name", "report")],
        )
    }

    fn job(condition: Value) -> Value {
        json!({"spec": {"backoffLimit": 2, "activeDeadlineSeconds": 600},
            "status": {"failed": 3, "startTime": "2026-01-01T00:00:00Z", "conditions": [condition]}})
    }

    fn failed_pod(h: Harness, name: &str, code: i64) -> Harness {
        h.kube_object(
            "v1",
            "Pod",
            Some("batch"),
            name,
            json!({
            "metadata": {"labels": {"job-name": "report"}},
            "status": {"phase": "Failed", "containerStatuses": [{"name": "main", "restartCount": 0,
                "state": {"terminated": {"reason": "Error", "exitCode": code}}}]}}),
        )
        .pod_log(
            "batch",
            name,
            "connecting to db\npanic: relation \"orders\" does not exist",
        )
    }

    #[test]
    fn backoff_limit_names_exit_codes_and_log_and_opens_a_ticket() {
        let h = (0..3).fold(Harness::new(), |h, i| failed_pod(h, &format!("report-{i}"), 2)).kube_object(
            "batch/v1",
            "Job",
            Some("batch"),
            "report",
            job(json!({"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"})),
        );
        let a = h.debug::<JobFailure>(incident("KubeJobFailed")).unwrap();
        assert_eq!(a.verdict, Verdict::Identified);
        assert_eq!(
            a.summary,
            "Job batch/report failed: BackoffLimitExceeded (Job has reached the specified backoff limit); 3 pods: container main exits with code 2 (Error)"
        );
        assert_eq!(
            a.actions.iter().map(|a| a.action.as_str()).collect::<Vec<_>>(),
            ["open-ticket", "rerun-job"]
        );
        assert!(
            a.findings
                .iter()
                .any(|f| f.detail.contains("relation \"orders\" does not exist"))
        );
    }

    #[test]
    fn a_deadline_suggests_a_rerun_and_a_pending_job_says_why() {
        let h = Harness::new().kube_object(
            "batch/v1",
            "Job",
            Some("batch"),
            "report",
            job(json!({"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline"})),
        );
        let a = h.debug::<JobFailure>(incident("KubeJobFailed")).unwrap();
        assert_eq!(a.actions[0].action, "rerun-job");
        assert_eq!(a.actions[0].parameters, json!({"namespace": "batch", "name": "report"}));
        assert!(a.actions[0].reason.contains("600s"));
        let h = Harness::new()
            .kube_object(
                "batch/v1",
                "Job",
                Some("batch"),
                "report",
                json!({"status": {"active": 1}}),
            )
            .kube_object(
                "v1",
                "Pod",
                Some("batch"),
                "report-x",
                json!({"metadata": {"labels": {"job-name": "report"}},
                "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                    "message": "0/2 nodes are available: 2 Insufficient cpu."}]}}),
            );
        let a = h.debug::<JobFailure>(incident("KubeJobNotCompleted")).unwrap();
        assert!(
            a.summary.contains(
                "has not completed: 1 active; 1 pod: unschedulable: 0/2 nodes are available: 2 Insufficient cpu."
            ),
            "{}",
            a.summary
        );
    }

    #[test]
    fn a_gone_job_is_inconclusive_and_a_missing_label_is_named() {
        let a = Harness::new().debug::<JobFailure>(incident("KubeJobFailed")).unwrap();
        assert_eq!(a.verdict, Verdict::Inconclusive);
        assert!(a.summary.contains("no longer exists"));
        let err = Harness::new()
            .debug::<JobFailure>(Incident::from_labels(
                "i",
                &[("alertname", "KubeJobFailed"), ("namespace", "batch")],
            ))
            .unwrap_err();
        assert!(err.message.contains("`job_name`"), "{}", err.message);
    }
}
