//! `euphrosyne sandbox --run ID --redis URL --recipe FILE`: run one recipe call for the host, in
//! a process of its own (a local subprocess, or a Kubernetes Job), and publish the result.
//!
//! Reads the run's input from Redis, loads the component from FILE (a `.wasm`, or a packed
//! recipe), verifies it against the digest pinned in the input, runs it in the same sandbox as
//! the in-process executor, and publishes the result — retrying with backoff until the run's
//! deadline. Exits 0 when the result is published, non-zero only when it could not be: 3 when the
//! run's input is not in Redis, 4 when another process already started this run (it never runs
//! twice), 1 otherwise.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use euphrosyne::bus::Bus;
use euphrosyne::capability::secrets::SecretStore;
use euphrosyne::sandbox::{ArtifactKey, CacheUse, RunStatus, Sandbox, SandboxConfig};

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// The run id the host stored the input under.
    #[arg(long)]
    pub run: String,
    /// Redis URL (prefer the environment variable: a password on the command line is visible).
    #[arg(long, env = "EUPHROSYNE_REDIS_URL", hide_env_values = true)]
    pub redis: String,
    /// Key prefix.
    #[arg(long, default_value = "euphrosyne")]
    pub prefix: String,
    /// The component: a `.wasm` file, a packed recipe (ConfigMap YAML), or the directory a recipe
    /// ConfigMap is mounted at (in a Kubernetes Job).
    #[arg(long)]
    pub recipe: PathBuf,
    /// Directory of secret files (a mounted Kubernetes Secret).
    #[arg(long, env = "EUPHROSYNE_SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// Kubeconfig for the kubernetes capability. Without one, inside a pod, the Job's
    /// ServiceAccount is used (mounted only when the recipe is granted Kubernetes access).
    #[arg(long, env = "EUPHROSYNE_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Where the ServiceAccount token is mounted [default: /var/run/secrets/kubernetes.io/serviceaccount].
    #[arg(long, env = "EUPHROSYNE_SERVICEACCOUNT_DIR")]
    pub serviceaccount_dir: Option<PathBuf>,
    /// With --kubeconfig: call the API as this user (`system:serviceaccount:NS:NAME`), never as
    /// the kubeconfig's own (the host sets it to the recipe's ServiceAccount).
    #[arg(long, env = "EUPHROSYNE_KUBE_IMPERSONATE")]
    pub impersonate: Option<String>,
    /// The host's policy over Kubernetes grants, as JSON (`{"cluster_scope": [...],
    /// "allow_sensitive": [...]}`) [default: the built-in policy].
    #[arg(long, env = "EUPHROSYNE_KUBE_POLICY")]
    pub kube_policy: Option<String>,
}

/// Like `eprintln!`, but a closed stderr (the host that started us died) is not fatal.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// When this process started (the first thing `main` does), for the run's `startup_us`.
#[derive(Debug, Clone, Copy)]
pub struct Started {
    at: std::time::Instant,
    unix_ms: u64,
}

impl Started {
    pub fn now() -> Started {
        Started {
            at: std::time::Instant::now(),
            unix_ms: now_ms(),
        }
    }
}

pub async fn run(a: SandboxArgs, started: Started) -> anyhow::Result<ExitCode> {
    // Connecting and reading the input: retried briefly (Redis may be restarting).
    let mut attempt = 0;
    let (bus, spec) = loop {
        attempt += 1;
        let got = async {
            let bus = Bus::connect(&a.redis, &a.prefix, Duration::from_secs(5)).await?;
            let spec = bus.get_run(&a.run).await?;
            Ok::<_, euphrosyne::bus::BusError>((bus, spec))
        }
        .await;
        match got {
            Ok(x) => break x,
            Err(e) if attempt < 10 => {
                note!("sandbox {}: {e}; retrying", a.run);
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
            Err(e) => return Err(e).context("reading the run's input from Redis"),
        }
    };
    let Some(spec) = spec else {
        note!(
            "sandbox {}: no input in Redis under this run id (expired, or never stored); nothing to run",
            a.run
        );
        return Ok(ExitCode::from(3));
    };
    let deadline = spec.deadline_unix_ms;
    // Once: a second pod of this run's Job (the first evicted, or lost with its node) must not
    // run it again — an action would act twice.
    let holder = std::env::var("HOSTNAME").unwrap_or_else(|_| format!("pid {}", std::process::id()));
    let ttl = Duration::from_millis(deadline.saturating_sub(now_ms())) + Duration::from_secs(60);
    match bus.claim_run(&a.run, &holder, ttl).await {
        Ok(None) => {}
        Ok(Some(first)) => {
            note!(
                "sandbox {}: this run was already started by {first}; not running it twice",
                a.run
            );
            return Ok(ExitCode::from(4));
        }
        Err(e) => return Err(e).context("claiming the run in Redis"),
    }
    let bytes: std::sync::Arc<[u8]> = read_recipe(&a.recipe)?.into();
    let sandbox = sandbox(&a).await?;
    let adopted = adopt_artifact(&a.run, &bus, &sandbox, &spec.digest, &bytes).await;
    // The sandbox verifies the bytes against the digest pinned in the input, first (or took
    // precompiled code only for bytes that match it).
    let before_run = started.at.elapsed().as_micros() as u64;
    let mut result = sandbox.run(&spec.job(bytes)).await;
    let t = &mut result.timings;
    t.process_start_unix_ms = started.unix_ms;
    t.startup_us = before_run + t.verify_us + t.compile_us + t.instantiate_us;
    (t.process_cpu_us, t.process_peak_rss_kib) = usage();
    // Loading the shipped code (counted in `before_run` above) stands where compiling would.
    if let Some(took) = adopted
        && result.cache == CacheUse::Memory
    {
        result.cache = CacheUse::Artifact;
        result.timings.compile_us += took.as_micros() as u64;
    }
    if result.status == RunStatus::DigestMismatch {
        note!("sandbox {}: {}", a.run, result.message);
    }
    let mut backoff = Duration::from_millis(100);
    loop {
        match bus.publish(&result).await {
            Ok(_) => return Ok(ExitCode::SUCCESS),
            Err(e) if now_ms() + backoff.as_millis() as u64 <= deadline => {
                note!("sandbox {}: publishing the result: {e}; retrying in {backoff:?}", a.run);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                note!(
                    "sandbox {}: could not publish the result before the run's deadline: {e}",
                    a.run
                );
                return Ok(ExitCode::from(1));
            }
        }
    }
}

/// This process's CPU time (user + system, µs) and peak resident memory (KiB), from
/// `getrusage(RUSAGE_SELF)`; zeros if the kernel refuses.
fn usage() -> (u64, u64) {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `getrusage` writes a `rusage` into the pointer it is given, which points at one.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr()) } != 0 {
        return (0, 0);
    }
    // SAFETY: initialised by the successful call above (and zeroed before it).
    let u = unsafe { u.assume_init() };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (us(u.ru_utime) + us(u.ru_stime), u.ru_maxrss as u64)
}

