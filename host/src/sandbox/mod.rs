//! The sandbox: run one recipe call under limits and return one [`RunResult`].
//!
//! Every run goes through the same steps, in this order:
//! 1. **verify** the bytes against the digest pinned for the run — before anything parses them;
//! 2. **compile**, or take the compiled component from the cache (memory, then disk) by digest;
//! 3. **check imports** against the manifest's grants and the WIT version;
//! 4. **wait for a turn** (a pool slot, and one of the recipe's `max_runs_per_recipe` permits),
//!    then **instantiate** from a cached `InstancePre` into a fresh `Store` (pooling allocator)
//!    with no env, no args, no sockets, only granted directories, capped stdout/stderr, at most
//!    4096 resources, and one memory budget (`limits`: every memory and table plus the host
//!    memory the run owns, `meter`) checked as memory grows, as every host call returns and at
//!    every epoch tick;
//! 5. **call** `debug` or `act`: at every epoch tick (10 ms) the guest yields to the async
//!    runtime, so a spinning recipe never holds a worker thread for longer; past its deadline it
//!    is interrupted, and a wall-clock timeout covers host calls still pending;
//! 6. **classify** into a [`RunStatus`] that names what happened and cap the result's size.
//!
//! The sandbox knows nothing of HTTP routes or Kubernetes Jobs: it is the library both the
//! in-process executor and `euphrosyne sandbox` (inside a Job) call.

mod bindings;
mod cache;
mod imports;
mod limits;
pub mod meter;
mod state;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use wasmtime::component::{Component, Linker, ResourceTable, types::ComponentItem};
use wasmtime::{
    CallHook, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap, UpdateDeadline,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmtime_wasi_http::WasiHttpCtx;

pub use self::cache::DiskCache;
use self::limits::Limiter;
pub use self::meter::MeteredAlloc;
use self::state::RunState;
use crate::capability::http::{EgressLimits, EgressPolicy};
use crate::capability::kube::{KubeAccess, KubeClients};
use crate::capability::log::{LogLine, LogSink};
use crate::capability::secrets::SecretStore;
use crate::capability::{Denials, LimitHit};
use crate::digest::Digest;
use crate::manifest::{Capabilities, Kind, KubePolicy, Limits};
use crate::model::{ActionRequest, Analysis, Incident, Outcome};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// The recipe returned an analysis or outcome.
    Ok,
    /// The recipe returned its own error.
    RecipeError,
    /// The recipe trapped (panic, unreachable, bad memory access).
    Trapped,
    /// The wall-clock budget ran out.
    TimedOut,
    /// Memory, table, stack, output or result size over its limit.
    LimitExceeded,
    /// The recipe imported or asked for something its manifest does not grant.
    Denied,
    /// The bytes are not the ones pinned for this run.
    DigestMismatch,
    /// Built against a WIT version this host does not speak.
    Incompatible,
    /// Not a valid component, or not the right world.
    InvalidModule,
}

impl RunStatus {
    /// The kebab-case name used in results, metrics and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::RecipeError => "recipe-error",
            RunStatus::Trapped => "trapped",
            RunStatus::TimedOut => "timed-out",
            RunStatus::LimitExceeded => "limit-exceeded",
            RunStatus::Denied => "denied",
            RunStatus::DigestMismatch => "digest-mismatch",
            RunStatus::Incompatible => "incompatible",
            RunStatus::InvalidModule => "invalid-module",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a run is asked to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "input")]
pub enum RunInput {
    /// Call `debug(incident)`.
    Debug(Incident),
    /// Call `act(request)`.
    Action(ActionRequest),
}

impl RunInput {
    /// The incident the run is about.
    pub fn incident(&self) -> &Incident {
        match self {
            RunInput::Debug(i) => i,
            RunInput::Action(a) => &a.incident,
        }
    }

    /// The recipe kind this input needs.
    pub fn kind(&self) -> Kind {
        match self {
            RunInput::Debug(_) => Kind::Debug,
            RunInput::Action(_) => Kind::Action,
        }
    }
}

