//! The Kubernetes executor (`executor = "kube"`): one hardened `batch/v1` Job per run, in the
//! recipe namespace, of the host's own image running `euphrosyne sandbox --run ID`.
//!
//! - The run's input (pinned digest, grants, limits, input) goes to Redis first
//!   ([`Subprocess::stage`]); the Job mounts the recipe's ConfigMap read-only, and the sandbox in
//!   it verifies the mounted bytes against the pinned digest before running them, then publishes
//!   its result to the Redis stream the host collects from.
//! - Hardened: non-root (uid 65532), read-only root filesystem, no privilege escalation, every
//!   capability dropped, seccomp `RuntimeDefault`, memory and CPU limits from the manifest,
//!   `activeDeadlineSeconds` from its timeout, `backoffLimit: 0`, `ttlSecondsAfterFinished`,
//!   labels for incident, run and recipe, and owned by the recipe's ConfigMap (deleting a recipe
//!   deletes its Jobs; the Job owns its pod).
//! - No ServiceAccount token unless the recipe is granted Kubernetes verbs, and then the
//!   ServiceAccount of its grant level (`reader` for get/list/logs/events, `writer` when it may
//!   patch/create/delete — see `manifests/`); only the Secrets it is granted are mounted.
//! - Every Job is watched: a Job that fails (its pod failed, was OOM-killed, or ran past the
//!   deadline), or whose pod the scheduler reports `Unschedulable`, closes its run at once with
//!   the matching status instead of waiting for the incident deadline — also a Job started by
//!   a previous leader (or before a restart): its failure reaches the incident as an orphan result.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::runtime::{WatchStreamExt, watcher};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::capability::kube::{ByGrant, RecipeAccounts};
use crate::catalog::Catalog;
use crate::executor::{Executor, Subprocess};
use crate::manifest::KubePolicy;
use crate::sandbox::{RunInput, RunJob, RunResult, RunStatus};

/// Label carrying the run id on Jobs and pods.
pub const RUN_LABEL: &str = "euphrosyne.io/run";
/// Where a Job mounts the recipe's ConfigMap.
pub const RECIPE_MOUNT: &str = "/var/run/euphrosyne/recipe";
/// Where a Job mounts the recipe's granted Secrets (one file per secret name).
pub const SECRETS_MOUNT: &str = "/var/run/euphrosyne/secrets";

/// `[kube]` in the host's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubeConfig {
    /// Namespace of the recipe ConfigMaps and their Jobs; empty = the host's own namespace (read
    /// from its ServiceAccount in a pod), or `default`.
    pub namespace: String,
    /// The sandbox image: the host's own (`EUPHROSYNE_IMAGE` overrides).
    pub image: String,
    /// Secret (in the recipe namespace) whose key `url` is the Redis URL the Jobs publish to.
    pub redis_secret: String,
    /// ServiceAccount for recipes granted only reading verbs.
    pub reader_service_account: String,
    /// ServiceAccount for recipes granted patch/create/delete.
    pub writer_service_account: String,
    /// Recipes that run in the host's own engine instead of a Job.
    pub in_process: Vec<String>,
    /// Seconds a finished Job is kept (then the TTL controller deletes it and its pod).
    pub ttl_seconds_after_finished: i32,
    /// Seconds a Job may take to be scheduled and started, added to the recipe's timeout for
    /// `activeDeadlineSeconds`.
    pub start_slack_seconds: i64,
    /// MiB added to the recipe's memory limit for the sandbox process itself.
    pub process_overhead_mib: u64,
    /// Runs outside a Job (in this process, or a sandbox subprocess) impersonate the recipe
    /// ServiceAccounts above, so the API server bounds them as it bounds their Jobs. The host's
    /// ServiceAccount needs `impersonate` on those two ServiceAccounts (manifests/rbac.yaml).
    /// `false` lets them use the host's own identity: only for a cluster without RBAC.
    pub impersonate: bool,
    /// Recipes allowed `scope = "cluster"` in `capabilities.kubernetes`.
    pub cluster_scope: Vec<String>,
    /// Sensitive grants (`resource:verb`: `secrets:get`, `pods:create`, `jobs:create`, RBAC
    /// kinds …) the host allows; any other is refused.
    pub allow_sensitive: Vec<String>,
}

