//! `workload-rollout`: why is a Deployment, StatefulSet or DaemonSet short of ready pods, or
//! stuck rolling out?
//!
//! For every workload the incident's alerts name (`deployment`, `statefulset`, `daemonset`
//! labels; up to config `max_objects`), reads the workload, its conditions and events, its
//! revisions and its pods, and names the causes:
//! - pods that are not ready, grouped by revision and cause (the shared [`recipe_sdk::pod`]
//!   diagnosis: OOMKilled, image pull, missing config, unschedulable with the scheduler's
//!   message, …), each with the bundled remedy;
//! - a new revision whose pods fail while pods of the previous one run → `rollback-deployment`;
//! - pods the controller cannot create (a ResourceQuota, an admission webhook: its message);
//! - a paused rollout, `ProgressDeadlineExceeded`, a generation the controller has not observed;
//! - a StatefulSet with `OnDelete` updates (→ `delete-pod` of an old pod) or a partition;
//! - DaemonSet pods not scheduled or misscheduled.

use recipe_sdk::objects::{count, group, list_some};
use recipe_sdk::pod::{self, Cause, Diagnosis, Owner, Remedy};
use recipe_sdk::prelude::*;
use recipe_sdk::report::Report;
use serde_json::{Value, json};

/// The recipe.
pub struct WorkloadRollout;

/// (label, kind, plural, alerts): the alerts of each kind, and the label that names the object.
const KINDS: &[(&str, &str, &str, &[&str])] = &[
    (
        "deployment",
        "Deployment",
        "Deployments",
        &[
            "KubeDeploymentReplicasMismatch",
            "KubeDeploymentRolloutStuck",
            "KubeDeploymentGenerationMismatch",
        ],
    ),
    (
        "statefulset",
        "StatefulSet",
        "StatefulSets",
        &[
            "KubeStatefulSetReplicasMismatch",
            "KubeStatefulSetUpdateNotRolledOut",
            "KubeStatefulSetGenerationMismatch",
        ],
    ),
    (
        "daemonset",
        "DaemonSet",
        "DaemonSets",
        &[
            "KubeDaemonSetRolloutStuck",
            "KubeDaemonSetNotScheduled",
            "KubeDaemonSetMisScheduled",
        ],
    ),
];

/// A cause of `subject`'s trouble, and what to do about it.
fn cause(r: &mut Report, subject: &str, headline: String, remedy: Remedy) {
    r.cause(format!("{subject}: {headline}"));
    r.finding(Finding::critical(subject.to_string(), headline));
    r.remedy(subject, remedy);
}

impl Debugger for WorkloadRollout {
    fn debug(incident: Incident) -> Result<Analysis, RecipeError> {
        let mut report = Report::default();
        let mut notes = Vec::new();
        let mut examined = 0;
        for (label, kind, plural, alerts) in KINDS {
            let objects = incident.objects(label, alerts)?;
            notes.extend(objects.notes(plural));
            for o in &objects.items {
                examined += 1;
                let ns = o.namespace.as_deref().unwrap_or("default");
                examine(kind, ns, &o.name, &mut report)?;
            }
        }
        if examined == 0 {
            return Ok(Analysis::inconclusive(
                "no Deployment, StatefulSet or DaemonSet alert in this incident names its workload",
            ));
        }
        Ok(report.into_analysis(notes))
    }
}

