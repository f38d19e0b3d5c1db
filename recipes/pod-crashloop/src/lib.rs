//! `pod-crashloop`: why do these pods keep restarting, or never get ready?
//!
//! Handles `KubePodCrashLooping`, `KubePodNotReady` and `KubeContainerWaiting`. Every pod the
//! incident's alerts name (up to config `max_objects`, default 20) is read with its events and
//! diagnosed by [`recipe_sdk::pod`]: OOMKilled, an image that cannot be pulled (the image, the
//! registry and its error), a missing ConfigMap/Secret/key, a volume that cannot be mounted, a
//! failing init container, unschedulable (the scheduler's message), evicted, failing probes, an
//! application crash (with the log tail). Pods of one workload with the same cause are one line:
//! "3 pods of Deployment shop/api: container api OOMKilled at its 128Mi memory limit".
//!
//! Suggests, per cause: `raise-memory-limit` (the limit doubled), `rollback-deployment`,
//! `restart-workload`, `open-ticket` — or says why no bundled action applies.

use recipe_sdk::objects::{count, group, list_some};
use recipe_sdk::pod::{self, Cause, Diagnosis, Owner, Owners};
use recipe_sdk::prelude::*;
use recipe_sdk::report::Report;
use serde_json::json;

/// The recipe.
pub struct PodCrashloop;

/// The alerts this recipe examines; each names its pod in `pod`.
pub const ALERTS: &[&str] = &["KubePodCrashLooping", "KubePodNotReady", "KubeContainerWaiting"];

/// A pod that was read, with its owner.
struct Examined {
    namespace: String,
    owner: Owner,
    diagnosis: Diagnosis,
}

impl Debugger for PodCrashloop {
    fn debug(incident: Incident) -> Result<Analysis, RecipeError> {
        let pods = incident.objects("pod", ALERTS)?;
        if pods.items.is_empty() {
            return Ok(Analysis::inconclusive(format!(
                "no {} alert in this incident names a pod",
                ALERTS.join("/")
            )));
        }
        let mut owners = Owners::default();
        let mut gone = Vec::new();
        let mut examined = Vec::new();
        for p in &pods.items {
            let ns = p.namespace.clone().unwrap_or_else(|| "default".into());
            match pod::diagnose(&ns, &p.name)? {
                None => gone.push(p.path()),
                Some((diagnosis, object)) => examined.push(Examined {
                    owner: owners.of(&object, &ns),
                    namespace: ns,
                    diagnosis,
                }),
            }
        }
        let mut notes = pods.notes("pods");
        if !gone.is_empty() {
            notes.push(Finding::info(
                "Pods that no longer exist",
                format!(
                    "{} ({}): replaced by newer pods, or deleted; their alerts resolve on their own",
                    list_some(&gone, 10),
                    count(gone.len(), "pod", "pods")
                ),
            ));
        }
        if examined.is_empty() {
            let summary = format!(
                "{} named by the alerts no longer exist ({}); nothing left to examine",
                count(gone.len(), "pod", "pods"),
                list_some(&gone, 5)
            );
            return Ok(notes
                .into_iter()
                .fold(Analysis::inconclusive(summary), Analysis::finding));
        }
        Ok(analyse(examined, notes))
    }
}

recipe_sdk::export_debugger!(PodCrashloop);

/// Groups the pods by owner and cause and writes one diagnosis.
fn analyse(examined: Vec<Examined>, notes: Vec<Finding>) -> Analysis {
    let groups = group(examined.into_iter().map(|e| {
        let key = (e.owner.clone(), e.diagnosis.cause.as_ref().map(Cause::headline));
        (key, e)
    }));
    let mut r = Report::default();
    for ((owner, headline), pods) in &groups {
        let first = &pods[0];
        let subject = subject(owner, pods.len(), &first.namespace, &first.diagnosis.name);
        let names = list_some(&pods.iter().map(|p| p.diagnosis.name.clone()).collect::<Vec<_>>(), 10);
        match (&first.diagnosis.cause, headline) {
            (Some(cause), Some(headline)) => {
                r.cause(format!("{subject}: {headline}"));
                r.finding(Finding::critical(
                    cause.title(),
                    format!("{subject}: {headline} (pods: {names})"),
                ));
                r.remedy(&subject, cause.remedy(owner));
            }
            _ => {
                let state = if first.diagnosis.ready {
                    "ready now"
                } else {
                    "not ready"
                };
                r.line(format!("{subject}: {state}, no known cause in its state and events"));
                let phase = &first.diagnosis.phase;
                r.finding(Finding::warning(
                    "Cause unknown",
                    format!("{subject} (pods: {names}): {state}; phase {phase}"),
                ));
            }
        }
        for f in evidence(first) {
            r.finding(f);
        }
    }
    if !r.identified {
        let summary = r.lines.join("; ");
        r.suggest(
            "open-ticket",
            json!({ "summary": format!("pods not ready, cause unknown: {summary}") }),
            "no known pattern in the pods' state and events; hand it to a human",
        );
    }
    r.into_analysis(notes)
}

/// "pod shop/api-1" or "3 pods of Deployment shop/api".
fn subject(owner: &Owner, n: usize, namespace: &str, first: &str) -> String {
    match (n, owner.kind.as_str()) {
        (1, "Pod") => format!("pod {namespace}/{first}"),
        (1, _) => format!("pod {namespace}/{first} of {}", owner.path()),
        (_, _) => format!("{} of {}", count(n, "pod", "pods"), owner.path()),
    }
}

