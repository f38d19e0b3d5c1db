//! What a run is and what it returns: the job (bytes pinned to a digest, grants, limits, input),
//! the result (status, analysis or outcome, logs, denials, timings) and the status vocabulary.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::capability::kube::WriteMode;
use crate::capability::log::LogLine;
use crate::digest::Digest;
use crate::manifest::{Capabilities, Kind, Limits};
use crate::model::{ActionRequest, Analysis, Incident, Outcome, Write};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// The recipe returned an analysis or outcome.
    Ok,
    /// The recipe returned its own error.
    RecipeError,
    /// The recipe trapped (panic, unreachable, bad memory access).
    Trapped,
    /// The wall-clock budget ran out.
    TimedOut,
    /// Memory, table, stack, output or result size over its limit.
    LimitExceeded,
    /// The recipe imported or asked for something its manifest does not grant.
    Denied,
    /// The bytes are not the ones pinned for this run.
    DigestMismatch,
    /// Built against a WIT version this host does not speak.
    Incompatible,
    /// Not a valid component, or not the right world.
    InvalidModule,
}

impl RunStatus {
    /// The kebab-case name used in results, metrics and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::RecipeError => "recipe-error",
            RunStatus::Trapped => "trapped",
            RunStatus::TimedOut => "timed-out",
            RunStatus::LimitExceeded => "limit-exceeded",
            RunStatus::Denied => "denied",
            RunStatus::DigestMismatch => "digest-mismatch",
            RunStatus::Incompatible => "incompatible",
            RunStatus::InvalidModule => "invalid-module",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a run is asked to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "input")]
pub enum RunInput {
    /// Call `debug(incident)`.
    Debug(Incident),
    /// Call `act(request)`.
    Action(ActionRequest),
}

impl RunInput {
    /// The incident the run is about.
    pub fn incident(&self) -> &Incident {
        match self {
            RunInput::Debug(i) => i,
            RunInput::Action(a) => &a.incident,
        }
    }

    /// How the run's Kubernetes writes go: a preview's are dry runs; an approved action's are
    /// pinned to its preview's `resourceVersion`s.
    pub fn write_mode(&self) -> WriteMode {
        match self {
            RunInput::Debug(_) => WriteMode::default(),
            RunInput::Action(a) => WriteMode {
                dry_run: a.dry_run,
                preconditions: a.preconditions.clone(),
            },
        }
    }

    /// The recipe kind this input needs.
    pub fn kind(&self) -> Kind {
        match self {
            RunInput::Debug(_) => Kind::Debug,
            RunInput::Action(_) => Kind::Action,
        }
    }
}

/// One run: which bytes, pinned to which digest, with which grants and limits, on which input.
#[derive(Debug, Clone)]
pub struct RunJob {
    /// Run id (for logs and the result).
    pub run_id: String,
    /// Recipe name.
    pub recipe: String,
    /// The digest pinned at fan-out.
    pub digest: Digest,
    /// The component bytes as loaded (verified here, not before).
    pub bytes: Arc<[u8]>,
    /// Grants.
    pub capabilities: Capabilities,
    /// Limits.
    pub limits: Limits,
    /// The manifest's config table.
    pub config: std::collections::BTreeMap<String, String>,
    /// Input.
    pub input: RunInput,
}

/// Microseconds spent in each step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Timings {
    /// sha256 of the bytes.
    pub verify_us: u64,
    /// Compile, or cache lookup.
    pub compile_us: u64,
    /// Store + instance.
    pub instantiate_us: u64,
    /// The call.
    pub run_us: u64,
    /// In a sandbox process (`euphrosyne sandbox`: a subprocess or a Job): when it started, unix
    /// milliseconds; 0 for a run in the host's own process.
    #[serde(default)]
    pub process_start_unix_ms: u64,
    /// In a sandbox process: from its start to the recipe's call — the runtime, reading the
    /// input from Redis, reading the recipe, the engine, then verify, compile and instantiate
    /// above; 0 for a run in the host's own process.
    #[serde(default)]
    pub startup_us: u64,
    /// In a sandbox process: the CPU time it used (user + system, all threads) up to publishing
    /// its result; 0 for a run in the host's own process.
    #[serde(default)]
    pub process_cpu_us: u64,
    /// In a sandbox process: its peak resident memory up to publishing its result, KiB (what the
    /// Job's memory limit must hold: `[kube] process_overhead_mib` beside the recipe's own
    /// `memory_mib`); 0 for a run in the host's own process.
    #[serde(default)]
    pub process_peak_rss_kib: u64,
}

/// Where the compiled component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CacheUse {
    /// Compiled for this run.
    Compiled,
    /// From the in-memory cache.
    Memory,
    /// From the on-disk cache.
    Disk,
    /// Precompiled by the host and shipped sealed through Redis (a sandbox process).
    Artifact,
    /// Never got that far.
    None,
}

/// The result of one run — what is recorded and published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunResult {
    /// Run id.
    pub run_id: String,
    /// Recipe name.
    pub recipe: String,
    /// The digest the run was pinned to.
    #[schema(value_type = String, example = "sha256:95f5df8528448c05efb0b9470339c022fd358a64a4bf8505fe83c463a21362f0")]
    pub digest: Digest,
    /// How it ended.
    pub status: RunStatus,
    /// What happened, for humans (empty when ok).
    pub message: String,
    /// A debugger's analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Analysis>,
    /// An actor's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Requests the sandbox refused.
    #[serde(default)]
    pub denials: Vec<String>,
    /// The Kubernetes writes the host made for the run, with the diffs it computed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writes: Vec<Write>,
    /// Captured stdout (bounded).
    #[serde(default)]
    pub stdout: String,
    /// Captured stderr (bounded).
    #[serde(default)]
    pub stderr: String,
    /// Lines logged through the log interface (bounded).
    #[serde(default)]
    pub logs: Vec<LogLine>,
    /// Step timings.
    pub timings: Timings,
    /// Where the compiled code came from.
    pub cache: CacheUse,
    /// Peak linear memory, bytes.
    pub memory_peak_bytes: u64,
}

impl RunResult {
    pub(super) fn new(job: &RunJob) -> Self {
        Self::blank(job.run_id.clone(), job.recipe.clone(), job.digest)
    }

    fn blank(run_id: String, recipe: String, digest: Digest) -> Self {
        RunResult {
            run_id,
            recipe,
            digest,
            status: RunStatus::Ok,
            message: String::new(),
            analysis: None,
            outcome: None,
            denials: vec![],
            writes: vec![],
            stdout: String::new(),
            stderr: String::new(),
            logs: vec![],
            timings: Timings::default(),
            cache: CacheUse::None,
            memory_peak_bytes: 0,
        }
    }

    pub(super) fn fail(mut self, status: RunStatus, message: impl Into<String>) -> Self {
        self.status = status;
        self.message = message.into();
        self
    }

    /// A result for a run that never reported (host deadline, lost Job), for executors.
    pub fn closed(job: &RunJob, status: RunStatus, message: impl Into<String>) -> Self {
        RunResult::new(job).fail(status, message)
    }

    /// A `timed-out` result for a run known only by its record (after a restart).
    pub fn lost(run_id: &str, recipe: &str, digest: &str, message: impl Into<String>) -> Self {
        let digest = digest.parse().unwrap_or_else(|_| Digest::of(&[]));
        Self::blank(run_id.into(), recipe.into(), digest).fail(RunStatus::TimedOut, message)
    }
}
