//! The Redis result bus: run inputs stored under their run id, results published to a stream.
//!
//! - A run's input (`RunSpec`: recipe, pinned digest, grants, limits, config, input, deadline) is
//!   `SET {prefix}:run:{id}` with a TTL, so a sandbox needs only its run id and the Redis address.
//! - A sandbox publishes its result with `XADD {prefix}:results` — durable first, and the same
//!   entry wakes the host's blocking `XREADGROUP` within milliseconds.
//! - Hosts read the stream through the consumer group `hosts`; an entry is acknowledged only
//!   after it was handed on, and a host first re-reads its own unacknowledged entries, so a result
//!   published while no host listened, or while one restarted, is still collected. Results are
//!   idempotent by run id: the collector hands each run's result on once and drops duplicates.
//!
//! URLs: `redis://[:password@]host:port[/db]`, `rediss://…` for TLS.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::manifest::{Capabilities, Limits};
use crate::sandbox::{RunInput, RunJob, RunResult};

/// Errors of the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Redis refused or is unreachable.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A stored value is not what we wrote.
    #[error("redis: malformed {what}: {why}")]
    Malformed {
        /// Which value.
        what: String,
        /// Why.
        why: String,
    },
}

/// What a sandbox needs to run: everything of a [`RunJob`] but the bytes, plus a deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Run id.
    pub run_id: String,
    /// Recipe.
    pub recipe: String,
    /// The digest pinned at fan-out; the sandbox verifies the bytes it loads against it.
    pub digest: Digest,
    /// Grants.
    pub capabilities: Capabilities,
    /// Limits.
    pub limits: Limits,
    /// Config.
    pub config: std::collections::BTreeMap<String, String>,
    /// Input.
    pub input: RunInput,
    /// Unix milliseconds after which nobody waits for the result (publishing stops retrying).
    pub deadline_unix_ms: u64,
}

impl RunSpec {
    /// The spec of `job`, due `within` from now.
    pub fn of(job: &RunJob, within: Duration) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        RunSpec {
            run_id: job.run_id.clone(),
            recipe: job.recipe.clone(),
            digest: job.digest,
            capabilities: job.capabilities.clone(),
            limits: job.limits,
            config: job.config.clone(),
            input: job.input.clone(),
            deadline_unix_ms: (now + within).as_millis() as u64,
        }
    }

    /// The job, with the bytes the sandbox loaded.
    pub fn job(self, bytes: std::sync::Arc<[u8]>) -> RunJob {
        RunJob {
            run_id: self.run_id,
            recipe: self.recipe,
            digest: self.digest,
            bytes,
            capabilities: self.capabilities,
            limits: self.limits,
            config: self.config,
            input: self.input,
        }
    }
}

/// A Redis client for `url`. For `rediss://` (TLS) the server's certificate is checked against
/// the public roots, or against the PEM file named by `EUPHROSYNE_REDIS_CA_FILE` (a private CA).
pub fn client(url: &str) -> Result<redis::Client, redis::RedisError> {
    match std::env::var_os("EUPHROSYNE_REDIS_CA_FILE") {
        Some(path) if url.starts_with("rediss://") => {
            let pem = std::fs::read(&path).map_err(|e| {
                redis::RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "reading EUPHROSYNE_REDIS_CA_FILE",
                    format!("{}: {e}", std::path::Path::new(&path).display()),
                ))
            })?;
            redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            )
        }
        _ => redis::Client::open(url),
    }
}

/// The consumer group every host reads results through.
pub const GROUP: &str = "hosts";

/// A connection to the bus.
#[derive(Clone)]
pub struct Bus {
    conn: ConnectionManager,
    prefix: String,
}

/// One result read from the stream, to acknowledge once handled.
pub struct Delivery {
    /// Stream entry id (for `XACK`).
    pub entry: String,
    /// The result; `Err` when the entry is not a result we can read (acknowledged and dropped).
    pub result: Result<RunResult, String>,
}

