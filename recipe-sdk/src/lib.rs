//! # recipe-sdk — write Euphrosyne recipes in Rust
//!
//! A recipe is a WebAssembly component that Euphrosyne runs in its sandbox when an alert fires.
//! A **debugger** looks at an [`Incident`] and returns an [`Analysis`] (a verdict, findings and
//! suggested actions); an **actor** carries out one approved [`ActionRequest`] and returns an
//! [`Outcome`]. You write one function; this crate gives you the types, the export macro, helpers
//! for the host capabilities ([`kube`], [`http`], [`secrets`], [`config`], [`log`]), the
//! diagnosis the bundled debuggers share ([`objects`]: every object an incident's alerts name,
//! bounded, and grouping; [`pod`]: what is wrong with a pod; [`report`]: an analysis built up
//! object by object) and a native test harness
//! ([`testing`]) so `cargo test` runs your logic with canned responses.
//!
//! Depend on this crate alone and build with `cargo build --target wasm32-wasip2`; no
//! cargo-component needed. `euphrosyne recipe new NAME --kind debug` scaffolds a crate that does.
//!
//! ## A complete debugger
//!
//! ```
//! use recipe_sdk::prelude::*;
//!
//! /// Says which pod an alert is about and suggests restarting its workload.
//! pub struct WhichPod;
//!
//! impl Debugger for WhichPod {
//!     fn debug(incident: Incident) -> Result<Analysis, RecipeError> {
//!         let alert = incident.alerts.first().ok_or_else(|| RecipeError::new("no alerts"))?;
//!         let pod = alert.label("pod").ok_or_else(|| RecipeError::new("alert has no `pod` label"))?;
//!         let ns = alert.label("namespace").unwrap_or("default");
//!         let pod_json = kube::get("v1", "Pod", Some(ns), pod)?;
//!         let phase = pod_json["status"]["phase"].as_str().unwrap_or("Unknown");
//!         log::info(&format!("pod {ns}/{pod} is {phase}"));
//!         Ok(Analysis::identified(format!("pod {ns}/{pod} is {phase}"))
//!             .finding(Finding::warning("Pod phase", phase))
//!             .suggest(
//!                 "restart-workload",
//!                 serde_json::json!({ "namespace": ns, "kind": "Deployment", "name": "web" }),
//!                 "a restart clears the stuck state",
//!             ))
//!     }
//! }
//!
//! recipe_sdk::export_debugger!(WhichPod);
//!
//! // Native test: canned Kubernetes answers, no wasm involved.
//! let harness = recipe_sdk::testing::Harness::new()
//!     .kube_object("v1", "Pod", Some("shop"), "web-1", serde_json::json!({"status": {"phase": "Running"}}));
//! let incident = Incident::from_labels("inc-1", &[("alertname", "PodDown"), ("pod", "web-1"), ("namespace", "shop")]);
//! let analysis = harness.debug::<WhichPod>(incident).unwrap();
//! assert_eq!(analysis.verdict, Verdict::Identified);
//! assert_eq!(analysis.actions[0].action, "restart-workload");
//! ```

#![deny(missing_docs)]

extern crate self as recipe_sdk;

mod types;

pub mod config;
pub mod diff;
pub mod http;
pub mod kube;
pub mod log;
pub mod objects;
pub mod pod;
pub mod quantity;
pub mod report;
pub mod secrets;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
mod wire;

pub use types::*;

/// The WIT package version this SDK builds against. The host refuses other versions.
pub const WIT_VERSION: &str = "0.2.0";

