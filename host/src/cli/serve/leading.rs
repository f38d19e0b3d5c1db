//! Redis mode: take the leader lease (or follow whoever holds it), take the incidents back from
//! Redis when leading, write behind and renew until the lease is lost.

use std::sync::Arc;

use anyhow::Context;

use euphrosyne::executor::Subprocess;
use euphrosyne::lease::{LeaseError, Replicas};
use euphrosyne::reconciler::Reconciler;
use euphrosyne::store::{RedisStore, Store};

/// Becoming and staying the leader (Redis mode).
pub struct Leading {
    pub replicas: Arc<Replicas>,
    pub store: Arc<RedisStore>,
    pub reconciler: Arc<Reconciler>,
    pub subprocess: Arc<Subprocess>,
    pub consumer: String,
}

impl Leading {
    /// Follow until the lease is free, then lead; returns only when leadership is lost.
    pub async fn follow(self) -> anyhow::Error {
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
    pub async fn take_over(&self, token: &str) -> anyhow::Result<usize> {
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
        // Durable before it leads: from here `/webhook` answers 2xx only once Redis has the
        // alerts. (Enabled by the write-behind alone, in `hold`'s task, a webhook served in
        // between was acknowledged unstored, and lost if this host died right after.)
        self.reconciler.journal().enable();
        self.replicas.set_leader(token);
        Ok(n)
    }

    /// Write behind and renew the lease; returns when either finds the lease taken.
    pub async fn hold(self, token: String) -> anyhow::Error {
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
