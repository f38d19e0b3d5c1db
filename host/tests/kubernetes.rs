//! The Kubernetes suite, on a real control plane (etcd + kube-apiserver + kube-controller-manager
//! built from Debian's kubernetes source, `scripts/kube-up`) with the test node agent standing in
//! for the kubelet (`common/cluster.rs`):
//!
//! - `manifests/` applied for real (`kubectl apply -k`), and every manifest accepted by
//!   `kubectl apply --dry-run=server`;
//! - the host with its own ServiceAccount's token (the manifests' RBAC, not admin), recipes from
//!   the packed ConfigMaps, `executor = "kube"`: an Alertmanager alert → a hardened Job per run,
//!   completed by the real Job controller → result through Redis → analysis → approval → an action
//!   Job patches a real Deployment;
//! - a bad recipe ConfigMap reported on `/api/status` and as an Event, and gone when deleted;
//! - tamper: the ConfigMap's bytes changed after fan-out → that run ends `digest-mismatch`;
//! - failure: a Job whose pod fails closes its run at once with the pod's exit code; one past
//!   its deadline as timed out; a pod reported OOM-killed as over its limit; a pod the scheduler
//!   cannot place at once, its Job deleted.

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::cluster::{ControlPlane, NodeAgent, ok};
use common::host::*;
use common::redis::RedisServer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const NS: &str = "euphrosyne";

fn manifests() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

