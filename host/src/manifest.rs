//! The recipe manifest (`recipe.toml`): what a recipe is, which alerts or actions it handles,
//! what it may touch, and its limits.
//!
//! ```toml
//! name = "pod-crashloop"
//! kind = "debug"                      # or "action"
//! version = "0.1.0"
//! digest = "sha256:…"                 # written by `euphrosyne recipe build`
//! matchers = ['alertname=~"KubePodCrashLooping|KubePodNotReady"']   # debug recipes
//! # actions = ["restart-workload"]   # action recipes: the action names they implement
//!
//! [capabilities]                      # everything absent is denied
//! kubernetes = { pods = ["get", "list", "logs"], events = ["list"] }   # verbs per resource;
//! #   get, list, logs (pods), patch, create, delete; scope = "cluster" for cluster-wide access
//! http = ["jira.example.com", "*.svc.cluster.local:8080", "127.0.0.1:9000"]
//! secrets = ["jira-token"]
//! dirs = [{ host = "/var/lib/runbooks", guest = "/runbooks" }]   # read-only; host must allow the root
//!
//! [limits]                            # defaults shown
//! timeout_ms = 10000
//! memory_mib = 64
//! output_bytes = 65536
//!
//! [config]                            # free-form strings, readable through the config interface
//! log_tail_lines = "20"
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::capability::http::HostPattern;
use crate::digest::Digest;
use crate::matcher::Matchers;

/// What a recipe does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A debugger: `debug(incident) -> analysis`.
    Debug,
    /// An actor: `act(action-request) -> outcome`.
    Action,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Debug => "debug",
            Kind::Action => "action",
        })
    }
}

pub use crate::capability::kube_grants::{KubeGrants, KubePolicy, KubeVerb, Scope};

/// A directory shared read-only into the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DirGrant {
    /// The directory on the host.
    #[schema(value_type = String)]
    pub host: PathBuf,
    /// Where the recipe sees it.
    pub guest: String,
}

/// What a recipe may touch. Everything not listed is denied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Hosts reachable through `wasi:http`: `host`, `host:port`, `*.domain`, or an IP.
    #[serde(default)]
    pub http: Vec<String>,
    /// Secret names readable through the secrets interface.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Kubernetes verbs per resource, and their scope.
    #[serde(default, skip_serializing_if = "KubeGrants::is_default")]
    #[schema(value_type = Object, example = json!({"pods": ["get", "list"], "scope": "namespace"}))]
    pub kubernetes: KubeGrants,
    /// Read-only directories.
    #[serde(default)]
    pub dirs: Vec<DirGrant>,
}

/// Resource limits. Every run gets them; the manifest may tighten or widen them up to the host's
/// ceilings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Wall-clock budget of one call, in milliseconds.
    pub timeout_ms: u64,
    /// The run's memory budget in MiB: all linear memories and tables plus the host memory the
    /// run makes the host hold (header fields, bodies, logs, responses).
    pub memory_mib: u64,
    /// Bytes of stdout, stderr and logs kept (each); also the cap on the result's size.
    pub output_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout_ms: 10_000,
            memory_mib: 64,
            output_bytes: 64 * 1024,
        }
    }
}

impl Limits {
    /// The host's ceilings: a manifest asking for more is refused at load time.
    pub const MAX: Limits = Limits {
        timeout_ms: 300_000,
        memory_mib: 1024,
        output_bytes: 4 * 1024 * 1024,
    };
}

/// A parsed, validated manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// DNS-1123 label: lowercase letters, digits, `-`; at most 63 characters.
    pub name: String,
    /// Debug or action.
    pub kind: Kind,
    /// The recipe's own version.
    pub version: String,
    /// One line for humans.
    #[serde(default)]
    pub description: String,
    /// The sha256 of the component. Empty until `recipe build` writes it.
    #[serde(default, with = "opt_digest")]
    pub digest: Option<Digest>,
    /// Debuggers: Alertmanager matchers that select the alerts they handle (all must hold).
    #[serde(default)]
    pub matchers: Vec<String>,
    /// Actors: the action names they implement.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Debuggers: the action names they may suggest. The registry reports every one no
    /// installed actor implements, and an analysis marks such a suggestion "no actor installed".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suggests: Vec<String>,
    /// Grants.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// Free-form configuration.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

mod opt_digest {
    use super::Digest;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Digest>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.collect_str(d),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Digest>, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            Ok(None)
        } else {
            s.parse().map(Some).map_err(serde::de::Error::custom)
        }
    }
}

/// Is `name` a DNS-1123 label (what Kubernetes accepts as a ConfigMap or label value)?
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

