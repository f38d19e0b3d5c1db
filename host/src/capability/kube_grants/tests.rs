//! Grants as manifests write them, the policy, and the checks a call goes through.
use super::*;

fn parse(toml_text: &str) -> Result<KubeGrants, String> {
    #[derive(Deserialize)]
    struct W {
        kubernetes: KubeGrants,
    }
    toml::from_str::<W>(toml_text)
        .map(|w| w.kubernetes)
        .map_err(|e| e.to_string())
}

#[test]
fn per_resource_verbs_and_scope() {
    let g = parse("[kubernetes]\npods = [\"get\", \"logs\"]\ndeployments = [\"get\", \"patch\"]\n").unwrap();
    assert!(g.allows("pods", KubeVerb::Logs));
    assert!(!g.allows("pods", KubeVerb::List));
    assert!(!g.allows("secrets", KubeVerb::Get));
    assert!(g.writes());
    assert_eq!(g.scope, Scope::Namespace);
    g.validate().unwrap();
    let back = parse("kubernetes = { deployments = [\"patch\", \"get\"], pods = [\"logs\", \"get\"] }").unwrap();
    assert_eq!(back, g);
}

#[test]
fn scope_alone_survives_a_round_trip() {
    // The `manifest` fuzz target's find: `scope = "cluster"` with no resources was dropped
    // when the manifest was written back (it was skipped as "nothing granted").
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct W {
        #[serde(default, skip_serializing_if = "KubeGrants::is_default")]
        kubernetes: KubeGrants,
    }
    let w: W = toml::from_str("[kubernetes]\nscope = \"cluster\"\n").unwrap();
    assert!(w.kubernetes.is_empty() && !w.kubernetes.is_default());
    let back: W = toml::from_str(&toml::to_string(&w).unwrap()).unwrap();
    assert_eq!(back, w);
}

#[test]
fn refusals_say_what_to_write() {
    let e = parse("kubernetes = [\"get\"]").unwrap_err();
    assert!(e.contains("pods = [\"get\""), "{e}");
    let e = parse("[kubernetes]\npods = [\"exec\"]").unwrap_err();
    assert!(e.contains("unknown variant"), "{e}");
    let e = parse("[kubernetes]\nwidgets = [\"get\"]")
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(e.contains("unknown resource `widgets`"), "{e}");
    let e = parse("[kubernetes]\nnodes = [\"get\"]")
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(e.contains("cluster-scoped"), "{e}");
    let e = parse("[kubernetes]\ndeployments = [\"logs\"]")
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(e.contains("verb of `pods`"), "{e}");
}

#[test]
fn policy_refuses_sensitive_grants_and_cluster_scope() {
    let p = KubePolicy::default();
    for (toml_text, needle) in [
        ("[kubernetes]\nsecrets = [\"get\"]", "secrets:get"),
        ("[kubernetes]\npods = [\"create\"]", "pods:create"),
        ("[kubernetes]\njobs = [\"create\"]", "jobs:create"),
        ("[kubernetes]\nrolebindings = [\"create\"]", "rolebindings:create"),
        ("[kubernetes]\nscope = \"cluster\"\nnodes = [\"get\"]", "cluster_scope"),
    ] {
        let e = p.check("some-recipe", &parse(toml_text).unwrap()).unwrap_err();
        assert!(e.contains(needle), "{e}");
    }
    let allowed = KubePolicy {
        allow_sensitive: vec!["secrets:get".into()],
        ..KubePolicy::default()
    };
    allowed
        .check("r", &parse("[kubernetes]\nsecrets = [\"get\"]").unwrap())
        .unwrap();
    p.check(
        "cordon-node",
        &parse("[kubernetes]\nscope = \"cluster\"\nnodes = [\"get\", \"patch\"]").unwrap(),
    )
    .unwrap();
}
