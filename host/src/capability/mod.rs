//! The host interfaces a recipe may be granted, one module each, each with its one grant check:
//!
//! | module        | WIT import                      | granted by                      |
//! |---------------|---------------------------------|---------------------------------|
//! | [`log`]       | `euphrosyne:recipe/log`         | always (bounded)                |
//! | config        | `euphrosyne:recipe/config`      | always (the manifest's table)   |
//! | [`secrets`]   | `euphrosyne:recipe/secrets`     | `capabilities.secrets`          |
//! | [`kube`]      | `euphrosyne:recipe/kubernetes`  | `capabilities.kubernetes`: verbs per resource, in the incident's namespaces ([`kube_grants`]) |
//! | [`http`]      | `wasi:http/outgoing-handler`    | `capabilities.http` hosts       |
//!
//! Every refusal is recorded in the run's [`Denials`] and ends the run as `denied`.

pub mod http;
pub mod kube;
pub mod kube_grants;
pub mod log;
pub mod secrets;

use std::sync::Arc;

use parking_lot::Mutex;

/// The denials of one run, shared between its capabilities.
///
/// Bounded like everything a recipe can make the host keep: at most [`Denials::KEPT`] are kept,
/// each cut to [`Denials::MAX_BYTES`]; the rest are counted. The first few are mirrored to the
/// host's log as escaped fields (`?`), never raw, so a guest-chosen string cannot forge a log
/// line or send terminal escapes.
#[derive(Debug, Clone, Default)]
pub struct Denials(Arc<Mutex<DenialList>>);

#[derive(Debug, Default)]
struct DenialList {
    kept: Vec<String>,
    dropped: u64,
}

impl Denials {
    /// Denials kept per run.
    pub const KEPT: usize = 20;
    /// Bytes kept of each denial.
    pub const MAX_BYTES: usize = 512;
    /// Denials mirrored to the host's log per run.
    const LOGGED: usize = 5;

    /// Record a denial.
    pub fn record(&self, what: impl Into<String>) {
        let what = truncate(what.into(), Self::MAX_BYTES);
        let mut list = self.0.lock();
        if list.kept.len() < Self::LOGGED {
            tracing::warn!(denial = ?what, "sandbox denied a recipe request");
        }
        if list.kept.len() < Self::KEPT {
            list.kept.push(what);
        } else {
            list.dropped += 1;
        }
    }

    /// The denials kept, and a last line counting the ones dropped.
    pub fn list(&self) -> Vec<String> {
        let list = self.0.lock();
        let mut v = list.kept.clone();
        if list.dropped > 0 {
            v.push(format!("… and {} more denials", list.dropped));
        }
        v
    }
}

/// The first host-side limit a run hit (connections, resources), shared between its
/// capabilities and read when the run is classified: the run ends `limit-exceeded` with this.
#[derive(Debug, Clone, Default)]
pub struct LimitHit(Arc<Mutex<Option<String>>>);

impl LimitHit {
    /// Record `what` unless a limit was recorded already.
    pub fn set(&self, what: String) {
        let mut slot = self.0.lock();
        if slot.is_none() {
            *slot = Some(what);
        }
    }

    /// The limit hit, if any.
    pub fn get(&self) -> Option<String> {
        self.0.lock().clone()
    }
}

/// `s` cut to at most `max` bytes on a character boundary, with `…` when cut.
pub fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max.saturating_sub('…'.len_utf8());
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}
