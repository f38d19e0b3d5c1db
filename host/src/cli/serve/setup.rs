//! The parts `serve` assembles, each from the configuration: where runs execute, the Kubernetes
//! clients, the recipe catalog, the executor, and the notifiers.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use euphrosyne::capability::kube::{KubeClients, RecipeAccounts};
use euphrosyne::capability::secrets::SecretStore;
use euphrosyne::catalog::{Catalog, RecipeErrorInfo};
use euphrosyne::chat::slack::Slack;
use euphrosyne::chat::webex::Webex;
use euphrosyne::chat::webhook::WebhookNotifier;
use euphrosyne::config::{ExecutorKind, ServeConfig};
use euphrosyne::executor::{Executor, InProcess, Routed, Subprocess, SubprocessGrants};
use euphrosyne::kube_jobs::KubeJobs;
use euphrosyne::notify::{LogNotifier, Notifier};
use euphrosyne::sandbox::{Sandbox, SandboxConfig};

use super::ServeArgs;

/// The configuration file, overridden by flags and `EUPHROSYNE_*` variables, validated.
pub fn config(a: &ServeArgs) -> anyhow::Result<ServeConfig> {
    let mut cfg = match &a.config {
        Some(path) => ServeConfig::from_file(path)?,
        None => ServeConfig::default(),
    };
    if let Some(v) = &a.listen {
        cfg.listen = v.clone();
    }
    if let Some(v) = &a.recipes {
        cfg.recipes = v.clone();
    }
    let paths: [(&Option<PathBuf>, &mut Option<PathBuf>); 3] = [
        (&a.cache_dir, &mut cfg.cache_dir),
        (&a.secrets_dir, &mut cfg.secrets_dir),
        (&a.kubeconfig, &mut cfg.kubeconfig),
    ];
    for (flag, field) in paths {
        if flag.is_some() {
            field.clone_from(flag);
        }
    }
    if let Ok(image) = std::env::var("EUPHROSYNE_IMAGE") {
        cfg.kube.image = image;
    }
    if cfg.kube.namespace.is_empty() {
        // The host's own namespace (in a pod), else `default`.
        let own = std::path::Path::new(euphrosyne::capability::kube::SERVICE_ACCOUNT_DIR).join("namespace");
        cfg.kube.namespace = std::fs::read_to_string(own)
            .map(|s| s.trim().to_string())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into());
    }
    cfg.validate()?;
    Ok(cfg)
}

/// Where runs execute, `auto` settled by whether Redis is given.
pub fn executor_kind(cfg: &ServeConfig, redis: Option<&str>) -> anyhow::Result<ExecutorKind> {
    Ok(match (cfg.executor, redis) {
        (ExecutorKind::Auto, None) => ExecutorKind::InProcess,
        (ExecutorKind::Auto, Some(_)) => ExecutorKind::Subprocess,
        (k @ (ExecutorKind::Subprocess | ExecutorKind::Kube), None) => anyhow::bail!(
            "executor = \"{}\" needs Redis: set EUPHROSYNE_REDIS_URL (or --redis)",
            if k == ExecutorKind::Kube { "kube" } else { "subprocess" }
        ),
        (k, _) => k,
    })
}

/// The host's own Kubernetes access and the clients recipes use.
pub struct Kube {
    /// The host's config: a kubeconfig, or (in a pod) its ServiceAccount; `None` without a cluster.
    pub config: Option<kube::Config>,
    /// The host's own client.
    pub client: Option<kube::Client>,
    /// The recipe ServiceAccounts in-process and subprocess runs impersonate (`[kube] impersonate`).
    pub impersonate: Option<RecipeAccounts>,
    /// What recipes call the API with: impersonating, or (impersonation off) the host's client.
    pub for_recipes: Option<KubeClients>,
}

/// Find the cluster, if any. Recipes never call the API as the host: in this process they
/// impersonate the recipe ServiceAccounts their Jobs would run as (unless `impersonate = false`).
pub async fn kube(cfg: &ServeConfig) -> anyhow::Result<Kube> {
    use euphrosyne::capability::kube as k;
    let config = match &cfg.kubeconfig {
        Some(path) => Some(k::config_from_kubeconfig(path).await.map_err(anyhow::Error::msg)?),
        None => k::config_in_cluster(None).await.map_err(anyhow::Error::msg)?,
    };
    let client = config
        .clone()
        .map(kube::Client::try_from)
        .transpose()
        .context("building the Kubernetes client")?;
    let impersonate = cfg.kube.impersonate.then(|| cfg.kube.recipe_accounts());
    let for_recipes = match (&config, &client, &impersonate) {
        (Some(config), _, Some(accounts)) => {
            Some(KubeClients::impersonating(config, accounts).map_err(anyhow::Error::msg)?)
        }
        (Some(config), _, None) => Some(KubeClients::own(config.clone()).map_err(anyhow::Error::msg)?),
        _ => None,
    };
    Ok(Kube {
        config,
        client,
        impersonate,
        for_recipes,
    })
}

