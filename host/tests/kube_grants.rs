//! Kubernetes grants against a real API server with RBAC (`scripts/kube-up`): a recipe reaches
//! only the resources and verbs it is granted, only in the incident's namespace, never a
//! sensitive kind the host's policy does not allow, and — run in the host's own engine — never as
//! the host: it impersonates the recipe ServiceAccount, so RBAC refuses what that account may not
//! do even where the host could (before, a recipe granted `create` made a Job as the host).

mod common;

use std::path::Path;

use common::cluster::{ControlPlane, ok};
use common::*;
use euphrosyne::capability::kube::KubeClients;
use euphrosyne::manifest::{KubeGrants, KubePolicy, KubeVerb, Scope};
use euphrosyne::sandbox::{RunStatus, Sandbox, SandboxConfig};
use k8s_openapi::api::batch::v1::Job;
use kube::Api;

const NS: &str = "euphrosyne";

/// The hostile guest calling the API (`op`, `kind`, `namespace`, `name`, `object`) for an
/// incident in namespace `shop`, with `grants`.
fn kube_job(grants: KubeGrants, config: &[(&str, &str)]) -> euphrosyne::sandbox::RunJob {
    let mut caps = hostile_caps();
    caps.kubernetes = grants;
    let mut j = hostile("kube", caps, tight());
    j.limits.timeout_ms = 10_000;
    j.input = debug(&[("alertname", "ShopDown"), ("namespace", "shop")]);
    for (k, v) in config {
        j.config.insert(k.to_string(), v.to_string());
    }
    j
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipes_reach_only_their_grants_in_their_namespace_as_their_own_identity() {
    let cp = ControlPlane::start().await;
    for ns in [NS, "shop", "other"] {
        ok(cp.kubectl(&["create", "namespace", ns]));
    }
    let rbac = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/rbac.yaml");
    ok(cp.kubectl(&["-n", NS, "apply", "-f", rbac.to_str().unwrap()]));
    // The reader may read ConfigMaps and Pods in `shop` (no Secrets).
    ok(cp.kubectl(&[
        "-n",
        "shop",
        "create",
        "role",
        "recipes-read",
        "--verb=get,list",
        "--resource=configmaps,pods",
    ]));
    ok(cp.kubectl(&[
        "-n",
        "shop",
        "create",
        "rolebinding",
        "recipes-read",
        "--role=recipes-read",
        &format!("--serviceaccount={NS}:euphrosyne-recipe-reader"),
    ]));
    for ns in ["shop", "other"] {
        ok(cp.kubectl(&["-n", ns, "create", "configmap", "settings", "--from-literal=a=b"]));
    }
    ok(cp.kubectl(&[
        "-n",
        "shop",
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=password=hunter2",
    ]));

    // The host as its own ServiceAccount (manifests/rbac.yaml), impersonating the recipe accounts.
    let host_kubeconfig = cp.service_account_kubeconfig(NS, "euphrosyne").await;
    let host_config = euphrosyne::capability::kube::config_from_kubeconfig(&host_kubeconfig)
        .await
        .unwrap();
    let clients = KubeClients::impersonating(
        &host_config,
        &euphrosyne::kube_jobs::KubeConfig {
            namespace: NS.into(),
            ..Default::default()
        }
        .recipe_accounts(),
    )
    .unwrap();
    let policy = KubePolicy {
        allow_sensitive: vec!["secrets:get".into(), "jobs:create".into()],
        ..KubePolicy::default()
    };
    let sandbox = Sandbox::new(SandboxConfig {
        kube: Some(clients),
        kube_policy: policy,
        ..Default::default()
    })
    .unwrap();
    let configmaps_get = || KubeGrants::of(Scope::Namespace, &[("configmaps", &[KubeVerb::Get])]);

    // Granted, in the incident's namespace, and the reader may: reached.
    let r = sandbox
        .run(&kube_job(
            configmaps_get(),
            &[("namespace", "shop"), ("name", "settings")],
        ))
        .await;
    assert_eq!(r.status, RunStatus::Ok, "{}", r.message);
    assert_eq!(r.analysis.unwrap().summary, "REACHED ConfigMap settings");

    // Another namespace: refused by the host before any request.
    let r = sandbox
        .run(&kube_job(
            configmaps_get(),
            &[("namespace", "other"), ("name", "settings")],
        ))
        .await;
    assert_status(&r, RunStatus::Denied, "namespace `other` is not the incident's (shop)");

    // A kind not granted (Secrets), with only configmaps granted: refused by the host.
    let r = sandbox
        .run(&kube_job(
            configmaps_get(),
            &[("kind", "Secret"), ("namespace", "shop"), ("name", "db")],
        ))
        .await;
    assert_status(&r, RunStatus::Denied, "Secret shop/db is not granted");

    // Secrets granted and allowed by the policy: the API server refuses the recipe's identity
    // (its Role has no Secrets) — the host's checks are not the only wall.
    let r = sandbox
        .run(&kube_job(
            KubeGrants::of(Scope::Namespace, &[("secrets", &[KubeVerb::Get])]),
            &[("kind", "Secret"), ("namespace", "shop"), ("name", "db")],
        ))
        .await;
    assert_eq!(r.status, RunStatus::RecipeError, "{}", r.message);
    assert!(
        r.message.contains("forbidden")
            && r.message
                .contains("system:serviceaccount:euphrosyne:euphrosyne-recipe-reader"),
        "{}",
        r.message
    );
    assert!(!format!("{r:?}").contains("hunter2"));

    // The old attack: a recipe granted `create` on Jobs in the host's namespace, where the host
    // itself may create Jobs. As the writer account it may not.
    let job = serde_json::json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "escape"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "serviceAccountName": "euphrosyne",
            "containers": [{"name": "x", "image": "busybox", "command": ["true"]}]}}}
    })
    .to_string();
    let mut j = kube_job(
        KubeGrants::of(Scope::Namespace, &[("jobs", &[KubeVerb::Create])]),
        &[
            ("op", "create"),
            ("api_version", "batch/v1"),
            ("kind", "Job"),
            ("namespace", NS),
            ("object", &job),
        ],
    );
    j.input = debug(&[("alertname", "X"), ("namespace", NS)]);
    let r = sandbox.run(&j).await;
    assert_eq!(r.status, RunStatus::RecipeError, "{}", r.message);
    assert!(
        r.message.contains("forbidden") && r.message.contains("euphrosyne-recipe-writer"),
        "{}",
        r.message
    );
    let jobs: Api<Job> = Api::namespaced(cp.client.clone(), NS);
    assert!(jobs.get_opt("escape").await.unwrap().is_none(), "the Job was created");

    // A sensitive grant the policy does not allow, and cluster scope for a recipe the policy does
    // not list: refused before the component is even instantiated.
    let strict = Sandbox::new(SandboxConfig::default()).unwrap();
    let r = strict
        .run(&kube_job(
            KubeGrants::of(Scope::Namespace, &[("secrets", &[KubeVerb::Get])]),
            &[("kind", "Secret"), ("namespace", "shop"), ("name", "db")],
        ))
        .await;
    assert_status(&r, RunStatus::Denied, "secrets:get");
    assert!(r.message.contains("allow_sensitive"), "{}", r.message);
    assert_eq!(r.timings.instantiate_us, 0);
    let r = strict
        .run(&kube_job(
            KubeGrants::of(Scope::Cluster, &[("configmaps", &[KubeVerb::Get])]),
            &[("namespace", "other"), ("name", "settings")],
        ))
        .await;
    assert_status(&r, RunStatus::Denied, "cluster_scope");
}
