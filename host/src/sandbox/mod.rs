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

mod artifact;
mod bindings;
mod cache;
mod classify;
mod config;
mod convert;
mod imports;
mod limits;
pub mod meter;
mod run;
mod state;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use wasmtime::component::Linker;
use wasmtime::{
    CallHook, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap, UpdateDeadline,
};

pub use self::artifact::ArtifactKey;
pub use self::cache::DiskCache;
use self::cache::{ActPre, Compiled, DebugPre, MemoryCache};
use self::classify::Done;
pub use self::config::{CacheStats, SandboxConfig};
pub use self::meter::MeteredAlloc;
pub use self::run::{CacheUse, RunInput, RunJob, RunResult, RunStatus, Timings};
use self::state::RunState;
use crate::digest::Digest;
use crate::manifest::{Kind, Limits};
use crate::model::{ActionRequest, Incident};

/// The wasmtime engine, linker and compile cache shared by every run in this process.
pub struct Sandbox {
    engine: Engine,
    /// [`Sandbox::engine_id`], computed once.
    engine_id: String,
    linker: Linker<RunState>,
    compiled: MemoryCache,
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
            engine_id: format!("{:016x}", cache::compat(&engine)),
            engine,
            linker,
            compiled: MemoryCache::new(config.memory_cache_entries, config.cache_stats.clone()),
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

    /// This engine's code-compatibility fingerprint, as artifacts name it.
    pub fn engine_id(&self) -> &str {
        &self.engine_id
    }

    /// The compiled code for the component `bytes` (verified against `digest` first; compiled
    /// here, or taken from the cache), serialized and sealed with `key` for sandbox processes
    /// whose engine matches this one ([`Sandbox::adopt`]).
    pub async fn artifact(&self, digest: Digest, bytes: Arc<[u8]>, key: &ArtifactKey) -> Result<Vec<u8>, String> {
        pinned(&digest, &bytes)?;
        let compiled = match self.compiled.get(&digest) {
            Some(c) => c,
            None => self.compile(digest, bytes).await.0,
        };
        let component = compiled
            .component
            .clone()
            .ok_or_else(|| compiled.invalid.clone().unwrap_or_else(|| "did not compile".into()))?;
        let code = tokio::task::spawn_blocking(move || component.serialize())
            .await
            .map_err(|e| format!("serializing: {e}"))?
            .map_err(|e| format!("serializing: {e:#}"))?;
        Ok(key.seal(&digest, &self.engine_id, &code))
    }

    /// Take the code for the component `bytes` (pinned as `digest`) from `sealed`, an artifact
    /// another process made ([`Sandbox::artifact`]), instead of compiling it: only when `key`
    /// opens its seal for this digest and this engine, and the bytes match the digest. The run of
    /// those same bytes (the same `Arc`) then finds it in the memory cache. `Err` says why it
    /// was not taken; the run compiles then, as without it.
    pub fn adopt(&self, digest: &Digest, bytes: &Arc<[u8]>, sealed: &[u8], key: &ArtifactKey) -> Result<(), String> {
        let code = key.open(digest, &self.engine_id, sealed)?;
        pinned(digest, bytes)?;
        // SAFETY: `code` is what `Component::serialize` wrote in a process holding the artifact
        // key, for this digest and an engine with this compatibility fingerprint: the seal, an
        // HMAC-SHA256 under that key, was checked above before anything read the bytes. wasmtime
        // checks the code's own version and settings against this engine as it loads.
        let component = unsafe { wasmtime::component::Component::deserialize(&self.engine, code) }
            .map_err(|e| format!("loading the precompiled code: {e:#}"))?;
        let compiled = cache::link(&self.engine, &self.linker, component, bytes.clone());
        self.compiled.insert(*digest, Arc::new(compiled));
        Ok(())
    }

    /// Forget compiled components (memory only), e.g. to measure cold starts.
    pub fn clear_memory_cache(&self) {
        self.compiled.clear();
    }

