//! Kubernetes for recipes, through the host's client, with the manifest's verbs enforced here.
//!
//! In-process runs use the host's credentials, so this check is the boundary: a verb not granted
//! is refused (and recorded) before any request is made. In a sandbox Job the client is built
//! from the Job's ServiceAccount, whose RBAC matches the grant level, so the API server enforces
//! it a second time.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};

use super::Denials;
use crate::manifest::KubeVerb;

/// A client from a kubeconfig file (its current context), for the recipes' kubernetes
/// capability in `serve` and `recipe run`.
pub async fn client_from_kubeconfig(path: &std::path::Path) -> Result<kube::Client, String> {
    let kc =
        kube::config::Kubeconfig::read_from(path).map_err(|e| format!("reading kubeconfig {}: {e}", path.display()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?;
    kube::Client::try_from(cfg).map_err(|e| format!("building the Kubernetes client from {}: {e}", path.display()))
}

/// Where a pod's ServiceAccount token is mounted.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// A client from the pod's ServiceAccount (in-cluster config): the API server from
/// `KUBERNETES_SERVICE_HOST`/`_PORT`, the token and CA from `dir` (default
/// [`SERVICE_ACCOUNT_DIR`]). `Ok(None)` when not in a pod, or no token is mounted (the recipe
/// was granted no Kubernetes access, so the Job mounts none).
pub async fn client_in_cluster(dir: Option<&std::path::Path>) -> Result<Option<kube::Client>, String> {
    let dir = dir.unwrap_or(std::path::Path::new(SERVICE_ACCOUNT_DIR));
    let (Ok(host), Ok(port)) = (
        std::env::var("KUBERNETES_SERVICE_HOST"),
        std::env::var("KUBERNETES_SERVICE_PORT"),
    ) else {
        return Ok(None);
    };
    let token = dir.join("token");
    if !token.exists() {
        return Ok(None);
    }
    let host = if host.contains(':') { format!("[{host}]") } else { host };
    let namespace = std::fs::read_to_string(dir.join("namespace")).unwrap_or_else(|_| "default".into());
    let yaml = serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "in-cluster", "cluster": {
            "server": format!("https://{host}:{port}"),
            "certificate-authority": dir.join("ca.crt"),
        }}],
        "users": [{"name": "sa", "user": {"tokenFile": token}}],
        "contexts": [{"name": "in-cluster", "context": {"cluster": "in-cluster", "user": "sa", "namespace": namespace.trim()}}],
        "current-context": "in-cluster",
    });
    let kc = kube::config::Kubeconfig::from_yaml(&yaml.to_string()).map_err(|e| format!("in-cluster config: {e}"))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| format!("in-cluster config from {}: {e}", dir.display()))?;
    kube::Client::try_from(cfg)
        .map(Some)
        .map_err(|e| format!("building the in-cluster Kubernetes client: {e}"))
}

/// Why a call failed (mirrors the WIT `kube-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeError {
    /// Verb not granted.
    Denied(String),
    /// No such object.
    NotFound(String),
    /// The API server refused or failed.
    Api(String),
    /// Bad request from the recipe.
    Invalid(String),
}

/// A recipe's view of the cluster.
#[derive(Clone)]
pub struct KubeAccess {
    client: Option<kube::Client>,
    verbs: BTreeSet<KubeVerb>,
    denials: Denials,
    max_log_bytes: i64,
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
    /// Access with `verbs` through `client` (`None`: no cluster configured).
    pub fn new(client: Option<kube::Client>, verbs: &[KubeVerb], denials: Denials, max_log_bytes: usize) -> Self {
        KubeAccess {
            client,
            verbs: verbs.iter().copied().collect(),
            denials,
            max_log_bytes: max_log_bytes as i64,
        }
    }

