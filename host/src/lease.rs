//! Several replicas on one Redis: a leader lease with a fencing token.
//!
//! One replica at a time drives incidents: the holder of `{prefix}:leader`, a key whose value is
//! the fencing token `"{epoch} {replica} {url}"` (`epoch` from `INCR {prefix}:leader-epoch`, so
//! every acquisition gets a new token), set with a TTL and renewed at a third of it. The others
//! are followers: they forward every request but `/healthz`, `/readyz` and `/metrics` to the
//! leader's URL and try to take the lease over; when the leader dies its lease expires and one
//! of them becomes the leader, takes the incidents back from Redis, claims the results pending on
//! the old leader's consumer and goes on.
//!
//! Fencing: every write the leader makes to shared state (incidents, actions) and every action it
//! starts is checked against the token inside Redis, atomically (Lua), so a leader that lost its
//! lease — paused, partitioned — cannot overwrite its successor's work or run an action twice.
//! A replica that finds its lease taken stops (its supervisor restarts it as a follower).
//!
//! A replica restarting under the same replica id (Kubernetes restarts a container in the same
//! pod) takes its own lease back at once instead of waiting for it to expire.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Errors of the lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Redis refused or is unreachable.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The lease is held by another replica now: this one must stop acting as the leader.
    #[error("the leader lease was taken over by {0}; this replica is no longer the leader")]
    Lost(String),
}

/// The current holder of the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    /// Fencing epoch.
    pub epoch: u64,
    /// Replica id.
    pub replica: String,
    /// Where it serves (what followers forward to).
    pub url: String,
}

impl Leader {
    /// Parse a token `"{epoch} {replica} {url}"`.
    pub fn parse(token: &str) -> Option<Leader> {
        let mut parts = token.splitn(3, ' ');
        let epoch = parts.next()?.parse().ok()?;
        let replica = parts.next()?.to_string();
        let url = parts.next()?.to_string();
        Some(Leader { epoch, replica, url })
    }

    /// The fencing token.
    pub fn token(&self) -> String {
        format!("{} {} {}", self.epoch, self.replica, self.url)
    }
}

/// Take the lease when it is free or ours (same replica id). Returns the new token or nil.
const ACQUIRE: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur then
  local holder = string.match(cur, '^%d+ (%S+) ')
  if holder ~= ARGV[1] then return false end
end
local epoch = redis.call('INCR', KEYS[2])
local token = epoch .. ' ' .. ARGV[1] .. ' ' .. ARGV[2]
redis.call('SET', KEYS[1], token, 'PX', ARGV[3])
return token
"#;

/// Extend the lease if it is still ours; take it again if it vanished (Redis restarted empty).
/// 1 = held, else the holder's token.
const RENEW: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return cur
"#;

/// Claim `KEYS[2]` once, for as long as `ARGV[2]` ms, only while `ARGV[1]` holds the lease.
/// 1 = claimed, 0 = claimed before, -1 = not the leader.
const CLAIM: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"#;

/// The lease, for one replica.
#[derive(Clone)]
pub struct Lease {
    conn: ConnectionManager,
    prefix: String,
    replica: String,
    url: String,
    ttl: Duration,
}

impl Lease {
    /// Connect. `replica` must not contain spaces; `url` is where followers reach this replica.
    pub async fn connect(
        redis_url: &str,
        prefix: &str,
        replica: &str,
        url: &str,
        ttl: Duration,
    ) -> Result<Self, LeaseError> {
        let client = crate::bus::client(redis_url)?;
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = client.get_connection_manager_with_config(cfg).await?;
        Ok(Lease {
            conn,
            prefix: prefix.into(),
            replica: replica.replace(char::is_whitespace, "-"),
            url: url.into(),
            ttl,
        })
    }

    fn key(&self) -> String {
        format!("{}:leader", self.prefix)
    }

    /// This replica's id.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// The lease's time to live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Take the lease if it is free (or already this replica's). `Some(token)` when taken.
    pub async fn try_acquire(&self) -> Result<Option<String>, LeaseError> {
        let token: Option<String> = redis::Script::new(ACQUIRE)
            .key(self.key())
            .key(format!("{}:leader-epoch", self.prefix))
            .arg(&self.replica)
            .arg(&self.url)
            .arg(self.ttl.as_millis() as u64)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(token)
    }

