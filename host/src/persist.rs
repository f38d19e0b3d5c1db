//! Incidents in Redis (the Redis mode): a write-behind copy of every incident and approved
//! action, so a host that restarts — or is killed — picks its incidents up again.
//!
//! Every 50 ms the host writes the incidents whose version changed (each change appends an event
//! and bumps the version) as `{prefix}:incident:{id}`, indexed by creation time in the sorted set
//! `{prefix}:incidents`, and their approved actions as `{prefix}:action:{id}`, all with the
//! configured retention. On start it loads them back. At most the last 50 ms of changes can be
//! lost with the process; run results are not, they wait in the result stream.
//!
//! Not yet: several replicas driving the same incidents (leases with fencing) — one host per
//! Redis prefix for now.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::incident::{ActionRun, IncidentRecord};
use crate::reconciler::Reconciler;

/// Loaded state and the connection to keep writing with.
pub struct Persist {
    conn: ConnectionManager,
    prefix: String,
    retention: Duration,
}

impl Persist {
    /// Connect.
    pub async fn connect(url: &str, prefix: &str, retention: Duration) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let conn = client.get_connection_manager().await?;
        Ok(Persist {
            conn,
            prefix: prefix.into(),
            retention,
        })
    }

    fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
    }

    /// Every stored incident (oldest first) and the actions approved on them.
    pub async fn load(&self) -> Result<(Vec<IncidentRecord>, Vec<ActionRun>), redis::RedisError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.key("incidents"))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        let mut incidents = Vec::new();
        let mut gone = Vec::new();
        for chunk in ids.chunks(500) {
            let keys: Vec<String> = chunk.iter().map(|id| self.key(&format!("incident:{id}"))).collect();
            let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
            for (id, v) in chunk.iter().zip(values) {
                match v.and_then(|json| serde_json::from_str::<IncidentRecord>(&json).ok()) {
                    Some(rec) => incidents.push(rec),
                    None => gone.push(id.clone()),
                }
            }
        }
        if !gone.is_empty() {
            let _: i64 = redis::cmd("ZREM")
                .arg(self.key("incidents"))
                .arg(&gone)
                .query_async(&mut conn)
                .await?;
        }
        let action_ids: Vec<String> = incidents.iter().flat_map(|r| r.actions.clone()).collect();
        let mut actions = Vec::new();
        for chunk in action_ids.chunks(500) {
            let keys: Vec<String> = chunk.iter().map(|id| self.key(&format!("action:{id}"))).collect();
            let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
            actions.extend(
                values
                    .into_iter()
                    .flatten()
                    .filter_map(|json| serde_json::from_str::<ActionRun>(&json).ok()),
            );
        }
        Ok((incidents, actions))
    }

    async fn write(&self, incidents: &[IncidentRecord], actions: &[ActionRun]) -> Result<(), redis::RedisError> {
        let ttl = self.retention.as_millis() as u64;
        let mut pipe = redis::pipe();
        for rec in incidents {
            let json = serde_json::to_string(rec).unwrap_or_default();
            let created = humantime::parse_rfc3339(&rec.created_at)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            pipe.cmd("SET")
                .arg(self.key(&format!("incident:{}", rec.id)))
                .arg(json)
                .arg("PX")
                .arg(ttl)
                .ignore();
            pipe.cmd("ZADD")
                .arg(self.key("incidents"))
                .arg(created)
                .arg(&rec.id)
                .ignore();
        }
        for a in actions {
            let json = serde_json::to_string(a).unwrap_or_default();
            pipe.cmd("SET")
                .arg(self.key(&format!("action:{}", a.id)))
                .arg(json)
                .arg("PX")
                .arg(ttl)
                .ignore();
        }
        pipe.query_async::<()>(&mut self.conn.clone()).await
    }

    /// Write what changed in `reconciler`, every 50 ms, until the process ends. A failed write is
    /// retried on the next tick (nothing is marked written until Redis took it).
    pub fn spawn_write_behind(self, reconciler: Arc<Reconciler>) {
        tokio::spawn(async move {
            let mut written: HashMap<String, u64> = HashMap::new();
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            loop {
                tick.tick().await;
                let (incidents, actions) = reconciler.changed_since(&written);
                if incidents.is_empty() {
                    continue;
                }
                match self.write(&incidents, &actions).await {
                    Ok(()) => {
                        for r in &incidents {
                            written.insert(r.id.clone(), r.version);
                        }
                        if written.len() > 4 * reconciler.max_incidents() {
                            let keep: std::collections::HashSet<String> =
                                reconciler.incident_ids().into_iter().collect();
                            written.retain(|id, _| keep.contains(id));
                        }
                    }
                    Err(e) => tracing::warn!("writing incidents to Redis: {e}; retrying"),
                }
            }
        });
    }
}
