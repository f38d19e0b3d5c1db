//! Watching the Jobs: a Job that fails, or whose pod cannot be scheduled, closes its run at once
//! with the matching status — also a Job a previous leader started (an orphan result).

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PropagationPolicy};
use kube::runtime::{WatchStreamExt, watcher};

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use tokio::sync::oneshot;

use super::config::RUN_LABEL;
use crate::sandbox::{RunResult, RunStatus};

/// Runs waiting for their Job, by run id: where to tell one that its Job failed, and why.
pub(super) type Failures = Arc<Mutex<HashMap<String, oneshot::Sender<(RunStatus, String)>>>>;

/// Watch our Jobs (and their pods); when one fails, or its pod cannot be scheduled, tell its
/// run why.
///
/// A failed Job nobody here waits for — started by a previous leader, or before this host
/// restarted — is handed to `orphans` as its run's result, so the incident that owns it closes the
/// run at once (a run already closed ignores it).
pub(super) async fn watch_jobs(
    client: kube::Client,
    namespace: String,
    failures: Failures,
    orphans: tokio::sync::mpsc::UnboundedSender<RunResult>,
) {
    tokio::spawn(watch_unschedulable(client.clone(), namespace.clone(), failures.clone()));
    let mut events = run_objects::<Job>(&client, &namespace);
    // Failed Jobs already handled: a failed Job is seen again on every later change and every
    // re-list, and is explained (a pod list) and reported once.
    let mut handled: std::collections::HashSet<String> = Default::default();
    while let Some(job) = events.next().await {
        let Some(run_id) = label(&job.metadata, RUN_LABEL) else {
            continue;
        };
        if handled.contains(&run_id) {
            continue;
        }
        let failed = job
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Failed" && c.status == "True"))
            .cloned();
        let Some(condition) = failed else { continue };
        if handled.len() >= 10_000 {
            handled.clear(); // bounded; a Job seen again after this is reported again, and ignored
        }
        handled.insert(run_id.clone());
        let waiter = failures.lock().remove(&run_id);
        let (status, message) = explain(&client, &namespace, &job, &condition).await;
        tracing::warn!(run_id = ?run_id, message = ?message, "sandbox Job failed");
        match waiter {
            Some(tx) => {
                let _ = tx.send((status, message));
            }
            None => {
                let recipe = label(&job.metadata, "euphrosyne.io/recipe").unwrap_or_default();
                let mut result = RunResult::lost(&run_id, &recipe, "", message);
                result.status = status;
                let _ = orphans.send(result);
            }
        }
    }
}

/// Our Jobs or pods in `namespace` (those labelled with a run id), as they change; the watch
/// reconnects with backoff, logging why.
fn run_objects<K>(client: &kube::Client, namespace: &str) -> futures::stream::BoxStream<'static, K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let namespace = namespace.to_string();
    watcher(api, watcher::Config::default().labels(RUN_LABEL))
        .default_backoff()
        .applied_objects()
        .filter_map(move |event| {
            let out = match event {
                Ok(o) => Some(o),
                Err(e) => {
                    tracing::warn!(namespace = %namespace, "watching sandbox Jobs and pods: {e}; retrying");
                    None
                }
            };
            futures::future::ready(out)
        })
        .boxed()
}

/// One label of an object.
fn label(meta: &kube::api::ObjectMeta, key: &str) -> Option<String> {
    meta.labels.as_ref().and_then(|l| l.get(key)).cloned()
}

/// Why a sandbox pod will never start, if it will not: the scheduler cannot place it, or the
/// kubelet cannot create its container (the image is not on the node and may not be pulled, the
/// image cannot be pulled, a Secret it needs is missing). Such a pod would sit pending until the
/// Job's deadline; its run is closed at once instead, with this message.
pub(super) fn stuck(pod: &Pod) -> Option<String> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.as_ref()?;
    let unschedulable = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable"));
    // Not enough CPU or memory free right now (a burst of Jobs) passes as others finish: the
    // Job's deadline bounds that wait.
    let unschedulable = unschedulable.filter(|c| !c.message.as_deref().unwrap_or_default().contains("Insufficient"));
    if let Some(c) = unschedulable {
        return Some(format!(
            "the sandbox pod {name} cannot be scheduled: {}",
            c.message.clone().unwrap_or_default()
        ));
    }
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
    status.container_statuses.iter().flatten().find_map(|c| {
        let waiting = c.state.as_ref()?.waiting.as_ref()?;
        let reason = waiting.reason.as_deref()?;
        let message = waiting.message.clone().unwrap_or_default();
        let hint = match reason {
            "ErrImageNeverPull" => format!(
                "image `{}` is not on node {node} and its pull policy is Never: load it onto the node (README: \"The image\") or set [kube] image_pull_policy",
                c.image
            ),
            "ImagePullBackOff" | "InvalidImageName" => {
                format!("image `{}` cannot be pulled on node {node}: check [kube] image", c.image)
            }
            "CreateContainerConfigError" | "CreateContainerError" => {
                format!("node {node} cannot create its container (a Secret or ConfigMap it mounts is missing?)")
            }
            _ => return None,
        };
        Some(format!("the sandbox pod {name} cannot start: {hint} ({reason}: {message})"))
    })
}

