//! The Kubernetes suite, on a real cluster (etcd + kube-apiserver + kube-controller-manager +
//! kube-scheduler + a kubelet with containerd and runc, built from and installed with Debian's
//! packages by `scripts/kube-up --node`), every sandbox Job a real container of the image
//! `scripts/build-image` made of the binary under test (`common/cluster.rs`):
//!
//! - `manifests/` applied for real (`kubectl apply -k`), and every manifest accepted by
//!   `kubectl apply --dry-run=server`;
//! - the host with its own ServiceAccount's token (the manifests' RBAC, not admin), recipes from
//!   the packed ConfigMaps, `executor = "kube"`: an Alertmanager alert about a Deployment whose
//!   container really crashloops on the node → a hardened Job per run, completed by the real Job
//!   controller → result through Redis → analysis (with the container's log, read through the
//!   apiserver from the kubelet) → approval → an action Job patches the real Deployment;
//! - the hardening as the kernel sees it: the sandbox process runs as uid 65532 with no
//!   capabilities, `NoNewPrivs`, a seccomp filter and a read-only root;
//! - a bad recipe ConfigMap reported on `/api/status` and as an Event, and gone when deleted;
//! - tamper: the ConfigMap's bytes changed after fan-out → the real container ends `digest-mismatch`;
//! - failure: a Job whose pod fails closes its run at once with the pod's exit code and its last
//!   log lines; a pod that never starts, and a sandbox frozen mid-run, at the Job's deadline as
//!   timed out; a recipe over its memory limit OOM-killed by the kernel, reported once as over its
//!   limit; a pod the scheduler cannot place (a cordoned node), or whose image is not on the node
//!   (`ErrImageNeverPull`), at once, its Job deleted; a node whose kubelet stops reporting
//!   mid-run loses nothing and runs nothing twice.
//!
//! The scheduler is stopped (SIGSTOP) where a test needs a pod to wait before it starts.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::cluster::{ARTIFACT_KEY, ControlPlane, node_lock, ok};
use common::host::*;
use common::redis::RedisServer;
use common::until;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;

const NS: &str = "euphrosyne";
/// How long the controllers, the kubelet and the host get for most steps here.
const TEN_S: Duration = Duration::from_secs(10);

fn manifests() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

