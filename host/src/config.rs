//! `euphrosyne serve` configuration: a TOML file (see `examples/euphrosyne.toml`), overridden by
//! `EUPHROSYNE_*` environment variables and command-line flags. Secrets (tokens, passwords) are
//! never written in the file itself: each is read from an environment variable or a file, named
//! by `*_env` / `*_file`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::Error;
pub use crate::access::{Role, SecretRef};
use crate::matcher::Matchers;
use crate::reconciler::Settings;
pub use crate::reconciler::trigger::TriggerPolicy;

/// An API token entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it (shown in the event log; never the token).
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Where the token is.
    pub token: SecretRef,
}

/// How Alertmanager authenticates to `/webhook` (what its `http_config` can send).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookAuthConfig {
    /// `Authorization: Bearer …` (Alertmanager `http_config.authorization.credentials`).
    #[serde(default)]
    pub bearer: Option<SecretRef>,
    /// Basic auth user (Alertmanager `http_config.basic_auth`).
    #[serde(default)]
    pub basic_username: Option<String>,
    /// Basic auth password.
    #[serde(default)]
    pub basic_password: Option<SecretRef>,
}

/// A route: alerts whose group labels match get this trigger policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Alertmanager matchers on the group's common labels.
    pub matchers: Vec<String>,
    /// The policy.
    #[serde(flatten)]
    pub policy: TriggerPolicy,
}

/// Everything `serve` needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Listen address.
    pub listen: String,
    /// Directory of packed recipes (ConfigMap YAML), for the embedded registry.
    pub recipes: PathBuf,
    /// On-disk compile cache (mode 0700, this process only). Empty: memory only.
    pub cache_dir: Option<PathBuf>,
    /// Compiled components kept in memory for in-process runs (least recently used out first).
    pub compile_cache_entries: usize,
    /// Directory of secret files for recipes (one file per secret).
    pub secrets_dir: Option<PathBuf>,
    /// Kubeconfig for the recipes' kubernetes capability (in-process runs).
    pub kubeconfig: Option<PathBuf>,
    /// Host directories under which manifests may grant read-only dirs.
    pub dir_roots: Vec<PathBuf>,
    /// Largest accepted webhook/API body, bytes.
    pub max_body_bytes: usize,
    /// Alert batches waiting for the reconciler; when full, `/webhook` answers 503.
    pub queue_capacity: usize,
    /// Recipe runs at once, across incidents.
    pub max_concurrent_runs: usize,
    /// An analysis is complete when every debugger reported or this passes (late runs: timed-out).
    pub incident_deadline_ms: u64,
    /// On shutdown, let runs finish for up to this long.
    pub shutdown_grace_ms: u64,
    /// Labels that group generic alerts into incidents (Alertmanager's own groupKey wins).
    pub group_by: Vec<String>,
    /// Default trigger policy.
    pub trigger: TriggerPolicy,
    /// Per-route trigger policies, first match wins.
    pub routes: Vec<RouteConfig>,
    /// At most this many runs of the same action on the same target per window…
    pub breaker_max: u32,
    /// …of this many milliseconds.
    pub breaker_window_ms: u64,
    /// Incidents kept in memory (oldest resolved/analysed dropped first).
    pub max_incidents: usize,
    /// Alert notifications remembered for deduplication.
    pub dedup_capacity: usize,
    /// API tokens.
    pub tokens: Vec<TokenConfig>,
    /// Webhook authentication; none configured means `/webhook` is open (bind to loopback!).
    pub webhook_auth: WebhookAuthConfig,
    /// Webex approvals.
    pub webex: Option<crate::chat::webex::WebexConfig>,
    /// Slack approvals.
    pub slack: Option<crate::chat::slack::SlackConfig>,
    /// Plain webhook notifiers.
    pub notify_webhooks: Vec<crate::chat::webhook::WebhookConfig>,
    /// Message templates.
    pub templates: crate::chat::Templates,
    /// Prefix of every Redis key (with `--redis`).
    pub redis_prefix: String,
    /// How long incidents and actions are kept in Redis after their last write.
    pub incident_retention_ms: u64,
    /// Several replicas on one Redis: how long the leader lease lasts unless renewed (renewed at a
    /// third of it). A dead leader is replaced after at most this long.
    pub leader_lease_ms: u64,
    /// Where runs execute: `auto` (in-process without Redis, sandbox subprocesses with it),
    /// `in-process`, `subprocess`, or `kube` (a Job per run; needs Redis and a cluster).
    pub executor: ExecutorKind,
    /// The Kubernetes executor and recipe registry (`executor = "kube"`).
    pub kube: crate::kube_jobs::KubeConfig,
    /// The incident console (web pages): sessions, trusted proxy, paging.
    pub console: crate::api::console::settings::ConsoleConfig,
}