impl Manifest {
    /// Parse and validate TOML text; `origin` names the file or ConfigMap in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, Error> {
        let m: Manifest = toml::from_str(text).map_err(|e| Error::Manifest {
            path: origin.into(),
            message: e.to_string(),
        })?;
        m.validate().map_err(|message| Error::Manifest {
            path: origin.into(),
            message,
        })?;
        Ok(m)
    }

    /// The manifest as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// The parsed matchers (validated at load, so this does not fail for a loaded manifest).
    pub fn parsed_matchers(&self) -> Matchers {
        Matchers::parse(&self.matchers).unwrap_or_default()
    }

    fn validate(&self) -> Result<(), String> {
        if !is_dns_label(&self.name) {
            return Err(format!(
                "name `{}` must be a DNS-1123 label (lowercase letters, digits and `-`, at most 63)",
                self.name
            ));
        }
        match self.kind {
            Kind::Debug if self.matchers.is_empty() => {
                return Err("a debug recipe needs `matchers` that select the alerts it handles".into());
            }
            Kind::Debug if !self.actions.is_empty() => {
                return Err("`actions` is for action recipes; a debug recipe suggests actions in its analysis".into());
            }
            Kind::Action if self.actions.is_empty() => {
                return Err("an action recipe needs `actions`: the action names it implements".into());
            }
            Kind::Action if !self.matchers.is_empty() => {
                return Err("`matchers` is for debug recipes; action recipes run only when approved".into());
            }
            Kind::Action if !self.suggests.is_empty() => {
                return Err("`suggests` is for debug recipes: the actions their analyses may suggest".into());
            }
            _ => {}
        }
        Matchers::parse(&self.matchers).map_err(|e| e.to_string())?;
        for a in self.actions.iter().chain(&self.suggests) {
            if !is_dns_label(a) {
                return Err(format!("action name `{a}` must be a DNS-1123 label"));
            }
        }
        for h in &self.capabilities.http {
            HostPattern::parse(h).map_err(|e| format!("capabilities.http: {e}"))?;
        }
        self.capabilities.kubernetes.validate()?;
        for d in &self.capabilities.dirs {
            if !d.host.is_absolute() || !d.guest.starts_with('/') {
                return Err(format!(
                    "capabilities.dirs: `{}` → `{}`: both paths must be absolute",
                    d.host.display(),
                    d.guest
                ));
            }
        }
        let (l, max) = (self.limits, Limits::MAX);
        if l.timeout_ms == 0 || l.timeout_ms > max.timeout_ms {
            return Err(format!("limits.timeout_ms must be 1..={}", max.timeout_ms));
        }
        if l.memory_mib == 0 || l.memory_mib > max.memory_mib {
            return Err(format!("limits.memory_mib must be 1..={}", max.memory_mib));
        }
        if l.output_bytes == 0 || l.output_bytes > max.output_bytes {
            return Err(format!("limits.output_bytes must be 1..={}", max.output_bytes));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str = r#"
name = "pod-crashloop"
kind = "debug"
version = "0.1.0"
digest = ""
matchers = ['alertname=~"KubePodCrashLooping|KubePodNotReady"']
[capabilities.kubernetes]
pods = ["get", "list", "logs"]
events = ["list"]
[limits]
timeout_ms = 5000
"#;

    #[test]
    fn parses_with_defaults() {
        let m = Manifest::from_toml(POD, "recipe.toml").unwrap();
        assert_eq!(m.kind, Kind::Debug);
        assert_eq!(m.digest, None);
        assert_eq!(
            m.limits,
            Limits {
                timeout_ms: 5000,
                ..Limits::default()
            }
        );
        assert!(m.capabilities.kubernetes.allows("pods", KubeVerb::Logs));
        assert!(m.capabilities.kubernetes.allows("events", KubeVerb::List));
        let back = Manifest::from_toml(&m.to_toml(), "round trip").unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn rejects_what_would_surprise() {
        let cases = [
            (POD.replace("pod-crashloop", "Pod_Crash"), "DNS-1123"),
            (POD.replace("kind = \"debug\"", "kind = \"action\""), "needs `actions`"),
            (POD.replace("KubePodNotReady\"", "(\""), "bad regex"),
            (POD.replace("\"logs\"]", "\"logs\", \"exec\"]"), "unknown variant"),
            (
                POD.replace("events = [\"list\"]", "events = [\"logs\"]"),
                "verb of `pods`",
            ),
            (POD.replace("timeout_ms = 5000", "timeout_ms = 0"), "timeout_ms"),
            (POD.replace("digest = \"\"", "digest = \"sha256:12\""), "invalid digest"),
            (format!("{POD}\nsurprise = 1"), "unknown field"),
        ];
        for (text, expected) in cases {
            let err = Manifest::from_toml(&text, "m").unwrap_err().to_string();
            assert!(err.contains(expected), "{err} should mention {expected}");
        }
    }
}