recipe_sdk::export_debugger!(WorkloadRollout);

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// Reads one workload and reports what keeps it from being ready and up to date.
fn examine(kind: &str, ns: &str, name: &str, r: &mut Report) -> Result<(), RecipeError> {
    let subject = format!("{kind} {ns}/{name}");
    let Some(w) = kube::get_opt("apps/v1", kind, Some(ns), name)? else {
        r.line(format!("{subject} no longer exists"));
        return Ok(());
    };
    let owner = Owner {
        kind: kind.into(),
        namespace: ns.into(),
        name: name.into(),
    };
    let (spec, st) = (&w["spec"], &w["status"]);
    let (desired, ready, updated) = if kind == "DaemonSet" {
        (
            int(&st["desiredNumberScheduled"]),
            int(&st["numberReady"]),
            int(&st["updatedNumberScheduled"]),
        )
    } else {
        (
            spec["replicas"].as_i64().unwrap_or(1),
            int(&st["readyReplicas"]),
            int(&st["updatedReplicas"]),
        )
    };
    r.finding(Finding::info(
        subject.clone(),
        format!(
            "desired {desired}, ready {ready}, up to date {updated}; generation {}, observed {}",
            int(&w["metadata"]["generation"]),
            int(&st["observedGeneration"])
        ),
    ));
    let before = r.lines.len();
    controller_causes(kind, &w, &subject, r);
    let stuck = pod_causes(kind, &w, &owner, &subject, r)?;
    let events = kube::events(Some(ns), kind, name).unwrap_or_default();
    if let Some(e) = events.iter().rev().find(|e| e["reason"] == "FailedCreate") {
        let message = e["message"].as_str().unwrap_or("").to_string();
        if !r.lines.iter().any(|l| l.contains(&message)) {
            cause(
                r,
                &subject,
                format!("cannot create pods: {message}"),
                create_remedy(&message),
            );
        }
    }
    if r.lines.len() == before {
        let progressing = condition(&w, "Progressing").filter(|c| c["status"] == "False");
        match progressing {
            Some(c) => {
                let reason = c["reason"].as_str().unwrap_or("not progressing");
                let headline = format!("{reason}: {}", c["message"].as_str().unwrap_or(""));
                let why = "the pods' own state shows no cause; look at the new ReplicaSet's events";
                cause(r, &subject, headline, Remedy::None(why.into()));
            }
            None if ready >= desired && updated >= desired && stuck == 0 => r.line(format!(
                "{subject}: all {desired} pods ready and up to date now; the alert may clear"
            )),
            None => {
                let said = "no known cause in its state, events and pods";
                r.line(format!(
                    "{subject}: {ready} of {desired} pods ready, {updated} up to date; {said}"
                ))
            }
        }
    }
    Ok(())
}

fn condition<'a>(w: &'a Value, kind: &str) -> Option<&'a Value> {
    w["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == kind)
}

/// What the controller itself reports: unobserved generation, paused, cannot create pods,
/// update strategies that hold pods back, misscheduled DaemonSet pods.
fn controller_causes(kind: &str, w: &Value, subject: &str, r: &mut Report) {
    let (spec, st) = (&w["spec"], &w["status"]);
    let (generation, observed) = (int(&w["metadata"]["generation"]), int(&st["observedGeneration"]));
    if generation > observed {
        cause(
            r,
            subject,
            format!("the controller has not observed generation {generation} (last observed {observed})"),
            Remedy::None(
                "no controller acts on the workload: check that kube-controller-manager runs and holds its lease"
                    .into(),
            ),
        );
    }
    if spec["paused"] == true {
        cause(
            r,
            subject,
            "the rollout is paused (spec.paused)".into(),
            Remedy::None("resume it with `kubectl rollout resume`; no bundled action resumes a rollout".into()),
        );
    }
    if let Some(c) = condition(w, "ReplicaFailure").filter(|c| c["status"] == "True") {
        let message = c["message"].as_str().unwrap_or("").to_string();
        cause(
            r,
            subject,
            format!("cannot create pods: {message}"),
            create_remedy(&message),
        );
    }
    let strategy = &spec["updateStrategy"];
    if kind == "StatefulSet" && st["updateRevision"] != st["currentRevision"] {
        let partition = int(&strategy["rollingUpdate"]["partition"]);
        if partition > 0 {
            cause(
                r,
                subject,
                format!(
                    "the update is held back by partition {partition}: pods with an ordinal below it keep the old revision"
                ),
                Remedy::None("lower spec.updateStrategy.rollingUpdate.partition when the canary pods are good".into()),
            );
        }
    }
    let misscheduled = int(&st["numberMisscheduled"]);
    if kind == "DaemonSet" && misscheduled > 0 {
        let pods = count(misscheduled as usize, "pod runs", "pods run");
        let headline = format!("{pods} on nodes that no longer match its node selector, affinity or tolerations");
        let why =
            "the nodes' labels or taints changed: fix the nodes, or the DaemonSet's selector, then delete those pods";
        cause(r, subject, headline, Remedy::None(why.into()));
    }
}

