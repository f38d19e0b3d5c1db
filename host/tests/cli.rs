//! The recipe author's path, as the README tells it: `recipe new` → `cargo test` → `recipe build`
//! → `recipe run` → `recipe pack` → `recipe verify`, with the real binary and real cargo.

/// A real Alertmanager driving the whole loop, in this binary (it is not rerun a year ahead:
/// Alertmanager's Go runtime ignores libfaketime, as `cargo` in this suite hangs under it).
#[path = "suites/alertmanager.rs"]
mod alertmanager;
mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn euphrosyne(args: &[&str], cwd: &Path) -> Output {
    Command::new(euphrosyne_bin())
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run euphrosyne")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn every_command_has_help() {
    for cmd in [
        &["--help"][..],
        &["recipe", "--help"],
        &["recipe", "new", "--help"],
        &["recipe", "build", "--help"],
        &["recipe", "pack", "--help"],
        &["recipe", "verify", "--help"],
        &["recipe", "run", "--help"],
    ] {
        let o = euphrosyne(cmd, &repo());
        assert!(o.status.success(), "{cmd:?}: {}", text(&o));
        assert!(text(&o).contains("Usage:"), "{cmd:?}");
    }
    let o = euphrosyne(&["recipe", "frobnicate"], &repo());
    assert_eq!(o.status.code(), Some(2), "unknown subcommands are usage errors");
}

#[test]
fn from_recipe_new_to_a_packed_configmap() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for (name, kind) in [("disk-full", "debug"), ("clean-disk", "action")] {
        let o = euphrosyne(&["recipe", "new", name, "--kind", kind], dir);
        assert!(o.status.success(), "{}", text(&o));
        let krate = dir.join(name);

        // The scaffold's own native tests pass as generated.
        let o = Command::new(env!("CARGO"))
            .args(["test", "--quiet"])
            .current_dir(&krate)
            .output()
            .unwrap();
        assert!(o.status.success(), "cargo test in the scaffold: {}", text(&o));

        // Build: a component, and its digest written into recipe.toml.
        let o = euphrosyne(&["recipe", "build"], &krate);
        assert!(o.status.success(), "{}", text(&o));
        let wasm = krate.join(format!("{name}.wasm"));
        let bytes = std::fs::read(&wasm).unwrap();
        let digest = euphrosyne::digest::Digest::of(&bytes).to_string();
        let manifest = std::fs::read_to_string(krate.join("recipe.toml")).unwrap();
        assert!(manifest.contains(&format!("digest = \"{digest}\"")), "{manifest}");
        assert!(
            manifest.contains("# Manifest of the"),
            "comments survive the digest update"
        );
        assert!(
            bytes.len() < 512 * 1024,
            "the recipe profile keeps components small: {} bytes",
            bytes.len()
        );

        // Run it in the sandbox on the scaffold's example alert.
        let o = euphrosyne(
            &[
                "recipe",
                "run",
                &format!("{name}.wasm"),
                "--alert",
                "alert.json",
                "--params",
                r#"{"target":"db-1"}"#,
            ],
            &krate,
        );
        assert!(o.status.success(), "{}", text(&o));
        let out = text(&o);
        match kind {
            "debug" => assert!(
                out.contains("summary: DiskFull fired 1 time(s)") && out.contains("suggest open-ticket"),
                "{out}"
            ),
            _ => assert!(out.contains(&format!("success: {name} done on db-1")), "{out}"),
        }

        // JSON output is the run result.
        let o = euphrosyne(
            &[
                "recipe",
                "run",
                &format!("{name}.wasm"),
                "--alert",
                "alert.json",
                "--json",
                "--params",
                r#"{"target":"x"}"#,
            ],
            &krate,
        );
        let result: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(result["status"], "ok");
        assert_eq!(result["digest"], digest.as_str());

        // Pack: a ConfigMap with the label, the manifest and the bytes; it runs as packed.
        let o = euphrosyne(&["recipe", "pack", "-o", "packed.yaml"], &krate);
        assert!(o.status.success(), "{}", text(&o));
        let yaml = std::fs::read_to_string(krate.join("packed.yaml")).unwrap();
        assert!(
            yaml.contains("euphrosyne.io/recipe: 'true'") || yaml.contains("euphrosyne.io/recipe: \"true\""),
            "{yaml}"
        );
        let (m, unpacked) = euphrosyne::pack::unpack(&yaml, "packed").unwrap();
        assert_eq!((m.name.as_str(), unpacked), (name, bytes.clone()));
        let o = euphrosyne(
            &[
                "recipe",
                "run",
                "packed.yaml",
                "--alert",
                "alert.json",
                "--params",
                r#"{"target":"x"}"#,
            ],
            &krate,
        );
        assert!(o.status.success(), "{}", text(&o));

        // Verify: right digest passes, wrong digest fails with a message.
        let o = euphrosyne(
            &["recipe", "verify", &format!("{name}.wasm"), "--digest", &digest],
            &krate,
        );
        assert!(o.status.success(), "{}", text(&o));
        let wrong = format!("sha256:{}", "0".repeat(64));
        let o = euphrosyne(
            &["recipe", "verify", &format!("{name}.wasm"), "--digest", &wrong],
            &krate,
        );
        assert_eq!(o.status.code(), Some(1));
        assert!(text(&o).contains("digest mismatch"), "{}", text(&o));

        // A component edited after build no longer matches its manifest: the sandbox refuses it.
        let mut edited = bytes.clone();
        let last = edited.len() - 1;
        edited[last] ^= 1;
        std::fs::write(&wasm, &edited).unwrap();
        let o = euphrosyne(
            &["recipe", "run", &format!("{name}.wasm"), "--alert", "alert.json"],
            &krate,
        );
        assert_eq!(o.status.code(), Some(1));
        assert!(text(&o).contains("[digest-mismatch]"), "{}", text(&o));
    }
}

#[test]
fn bad_input_gets_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let o = euphrosyne(&["recipe", "new", "Bad_Name", "--kind", "debug"], tmp.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("lowercase letters"), "{}", text(&o));
    let o = euphrosyne(&["recipe", "verify", "nope.wasm", "--digest", "sha256:abc"], tmp.path());
    assert!(text(&o).contains("invalid digest"), "{}", text(&o));
    std::fs::write(tmp.path().join("alert.json"), "{\"labels\": {}}").unwrap();
    let (_, wasm) = bundled("node-health");
    std::fs::write(tmp.path().join("x.wasm"), wasm).unwrap();
    let manifest = repo().join("recipes/node-health/recipe.toml");
    let o = euphrosyne(
        &[
            "recipe",
            "run",
            "x.wasm",
            "--manifest",
            manifest.to_str().unwrap(),
            "--alert",
            "alert.json",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("labels.alertname"), "{}", text(&o));
    let o = euphrosyne(&["recipe", "run", "x.wasm", "--alert", "alert.json"], tmp.path());
    assert!(text(&o).contains("--manifest"), "{}", text(&o));
}

#[test]
fn bundled_recipes_are_packable_and_small() {
    for name in BUNDLED {
        let (m, bytes) = bundled(name);
        assert!(bytes.len() < 300 * 1024, "{name} is {} bytes", bytes.len());
        let yaml = euphrosyne::pack::pack(&m, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(yaml.len() < euphrosyne::pack::MAX_OBJECT_BYTES);
    }
}