/// The first pod's containers and, where it tells something, its log tail.
fn evidence(e: &Examined) -> Vec<Finding> {
    let d = &e.diagnosis;
    let mut out = vec![Finding::info(
        format!("containers of {}", d.name),
        d.containers.join("\n"),
    )];
    let wants_log = d.cause.as_ref().is_none_or(Cause::wants_log);
    if let (true, Some((container, previous))) = (wants_log, &d.log_from) {
        out.extend(pod::log_tail(&e.namespace, &d.name, container, *previous));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use recipe_sdk::testing::Harness;
    use serde_json::Value;

    fn alert(name: &str, pod: &str) -> Alert {
        Alert::firing(&[("alertname", name), ("namespace", "shop"), ("pod", pod)])
    }

    fn incident() -> Incident {
        Incident::from_alerts("inc-1", vec![alert("KubePodCrashLooping", "web-7d9f-abcde")])
    }

    fn pod(name: &str, status: Value) -> Value {
        json!({
            "metadata": { "name": name, "namespace": "shop", "labels": {"pod-template-hash": "7d9f"},
                "ownerReferences": [{ "kind": "ReplicaSet", "name": "web-7d9f", "controller": true }] },
            "spec": { "containers": [{ "name": "app", "resources": { "limits": { "memory": "256Mi" } } }] },
            "status": { "containerStatuses": [status] },
        })
    }

    fn with_pod(h: Harness, name: &str, status: Value) -> Harness {
        h.kube_object("v1", "Pod", Some("shop"), name, pod(name, status))
    }

    fn harness(status: Value) -> Harness {
        let h = Harness::new().kube_object(
            "apps/v1",
            "ReplicaSet",
            Some("shop"),
            "web-7d9f",
            json!({ "metadata": { "ownerReferences": [{ "kind": "Deployment", "name": "web" }] } }),
        );
        with_pod(h, "web-7d9f-abcde", status).pod_log(
            "shop",
            "web-7d9f-abcde",
            "starting\nloading cache\nfatal: out of memory",
        )
    }

    fn oom() -> Value {
        json!({ "name": "app", "restartCount": 5,
            "state": { "waiting": { "reason": "CrashLoopBackOff" } },
            "lastState": { "terminated": { "reason": "OOMKilled", "exitCode": 137 } } })
    }

    #[test]
    fn oom_killed_suggests_raising_the_limit() {
        let a = harness(oom()).debug::<PodCrashloop>(incident()).unwrap();
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
    fn a_grouped_incident_is_analysed_pod_by_pod_and_summarised_once() {
        let mut h = harness(oom());
        let mut alerts = vec![alert("KubePodCrashLooping", "web-7d9f-abcde")];
        for i in 0..3 {
            let name = format!("web-7d9f-{i}");
            h = with_pod(h, &name, oom());
            alerts.push(alert("KubePodCrashLooping", &name));
            alerts.push(alert("KubePodNotReady", &name));
        }
        let pulled = json!({ "name": "app", "image": "registry.example.com/web:v2",
            "state": { "waiting": { "reason": "ErrImagePull", "message": "rpc error: not found" } } });
        h = with_pod(h, "web-7d9f-new", pulled);
        alerts.push(alert("KubeContainerWaiting", "web-7d9f-new"));
        alerts.push(alert("KubePodCrashLooping", "gone-1"));
        alerts.push(alert("CPUThrottlingHigh", "other"));
        let a = h.debug::<PodCrashloop>(Incident::from_alerts("i", alerts)).unwrap();
        assert_eq!(
            a.summary,
            "4 pods of Deployment shop/web: container app OOMKilled at its 256Mi memory limit; \
             pod shop/web-7d9f-new of Deployment shop/web: container app cannot pull image registry.example.com/web:v2 \
             from registry.example.com (ErrImagePull): rpc error: not found"
        );
        let actions: Vec<&str> = a.actions.iter().map(|a| a.action.as_str()).collect();
        assert_eq!(
            actions,
            ["raise-memory-limit", "rollback-deployment"],
            "one suggestion per cause"
        );
        assert!(
            a.findings.iter().any(|f| f.detail.contains("shop/gone-1")),
            "{:?}",
            a.findings
        );
        assert_eq!(
            a.findings.iter().filter(|f| f.title.starts_with("log tail")).count(),
            1,
            "one log tail per group, not per pod"
        );
    }

    #[test]
    fn the_bound_is_said_when_reached() {
        let alerts = (0..4).map(|i| alert("KubePodCrashLooping", &format!("p{i}"))).collect();
        let a = Harness::new()
            .config("max_objects", "2")
            .debug::<PodCrashloop>(Incident::from_alerts("i", alerts))
            .unwrap();
        assert!(
            a.findings.iter().any(|f| f.detail.contains("examined 2 of 4 pods")),
            "{:?}",
            a.findings
        );
    }

    #[test]
    fn image_pull_failure_suggests_rollback() {
        let h = harness(json!({ "name": "app", "restartCount": 0, "image": "shop/web:v2-typo",
            "state": { "waiting": { "reason": "ImagePullBackOff" } } }));
        let a = h.debug::<PodCrashloop>(incident()).unwrap();
        assert_eq!(a.actions[0].action, "rollback-deployment");
        assert!(a.summary.contains("shop/web:v2-typo from docker.io"), "{}", a.summary);
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
        assert!(a.summary.contains("no longer exist"), "{}", a.summary);
        let err = Harness::new()
            .debug::<PodCrashloop>(Incident::from_labels("i", &[("alertname", "KubePodNotReady")]))
            .unwrap_err();
        assert!(err.message.contains("`pod`"), "{}", err.message);
    }
}
