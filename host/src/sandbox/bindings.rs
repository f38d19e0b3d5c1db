//! Host side of the WIT contract: generated bindings for `euphrosyne:recipe@0.2.0` (and, in
//! [`v1`], the frozen 0.1.0), and the `Host` trait impls that delegate to [`crate::capability`].
//! Conversions between [`crate::model`] and the WIT types are in `convert`.

use wasmtime::component::{HasSelf, Linker};

use super::state::RunState;
use crate::capability::kube::{KubeError, PatchType, WriteOptions};
use crate::capability::secrets::SecretError;

pub mod v1;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "imports",
    imports: { default: async | trappable },
});

/// The `debugger` world: `debug(incident) -> result<analysis, recipe-error>`.
pub mod debugger {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "debugger",
        imports: { default: async | trappable },
        exports: { default: async },
        with: { "euphrosyne:recipe": crate::sandbox::bindings::euphrosyne::recipe },
    });
}

/// The `actor` world: `act(action-request) -> result<outcome, recipe-error>`.
pub mod actor {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "actor",
        imports: { default: async | trappable },
        exports: { default: async },
        with: { "euphrosyne:recipe": crate::sandbox::bindings::euphrosyne::recipe },
    });
}

use self::euphrosyne::recipe::{config, kubernetes, log, secrets, types};

/// Add the Euphrosyne host interfaces (both versions), WASI p2 and `wasi:http` to `linker`.
pub fn add_to_linker(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    Imports::add_to_linker::<RunState, HasSelf<RunState>>(linker, |s| s)?;
    v1::Imports::add_to_linker::<RunState, HasSelf<RunState>>(linker, |s| s)
}

impl types::Host for RunState {}

impl log::Host for RunState {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Trace => "trace",
            log::Level::Debug => "debug",
            log::Level::Info => "info",
            log::Level::Warn => "warn",
            log::Level::Error => "error",
        };
        self.logs.push(level, message);
        Ok(())
    }
}

impl config::Host for RunState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.config.get(&key).cloned())
    }
    async fn all(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

impl secrets::Host for RunState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, secrets::SecretError>> {
        Ok(self
            .secrets
            .get(&name, &self.secret_grants, &self.denials)
            .map_err(|e| match e {
                SecretError::NotGranted(n) => secrets::SecretError::NotGranted(n),
                SecretError::NotFound(n) => secrets::SecretError::NotFound(n),
            }))
    }
}

fn kerr(e: KubeError) -> kubernetes::KubeError {
    match e {
        KubeError::Denied(m) => kubernetes::KubeError::Denied(m),
        KubeError::NotFound(m) => kubernetes::KubeError::NotFound(m),
        KubeError::Api(m) => kubernetes::KubeError::Api(m),
        KubeError::Invalid(m) => kubernetes::KubeError::Invalid(m),
        KubeError::Conflict(m) => kubernetes::KubeError::Conflict(m),
    }
}

fn options(o: kubernetes::WriteOptions) -> WriteOptions {
    WriteOptions {
        dry_run: o.dry_run,
        resource_version: o.resource_version,
        field_manager: o.field_manager,
    }
}

type KResult<T> = wasmtime::Result<Result<T, kubernetes::KubeError>>;

impl kubernetes::Host for RunState {
    async fn get(
        &mut self,
        api_version: String,
        kind: String,
        namespace: Option<String>,
        name: String,
    ) -> KResult<String> {
        Ok(self
            .kube
            .get(&api_version, &kind, namespace.as_deref(), &name)
            .await
            .map_err(kerr))
    }
    async fn list(
        &mut self,
        api_version: String,
        kind: String,
        namespace: Option<String>,
        label_selector: Option<String>,
        field_selector: Option<String>,
    ) -> KResult<String> {
        let r = self
            .kube
            .list(
                &api_version,
                &kind,
                namespace.as_deref(),
                label_selector.as_deref(),
                field_selector.as_deref(),
            )
            .await;
        Ok(r.map_err(kerr))
    }
    async fn pod_logs(
        &mut self,
        namespace: String,
        pod: String,
        container: Option<String>,
        tail_lines: Option<u32>,
        previous: bool,
    ) -> KResult<String> {
        Ok(self
            .kube
            .pod_logs(&namespace, &pod, container.as_deref(), tail_lines, previous)
            .await
            .map_err(kerr))
    }
    async fn events(&mut self, namespace: Option<String>, kind: String, name: String) -> KResult<String> {
        Ok(self.kube.events(namespace.as_deref(), &kind, &name).await.map_err(kerr))
    }
    async fn patch(
        &mut self,
        api_version: String,
        kind: String,
        namespace: Option<String>,
        name: String,
        patch_type: kubernetes::PatchType,
        patch: String,
        opts: kubernetes::WriteOptions,
    ) -> KResult<String> {
        let ptype = match patch_type {
            kubernetes::PatchType::Merge => PatchType::Merge,
            kubernetes::PatchType::Strategic => PatchType::Strategic,
            kubernetes::PatchType::Json => PatchType::Json,
            kubernetes::PatchType::Apply => PatchType::Apply,
        };
        let r = self
            .kube
            .patch(
                &api_version,
                &kind,
                namespace.as_deref(),
                &name,
                ptype,
                &patch,
                options(opts),
            )
            .await;
        Ok(r.map_err(kerr))
    }
    async fn create(
        &mut self,
        api_version: String,
        kind: String,
        namespace: Option<String>,
        object: String,
        opts: kubernetes::WriteOptions,
    ) -> KResult<String> {
        let r = self
            .kube
            .create(&api_version, &kind, namespace.as_deref(), &object, options(opts))
            .await;
        Ok(r.map_err(kerr))
    }
    async fn delete(
        &mut self,
        api_version: String,
        kind: String,
        namespace: Option<String>,
        name: String,
        opts: kubernetes::WriteOptions,
    ) -> KResult<()> {
        let r = self
            .kube
            .delete(&api_version, &kind, namespace.as_deref(), &name, options(opts))
            .await;
        Ok(r.map_err(kerr))
    }
    async fn evict(&mut self, namespace: String, pod: String, opts: kubernetes::WriteOptions) -> KResult<()> {
        Ok(self.kube.evict(&namespace, &pod, options(opts)).await.map_err(kerr))
    }
    async fn get_scale(
        &mut self,
        api_version: String,
        kind: String,
        namespace: String,
        name: String,
    ) -> KResult<String> {
        Ok(self
            .kube
            .get_scale(&api_version, &kind, &namespace, &name)
            .await
            .map_err(kerr))
    }
    async fn scale(
        &mut self,
        api_version: String,
        kind: String,
        namespace: String,
        name: String,
        replicas: u32,
        opts: kubernetes::WriteOptions,
    ) -> KResult<String> {
        let r = self
            .kube
            .scale(&api_version, &kind, &namespace, &name, replicas, options(opts))
            .await;
        Ok(r.map_err(kerr))
    }
}
