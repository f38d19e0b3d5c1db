//! Load-time check of a component's imports against its manifest's grants, before anything is
//! instantiated. A component imports only what it uses, so an import is a claim: an import the
//! manifest does not grant is refused (`denied`, naming it), and an import from another version
//! of our WIT package is refused (`incompatible`, naming both versions).

use super::RunStatus;
use crate::manifest::{Capabilities, Kind};
use crate::{WIT_VERSION, WIT_VERSIONS};

/// WASI interfaces every recipe may import: their contents are empty or inert by default
/// (no env, no args, no preopens unless granted, no stdin, capped stdout/stderr).
const ALWAYS: &[&str] = &[
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
];

/// Split `ns:pkg/iface@version` into (`ns:pkg/iface`, version).
fn split_version(name: &str) -> (&str, Option<&str>) {
    match name.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (name, None),
    }
}

/// Check every import name; `Err` is the status and the message for the run's result.
pub fn check(
    imports: &[String],
    exports: &[String],
    kind: Kind,
    caps: &Capabilities,
) -> Result<(), (RunStatus, String)> {
    let mut seen: Option<&str> = None;
    for name in imports.iter().chain(exports) {
        let (base, version) = split_version(name);
        if !base.starts_with("euphrosyne:recipe/") {
            continue;
        }
        let v = version.unwrap_or("(unversioned)");
        if !WIT_VERSIONS.contains(&v) {
            return Err((
                RunStatus::Incompatible,
                format!(
                    "the component was built against euphrosyne:recipe@{v}, this host speaks {}; rebuild it with a recipe-sdk for {WIT_VERSION}",
                    WIT_VERSIONS
                        .iter()
                        .map(|w| format!("euphrosyne:recipe@{w}"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            ));
        }
        match seen {
            Some(other) if other != v => {
                return Err((
                    RunStatus::Incompatible,
                    format!(
                        "the component imports both euphrosyne:recipe@{other} and @{v}; build it against one version (recipe-sdk for {WIT_VERSION})"
                    ),
                ));
            }
            _ => seen = Some(v),
        }
    }
    for name in imports {
        let (base, _) = split_version(name);
        let granted = match base {
            "euphrosyne:recipe/types" | "euphrosyne:recipe/log" | "euphrosyne:recipe/config" => true,
            "euphrosyne:recipe/secrets" => !caps.secrets.is_empty(),
            "euphrosyne:recipe/kubernetes" => !caps.kubernetes.is_empty(),
            b if b.starts_with("wasi:http/") => !caps.http.is_empty(),
            b if ALWAYS.iter().any(|p| b.starts_with(p)) => true,
            _ => false,
        };
        if !granted {
            let hint = match base {
                "euphrosyne:recipe/secrets" => "grant the secrets it reads in capabilities.secrets",
                "euphrosyne:recipe/kubernetes" => "grant verbs per resource in capabilities.kubernetes",
                b if b.starts_with("wasi:http/") => "grant hosts in capabilities.http",
                b if b.starts_with("wasi:sockets/") => "raw sockets are never granted; use wasi:http",
                _ => "the host does not provide it",
            };
            return Err((
                RunStatus::Denied,
                format!("the component imports `{name}`, which its manifest does not grant: {hint}"),
            ));
        }
    }
    let wanted = match kind {
        Kind::Debug => "debug",
        Kind::Action => "act",
    };
    if !exports.iter().any(|e| e == wanted) {
        return Err((
            RunStatus::InvalidModule,
            format!(
                "the component does not export `{wanted}` (exports: {}); is it a {} recipe?",
                exports.join(", "),
                if kind == Kind::Debug { "action" } else { "debug" }
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{KubeGrants, KubeVerb, Scope};

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn grants_decide() {
        let caps = Capabilities {
            kubernetes: KubeGrants::of(Scope::Namespace, &[("pods", &[KubeVerb::Get])]),
            ..Default::default()
        };
        let base = s(&[
            "wasi:cli/environment@0.2.6",
            "euphrosyne:recipe/types@0.1.0",
            "euphrosyne:recipe/kubernetes@0.1.0",
        ]);
        assert!(check(&base, &s(&["debug"]), Kind::Debug, &caps).is_ok());
        let mut with_http = base.clone();
        with_http.push("wasi:http/outgoing-handler@0.2.12".into());
        let (status, msg) = check(&with_http, &s(&["debug"]), Kind::Debug, &caps).unwrap_err();
        assert_eq!(status, RunStatus::Denied);
        assert!(
            msg.contains("wasi:http/outgoing-handler@0.2.12") && msg.contains("capabilities.http"),
            "{msg}"
        );
        let (status, _) = check(&s(&["wasi:sockets/tcp@0.2.0"]), &s(&["debug"]), Kind::Debug, &caps).unwrap_err();
        assert_eq!(status, RunStatus::Denied);
        let (status, msg) = check(
            &s(&["euphrosyne:recipe/types@0.9.0"]),
            &s(&["debug"]),
            Kind::Debug,
            &caps,
        )
        .unwrap_err();
        assert_eq!(status, RunStatus::Incompatible);
        assert!(
            msg.contains("0.9.0") && msg.contains("0.2.0") && msg.contains("0.1.0"),
            "{msg}"
        );
        let mixed = s(&["euphrosyne:recipe/types@0.2.0", "euphrosyne:recipe/log@0.1.0"]);
        let (status, msg) = check(&mixed, &s(&["debug"]), Kind::Debug, &caps).unwrap_err();
        assert_eq!(status, RunStatus::Incompatible);
        assert!(msg.contains("both"), "{msg}");
        let (status, _) = check(&base, &s(&["debug"]), Kind::Action, &caps).unwrap_err();
        assert_eq!(status, RunStatus::InvalidModule);
    }
}
