//! The host interfaces a recipe may be granted, one module each, each with its one grant check:
//!
//! | module        | WIT import                      | granted by                      |
//! |---------------|---------------------------------|---------------------------------|
//! | [`log`]       | `euphrosyne:recipe/log`         | always (bounded)                |
//! | config        | `euphrosyne:recipe/config`      | always (the manifest's table)   |
//! | [`secrets`]   | `euphrosyne:recipe/secrets`     | `capabilities.secrets`          |
//! | [`kube`]      | `euphrosyne:recipe/kubernetes`  | `capabilities.kubernetes` verbs |
//! | [`http`]      | `wasi:http/outgoing-handler`    | `capabilities.http` hosts       |
//!
//! Every refusal is recorded in the run's [`Denials`] and ends the run as `denied`.

pub mod http;
pub mod kube;
pub mod log;
pub mod secrets;

use std::sync::{Arc, Mutex};

/// The denials of one run, shared between its capabilities.
#[derive(Debug, Clone, Default)]
pub struct Denials(Arc<Mutex<Vec<String>>>);

impl Denials {
    /// Record a denial (at most 100 are kept; a recipe looping on denials cannot grow the result).
    pub fn record(&self, what: impl Into<String>) {
        let what = what.into();
        tracing::warn!(denial = %what, "sandbox denied a recipe request");
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() < 100 {
            v.push(what);
        }
    }

    /// The denials so far.
    pub fn list(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