/// A sandbox pod that will never start ([`stuck`]): close its run at once and delete its Job.
async fn watch_unschedulable(client: kube::Client, namespace: String, failures: Failures) {
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    let mut events = run_objects::<Pod>(&client, &namespace);
    while let Some(pod) = events.next().await {
        let Some(message) = stuck(&pod) else { continue };
        let Some(run_id) = label(&pod.metadata, RUN_LABEL) else {
            continue;
        };
        let Some(tx) = failures.lock().remove(&run_id) else {
            continue;
        };
        tracing::warn!(run_id = ?run_id, message = ?message, "sandbox pod cannot start");
        let _ = tx.send((RunStatus::TimedOut, message));
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        let _ = jobs.delete(&format!("euphrosyne-{run_id}"), &dp).await;
    }
}

/// The status and message for a failed Job: past its deadline, its pod OOM-killed, or its
/// pod failed with an exit code.
async fn explain(
    client: &kube::Client,
    namespace: &str,
    job: &Job,
    condition: &k8s_openapi::api::batch::v1::JobCondition,
) -> (RunStatus, String) {
    let name = job.metadata.name.clone().unwrap_or_default();
    if condition.reason.as_deref() == Some("DeadlineExceeded") {
        let secs = job.spec.as_ref().and_then(|s| s.active_deadline_seconds).unwrap_or(0);
        return (
            RunStatus::TimedOut,
            format!("the sandbox Job {name} ran past its activeDeadlineSeconds ({secs} s) and was stopped"),
        );
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut list = pods
        .list(&ListParams::default().labels(&format!("job-name={name}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    // The first pod that ran to an exit, oldest first: the Job's first pod ran the run; a
    // replacement (after an eviction, say) found it claimed.
    list.sort_by_key(|p| p.metadata.creation_timestamp.clone());
    let exited = list.iter().find_map(|p| {
        let t = p
            .status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .iter()
            .find_map(|c| c.state.as_ref()?.terminated.clone())?;
        Some((p, t))
    });
    let (pod, terminated) = match exited {
        Some((p, t)) => (Some(p), Some(t)),
        None => (list.first(), None),
    };
    match terminated {
        Some(t) if t.reason.as_deref() == Some("OOMKilled") => (
            RunStatus::LimitExceeded,
            format!(
                "the sandbox pod of Job {name} was OOM-killed (over its memory limit of {})",
                memory_limit(job).unwrap_or_else(|| "?".into())
            ),
        ),
        Some(t) => {
            // The sandbox's own last words, read through the apiserver (its termination message
            // holds them too when the kubelet kept them).
            let said = match pod.and_then(|p| p.metadata.name.as_deref()) {
                Some(pod_name) if t.exit_code != 0 => log_tail(client, namespace, pod_name).await,
                _ => None,
            };
            let words = said.or(t.message.clone()).unwrap_or_default();
            (
                RunStatus::Trapped,
                format!(
                    "the sandbox pod of Job {name} failed with exit code {} without publishing a result{}",
                    t.exit_code,
                    if words.trim().is_empty() {
                        String::new()
                    } else {
                        format!(": {}", words.trim())
                    }
                ),
            )
        }
        None => {
            // Never ran to an exit: evicted, deleted with its node, or never started.
            let why = pod
                .and_then(|p| p.status.as_ref())
                .filter(|s| s.reason.is_some())
                .map(|s| {
                    format!(
                        " (its pod: {}: {})",
                        s.reason.clone().unwrap_or_default(),
                        s.message.clone().unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            (
                RunStatus::TimedOut,
                format!(
                    "the sandbox Job {name} failed ({}); its pod was stopped before it ran to an exit — evicted, or deleted with its node — without a result{why}",
                    condition
                        .message
                        .clone()
                        .unwrap_or_else(|| condition.reason.clone().unwrap_or_default())
                ),
            )
        }
    }
}

/// The last lines a sandbox pod wrote (at most 2 KiB), as the apiserver serves them from its
/// node; `None` when they cannot be read.
async fn log_tail(client: &kube::Client, namespace: &str, pod: &str) -> Option<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = kube::api::LogParams {
        tail_lines: Some(20),
        limit_bytes: Some(2048),
        ..Default::default()
    };
    match pods.logs(pod, &params).await {
        Ok(text) => Some(text.lines().map(str::trim_end).collect::<Vec<_>>().join(" | ")),
        Err(e) => {
            tracing::debug!(pod = %pod, "reading the sandbox's log: {e}");
            None
        }
    }
}

/// The sandbox container's memory limit, as the Job spells it.
fn memory_limit(job: &Job) -> Option<String> {
    let c = job.spec.as_ref()?.template.spec.as_ref()?.containers.first()?;
    Some(c.resources.as_ref()?.limits.as_ref()?.get("memory")?.0.clone())
}
