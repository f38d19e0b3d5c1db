//! # Euphrosyne — an incident reconciler that runs WebAssembly recipes
//!
//! The host library. Its modules read as the flow of an alert:
//!
//! - [`api`]: the route table, its access guard and the handlers (`/webhook`, `/api/*`, `/metrics`);
//! - [`reconciler`]: intake → book → trigger → analysis → approval → actions, with recovery and
//!   the journal beside them — each stage's state owned by one type (see its module docs);
//! - [`alert`], [`model`], [`incident`]: Alertmanager / generic payloads, the data that crosses the
//!   recipe boundary, and an incident's record and event log;
//! - [`catalog`], [`recipe`], [`pack`], [`registry`]: the recipes this host runs, as packed
//!   ConfigMaps (files or cluster objects);
//! - [`manifest`], [`matcher`], [`digest`]: what a recipe declares, which alerts select it, and
//!   the sha256 it is pinned to;
//! - [`executor`], [`sandbox`], [`capability`]: runs in process, as `euphrosyne sandbox`
//!   subprocesses or Kubernetes Jobs ([`kube_jobs`]); verify → compile (cached) → instantiate →
//!   call under limits, each host interface with its one grant check; results back through the
//!   Redis [`bus`];
//! - [`notify`], [`chat`]: analyses and outcomes to the log, Webex, Slack and webhooks;
//! - [`store`], [`lease`]: incidents kept in memory or Redis, and several replicas on one Redis
//!   (a fenced leader lease);
//! - leaves every layer may read: [`access`], [`bounded`], [`config`], [`metrics`].
//!
//! The `euphrosyne` binary (`serve`, `sandbox`, `recipe …`) is a thin layer over these.

pub mod access;
pub mod alert;
pub mod api;
pub mod artifacts;
pub mod bounded;
pub mod bus;
pub mod capability;
pub mod catalog;
pub mod chat;
pub mod config;
pub mod digest;
pub mod executor;
pub mod incident;
pub mod kube_jobs;
pub mod lease;
pub mod manifest;
pub mod matcher;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod pack;
pub mod recipe;
pub mod reconciler;
pub mod registry;
pub mod sandbox;
pub mod store;

/// Every allocation of the process carries a header naming the run it is charged to, so a
/// recipe's host-side memory counts against its `memory_mib` (see `sandbox::meter`).
#[global_allocator]
static ALLOCATOR: sandbox::MeteredAlloc = sandbox::MeteredAlloc;

/// The WIT package version this host speaks (`euphrosyne:recipe@0.2.0`); it also runs
/// components built against [`WIT_VERSIONS`]' older entries unchanged.
pub const WIT_VERSION: &str = "0.2.0";

/// Every WIT package version this host links, newest first.
pub const WIT_VERSIONS: &[&str] = &["0.2.0", "0.1.0"];

/// Errors of the host library. Each message says what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A manifest is not valid.
    #[error("manifest {path}: {message}")]
    Manifest { path: String, message: String },
    /// A digest string is not `sha256:<64 hex>`.
    #[error("invalid digest `{0}`: expected `sha256:` followed by 64 hex digits")]
    Digest(String),
    /// A label matcher does not parse.
    #[error("invalid matcher `{matcher}`: {reason}")]
    Matcher { matcher: String, reason: String },
    /// An alert payload is not valid.
    #[error("invalid alert: {0}")]
    Alert(String),
    /// A packed recipe (ConfigMap) is not valid.
    #[error("recipe {name}: {message}")]
    Recipe { name: String, message: String },
    /// The sandbox could not be set up (engine, cache directory).
    #[error("sandbox: {0}")]
    Sandbox(String),
    /// I/O with the path it concerned.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// An I/O error about `path`.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