impl KubeConfig {
    /// The recipe ServiceAccounts: their Jobs run as them, other runs impersonate them.
    pub fn recipe_accounts(&self) -> RecipeAccounts {
        RecipeAccounts {
            namespace: self.namespace.clone(),
            names: ByGrant {
                reader: self.reader_service_account.clone(),
                writer: self.writer_service_account.clone(),
            },
        }
    }

    /// The policy over recipes' Kubernetes grants.
    pub fn policy(&self) -> KubePolicy {
        KubePolicy {
            cluster_scope: self.cluster_scope.clone(),
            allow_sensitive: self.allow_sensitive.clone(),
        }
    }
}

impl Default for KubeConfig {
    fn default() -> Self {
        KubeConfig {
            namespace: String::new(),
            image: "euphrosyne:latest".into(),
            redis_secret: "euphrosyne-redis".into(),
            reader_service_account: "euphrosyne-recipe-reader".into(),
            writer_service_account: "euphrosyne-recipe-writer".into(),
            in_process: vec![],
            ttl_seconds_after_finished: 600,
            start_slack_seconds: 30,
            process_overhead_mib: 96,
            impersonate: true,
            cluster_scope: KubePolicy::default().cluster_scope,
            allow_sensitive: vec![],
        }
    }
}

type Failures = Arc<Mutex<HashMap<String, oneshot::Sender<(RunStatus, String)>>>>;

/// Runs each job as a Kubernetes Job.
pub struct KubeJobs {
    client: kube::Client,
    config: KubeConfig,
    results: Arc<Subprocess>,
    catalog: Arc<Catalog>,
    failures: Failures,
}

impl KubeJobs {
    /// The executor, watching its Jobs from now on. `results` stages inputs and collects results
    /// through Redis; `catalog` says which ConfigMap each recipe came from (the registry keeps it).
    pub fn start(
        client: kube::Client,
        config: KubeConfig,
        results: Arc<Subprocess>,
        catalog: Arc<Catalog>,
    ) -> Arc<Self> {
        let failures: Failures = Arc::default();
        let orphans = results.orphan_sender();
        tokio::spawn(watch_jobs(
            client.clone(),
            config.namespace.clone(),
            failures.clone(),
            orphans,
        ));
        Arc::new(KubeJobs {
            client,
            config,
            results,
            catalog,
            failures,
        })
    }
}