/// Raw bindings generated from `wit/recipe.wit`. Prefer the friendly types and helpers.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub mod bindings {
    /// Imports and shared types.
    pub mod host {
        wit_bindgen::generate!({
            path: "../wit",
            world: "imports",
            runtime_path: "recipe_sdk::__rt::wit_bindgen::rt",
            generate_all,
        });
    }
    pub use host::euphrosyne::recipe::{config, kubernetes, log, secrets, types};

    /// The `debugger` world's export.
    pub mod debugger {
        wit_bindgen::generate!({
            path: "../wit",
            world: "debugger",
            runtime_path: "recipe_sdk::__rt::wit_bindgen::rt",
            with: {
                "euphrosyne:recipe/types@0.2.0": recipe_sdk::bindings::types,
                "euphrosyne:recipe/log@0.2.0": recipe_sdk::bindings::log,
                "euphrosyne:recipe/config@0.2.0": recipe_sdk::bindings::config,
                "euphrosyne:recipe/secrets@0.2.0": recipe_sdk::bindings::secrets,
                "euphrosyne:recipe/kubernetes@0.2.0": recipe_sdk::bindings::kubernetes,
            },
            export_macro_name: "__export_debugger_raw",
            pub_export_macro: true,
            default_bindings_module: "recipe_sdk::bindings::debugger",
            type_section_suffix: "debugger",
        });
    }

    /// The `actor` world's export.
    pub mod actor {
        wit_bindgen::generate!({
            path: "../wit",
            world: "actor",
            runtime_path: "recipe_sdk::__rt::wit_bindgen::rt",
            with: {
                "euphrosyne:recipe/types@0.2.0": recipe_sdk::bindings::types,
                "euphrosyne:recipe/log@0.2.0": recipe_sdk::bindings::log,
                "euphrosyne:recipe/config@0.2.0": recipe_sdk::bindings::config,
                "euphrosyne:recipe/secrets@0.2.0": recipe_sdk::bindings::secrets,
                "euphrosyne:recipe/kubernetes@0.2.0": recipe_sdk::bindings::kubernetes,
            },
            export_macro_name: "__export_actor_raw",
            pub_export_macro: true,
            default_bindings_module: "recipe_sdk::bindings::actor",
            type_section_suffix: "actor",
        });
    }
}

/// Paths the export macros expand to; not part of the API.
#[doc(hidden)]
pub mod __rt {
    pub use wit_bindgen;

    use crate::bindings::types as wit;

    /// Called by the `debug` export: converts, runs the author's function, converts back.
    pub fn run_debug<D: crate::Debugger>(incident: wit::Incident) -> Result<wit::Analysis, wit::RecipeError> {
        D::debug(incident.into()).map(Into::into).map_err(Into::into)
    }

    /// Called by the `act` export.
    pub fn run_act<A: crate::Actor>(request: wit::ActionRequest) -> Result<wit::Outcome, wit::RecipeError> {
        let request = crate::ActionRequest::try_from(request)?;
        A::act(request).map(Into::into).map_err(Into::into)
    }
}

/// A debugging recipe: look at an incident, return an analysis.
pub trait Debugger {
    /// Investigate `incident`. Return `Err` only when the recipe could not do its job; an
    /// investigation that found nothing is `Ok(Analysis::inconclusive(..))`.
    fn debug(incident: Incident) -> Result<Analysis, RecipeError>;
}

/// An action recipe: carry out one approved action.
pub trait Actor {
    /// Carry out `request`. A failed action is `Ok(Outcome::failure(..))` when the recipe knows
    /// why; `Err` when it could not even try.
    fn act(request: ActionRequest) -> Result<Outcome, RecipeError>;
}

/// Export a type implementing [`Debugger`] as this component's `debug` function.
#[macro_export]
macro_rules! export_debugger {
    ($ty:ty) => {
        const _: () = {
            struct __EuphrosyneDebugger;
            impl $crate::bindings::debugger::Guest for __EuphrosyneDebugger {
                fn debug(
                    incident: $crate::bindings::types::Incident,
                ) -> ::core::result::Result<$crate::bindings::types::Analysis, $crate::bindings::types::RecipeError>
                {
                    $crate::__rt::run_debug::<$ty>(incident)
                }
            }
            $crate::bindings::debugger::__export_debugger_raw!(__EuphrosyneDebugger);
        };
    };
}

/// Export a type implementing [`Actor`] as this component's `act` function.
#[macro_export]
macro_rules! export_actor {
    ($ty:ty) => {
        const _: () = {
            struct __EuphrosyneActor;
            impl $crate::bindings::actor::Guest for __EuphrosyneActor {
                fn act(
                    request: $crate::bindings::types::ActionRequest,
                ) -> ::core::result::Result<$crate::bindings::types::Outcome, $crate::bindings::types::RecipeError>
                {
                    $crate::__rt::run_act::<$ty>(request)
                }
            }
            $crate::bindings::actor::__export_actor_raw!(__EuphrosyneActor);
        };
    };
}

/// Everything a recipe usually needs: `use recipe_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::{
        ActionRequest, Actor, Alert, AlertStatus, Analysis, Change, Debugger, Finding, Incident, ObjectRef, Outcome,
        RecipeError, Severity, SuggestedAction, Verdict, config, http, kube, log, secrets,
    };
}

/// The current time as RFC 3339 UTC (`2026-11-24T08:41:41Z`), from the host's wall clock.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

/// Format seconds since the Unix epoch as RFC 3339 UTC.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn formats_rfc3339() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_509_701), "2026-11-24T08:41:41Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
