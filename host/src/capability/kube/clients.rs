//! Who a recipe's Kubernetes calls act as: the reader's or writer's ServiceAccount by its grants
//! ([`ByGrant`]), impersonated from the host ([`KubeClients::impersonating`]) or mounted in its
//! Job (in-cluster config), or a kubeconfig's user for `recipe run`.

use crate::capability::kube_grants::KubeGrants;

/// Read a kubeconfig file (its current context).
pub async fn config_from_kubeconfig(path: &std::path::Path) -> Result<kube::Config, String> {
    let kc =
        kube::config::Kubeconfig::read_from(path).map_err(|e| format!("reading kubeconfig {}: {e}", path.display()))?;
    kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| format!("kubeconfig {}: {e}", path.display()))
}

/// One of two things, picked by a recipe's grants: the reader's for recipes that only read, the
/// writer's for recipes that may patch, create or delete. The one rule for which ServiceAccount a
/// recipe's Job runs as, which one its other runs impersonate, and which client they use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByGrant<T> {
    /// For recipes granted only reading verbs.
    pub reader: T,
    /// For recipes granted a verb that writes.
    pub writer: T,
}

impl<T> ByGrant<T> {
    /// The one for a recipe with these grants.
    pub fn for_grants(&self, grants: &KubeGrants) -> &T {
        if grants.writes() { &self.writer } else { &self.reader }
    }
}

/// The recipe ServiceAccounts (`[kube] reader_service_account`, `writer_service_account`) in
/// the namespace where the recipes' Jobs run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipeAccounts {
    /// Their namespace.
    pub namespace: String,
    /// Their names.
    pub names: ByGrant<String>,
}

impl RecipeAccounts {
    /// The API user a recipe with these grants acts as (`system:serviceaccount:NS:NAME`).
    pub fn user_for(&self, grants: &KubeGrants) -> String {
        self.user(self.names.for_grants(grants))
    }

    fn user(&self, name: &str) -> String {
        format!("system:serviceaccount:{}:{name}", self.namespace)
    }
}

/// `config`'s credentials acting as `user` (impersonation), never as their own user; for a
/// recipe's calls (see [`for_recipes`]).
pub fn impersonating(mut config: kube::Config, user: String) -> kube::Config {
    config.auth_info.impersonate = Some(user);
    config.auth_info.impersonate_groups = None;
    for_recipes(config)
}

/// `config` as a recipe's calls use it: without the client's own retries. kube-rs retries 429,
/// 503 and 504 with backoff by default; for a recipe a 429 is an answer (a PodDisruptionBudget
/// refusing an eviction now), and retrying it silently would spend the run's whole timeout.
pub fn for_recipes(mut config: kube::Config) -> kube::Config {
    config.default_retry = false;
    config
}

/// The clients a recipe's calls go through, by its grants.
#[derive(Clone)]
pub struct KubeClients(ByGrant<kube::Client>);

impl KubeClients {
    /// Both as `config`'s own user (a sandbox Job's ServiceAccount, `recipe run`, a host with
    /// impersonation off), with [`for_recipes`]' settings.
    pub fn own(config: kube::Config) -> Result<KubeClients, String> {
        let client = kube::Client::try_from(for_recipes(config))
            .map_err(|e| format!("building the Kubernetes client for recipes: {e}"))?;
        Ok(KubeClients(ByGrant {
            reader: client.clone(),
            writer: client,
        }))
    }

    /// Through `config`'s credentials, impersonating the recipe ServiceAccounts (the host needs
    /// RBAC `impersonate` on those two ServiceAccounts).
    pub fn impersonating(config: &kube::Config, accounts: &RecipeAccounts) -> Result<KubeClients, String> {
        let client_as = |name: &str| {
            kube::Client::try_from(impersonating(config.clone(), accounts.user(name)))
                .map_err(|e| format!("building the Kubernetes client acting as {name}: {e}"))
        };
        Ok(KubeClients(ByGrant {
            reader: client_as(&accounts.names.reader)?,
            writer: client_as(&accounts.names.writer)?,
        }))
    }

    /// The client for a recipe with these grants.
    pub fn for_grants(&self, grants: &KubeGrants) -> kube::Client {
        self.0.for_grants(grants).clone()
    }
}

/// A client from a kubeconfig file (its current context), for the recipes' kubernetes
/// capability in `serve` and `recipe run`.
pub async fn client_from_kubeconfig(path: &std::path::Path) -> Result<kube::Client, String> {
    let cfg = config_from_kubeconfig(path).await?;
    kube::Client::try_from(cfg).map_err(|e| format!("building the Kubernetes client from {}: {e}", path.display()))
}

/// Where a pod's ServiceAccount token is mounted.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The in-cluster configuration: the API server from `KUBERNETES_SERVICE_HOST`/`_PORT`, the
/// token and CA from `dir` (default [`SERVICE_ACCOUNT_DIR`]). `Ok(None)` when not in a pod, or
/// no token is mounted (the recipe was granted no Kubernetes access, so the Job mounts none).
pub async fn config_in_cluster(dir: Option<&std::path::Path>) -> Result<Option<kube::Config>, String> {
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
    Ok(Some(cfg))
}