/// The Job for a run (see the module docs for what it holds).
pub fn job_spec(
    config: &KubeConfig,
    prefix: &str,
    job: &RunJob,
    configmap: &str,
    uid: &str,
) -> Result<Job, serde_json::Error> {
    use serde_json::json;
    let incident = match &job.input {
        RunInput::Debug(i) => i.id.clone(),
        RunInput::Action(a) => a.incident.id.clone(),
    };
    let labels = json!({
        "app.kubernetes.io/managed-by": "euphrosyne",
        "app.kubernetes.io/component": "sandbox",
        RUN_LABEL: job.run_id,
        "euphrosyne.io/recipe": job.recipe,
        "euphrosyne.io/incident": incident,
    });
    let grants = &job.capabilities.kubernetes;
    let service_account = (!grants.is_empty()).then(|| config.recipe_accounts().names.for_grants(grants).clone());
    let mut env = vec![
        json!({"name": "EUPHROSYNE_REDIS_URL",
            "valueFrom": {"secretKeyRef": {"name": config.redis_secret, "key": "url"}}}),
        // The sandbox enforces the host's policy over Kubernetes grants too.
        json!({"name": "EUPHROSYNE_KUBE_POLICY",
            "value": serde_json::to_string(&config.policy()).unwrap_or_default()}),
    ];
    let mut mounts = vec![
        json!({"name": "recipe", "mountPath": RECIPE_MOUNT, "readOnly": true}),
        json!({"name": "tmp", "mountPath": "/tmp"}),
    ];
    let mut volumes = vec![
        json!({"name": "recipe", "configMap": {"name": configmap}}),
        json!({"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}),
    ];
    if !job.capabilities.secrets.is_empty() {
        // One Kubernetes Secret per recipe secret, same name, key `value`; only the granted ones.
        let sources: Vec<_> = job
            .capabilities
            .secrets
            .iter()
            .map(|s| json!({"secret": {"name": s, "items": [{"key": "value", "path": s}]}}))
            .collect();
        volumes.push(json!({"name": "secrets", "projected": {"sources": sources, "defaultMode": 0o400}}));
        mounts.push(json!({"name": "secrets", "mountPath": SECRETS_MOUNT, "readOnly": true}));
        env.push(json!({"name": "EUPHROSYNE_SECRETS_DIR", "value": SECRETS_MOUNT}));
    }
    let memory = job.limits.memory_mib + config.process_overhead_mib;
    let deadline = job.limits.timeout_ms.div_ceil(1000) as i64 + config.start_slack_seconds;
    let mut pod = json!({
        "restartPolicy": "Never",
        "automountServiceAccountToken": service_account.is_some(),
        "enableServiceLinks": false,
        "securityContext": {
            "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [{
            "name": "sandbox",
            "image": config.image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["euphrosyne", "sandbox", "--run", job.run_id, "--prefix", prefix, "--recipe", RECIPE_MOUNT],
            "env": env,
            "resources": {
                "limits": {"memory": format!("{memory}Mi"), "cpu": "1"},
                "requests": {"memory": format!("{memory}Mi"), "cpu": "50m"},
            },
            "securityContext": {
                "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true,
                "privileged": false, "capabilities": {"drop": ["ALL"]},
            },
            "volumeMounts": mounts,
        }],
        "volumes": volumes,
    });
    if let Some(sa) = service_account {
        pod["serviceAccountName"] = json!(sa);
    }
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": format!("euphrosyne-{}", job.run_id),
            "namespace": config.namespace,
            "labels": labels,
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": configmap, "uid": uid}],
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": deadline,
            "ttlSecondsAfterFinished": config.ttl_seconds_after_finished,
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }))
}

#[async_trait::async_trait]
impl Executor for KubeJobs {
    async fn run(&self, job: RunJob) -> RunResult {
        let source = self.catalog.source(&job.recipe);
        let Some(source) = source else {
            return RunResult::closed(
                &job,
                RunStatus::InvalidModule,
                format!(
                    "recipe `{}` is not registered as a ConfigMap in namespace `{}` (was it deleted?)",
                    job.recipe, self.config.namespace
                ),
            );
        };
        let spec = match job_spec(
            &self.config,
            self.results.prefix(),
            &job,
            &source.configmap,
            &source.uid,
        ) {
            Ok(s) => s,
            Err(e) => return RunResult::closed(&job, RunStatus::InvalidModule, format!("building the Job: {e}")),
        };
        let deadline =
            Duration::from_secs(spec.spec.as_ref().and_then(|s| s.active_deadline_seconds).unwrap_or(60) as u64);
        let budget = deadline + Duration::from_secs(10);
        let mut result = match self.results.stage(&job, budget).await {
            Ok(rx) => rx,
            Err(e) => return RunResult::closed(&job, RunStatus::TimedOut, e),
        };
        let (fail_tx, mut failed) = oneshot::channel();
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job.run_id.clone(), fail_tx);
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &self.config.namespace);
        if let Err(e) = jobs.create(&PostParams::default(), &spec).await {
            self.forget(&job.run_id);
            return RunResult::closed(
                &job,
                RunStatus::TimedOut,
                format!("could not create the sandbox Job in `{}`: {e}", self.config.namespace),
            );
        }
        tracing::info!(run_id = %job.run_id, recipe = %job.recipe, "sandbox Job created");
        let timeout = tokio::time::sleep(budget);
        tokio::pin!(timeout);
        let out = tokio::select! {
            r = &mut result => r.unwrap_or_else(|_| RunResult::closed(&job, RunStatus::TimedOut, "result channel closed")),
            f = &mut failed => {
                // A result published just before the pod ended still wins.
                match tokio::time::timeout(Duration::from_millis(500), &mut result).await {
                    Ok(Ok(r)) => r,
                    _ => {
                        let (status, message) = f.unwrap_or((RunStatus::TimedOut, "the Job failed".into()));
                        RunResult::closed(&job, status, message)
                    }
                }
            }
            _ = &mut timeout => {
                let name = format!("euphrosyne-{}", job.run_id);
                let dp = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() };
                let _ = jobs.delete(&name, &dp).await;
                RunResult::closed(&job, RunStatus::TimedOut, format!("no result within {} s; the Job was deleted", budget.as_secs()))
            }
        };
        self.forget(&job.run_id);
        out
    }
}

