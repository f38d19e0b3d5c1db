//! `[kube]`: where the recipes' ConfigMaps and Jobs live, the sandbox image, the recipe
//! ServiceAccounts, and the policy over recipes' Kubernetes grants; and the names Jobs use.

use serde::{Deserialize, Serialize};

use crate::capability::kube::{ByGrant, RecipeAccounts};
use crate::manifest::KubePolicy;

/// Label carrying the run id on Jobs and pods.
pub const RUN_LABEL: &str = "euphrosyne.io/run";
/// Where a Job mounts the recipe's ConfigMap.
pub const RECIPE_MOUNT: &str = "/var/run/euphrosyne/recipe";
/// Where a Job mounts the recipe's granted Secrets (one file per secret name).
pub const SECRETS_MOUNT: &str = "/var/run/euphrosyne/secrets";

/// `[kube]` in the host's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubeConfig {
    /// Namespace of the recipe ConfigMaps and their Jobs; empty = the host's own namespace (read
    /// from its ServiceAccount in a pod), or `default`.
    pub namespace: String,
    /// The sandbox image: the host's own (`EUPHROSYNE_IMAGE` overrides).
    pub image: String,
    /// The sandbox container's `imagePullPolicy`: `IfNotPresent` (default), `Always`, or `Never`
    /// for an image loaded onto the nodes without a registry (`scripts/build-image`).
    pub image_pull_policy: PullPolicy,
    /// Secret (in the recipe namespace) whose key `url` is the Redis URL the Jobs publish to.
    pub redis_secret: String,
    /// ServiceAccount for recipes granted only reading verbs.
    pub reader_service_account: String,
    /// ServiceAccount for recipes granted patch/create/delete.
    pub writer_service_account: String,
    /// Recipes that run in the host's own engine instead of a Job.
    pub in_process: Vec<String>,
    /// Seconds a finished Job is kept (then the TTL controller deletes it and its pod).
    pub ttl_seconds_after_finished: i32,
    /// Seconds a Job may take to be scheduled and started, added to the recipe's timeout for
    /// `activeDeadlineSeconds`.
    pub start_slack_seconds: i64,
    /// MiB added to the recipe's memory limit for the sandbox process itself (the Job's memory
    /// request and limit are the sum). Default 64: the process peaks at 23–26 MiB resident with
    /// the host's precompiled code, 38 MiB when it compiles (BENCHMARKS.md, `scripts/bench-kube`).
    pub process_overhead_mib: u64,
    /// The sandbox container's CPU request, millicores: what the scheduler reserves for it.
    /// Default 10: a run uses ~30 ms of CPU (~230 ms when it compiles) in a pod that lives about
    /// a second; a larger request only keeps pods of a fan-out waiting for room on the node.
    pub cpu_request_millicores: u32,
    /// The sandbox container's CPU limit, millicores.
    pub cpu_limit_millicores: u32,
    /// Runs outside a Job (in this process, or a sandbox subprocess) impersonate the recipe
    /// ServiceAccounts above, so the API server bounds them as it bounds their Jobs. The host's
    /// ServiceAccount needs `impersonate` on those two ServiceAccounts (manifests/rbac.yaml).
    /// `false` lets them use the host's own identity: only for a cluster without RBAC.
    pub impersonate: bool,
    /// Recipes allowed `scope = "cluster"` in `capabilities.kubernetes`.
    pub cluster_scope: Vec<String>,
    /// Sensitive grants (`resource:verb`: `secrets:get`, `pods:create`, `jobs:create`, RBAC
    /// kinds …) the host allows to every recipe, or `recipe:resource:verb` to one; any other is
    /// refused. Default: the bundled `rerun-job:jobs:create`.
    pub allow_sensitive: Vec<String>,
}

impl KubeConfig {
    /// The recipe ServiceAccounts: their Jobs run as them, other runs impersonate them.
    pub fn recipe_accounts(&self) -> RecipeAccounts {
        RecipeAccounts {
            namespace: self.namespace.clone(),
            names: ByGrant {
                reader: self.reader_service_account.clone(),
                writer: self.writer_service_account.clone(),
            },
        }
    }

    /// The policy over recipes' Kubernetes grants.
    pub fn policy(&self) -> KubePolicy {
        KubePolicy {
            cluster_scope: self.cluster_scope.clone(),
            allow_sensitive: self.allow_sensitive.clone(),
        }
    }
}

impl Default for KubeConfig {
    fn default() -> Self {
        KubeConfig {
            namespace: String::new(),
            image: "euphrosyne:latest".into(),
            image_pull_policy: PullPolicy::IfNotPresent,
            redis_secret: "euphrosyne-redis".into(),
            reader_service_account: "euphrosyne-recipe-reader".into(),
            writer_service_account: "euphrosyne-recipe-writer".into(),
            in_process: vec![],
            ttl_seconds_after_finished: 600,
            start_slack_seconds: 30,
            process_overhead_mib: 64,
            cpu_request_millicores: 10,
            cpu_limit_millicores: 1000,
            impersonate: true,
            cluster_scope: KubePolicy::default().cluster_scope,
            allow_sensitive: KubePolicy::default().allow_sensitive,
        }
    }
}

/// A container's `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PullPolicy {
    /// Pull when the node does not have the image.
    IfNotPresent,
    /// Pull on every start.
    Always,
    /// Never pull: the image must already be on the node (`ErrImageNeverPull` otherwise).
    Never,
}

impl PullPolicy {
    /// As Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Always => "Always",
            PullPolicy::Never => "Never",
        }
    }
}