/// The recipes: from the cluster's ConfigMaps (`executor = "kube"`) or the recipe directory.
/// Grants the host's policy refuses are reported now (and skipped), not at the first run.
pub async fn catalog(cfg: &ServeConfig, kind: ExecutorKind, kube: &Kube) -> anyhow::Result<Arc<Catalog>> {
    let (recipes, mut errors, sources) = if kind == ExecutorKind::Kube {
        let client = kube
            .client
            .clone()
            .context("executor = \"kube\" needs a cluster: run in a pod (its ServiceAccount) or give --kubeconfig")?;
        let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(client, &cfg.kube.namespace);
        let list = api
            .list(&kube::api::ListParams::default().labels(euphrosyne::pack::RECIPE_LABEL))
            .await
            .with_context(|| format!("listing recipe ConfigMaps in namespace `{}`", cfg.kube.namespace))?;
        let cms = list
            .items
            .into_iter()
            .map(|cm| (cm.metadata.name.clone().unwrap_or_default(), cm))
            .collect();
        let r = euphrosyne::registry::register(&cfg.kube.namespace, &cms);
        (r.recipes, r.errors, r.sources)
    } else {
        let loaded = euphrosyne::recipe::load_dir(&cfg.recipes).with_context(|| {
            format!(
                "loading recipes from {} (build the bundled ones with scripts/build-wasm, or pass --recipes DIR)",
                cfg.recipes.display()
            )
        })?;
        let errors = loaded
            .errors
            .iter()
            .map(|(o, e)| RecipeErrorInfo {
                origin: o.clone(),
                error: e.to_string(),
            })
            .collect();
        (loaded.recipes, errors, Default::default())
    };
    let policy = cfg.kube.policy();
    let recipes = recipes
        .into_iter()
        .filter(
            |r| match policy.check(&r.manifest.name, &r.manifest.capabilities.kubernetes) {
                Ok(()) => true,
                Err(why) => {
                    errors.push(RecipeErrorInfo {
                        origin: r.origin.clone(),
                        error: why,
                    });
                    false
                }
            },
        )
        .collect();
    let catalog = Arc::new(Catalog::default());
    catalog.replace(recipes, errors, sources);
    Ok(catalog)
}

/// The executor, and in Redis mode the subprocess executor whose result stream the leader reads.
pub struct Executors {
    /// Where runs go.
    pub executor: Arc<dyn Executor>,
    /// Redis mode: the sandbox subprocesses (and their results).
    pub subprocess: Option<Arc<Subprocess>>,
    /// One line saying where runs execute and incidents are kept.
    pub note: String,
}

