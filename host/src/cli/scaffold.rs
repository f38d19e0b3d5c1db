//! Templates for `euphrosyne recipe new`: a crate that builds, tests and runs as is.

use std::path::Path;

use euphrosyne::manifest::Kind;

/// The files of a new recipe crate, relative to its directory.
pub fn files(name: &str, kind: Kind, sdk: &Path) -> Vec<(&'static str, String)> {
    let ty: String = name
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    let cargo = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
recipe-sdk = {{ path = "{sdk}" }}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"

# A recipe is its own workspace, so it builds wherever it lives.
[workspace]

# `euphrosyne recipe build` builds with this profile: small, reproducible components that fit
# in a ConfigMap.
[profile.recipe]
inherits = "release"
opt-level = "s"
lto = true
codegen-units = 1
strip = true
debug = false
panic = "abort"
"#,
        sdk = sdk.display()
    );
    let (lib, manifest, alert) = match kind {
        Kind::Debug => (
            format!(
                r#"//! `{name}`: a debugging recipe. It receives the incident and returns an analysis.

use recipe_sdk::prelude::*;
use serde_json::json;

/// The recipe.
pub struct {ty};

impl Debugger for {ty} {{
    fn debug(incident: Incident) -> Result<Analysis, RecipeError> {{
        let alertname = incident.label("alertname").unwrap_or("unknown");
        let threshold = config::get_or("threshold", "none");
        log::info(&format!("looking at {{alertname}} (threshold {{threshold}})"));
        Ok(Analysis::identified(format!("{{alertname}} fired {{}} time(s)", incident.alerts.len()))
            .finding(Finding::info("Alert", alertname))
            .suggest("open-ticket", json!({{ "summary": format!("{{alertname}} needs a look") }}), "a human should check"))
    }}
}}

recipe_sdk::export_debugger!({ty});

#[cfg(test)]
mod tests {{
    use super::*;
    use recipe_sdk::testing::Harness;

    #[test]
    fn analyses_the_alert() {{
        let incident = Incident::from_labels("inc-1", &[("alertname", "DiskFull")]);
        let analysis = Harness::new().config("threshold", "90").debug::<{ty}>(incident).unwrap();
        assert_eq!(analysis.verdict, Verdict::Identified);
        assert_eq!(analysis.summary, "DiskFull fired 1 time(s)");
        assert_eq!(analysis.actions[0].action, "open-ticket");
    }}
}}
"#
            ),
            format!(
                r#"# Manifest of the `{name}` debugging recipe. `euphrosyne recipe build` writes `digest`.
name = "{name}"
kind = "debug"
version = "0.1.0"
description = "What this recipe finds out."
digest = ""
# Alertmanager matchers (all must hold) selecting the alerts this recipe handles.
matchers = ['alertname="DiskFull"']

[capabilities]
# http = ["status.example.com"]
# secrets = ["api-token"]
# Kubernetes: verbs per resource, in the incident's namespace only:
# kubernetes = {{ pods = ["get", "list", "logs"], events = ["list"] }}

[limits]
timeout_ms = 5000
memory_mib = 32
output_bytes = 65536

[config]
threshold = "90"
"#
            ),
            r#"{"labels": {"alertname": "DiskFull", "instance": "db-1"}, "annotations": {"summary": "disk 95% full"}}
"#
            .to_string(),
        ),
        Kind::Action => (
            format!(
                r#"//! `{name}`: an action recipe. It carries out one approved action and reports the outcome.

use recipe_sdk::prelude::*;
use serde::Deserialize;

/// The recipe.
pub struct {ty};

/// The action's parameters, as the debugger suggested them.
#[derive(Deserialize)]
struct Params {{
    target: String,
}}

impl Actor for {ty} {{
    fn act(request: ActionRequest) -> Result<Outcome, RecipeError> {{
        let p: Params = request.params()?;
        log::info(&format!("{{}} approved {{}} on {{}}", request.approved_by, request.action, p.target));
        Ok(Outcome::success(format!("{{}} done on {{}}", request.action, p.target)))
    }}
}}

recipe_sdk::export_actor!({ty});

#[cfg(test)]
mod tests {{
    use super::*;
    use recipe_sdk::testing::Harness;

    #[test]
    fn acts_on_the_target() {{
        let request = ActionRequest::new("{name}", serde_json::json!({{ "target": "web" }}), "alice");
        let outcome = Harness::new().act::<{ty}>(request).unwrap();
        assert!(outcome.success);
        assert_eq!(outcome.summary, "{name} done on web");
    }}
}}
"#
            ),
            format!(
                r#"# Manifest of the `{name}` action recipe. `euphrosyne recipe build` writes `digest`.
name = "{name}"
kind = "action"
version = "0.1.0"
description = "What this action does."
digest = ""
# The action names this recipe implements.
actions = ["{name}"]

[capabilities]
# Kubernetes: verbs per resource, in the incident's namespace only:
# kubernetes = {{ deployments = ["get", "patch"] }}

[limits]
timeout_ms = 10000
memory_mib = 32
output_bytes = 65536
"#
            ),
            r#"{"labels": {"alertname": "DiskFull", "instance": "db-1"}}
"#
            .to_string(),
        ),
    };
    vec![
        ("Cargo.toml", cargo),
        ("src/lib.rs", lib),
        ("recipe.toml", manifest),
        ("alert.json", alert),
        (".gitignore", "/target\n*.wasm\n".to_string()),
    ]
}
