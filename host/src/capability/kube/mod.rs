//! Kubernetes for recipes: the manifest's grants enforced here, the recipe's own identity
//! enforced by the API server.
//!
//! Every call is checked before any request is made ([`KubeAccess`]): the resource (by API group
//! and plural) must be granted the verb, and a namespaced call must stay in the incident's
//! namespaces unless the recipe has cluster scope. A refusal is recorded and the run ends
//! `denied`.
//!
//! The calls never carry the host's identity. In a sandbox Job the client is the Job's
//! ServiceAccount (`[kube] reader_service_account` or `writer_service_account`, by whether the
//! recipe may write); in-process and subprocess runs of `serve` **impersonate** that same
//! ServiceAccount ([`KubeClients::impersonating`]), so the API server's RBAC bounds a run the
//! same way wherever it executes. `recipe run --kubeconfig` acts as the kubeconfig's user: it is
//! the recipe author's own tool.

use k8s_openapi::api::core::v1::Pod;
use std::sync::Arc;

use kube::api::{Api, DynamicObject, ListParams, LogParams};
use kube::core::{ApiResource, GroupVersionKind};

use super::Denials;
use super::kube_grants::{KubeGrants, KubeVerb, Resource, Scope};

use crate::model::{Precondition, Write};

mod clients;
mod write;

pub use self::clients::*;
pub use self::write::{MAX_WRITES, PatchType, WriteOptions, changes};

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
    client: Option<kube::Client>,
    grants: KubeGrants,
    /// The incident's namespaces (its alerts' `namespace` labels).
    namespaces: Vec<String>,
    denials: Denials,
    max_log_bytes: i64,
    mode: WriteMode,
    writes: Writes,
}

fn api_resource(api_version: &str, kind: &str) -> Result<ApiResource, KubeError> {
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
fn checked_name<'a>(what: &str, v: &'a str) -> Result<&'a str, KubeError> {
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