/// One run: which bytes, pinned to which digest, with which grants and limits, on which input.
#[derive(Debug, Clone)]
pub struct RunJob {
    /// Run id (for logs and the result).
    pub run_id: String,
    /// Recipe name.
    pub recipe: String,
    /// The digest pinned at fan-out.
    pub digest: Digest,
    /// The component bytes as loaded (verified here, not before).
    pub bytes: Arc<[u8]>,
    /// Grants.
    pub capabilities: Capabilities,
    /// Limits.
    pub limits: Limits,
    /// The manifest's config table.
    pub config: std::collections::BTreeMap<String, String>,
    /// Input.
    pub input: RunInput,
}

/// Microseconds spent in each step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    /// sha256 of the bytes.
    pub verify_us: u64,
    /// Compile, or cache lookup.
    pub compile_us: u64,
    /// Store + instance.
    pub instantiate_us: u64,
    /// The call.
    pub run_us: u64,
}

/// Where the compiled component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheUse {
    /// Compiled for this run.
    Compiled,
    /// From the in-memory cache.
    Memory,
    /// From the on-disk cache.
    Disk,
    /// Never got that far.
    None,
}

/// The result of one run — what is recorded and published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Run id.
    pub run_id: String,
    /// Recipe name.
    pub recipe: String,
    /// The digest the run was pinned to.
    pub digest: Digest,
    /// How it ended.
    pub status: RunStatus,
    /// What happened, for humans (empty when ok).
    pub message: String,
    /// A debugger's analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Analysis>,
    /// An actor's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Requests the sandbox refused.
    #[serde(default)]
    pub denials: Vec<String>,
    /// Captured stdout (bounded).
    #[serde(default)]
    pub stdout: String,
    /// Captured stderr (bounded).
    #[serde(default)]
    pub stderr: String,
    /// Lines logged through the log interface (bounded).
    #[serde(default)]
    pub logs: Vec<LogLine>,
    /// Step timings.
    pub timings: Timings,
    /// Where the compiled code came from.
    pub cache: CacheUse,
    /// Peak linear memory, bytes.
    pub memory_peak_bytes: u64,
}

impl RunResult {
    fn new(job: &RunJob) -> Self {
        Self::blank(job.run_id.clone(), job.recipe.clone(), job.digest)
    }

    fn blank(run_id: String, recipe: String, digest: Digest) -> Self {
        RunResult {
            run_id,
            recipe,
            digest,
            status: RunStatus::Ok,
            message: String::new(),
            analysis: None,
            outcome: None,
            denials: vec![],
            stdout: String::new(),
            stderr: String::new(),
            logs: vec![],
            timings: Timings::default(),
            cache: CacheUse::None,
            memory_peak_bytes: 0,
        }
    }

    fn fail(mut self, status: RunStatus, message: impl Into<String>) -> Self {
        self.status = status;
        self.message = message.into();
        self
    }

    /// A result for a run that never reported (host deadline, lost Job), for executors.
    pub fn closed(job: &RunJob, status: RunStatus, message: impl Into<String>) -> Self {
        RunResult::new(job).fail(status, message)
    }

    /// A `timed-out` result for a run known only by its record (after a restart).
    pub fn lost(run_id: &str, recipe: &str, digest: &str, message: impl Into<String>) -> Self {
        let digest = digest.parse().unwrap_or_else(|_| Digest::of(&[]));
        Self::blank(run_id.into(), recipe.into(), digest).fail(RunStatus::TimedOut, message)
    }
}

/// Sandbox settings (the host's, not a recipe's).
#[derive(Clone)]
pub struct SandboxConfig {
    /// On-disk compile cache; `None` keeps it in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Instances the pooling allocator keeps slots for (concurrent runs).
    pub pool_slots: u32,
    /// Host directories under which manifests may grant read-only `dirs`. Empty: no dir grants.
    pub dir_roots: Vec<PathBuf>,
    /// Kubernetes clients for the kubernetes capability (`None`: calls fail with a clear error).
    pub kube: Option<KubeClients>,
    /// Which Kubernetes grants the host allows (cluster scope, sensitive resources).
    pub kube_policy: KubePolicy,
    /// Secret values.
    pub secrets: SecretStore,
    /// Runs of one recipe at the same time in this process; more wait for a turn.
    pub max_runs_per_recipe: u32,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            cache_dir: None,
            pool_slots: 128,
            dir_roots: vec![],
            kube: None,
            kube_policy: KubePolicy::default(),
            secrets: SecretStore::default(),
            max_runs_per_recipe: 16,
        }
    }
}

