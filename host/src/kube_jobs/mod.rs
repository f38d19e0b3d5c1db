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

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::{DeleteParams, PostParams, PropagationPolicy};
use tokio::sync::oneshot;

use crate::catalog::Catalog;
use crate::executor::{Executor, Subprocess};
use crate::sandbox::{RunJob, RunResult, RunStatus};

mod config;
mod spec;
mod watch;

pub use self::config::{KubeConfig, PullPolicy, RECIPE_MOUNT, RUN_LABEL, SECRETS_MOUNT};
pub use self::spec::job_spec;
use self::watch::{Failures, watch_jobs};

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
        self.failures.lock().insert(job.run_id.clone(), fail_tx);
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
        self.failures.lock().remove(run_id);
    }
}
