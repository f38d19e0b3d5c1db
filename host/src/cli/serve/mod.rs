//! `euphrosyne serve`: the host. Embedded by default: recipes from a directory of packed
//! recipes, the in-process executor, in-memory incidents, listening on 127.0.0.1:8080.
//!
//! [`run`] assembles the parts [`setup`] builds (configuration, cluster access, catalog,
//! executor, notifiers), starts the reconciler, and in Redis mode hands leadership to
//! [`leading`]; then it serves until a signal and shuts down gracefully.

mod leading;
mod setup;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use euphrosyne::api::{Api, Auth};
use euphrosyne::catalog::Catalog;
use euphrosyne::config::{ExecutorKind, ServeConfig};
use euphrosyne::executor::Subprocess;
use euphrosyne::lease::{Lease, Replicas};
use euphrosyne::metrics::Metrics;
use euphrosyne::reconciler::Reconciler;
use euphrosyne::store::RedisStore;

use self::leading::Leading;

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
    let cfg = setup::config(&a)?;
    let kind = setup::executor_kind(&cfg, a.redis.as_deref())?;
    let kube = setup::kube(&cfg).await?;
    let catalog = setup::catalog(&cfg, kind, &kube).await?;
    let replica = setup::replica_id(a.replica_id.as_deref());
    let metrics = Arc::new(Metrics::default());
    let cache_stats = metrics.compile_cache();
    let runs = setup::executors(&cfg, kind, a.redis.as_deref(), &kube, &catalog, &replica, cache_stats).await?;
    let auth = Auth::load(&cfg)?;
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    banner(&cfg, kind, addr, &runs.note, &catalog, &auth);
    let chat = setup::chat(&cfg, addr).await?;
    let reconciler = Reconciler::start(
        cfg.reconciler_settings()?,
        catalog.clone(),
        runs.executor,
        chat.notifiers,
        metrics,
    );
    if kind == ExecutorKind::Kube
        && let Some(client) = kube.client.clone()
    {
        euphrosyne::registry::spawn(client, cfg.kube.namespace.clone(), catalog.clone());
    }
    let (replicas, leadership) = match (&a.redis, runs.subprocess) {
        (Some(url), Some(sub)) => {
            let advertise = a.advertise_url.clone().unwrap_or_else(|| format!("http://{addr}"));
            if addr.ip().is_unspecified() && a.advertise_url.is_none() {
                println!(
                    "warning: listening on {addr} without --advertise-url: other replicas cannot forward to {advertise}"
                );
            }
            let (r, task) = replicate(&cfg, url, &replica, &advertise, &reconciler, sub).await?;
            (Some(r), Some(task))
        }
        _ => (None, None),
    };
    let app = euphrosyne::api::router(Arc::new(Api {
        reconciler: reconciler.clone(),
        auth,
        webex: chat.webex,
        slack: chat.slack,
        replicas: replicas.clone(),
        max_body_bytes: cfg.max_body_bytes,
        console: cfg.console.clone(),
        executor: match kind {
            ExecutorKind::Kube => "kube",
            ExecutorKind::Subprocess => "subprocess",
            ExecutorKind::InProcess | ExecutorKind::Auto => "in-process",
        },
    }));
    serve(listener, app, &reconciler, leadership).await?;
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

