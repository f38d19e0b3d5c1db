//! Executors run recipe jobs; the reconciler does not care where:
//!
//! - [`InProcess`]: in the host's own wasmtime engine (the embedded default);
//! - [`Subprocess`]: one `euphrosyne sandbox` process per run, which reads its input from Redis,
//!   runs the same sandbox and publishes its result to the Redis bus, where the host collects it
//!   (what a Kubernetes Job does, without the cluster).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::bus::{Bus, RunSpec};
use crate::sandbox::{RunJob, RunResult, RunStatus, Sandbox};

/// Something that runs recipe jobs and always returns a result.
#[async_trait::async_trait]
pub trait Executor: Send + Sync {
    /// Run one job. Every failure (including the executor's own) is a result with a status.
    async fn run(&self, job: RunJob) -> RunResult;
}

/// Runs jobs in this process, at most `max_concurrent` at once.
pub struct InProcess {
    sandbox: Arc<Sandbox>,
    slots: Semaphore,
}

impl InProcess {
    /// An in-process executor.
    pub fn new(sandbox: Arc<Sandbox>, max_concurrent: usize) -> Self {
        InProcess {
            sandbox,
            slots: Semaphore::new(max_concurrent),
        }
    }
}

#[async_trait::async_trait]
impl Executor for InProcess {
    async fn run(&self, job: RunJob) -> RunResult {
        let _slot = self.slots.acquire().await;
        self.sandbox.run(&job).await
    }
}

/// Runs the recipes named in `in_process` in the host's engine and every other on `default`
/// (the per-recipe executor choice).
pub struct Routed {
    /// Everything else.
    pub default: Arc<dyn Executor>,
    /// The host's own engine.
    pub in_process: Arc<dyn Executor>,
    /// Recipes that run in-process.
    pub names: std::collections::HashSet<String>,
}

#[async_trait::async_trait]
impl Executor for Routed {
    async fn run(&self, job: RunJob) -> RunResult {
        if self.names.contains(&job.recipe) {
            self.in_process.run(job).await
        } else {
            self.default.run(job).await
        }
    }
}

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<RunResult>>>>;

/// Runs each job as an `euphrosyne sandbox` subprocess that publishes through Redis.
pub struct Subprocess {
    bus: Bus,
    redis_url: String,
    prefix: String,
    binary: PathBuf,
    workdir: PathBuf,
    waiters: Waiters,
    slots: Semaphore,
    secrets_dir: Option<PathBuf>,
    kubeconfig: Option<PathBuf>,
    impersonate: Option<crate::capability::kube::RecipeAccounts>,
    kube_policy: String,
    orphans: Mutex<Option<mpsc::UnboundedReceiver<RunResult>>>,
    orphan_tx: mpsc::UnboundedSender<RunResult>,
    /// Precompiled code for the sandbox processes, once [`Subprocess::ship_artifacts`] is called.
    artifacts: std::sync::OnceLock<crate::artifacts::Artifacts>,
}

/// What a sandbox subprocess may see of the host: where its granted secrets and the cluster are.
#[derive(Debug, Clone, Default)]
pub struct SubprocessGrants {
    /// The host's secrets directory (the sandbox still gives a recipe only the names it is granted).
    pub secrets_dir: Option<PathBuf>,
    /// Kubeconfig for the kubernetes capability.
    pub kubeconfig: Option<PathBuf>,
    /// With that kubeconfig, act as the recipe ServiceAccount a run's grants pick.
    pub impersonate: Option<crate::capability::kube::RecipeAccounts>,
    /// The host's policy over Kubernetes grants, enforced by the subprocess too.
    pub kube_policy: crate::manifest::KubePolicy,
}

