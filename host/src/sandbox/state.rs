//! `RunState`: everything one run's `Store` holds — its WASI context (no env, no args, no
//! sockets, only granted directories), bounded stdout/stderr, the HTTP egress policy, the
//! granted capabilities, the memory limiter and the denials.

use std::collections::BTreeMap;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::config::SandboxConfig;
use super::limits::Limiter;
use super::run::RunJob;
use crate::capability::http::{EgressLimits, EgressPolicy};
use crate::capability::kube::KubeAccess;
use crate::capability::log::LogSink;
use crate::capability::secrets::SecretStore;
use crate::capability::{Denials, LimitHit};

/// The data of one run's `Store`.
pub struct RunState {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    pub(crate) egress: EgressPolicy,
    pub(crate) limiter: Limiter,
    pub(crate) limit: LimitHit,
    pub(crate) logs: LogSink,
    pub(crate) config: BTreeMap<String, String>,
    pub(crate) secrets: SecretStore,
    pub(crate) secret_grants: Vec<String>,
    pub(crate) kube: KubeAccess,
    pub(crate) denials: Denials,
    pub(crate) stdout: MemoryOutputPipe,
    pub(crate) stderr: MemoryOutputPipe,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RunState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.egress,
        }
    }
}

/// Resources (streams, fields, requests, …) one run may hold at once.
const MAX_RESOURCES: usize = 4096;
/// In-memory bytes of one `wasi:http` fields resource.
const MAX_FIELDS_BYTES: usize = 64 * 1024;

/// A fresh store for `job`: its WASI context, bounded pipes, egress policy and grants.
pub(super) fn new_store(engine: &Engine, config: &SandboxConfig, job: &RunJob) -> Result<Store<RunState>, String> {
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
    )
    .read_only(job.input.write_mode().dry_run);
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
        secrets: config.secrets.clone(),
        secret_grants: job.capabilities.secrets.clone(),
        kube: KubeAccess::new(
            config.kube.as_ref(),
            &job.capabilities.kubernetes,
            job.input.incident().namespaces(),
            denials.clone(),
            cap,
        )
        .with_mode(job.input.write_mode()),
        denials,
        stdout,
        stderr,
    };
    Ok(Store::new(engine, state))
}
