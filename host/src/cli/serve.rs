//! `euphrosyne serve`: the host. Embedded by default: recipes from a directory of packed
//! recipes, the in-process executor, in-memory incidents, listening on 127.0.0.1:8080.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use euphrosyne::api::{Api, Auth};
use euphrosyne::capability::secrets::SecretStore;
use euphrosyne::catalog::{Catalog, RecipeErrorInfo};
use euphrosyne::chat::slack::Slack;
use euphrosyne::chat::webex::Webex;
use euphrosyne::chat::webhook::WebhookNotifier;
use euphrosyne::config::{ExecutorKind, ServeConfig};
use euphrosyne::executor::{Executor, InProcess, Routed, Subprocess, SubprocessGrants};
use euphrosyne::kube_jobs::KubeJobs;
use euphrosyne::lease::{Lease, LeaseError, Replicas};
use euphrosyne::metrics::Metrics;
use euphrosyne::notify::{LogNotifier, Notifier};
use euphrosyne::reconciler::Reconciler;
use euphrosyne::sandbox::{Sandbox, SandboxConfig};
use euphrosyne::store::{RedisStore, Store};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML; see examples/euphrosyne.toml). Flags and EUPHROSYNE_* variables override it.
    #[arg(long, env = "EUPHROSYNE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "EUPHROSYNE_LISTEN")]
    pub listen: Option<String>,
    /// Directory of packed recipes (ConfigMap YAML from `recipe pack`) [default: build/recipes].
    #[arg(long, env = "EUPHROSYNE_RECIPES")]
    pub recipes: Option<PathBuf>,
    /// On-disk compile cache (created mode 0700).
    #[arg(long, env = "EUPHROSYNE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Directory of secret files for recipes (one file per secret name).
    #[arg(long, env = "EUPHROSYNE_SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// Kubeconfig for the recipes' kubernetes capability.
    #[arg(long, env = "EUPHROSYNE_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Redis URL (`redis://[:password@]host:port[/db]`, `rediss://` for TLS): runs become
    /// `euphrosyne sandbox` subprocesses that publish their results through Redis. Prefer the
    /// environment variable: a password on the command line is visible to other users.
    #[arg(long, env = "EUPHROSYNE_REDIS_URL", hide_env_values = true)]
    pub redis: Option<String>,
    /// With Redis: this replica's id, unique among the replicas sharing the Redis prefix and
    /// stable across its restarts [default: the host name].
    #[arg(long, env = "EUPHROSYNE_REPLICA_ID")]
    pub replica_id: Option<String>,
    /// With Redis: the URL other replicas forward requests to while this one leads
    /// [default: http://LISTEN-ADDRESS]. In Kubernetes: http://$(POD_IP):8080.
    #[arg(long, env = "EUPHROSYNE_ADVERTISE_URL")]
    pub advertise_url: Option<String>,
}