    /// Compile the component for `digest` (or load it from the disk cache) off the async
    /// workers, and remember it in memory. The caller verified the bytes.
    async fn compile(&self, digest: Digest, bytes: Arc<[u8]>) -> (Arc<Compiled>, CacheUse) {
        let (engine, linker, disk) = (self.engine.clone(), self.linker.clone(), self.disk.clone());
        let source = bytes.clone();
        let result =
            tokio::task::spawn_blocking(move || cache::compile(&engine, &linker, disk.as_ref(), &digest, bytes)).await;
        let (compiled, from) = result.unwrap_or_else(|e| (cache::panicked(source, e), CacheUse::Compiled));
        let compiled = Arc::new(compiled);
        self.compiled.insert(digest, compiled.clone());
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
        let compiled = match self.prepare(job, &mut result).await {
            Ok(c) => c,
            Err((status, why)) => return result.fail(status, why),
        };
        let entry = match Entry::of(&compiled, &job.input) {
            Ok(e) => e,
            Err(why) => return result.fail(RunStatus::InvalidModule, format!("recipe `{}`: {why}", job.recipe)),
        };
        // 4. Wait for a turn: a pool slot, and one of this recipe's permits.
        let Some(_turn) = self.turn(&job.recipe).await else {
            return result.fail(RunStatus::LimitExceeded, "the sandbox is shutting down");
        };
        let result = self.call(job, entry, result).await;
        tracing::info!(status = %result.status, verify_us = result.timings.verify_us, compile_us = result.timings.compile_us,
            instantiate_us = result.timings.instantiate_us, run_us = result.timings.run_us, "run finished");
        result
    }

    /// Steps 1–3: verify the bytes, compile (or reuse), check imports, grants and policy. `Err`
    /// says how the run ends, and why.
    async fn prepare(&self, job: &RunJob, result: &mut RunResult) -> Result<Arc<Compiled>, (RunStatus, String)> {
        // 1. Verify before anything else looks at the bytes — unless this exact buffer was
        //    verified and compiled already (same allocation, immutable), in which case nothing
        //    looks at the bytes at all: the cached code for the pinned digest runs.
        let t = Instant::now();
        let cached = self.compiled.get(&job.digest);
        let seen = cached.as_ref().is_some_and(|c| Arc::ptr_eq(&c.source, &job.bytes));
        let verified = if seen { Ok(()) } else { job.digest.verify(&job.bytes) };
        result.timings.verify_us = t.elapsed().as_micros() as u64;
        if let Err(actual) = verified {
            let why = format!(
                "recipe `{}`: digest mismatch: pinned {}, got {actual} — the bytes changed after the run was pinned (ConfigMap edited?); refusing to execute. Re-run the incident to pin the new bytes.",
                job.recipe, job.digest
            );
            return Err((RunStatus::DigestMismatch, why));
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
            return Err((RunStatus::InvalidModule, format!("recipe `{}`: {why}", job.recipe)));
        }
        // 3. Imports against grants, WIT version, the right export; directories; policy.
        let kind = job.input.kind();
        if let Err((status, why)) = imports::check(&compiled.imports, &compiled.exports, kind, &job.capabilities) {
            return Err((status, format!("recipe `{}`: {why}", job.recipe)));
        }
        for d in &job.capabilities.dirs {
            if !self.config.dir_roots.iter().any(|root| d.host.starts_with(root)) {
                let why = format!(
                    "recipe `{}`: directory grant {} is outside the host's allowed roots (sandbox dir_roots)",
                    job.recipe,
                    d.host.display()
                );
                return Err((RunStatus::Denied, why));
            }
        }
        if let Err(why) = self.config.kube_policy.check(&job.recipe, &job.capabilities.kubernetes) {
            return Err((RunStatus::Denied, why));
        }
        Ok(compiled)
    }

