//! A recipe's view of the cluster: [`KubeAccess`] with its one grant check, the errors it
//! answers with, and how a run writes ([`WriteMode`]). The calls are in `read` and `write`.

use std::sync::Arc;

use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};

use crate::capability::Denials;
use crate::capability::kube_grants::{KubeGrants, KubeVerb, Resource, Scope};
use crate::model::{Precondition, Write};

use super::clients::KubeClients;

/// Why a call failed (mirrors the WIT `kube-error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeError {
    /// Verb not granted.
    #[error("denied: {0}")]
    Denied(String),
    /// No such object.
    #[error("not found: {0}")]
    NotFound(String),
    /// The API server refused or failed.
    #[error("{0}")]
    Api(String),
    /// Bad request from the recipe.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The object changed since the precondition's `resourceVersion` (409), or a disruption
    /// budget refuses an eviction (429). Nothing was written.
    #[error("conflict: {0}")]
    Conflict(String),
}

/// How a run writes: a preview (every write `dryRun=All`), or an approved action pinned to the
/// `resourceVersion`s its preview saw.
#[derive(Debug, Clone, Default)]
pub struct WriteMode {
    /// Every write is sent with `dryRun=All`.
    pub dry_run: bool,
    /// Writes to these objects carry their `resourceVersion` as precondition.
    pub preconditions: Vec<Precondition>,
}

/// The writes of one run, as the host recorded them (at most [`MAX_WRITES`]).
pub type Writes = Arc<parking_lot::Mutex<Vec<Write>>>;

/// A recipe's view of the cluster.
#[derive(Clone)]
pub struct KubeAccess {
    pub(super) client: Option<kube::Client>,
    pub(super) grants: KubeGrants,
    /// The incident's namespaces (its alerts' `namespace` labels).
    pub(super) namespaces: Vec<String>,
    pub(super) denials: Denials,
    pub(super) max_log_bytes: i64,
    pub(super) mode: WriteMode,
    pub(super) writes: Writes,
}

pub(super) fn api_resource(api_version: &str, kind: &str) -> Result<ApiResource, KubeError> {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if !ok(version) || (!group.is_empty() && !ok(group)) || !ok(kind) {
        return Err(KubeError::Invalid(format!(
            "bad apiVersion/kind `{api_version}` `{kind}`"
        )));
    }
    Ok(ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind)))
}

/// A name or namespace as the API accepts it; refuses anything that could change a selector.
pub(super) fn checked_name<'a>(what: &str, v: &'a str) -> Result<&'a str, KubeError> {
    let ok = !v.is_empty()
        && v.len() <= 253
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':'));
    if ok {
        Ok(v)
    } else {
        Err(KubeError::Invalid(format!(
            "{what} `{v}` is not a valid Kubernetes name"
        )))
    }
}

pub(super) fn lift(e: kube::Error, what: &str) -> KubeError {
    match &e {
        kube::Error::Api(status) if status.code == 404 => KubeError::NotFound(what.to_string()),
        kube::Error::Api(status) => KubeError::Api(format!("{what}: {} ({})", status.message, status.code)),
        _ => KubeError::Api(format!("{what}: {e}")),
    }
}

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> Result<String, KubeError> {
    serde_json::to_string(v).map_err(|e| KubeError::Api(e.to_string()))
}

impl KubeAccess {
    /// Access with `grants` through `clients` (`None`: no cluster configured), for an incident
    /// in `namespaces`.
    pub fn new(
        clients: Option<&KubeClients>,
        grants: &KubeGrants,
        namespaces: Vec<String>,
        denials: Denials,
        max_log_bytes: usize,
    ) -> Self {
        KubeAccess {
            client: clients.map(|c| c.for_grants(grants)),
            grants: grants.clone(),
            namespaces,
            denials,
            max_log_bytes: max_log_bytes as i64,
            mode: WriteMode::default(),
            writes: Writes::default(),
        }
    }

    /// Write as `mode` says (a preview, or pinned to a preview's `resourceVersion`s).
    pub fn with_mode(mut self, mode: WriteMode) -> Self {
        self.mode = mode;
        self
    }

    /// The writes made so far (shared: the run's result takes them at the end).
    pub fn writes(&self) -> Writes {
        self.writes.clone()
    }

    pub(super) fn deny(&self, msg: String) -> KubeError {
        self.denials.record(msg.clone());
        KubeError::Denied(msg)
    }

    /// The one grant check: resource, verb, namespace.
    pub(super) fn allow(
        &self,
        ar: &ApiResource,
        verb: KubeVerb,
        ns: Option<&str>,
        target: &str,
    ) -> Result<kube::Client, KubeError> {
        let Some(res) = Resource::of(&ar.group, &ar.plural) else {
            let what = if ar.group.is_empty() {
                ar.plural.clone()
            } else {
                format!("{}.{}", ar.plural, ar.group)
            };
            return Err(self.deny(format!(
                "kubernetes: {verb} on {target}: `{what}` is not a resource recipes can be granted"
            )));
        };
        if !self.grants.allows(res.name, verb) {
            return Err(self.deny(format!(
                "kubernetes: {verb} on {target} is not granted (capabilities.kubernetes: {} = [\"{verb}\"])",
                res.name
            )));
        }
        if self.grants.scope != Scope::Cluster {
            match (res.namespaced, ns) {
                (false, _) => {
                    return Err(self.deny(format!(
                        "kubernetes: {verb} on {target}: `{}` are cluster-scoped and the recipe has namespace scope",
                        res.name
                    )));
                }
                (true, None) => {
                    return Err(self.deny(format!(
                        "kubernetes: {verb} on {target} across all namespaces: the recipe has namespace scope (the incident's namespaces: {})",
                        self.namespaces_text()
                    )));
                }
                (true, Some(n)) if !self.namespaces.iter().any(|x| x == n) => {
                    return Err(self.deny(format!(
                        "kubernetes: {verb} on {target}: namespace `{n}` is not the incident's ({})",
                        self.namespaces_text()
                    )));
                }
                _ => {}
            }
        }
        self.client.clone().ok_or_else(|| {
            KubeError::Api(
                "no Kubernetes cluster is configured for this host (pass --kubeconfig or run in a cluster)".into(),
            )
        })
    }

    fn namespaces_text(&self) -> String {
        if self.namespaces.is_empty() {
            "none: its alerts carry no `namespace` label".into()
        } else {
            self.namespaces.join(", ")
        }
    }

    pub(super) fn api(
        &self,
        client: kube::Client,
        ar: &ApiResource,
        ns: Option<&str>,
    ) -> Result<Api<DynamicObject>, KubeError> {
        Ok(match ns {
            Some(ns) => Api::namespaced_with(client, checked_name("namespace", ns)?, ar),
            None => Api::all_with(client, ar),
        })
    }
}
