//! The fence an action passes before it starts, when several replicas share one Redis.

/// Several replicas: an action starts only once its id was claimed across them, fenced by the
/// leader lease (see `crate::lease`).
#[async_trait::async_trait]
pub trait ActionFence: Send + Sync {
    /// `Ok(true)` the first time `action` is claimed, `Ok(false)` after; `Err` when this
    /// replica may not start it (no longer the leader, or the store is unreachable).
    async fn claim(&self, action: &str) -> Result<bool, String>;
}
