//! Where incidents and approved actions are kept beyond the reconciler's working set: the
//! [`Store`] trait, with [`MemoryStore`] (embedded mode, tests) and [`RedisStore`] (the Redis
//! mode), both held to the same contract by one test suite (`host/tests/suites/store.rs`, in the `redis` test binary).
//!
//! The reconciler keeps its open incidents in memory and writes behind to the store
//! ([`spawn_write_behind`]): each change to an incident appends to its event log and bumps its
//! version, and the incidents whose version moved are written whole — record, analysis, actions
//! and append-only event log together, so a reader never sees a log ahead of its state. What
//! others rely on is stored before they are told: `/webhook` answers 2xx only once its alerts are
//! in the store, and a run or an action starts only once it is on record. Run results wait in the
//! result stream until recorded. On start (and when a follower replica takes the lease over) the host loads the
//! store back.
//!
//! ## What is kept, and for how long
//!
//! One rule in both stores: **a record is kept for the retention after its last write.** An
//! incident that stays open for a week is written whenever something happens to it, so it is kept
//! for as long as it lives and for the retention after that; an action is kept likewise. Loads
//! list the incidents oldest (by creation) first.
//!
//! In Redis: `{prefix}:incident:{id}` (JSON) and `{prefix}:action:{id}`, each written with the
//! retention as its TTL, and the sorted set `{prefix}:incidents` that lets a load find them. The
//! index is scored by the time of each incident's **last write**, read from the Redis server's
//! own clock inside the write script — the clock that also runs the records' TTLs — and trimmed
//! on every write to the entries whose last write is older than the retention, which are exactly
//! the records Redis has already expired. (Scoring by creation time instead, as an earlier
//! version did, trimmed an incident that was still open after the retention out of the index:
//! its record lived on, but no load found it again, so a restarted host lost it.) With several
//! replicas each write is fenced by the leader lease's token inside Redis (see [`crate::lease`]):
//! a replica that lost the lease cannot overwrite its successor's incidents.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant, UNIX_EPOCH};

use redis::aio::ConnectionManager;

use crate::incident::{ActionRun, IncidentRecord};
use crate::reconciler::journal::Journal;

/// Errors of a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis refused or is unreachable.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The write was refused: this replica no longer holds the leader lease.
    #[error("write refused: the leader lease is held by `{0}`, not this replica")]
    Fenced(String),
}

/// An incident with its approved actions.
pub type Stored = (IncidentRecord, Vec<ActionRun>);

/// Incidents and actions, each kept for the retention after its last write.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Write (insert or replace) these incidents and actions.
    async fn save(&self, incidents: &[IncidentRecord], actions: &[ActionRun]) -> Result<(), StoreError>;
    /// Every incident still kept (written within the retention), oldest (by creation) first,
    /// and the actions approved on them.
    async fn load(&self) -> Result<(Vec<IncidentRecord>, Vec<ActionRun>), StoreError>;
    /// One incident and its actions.
    async fn get(&self, id: &str) -> Result<Option<Stored>, StoreError>;
}

/// Put `incidents` in the order loads return them: oldest (by creation) first, then by id.
fn oldest_first(incidents: &mut [IncidentRecord]) {
    incidents.sort_by_cached_key(|r| (created_ms(r), r.id.clone()));
}