/// A pod-creation failure's remedy: quota and admission are for a human.
fn create_remedy(message: &str) -> Remedy {
    if message.contains("exceeded quota") {
        Remedy::None(
            "a ResourceQuota is full: raise it, or lower the pods' requests; no bundled action changes quotas".into(),
        )
    } else {
        Remedy::None("the API refuses the pods (admission, security policy or quota); the message says which".into())
    }
}

/// The newest revision's pod label value, and how to name it.
fn newest_revision(kind: &str, w: &Value, ns: &str, sel: &str) -> Option<(String, String)> {
    match kind {
        "Deployment" => {
            let rs = kube::list("apps/v1", "ReplicaSet", Some(ns), Some(sel), None).ok()?;
            let revision = |r: &Value| {
                r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                    .as_str()
                    .and_then(|s| s.parse::<i64>().ok())
                    .unwrap_or(0)
            };
            let newest = rs.iter().max_by_key(|r| revision(r))?;
            let hash = newest["metadata"]["labels"]["pod-template-hash"].as_str()?;
            Some((hash.to_string(), format!("revision {}", revision(newest))))
        }
        "StatefulSet" => {
            let rev = w["status"]["updateRevision"].as_str()?;
            Some((rev.to_string(), format!("revision {rev}")))
        }
        _ => {
            let crs = kube::list("apps/v1", "ControllerRevision", Some(ns), Some(sel), None).ok()?;
            let newest = crs.iter().max_by_key(|c| int(&c["revision"]))?;
            let hash = newest["metadata"]["labels"]["controller-revision-hash"].as_str()?;
            Some((hash.to_string(), format!("revision {}", int(&newest["revision"]))))
        }
    }
}

/// The pods that are not ready, by revision and cause; returns how many are not ready.
fn pod_causes(kind: &str, w: &Value, owner: &Owner, subject: &str, r: &mut Report) -> Result<usize, RecipeError> {
    let ns = owner.namespace.as_str();
    let Some(sel) = kube::match_labels(w) else { return Ok(0) };
    let pods = kube::list("v1", "Pod", Some(ns), Some(&sel), None)?;
    let newest = newest_revision(kind, w, ns, &sel);
    let is_new = |d: &Diagnosis| match (&newest, &d.revision) {
        (Some((n, _)), Some(rev)) => n == rev,
        _ => true,
    };
    let all: Vec<Diagnosis> = pods.iter().map(|p| pod::describe(p, &[])).collect();
    let old_ready = all.iter().filter(|d| d.ready && !is_new(d)).count();
    let (read, not_ready) = read_not_ready(&pods, &all, subject, r)?;
    let revision = newest
        .as_ref()
        .map_or("the current revision".to_string(), |(_, n)| n.clone());
    let groups = group(
        read.into_iter()
            .map(|d| ((is_new(&d), d.cause.as_ref().map(Cause::headline)), d)),
    );
    let mut new_failing = false;
    for ((new, _), pods) in &groups {
        let which = if *new { revision.as_str() } else { "an older revision" };
        let who = format!("{subject}: {} of {which}", count(pods.len(), "pod", "pods"));
        new_failing |= report_group(&who, pods, owner, r) && *new;
    }
    if new_failing && old_ready > 0 && owner.can_roll_back() {
        prefer_rollback(subject, &revision, old_ready, owner, r);
    }
    on_delete(kind, w, &all, &pods, owner, subject, r);
    Ok(not_ready)
}