fn lift(e: kube::Error, what: &str) -> KubeError {
    match &e {
        kube::Error::Api(status) if status.code == 404 => KubeError::NotFound(what.to_string()),
        kube::Error::Api(status) => KubeError::Api(format!("{what}: {} ({})", status.message, status.code)),
        _ => KubeError::Api(format!("{what}: {e}")),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, KubeError> {
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

    fn deny(&self, msg: String) -> KubeError {
        self.denials.record(msg.clone());
        KubeError::Denied(msg)
    }

    /// The one grant check: resource, verb, namespace.
    fn allow(
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

    fn api(&self, client: kube::Client, ar: &ApiResource, ns: Option<&str>) -> Result<Api<DynamicObject>, KubeError> {
        Ok(match ns {
            Some(ns) => Api::namespaced_with(client, checked_name("namespace", ns)?, ar),
            None => Api::all_with(client, ar),
        })
    }

    /// `get`.
    pub async fn get(&self, api_version: &str, kind: &str, ns: Option<&str>, name: &str) -> Result<String, KubeError> {
        let target = format!("{kind} {}{name}", ns.map(|n| format!("{n}/")).unwrap_or_default());
        let ar = api_resource(api_version, kind)?;
        let client = self.allow(&ar, KubeVerb::Get, ns, &target)?;
        let obj = self
            .api(client, &ar, ns)?
            .get(checked_name("name", name)?)
            .await
            .map_err(|e| lift(e, &target))?;
        to_json(&obj)
    }

    /// `list`.
    pub async fn list(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<String, KubeError> {
        let target = format!("{kind} list");
        let ar = api_resource(api_version, kind)?;
        let client = self.allow(&ar, KubeVerb::List, ns, &target)?;
        let mut lp = ListParams::default().limit(500);
        if let Some(l) = labels {
            lp = lp.labels(l);
        }
        if let Some(f) = fields {
            lp = lp.fields(f);
        }
        let list = self
            .api(client, &ar, ns)?
            .list(&lp)
            .await
            .map_err(|e| lift(e, &target))?;
        to_json(&serde_json::json!({ "kind": format!("{kind}List"), "items": list.items }))
    }

    /// `pod-logs`, capped at the run's output limit.
    pub async fn pod_logs(
        &self,
        ns: &str,
        pod: &str,
        container: Option<&str>,
        tail: Option<u32>,
        previous: bool,
    ) -> Result<String, KubeError> {
        let target = format!("logs of pod {ns}/{pod}");
        let ar = api_resource("v1", "Pod")?;
        let client = self.allow(&ar, KubeVerb::Logs, Some(ns), &target)?;
        let api: Api<Pod> = Api::namespaced(client, checked_name("namespace", ns)?);
        let lp = LogParams {
            container: container.map(str::to_string),
            tail_lines: tail.map(i64::from),
            previous,
            limit_bytes: Some(self.max_log_bytes),
            ..Default::default()
        };
        api.logs(checked_name("pod", pod)?, &lp)
            .await
            .map_err(|e| lift(e, &target))
    }

    /// `events` about one object. Kind and name are validated, never spliced raw into the selector.
    pub async fn events(&self, ns: Option<&str>, kind: &str, name: &str) -> Result<String, KubeError> {
        let target = format!("events of {kind} {name}");
        let ar = api_resource("v1", "Event")?;
        let client = self.allow(&ar, KubeVerb::List, ns, &target)?;
        let fields = format!(
            "involvedObject.kind={},involvedObject.name={}",
            checked_name("kind", kind)?,
            checked_name("name", name)?
        );
        let list = self
            .api(client, &ar, ns)?
            .list(&ListParams::default().fields(&fields).limit(200))
            .await
            .map_err(|e| lift(e, &target))?;
        to_json(&serde_json::json!({ "kind": "EventList", "items": list.items }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ungranted_verbs_are_denied_before_any_request() {
        let d = Denials::default();
        let grants = KubeGrants::of(
            Scope::Namespace,
            &[("pods", &[KubeVerb::Get]), ("deployments", &[KubeVerb::Get])],
        );
        let k = KubeAccess::new(None, &grants, vec!["shop".into()], d.clone(), 1024);
        let denied = [
            k.patch(
                "apps/v1",
                "Deployment",
                Some("shop"),
                "web",
                PatchType::Merge,
                "{}",
                WriteOptions::default(),
            )
            .await,
            k.get("v1", "Secret", Some("shop"), "db").await,
            k.get("v1", "Pod", Some("kube-system"), "etcd").await,
            k.get("v1", "Node", None, "n1").await,
            k.list("v1", "Pod", None, None, None).await,
            k.get("example.com/v1", "Deployment", Some("shop"), "web").await,
        ];
        for (i, err) in denied.into_iter().enumerate() {
            assert!(matches!(err, Err(KubeError::Denied(_))), "{i}: {err:?}");
        }
        let kept = d.list();
        assert!(
            kept[0].contains("patch on Deployment shop/web is not granted"),
            "{kept:?}"
        );
        assert!(kept[1].contains("Secret shop/db is not granted"), "{kept:?}");
        assert!(
            kept[2].contains("namespace `kube-system` is not the incident's (shop)"),
            "{kept:?}"
        );
        assert!(kept[3].contains("not granted"), "{kept:?}");
        assert!(kept[4].contains("not granted"), "{kept:?}");
        assert!(kept[5].contains("not a resource recipes can be granted"), "{kept:?}");
        assert_eq!(d.list().len(), 6);
        // Granted but no cluster: a clear API error, not a denial.
        let err = k.get("v1", "Pod", Some("shop"), "web").await.unwrap_err();
        assert!(
            matches!(err, KubeError::Api(ref m) if m.contains("no Kubernetes cluster")),
            "{err:?}"
        );
        assert_eq!(d.list().len(), 6);
    }

    #[test]
    fn selector_values_are_validated() {
        assert!(checked_name("name", "web-1").is_ok());
        assert!(checked_name("name", "web,involvedObject.kind=Secret").is_err());
        assert!(api_resource("apps/v1", "Deployment").is_ok());
        assert!(api_resource("apps/v1", "Deploy ment").is_err());
    }
}
