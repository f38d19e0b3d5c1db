//! The frozen `euphrosyne:recipe@0.1.0` contract (`wit/v0.1.0/`): components built against it
//! keep working unchanged. Each host call delegates to the 0.2.0 implementation — `patch` is a
//! JSON merge patch, writes take default options (a preview still sends them `dryRun=All`, and an
//! approved action still pins them to its preview: the host decides both, not the recipe) — and
//! a 0.2.0 `conflict` reaches a 0.1.0 recipe as an `api` error.

use super::RunState;
use super::euphrosyne::recipe as v2;

wasmtime::component::bindgen!({
    path: "../wit/v0.1.0",
    world: "imports",
    imports: { default: async | trappable },
});

/// The 0.1.0 `debugger` world.
pub mod debugger {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "debugger",
        imports: { default: async | trappable },
        exports: { default: async },
        with: { "euphrosyne:recipe": crate::sandbox::bindings::v1::euphrosyne::recipe },
    });
}

/// The 0.1.0 `actor` world.
pub mod actor {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "actor",
        imports: { default: async | trappable },
        exports: { default: async },
        with: { "euphrosyne:recipe": crate::sandbox::bindings::v1::euphrosyne::recipe },
    });
}

use self::euphrosyne::recipe::{config, kubernetes, log, secrets, types};

impl types::Host for RunState {}

impl log::Host for RunState {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Trace => v2::log::Level::Trace,
            log::Level::Debug => v2::log::Level::Debug,
            log::Level::Info => v2::log::Level::Info,
            log::Level::Warn => v2::log::Level::Warn,
            log::Level::Error => v2::log::Level::Error,
        };
        v2::log::Host::log(self, level, message).await
    }
}

impl config::Host for RunState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        v2::config::Host::get(self, key).await
    }
    async fn all(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        v2::config::Host::all(self).await
    }
}

impl secrets::Host for RunState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, secrets::SecretError>> {
        Ok(v2::secrets::Host::get(self, name).await?.map_err(|e| match e {
            v2::secrets::SecretError::NotGranted(n) => secrets::SecretError::NotGranted(n),
            v2::secrets::SecretError::NotFound(n) => secrets::SecretError::NotFound(n),
        }))
    }
}

fn down(e: v2::kubernetes::KubeError) -> kubernetes::KubeError {
    use v2::kubernetes::KubeError as E;
    match e {
        E::Denied(m) => kubernetes::KubeError::Denied(m),
        E::NotFound(m) => kubernetes::KubeError::NotFound(m),
        E::Api(m) => kubernetes::KubeError::Api(m),
        E::Invalid(m) => kubernetes::KubeError::Invalid(m),
        E::Conflict(m) => kubernetes::KubeError::Api(format!("conflict: {m}")),
    }
}

fn plain() -> v2::kubernetes::WriteOptions {
    v2::kubernetes::WriteOptions {
        dry_run: false,
        resource_version: None,
        field_manager: None,
    }
}

type KResult<T> = wasmtime::Result<Result<T, kubernetes::KubeError>>;

impl kubernetes::Host for RunState {
    async fn get(&mut self, api_version: String, kind: String, ns: Option<String>, name: String) -> KResult<String> {
        Ok(v2::kubernetes::Host::get(self, api_version, kind, ns, name)
            .await?
            .map_err(down))
    }
    async fn list(
        &mut self,
        api_version: String,
        kind: String,
        ns: Option<String>,
        labels: Option<String>,
        fields: Option<String>,
    ) -> KResult<String> {
        let r = v2::kubernetes::Host::list(self, api_version, kind, ns, labels, fields).await?;
        Ok(r.map_err(down))
    }
    async fn pod_logs(
        &mut self,
        ns: String,
        pod: String,
        container: Option<String>,
        tail: Option<u32>,
        previous: bool,
    ) -> KResult<String> {
        let r = v2::kubernetes::Host::pod_logs(self, ns, pod, container, tail, previous).await?;
        Ok(r.map_err(down))
    }
    async fn events(&mut self, ns: Option<String>, kind: String, name: String) -> KResult<String> {
        Ok(v2::kubernetes::Host::events(self, ns, kind, name).await?.map_err(down))
    }
    async fn patch(
        &mut self,
        api_version: String,
        kind: String,
        ns: Option<String>,
        name: String,
        patch: String,
    ) -> KResult<String> {
        let merge = v2::kubernetes::PatchType::Merge;
        let r = v2::kubernetes::Host::patch(self, api_version, kind, ns, name, merge, patch, plain()).await?;
        Ok(r.map_err(down))
    }
    async fn create(
        &mut self,
        api_version: String,
        kind: String,
        ns: Option<String>,
        object: String,
    ) -> KResult<String> {
        let r = v2::kubernetes::Host::create(self, api_version, kind, ns, object, plain()).await?;
        Ok(r.map_err(down))
    }
    async fn delete(&mut self, api_version: String, kind: String, ns: Option<String>, name: String) -> KResult<()> {
        let r = v2::kubernetes::Host::delete(self, api_version, kind, ns, name, plain()).await?;
        Ok(r.map_err(down))
    }
}