impl KubeJobs {
    fn forget(&self, run_id: &str) {
        self.results.forget(run_id);
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(run_id);
    }
}

/// Watch our Jobs (and their pods); when one fails, or its pod cannot be scheduled, tell its
/// run why.
///
/// A failed Job nobody here waits for — started by a previous leader, or before this host
/// restarted — is handed to `orphans` as its run's result, so the incident that owns it closes the
/// run at once (a run already closed ignores it).
async fn watch_jobs(
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
        let waiter = failures.lock().unwrap_or_else(|e| e.into_inner()).remove(&run_id);
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

/// A sandbox pod the scheduler cannot place would sit pending until the Job's deadline: close
/// its run at once and delete the Job instead.
async fn watch_unschedulable(client: kube::Client, namespace: String, failures: Failures) {
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    let mut events = run_objects::<Pod>(&client, &namespace);
    while let Some(pod) = events.next().await {
        let unschedulable = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| {
                c.iter().find(|c| {
                    c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable")
                })
            })
            .cloned();
        let Some(condition) = unschedulable else { continue };
        let Some(run_id) = label(&pod.metadata, RUN_LABEL) else {
            continue;
        };
        let Some(tx) = failures.lock().unwrap_or_else(|e| e.into_inner()).remove(&run_id) else {
            continue;
        };
        let message = format!(
            "the sandbox pod {} cannot be scheduled: {}",
            pod.metadata.name.clone().unwrap_or_default(),
            condition.message.unwrap_or_default()
        );
        tracing::warn!(run_id = ?run_id, message = ?message, "sandbox pod cannot be scheduled");
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
    let list = pods
        .list(&ListParams::default().labels(&format!("job-name={name}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let terminated = list.iter().find_map(|p| {
        p.status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .iter()
            .find_map(|c| c.state.as_ref()?.terminated.clone())
    });
    match terminated {
        Some(t) if t.reason.as_deref() == Some("OOMKilled") => (
            RunStatus::LimitExceeded,
            format!("the sandbox pod of Job {name} was OOM-killed (over its memory limit)"),
        ),
        Some(t) => (
            RunStatus::Trapped,
            format!(
                "the sandbox pod of Job {name} failed with exit code {}{} without publishing a result",
                t.exit_code,
                t.message.map(|m| format!(": {m}")).unwrap_or_default()
            ),
        ),
        None => (
            RunStatus::TimedOut,
            format!(
                "the sandbox Job {name} failed: {}",
                condition
                    .message
                    .clone()
                    .unwrap_or_else(|| condition.reason.clone().unwrap_or_default())
            ),
        ),
    }
}
