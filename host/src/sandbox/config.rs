//! The sandbox's settings (the host's, not a recipe's), and the counters it keeps for `/metrics`.

use std::path::PathBuf;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::capability::kube::KubeClients;
use crate::capability::secrets::SecretStore;
use crate::manifest::KubePolicy;

/// Sandbox settings (the host's, not a recipe's).
#[derive(Clone)]
pub struct SandboxConfig {
    /// On-disk compile cache; `None` keeps it in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Instances the pooling allocator keeps slots for (concurrent runs).
    pub pool_slots: u32,
    /// Host directories under which manifests may grant read-only `dirs`. Empty: no dir grants.
    pub dir_roots: Vec<PathBuf>,
    /// Kubernetes clients for the kubernetes capability (`None`: calls fail with a clear error).
    pub kube: Option<KubeClients>,
    /// Which Kubernetes grants the host allows (cluster scope, sensitive resources).
    pub kube_policy: KubePolicy,
    /// Secret values.
    pub secrets: SecretStore,
    /// Runs of one recipe at the same time in this process; more wait for a turn.
    pub max_runs_per_recipe: u32,
    /// Compiled components kept in memory (the least recently used goes first).
    pub memory_cache_entries: usize,
    /// Where the memory cache counts hits, misses and evictions (shared with `/metrics`).
    pub cache_stats: Arc<CacheStats>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            cache_dir: None,
            pool_slots: 128,
            dir_roots: vec![],
            kube: None,
            kube_policy: KubePolicy::default(),
            secrets: SecretStore::default(),
            max_runs_per_recipe: 16,
            memory_cache_entries: 128,
            cache_stats: Arc::default(),
        }
    }
}

/// Hits, misses and evictions of the in-memory cache, and what it holds now (the `/metrics`
/// series `euphrosyne_compile_cache_*`).
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Runs that found their component compiled.
    pub hits: Counter,
    /// Runs that compiled it (or loaded it from disk).
    pub misses: Counter,
    /// Components dropped to stay within the bound.
    pub evictions: Counter,
    /// Components kept now.
    pub entries: Gauge,
}
