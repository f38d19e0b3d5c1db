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
        let mut lines = Vec::new();
        let mut findings = jobs.notes("Jobs");
        let mut actions: Vec<(String, Value, String)> = Vec::new();
        let mut identified = false;
        for j in &jobs.items {
            let ns = j.namespace.as_deref().unwrap_or("default");
            let subject = format!("Job {ns}/{}", j.name);
            let Some(job) = kube::get_opt("batch/v1", "Job", Some(ns), &j.name)? else {
                lines.push(format!("{subject} no longer exists (deleted, or removed by its TTL)"));
                continue;
            };
            let seen = examine(&job, ns, &subject)?;
            identified |= seen.identified;
            lines.push(seen.line);
            findings.extend(seen.findings);
            for a in seen.actions {
                if !actions.iter().any(|b| b.0 == a.0 && b.1 == a.1) {
                    actions.push(a);
                }
            }
        }
        let summary = lines.join("; ");
        let analysis = if identified {
            Analysis::identified(summary)
        } else {
            Analysis::inconclusive(summary)
        };
        let analysis = actions
            .into_iter()
            .fold(analysis, |a, (action, params, why)| a.suggest(&action, params, why));
        Ok(findings.into_iter().fold(analysis, Analysis::finding))
    }
}

recipe_sdk::export_debugger!(JobFailure);

/// What one Job shows.
struct Seen {
    identified: bool,
    line: String,
    findings: Vec<Finding>,
    actions: Vec<(String, Value, String)>,
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn examine(job: &Value, ns: &str, subject: &str) -> Result<Seen, RecipeError> {
    let name = job["metadata"]["name"].as_str().unwrap_or("?");
    let (spec, st) = (&job["spec"], &job["status"]);
    let mut findings = vec![Finding::info(
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
    )];
    let failed = st["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Failed" && c["status"] == "True"));
    let pods = kube::list("v1", "Pod", Some(ns), Some(&format!("job-name={name}")), None)?;
    let mut diagnosed: Vec<Diagnosis> = Vec::new();
    let bound = config::parse_or(recipe_sdk::objects::MAX_OBJECTS_KEY, 20usize).max(1);
    for p in pods.iter().filter(|p| p["status"]["phase"] != "Succeeded").take(bound) {
        diagnosed.push(pod::diagnose_object(p)?);
    }
    let groups = group(diagnosed.iter().map(|d| (d.cause.as_ref().map(Cause::headline), d)));
    let mut pod_lines = Vec::new();
    for (headline, ds) in &groups {
        let names: Vec<String> = ds.iter().map(|d| d.name.clone()).collect();
        let who = count(ds.len(), "pod", "pods");
        match headline {
            Some(h) => {
                pod_lines.push(format!("{who}: {h}"));
                findings.push(Finding::critical(
                    ds[0].cause.as_ref().map_or("Pod", Cause::title),
                    format!("{subject}, {who} ({}): {h}", list_some(&names, 10)),
                ));
            }
            None => findings.push(Finding::info(
                format!("{who} without a known cause"),
                list_some(&names, 10),
            )),
        }
    }
    // The log of the pod that failed last tells most.
    if let Some(d) = diagnosed
        .iter()
        .rev()
        .find(|d| d.log_from.is_some() && d.phase == "Failed")
        .or(diagnosed.last())
        && let Some((container, _)) = &d.log_from
    {
        let tail = config::parse_or("log_tail_lines", 20u32);
        match kube::pod_logs(ns, &d.name, Some(container), Some(tail), false) {
            Ok(log) if !log.trim().is_empty() => {
                findings.push(Finding::info(format!("log tail of {}/{container}", d.name), log))
            }
            Ok(_) => {}
            Err(e) => log::warn(&format!("no log for {ns}/{}: {e}", d.name)),
        }
    }
    let rerun = (
        "rerun-job".to_string(),
        json!({ "namespace": ns, "name": name }),
        String::new(),
    );
    let ticket = |line: &str| {
        (
            "open-ticket".to_string(),
            json!({ "summary": format!("{subject} failed"), "description": line }),
            "the Job's code fails; its owner must look at the log tail".to_string(),
        )
    };
    let pods_said = if pod_lines.is_empty() {
        String::new()
    } else {
        format!("; {}", pod_lines.join("; "))
    };
    let seen = |identified, line: String, actions| Seen {
        identified,
        line,
        findings: findings.clone(),
        actions,
    };
    let Some(failed) = failed else {
        // Not failed (yet): KubeJobNotCompleted. Say what the pods wait for.
        let line = format!("{subject} has not completed: {} active{pods_said}", int(&st["active"]));
        let why = "no pod shows a cause; the Job may only be slow".to_string();
        return Ok(if pod_lines.is_empty() {
            let mut s = seen(false, line, vec![]);
            s.findings.push(Finding::info("No automatic remedy", why));
            s
        } else {
            seen(true, line.clone(), vec![ticket(&line)])
        });
    };
    let reason = failed["reason"].as_str().unwrap_or("Failed");
    let message = failed["message"].as_str().unwrap_or("");
    let said = if message.is_empty() {
        String::new()
    } else {
        format!(" ({message})")
    };
    let line = format!("{subject} failed: {reason}{said}{pods_said}");
    let transient = diagnosed.iter().any(|d| matches!(d.cause, Some(Cause::Evicted { .. })));
    Ok(match reason {
        "DeadlineExceeded" => {
            let why = format!(
                "the Job ran past activeDeadlineSeconds ({}s); rerun it if the run was only slow",
                int(&spec["activeDeadlineSeconds"])
            );
            seen(true, line, vec![(rerun.0, rerun.1, why)])
        }
        _ if transient => seen(
            true,
            line,
            vec![(
                rerun.0,
                rerun.1,
                "its pods were evicted, not failed by their own code; a rerun on a healthy node should pass".into(),
            )],
        ),
        _ => {
            let retry = (
                rerun.0,
                rerun.1,
                "if the failure was transient (a dependency was down), a rerun is enough".to_string(),
            );
            seen(true, line.clone(), vec![ticket(&line), retry])
        }
    })
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