    /// The one grant check.
    fn allow(&self, verb: KubeVerb, target: &str) -> Result<kube::Client, KubeError> {
        if !self.verbs.contains(&verb) {
            let msg = format!("kubernetes: verb `{verb:?}` on {target} is not granted (capabilities.kubernetes)")
                .to_lowercase();
            self.denials.record(msg.clone());
            return Err(KubeError::Denied(msg));
        }
        self.client.clone().ok_or_else(|| {
            KubeError::Api(
                "no Kubernetes cluster is configured for this host (pass --kubeconfig or run in a cluster)".into(),
            )
        })
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
        let client = self.allow(KubeVerb::Get, &target)?;
        let ar = api_resource(api_version, kind)?;
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
        let client = self.allow(KubeVerb::List, &target)?;
        let ar = api_resource(api_version, kind)?;
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
        let client = self.allow(KubeVerb::Logs, &target)?;
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
        let client = self.allow(KubeVerb::Events, &target)?;
        let fields = format!(
            "involvedObject.kind={},involvedObject.name={}",
            checked_name("kind", kind)?,
            checked_name("name", name)?
        );
        let ar = api_resource("v1", "Event")?;
        let list = self
            .api(client, &ar, ns)?
            .list(&ListParams::default().fields(&fields).limit(200))
            .await
            .map_err(|e| lift(e, &target))?;
        to_json(&serde_json::json!({ "kind": "EventList", "items": list.items }))
    }

    /// `patch` (JSON merge patch).
    pub async fn patch(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
        patch: &str,
    ) -> Result<String, KubeError> {
        let target = format!("{kind} {}{name}", ns.map(|n| format!("{n}/")).unwrap_or_default());
        let client = self.allow(KubeVerb::Patch, &target)?;
        let ar = api_resource(api_version, kind)?;
        let body: serde_json::Value =
            serde_json::from_str(patch).map_err(|e| KubeError::Invalid(format!("patch is not JSON: {e}")))?;
        let obj = self
            .api(client, &ar, ns)?
            .patch(
                checked_name("name", name)?,
                &PatchParams::default(),
                &Patch::Merge(body),
            )
            .await
            .map_err(|e| lift(e, &target))?;
        to_json(&obj)
    }

    /// `create`.
    pub async fn create(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        object: &str,
    ) -> Result<String, KubeError> {
        let target = format!("new {kind}");
        let client = self.allow(KubeVerb::Create, &target)?;
        let ar = api_resource(api_version, kind)?;
        let obj: DynamicObject = serde_json::from_str(object)
            .map_err(|e| KubeError::Invalid(format!("object is not a Kubernetes object: {e}")))?;
        let created = self
            .api(client, &ar, ns)?
            .create(&PostParams::default(), &obj)
            .await
            .map_err(|e| lift(e, &target))?;
        to_json(&created)
    }

    /// `delete`.
    pub async fn delete(&self, api_version: &str, kind: &str, ns: Option<&str>, name: &str) -> Result<(), KubeError> {
        let target = format!("{kind} {}{name}", ns.map(|n| format!("{n}/")).unwrap_or_default());
        let client = self.allow(KubeVerb::Delete, &target)?;
        let ar = api_resource(api_version, kind)?;
        self.api(client, &ar, ns)?
            .delete(checked_name("name", name)?, &DeleteParams::default())
            .await
            .map_err(|e| lift(e, &target))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ungranted_verbs_are_denied_before_any_request() {
        let d = Denials::default();
        let k = KubeAccess::new(None, &[KubeVerb::Get], d.clone(), 1024);
        let err = k
            .patch("apps/v1", "Deployment", Some("shop"), "web", "{}")
            .await
            .unwrap_err();
        assert!(
            matches!(err, KubeError::Denied(ref m) if m.contains("patch")),
            "{err:?}"
        );
        assert_eq!(d.list().len(), 1);
        // Granted but no cluster: a clear API error, not a denial.
        let err = k.get("v1", "Pod", Some("shop"), "web").await.unwrap_err();
        assert!(
            matches!(err, KubeError::Api(ref m) if m.contains("no Kubernetes cluster")),
            "{err:?}"
        );
        assert_eq!(d.list().len(), 1);
    }

    #[test]
    fn selector_values_are_validated() {
        assert!(checked_name("name", "web-1").is_ok());
        assert!(checked_name("name", "web,involvedObject.kind=Secret").is_err());
        assert!(api_resource("apps/v1", "Deployment").is_ok());
        assert!(api_resource("apps/v1", "Deploy ment").is_err());
    }
}