impl Subprocess {
    /// Connect to the bus and make sure the consumer group exists. Components are written to
    /// `workdir` (created 0700) for the subprocesses. Results are collected once
    /// [`Subprocess::start_collecting`] is called (when this replica leads).
    pub async fn start(
        redis_url: &str,
        prefix: &str,
        binary: PathBuf,
        workdir: PathBuf,
        max_concurrent: usize,
        grants: SubprocessGrants,
    ) -> Result<Arc<Self>, crate::bus::BusError> {
        use std::os::unix::fs::DirBuilderExt;
        let _ = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&workdir);
        let bus = Bus::connect(redis_url, prefix, Duration::from_secs(5)).await?;
        bus.ensure_group().await?;
        let (orphan_tx, orphan_rx) = mpsc::unbounded_channel();
        Ok(Arc::new(Subprocess {
            bus,
            redis_url: redis_url.into(),
            prefix: prefix.into(),
            binary,
            workdir,
            waiters: Arc::default(),
            slots: Semaphore::new(max_concurrent),
            secrets_dir: grants.secrets_dir,
            kubeconfig: grants.kubeconfig,
            impersonate: grants.impersonate,
            kube_policy: serde_json::to_string(&grants.kube_policy).unwrap_or_default(),
            orphans: Mutex::new(Some(orphan_rx)),
            orphan_tx,
            artifacts: std::sync::OnceLock::new(),
        }))
    }

    /// From now on, store each recipe's code precompiled by `sandbox`'s engine and sealed with
    /// `key` before its first sandbox process starts, and give the subprocesses the key
    /// (Kubernetes Jobs read it from their Secret).
    pub fn ship_artifacts(&self, key: crate::sandbox::ArtifactKey, sandbox: Arc<crate::sandbox::Sandbox>) {
        let _ = self
            .artifacts
            .set(crate::artifacts::Artifacts::new(key, sandbox, self.bus.clone()));
    }

    /// Start collecting results as `consumer`: first take over every result still pending on
    /// any consumer of the group (this host's previous life, or a replica that led before and
    /// died), then read new ones.
    pub async fn start_collecting(&self, consumer: &str) -> Result<(), crate::bus::BusError> {
        let reader = Bus::connect(&self.redis_url, &self.prefix, Duration::from_secs(10)).await?;
        let claimed = reader.claim_pending(consumer).await?;
        if claimed > 0 {
            tracing::info!(claimed, "took over results pending on other consumers");
        }
        tokio::spawn(collect(
            reader,
            consumer.to_string(),
            self.waiters.clone(),
            self.orphan_tx.clone(),
        ));
        Ok(())
    }

    fn component_file(&self, job: &RunJob) -> std::io::Result<PathBuf> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.workdir.join(format!("{}.wasm", job.digest.hex()));
        if !path.exists() {
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?
                .write_all(&job.bytes)?;
            std::fs::rename(&tmp, &path)?;
        }
        Ok(path)
    }

    /// Where results nobody in this process waits for go (the Kubernetes executor sends there
    /// the failures of Jobs a previous leader started).
    pub fn orphan_sender(&self) -> mpsc::UnboundedSender<RunResult> {
        self.orphan_tx.clone()
    }

    /// Results nobody in this process waits for (runs started before a restart), once.
    pub fn take_orphans(&self) -> Option<mpsc::UnboundedReceiver<RunResult>> {
        self.orphans.lock().take()
    }

    /// Stop waiting for a run's result.
    pub fn forget(&self, run_id: &str) {
        self.waiters.lock().remove(run_id);
    }

    /// The Redis key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Store `job`'s input in Redis (kept `budget` + 60 s) and start waiting for its result:
    /// what any sandbox — a local process or a Kubernetes Job — needs before it starts.
    pub async fn stage(&self, job: &RunJob, budget: Duration) -> Result<oneshot::Receiver<RunResult>, String> {
        let spec = RunSpec::of(job, budget);
        if let Some(artifacts) = self.artifacts.get() {
            artifacts.ensure(job).await;
        }
        // The connection reconnects on its next use after an error: a few quick retries ride
        // over a Redis that just came back.
        let mut attempt = 0;
        while let Err(e) = self.bus.put_run(&spec, budget + Duration::from_secs(60)).await {
            attempt += 1;
            if attempt == 5 {
                return Err(format!("could not store the run's input in Redis: {e}"));
            }
            tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().insert(job.run_id.clone(), tx);
        Ok(rx)
    }
}

