//! The bundled recipes hold together: every action a bundled debugger may suggest has a bundled
//! actor (CI fails otherwise), every action its code suggests is declared in its manifest's
//! `suggests`, and every bundled recipe loads under the host's default Kubernetes policy.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use euphrosyne::manifest::{Kind, KubePolicy, Manifest};

fn recipes() -> Vec<(PathBuf, Manifest)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes");
    let mut out: Vec<(PathBuf, Manifest)> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("recipe.toml").exists())
        .map(|p| {
            let text = std::fs::read_to_string(p.join("recipe.toml")).unwrap();
            let m = Manifest::from_toml(&text, &p.display().to_string()).unwrap();
            (p, m)
        })
        .collect();
    out.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    out
}

/// Every string literal in the `.rs` files under `dir`.
fn literals(dir: &Path) -> (BTreeSet<String>, String) {
    let mut out = BTreeSet::new();
    let mut all = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "rs") {
            let src = std::fs::read_to_string(&p).unwrap();
            for (i, lit) in src.split('"').enumerate() {
                if i % 2 == 1 && !lit.is_empty() && lit.len() < 40 {
                    out.insert(lit.to_string());
                }
            }
            all.push_str(&src);
        }
    }
    (out, all)
}

/// The action names a debugger's code may suggest: every action name (one an actor implements,
/// or the first literal passed to `.suggest(`) that its source spells out, plus, when it hands
/// remedies over from the SDK's pod diagnosis (`.remedy(`), every action that one spells out.
fn suggested_in_source(dir: &Path, actions: &BTreeSet<&str>) -> BTreeSet<String> {
    let (lits, src) = literals(&dir.join("src"));
    let mut out: BTreeSet<String> = lits.into_iter().filter(|l| actions.contains(l.as_str())).collect();
    for (at, _) in src.match_indices(".suggest(") {
        if let Some(lit) = src[at + ".suggest(".len()..].trim_start().strip_prefix('"') {
            out.insert(lit[..lit.find('"').unwrap()].to_string());
        }
    }
    if src.contains(".remedy(") {
        let pod = Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipe-sdk/src/pod.rs");
        let pod = std::fs::read_to_string(pod).unwrap();
        out.extend(pod.split('"').filter(|l| actions.contains(l)).map(str::to_string));
    }
    out
}

#[test]
fn every_action_a_bundled_debugger_may_suggest_has_a_bundled_actor() {
    let all = recipes();
    let implemented: BTreeSet<&str> = all
        .iter()
        .filter(|(_, m)| m.kind == Kind::Action)
        .flat_map(|(_, m)| m.actions.iter().map(String::as_str))
        .collect();
    let mut checked = 0;
    for (dir, m) in all.iter().filter(|(_, m)| m.kind == Kind::Debug) {
        let declared: BTreeSet<String> = m.suggests.iter().cloned().collect();
        let in_code = suggested_in_source(dir, &implemented);
        assert!(!in_code.is_empty(), "{}: found no action name in its source", m.name);
        let undeclared: Vec<_> = in_code.difference(&declared).collect();
        assert!(
            undeclared.is_empty(),
            "{}: its code suggests {undeclared:?}, which its manifest's `suggests` does not declare",
            m.name
        );
        for a in &declared {
            assert!(
                implemented.contains(a.as_str()),
                "{} may suggest `{a}`, which no bundled actor implements (actors: {implemented:?})",
                m.name
            );
            checked += 1;
        }
    }
    assert!(checked >= 19, "only {checked} declared suggestions");
}

#[test]
fn every_bundled_recipe_loads_under_the_default_policy() {
    let policy = KubePolicy::default();
    for (_, m) in recipes() {
        policy
            .check(&m.name, &m.capabilities.kubernetes)
            .unwrap_or_else(|e| panic!("{}: {e}", m.name));
    }
    // The sensitive grant a bundled recipe needs is allowed to that recipe alone.
    let jobs = euphrosyne::manifest::KubeGrants::of(
        euphrosyne::manifest::Scope::Namespace,
        &[("jobs", &[euphrosyne::manifest::KubeVerb::Create])],
    );
    assert!(policy.check("rerun-job", &jobs).is_ok());
    let e = policy.check("some-other-recipe", &jobs).unwrap_err();
    assert!(e.contains("jobs:create"), "{e}");
}
