//! Host side of the WIT contract: generated bindings, the `Host` trait impls that delegate to
//! [`crate::capability`], and conversions between [`crate::model`] and the WIT types.

use wasmtime::component::{HasSelf, Linker};

use super::state::RunState;
use crate::capability::{kube::KubeError, secrets::SecretError};
use crate::model;

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

/// Add the Euphrosyne host interfaces, WASI p2 and `wasi:http` to `linker`.
pub fn add_to_linker(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    Imports::add_to_linker::<RunState, HasSelf<RunState>>(linker, |s| s)
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
        patch: String,
    ) -> KResult<String> {
        Ok(self
            .kube
            .patch(&api_version, &kind, namespace.as_deref(), &name, &patch)
            .await
            .map_err(kerr))
    }
    async fn create(
        &mut self,
        api_version: String,
        kind: String,
        namespace: Option<String>,
        object: String,
    ) -> KResult<String> {
        Ok(self
            .kube
            .create(&api_version, &kind, namespace.as_deref(), &object)
            .await
            .map_err(kerr))
    }
    async fn delete(
        &mut self,
        api_version: String,
        kind: String,
        namespace: Option<String>,
        name: String,
    ) -> KResult<()> {
        Ok(self
            .kube
            .delete(&api_version, &kind, namespace.as_deref(), &name)
            .await
            .map_err(kerr))
    }
}

// ---- model <-> WIT ----

fn pairs(m: &std::collections::BTreeMap<String, String>) -> Vec<(String, String)> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

impl From<&model::Incident> for types::Incident {
    fn from(i: &model::Incident) -> Self {
        types::Incident {
            id: i.id.clone(),
            source: i.source.clone(),
            alerts: i
                .alerts
                .iter()
                .map(|a| types::Alert {
                    status: match a.status {
                        model::AlertStatus::Firing => types::AlertStatus::Firing,
                        model::AlertStatus::Resolved => types::AlertStatus::Resolved,
                    },
                    labels: pairs(&a.labels),
                    annotations: pairs(&a.annotations),
                    starts_at: a.starts_at.clone(),
                    ends_at: a.ends_at.clone(),
                    generator_url: a.generator_url.clone(),
                    fingerprint: a.fingerprint.clone(),
                })
                .collect(),
            common_labels: pairs(&i.common_labels),
        }
    }
}

impl From<&model::ActionRequest> for types::ActionRequest {
    fn from(r: &model::ActionRequest) -> Self {
        types::ActionRequest {
            incident: (&r.incident).into(),
            action: r.action.clone(),
            parameters: r.parameters.to_string(),
            approved_by: r.approved_by.clone(),
        }
    }
}

impl From<types::Analysis> for model::Analysis {
    fn from(a: types::Analysis) -> Self {
        model::Analysis {
            verdict: match a.verdict {
                types::Verdict::Identified => model::Verdict::Identified,
                types::Verdict::Inconclusive => model::Verdict::Inconclusive,
            },
            summary: a.summary,
            findings: a
                .findings
                .into_iter()
                .map(|f| model::Finding {
                    title: f.title,
                    detail: f.detail,
                    severity: match f.severity {
                        types::Severity::Info => model::Severity::Info,
                        types::Severity::Warning => model::Severity::Warning,
                        types::Severity::Critical => model::Severity::Critical,
                    },
                })
                .collect(),
            actions: a
                .actions
                .into_iter()
                .map(|s| model::SuggestedAction {
                    parameters: serde_json::from_str(&s.parameters).unwrap_or(serde_json::Value::String(s.parameters)),
                    action: s.action,
                    reason: s.reason,
                })
                .collect(),
        }
    }
}

impl From<types::Outcome> for model::Outcome {
    fn from(o: types::Outcome) -> Self {
        model::Outcome {
            success: o.success,
            summary: o.summary,
            details: o.details,
        }
    }
}
