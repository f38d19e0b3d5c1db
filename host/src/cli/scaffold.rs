//! Templates for `euphrosyne recipe new`: a crate that builds, tests and runs as is. The
//! templates are the files beside this one (`scaffold/`), with `__NAME__` (the recipe's name, a
//! DNS label), `__TYPE__` (its Rust type) and `__SDK__` (the recipe SDK's path) filled in.

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
    let sdk = sdk.display().to_string();
    // A name is a DNS label (no `_`), so no value can contain another placeholder.
    let fill = |t: &str| {
        t.replace("__NAME__", name)
            .replace("__TYPE__", &ty)
            .replace("__SDK__", &sdk)
    };
    let (lib, manifest, alert) = match kind {
        Kind::Debug => (
            include_str!("scaffold/debug.lib.rs.tmpl"),
            include_str!("scaffold/debug.recipe.toml.tmpl"),
            include_str!("scaffold/debug.alert.json"),
        ),
        Kind::Action => (
            include_str!("scaffold/action.lib.rs.tmpl"),
            include_str!("scaffold/action.recipe.toml.tmpl"),
            include_str!("scaffold/action.alert.json"),
        ),
    };
    vec![
        ("Cargo.toml", fill(include_str!("scaffold/Cargo.toml.tmpl"))),
        ("src/lib.rs", fill(lib)),
        ("recipe.toml", fill(manifest)),
        ("alert.json", alert.to_string()),
        (".gitignore", "/target\n*.wasm\n".to_string()),
    ]
}