/// A compiled component and what it claims, cached by digest.
struct Compiled {
    /// The verified buffer this was compiled from. `Arc<[u8]>` is immutable, so a later run
    /// handing in the very same allocation needs no second hash.
    source: Arc<[u8]>,
    imports: Vec<String>,
    exports: Vec<String>,
    debugger: Option<bindings::debugger::DebuggerPre<RunState>>,
    actor: Option<bindings::actor::ActorPre<RunState>>,
    invalid: Option<String>,
}

/// The wasmtime engine, linker and compile cache shared by every run in this process.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<RunState>,
    compiled: Mutex<HashMap<Digest, Arc<Compiled>>>,
    disk: Option<DiskCache>,
    config: SandboxConfig,
    /// One permit per pool slot: runs past the pool's size wait instead of failing to instantiate.
    slots: Arc<tokio::sync::Semaphore>,
    /// Permits per recipe name, so one recipe cannot take every slot.
    per_recipe: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

/// Largest linear memory any recipe may have; the pool reserves slots this big.
const POOL_MAX_MEMORY: usize = (Limits::MAX.memory_mib as usize) << 20;

impl Sandbox {
    /// Build the engine (pooling allocator, epoch interruption), the linker and the caches, and
    /// start the epoch ticker.
    pub fn new(config: SandboxConfig) -> crate::Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(config.pool_slots)
            .total_core_instances(config.pool_slots * 8)
            .total_memories(config.pool_slots * 2)
            .total_tables(config.pool_slots * 8)
            .total_stacks(config.pool_slots)
            .max_memory_size(POOL_MAX_MEMORY)
            .max_core_instances_per_component(32)
            .max_memories_per_component(4)
            .max_tables_per_component(32)
            .max_unused_warm_slots(config.pool_slots.min(32));
        let mut wt = Config::new();
        wt.epoch_interruption(true)
            .wasm_component_model(true)
            .max_wasm_stack(1 << 20)
            // Guest frames are not shown to anyone; a trap's message is enough.
            .wasm_backtrace_max_frames(None)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wt).map_err(|e| crate::Error::Sandbox(format!("engine: {e}")))?;
        let mut linker = Linker::new(&engine);
        bindings::add_to_linker(&mut linker).map_err(|e| crate::Error::Sandbox(format!("linker: {e}")))?;
        let disk = config
            .cache_dir
            .as_deref()
            .map(|d| DiskCache::open(d, &engine))
            .transpose()?;
        // The ticker holds a weak handle: it stops when the last engine clone is dropped.
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("euphrosyne-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| crate::Error::Sandbox(format!("epoch ticker: {e}")))?;
        Ok(Sandbox {
            engine,
            linker,
            compiled: Mutex::new(HashMap::new()),
            disk,
            slots: Arc::new(tokio::sync::Semaphore::new(config.pool_slots as usize)),
            per_recipe: Mutex::new(HashMap::new()),
            config,
        })
    }

    /// The engine (for precompile checks and benchmarks).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Forget compiled components (memory only), e.g. to measure cold starts.
    pub fn clear_memory_cache(&self) {
        self.compiled.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Compile the component for `digest` (or load it from the disk cache) and remember it in
    /// memory. The caller looked in the memory cache first and verified the bytes.
    async fn compile(&self, digest: Digest, bytes: Arc<[u8]>) -> (Arc<Compiled>, CacheUse) {
        let engine = self.engine.clone();
        let disk = self.disk.clone();
        let linker = self.linker.clone();
        let source = bytes.clone();
        // Compiling is CPU-heavy: keep it off the async workers.
        let result = tokio::task::spawn_blocking(move || {
            let (component, from) = match disk.as_ref().and_then(|d| d.load(&engine, &digest)) {
                Some(c) => (Ok(c), CacheUse::Disk),
                None => (Component::new(&engine, &bytes), CacheUse::Compiled),
            };
            let compiled = match component {
                Err(e) => Compiled {
                    source: bytes.clone(),
                    imports: vec![],
                    exports: vec![],
                    debugger: None,
                    actor: None,
                    invalid: Some(format!("not a valid WebAssembly component: {e:#}")),
                },
                Ok(component) => {
                    if from == CacheUse::Compiled
                        && let Some(d) = &disk
                    {
                        d.store(&digest, &component);
                    }
                    let ty = component.component_type();
                    let imports = ty.imports(&engine).map(|(n, _)| n.to_string()).collect();
                    let exports = ty
                        .exports(&engine)
                        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentFunc(_)))
                        .map(|(n, _)| n.to_string())
                        .collect();
                    let pre = linker.instantiate_pre(&component);
                    let (debugger, actor, invalid) = match pre {
                        Ok(pre) => (
                            bindings::debugger::DebuggerPre::new(pre.clone()).ok(),
                            bindings::actor::ActorPre::new(pre).ok(),
                            None,
                        ),
                        Err(e) => (None, None, Some(format!("cannot link: {e:#}"))),
                    };
                    Compiled {
                        source: bytes.clone(),
                        imports,
                        exports,
                        debugger,
                        actor,
                        invalid,
                    }
                }
            };
            (Arc::new(compiled), from)
        })
        .await;
        let (compiled, from) = result.unwrap_or_else(|e| {
            let c = Compiled {
                source,
                imports: vec![],
                exports: vec![],
                debugger: None,
                actor: None,
                invalid: Some(format!("compiler panicked: {e}")),
            };
            (Arc::new(c), CacheUse::Compiled)
        });
        self.compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest, compiled.clone());
        (compiled, from)
    }

    /// Run one recipe call. Never panics and never returns an error: every failure is a status.
    pub async fn run(&self, job: &RunJob) -> RunResult {
        use tracing::Instrument;
        let span = tracing::info_span!("run", run_id = %job.run_id, recipe = %job.recipe);
        self.run_in_span(job).instrument(span).await
    }

    async fn run_in_span(&self, job: &RunJob) -> RunResult {
        let mut result = RunResult::new(job);

        // 1. Verify before anything else looks at the bytes — unless this exact buffer was
        //    verified and compiled already (same allocation, immutable), in which case nothing
        //    looks at the bytes at all: the cached code for the pinned digest runs.
        let t = Instant::now();
        let cached = self
            .compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&job.digest)
            .cloned();
        let seen = cached.as_ref().is_some_and(|c| Arc::ptr_eq(&c.source, &job.bytes));
        let verified = if seen { Ok(()) } else { job.digest.verify(&job.bytes) };
        result.timings.verify_us = t.elapsed().as_micros() as u64;
        if let Err(actual) = verified {
            return result.fail(
                RunStatus::DigestMismatch,
                format!(
                    "recipe `{}`: digest mismatch: pinned {}, got {actual} — the bytes changed after the run was pinned (ConfigMap edited?); refusing to execute. Re-run the incident to pin the new bytes.",
                    job.recipe, job.digest
                ),
            );
        }

        // 2. Compile or reuse.
        let t = Instant::now();
        let (compiled, from) = match cached {
            Some(c) => (c, CacheUse::Memory),
            None => self.compile(job.digest, job.bytes.clone()).await,
        };
        result.timings.compile_us = t.elapsed().as_micros() as u64;
        result.cache = from;
        if let Some(why) = &compiled.invalid {
            return result.fail(RunStatus::InvalidModule, format!("recipe `{}`: {why}", job.recipe));
        }

        // 3. Imports against grants, WIT version, the right export.
        if let Err((status, why)) = imports::check(
            &compiled.imports,
            &compiled.exports,
            job.input.kind(),
            &job.capabilities,
        ) {
            return result.fail(status, format!("recipe `{}`: {why}", job.recipe));
        }
        for d in &job.capabilities.dirs {
            if !self.config.dir_roots.iter().any(|root| d.host.starts_with(root)) {
                return result.fail(
                    RunStatus::Denied,
                    format!(
                        "recipe `{}`: directory grant {} is outside the host's allowed roots (sandbox dir_roots)",
                        job.recipe,
                        d.host.display()
                    ),
                );
            }
        }

        if let Err(why) = self.config.kube_policy.check(&job.recipe, &job.capabilities.kubernetes) {
            return result.fail(RunStatus::Denied, why);
        }

        // The entry point for this input. A component that exports the function with other
        // types is not a recipe of this kind: refuse it as invalid before instantiating anything.
        let entry = match (&job.input, &compiled.debugger, &compiled.actor) {
            (RunInput::Debug(incident), Some(pre), _) => Entry::Debug(pre, incident),
            (RunInput::Action(request), _, Some(pre)) => Entry::Act(pre, request),
            (input, _, _) => {
                let world = match input.kind() {
                    Kind::Debug => "debugger world (export `debug` with the 0.1.0 types)",
                    Kind::Action => "actor world (export `act` with the 0.1.0 types)",
                };
                return result.fail(
                    RunStatus::InvalidModule,
                    format!("recipe `{}`: the component does not match the {world}", job.recipe),
                );
            }
        };

        // Wait for a turn: a pool slot, and one of this recipe's permits.
        let recipe_permits = {
            let per_recipe = self.config.max_runs_per_recipe.max(1) as usize;
            let mut map = self.per_recipe.lock().unwrap_or_else(|e| e.into_inner());
            // Forget recipes nobody is running or waiting for.
            map.retain(|_, s| Arc::strong_count(s) > 1 || s.available_permits() < per_recipe);
            map.entry(job.recipe.clone())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(per_recipe)))
                .clone()
        };
        let (Ok(_recipe_turn), Ok(_slot)) = (
            recipe_permits.acquire_owned().await,
            self.slots.clone().acquire_owned().await,
        ) else {
            return result.fail(RunStatus::LimitExceeded, "the sandbox is shutting down");
        };

        // 4. A fresh store.
        let t = Instant::now();
        let mut store = match self.store(job) {
            Ok(s) => s,
            Err(why) => return result.fail(RunStatus::Denied, format!("recipe `{}`: {why}", job.recipe)),
        };
        let deadline = Duration::from_millis(job.limits.timeout_ms);
        // Every epoch tick the guest yields to the async runtime (so a spinning recipe never holds
        // a worker thread for more than one tick), its whole memory budget is checked, and past
        // the deadline it is interrupted.
        let started = Instant::now();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |mut ctx| {
            let state = ctx.data_mut();
            let over = state.limiter.check().is_err() || state.limit.get().is_some();
            if over || started.elapsed() >= deadline {
                return Err(Trap::Interrupt.into());
            }
            Ok(UpdateDeadline::Yield(1))
        });
        store.limiter(|s| &mut s.limiter);
        // Host memory grows in host calls: check the whole budget as each returns, so a recipe
        // hoarding header fields overshoots by one call at most, not by a tick's worth.
        store.call_hook(|mut ctx, hook| {
            if matches!(hook, CallHook::ReturningFromHost) {
                ctx.data_mut().limiter.check().map_err(|m| wasmtime::format_err!(m))?;
            }
            Ok(())
        });
        let meter_id = store.data().limiter.meter.as_ref().map(meter::Meter::id);

        // 5. Instantiate and call under the wall-clock timeout (epochs do not interrupt host calls).
        let call = async {
            match entry {
                Entry::Debug(pre, incident) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    let inst_us = t.elapsed().as_micros() as u64;
                    let t_run = Instant::now();
                    let wit_incident = incident.into();
                    let r = instance.call_debug(&mut store, &wit_incident).await?;
                    Ok::<_, wasmtime::Error>((
                        inst_us,
                        t_run.elapsed().as_micros() as u64,
                        r.map(|a| Done::Analysis(a.into())).map_err(|e| e.message),
                    ))
                }
                Entry::Act(pre, request) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    let inst_us = t.elapsed().as_micros() as u64;
                    let t_run = Instant::now();
                    let wit_request = request.into();
                    let r = instance.call_act(&mut store, &wit_request).await?;
                    Ok((
                        inst_us,
                        t_run.elapsed().as_micros() as u64,
                        r.map(|o| Done::Outcome(o.into())).map_err(|e| e.message),
                    ))
                }
            }
        };
        let outcome = tokio::time::timeout(
            deadline + Duration::from_millis(50),
            meter::Metered::new(meter_id, call),
        )
        .await;
        let total_us = t.elapsed().as_micros() as u64;

        // 6. Classify.
        let state = store.data_mut();
        result.denials = state.denials.list();
        result.memory_peak_bytes = state.limiter.true_peak() as u64;
        result.logs = state.logs.take();
        if state.logs.dropped() > 0 {
            result.logs.push(LogLine {
                level: "warn".into(),
                message: format!(
                    "{} more log records dropped: the run's log is capped at limits.output_bytes = {} bytes (each record counts its encoded size + {} bytes)",
                    state.logs.dropped(),
                    job.limits.output_bytes,
                    LogSink::RECORD_OVERHEAD
                ),
            });
        }
        let out_cap = job.limits.output_bytes as usize;
        let (stdout, stderr) = (state.stdout.contents(), state.stderr.contents());
        result.stdout = String::from_utf8_lossy(&stdout).into_owned();
        result.stderr = String::from_utf8_lossy(&stderr).into_owned();
        let output_full = stdout.len() >= out_cap || stderr.len() >= out_cap;
        let host_limit = state.limit.get();
        let limit_hit = state.limiter.hit.clone().or_else(|| host_limit.clone());
        match outcome {
            Err(_elapsed) => {
                result.timings.run_us = total_us;
                result = result.fail(
                    RunStatus::TimedOut,
                    format!(
                        "recipe `{}` did not finish within limits.timeout_ms = {} (a host call was still pending)",
                        job.recipe, job.limits.timeout_ms
                    ),
                );
            }
            Ok(Err(e)) => {
                result.timings.run_us = total_us;
                let trap = e.downcast_ref::<Trap>().copied();
                let exit = e.downcast_ref::<wasmtime_wasi::I32Exit>().map(|x| x.0);
                let (status, msg) = if let Some(limit) = limit_hit {
                    (RunStatus::LimitExceeded, format!("recipe `{}`: {limit}", job.recipe))
                } else if trap == Some(Trap::Interrupt) {
                    (
                        RunStatus::TimedOut,
                        format!(
                            "recipe `{}` ran past limits.timeout_ms = {} and was interrupted",
                            job.recipe, job.limits.timeout_ms
                        ),
                    )
                } else if let Some(code) = exit {
                    (
                        RunStatus::Trapped,
                        format!(
                            "recipe `{}` exited with status {code} instead of returning a result",
                            job.recipe
                        ),
                    )
                } else if trap == Some(Trap::StackOverflow) {
                    (
                        RunStatus::LimitExceeded,
                        format!("recipe `{}`: wasm stack overflow (stack limit 1 MiB)", job.recipe),
                    )
                } else if output_full || format!("{e:#}").contains("beyond capacity") {
                    (
                        RunStatus::LimitExceeded,
                        format!(
                            "recipe `{}`: output limit: wrote more than limits.output_bytes = {out_cap} bytes to stdout/stderr",
                            job.recipe
                        ),
                    )
                } else {
                    // A Rust guest's panic message: the `panicked at` line and the message after it.
                    let panic_line = result
                        .stderr
                        .lines()
                        .skip_while(|l| !l.contains("panicked"))
                        .take(2)
                        .collect::<Vec<_>>()
                        .join(" ");
                    let panic_line = if panic_line.is_empty() {
                        panic_line
                    } else {
                        format!(" — {panic_line}")
                    };
                    let what = trap.map(|t| t.to_string()).unwrap_or_else(|| format!("{e:#}"));
                    (
                        RunStatus::Trapped,
                        crate::capability::truncate(
                            format!("recipe `{}` trapped: {what}{panic_line}", job.recipe),
                            MAX_MESSAGE_BYTES,
                        ),
                    )
                };
                result = result.fail(status, msg);
            }
            Ok(Ok((inst_us, run_us, r))) => {
                result.timings.instantiate_us = inst_us;
                result.timings.run_us = run_us;
                match r {
                    Ok(Done::Analysis(a)) => result.analysis = Some(a),
                    Ok(Done::Outcome(o)) => result.outcome = Some(o),
                    Err(message) => result = result.fail(RunStatus::RecipeError, message),
                }
            }
        }
        // A host-side limit the guest ran into (connections) names the run's end even when the
        // guest carried on and returned.
        if let Some(limit) = host_limit
            && matches!(result.status, RunStatus::Ok | RunStatus::RecipeError)
        {
            result = result.fail(RunStatus::LimitExceeded, format!("recipe `{}`: {limit}", job.recipe));
        }
        if !result.denials.is_empty() && matches!(result.status, RunStatus::Ok | RunStatus::RecipeError) {
            let why = result.denials.join("; ");
            let msg = if result.message.is_empty() {
                why
            } else {
                format!("{why} (recipe said: {})", result.message)
            };
            result = result.fail(RunStatus::Denied, msg);
        }
        // Cap the result itself before anyone publishes it.
        let size = serde_json::to_vec(&(&result.analysis, &result.outcome, &result.message))
            .map(|v| v.len())
            .unwrap_or(0);
        if size > out_cap {
            result.analysis = None;
            result.outcome = None;
            result = result.fail(
                RunStatus::LimitExceeded,
                format!(
                    "recipe `{}`: result is {size} bytes, over limits.output_bytes = {out_cap}",
                    job.recipe
                ),
            );
        }
        tracing::info!(status = %result.status, verify_us = result.timings.verify_us, compile_us = result.timings.compile_us,
            instantiate_us = result.timings.instantiate_us, run_us = result.timings.run_us, "run finished");
        result
    }

    fn store(&self, job: &RunJob) -> Result<Store<RunState>, String> {
        let cap = job.limits.output_bytes as usize;
        let denials = Denials::default();
        let stdout = MemoryOutputPipe::new(cap);
        let stderr = MemoryOutputPipe::new(cap);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(stdout.clone()).stderr(stderr.clone());
        for d in &job.capabilities.dirs {
            // cap-std: open the granted directory as a capability; nothing above it is reachable.
            cap_std::fs::Dir::open_ambient_dir(&d.host, cap_std::ambient_authority())
                .map_err(|e| format!("granted directory {}: {e}", d.host.display()))?;
            wasi.preopened_dir(&d.host, &d.guest, FsPerms::ReadOnly)
                .map_err(|e| format!("granted directory {}: {e}", d.host.display()))?;
        }
        let limit = LimitHit::default();
        let egress = EgressPolicy::new(
            &job.capabilities.http,
            EgressLimits {
                max_response_bytes: cap.max(1 << 20),
                max_request_bytes: cap.max(1 << 20),
                // Half the run's budget at most, so a stalled connect or handshake is the
                // recipe's error to handle, not the run's timeout.
                connect_timeout: Duration::from_millis((job.limits.timeout_ms / 2).clamp(1, 10_000)),
                ..EgressLimits::default()
            },
            denials.clone(),
            limit.clone(),
        );
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(MAX_FIELDS_BYTES);
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let state = RunState {
            wasi: wasi.build(),
            http,
            table,
            egress,
            limit,
            limiter: Limiter::new((job.limits.memory_mib as usize) << 20),
            logs: LogSink::new(cap),
            config: job.config.clone(),
            secrets: self.config.secrets.clone(),
            secret_grants: job.capabilities.secrets.clone(),
            kube: KubeAccess::new(
                self.config.kube.as_ref(),
                &job.capabilities.kubernetes,
                job.input.incident().namespaces(),
                denials.clone(),
                cap,
            ),
            denials,
            stdout,
            stderr,
        };
        Ok(Store::new(&self.engine, state))
    }
}

/// What a run calls: the typed entry point and its input.
enum Entry<'a> {
    Debug(&'a bindings::debugger::DebuggerPre<RunState>, &'a Incident),
    Act(&'a bindings::actor::ActorPre<RunState>, &'a ActionRequest),
}

enum Done {
    Analysis(Analysis),
    Outcome(Outcome),
}

/// Bytes of a failed run's message (a trap's text and the guest's panic line).
const MAX_MESSAGE_BYTES: usize = 1024;
/// Resources (streams, fields, requests, …) one run may hold at once.
const MAX_RESOURCES: usize = 4096;
/// In-memory bytes of one `wasi:http` fields resource.
const MAX_FIELDS_BYTES: usize = 64 * 1024;

/// How often the epoch advances; timeouts are enforced to this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