pub async fn run(a: ServeArgs) -> anyhow::Result<()> {
    let mut cfg = match &a.config {
        Some(path) => ServeConfig::from_file(path)?,
        None => ServeConfig::default(),
    };
    if let Some(v) = a.listen {
        cfg.listen = v;
    }
    if let Some(v) = a.recipes {
        cfg.recipes = v;
    }
    if a.cache_dir.is_some() {
        cfg.cache_dir = a.cache_dir;
    }
    if a.secrets_dir.is_some() {
        cfg.secrets_dir = a.secrets_dir;
    }
    if a.kubeconfig.is_some() {
        cfg.kubeconfig = a.kubeconfig;
    }
    cfg.validate()?;

    let kind = match (cfg.executor, &a.redis) {
        (ExecutorKind::Auto, None) => ExecutorKind::InProcess,
        (ExecutorKind::Auto, Some(_)) => ExecutorKind::Subprocess,
        (k @ (ExecutorKind::Subprocess | ExecutorKind::Kube), None) => anyhow::bail!(
            "executor = \"{}\" needs Redis: set EUPHROSYNE_REDIS_URL (or --redis)",
            if k == ExecutorKind::Kube { "kube" } else { "subprocess" }
        ),
        (k, _) => k,
    };
    // The host's own Kubernetes client: a kubeconfig, or (in a pod) its ServiceAccount.
    let kube_config = match &cfg.kubeconfig {
        Some(path) => Some(
            euphrosyne::capability::kube::config_from_kubeconfig(path)
                .await
                .map_err(anyhow::Error::msg)?,
        ),
        None => euphrosyne::capability::kube::config_in_cluster(None)
            .await
            .map_err(anyhow::Error::msg)?,
    };
    let kube = kube_config
        .clone()
        .map(kube::Client::try_from)
        .transpose()
        .context("building the Kubernetes client")?;
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
    // Recipes never call the API as the host: in this process they impersonate the recipe
    // ServiceAccounts their Jobs would run as (unless `[kube] impersonate = false`).
    let impersonate = cfg.kube.impersonate.then(|| cfg.kube.recipe_accounts());
    let recipe_kube = match (&kube_config, &kube, &impersonate) {
        (Some(config), _, Some(accounts)) => Some(
            euphrosyne::capability::kube::KubeClients::impersonating(config, accounts).map_err(anyhow::Error::msg)?,
        ),
        (_, Some(client), _) => Some(euphrosyne::capability::kube::KubeClients::own(client.clone())),
        _ => None,
    };
    let mut sources = Default::default();
    let (recipes, errors): (Vec<euphrosyne::recipe::Recipe>, Vec<RecipeErrorInfo>) = if kind == ExecutorKind::Kube {
        let client = kube
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
        let registration = euphrosyne::registry::register(&cfg.kube.namespace, &cms);
        sources = registration.sources;
        (registration.recipes, registration.errors)
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
        (loaded.recipes, errors)
    };
    // Grants the host's policy refuses are reported now, not at the recipe's first run (the
    // sandbox refuses them there too).
    let policy = cfg.kube.policy();
    let mut errors = errors;
    let recipes: Vec<_> = recipes
        .into_iter()
        .filter(
            |r| match policy.check(&r.manifest.name, &r.manifest.capabilities.kubernetes) {
                Ok(()) => true,
                Err(why) => {
                    tracing::warn!(origin = %r.origin, "recipe skipped: {why}");
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
    let sandbox = Arc::new(Sandbox::new(SandboxConfig {
        cache_dir: cfg.cache_dir.clone(),
        pool_slots: (cfg.max_concurrent_runs as u32).max(4),
        dir_roots: cfg.dir_roots.clone(),
        kube: recipe_kube,
        kube_policy: policy.clone(),
        secrets: SecretStore::load(cfg.secrets_dir.as_deref())?,
        ..Default::default()
    })?);
    let metrics = Arc::new(Metrics::default());
    let mut runs_note = "runs: in-process (wasmtime in this process), incidents in memory".to_string();
    let mut subprocess = None;
    let replica_id = a
        .replica_id
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().replace(char::is_whitespace, "-"))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "local".into());
    let in_process: Arc<dyn Executor> = Arc::new(InProcess::new(sandbox, cfg.max_concurrent_runs));
    let executor: Arc<dyn Executor> = match &a.redis {
        None => in_process,
        Some(url) => {
            let binary = std::env::current_exe().context("locating this binary for the sandbox subprocesses")?;
            let workdir = std::env::temp_dir().join(format!("euphrosyne-{}", std::process::id()));
            let grants = SubprocessGrants {
                secrets_dir: cfg.secrets_dir.clone(),
                kubeconfig: cfg.kubeconfig.clone(),
                impersonate: impersonate.clone().filter(|_| kube_config.is_some()),
                kube_policy: policy.clone(),
            };
            let sub = Subprocess::start(url, &cfg.redis_prefix, binary, workdir, cfg.max_concurrent_runs, grants)
                .await
                .context("connecting to Redis (check --redis / EUPHROSYNE_REDIS_URL)")?;
            subprocess = Some(sub.clone());
            let default: Arc<dyn Executor> = match kind {
                ExecutorKind::Kube => {
                    runs_note = format!(
                        "runs: a Kubernetes Job per run in namespace `{}` (image {}), recipes from its ConfigMaps; results and incidents in Redis (prefix `{}`, replica `{replica_id}`)",
                        cfg.kube.namespace, cfg.kube.image, cfg.redis_prefix
                    );
                    let client = kube.clone().context("executor = \"kube\" needs a cluster")?;
                    KubeJobs::start(client, cfg.kube.clone(), sub, catalog.clone())
                }
                ExecutorKind::InProcess => {
                    runs_note = format!(
                        "runs: in-process; incidents in Redis (prefix `{}`, replica `{replica_id}`)",
                        cfg.redis_prefix
                    );
                    in_process.clone()
                }
                _ => {
                    runs_note = format!(
                        "runs: `euphrosyne sandbox` subprocesses, results and incidents in Redis (prefix `{}`, replica `{replica_id}`)",
                        cfg.redis_prefix
                    );
                    sub
                }
            };
            if cfg.kube.in_process.is_empty() {
                default
            } else {
                Arc::new(Routed {
                    default,
                    in_process,
                    names: cfg.kube.in_process.iter().cloned().collect(),
                })
            }
        }
    };
    let auth = Auth::load(&cfg)?;
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let addr = listener.local_addr()?;

    println!("euphrosyne {} listening on http://{addr}", env!("CARGO_PKG_VERSION"));
    println!("  POST http://{addr}/webhook        alerts (Alertmanager webhook, generic JSON)");
    println!("  GET  http://{addr}/api/status     incidents, runs, recipes");
    println!("  GET  http://{addr}/api/openapi.json");
    println!("  GET  http://{addr}/metrics");
    println!("{runs_note}");
    if kind == ExecutorKind::Kube {
        println!(
            "recipes from ConfigMaps labelled {} in namespace {}:",
            euphrosyne::pack::RECIPE_LABEL,
            cfg.kube.namespace
        );
    } else {
        println!("recipes from {}:", cfg.recipes.display());
    }
    let loaded = catalog.snapshot();
    for r in loaded.recipes.iter() {
        println!(
            "  {:<18} {:<6} {} {}",
            r.name(),
            r.manifest.kind.to_string(),
            r.manifest.version,
            r.digest
        );
    }
    for RecipeErrorInfo { origin, error } in &loaded.errors {
        println!("  SKIPPED {origin}: {error}");
        tracing::warn!(origin = %origin, "recipe skipped: {error}");
    }
    if loaded.recipes.is_empty() {
        println!("  (none loaded: alerts will be recorded but nothing will analyse them)");
    }
    if !auth.has_tokens() {
        println!(
            "no API tokens configured: reads are open, approvals are refused (set EUPHROSYNE_OPERATOR_TOKEN or `tokens` in the config)"
        );
    }
    let max_body = cfg.max_body_bytes;
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
    let retention = std::time::Duration::from_millis(cfg.incident_retention_ms);
    let lease_ttl = std::time::Duration::from_millis(cfg.leader_lease_ms);
    let cfg_prefix = cfg.redis_prefix.clone();
    let kube_namespace = cfg.kube.namespace.clone();
    let reconciler = Reconciler::start(
        cfg.reconciler_settings()?,
        catalog.clone(),
        executor,
        notifiers,
        metrics,
    );
    if kind == ExecutorKind::Kube
        && let Some(client) = kube.clone()
    {
        euphrosyne::registry::spawn(client, kube_namespace, catalog.clone());
    }
    let mut replicas = None;
    let mut leadership = None;
    if let (Some(url), Some(sub)) = (&a.redis, subprocess) {
        // Readiness follows Redis: ping every 250 ms.
        let bus = euphrosyne::bus::Bus::connect(url, &cfg_prefix, std::time::Duration::from_secs(1))
            .await
            .context("connecting to Redis")?;
        let r = reconciler.clone();
        tokio::spawn(async move {
            loop {
                r.set_store_up(bus.ping().await);
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        });
        let advertise = a.advertise_url.clone().unwrap_or_else(|| format!("http://{addr}"));
        if addr.ip().is_unspecified() && a.advertise_url.is_none() {
            println!(
                "warning: listening on {addr} without --advertise-url: other replicas cannot forward to {advertise}"
            );
        }
        let lease = Lease::connect(url, &cfg_prefix, &replica_id, &advertise, lease_ttl)
            .await
            .context("connecting to Redis")?;
        let store = Arc::new(
            RedisStore::connect(url, &cfg_prefix, retention)
                .await
                .context("connecting to Redis")?,
        );
        let r = Replicas::new(lease, retention);
        // Try once now, so a single host (or one restarting under its own id) leads before it serves.
        let first = r
            .lease()
            .try_acquire()
            .await
            .context("taking the leader lease in Redis")?;
        let leading = Leading {
            replicas: r.clone(),
            store,
            reconciler: reconciler.clone(),
            subprocess: sub,
            consumer: format!("host-{replica_id}"),
        };
        match first {
            Some(token) => {
                let n = leading.take_over(&token).await?;
                println!("this replica (`{replica_id}`) leads; took back {n} incidents from Redis");
                leadership = Some(tokio::spawn(leading.hold(token)));
            }
            None => {
                let leader = r.lease().leader().await.ok().flatten();
                println!(
                    "this replica (`{replica_id}`) follows {}: requests are forwarded until it takes the lease over",
                    leader
                        .map(|l| format!("`{}` at {}", l.replica, l.url))
                        .unwrap_or_else(|| "the leader".into())
                );
                leadership = Some(tokio::spawn(leading.follow()));
            }
        }
        replicas = Some(r);
    }
    let app = euphrosyne::api::router(Arc::new(Api {
        reconciler: reconciler.clone(),
        auth,
        webex,
        slack,
        replicas: replicas.clone(),
        max_body_bytes: max_body,
    }));
    let shutdown_reconciler = reconciler.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: refusing new alerts, letting runs finish");
        // Refuse alerts at once (503), while the server drains connections.
        shutdown_reconciler.shutdown_intake();
    });
    match leadership {
        Some(mut lost) => {
            tokio::select! {
                r = server => r.context("HTTP server")?,
                e = &mut lost => {
                    let e = e.unwrap_or_else(|e| anyhow::anyhow!("the leadership task failed: {e}"));
                    // Stop at once: another replica drives the incidents now.
                    return Err(e.context("stopping so this replica restarts as a follower"));
                }
            }
            lost.abort();
        }
        None => server.await.context("HTTP server")?,
    }
    reconciler.shutdown().await;
    if let Some(r) = &replicas
        && let Some(token) = r.token()
    {
        // Hand over at once rather than after the lease expires.
        let _ = r.lease().release(&token).await;
    }
    println!("stopped");
    Ok(())
}

