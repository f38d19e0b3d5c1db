//! `RunState`: everything one run's `Store` holds — its WASI context (no env, no args, no
//! sockets, only granted directories), bounded stdout/stderr, the HTTP egress policy, the
//! granted capabilities, the memory limiter and the denials.

use std::collections::BTreeMap;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::limits::Limiter;
use crate::capability::http::EgressPolicy;
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