/// A crashlooping pod of Deployment `web` (there is no Deployment controller: its ReplicaSet
/// and pod are made by hand, the pod bound elsewhere so the node agent leaves it alone).
async fn crashlooping_web(client: &kube::Client, pod_name: &str) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let dep = match deployments.get_opt("web").await.unwrap() {
        Some(d) => d,
        None => {
            let d: Deployment = serde_json::from_value(json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}},
                                      "spec": {"containers": [{"name": "web", "image": "shop:2"}]}}}}))
            .unwrap();
            deployments.create(&PostParams::default(), &d).await.unwrap()
        }
    };
    let rs_api: Api<k8s_openapi::api::apps::v1::ReplicaSet> = Api::namespaced(client.clone(), NS);
    let rs = match rs_api.get_opt("web-5d9c").await.unwrap() {
        Some(rs) => rs,
        None => {
            let rs = serde_json::from_value(json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": "web-5d9c", "labels": {"app": "web"}, "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": dep.metadata.uid, "controller": true}]},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}},
                                      "spec": {"containers": [{"name": "web", "image": "shop:2"}]}}}}))
            .unwrap();
            rs_api.create(&PostParams::default(), &rs).await.unwrap()
        }
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod_name, "labels": {"app": "web"}, "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d9c", "uid": rs.metadata.uid, "controller": true}]},
        "spec": {"nodeName": "elsewhere", "automountServiceAccountToken": false,
                 "containers": [{"name": "web", "image": "shop:2"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let status = json!({"status": {"phase": "Running", "containerStatuses": [{
        "name": "web", "image": "shop:2", "imageID": "", "ready": false, "restartCount": 7,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}});
    pods.patch_status(pod_name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
}

fn crashloop_alert(group: &str, pod: &str) -> serde_json::Value {
    alertmanager_body(
        group,
        "firing",
        json!({"alertname": "KubePodCrashLooping", "namespace": NS, "pod": pod, "severity": "critical"}),
        json!({"summary": format!("{pod} is crashlooping")}),
        common::firing_since(),
        &format!("fp-{pod}"),
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
async fn alerts_become_hardened_jobs_on_a_real_control_plane() {
    let cp = ControlPlane::start().await;
    let client = cp.client.clone();
    let redis = RedisServer::start();

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
    ok(cp.kubectl(&["apply", "--server-side", "-k", dir.to_str().unwrap()]));
    cp.redis_secret(NS, &redis.url());
    crashlooping_web(&client, "web-5d9c-x7k2p").await;
    let agent = NodeAgent::start(&cp, NS).await;

    // The host as its own ServiceAccount: only the manifests' RBAC.
    let host_kubeconfig = cp.service_account_kubeconfig(NS, "euphrosyne").await;
    let config = format!(
        "executor = \"kube\"\nredis_prefix = \"k8s\"\nkubeconfig = \"{}\"\n[kube]\nnamespace = \"{NS}\"\nimage = \"euphrosyne:test\"\nstart_slack_seconds = 5",
        host_kubeconfig.display()
    );
    let host = Host::start_with_env(|_| {}, &config, &[], &[("EUPHROSYNE_REDIS_URL", &redis.url())]);
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
    let g1 = "{}:{alertname=\"KubePodCrashLooping\",pod=\"web-5d9c-x7k2p\"}";
    let r = host
        .post("/webhook", None)
        .json(&crashloop_alert(g1, "web-5d9c-x7k2p"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = incident_of(&host, g1).await;
    let inc = analysed(&host, &id).await;
    let run = &inc["incident"]["runs"][0];
    assert_eq!(run["recipe"], "pod-crashloop");
    assert_eq!(run["status"], "ok", "{run:#}");
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
    assert_eq!(c["image"], "euphrosyne:test");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(
        c["resources"]["limits"]["memory"], "160Mi",
        "64 MiB + 96 MiB for the process"
    );
    let done = Instant::now();
    loop {
        let j = &jobs_of(&client, "pod-crashloop").await[0];
        if j.status.as_ref().and_then(|s| s.succeeded) == Some(1) {
            break;
        }
        assert!(
            done.elapsed() < Duration::from_secs(10),
            "the Job controller never completed the Job"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

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
    let started = Instant::now();
    loop {
        let list = events.list(&ListParams::default()).await.unwrap().items;
        if list.iter().any(|e| {
            e.reason.as_deref() == Some("InvalidRecipe") && e.involved_object.name.as_deref() == Some("broken-recipe")
        }) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no InvalidRecipe Event");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cms.delete("broken-recipe", &Default::default()).await.unwrap();
    host.wait_for("/api/status", |s| {
        s["recipe_errors"].as_array().is_some_and(|e| e.is_empty())
    })
    .await;

    // Tamper: the ConfigMap's bytes change after fan-out, before the pod starts.
    agent.hold.store(true, Ordering::SeqCst);
    crashlooping_web(&client, "web-5d9c-tamper").await;
    let g2 = "{}:{alertname=\"KubePodCrashLooping\",pod=\"web-5d9c-tamper\"}";
    host.post("/webhook", None)
        .json(&crashloop_alert(g2, "web-5d9c-tamper"))
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
    agent.hold.store(false, Ordering::SeqCst);
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
    // controller fails the Job and the run closes at once with the exit code, long before the
    // incident deadline (20 s) or the Job's (15 s).
    agent.hold.store(true, Ordering::SeqCst);
    crashlooping_web(&client, "web-5d9c-fail").await;
    let g3 = "{}:{alertname=\"KubePodCrashLooping\",pod=\"web-5d9c-fail\"}";
    host.post("/webhook", None)
        .json(&crashloop_alert(g3, "web-5d9c-fail"))
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
    agent.hold.store(false, Ordering::SeqCst);
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
    agent.hold.store(true, Ordering::SeqCst);
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

    // The kubelet reports the pod OOM-killed (here the test plays the kubelet for that one pod):
    // the Job fails and the run closes at once as over its limit.
    let (run5, pod5) = held_run(&host, &client, "{}:{alertname=\"StuckJob\",n=\"5\"}").await;
    let status = json!({"status": {"phase": "Failed", "containerStatuses": [{
        "name": "sandbox", "image": "euphrosyne:test", "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}});
    Api::<Pod>::namespaced(client.clone(), NS)
        .patch_status(&pod5, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
    let r = closed_run(&host, &run5).await;
    assert_eq!(r["status"], "limit-exceeded", "{r:#}");
    assert!(r["result"]["message"].as_str().unwrap().contains("OOM-killed"), "{r:#}");

    // The scheduler cannot place the pod: the run closes at once, the Job is deleted.
    let (run6, pod6) = held_run(&host, &client, "{}:{alertname=\"StuckJob\",n=\"6\"}").await;
    let status = json!({"status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
        "reason": "Unschedulable", "message": "0/1 nodes are available: 1 Insufficient memory."}]}});
    Api::<Pod>::namespaced(client.clone(), NS)
        .patch_status(&pod6, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
    let r = closed_run(&host, &run6).await;
    assert_eq!(r["status"], "timed-out", "{r:#}");
    assert!(
        r["result"]["message"].as_str().unwrap().contains("Insufficient memory"),
        "{r:#}"
    );
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let started = Instant::now();
    while jobs
        .get_opt(&format!("euphrosyne-{run6}"))
        .await
        .unwrap()
        .is_some_and(|j| j.metadata.deletion_timestamp.is_none())
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the unschedulable Job was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The host dies while its Job runs, and the Job then fails: the host that comes back (a
    // restart here; a follower taking over is the same path) closes the run from the failed Job
    // at once, rather than at the incident deadline.
    let (run7, _) = held_run(&host, &client, "{}:{alertname=\"StuckJob\",n=\"7\"}").await;
    let mut host = host;
    host.child.kill().unwrap();
    host.child.wait().unwrap();
    let _: i64 = ::redis::cmd("DEL")
        .arg(format!("k8s:run:{run7}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    agent.hold.store(false, Ordering::SeqCst);
    let started = Instant::now();
    loop {
        let job = jobs.get(&format!("euphrosyne-{run7}")).await.unwrap();
        if job.status.and_then(|s| s.failed) == Some(1) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the Job never failed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // (Back with pod-crashloop chosen to run in the host's own engine.)
    let config = format!("{config}\nin_process = [\"pod-crashloop\"]");
    let host = Host::start_with_env(|_| {}, &config, &[], &[("EUPHROSYNE_REDIS_URL", &redis.url())]);
    let r = closed_run(&host, &run7).await;
    assert_eq!(r["status"], "trapped", "{r:#}");
    assert!(
        r["result"]["message"].as_str().unwrap().contains("exit code 3"),
        "{r:#}"
    );

    // Per-recipe executor: pod-crashloop now runs in-process — no Job — reading the cluster
    // through the host's client (its ServiceAccount may get pods).
    let jobs_before = jobs_of(&client, "pod-crashloop").await.len();
    let g8 = "{}:{alertname=\"KubePodCrashLooping\",pod=\"web-5d9c-x7k2p\",n=\"8\"}";
    let mut body = crashloop_alert(g8, "web-5d9c-x7k2p");
    body["alerts"][0]["fingerprint"] = json!("fp-in-process"); // not a retry of the first alert
    host.post("/webhook", None).json(&body).send().await.unwrap();
    let id8 = incident_of(&host, g8).await;
    let inc8 = analysed(&host, &id8).await;
    assert_eq!(
        inc8["incident"]["runs"][0]["status"], "ok",
        "{:#}",
        inc8["incident"]["runs"]
    );
    assert!(
        inc8["incident"]["analysis"]["summary"]
            .as_str()
            .unwrap()
            .contains("container web exits with code 1 (Error)")
    );
    assert_eq!(
        jobs_of(&client, "pod-crashloop").await.len(),
        jobs_before,
        "no Job for an in-process recipe"
    );
}

/// Post a StuckJob alert in `group` (the node agent holds pods), and return its run id and pod
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
    let started = Instant::now();
    loop {
        let list = pods
            .list(&ListParams::default().labels(&format!("euphrosyne.io/run={run_id}")))
            .await
            .unwrap();
        if let Some(p) = list.items.first() {
            return (run_id, p.metadata.name.clone().unwrap());
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no pod for {run_id}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The run `run_id`, once closed — well before the Job's deadline (6 s) could have done it.
async fn closed_run(host: &Host, run_id: &str) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let list = host.json("/api/incidents?state=analyzed").await;
        for inc in list["incidents"].as_array().unwrap() {
            let full = host
                .json(&format!("/api/incidents/{}", inc["id"].as_str().unwrap()))
                .await;
            let runs = full["incident"]["runs"].as_array().unwrap().clone();
            if let Some(r) = runs.into_iter().find(|r| r["run_id"] == run_id) {
                let took = started.elapsed();
                assert!(took < Duration::from_secs(4), "closed only after {took:?}");
                return r;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(10), "run {run_id} never closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_jobs(client: &kube::Client, recipe: &str, n: usize) {
    let started = Instant::now();
    while jobs_of(client, recipe).await.len() < n {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "Job {n} of {recipe} never created"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