/// Becoming and staying the leader (Redis mode).
struct Leading {
    replicas: Arc<Replicas>,
    store: Arc<RedisStore>,
    reconciler: Arc<Reconciler>,
    subprocess: Arc<Subprocess>,
    consumer: String,
}

impl Leading {
    /// Follow until the lease is free, then lead; returns only when leadership is lost.
    async fn follow(self) -> anyhow::Error {
        let pause = self.replicas.lease().ttl() / 3;
        let token = loop {
            tokio::time::sleep(pause).await;
            match self.replicas.lease().try_acquire().await {
                Ok(Some(token)) => break token,
                Ok(None) => {}
                Err(e) => tracing::warn!("trying the leader lease: {e}"),
            }
        };
        loop {
            match self.take_over(&token).await {
                Ok(n) => {
                    println!("this replica took the lead; took back {n} incidents from Redis");
                    tracing::info!(incidents = n, "this replica leads now");
                    break;
                }
                Err(e) => {
                    tracing::warn!("taking over: {e:#}; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
        }
        self.hold(token).await
    }

    /// Take the incidents back, collect results (also those pending on the previous leader),
    /// fence writes and actions with `token`, and start serving. Returns the incidents taken.
    async fn take_over(&self, token: &str) -> anyhow::Result<usize> {
        self.store.fence_with(token, self.replicas.lease().ttl());
        let (incidents, actions) = self.store.load().await.context("loading incidents from Redis")?;
        let n = incidents.len();
        self.subprocess
            .start_collecting(&self.consumer)
            .await
            .context("collecting results from Redis")?;
        self.reconciler.restore(incidents, actions);
        self.reconciler.set_action_fence(self.replicas.clone());
        if let Some(rx) = self.subprocess.take_orphans() {
            self.reconciler.adopt_from(rx);
        }
        self.replicas.set_leader(token);
        Ok(n)
    }

    /// Write behind and renew the lease; returns when either finds the lease taken.
    async fn hold(self, token: String) -> anyhow::Error {
        let store: Arc<dyn Store> = self.store.clone();
        let mut writer = euphrosyne::store::spawn_write_behind(store, self.reconciler.journal());
        let lease = self.replicas.lease();
        loop {
            tokio::select! {
                e = &mut writer => {
                    return match e {
                        Ok(e) => anyhow::Error::new(e),
                        Err(e) => anyhow::anyhow!("the incident writer failed: {e}"),
                    };
                }
                _ = tokio::time::sleep(lease.ttl() / 3) => match lease.renew(&token).await {
                    Ok(()) => {}
                    Err(e @ LeaseError::Lost(_)) => {
                        writer.abort();
                        return e.into();
                    }
                    Err(e) => tracing::warn!("renewing the leader lease: {e}"),
                },
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