/// Hand each result to the run waiting for it (or, if none, to `orphans`), then acknowledge it. Re-reads this consumer's
/// unacknowledged entries first; on Redis errors, backs off and goes on.
async fn collect(bus: Bus, consumer: String, waiters: Waiters, orphans: mpsc::UnboundedSender<RunResult>) {
    let mut pending = true;
    let mut backoff = Duration::from_millis(100);
    loop {
        match bus.read(&consumer, pending, Duration::from_secs(1)).await {
            Ok(batch) => {
                backoff = Duration::from_millis(100);
                if pending && batch.is_empty() {
                    pending = false;
                }
                let mut done = Vec::new();
                for d in batch {
                    match d.result {
                        Ok(result) => {
                            let waiter = waiters.lock().remove(&result.run_id);
                            match waiter {
                                Some(tx) => {
                                    let _ = tx.send(result);
                                }
                                // Started before a restart (or late): the reconciler adopts it.
                                None => {
                                    let _ = orphans.send(result);
                                }
                            }
                        }
                        Err(why) => tracing::warn!("unreadable result on the bus, dropped: {why}"),
                    }
                    done.push(d.entry);
                }
                if let Err(e) = bus.ack(&done).await {
                    tracing::warn!("acknowledging results: {e}");
                }
            }
            Err(e) => {
                // A Redis that restarted empty has lost the group: make it again.
                if e.to_string().contains("NOGROUP") {
                    let _ = bus.ensure_group().await;
                }
                tracing::warn!("reading results from Redis: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[async_trait::async_trait]
impl Executor for Subprocess {
    async fn run(&self, job: RunJob) -> RunResult {
        let _slot = self.slots.acquire().await;
        let budget = Duration::from_millis(job.limits.timeout_ms) + Duration::from_secs(10);
        let file = match self.component_file(&job) {
            Ok(f) => f,
            Err(e) => {
                return RunResult::closed(
                    &job,
                    RunStatus::InvalidModule,
                    format!("writing the component for the sandbox: {e}"),
                );
            }
        };
        let mut rx = match self.stage(&job, budget).await {
            Ok(rx) => rx,
            Err(e) => return RunResult::closed(&job, RunStatus::TimedOut, e),
        };
        let mut cmd = self.command(&job, &file);
        let child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                self.forget(&job.run_id);
                return RunResult::closed(
                    &job,
                    RunStatus::TimedOut,
                    format!("could not start {} sandbox: {e}", self.binary.display()),
                );
            }
        };
        let deadline = tokio::time::sleep(budget);
        tokio::pin!(deadline);
        tokio::select! {
            r = &mut rx => {
                let _ = child.wait().await;
                return r.unwrap_or_else(|_| RunResult::closed(&job, RunStatus::TimedOut, "result channel closed"));
            }
            status = child.wait() => {
                // It exited: its result may still be on its way through the stream.
                if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(2), &mut rx).await {
                    return r;
                }
                self.forget(&job.run_id);
                let mut err = String::new();
                if let Some(mut s) = child.stderr.take() {
                    use tokio::io::AsyncReadExt;
                    let _ = s.read_to_string(&mut err).await;
                }
                let tail: String = err.lines().rev().take(3).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ");
                RunResult::closed(&job, RunStatus::TimedOut, format!("the sandbox process exited ({}) without a result on the bus: {tail}", status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string())))
            }
            _ = &mut deadline => {
                let _ = child.kill().await;
                self.forget(&job.run_id);
                RunResult::closed(&job, RunStatus::TimedOut, format!("no result within {} s; the sandbox process was killed", budget.as_secs()))
            }
        }
    }
}

impl Subprocess {
    /// The `euphrosyne sandbox` command for `job`: nothing of the host's environment but what
    /// this run needs (the Redis URL may carry a password, so it goes in the environment, not on
    /// the command line), and only the secrets it is granted.
    fn command(&self, job: &RunJob, file: &std::path::Path) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.binary);
        cmd.args(["sandbox", "--run", &job.run_id, "--prefix", &self.prefix, "--recipe"])
            .arg(file)
            .env_clear()
            .env("EUPHROSYNE_REDIS_URL", &self.redis_url);
        if let Some(ca) = std::env::var_os("EUPHROSYNE_REDIS_CA_FILE") {
            cmd.env("EUPHROSYNE_REDIS_CA_FILE", ca);
        }
        if let Some(d) = &self.secrets_dir {
            cmd.env("EUPHROSYNE_SECRETS_DIR", d);
        }
        if let Some(k) = &self.kubeconfig {
            cmd.env("EUPHROSYNE_KUBECONFIG", k);
            if let Some(accounts) = &self.impersonate {
                cmd.env(
                    "EUPHROSYNE_KUBE_IMPERSONATE",
                    accounts.user_for(&job.capabilities.kubernetes),
                );
            }
        }
        cmd.env("EUPHROSYNE_KUBE_POLICY", &self.kube_policy);
        if let Some(artifacts) = self.artifacts.get() {
            cmd.env(crate::sandbox::ArtifactKey::ENV, artifacts.key().env_value());
        }
        for name in &job.capabilities.secrets {
            let var = format!("EUPHROSYNE_SECRET_{}", name.to_ascii_uppercase().replace('-', "_"));
            if let Ok(v) = std::env::var(&var) {
                cmd.env(var, v);
            }
        }
        cmd
    }
}