/// Where runs execute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecutorKind {
    /// In-process without Redis, subprocesses with it.
    #[default]
    Auto,
    /// The host's own wasmtime engine.
    InProcess,
    /// `euphrosyne sandbox` processes publishing through Redis.
    Subprocess,
    /// A Kubernetes Job per run; recipes from ConfigMaps.
    Kube,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: "127.0.0.1:8080".into(),
            recipes: PathBuf::from("build/recipes"),
            cache_dir: None,
            compile_cache_entries: 128,
            secrets_dir: None,
            kubeconfig: None,
            dir_roots: vec![],
            max_body_bytes: 1 << 20,
            queue_capacity: 10_000,
            max_concurrent_runs: 64,
            incident_deadline_ms: 60_000,
            shutdown_grace_ms: 30_000,
            group_by: vec!["alertname".into()],
            trigger: TriggerPolicy::default(),
            routes: vec![],
            breaker_max: 3,
            breaker_window_ms: 3_600_000,
            max_incidents: 10_000,
            dedup_capacity: 200_000,
            tokens: vec![],
            webhook_auth: WebhookAuthConfig::default(),
            webex: None,
            slack: None,
            notify_webhooks: vec![],
            templates: Default::default(),
            redis_prefix: "euphrosyne".into(),
            incident_retention_ms: 7 * 24 * 3_600_000,
            leader_lease_ms: 10_000,
            executor: ExecutorKind::Auto,
            kube: Default::default(),
            console: Default::default(),
        }
    }
}

impl ServeConfig {
    /// Read a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg: ServeConfig = toml::from_str(&text).map_err(|e| Error::Manifest {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Check what can be checked before starting.
    pub fn validate(&self) -> Result<(), Error> {
        let err = |m: String| Error::Manifest {
            path: "config".into(),
            message: m,
        };
        for r in &self.routes {
            Matchers::parse(&r.matchers)?;
        }
        if self.queue_capacity == 0 || self.max_concurrent_runs == 0 || self.compile_cache_entries == 0 {
            return Err(err(
                "queue_capacity, max_concurrent_runs and compile_cache_entries must be at least 1".into(),
            ));
        }
        let kube = &self.kube;
        if kube.cpu_request_millicores == 0 || kube.cpu_request_millicores > kube.cpu_limit_millicores {
            return Err(err(format!(
                "[kube] cpu_request_millicores = {} must be at least 1 and at most cpu_limit_millicores = {}",
                kube.cpu_request_millicores, kube.cpu_limit_millicores
            )));
        }
        self.console.check().map_err(err)?;
        if self.leader_lease_ms < 300 {
            return Err(err(format!(
                "leader_lease_ms = {} is too short to renew reliably; use at least 300 (default 10000)",
                self.leader_lease_ms
            )));
        }
        Ok(())
    }

    /// What the reconciler needs of this configuration, the routes' matchers parsed once.
    pub fn reconciler_settings(&self) -> Result<Settings, Error> {
        let routes = self
            .routes
            .iter()
            .map(|r| Matchers::parse(&r.matchers).map(|m| (m, r.policy)))
            .collect::<Result<_, _>>()?;
        Ok(Settings {
            queue_capacity: self.queue_capacity,
            dedup_capacity: self.dedup_capacity,
            group_by: self.group_by.clone(),
            max_incidents: self.max_incidents,
            incident_deadline: self.incident_deadline(),
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
            breaker_max: self.breaker_max,
            breaker_window: Duration::from_millis(self.breaker_window_ms),
            trigger: self.trigger,
            routes,
        })
    }

    /// Incident deadline.
    pub fn incident_deadline(&self) -> Duration {
        Duration::from_millis(self.incident_deadline_ms)
    }
}

#[cfg(test)]
mod tests {
    /// The example configuration in the repository parses and validates.
    #[test]
    fn the_example_config_is_valid() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/euphrosyne.toml");
        let cfg = crate::config::ServeConfig::from_file(&path).unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:8080");
        assert_eq!(cfg.routes.len(), 1);
        let settings = cfg.reconciler_settings().unwrap();
        let trigger = crate::reconciler::trigger::Trigger::new(settings.trigger, settings.routes, 10);
        let info = [("severity".to_string(), "info".to_string())].into();
        assert_eq!(trigger.policy_for(&info).min_occurrences, 3);
        assert_eq!(trigger.policy_for(&Default::default()).min_occurrences, 1);
        assert_eq!(cfg.tokens[0].role, crate::config::Role::Approver);
    }

    /// A sandbox Job's CPU request must be at least 1m and fit under its limit.
    #[test]
    fn a_cpu_request_over_the_limit_is_refused() {
        let mut cfg = crate::config::ServeConfig::default();
        cfg.validate().unwrap();
        cfg.kube.cpu_request_millicores = 2000;
        let e = cfg.validate().unwrap_err().to_string();
        assert!(
            e.contains("cpu_request_millicores = 2000") && e.contains("cpu_limit_millicores = 1000"),
            "{e}"
        );
        cfg.kube.cpu_request_millicores = 0;
        assert!(cfg.validate().is_err());
    }
}