/// What this host serves, where runs execute, and the recipes it loaded (or skipped, and why).
fn banner(
    cfg: &ServeConfig,
    kind: ExecutorKind,
    addr: std::net::SocketAddr,
    runs: &str,
    catalog: &Catalog,
    auth: &Auth,
) {
    println!("euphrosyne {} listening on http://{addr}", env!("CARGO_PKG_VERSION"));
    println!("  POST http://{addr}/webhook        alerts (Alertmanager webhook, generic JSON)");
    println!("  GET  http://{addr}/api/status     incidents, runs, recipes");
    println!("  GET  http://{addr}/api/openapi.json");
    println!("  GET  http://{addr}/metrics");
    println!("{runs}");
    if kind == ExecutorKind::Kube {
        let label = euphrosyne::pack::RECIPE_LABEL;
        println!(
            "recipes from ConfigMaps labelled {label} in namespace {}:",
            cfg.kube.namespace
        );
    } else {
        println!("recipes from {}:", cfg.recipes.display());
    }
    let loaded = catalog.snapshot();
    for r in loaded.recipes.iter() {
        let kind = r.manifest.kind.to_string();
        println!("  {:<18} {kind:<6} {} {}", r.name(), r.manifest.version, r.digest);
    }
    for e in &loaded.errors {
        println!("  SKIPPED {}: {}", e.origin, e.error);
        tracing::warn!(origin = %e.origin, "recipe skipped: {}", e.error);
    }
    if loaded.recipes.is_empty() {
        println!("  (none loaded: alerts will be recorded but nothing will analyse them)");
    }
    if !auth.has_tokens() {
        println!(
            "no API tokens configured: reads are open, approvals are refused (set EUPHROSYNE_OPERATOR_TOKEN or `tokens` in the config)"
        );
    }
}

/// Redis mode: readiness follows Redis, and this replica leads (taking the incidents back) or
/// follows. Returns the replicas and the task that ends when leadership is lost.
async fn replicate(
    cfg: &ServeConfig,
    url: &str,
    replica: &str,
    advertise: &str,
    reconciler: &Arc<Reconciler>,
    subprocess: Arc<Subprocess>,
) -> anyhow::Result<(Arc<Replicas>, tokio::task::JoinHandle<anyhow::Error>)> {
    let retention = std::time::Duration::from_millis(cfg.incident_retention_ms);
    let lease_ttl = std::time::Duration::from_millis(cfg.leader_lease_ms);
    // Readiness follows Redis: ping every 250 ms.
    let bus = euphrosyne::bus::Bus::connect(url, &cfg.redis_prefix, std::time::Duration::from_secs(1))
        .await
        .context("connecting to Redis")?;
    let r = reconciler.clone();
    tokio::spawn(async move {
        loop {
            r.set_store_up(bus.ping().await);
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    });
    let lease = Lease::connect(url, &cfg.redis_prefix, replica, advertise, lease_ttl)
        .await
        .context("connecting to Redis")?;
    let store = Arc::new(
        RedisStore::connect(url, &cfg.redis_prefix, retention)
            .await
            .context("connecting to Redis")?,
    );
    let replicas = Replicas::new(lease, retention);
    // Try once now, so a single host (or one restarting under its own id) leads before it serves.
    let first = replicas
        .lease()
        .try_acquire()
        .await
        .context("taking the leader lease in Redis")?;
    let leading = Leading {
        replicas: replicas.clone(),
        store,
        reconciler: reconciler.clone(),
        subprocess,
        consumer: format!("host-{replica}"),
    };
    let task = match first {
        Some(token) => {
            let n = leading.take_over(&token).await?;
            println!("this replica (`{replica}`) leads; took back {n} incidents from Redis");
            tokio::spawn(leading.hold(token))
        }
        None => {
            let leader = replicas.lease().leader().await.ok().flatten();
            let leader = leader
                .map(|l| format!("`{}` at {}", l.replica, l.url))
                .unwrap_or_else(|| "the leader".into());
            println!(
                "this replica (`{replica}`) follows {leader}: requests are forwarded until it takes the lease over"
            );
            tokio::spawn(leading.follow())
        }
    };
    Ok((replicas, task))
}

/// Serve until a signal (refusing alerts at once, draining connections), or until this replica
/// loses the lead (stop at once: another replica drives the incidents now).
async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    reconciler: &Arc<Reconciler>,
    leadership: Option<tokio::task::JoinHandle<anyhow::Error>>,
) -> anyhow::Result<()> {
    let r = reconciler.clone();
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: refusing new alerts, letting runs finish");
        r.shutdown_intake();
    });
    let Some(mut lost) = leadership else {
        return server.await.context("HTTP server");
    };
    tokio::select! {
        r = server => r.context("HTTP server")?,
        e = &mut lost => {
            let e = e.unwrap_or_else(|e| anyhow::anyhow!("the leadership task failed: {e}"));
            return Err(e.context("stopping so this replica restarts as a follower"));
        }
    }
    lost.abort();
    Ok(())
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
