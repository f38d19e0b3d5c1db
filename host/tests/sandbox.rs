//! The sandbox against real components: the adversarial suite (hostile guests, bad bytes,
//! another WIT version) in one host process, then the bundled recipes, egress, and the caches.

mod common;

use std::time::{Duration, Instant};

use common::*;
use euphrosyne::capability::secrets::SecretStore;
use euphrosyne::manifest::Capabilities;
use euphrosyne::sandbox::{CacheUse, RunStatus, Sandbox, SandboxConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_suite_in_one_process_then_a_normal_recipe_still_runs() {
    let secrets = SecretStore::from_map([("db-password".to_string(), "hunter2".to_string())].into());
    let sandbox = Sandbox::new(SandboxConfig {
        secrets,
        ..Default::default()
    })
    .unwrap();
    let server = HttpServer::start(200, "you should not see this");
    let cases: Vec<(&str, RunStatus, &str, Duration)> = vec![
        (
            "loop",
            RunStatus::TimedOut,
            "limits.timeout_ms = 500",
            Duration::from_millis(1500),
        ),
        (
            "alloc",
            RunStatus::LimitExceeded,
            "memory limit",
            Duration::from_secs(2),
        ),
        (
            "print",
            RunStatus::LimitExceeded,
            "output limit",
            Duration::from_secs(2),
        ),
        (
            "stack",
            RunStatus::LimitExceeded,
            "stack overflow",
            Duration::from_secs(2),
        ),
        // Rust keeps big frames on a shadow stack in linear memory; overflowing it walks off the
        // bottom of memory, which wasm reports as an out-of-bounds access.
        (
            "shadow-stack",
            RunStatus::Trapped,
            "out of bounds memory access",
            Duration::from_secs(2),
        ),
        (
            "panic",
            RunStatus::Trapped,
            "hostile recipe panicked on purpose",
            Duration::from_secs(2),
        ),
        (
            "file",
            RunStatus::RecipeError,
            "cannot open /etc/passwd",
            Duration::from_secs(2),
        ),
        (
            "http",
            RunStatus::Denied,
            "not in capabilities.http",
            Duration::from_secs(2),
        ),
        (
            "secret",
            RunStatus::Denied,
            "secret `db-password` is not granted",
            Duration::from_secs(2),
        ),
        (
            "kube-write",
            RunStatus::Denied,
            "is not granted (capabilities.kubernetes",
            Duration::from_secs(2),
        ),
        (
            "big-result",
            RunStatus::LimitExceeded,
            "over limits.output_bytes",
            Duration::from_secs(2),
        ),
    ];
    for (mode, status, needle, within) in &cases {
        let mut j = hostile(mode, hostile_caps(), tight());
        if *mode == "http" {
            j.config
                .insert("url".into(), format!("http://127.0.0.1:{}/", server.port));
        }
        let started = Instant::now();
        let r = sandbox.run(&j).await;
        let took = started.elapsed();
        assert_status(&r, *status, needle);
        assert!(took < *within, "{mode} took {took:?}, limit {within:?}");
        assert!(
            !format!("{r:?}").contains("hunter2") && !format!("{r:?}").contains("LEAKED"),
            "{mode} leaked: {r:?}"
        );
    }
    assert_eq!(server.hits(), 0, "the denied request never left the host");

    // No environment, no arguments.
    let r = sandbox.run(&hostile("env", hostile_caps(), tight())).await;
    assert_eq!(r.status, RunStatus::Ok);
    assert_eq!(r.analysis.unwrap().summary, "env=[] args=[]");

    // An import the manifest does not grant is refused before instantiation, naming it.
    let r = sandbox.run(&hostile("ok", Capabilities::default(), tight())).await;
    assert_status(&r, RunStatus::Denied, "which its manifest does not grant");
    assert!(
        r.message.contains("euphrosyne:recipe/") || r.message.contains("wasi:http/"),
        "{}",
        r.message
    );
    assert_eq!(r.timings.instantiate_us, 0);

    // Another WIT version.
    let r = sandbox
        .run(&job("future-wit", &guest("future-wit"), debug(&[("alertname", "X")])))
        .await;
    assert_status(&r, RunStatus::Incompatible, "euphrosyne:recipe@0.9.0");
    assert!(r.message.contains("euphrosyne:recipe@0.1.0"), "{}", r.message);

    // Bytes that are not the pinned ones, truncated bytes, random bytes.
    let good = guest("hostile");
    let mut tampered = job("hostile", &good, debug(&[("alertname", "X")]));
    tampered.bytes = std::sync::Arc::from(&good[..good.len() - 1]);
    let r = sandbox.run(&tampered).await;
    assert_status(&r, RunStatus::DigestMismatch, "digest mismatch: pinned sha256:");
    assert_eq!(r.timings.compile_us, 0, "nothing past verification ran");
    let r = sandbox
        .run(&job("truncated", &good[..good.len() / 2], debug(&[("alertname", "X")])))
        .await;
    assert_status(&r, RunStatus::InvalidModule, "not a valid WebAssembly component");
    let mut x = 0x9E3779B97F4A7C15u64;
    let noise: Vec<u8> = (0..50_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let r = sandbox.run(&job("random", &noise, debug(&[("alertname", "X")]))).await;
    assert_status(&r, RunStatus::InvalidModule, "not a valid WebAssembly component");

    // An actor asked to debug.
    let r = sandbox
        .run(&bundled_job("cordon-node", debug(&[("alertname", "X")])))
        .await;
    assert_status(&r, RunStatus::InvalidModule, "does not export `debug`");

    // After all of that, the same process still runs a normal recipe correctly, repeatedly.
    for _ in 0..3 {
        let r = sandbox.run(&hostile("ok", hostile_caps(), tight())).await;
        assert_eq!(r.status, RunStatus::Ok, "{}", r.message);
        assert_eq!(r.analysis.as_ref().unwrap().summary, "all good: 1 alert(s)");
        assert!(r.memory_peak_bytes > 0 && r.memory_peak_bytes <= 32 << 20);
    }
}

#[tokio::test]
async fn http_probe_reaches_only_its_allow_list() {
    let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    let server = HttpServer::start(503, "upstream down");
    let url = format!("http://127.0.0.1:{}/health", server.port);
    let input =
        || euphrosyne::sandbox::RunInput::Debug(incident(&[("alertname", "EndpointDown")], &[("probe_url", &url)]));

    let mut j = bundled_job("http-probe", input());
    j.capabilities.http = vec![format!("127.0.0.1:{}", server.port)];
    let r = sandbox.run(&j).await;
    assert_eq!(r.status, RunStatus::Ok, "{}", r.message);
    let a = r.analysis.unwrap();
    assert!(a.summary.contains("answers 503"), "{}", a.summary);
    assert!(a.findings.iter().any(|f| f.detail.contains("upstream down")));
    assert_eq!(server.hits(), 1);

    // A grant for another port of the same host does not reach this one.
    j.capabilities.http = vec!["127.0.0.1:1".into()];
    let r = sandbox.run(&j).await;
    assert_eq!(r.status, RunStatus::Denied, "{}", r.message);
    assert!(r.denials[0].contains(&url), "{:?}", r.denials);
    // A wildcard grant never matches an IP literal (and a name it matches that resolves to
    // loopback is refused: host/tests/boundary.rs, in a network namespace with its own DNS).
    j.capabilities.http = vec![format!("*.localhost:{}", server.port)];
    let r = sandbox.run(&j).await;
    assert_eq!(r.status, RunStatus::Denied, "{}", r.message);
    assert_eq!(server.hits(), 1, "no denied request reached the server");
}

#[tokio::test]
async fn bundled_recipes_without_a_cluster_fail_clearly() {
    let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    let r = sandbox
        .run(&bundled_job(
            "pod-crashloop",
            debug(&[
                ("alertname", "KubePodCrashLooping"),
                ("pod", "web-1"),
                ("namespace", "shop"),
            ]),
        ))
        .await;
    assert_eq!(r.status, RunStatus::RecipeError);
    assert!(
        r.message.contains("no Kubernetes cluster is configured"),
        "{}",
        r.message
    );
    let r = sandbox
        .run(&bundled_job(
            "restart-workload",
            act(
                "restart-workload",
                serde_json::json!({"namespace": "shop", "name": "web"}),
            ),
        ))
        .await;
    assert_eq!(r.status, RunStatus::RecipeError, "{}", r.message);
    // open-ticket without its secrets: the recipe says which one is missing.
    let r = sandbox
        .run(&bundled_job("open-ticket", act("open-ticket", serde_json::json!({}))))
        .await;
    assert_eq!(r.status, RunStatus::RecipeError);
    assert!(r.message.contains("jira-url"), "{}", r.message);
}

#[tokio::test]
async fn open_ticket_posts_to_jira_with_granted_secrets() {
    // A loopback stand-in for Jira's `POST /rest/api/2/issue` (201 with the created key).
    let jira = HttpServer::start(
        201,
        r#"{"id":"10001","key":"OPS-7","self":"http://jira/rest/api/2/issue/10001"}"#,
    );
    let base = format!("http://127.0.0.1:{}", jira.port);
    let secrets = SecretStore::from_map(
        [
            ("jira-url".to_string(), base.clone()),
            ("jira-user".into(), "bot".into()),
            ("jira-token".into(), "t".into()),
        ]
        .into(),
    );
    let sandbox = Sandbox::new(SandboxConfig {
        secrets,
        ..Default::default()
    })
    .unwrap();
    let mut j = bundled_job(
        "open-ticket",
        act("open-ticket", serde_json::json!({"summary": "web down"})),
    );
    j.capabilities.http = vec![format!("127.0.0.1:{}", jira.port)];
    let r = sandbox.run(&j).await;
    assert_eq!(r.status, RunStatus::Ok, "{}", r.message);
    let o = r.outcome.unwrap();
    assert!(o.success);
    assert_eq!(o.summary, "opened OPS-7");
    assert_eq!(o.details, format!("{base}/browse/OPS-7"));
}

#[tokio::test]
async fn compiled_components_are_cached_in_memory_and_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cfg = || SandboxConfig {
        cache_dir: Some(cache.clone()),
        ..Default::default()
    };
    let j = hostile("ok", hostile_caps(), tight());
    let first = Sandbox::new(cfg()).unwrap();
    assert_eq!(first.run(&j).await.cache, CacheUse::Compiled);
    let warm = first.run(&j).await;
    assert_eq!((warm.status, warm.cache), (RunStatus::Ok, CacheUse::Memory));
    // A new process (a new engine) loads what the first compiled.
    let second = Sandbox::new(cfg()).unwrap();
    let r = second.run(&j).await;
    assert_eq!((r.status, r.cache), (RunStatus::Ok, CacheUse::Disk), "{}", r.message);
    // A cache directory others can write is refused.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = Sandbox::new(cfg()).err().expect("refused").to_string();
    assert!(err.contains("not writable by others"), "{err}");
}

/// The in-memory cache keeps at most `memory_cache_entries` components, the least recently used
/// going first, and counts hits, misses and evictions where `/metrics` reads them.
#[tokio::test]
async fn the_memory_cache_is_bounded_least_recently_used_out() {
    let stats = std::sync::Arc::new(euphrosyne::sandbox::CacheStats::default());
    let sandbox = Sandbox::new(SandboxConfig {
        memory_cache_entries: 2,
        cache_stats: stats.clone(),
        pool_slots: 4,
        ..Default::default()
    })
    .unwrap();
    let (http_probe, open_ticket, cordon) = (
        bundled_job("http-probe", debug(&[("alertname", "EndpointDown")])),
        bundled_job("open-ticket", act("open-ticket", serde_json::json!({"summary": "s"}))),
        bundled_job("cordon-node", act("cordon-node", serde_json::json!({"node": "n"}))),
    );
    async fn cache(s: &Sandbox, j: &euphrosyne::sandbox::RunJob) -> CacheUse {
        s.run(j).await.cache
    }
    assert_eq!(cache(&sandbox, &http_probe).await, CacheUse::Compiled);
    assert_eq!(cache(&sandbox, &open_ticket).await, CacheUse::Compiled);
    assert_eq!(
        cache(&sandbox, &http_probe).await,
        CacheUse::Memory,
        "a hit makes it the most recent"
    );
    assert_eq!(
        cache(&sandbox, &cordon).await,
        CacheUse::Compiled,
        "a third: open-ticket goes"
    );
    assert_eq!(cache(&sandbox, &http_probe).await, CacheUse::Memory);
    assert_eq!(
        cache(&sandbox, &open_ticket).await,
        CacheUse::Compiled,
        "evicted, so compiled again"
    );
    assert_eq!(
        (
            stats.hits.get(),
            stats.misses.get(),
            stats.evictions.get(),
            stats.entries.get()
        ),
        (2, 4, 2, 2)
    );
}

/// A component built against the frozen `euphrosyne:recipe@0.1.0` runs unchanged: the host
/// links both contract versions and picks the one the component imports.
#[tokio::test]
async fn a_component_built_against_wit_0_1_0_still_runs() {
    let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    let bytes = guest("legacy-actor");
    let mut granted = job("legacy-actor", &bytes, act("legacy", serde_json::json!({})));
    granted.capabilities.kubernetes = euphrosyne::manifest::KubeGrants::of(
        euphrosyne::manifest::Scope::Namespace,
        &[("deployments", &[euphrosyne::manifest::KubeVerb::Patch])],
    );
    let r = sandbox.run(&granted).await;
    assert_eq!(r.status, RunStatus::Ok, "{}", r.message);
    let outcome = r.outcome.expect("an outcome");
    assert_eq!(outcome.summary, "legacy actor ran `legacy` for tester");
    assert!(outcome.changes.is_empty());
    // Its Kubernetes import is the 0.1.0 one, checked against grants like any other: without
    // the grant the component is refused before it is instantiated.
    let r = sandbox
        .run(&job("legacy-actor", &bytes, act("legacy", serde_json::json!({}))))
        .await;
    assert_eq!(r.status, RunStatus::Denied, "{}", r.message);
    assert!(
        r.message.contains("euphrosyne:recipe/kubernetes@0.1.0"),
        "{}",
        r.message
    );
}

/// Precompiled code made by the host's engine (a pool of 8) is taken by a sandbox process's (a
/// pool of 2) only with the key's seal intact, for the bytes it was made from; the run then
/// executes it without compiling. Anything else is refused, and the run compiles.
#[tokio::test]
async fn sealed_precompiled_code_is_taken_only_with_its_key_for_its_bytes() {
    use euphrosyne::sandbox::ArtifactKey;
    let host = Sandbox::new(SandboxConfig {
        pool_slots: 8,
        ..Default::default()
    })
    .unwrap();
    let process = || {
        Sandbox::new(SandboxConfig {
            pool_slots: 2,
            ..Default::default()
        })
        .unwrap()
    };
    let key = ArtifactKey::new(b"0123456789abcdef0123456789abcdef").unwrap();
    let j = bundled_job("pod-crashloop", debug(&[("alertname", "KubePodCrashLooping")]));
    assert_eq!(host.engine_id(), process().engine_id(), "the same engine settings");
    let sealed = host.artifact(j.digest, j.bytes.clone(), &key).await.unwrap();

    let sandbox = process();
    sandbox.adopt(&j.digest, &j.bytes, &sealed, &key).unwrap();
    let r = sandbox.run(&j).await;
    assert_eq!(r.cache, CacheUse::Memory, "{}", r.message);
    assert_ne!(r.status, RunStatus::InvalidModule, "{}", r.message);

    let refused = |sandbox: &Sandbox, sealed: &[u8], key: &ArtifactKey, bytes: &std::sync::Arc<[u8]>| {
        sandbox.adopt(&j.digest, bytes, sealed, key).unwrap_err()
    };
    let other_key = ArtifactKey::new(b"another key that is long enough!!").unwrap();
    assert!(refused(&process(), &sealed, &other_key, &j.bytes).contains("seal does not match"));
    let mut altered = sealed.clone();
    let middle = altered.len() / 2;
    altered[middle] ^= 0x40;
    assert!(refused(&process(), &altered, &key, &j.bytes).contains("seal does not match"));
    let other_bytes: std::sync::Arc<[u8]> = bundled("restart-workload").1.into();
    assert!(refused(&process(), &sealed, &key, &other_bytes).contains("digest mismatch"));
    // Refused: the run compiles as before.
    let fresh = process();
    let _ = fresh.adopt(&j.digest, &j.bytes, &altered, &key);
    assert_eq!(fresh.run(&j).await.cache, CacheUse::Compiled);
}