fn created_ms(rec: &IncidentRecord) -> u64 {
    humantime::parse_rfc3339(&rec.created_at)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

// ------------------------------------------------------------------------------------ memory

/// The in-memory store (embedded mode; lost with the process).
pub struct MemoryStore {
    retention: Duration,
    inner: Mutex<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    incidents: HashMap<String, (IncidentRecord, Instant)>,
    actions: HashMap<String, (ActionRun, Instant)>,
}

impl MemoryStore {
    /// A store keeping each record `retention` after its last write.
    pub fn new(retention: Duration) -> Self {
        MemoryStore {
            retention,
            inner: Mutex::default(),
        }
    }

    fn locked(&self) -> parking_lot::MutexGuard<'_, MemoryInner> {
        let mut g = self.inner.lock();
        let now = Instant::now();
        g.incidents.retain(|_, (_, until)| *until > now);
        g.actions.retain(|_, (_, until)| *until > now);
        g
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn save(&self, incidents: &[IncidentRecord], actions: &[ActionRun]) -> Result<(), StoreError> {
        let until = Instant::now() + self.retention;
        let mut g = self.locked();
        for r in incidents {
            g.incidents.insert(r.id.clone(), (r.clone(), until));
        }
        for a in actions {
            g.actions.insert(a.id.clone(), (a.clone(), until));
        }
        Ok(())
    }

    async fn load(&self) -> Result<(Vec<IncidentRecord>, Vec<ActionRun>), StoreError> {
        let g = self.locked();
        let mut incidents: Vec<IncidentRecord> = g.incidents.values().map(|(r, _)| r.clone()).collect();
        oldest_first(&mut incidents);
        let actions = incidents
            .iter()
            .flat_map(|r| r.actions.iter())
            .filter_map(|a| g.actions.get(a).map(|(a, _)| a.clone()))
            .collect();
        Ok((incidents, actions))
    }

    async fn get(&self, id: &str) -> Result<Option<Stored>, StoreError> {
        let g = self.locked();
        Ok(g.incidents.get(id).map(|(r, _)| {
            let actions = r
                .actions
                .iter()
                .filter_map(|a| g.actions.get(a).map(|(a, _)| a.clone()))
                .collect();
            (r.clone(), actions)
        }))
    }
}

// ------------------------------------------------------------------------------------- redis

/// Write incidents and actions, checking the fencing token first (`''` = unfenced; a lease
/// that vanished — Redis restarted empty — is taken back for `ARGV[4]` ms, as a renewal would).
/// Each incident's index score is the time of this write on the server's clock, the clock of the
/// records' TTLs, and the index loses the entries not written for the retention (`ARGV[3]` ms):
/// the ones whose records have expired. 1 = written; else the holder's token.
const WRITE: &str = r#"
if ARGV[1] ~= '' then
  local cur = redis.call('GET', KEYS[1])
  if not cur then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
  elseif cur ~= ARGV[1] then
    return cur
  end
end
local prefix, ttl = ARGV[2], ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', prefix .. ':incidents', '-inf', '(' .. (now - tonumber(ttl)))
local i = 5
while i <= #ARGV do
  if ARGV[i] == 'i' then
    redis.call('SET', prefix .. ':incident:' .. ARGV[i + 1], ARGV[i + 2], 'PX', ttl)
    redis.call('ZADD', prefix .. ':incidents', now, ARGV[i + 1])
    i = i + 3
  else
    redis.call('SET', prefix .. ':action:' .. ARGV[i + 1], ARGV[i + 2], 'PX', ttl)
    i = i + 3
  end
end
return 1
"#;

/// Incidents in Redis.
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    retention: Duration,
    fence: Mutex<(String, Duration)>,
}

impl RedisStore {
    /// Connect.
    pub async fn connect(url: &str, prefix: &str, retention: Duration) -> Result<Self, StoreError> {
        let client = crate::bus::client(url)?;
        let conn = client.get_connection_manager().await?;
        Ok(RedisStore {
            conn,
            prefix: prefix.into(),
            retention,
            fence: Mutex::new((String::new(), Duration::ZERO)),
        })
    }

    /// Fence every later write with the leader lease's `token` (see [`crate::lease`]), whose
    /// lease lasts `lease_ttl`.
    pub fn fence_with(&self, token: &str, lease_ttl: Duration) {
        *self.fence.lock() = (token.into(), lease_ttl);
    }

    fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
    }

    async fn mget<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        ids: &[String],
    ) -> Result<Vec<Option<T>>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        let mut conn = self.conn.clone();
        for chunk in ids.chunks(500) {
            let keys: Vec<String> = chunk.iter().map(|id| self.key(&format!("{kind}:{id}"))).collect();
            let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
            out.extend(
                values
                    .into_iter()
                    .map(|v| v.and_then(|json| serde_json::from_str(&json).ok())),
            );
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl Store for RedisStore {
    async fn save(&self, incidents: &[IncidentRecord], actions: &[ActionRun]) -> Result<(), StoreError> {
        let (fence, lease_ttl) = self.fence.lock().clone();
        let script = redis::Script::new(WRITE);
        let mut inv = script.key(self.key("leader"));
        inv.arg(&fence)
            .arg(&self.prefix)
            .arg(self.retention.as_millis().max(1) as u64)
            .arg(lease_ttl.as_millis().max(1) as u64);
        for rec in incidents {
            let json = serde_json::to_string(rec).unwrap_or_default();
            inv.arg("i").arg(&rec.id).arg(json);
        }
        for a in actions {
            inv.arg("a")
                .arg(&a.id)
                .arg(serde_json::to_string(a).unwrap_or_default());
        }
        match inv.invoke_async::<redis::Value>(&mut self.conn.clone()).await? {
            redis::Value::Int(1) => Ok(()),
            other => {
                let holder: String = redis::from_redis_value(other).unwrap_or_default();
                Err(StoreError::Fenced(
                    crate::lease::Leader::parse(&holder)
                        .map(|l| l.replica)
                        .unwrap_or_else(|| "nobody".into()),
                ))
            }
        }
    }

    async fn load(&self) -> Result<(Vec<IncidentRecord>, Vec<ActionRun>), StoreError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.key("incidents"))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        let mut incidents = Vec::new();
        let mut gone = Vec::new();
        for (id, rec) in ids.iter().zip(self.mget::<IncidentRecord>("incident", &ids).await?) {
            match rec {
                Some(rec) => incidents.push(rec),
                None => gone.push(id.clone()),
            }
        }
        if !gone.is_empty() {
            // Expired (retention): drop them from the index too.
            let _: i64 = redis::cmd("ZREM")
                .arg(self.key("incidents"))
                .arg(&gone)
                .query_async(&mut conn)
                .await?;
        }
        // The index is in order of last write; a load lists the oldest incident first.
        oldest_first(&mut incidents);
        let action_ids: Vec<String> = incidents.iter().flat_map(|r| r.actions.clone()).collect();
        let actions = self
            .mget::<ActionRun>("action", &action_ids)
            .await?
            .into_iter()
            .flatten()
            .collect();
        Ok((incidents, actions))
    }

    async fn get(&self, id: &str) -> Result<Option<Stored>, StoreError> {
        let Some(rec) = self
            .mget::<IncidentRecord>("incident", &[id.to_string()])
            .await?
            .pop()
            .flatten()
        else {
            return Ok(None);
        };
        let actions = self.mget::<ActionRun>("action", &rec.actions).await?;
        Ok(Some((rec, actions.into_iter().flatten().collect())))
    }
}