/// Deployment `web`, whose container really crashloops on the node (it runs `euphrosyne recipe
/// run` on a file that does not exist: exit code 1, "error: reading /srv/shop/web.yaml: No such
/// file or directory" on stderr); returns the name of a pod the kubelet has restarted at least
/// once and now backs off.
async fn crashlooping_web(client: &kube::Client) -> String {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    if deployments.get_opt("web").await.unwrap().is_none() {
        let d: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"automountServiceAccountToken": false, "containers": [{
                                      "name": "web", "image": "euphrosyne:latest", "imagePullPolicy": "Never",
                                      "command": ["euphrosyne", "recipe", "run", "/srv/shop/web.yaml", "--alert", "/srv/shop/alert.json"]}]}}}}))
        .unwrap();
        deployments.create(&PostParams::default(), &d).await.unwrap();
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let started = Instant::now();
    loop {
        let list = pods.list(&ListParams::default().labels("app=web")).await.unwrap();
        // Restarted, and now backing off: what KubePodCrashLooping fires on.
        let crashed = list.items.iter().find(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|c| {
                    c.iter().any(|c| {
                        c.restart_count >= 1
                            && c.state
                                .as_ref()
                                .and_then(|s| s.waiting.as_ref())
                                .is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff"))
                    })
                })
        });
        if let Some(p) = crashed {
            return p.metadata.name.clone().unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "web never crashed and restarted: {:#?}",
            list.items.iter().map(|p| &p.status).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn crashloop_alert(group: &str, pod: &str, fingerprint: &str) -> serde_json::Value {
    alertmanager_body(
        group,
        "firing",
        json!({"alertname": "KubePodCrashLooping", "namespace": NS, "pod": pod, "severity": "critical"}),
        json!({"summary": format!("{pod} is crashlooping")}),
        common::firing_since(),
        fingerprint,
    )
}

/// Wait for the incident of alert group `group` and return its id.
async fn incident_of(host: &Host, group: &str) -> String {
    let list = host
        .wait_for("/api/incidents", |v| {
            v["incidents"]
                .as_array()
                .is_some_and(|l| l.iter().any(|i| i["group_key"] == group))
        })
        .await;
    list["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["group_key"] == group)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn analysed(host: &Host, id: &str) -> serde_json::Value {
    host.wait_for(&format!("/api/incidents/{id}"), |v| {
        v["incident"]["state"] == "analyzed"
    })
    .await
}

/// Jobs of recipe `recipe`.
async fn jobs_of(client: &kube::Client, recipe: &str) -> Vec<Job> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    jobs.list(&ListParams::default().labels(&format!("euphrosyne.io/recipe={recipe}")))
        .await
        .unwrap()
        .items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_become_hardened_jobs_on_a_real_node() {
    let _node = node_lock().await;
    let cp = ControlPlane::with_node(true).await;
    let node = cp.node.as_ref().unwrap();
    let client = cp.client.clone();
    let redis = RedisServer::start_for_node(&node.gateway);

    // Every manifest is accepted by the apiserver (dry run), then applied for real.
    ok(cp.kubectl(&["create", "namespace", NS]));
    let dir = manifests();
    // Server-side apply: a recipe ConfigMap is too big for client-side apply's
    // last-applied-configuration annotation (256 KiB).
    let dry = ok(cp.kubectl(&[
        "apply",
        "--server-side",
        "--dry-run=server",
        "-k",
        dir.to_str().unwrap(),
    ]));
    for kind in [
        "serviceaccount/euphrosyne ",
        "role.rbac.authorization.k8s.io/euphrosyne-host",
        "deployment.apps/euphrosyne",
        "service/redis",
        "networkpolicy.networking.k8s.io/euphrosyne-sandbox",
        "configmap/recipe-pod-crashloop",
        "clusterrolebinding.rbac.authorization.k8s.io/euphrosyne-recipe-nodes-writer",
    ] {
        assert!(dry.contains(kind), "{kind} missing from:\n{dry}");
    }
    cp.apply_manifests();
    cp.redis_secret_with_artifact_key(NS, &redis.url_at(&node.gateway));
    let web = crashlooping_web(&client).await;

    // The host as its own ServiceAccount: only the manifests' RBAC.
    let host_kubeconfig = cp.service_account_kubeconfig(NS, "euphrosyne").await;
    let config = format!(
        "executor = \"kube\"\nredis_prefix = \"k8s\"\nkubeconfig = \"{}\"\n[kube]\nnamespace = \"{NS}\"\nimage = \"euphrosyne:latest\"\nimage_pull_policy = \"Never\"\nstart_slack_seconds = 5",
        host_kubeconfig.display()
    );
    let env = [
        ("EUPHROSYNE_REDIS_URL", redis.url()),
        ("EUPHROSYNE_ARTIFACT_KEY", ARTIFACT_KEY.to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let host = Host::start_with_env(|_| {}, &config, &[], &env);
    let status = host.json("/api/status").await;
    let names = recipe_names(&status);
    assert!(
        names.iter().any(|n| n == "pod-crashloop") && names.iter().any(|n| n == "restart-workload"),
        "{status:#}"
    );
    assert_eq!(
        names.len(),
        common::BUNDLED.len(),
        "the bundled recipes from their ConfigMaps: {names:?}"
    );
    assert_eq!(status["dangling_actions"], serde_json::json!([]), "{status:#}");

    // Alert → Job → result through Redis → analysis.
    let g1 = format!("{{}}:{{alertname=\"KubePodCrashLooping\",pod=\"{web}\"}}");
    let g1 = g1.as_str();
    let r = host
        .post("/webhook", None)
        .json(&crashloop_alert(g1, &web, "fp-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = incident_of(&host, g1).await;
    let inc = analysed(&host, &id).await;
    let run = &inc["incident"]["runs"][0];
    assert_eq!(run["recipe"], "pod-crashloop");
    assert_eq!(run["status"], "ok", "{run:#}");
    assert_eq!(
        run["result"]["cache"], "artifact",
        "the Job ran the host's sealed precompiled code: {run:#}"
    );
    // The container's own last words, from the kubelet through the apiserver.
    let findings = inc["incident"]["analysis"]["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["title"] == format!("log tail of {web}/web")
            && f["detail"]
                .as_str()
                .unwrap()
                .contains("reading /srv/shop/web.yaml: No such file or directory")),
        "{findings:#?}\nthe recipe's log: {:#}",
        run["result"]["logs"]
    );
    assert!(
        inc["incident"]["analysis"]["summary"]
            .as_str()
            .unwrap()
            .contains("container web exits with code 1 (Error)"),
        "{:#}",
        inc["incident"]["analysis"]
    );

    // The Job: hardened, labelled, owned by the recipe ConfigMap, completed by the Job controller.
    let jobs = jobs_of(&client, "pod-crashloop").await;
    assert_eq!(jobs.len(), 1);
    let job = serde_json::to_value(&jobs[0]).unwrap();
    let labels = &job["metadata"]["labels"];
    assert_eq!(labels["euphrosyne.io/run"], run["run_id"]);
    assert_eq!(labels["euphrosyne.io/incident"], id.as_str());
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "ConfigMap");
    assert_eq!(job["metadata"]["ownerReferences"][0]["name"], "recipe-pod-crashloop");
    let spec = &job["spec"];
    assert_eq!(spec["backoffLimit"], 0);
    assert_eq!(spec["activeDeadlineSeconds"], 15, "timeout 10 s + 5 s to start");
    assert_eq!(spec["ttlSecondsAfterFinished"], 600);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(
        pod["serviceAccountName"], "euphrosyne-recipe-reader",
        "get/list/logs/events: reader"
    );
    assert_eq!(pod["automountServiceAccountToken"], true);
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "euphrosyne:latest");
    assert_eq!(c["imagePullPolicy"], "Never");
    assert_eq!(c["terminationMessagePolicy"], "FallbackToLogsOnError");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(
        c["resources"],
        json!({"limits": {"memory": "128Mi", "cpu": "1"}, "requests": {"memory": "128Mi", "cpu": "10m"}}),
        "64 MiB + 64 MiB for the process; the CPU from [kube]'s defaults"
    );
    until("the Job controller completes the Job", TEN_S, || async {
        let j = &jobs_of(&client, "pod-crashloop").await[0];
        (j.status.as_ref().and_then(|s| s.succeeded) == Some(1)).then_some(())
    })
    .await;

    // Approve the restart: an action Job (writer ServiceAccount) patches the real Deployment.
    let approval = json!({"incident": id, "action": "restart-workload", "approver": "alice"});
    let r = host
        .post("/api/actions", Some(APPROVER))
        .json(&approval)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let action = r.json::<serde_json::Value>().await.unwrap();
    let a = host
        .wait_for(&format!("/api/actions/{}", action["id"].as_str().unwrap()), |a| {
            a["status"] == "succeeded" || a["status"] == "failed"
        })
        .await;
    assert_eq!(a["status"], "succeeded", "{a:#}");
    let dep = Api::<Deployment>::namespaced(client.clone(), NS)
        .get("web")
        .await
        .unwrap();
    let dep = serde_json::to_value(dep).unwrap();
    let restarted = &dep["spec"]["template"]["metadata"]["annotations"];
    assert!(restarted["kubectl.kubernetes.io/restartedAt"].is_string(), "{dep:#}");
    let action_job = serde_json::to_value(&jobs_of(&client, "restart-workload").await[0]).unwrap();
    assert_eq!(
        action_job["spec"]["template"]["spec"]["serviceAccountName"],
        "euphrosyne-recipe-writer"
    );

    // A recipe without a Kubernetes grant gets no token and no ServiceAccount.
    let spec = euphrosyne::kube_jobs::job_spec(
        &Default::default(),
        "k8s",
        &common::job("http-probe", b"", common::debug(&[("alertname", "X")])),
        "cm",
        "uid",
    )
    .unwrap();
    let pod = serde_json::to_value(&spec).unwrap()["spec"]["template"]["spec"].clone();
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert!(pod.get("serviceAccountName").is_none());

    // A bad recipe ConfigMap: reported on /api/status and as an Event, gone once deleted.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let bad: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "broken-recipe", "labels": {"euphrosyne.io/recipe": "true"}},
        "data": {"recipe.toml": "name = \"broken\"\nkind = \"debug\"\n"}}))
    .unwrap();
    cms.create(&PostParams::default(), &bad).await.unwrap();
    let status = host
        .wait_for("/api/status", |s| {
            s["recipe_errors"].as_array().is_some_and(|e| {
                e.iter()
                    .any(|e| e["origin"].as_str().unwrap().contains("broken-recipe"))
            })
        })
        .await;
    assert_eq!(
        status["recipes"].as_array().unwrap().len(),
        common::BUNDLED.len(),
        "the good ones stay"
    );
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    until("an InvalidRecipe Event", TEN_S, || async {
        let list = events.list(&ListParams::default()).await.unwrap().items;
        list.iter()
            .any(|e| {
                e.reason.as_deref() == Some("InvalidRecipe")
                    && e.involved_object.name.as_deref() == Some("broken-recipe")
            })
            .then_some(())
    })
    .await;
    cms.delete("broken-recipe", &Default::default()).await.unwrap();
    host.wait_for("/api/status", |s| {
        s["recipe_errors"].as_array().is_some_and(|e| e.is_empty())
    })
    .await;

    // Tamper: the ConfigMap's bytes change after fan-out, before the pod starts (the scheduler
    // is stopped meanwhile); the sandbox in the real container refuses them.
    let held = node.hold_scheduling();
    let g2 = "{}:{alertname=\"KubePodCrashLooping\",n=\"tamper\"}";
    host.post("/webhook", None)
        .json(&crashloop_alert(g2, &web, "fp-tamper"))
        .send()
        .await
        .unwrap();
    let id2 = incident_of(&host, g2).await;
    wait_jobs(&client, "pod-crashloop", 2).await;
    let original = cms.get("recipe-pod-crashloop").await.unwrap();
    let other = cms.get("recipe-restart-workload").await.unwrap();
    let mut tampered = original.clone();
    tampered.binary_data = other.binary_data.clone();
    tampered.metadata.managed_fields = None;
    cms.replace("recipe-pod-crashloop", &PostParams::default(), &tampered)
        .await
        .unwrap();
    drop(held);
    let inc2 = analysed(&host, &id2).await;
    let run2 = &inc2["incident"]["runs"][0];
    assert_eq!(run2["status"], "digest-mismatch", "{run2:#}");
    // Put the recipe back (the registry reloads it).
    let mut back = cms.get("recipe-pod-crashloop").await.unwrap();
    back.binary_data = original.binary_data.clone();
    cms.replace("recipe-pod-crashloop", &PostParams::default(), &back)
        .await
        .unwrap();
    host.wait_for("/api/status", |s| {
        s["recipes"]
            .as_array()
            .is_some_and(|r| r.len() == common::BUNDLED.len())
            && s["recipe_errors"].as_array().is_some_and(|e| e.is_empty())
    })
    .await;

    // Failure: the run's input vanishes before the pod starts, so the sandbox exits 3; the Job
    // controller fails the Job and the run closes at once with the exit code and what the
    // sandbox said (its log, read through the apiserver), long before the incident deadline
    // (20 s) or the Job's (15 s).
    let held = node.hold_scheduling();
    let g3 = "{}:{alertname=\"KubePodCrashLooping\",n=\"fail\"}";
    host.post("/webhook", None)
        .json(&crashloop_alert(g3, &web, "fp-fail"))
        .send()
        .await
        .unwrap();
    let id3 = incident_of(&host, g3).await;
    wait_jobs(&client, "pod-crashloop", 3).await;
    let inc3 = host.json(&format!("/api/incidents/{id3}")).await;
    let run_id = inc3["incident"]["runs"][0]["run_id"].as_str().unwrap().to_string();
    let mut conn = ::redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let deleted: i64 = ::redis::cmd("DEL")
        .arg(format!("k8s:run:{run_id}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let released = Instant::now();
    drop(held);
    let inc3 = analysed(&host, &id3).await;
    let run3 = &inc3["incident"]["runs"][0];
    assert!(
        released.elapsed() < Duration::from_secs(8),
        "closed after {:?}",
        released.elapsed()
    );
    assert_eq!(run3["status"], "trapped", "{run3:#}");
    let msg = run3["result"]["message"].as_str().unwrap();
    assert!(msg.contains("exit code 3"), "{msg}");
    assert!(msg.contains("no input in Redis under this run id"), "{msg}");
    let audit = std::fs::read_to_string(cp.dir.path().join("audit.log")).unwrap();
    assert!(
        audit.lines().any(|l| l.contains("\"subresource\":\"log\"")
            && l.contains(&format!("\"name\":\"euphrosyne-{run_id}-"))
            && l.contains("system:serviceaccount:euphrosyne:euphrosyne")),
        "the host read the failed sandbox's log through the apiserver, as itself"
    );

    // Deadline: a pod that never starts (unschedulable, say) — the Job controller fails the Job
    // at activeDeadlineSeconds (1 s timeout + 5 s to start) and the run closes then, timed out.
    let bytes = common::guest("hostile");
    let toml = format!(
        "name = \"stuck\"\nkind = \"debug\"\nversion = \"1\"\ndigest = \"{}\"\nmatchers = ['alertname=\"StuckJob\"']\n[limits]\ntimeout_ms = 1000\n",
        euphrosyne::digest::Digest::of(&bytes)
    );
    let m = euphrosyne::manifest::Manifest::from_toml(&toml, "stuck").unwrap();
    let cm: ConfigMap = serde_yaml::from_str(&euphrosyne::pack::pack(&m, &bytes).unwrap()).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    host.wait_for("/api/status", |s| {
        s["recipes"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["name"] == "stuck"))
    })
    .await;
    let held = node.hold_scheduling();
    let g4 = "{}:{alertname=\"StuckJob\"}";
    let body = alertmanager_body(
        g4,
        "firing",
        json!({"alertname": "StuckJob"}),
        json!({}),
        common::firing_since(),
        "fp-stuck",
    );
    host.post("/webhook", None).json(&body).send().await.unwrap();
    let posted = Instant::now();
    let id4 = incident_of(&host, g4).await;
    let inc4 = analysed(&host, &id4).await;
    let run4 = &inc4["incident"]["runs"][0];
    assert_eq!(run4["status"], "timed-out", "{run4:#}");
    let msg = run4["result"]["message"].as_str().unwrap();
    assert!(msg.contains("activeDeadlineSeconds (6 s)"), "{msg}");
    assert!(
        posted.elapsed() < Duration::from_secs(14),
        "closed after {:?}",
        posted.elapsed()
    );

    // The host dies while its Job runs, and the Job then fails: the host that comes back (a
    // restart here; a follower taking over is the same path) closes the run from the failed Job
    // at once, rather than at the incident deadline.
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let (run7, _) = held_run(&host, &client, "{}:{alertname=\"StuckJob\",n=\"7\"}").await;
    let mut host = host;
    host.child.kill().unwrap();
    host.child.wait().unwrap();
    let _: i64 = ::redis::cmd("DEL")
        .arg(format!("k8s:run:{run7}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    drop(held);
    until("the Job fails", TEN_S, || async {
        let job = jobs.get(&format!("euphrosyne-{run7}")).await.unwrap();
        (job.status.and_then(|s| s.failed) == Some(1)).then_some(())
    })
    .await;
    // (Back with pod-crashloop chosen to run in the host's own engine.)
    let config = format!("{config}\nin_process = [\"pod-crashloop\"]");
    let host = Host::start_with_env(|_| {}, &config, &[], &env);
    let r = closed_run(&host, &run7).await;
    assert_eq!(r["status"], "trapped", "{r:#}");
    assert!(
        r["result"]["message"].as_str().unwrap().contains("exit code 3"),
        "{r:#}"
    );

    // Per-recipe executor: pod-crashloop now runs in-process — no Job — reading the cluster
    // through the host's client (its ServiceAccount may get pods).
    let jobs_before = jobs_of(&client, "pod-crashloop").await.len();
    let g8 = "{}:{alertname=\"KubePodCrashLooping\",n=\"8\"}";
    let body = crashloop_alert(g8, &web, "fp-in-process"); // not a retry of the first alert
    host.post("/webhook", None).json(&body).send().await.unwrap();
    let id8 = incident_of(&host, g8).await;
    let inc8 = analysed(&host, &id8).await;
    assert_eq!(
        inc8["incident"]["runs"][0]["status"], "ok",
        "{:#}",
        inc8["incident"]["runs"]
    );
    // The app crash, found in-process. (Its exit code is checked on the first alert; after the
    // kubelet was frozen above, the last termination it reports may be another.)
    let summary = inc8["incident"]["analysis"]["summary"].as_str().unwrap();
    assert!(summary.contains("container web exits with code"), "{summary}");
    assert_eq!(
        jobs_of(&client, "pod-crashloop").await.len(),
        jobs_before,
        "no Job for an in-process recipe"
    );
}

/// Post a StuckJob alert in `group` (the scheduler is held), and return its run id and pod
/// once the Job controller made the pod.
async fn held_run(host: &Host, client: &kube::Client, group: &str) -> (String, String) {
    let labels = json!({"alertname": "StuckJob", "group": group});
    let body = alertmanager_body(group, "firing", labels, json!({}), common::firing_since(), group);
    host.post("/webhook", None).json(&body).send().await.unwrap();
    let id = incident_of(host, group).await;
    let inc = host
        .wait_for(&format!("/api/incidents/{id}"), |v| {
            v["incident"]["runs"][0]["run_id"].is_string()
        })
        .await;
    let run_id = inc["incident"]["runs"][0]["run_id"].as_str().unwrap().to_string();
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let of_run = ListParams::default().labels(&format!("euphrosyne.io/run={run_id}"));
    let pod = until(&format!("a pod for {run_id}"), TEN_S, || async {
        pods.list(&of_run).await.unwrap().items.first()?.metadata.name.clone()
    })
    .await;
    (run_id, pod)
}

/// The run `run_id`, once closed — well before the Job's deadline (6 s) could have done it.
async fn closed_run(host: &Host, run_id: &str) -> serde_json::Value {
    let started = Instant::now();
    let run = until(&format!("run {run_id} closed"), TEN_S, || async {
        let list = host.json("/api/incidents?state=analyzed").await;
        for inc in list["incidents"].as_array().unwrap() {
            let full = host
                .json(&format!("/api/incidents/{}", inc["id"].as_str().unwrap()))
                .await;
            let runs = full["incident"]["runs"].as_array().unwrap().clone();
            if let Some(r) = runs.into_iter().find(|r| r["run_id"] == run_id) {
                return Some(r);
            }
        }
        None
    })
    .await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "closed only after {took:?}");
    run
}

async fn wait_jobs(client: &kube::Client, recipe: &str, n: usize) {
    until(&format!("Job {n} of {recipe} created"), TEN_S, || async {
        (jobs_of(client, recipe).await.len() >= n).then_some(())
    })
    .await;
}

/// The hostile test guest as a debugger `name` for alerts named `alertname`, in `mode`, with
/// these `[config]` and `[limits]` lines, as its ConfigMap (the grants its imports need: a
/// Secret `x`, pods get, one HTTP host).
fn hostile_recipe(name: &str, alertname: &str, mode: &str, config: &str, limits: &str) -> ConfigMap {
    let bytes = common::guest("hostile");
    let toml = format!(
        "name = \"{name}\"\nkind = \"debug\"\nversion = \"1\"\ndigest = \"{}\"\nmatchers = ['alertname=\"{alertname}\"']\n[capabilities]\nhttp = [\"x.invalid\"]\nsecrets = [\"x\"]\nkubernetes = {{ pods = [\"get\"] }}\n[limits]\n{limits}\n[config]\nmode = \"{mode}\"\n{config}\n",
        euphrosyne::digest::Digest::of(&bytes)
    );
    let m = euphrosyne::manifest::Manifest::from_toml(&toml, name).unwrap();
    serde_yaml::from_str(&euphrosyne::pack::pack(&m, &bytes).unwrap()).unwrap()
}

/// Post one alert named `alertname` in its own group `group`; its incident's id.
async fn post_alert(host: &Host, alertname: &str, group: &str) -> String {
    let body = alertmanager_body(
        group,
        "firing",
        json!({"alertname": alertname, "group": group}),
        json!({}),
        common::firing_since(),
        group,
    );
    let r = host.post("/webhook", None).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 202);
    incident_of(host, group).await
}

/// The first run of incident `id`, once it has a run id.
async fn first_run_id(host: &Host, id: &str) -> String {
    let inc = host
        .wait_for(&format!("/api/incidents/{id}"), |v| {
            v["incident"]["runs"][0]["run_id"].is_string()
        })
        .await;
    inc["incident"]["runs"][0]["run_id"].as_str().unwrap().to_string()
}

/// One field of `/proc/PID/status` (`Uid`, `CapEff` …).
fn proc_status(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

/// What the kernel says about a sandbox process, and what its faults do to runs: confinement
/// read from `/proc`, a kernel OOM kill, a process frozen past the Job's deadline, a cordoned
/// node, an image missing from the node, a kubelet that stops reporting mid-run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_processes_are_confined_and_their_faults_end_runs_on_a_real_node() {
    let _node = node_lock().await;
    let cp = ControlPlane::with_node(false).await;
    let node = cp.node.as_ref().unwrap();
    let client = cp.client.clone();
    let redis = RedisServer::start_for_node(&node.gateway);
    ok(cp.kubectl(&["create", "namespace", NS]));
    let rbac = manifests().join("rbac.yaml");
    ok(cp.kubectl(&["-n", NS, "apply", "--server-side", "-f", rbac.to_str().unwrap()]));
    cp.redis_secret(NS, &redis.url_at(&node.gateway));
    ok(cp.kubectl(&["-n", NS, "create", "secret", "generic", "x", "--from-literal=value=v"]));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    for cm in [
        hostile_recipe("slow", "Slow", "sleep", "sleep_ms = \"1500\"", "timeout_ms = 2000"),
        hostile_recipe(
            "slower",
            "Slower",
            "sleep",
            "sleep_ms = \"16000\"",
            "timeout_ms = 30000",
        ),
        hostile_recipe("hog", "Hog", "alloc", "", "memory_mib = 64"),
    ] {
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    // The process's own overhead is set below what it needs, so a recipe that fills its memory
    // meets the container's limit (64 + 4 MiB) in the kernel before its own in the engine.
    let host_kubeconfig = cp.service_account_kubeconfig(NS, "euphrosyne").await;
    let config = format!(
        "executor = \"kube\"\nredis_prefix = \"k8s\"\nkubeconfig = \"{}\"\n[kube]\nnamespace = \"{NS}\"\nimage = \"euphrosyne:latest\"\nimage_pull_policy = \"Never\"\nstart_slack_seconds = 3\nprocess_overhead_mib = 4",
        host_kubeconfig.display()
    );
    let host = Host::start_with_env(|_| {}, &config, &[], &[("EUPHROSYNE_REDIS_URL", &redis.url())]);
    host.wait_for("/api/status", |s| recipe_names(s).len() == 3).await;

    // Confinement, as the kernel reports it for the running sandbox process.
    let id = post_alert(&host, "Slow", "confined").await;
    let run_id = first_run_id(&host, &id).await;
    let pid = node.sandbox_pid(&run_id).await;
    assert_eq!(proc_status(pid, "Uid"), "65532\t65532\t65532\t65532");
    assert_eq!(proc_status(pid, "Gid"), "65532\t65532\t65532\t65532");
    for caps in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(proc_status(pid, caps), "0000000000000000", "{caps}");
    }
    assert_eq!(proc_status(pid, "NoNewPrivs"), "1");
    assert_eq!(proc_status(pid, "Seccomp"), "2", "a seccomp filter (mode 2) is on");
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let root = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .expect("a root mount");
    let options = root.split(' ').nth(5).unwrap();
    assert!(options.split(',').any(|o| o == "ro"), "root mounted read-only: {root}");
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let memory = cgroup
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
        .expect("a memory cgroup");
    let limit = std::fs::read_to_string(format!("/sys/fs/cgroup/memory{memory}/memory.limit_in_bytes")).unwrap();
    assert_eq!(
        limit.trim(),
        ((64u64 + 4) << 20).to_string(),
        "the container's memory limit"
    );
    let mut peak = 0u64;
    while let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        if let Some(kb) = s.lines().find_map(|l| l.strip_prefix("VmHWM:")) {
            peak = peak.max(kb.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("the sandbox process's peak resident memory: {peak} kB");
    let inc = analysed(&host, &id).await;
    assert_eq!(
        inc["incident"]["runs"][0]["status"], "ok",
        "{:#}",
        inc["incident"]["runs"]
    );
    assert_eq!(
        inc["incident"]["runs"][0]["result"]["cache"], "compiled",
        "no artifact key here: the sandbox compiles"
    );
    // What the process reports of itself agrees with what the kernel showed from outside.
    let t = &inc["incident"]["runs"][0]["result"]["timings"];
    let reported = t["process_peak_rss_kib"].as_u64().unwrap();
    assert!(
        reported > 8 << 10 && reported <= (64 + 4) << 10 && reported.abs_diff(peak) < 8 << 10,
        "reported peak {reported} KiB, seen from /proc {peak} kB"
    );
    assert!(t["process_cpu_us"].as_u64().unwrap() > 0, "{t:#}");

    // Over the memory limit: the kernel kills the process (OOMKilled, exit 137); reported once,
    // as over its limit.
    let id = post_alert(&host, "Hog", "hog").await;
    let inc = analysed(&host, &id).await;
    let runs = inc["incident"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["status"], "limit-exceeded", "{:#}", runs[0]);
    let msg = runs[0]["result"]["message"].as_str().unwrap();
    assert!(msg.contains("OOM-killed (over its memory limit of 68Mi)"), "{msg}");
    let run_id = runs[0]["run_id"].as_str().unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pod = pods
        .list(&ListParams::default().labels(&format!("euphrosyne.io/run={run_id}")))
        .await
        .unwrap()
        .items
        .remove(0);
    let state = serde_json::to_value(&pod.status.unwrap().container_statuses.unwrap()[0].state).unwrap();
    assert_eq!(state["terminated"]["reason"], "OOMKilled", "{state:#}");
    assert_eq!(state["terminated"]["exitCode"], 137, "{state:#}");

    // Frozen mid-run: the process never publishes; the Job controller stops it at its deadline
    // (2 s timeout + 3 s to start) and the run closes then, timed out; the process is gone.
    let id = post_alert(&host, "Slow", "frozen").await;
    let run_id = first_run_id(&host, &id).await;
    let pid = node.sandbox_pid(&run_id).await;
    let _ = std::process::Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status();
    let inc = analysed(&host, &id).await;
    let run = &inc["incident"]["runs"][0];
    assert_eq!(run["status"], "timed-out", "{run:#}");
    let msg = run["result"]["message"].as_str().unwrap();
    assert!(msg.contains("activeDeadlineSeconds (5 s)"), "{msg}");
    let started = Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the frozen sandbox was never killed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A cordoned node: the scheduler cannot place the pod; the run closes at once, its Job is
    // deleted.
    ok(cp.kubectl(&["cordon", &node.name]));
    closed_at_once(&host, &client, "cordoned", &["cannot be scheduled", "unschedulable"]).await;
    ok(cp.kubectl(&["uncordon", &node.name]));

    // The image is not on the node and may not be pulled: closed at once, saying so.
    ok(node.ctr(&["images", "rm", "docker.io/library/euphrosyne:latest"]));
    closed_at_once(
        &host,
        &client,
        "no-image",
        &[
            "image `euphrosyne:latest` is not on node euphrosyne-node",
            "ErrImageNeverPull",
        ],
    )
    .await;
    let image = common::cluster::image();
    ok(node.ctr(&[
        "images",
        "import",
        "--base-name",
        "docker.io/library/euphrosyne",
        image.to_str().unwrap(),
    ]));

    // Evicted mid-run: the run ends at once, long before its deadline (30 s + 3 s), saying how
    // the pod ended; and it never runs twice — a replacement pod, if the Job controller made one
    // before it saw the failure, finds the run already started.
    let id = post_alert(&host, "Slower", "evicted").await;
    let run_id = first_run_id(&host, &id).await;
    node.sandbox_pid(&run_id).await;
    let of_run = ListParams::default().labels(&format!("euphrosyne.io/run={run_id}"));
    let first_pod = pods.list(&of_run).await.unwrap().items[0]
        .metadata
        .name
        .clone()
        .unwrap();
    pods.evict(&first_pod, &Default::default()).await.unwrap();
    let evicted = Instant::now();
    let inc = analysed(&host, &id).await;
    let run = &inc["incident"]["runs"][0];
    let msg = run["result"]["message"].as_str().unwrap();
    // The pod may still be there, killed (exit 143), or already gone when the host looks.
    assert!(
        (run["status"] == "trapped" && msg.contains(&format!("euphrosyne-{run_id} failed with exit code")))
            || (run["status"] == "timed-out" && msg.contains("its pod was stopped before it ran to an exit — evicted")),
        "{run:#}"
    );
    assert!(
        evicted.elapsed() < Duration::from_secs(15),
        "closed after {:?}",
        evicted.elapsed()
    );
    for p in pods.list(&of_run).await.unwrap().items {
        let name = p.metadata.name.unwrap();
        if name != first_pod
            && let Ok(log) = pods.logs(&name, &Default::default()).await
        {
            assert!(log.is_empty() || log.contains("not running it twice"), "{name}: {log}");
        }
    }

    // The kubelet stops reporting mid-run (the node goes NotReady); the container runs on and
    // its result arrives once; when the kubelet is back, the Job completes with its one pod.
    let id = post_alert(&host, "Slower", "kubelet-frozen").await;
    let run_id = first_run_id(&host, &id).await;
    node.sandbox_pid(&run_id).await;
    let frozen = node.freeze_kubelet();
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    until("the node goes NotReady", Duration::from_secs(14), || async {
        let n = nodes.get(&node.name).await.unwrap();
        let ready = n.status?.conditions?.into_iter().find(|c| c.type_ == "Ready");
        ready.is_some_and(|c| c.status != "True").then_some(())
    })
    .await;
    let inc = analysed(&host, &id).await;
    let runs = inc["incident"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["status"], "ok", "{:#}", runs[0]);
    drop(frozen);
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    until("the Job completes", Duration::from_secs(30), || async {
        let job = jobs.get(&format!("euphrosyne-{run_id}")).await.unwrap();
        (job.status.as_ref().and_then(|s| s.succeeded) == Some(1)).then_some(())
    })
    .await;
    let pods = pods
        .list(&ListParams::default().labels(&format!("euphrosyne.io/run={run_id}")))
        .await
        .unwrap();
    assert_eq!(pods.items.len(), 1, "run once");
    let incident = host.json(&format!("/api/incidents/{id}")).await;
    assert_eq!(incident["incident"]["runs"].as_array().unwrap().len(), 1);
}

/// A run whose pod can never start (posted as alert `Slow`, group `group`): closed at once —
/// well before its deadline (2 s + 3 s) — timed out, saying each of `says`; its Job deleted.
async fn closed_at_once(host: &Host, client: &kube::Client, group: &str, says: &[&str]) {
    let posted = Instant::now();
    let id = post_alert(host, "Slow", group).await;
    let inc = analysed(host, &id).await;
    let run = &inc["incident"]["runs"][0];
    assert_eq!(run["status"], "timed-out", "{run:#}");
    let msg = run["result"]["message"].as_str().unwrap();
    assert!(says.iter().all(|s| msg.contains(s)), "{msg}");
    assert!(
        posted.elapsed() < Duration::from_secs(5),
        "closed after {:?}",
        posted.elapsed()
    );
    job_gone(client, run["run_id"].as_str().unwrap()).await;
}

/// Job `euphrosyne-RUN_ID` deleted (or being deleted), within 10 s.
async fn job_gone(client: &kube::Client, run_id: &str) {
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    until(&format!("Job euphrosyne-{run_id} deleted"), TEN_S, || async {
        let job = jobs.get_opt(&format!("euphrosyne-{run_id}")).await.unwrap();
        job.is_none_or(|j| j.metadata.deletion_timestamp.is_some())
            .then_some(())
    })
    .await;
}