/// Take the host's precompiled code for this component, if there is a key, an artifact for this
/// digest and engine, and its seal holds (`euphrosyne::artifacts`); how long that took. Anything
/// else is said on stderr and the run compiles, as without it.
async fn adopt_artifact(
    run: &str,
    bus: &Bus,
    sandbox: &Sandbox,
    digest: &euphrosyne::digest::Digest,
    bytes: &std::sync::Arc<[u8]>,
) -> Option<Duration> {
    let key = match ArtifactKey::from_env() {
        Ok(Some(k)) => k,
        Ok(None) => return None,
        Err(why) => {
            note!("sandbox {run}: {why}; compiling the recipe");
            return None;
        }
    };
    let t = std::time::Instant::now();
    let sealed = match bus.get_artifact(digest, sandbox.engine_id()).await {
        Ok(Some(s)) => s,
        Ok(None) => return None,
        Err(e) => {
            note!("sandbox {run}: reading the precompiled code: {e}; compiling the recipe");
            return None;
        }
    };
    match sandbox.adopt(digest, bytes, &sealed, &key) {
        Ok(()) => Some(t.elapsed()),
        Err(why) => {
            note!("sandbox {run}: precompiled code refused: {why}; compiling the recipe");
            None
        }
    }
}

/// The recipe's bytes: a mounted ConfigMap (directory), a packed ConfigMap file, or a component.
fn read_recipe(recipe: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let text_like = matches!(
        recipe.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    );
    Ok(if recipe.is_dir() {
        euphrosyne::pack::read_mounted(recipe)?
    } else if text_like {
        let text = std::fs::read_to_string(recipe).with_context(|| format!("reading {}", recipe.display()))?;
        euphrosyne::pack::unpack(&text, &recipe.display().to_string())?.1
    } else {
        std::fs::read(recipe).with_context(|| format!("reading {}", recipe.display()))?
    })
}

/// The sandbox for this run: its Kubernetes identity (a kubeconfig, impersonating, or the Job's
/// mounted ServiceAccount) and the host's policy, and its secrets.
async fn sandbox(a: &SandboxArgs) -> anyhow::Result<Sandbox> {
    use euphrosyne::capability::kube as k;
    let config = match &a.kubeconfig {
        Some(p) => {
            let config = k::config_from_kubeconfig(p).await.map_err(anyhow::Error::msg)?;
            Some(match &a.impersonate {
                Some(user) => k::impersonating(config, user.clone()),
                None => config,
            })
        }
        None => k::config_in_cluster(a.serviceaccount_dir.as_deref())
            .await
            .map_err(anyhow::Error::msg)?,
    };
    let kube = config
        .map(k::KubeClients::own)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let kube_policy = match a.kube_policy.as_deref().filter(|p| !p.is_empty()) {
        Some(json) => serde_json::from_str(json).context("EUPHROSYNE_KUBE_POLICY / --kube-policy is not a policy")?,
        None => euphrosyne::manifest::KubePolicy::default(),
    };
    Ok(Sandbox::new(SandboxConfig {
        pool_slots: 2,
        kube,
        kube_policy,
        secrets: SecretStore::load(a.secrets_dir.as_deref())?,
        ..Default::default()
    })?)
}