/// Reads the not-ready pods' events (at most config `max_objects` of them, said when reached).
fn read_not_ready(
    pods: &[Value],
    all: &[Diagnosis],
    subject: &str,
    r: &mut Report,
) -> Result<(Vec<Diagnosis>, usize), RecipeError> {
    let bound = recipe_sdk::objects::max_objects();
    let not_ready: Vec<&Value> = pods
        .iter()
        .zip(all)
        .filter(|(_, d)| !d.ready && d.phase != "Succeeded")
        .map(|(p, _)| p)
        .collect();
    let mut read = Vec::new();
    for p in not_ready.iter().take(bound) {
        read.push(pod::diagnose_object(p)?);
    }
    if not_ready.len() > bound {
        r.finding(Finding::warning(
            "Not every pod examined",
            format!(
                "{subject}: read {bound} of {} pods that are not ready (config max_objects)",
                not_ready.len()
            ),
        ));
    }
    Ok((read, not_ready.len()))
}

/// One group of pods with the same revision and cause; `true` when the cause is known.
fn report_group(who: &str, pods: &[Diagnosis], owner: &Owner, r: &mut Report) -> bool {
    let first = &pods[0];
    let names: Vec<String> = pods.iter().map(|d| d.name.clone()).collect();
    r.finding(Finding::info(
        format!("containers of {}", first.name),
        format!("{}\n(pods: {})", first.containers.join("\n"), list_some(&names, 10)),
    ));
    let Some(cause) = &first.cause else {
        r.finding(Finding::warning(
            "Cause unknown",
            format!("{who} not ready, phase {}", first.phase),
        ));
        return false;
    };
    let headline = cause.headline();
    r.cause(format!("{who}: {headline}"));
    r.finding(Finding::critical(cause.title(), format!("{who}: {headline}")));
    if let (true, Some((container, previous))) = (cause.wants_log(), &first.log_from)
        && let Some(tail) = pod::log_tail(&owner.namespace, &first.name, container, *previous)
    {
        r.finding(tail);
    }
    r.remedy(who, cause.remedy(owner));
    true
}

/// The new revision fails while the previous one runs: rolling back comes first.
fn prefer_rollback(subject: &str, revision: &str, old_ready: usize, owner: &Owner, r: &mut Report) {
    let line = format!(
        "pods of the new {revision} fail while {} of the previous revision run",
        count(old_ready, "pod", "pods")
    );
    r.cause(format!("{subject}: {line}"));
    r.finding(Finding::critical("New revision fails", format!("{subject}: {line}")));
    let why = format!("the previous revision runs and the new one does not: roll {subject} back");
    r.suggest_first("rollback-deployment", owner.params(), why);
}

/// A StatefulSet with `OnDelete` updates: old pods update only when deleted.
fn on_delete(kind: &str, w: &Value, all: &[Diagnosis], pods: &[Value], owner: &Owner, subject: &str, r: &mut Report) {
    let st = &w["status"];
    let on_delete = w["spec"]["updateStrategy"]["type"] == "OnDelete";
    if kind != "StatefulSet" || !on_delete || st["updateRevision"] == st["currentRevision"] {
        return;
    }
    let update = st["updateRevision"].as_str().unwrap_or("");
    let old: Vec<&str> = all
        .iter()
        .zip(pods)
        .filter(|(d, _)| d.revision.as_deref() != Some(update))
        .filter_map(|(_, p)| p["metadata"]["name"].as_str())
        .collect();
    let Some(first) = old.first() else { return };
    cause(
        r,
        subject,
        format!(
            "update strategy OnDelete: {} still run the old revision and update only when deleted",
            count(old.len(), "pod", "pods")
        ),
        Remedy::Actions(vec![(
            "delete-pod".into(),
            json!({ "namespace": owner.namespace, "pod": first }),
            format!("delete {first} so the StatefulSet recreates it at {update}; then the next one"),
        )]),
    );
}

#[cfg(test)]
mod tests;