/// Write what changed in the reconciler's `journal` to `store` every 50 ms, and at once when
/// someone waits on a persist point ([`Journal::persist_point`]: a webhook before it answers 2xx,
/// a run or an action before it starts). A failed write is retried on the next tick (nothing counts as
/// written until the store took it). The task ends only when a
/// write is fenced off — this replica lost the leader lease — and returns that error.
pub fn spawn_write_behind(store: Arc<dyn Store>, journal: Arc<Journal>) -> tokio::task::JoinHandle<StoreError> {
    journal.enable();
    tokio::spawn(async move {
        let mut written: HashMap<String, u64> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            // Every 50 ms, or at once when a webhook or a run waits for its persist point.
            tokio::select! {
                _ = tick.tick() => {}
                _ = journal.flush_requested() => {}
            }
            let target = journal.target();
            let (incidents, actions) = journal.changed_since(&written);
            if incidents.is_empty() {
                journal.persisted(target);
                continue;
            }
            match store.save(&incidents, &actions).await {
                Ok(()) => {
                    journal.persisted(target);
                    for r in &incidents {
                        written.insert(r.id.clone(), r.version);
                    }
                    journal.prune(&mut written);
                }
                Err(e @ StoreError::Fenced(_)) => return e,
                Err(e) => tracing::warn!("writing incidents to the store: {e}; retrying"),
            }
        }
    })
}
