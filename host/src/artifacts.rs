//! The host's half of precompiled code for sandbox processes ([`ArtifactKey`] says why and how
//! it is sealed): each recipe's component compiled once per host process, sealed, and stored in
//! Redis before the first sandbox process that runs it starts — a local subprocess or a
//! Kubernetes Job alike. Concurrent runs of one recipe wait for the same compile.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::OnceCell;

use crate::bus::Bus;
use crate::digest::Digest;
use crate::sandbox::{ArtifactKey, RunJob, Sandbox};

/// How long Redis keeps an artifact.
const TTL: Duration = Duration::from_secs(24 * 3600);
/// Stored again after this long (Redis may have lost it meanwhile: a restart without persistence).
const REFRESH: Duration = Duration::from_secs(3600);

/// Precompiled code for sandbox processes.
pub struct Artifacts {
    key: ArtifactKey,
    sandbox: Arc<Sandbox>,
    bus: Bus,
    /// Per digest: when its artifact was stored (or the store in flight).
    stored: Mutex<HashMap<Digest, Arc<OnceCell<Instant>>>>,
}

impl Artifacts {
    /// Artifacts sealed with `key`, compiled by `sandbox`'s engine (the settings a sandbox process
    /// uses), stored through `bus`.
    pub fn new(key: ArtifactKey, sandbox: Arc<Sandbox>, bus: Bus) -> Self {
        Artifacts {
            key,
            sandbox,
            bus,
            stored: Mutex::default(),
        }
    }

    /// The key, for the sandbox processes' environment.
    pub fn key(&self) -> &ArtifactKey {
        &self.key
    }

    /// Make sure the artifact for `job`'s component is in Redis. Never fails the run: what went
    /// wrong is logged, and its sandbox compiles, as without an artifact.
    pub async fn ensure(&self, job: &RunJob) {
        let cell = {
            let mut stored = self.stored.lock();
            let cell = stored.entry(job.digest).or_default();
            if cell.get().is_some_and(|at| at.elapsed() > REFRESH) {
                *cell = Arc::default();
            }
            cell.clone()
        };
        let made = cell
            .get_or_try_init(|| async {
                let t = Instant::now();
                let sealed = self.sandbox.artifact(job.digest, job.bytes.clone(), &self.key).await?;
                self.bus
                    .put_artifact(&job.digest, self.sandbox.engine_id(), &sealed, TTL)
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::info!(recipe = %job.recipe, digest = %job.digest, bytes = sealed.len(),
                    ms = t.elapsed().as_millis() as u64, "stored precompiled code for sandbox processes");
                Ok::<_, String>(Instant::now())
            })
            .await;
        if let Err(why) = made {
            tracing::warn!(run_id = %job.run_id, recipe = %job.recipe,
                "no precompiled code for the sandbox process (it compiles instead): {why}");
        }
    }
}