    /// Extend the lease held with `token`. `Err(Lost)` when another replica holds it.
    pub async fn renew(&self, token: &str) -> Result<(), LeaseError> {
        let r: redis::Value = redis::Script::new(RENEW)
            .key(self.key())
            .arg(token)
            .arg(self.ttl.as_millis() as u64)
            .invoke_async(&mut self.conn.clone())
            .await?;
        match r {
            redis::Value::Int(1) => Ok(()),
            other => {
                let holder: String = redis::from_redis_value(other).unwrap_or_default();
                Err(LeaseError::Lost(
                    Leader::parse(&holder).map(|l| l.replica).unwrap_or(holder),
                ))
            }
        }
    }

    /// Who leads now, if anyone.
    pub async fn leader(&self) -> Result<Option<Leader>, LeaseError> {
        let v: Option<String> = redis::cmd("GET")
            .arg(self.key())
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(v.as_deref().and_then(Leader::parse))
    }

    /// Claim `what` (an action id, say) once across all replicas, fenced by `token`:
    /// `Ok(true)` the first time, `Ok(false)` after, `Err(Lost)` when `token` no longer leads.
    pub async fn claim(&self, token: &str, what: &str, ttl: Duration) -> Result<bool, LeaseError> {
        let r: i64 = redis::Script::new(CLAIM)
            .key(self.key())
            .key(format!("{}:claim:{what}", self.prefix))
            .arg(token)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut self.conn.clone())
            .await?;
        match r {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(LeaseError::Lost(
                self.leader()
                    .await?
                    .map(|l| l.replica)
                    .unwrap_or_else(|| "nobody".into()),
            )),
        }
    }

    /// Give the lease up (graceful shutdown), if still held with `token`.
    pub async fn release(&self, token: &str) -> Result<(), LeaseError> {
        let _: i64 = redis::Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
        )
        .key(self.key())
        .arg(token)
        .invoke_async(&mut self.conn.clone())
        .await?;
        Ok(())
    }
}

/// This replica's side of the lease: whether it leads, and (cached) who does.
pub struct Replicas {
    lease: Lease,
    token: parking_lot::RwLock<Option<String>>,
    cache: tokio::sync::Mutex<Option<(std::time::Instant, Option<Leader>)>>,
    claim_ttl: Duration,
    /// The client followers forward requests with.
    pub http: reqwest::Client,
}

impl Replicas {
    /// A follower, until [`Replicas::set_leader`]. Claims are kept for `claim_ttl` (the
    /// incident retention). A claim fences the race between replicas; a later approval of an
    /// action already on record is refused from the incident's own record, which is kept for as
    /// long as the incident is written.
    pub fn new(lease: Lease, claim_ttl: Duration) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Replicas {
            lease,
            token: Default::default(),
            cache: Default::default(),
            claim_ttl,
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
        })
    }

    /// The lease.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Does this replica lead?
    pub fn is_leader(&self) -> bool {
        self.token().is_some()
    }

    /// The fencing token, when this replica leads.
    pub fn token(&self) -> Option<String> {
        self.token.read().clone()
    }

    /// This replica leads from now on, with `token`.
    pub fn set_leader(&self, token: &str) {
        *self.token.write() = Some(token.into());
    }

    /// Who leads (looked up at most every 250 ms; `None` when nobody does or Redis is away).
    pub async fn leader(&self) -> Option<Leader> {
        let mut cache = self.cache.lock().await;
        if let Some((at, leader)) = &*cache
            && at.elapsed() < Duration::from_millis(250)
        {
            return leader.clone();
        }
        let leader = self.lease.leader().await.ok().flatten();
        *cache = Some((std::time::Instant::now(), leader.clone()));
        leader
    }
}

#[async_trait::async_trait]
impl crate::reconciler::ActionFence for Replicas {
    async fn claim(&self, action: &str) -> Result<bool, String> {
        let token = self.token().ok_or("this replica is not the leader")?;
        self.lease
            .claim(&token, action, self.claim_ttl)
            .await
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let l = Leader::parse("42 host-a http://10.0.0.1:8080").unwrap();
        assert_eq!(l.epoch, 42);
        assert_eq!(l.replica, "host-a");
        assert_eq!(l.url, "http://10.0.0.1:8080");
        assert_eq!(l.token(), "42 host-a http://10.0.0.1:8080");
        assert!(Leader::parse("x host url").is_none());
        assert!(Leader::parse("1 host").is_none());
    }
}