impl Bus {
    /// Connect (with reconnection and backoff handled by the connection manager).
    /// `response_timeout` must exceed any blocking read.
    pub async fn connect(url: &str, prefix: &str, response_timeout: Duration) -> Result<Self, BusError> {
        let client = client(url)?;
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(response_timeout))
            .set_number_of_retries(3)
            .set_max_delay(Duration::from_secs(2));
        let conn = client.get_connection_manager_with_config(cfg).await?;
        Ok(Bus {
            conn,
            prefix: prefix.to_string(),
        })
    }

    fn key(&self, parts: &str) -> String {
        format!("{}:{parts}", self.prefix)
    }

    /// The results stream's key.
    pub fn results_key(&self) -> String {
        self.key("results")
    }

    /// Store a run's input for `ttl`.
    pub async fn put_run(&self, spec: &RunSpec, ttl: Duration) -> Result<(), BusError> {
        let json = serde_json::to_string(spec).map_err(|e| BusError::Malformed {
            what: "run".into(),
            why: e.to_string(),
        })?;
        self.set_for(&self.key(&format!("run:{}", spec.run_id)), json.as_bytes(), ttl)
            .await
    }

    /// `SET key value PX ttl`.
    async fn set_for(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), BusError> {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Claim run `run_id` for `holder` until `ttl` from now: `Ok(None)` if this is the first
    /// claim, `Ok(Some(holder))` naming who claimed it first otherwise. A run is executed by the
    /// process that claimed it, once: a second pod of the same Job (the first evicted, or deleted
    /// with its node) does not run it again.
    pub async fn claim_run(&self, run_id: &str, holder: &str, ttl: Duration) -> Result<Option<String>, BusError> {
        let key = self.key(&format!("claim:{run_id}"));
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(holder)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut self.conn.clone())
            .await?;
        if set.is_some() {
            return Ok(None);
        }
        let first: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut self.conn.clone()).await?;
        Ok(Some(first.unwrap_or_else(|| "another process".into())))
    }

    /// Store sealed precompiled code for the component `digest` and engine `engine`, kept `ttl`.
    pub async fn put_artifact(
        &self,
        digest: &Digest,
        engine: &str,
        sealed: &[u8],
        ttl: Duration,
    ) -> Result<(), BusError> {
        self.set_for(&self.artifact_key(digest, engine), sealed, ttl).await
    }

    /// Sealed precompiled code for the component `digest` and engine `engine`, if stored.
    pub async fn get_artifact(&self, digest: &Digest, engine: &str) -> Result<Option<Vec<u8>>, BusError> {
        Ok(redis::cmd("GET")
            .arg(self.artifact_key(digest, engine))
            .query_async(&mut self.conn.clone())
            .await?)
    }

    fn artifact_key(&self, digest: &Digest, engine: &str) -> String {
        self.key(&format!("artifact:{}:{engine}", digest.hex()))
    }

    /// A run's input, if it has not expired.
    pub async fn get_run(&self, run_id: &str) -> Result<Option<RunSpec>, BusError> {
        let v: Option<String> = redis::cmd("GET")
            .arg(self.key(&format!("run:{run_id}")))
            .query_async(&mut self.conn.clone())
            .await?;
        v.map(|s| {
            serde_json::from_str(&s).map_err(|e| BusError::Malformed {
                what: format!("run {run_id}"),
                why: e.to_string(),
            })
        })
        .transpose()
    }

    /// Publish a result: durable in the stream (trimmed to about 100 000 entries), and the wake-up.
    pub async fn publish(&self, result: &RunResult) -> Result<String, BusError> {
        let json = serde_json::to_string(result).map_err(|e| BusError::Malformed {
            what: "result".into(),
            why: e.to_string(),
        })?;
        let id: String = redis::cmd("XADD")
            .arg(self.results_key())
            .arg("MAXLEN")
            .arg("~")
            .arg(100_000)
            .arg("*")
            .arg("run_id")
            .arg(&result.run_id)
            .arg("result")
            .arg(json)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(id)
    }

    /// Create the consumer group (from the start of the stream) unless it exists.
    pub async fn ensure_group(&self) -> Result<(), BusError> {
        let r: Result<(), _> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.results_key())
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.conn.clone())
            .await;
        match r {
            Err(e) if e.to_string().contains("BUSYGROUP") => Ok(()),
            other => other.map_err(Into::into),
        }
    }

    /// Read up to 100 results for `consumer`: `pending = true` re-reads its unacknowledged ones,
    /// else waits up to `block` for new ones.
    pub async fn read(&self, consumer: &str, pending: bool, block: Duration) -> Result<Vec<Delivery>, BusError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(GROUP).arg(consumer).arg("COUNT").arg(100);
        if !pending {
            cmd.arg("BLOCK").arg(block.as_millis() as u64);
        }
        cmd.arg("STREAMS")
            .arg(self.results_key())
            .arg(if pending { "0" } else { ">" });
        let reply: Option<redis::streams::StreamReadReply> = cmd.query_async(&mut self.conn.clone()).await?;
        let mut out = Vec::new();
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            for entry in key.ids {
                let result = match entry.get::<String>("result") {
                    Some(json) => serde_json::from_str(&json).map_err(|e| format!("entry {}: {e}", entry.id)),
                    None => Err(format!("entry {} has no `result` field", entry.id)),
                };
                out.push(Delivery {
                    entry: entry.id,
                    result,
                });
            }
        }
        Ok(out)
    }

    /// Move every entry pending on any consumer of the group to `consumer` (`XAUTOCLAIM`), so
    /// its pending re-read delivers them. Returns how many moved.
    pub async fn claim_pending(&self, consumer: &str) -> Result<usize, BusError> {
        let mut start = "0-0".to_string();
        let mut moved = 0;
        loop {
            let reply: redis::Value = redis::cmd("XAUTOCLAIM")
                .arg(self.results_key())
                .arg(GROUP)
                .arg(consumer)
                .arg(0)
                .arg(&start)
                .arg("COUNT")
                .arg(1000)
                .arg("JUSTID")
                .query_async(&mut self.conn.clone())
                .await?;
            let (next, ids): (String, Vec<String>) = match reply {
                redis::Value::Array(mut parts) if parts.len() >= 2 => {
                    let ids = redis::from_redis_value(parts.remove(1)).unwrap_or_default();
                    let next = redis::from_redis_value(parts.remove(0)).unwrap_or_default();
                    (next, ids)
                }
                other => {
                    return Err(BusError::Malformed {
                        what: "XAUTOCLAIM reply".into(),
                        why: format!("{other:?}"),
                    });
                }
            };
            moved += ids.len();
            if next == "0-0" || next.is_empty() {
                return Ok(moved);
            }
            start = next;
        }
    }

    /// Acknowledge handled entries.
    pub async fn ack(&self, entries: &[String]) -> Result<(), BusError> {
        if entries.is_empty() {
            return Ok(());
        }
        let _: i64 = redis::cmd("XACK")
            .arg(self.results_key())
            .arg(GROUP)
            .arg(entries)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Is Redis answering?
    pub async fn ping(&self) -> bool {
        redis::cmd("PING")
            .query_async::<String>(&mut self.conn.clone())
            .await
            .is_ok()
    }
}