    /// A pool slot and one of the recipe's permits, held for the run; `None` when closed.
    async fn turn(
        &self,
        recipe: &str,
    ) -> Option<(tokio::sync::OwnedSemaphorePermit, tokio::sync::OwnedSemaphorePermit)> {
        let recipe_permits = {
            let per_recipe = self.config.max_runs_per_recipe.max(1) as usize;
            let mut map = self.per_recipe.lock();
            // Forget recipes nobody is running or waiting for.
            map.retain(|_, s| Arc::strong_count(s) > 1 || s.available_permits() < per_recipe);
            map.entry(recipe.to_string())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(per_recipe)))
                .clone()
        };
        let recipe_turn = recipe_permits.acquire_owned().await.ok()?;
        let slot = self.slots.clone().acquire_owned().await.ok()?;
        Some((recipe_turn, slot))
    }

    /// Steps 4–6: a fresh store, instantiate and call under the limits, classify.
    async fn call(&self, job: &RunJob, entry: Entry<'_>, result: RunResult) -> RunResult {
        let t = Instant::now();
        let mut store = match state::new_store(&self.engine, &self.config, job) {
            Ok(s) => s,
            Err(why) => return result.fail(RunStatus::Denied, format!("recipe `{}`: {why}", job.recipe)),
        };
        let deadline = Duration::from_millis(job.limits.timeout_ms);
        guard(&mut store, deadline);
        let meter_id = store.data().limiter.meter.as_ref().map(meter::Meter::id);
        // 5. Instantiate and call under the wall-clock timeout (epochs do not interrupt host calls).
        let call = async {
            let (instance, t_run) = match entry {
                Entry::Debug(DebugPre::Current(pre), incident) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    let t_run = Instant::now();
                    let r = instance.call_debug(&mut store, &incident.into()).await?;
                    (r.map(|a| Done::Analysis(a.into())).map_err(|e| e.message), t_run)
                }
                Entry::Debug(DebugPre::V1(pre), incident) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    let t_run = Instant::now();
                    let r = instance.call_debug(&mut store, &incident.into()).await?;
                    (r.map(|a| Done::Analysis(a.into())).map_err(|e| e.message), t_run)
                }
                Entry::Act(ActPre::Current(pre), request) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    let t_run = Instant::now();
                    let r = instance.call_act(&mut store, &request.into()).await?;
                    (r.map(|o| Done::Outcome(o.into())).map_err(|e| e.message), t_run)
                }
                Entry::Act(ActPre::V1(pre), request) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    let t_run = Instant::now();
                    let r = instance.call_act(&mut store, &request.into()).await?;
                    (r.map(|o| Done::Outcome(o.into())).map_err(|e| e.message), t_run)
                }
            };
            let inst_us = (t_run - t).as_micros() as u64;
            Ok::<_, wasmtime::Error>((inst_us, t_run.elapsed().as_micros() as u64, instance))
        };
        let called = tokio::time::timeout(
            deadline + Duration::from_millis(50),
            meter::Metered::new(meter_id, call),
        )
        .await;
        let total_us = t.elapsed().as_micros() as u64;
        // 6. Classify.
        classify::classify(result, job, store.data_mut(), called, total_us)
    }
}

/// `bytes` are the component pinned as `digest`; why not otherwise.
fn pinned(digest: &Digest, bytes: &[u8]) -> Result<(), String> {
    digest
        .verify(bytes)
        .map_err(|actual| format!("digest mismatch: pinned {digest}, got {actual}"))
}

/// Every epoch tick the guest yields to the async runtime (so a spinning recipe never holds a
/// worker thread for more than one tick), its whole memory budget is checked, and past the
/// deadline it is interrupted. Host memory grows in host calls: the budget is also checked as each
/// returns, so a recipe hoarding header fields overshoots by one call at most, not a tick's worth.
fn guard(store: &mut Store<RunState>, deadline: Duration) {
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
    store.call_hook(|mut ctx, hook| {
        if matches!(hook, CallHook::ReturningFromHost) {
            ctx.data_mut().limiter.check().map_err(|m| wasmtime::format_err!(m))?;
        }
        Ok(())
    });
}

/// What a run calls: the typed entry point and its input.
enum Entry<'a> {
    Debug(&'a DebugPre, &'a Incident),
    Act(&'a ActPre, &'a ActionRequest),
}

impl<'a> Entry<'a> {
    /// The entry point for this input. A component that exports the function with other types
    /// is not a recipe of this kind: it is refused as invalid before anything is instantiated.
    fn of(compiled: &'a Compiled, input: &'a RunInput) -> Result<Self, String> {
        match (input, &compiled.debugger, &compiled.actor) {
            (RunInput::Debug(incident), Some(pre), _) => Ok(Entry::Debug(pre, incident)),
            (RunInput::Action(request), _, Some(pre)) => Ok(Entry::Act(pre, request)),
            (input, _, _) => {
                let world = match input.kind() {
                    Kind::Debug => "debugger world (export `debug` with the 0.2.0 or 0.1.0 types)",
                    Kind::Action => "actor world (export `act` with the 0.2.0 or 0.1.0 types)",
                };
                Err(format!("the component does not match the {world}"))
            }
        }
    }
}

/// How often the epoch advances; timeouts are enforced to this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