/// Build the executor `kind` names, in-process runs sharing one sandbox.
pub async fn executors(
    cfg: &ServeConfig,
    kind: ExecutorKind,
    redis: Option<&str>,
    kube: &Kube,
    catalog: &Arc<Catalog>,
    replica: &str,
    cache_stats: Arc<euphrosyne::sandbox::CacheStats>,
) -> anyhow::Result<Executors> {
    let policy = cfg.kube.policy();
    let sandbox = Arc::new(Sandbox::new(SandboxConfig {
        cache_dir: cfg.cache_dir.clone(),
        pool_slots: (cfg.max_concurrent_runs as u32).max(4),
        dir_roots: cfg.dir_roots.clone(),
        kube: kube.for_recipes.clone(),
        kube_policy: policy.clone(),
        secrets: SecretStore::load(cfg.secrets_dir.as_deref())?,
        memory_cache_entries: cfg.compile_cache_entries,
        cache_stats,
        ..Default::default()
    })?);
    let in_process: Arc<dyn Executor> = Arc::new(InProcess::new(sandbox.clone(), cfg.max_concurrent_runs));
    let Some(url) = redis else {
        let note = "runs: in-process (wasmtime in this process), incidents in memory".to_string();
        return Ok(Executors {
            executor: in_process,
            subprocess: None,
            note,
        });
    };
    let binary = std::env::current_exe().context("locating this binary for the sandbox subprocesses")?;
    let workdir = std::env::temp_dir().join(format!("euphrosyne-{}", std::process::id()));
    let grants = SubprocessGrants {
        secrets_dir: cfg.secrets_dir.clone(),
        kubeconfig: cfg.kubeconfig.clone(),
        impersonate: kube.impersonate.clone().filter(|_| kube.config.is_some()),
        kube_policy: policy,
    };
    let sub = Subprocess::start(url, &cfg.redis_prefix, binary, workdir, cfg.max_concurrent_runs, grants)
        .await
        .context("connecting to Redis (check --redis / EUPHROSYNE_REDIS_URL)")?;
    // Precompiled code for the sandbox processes (host/src/artifacts.rs): sealed with the key
    // the Jobs read from their Secret, or, for local subprocesses, a key of this process's own.
    match euphrosyne::sandbox::ArtifactKey::from_env().map_err(anyhow::Error::msg)? {
        Some(key) => sub.ship_artifacts(key, sandbox.clone()),
        None if kind == ExecutorKind::Kube => tracing::info!(
            "each sandbox Job compiles its recipe (about 200 ms): set `artifact-key` in Secret `{}` and {} for the host, to ship precompiled code (README: Deploy to a cluster)",
            cfg.kube.redis_secret,
            euphrosyne::sandbox::ArtifactKey::ENV
        ),
        None if kind == ExecutorKind::InProcess => {}
        None => sub.ship_artifacts(euphrosyne::sandbox::ArtifactKey::random(), sandbox.clone()),
    }
    let kept = format!(
        "incidents in Redis (prefix `{}`, replica `{replica}`)",
        cfg.redis_prefix
    );
    let (default, note): (Arc<dyn Executor>, String) = match kind {
        ExecutorKind::Kube => {
            let client = kube.client.clone().context("executor = \"kube\" needs a cluster")?;
            let note = format!(
                "runs: a Kubernetes Job per run in namespace `{}` (image {}), recipes from its ConfigMaps; results and {kept}",
                cfg.kube.namespace, cfg.kube.image
            );
            (
                KubeJobs::start(client, cfg.kube.clone(), sub.clone(), catalog.clone()),
                note,
            )
        }
        ExecutorKind::InProcess => (in_process.clone(), format!("runs: in-process; {kept}")),
        _ => (
            sub.clone(),
            format!("runs: `euphrosyne sandbox` subprocesses, results and {kept}"),
        ),
    };
    let executor: Arc<dyn Executor> = if cfg.kube.in_process.is_empty() {
        default
    } else {
        Arc::new(Routed {
            default,
            in_process,
            names: cfg.kube.in_process.iter().cloned().collect(),
        })
    };
    Ok(Executors {
        executor,
        subprocess: Some(sub),
        note,
    })
}

/// Chat and webhook notifiers (the log is always one), and the chat integrations whose
/// callbacks the API serves.
pub struct Chat {
    /// Everyone told about analyses and outcomes.
    pub notifiers: Vec<Arc<dyn Notifier>>,
    /// Webex approvals.
    pub webex: Option<Arc<Webex>>,
    /// Slack approvals.
    pub slack: Option<Arc<Slack>>,
}

/// Build the notifiers; registers the Webex webhook (a failure is reported, not fatal).
pub async fn chat(cfg: &ServeConfig, addr: std::net::SocketAddr) -> anyhow::Result<Chat> {
    let mut notifiers: Vec<Arc<dyn Notifier>> = vec![Arc::new(LogNotifier)];
    let webex = cfg
        .webex
        .clone()
        .map(|c| Webex::new(c, cfg.templates.clone()))
        .transpose()?;
    let slack = cfg
        .slack
        .clone()
        .map(|c| Slack::new(c, cfg.templates.clone()))
        .transpose()?;
    if let Some(w) = &webex {
        notifiers.push(w.clone());
        if let Err(e) = w.register_webhook().await {
            println!("Webex webhook registration failed: {e}");
            tracing::warn!("Webex webhook registration failed: {e}");
        }
        println!("Webex approvals: POST http://{addr}/webhook/webex");
    }
    if let Some(s) = &slack {
        notifiers.push(s.clone());
        println!("Slack approvals: POST http://{addr}/webhook/slack");
    }
    for w in &cfg.notify_webhooks {
        notifiers.push(Arc::new(WebhookNotifier::new(w.clone(), cfg.templates.clone())?));
    }
    Ok(Chat {
        notifiers,
        webex,
        slack,
    })
}

/// This replica's id: the flag, else the host name, else `local`.
pub fn replica_id(flag: Option<&str>) -> String {
    flag.map(str::to_string)
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().replace(char::is_whitespace, "-"))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "local".into())
}
