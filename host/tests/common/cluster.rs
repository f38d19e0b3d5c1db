//! The Kubernetes test harness: a real control plane (etcd, kube-apiserver and
//! kube-controller-manager, started by `scripts/kube-up`) and a **test node agent** standing in
//! for the kubelet, which this machine cannot run. The agent registers a Node, binds the pending
//! pods Euphrosyne created (label `app.kubernetes.io/managed-by=euphrosyne`), and runs each pod's
//! command as a local process — `euphrosyne` is the freshly built binary — with its ConfigMap,
//! Secret, projected and ServiceAccount-token volumes written to temp dirs (mount paths in the
//! command and environment rewritten to them), its env resolved (values and secretKeyRefs), and
//! `KUBERNETES_SERVICE_HOST`/`_PORT` pointing at the apiserver as a kubelet would. It reports
//! the pod's status back — Running, then Succeeded or Failed with the exit code, `OOMKilled` when
//! the process's resident memory passes the container's memory limit — so the real Job
//! controller completes or fails the Job. Pods deleted (a Job past its deadline) are killed and
//! force-removed.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

/// The stdout of a `kubectl` that succeeded; a panic with its output otherwise.
pub fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "kubectl failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

pub struct ControlPlane {
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub server: String,
    pub ca: PathBuf,
    pub client: kube::Client,
}

impl ControlPlane {
    /// Start one (`scripts/kube-up`; builds the binaries first if they are not cached).
    pub async fn start() -> ControlPlane {
        Self::start_with(false).await
    }

    /// With `audit`, the apiserver logs every request's metadata to `dir/audit.log`.
    pub async fn start_with(audit: bool) -> ControlPlane {
        Self::start_audited(if audit { "1" } else { "0" }).await
    }

    /// The apiserver logs every request to `dir/audit.log`, its body included.
    #[allow(dead_code)]
    pub async fn start_with_request_audit() -> ControlPlane {
        Self::start_audited("request").await
    }

    async fn start_audited(audit: &str) -> ControlPlane {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kube-up");
        let out = Command::new(&script)
            .arg(dir.path())
            .env("EUPHROSYNE_KUBE_AUDIT", audit)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/kube-up failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let env = std::fs::read_to_string(dir.path().join("env")).unwrap();
        let var = |name: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                .unwrap()
                .to_string()
        };
        let kubeconfig = PathBuf::from(var("KUBECONFIG"));
        let client = euphrosyne::capability::kube::client_from_kubeconfig(&kubeconfig)
            .await
            .unwrap();
        ControlPlane {
            server: var("EUPHROSYNE_KUBE_API"),
            ca: PathBuf::from(var("EUPHROSYNE_KUBE_CA")),
            kubeconfig,
            client,
            dir,
        }
    }

    /// `kubectl` against this control plane (as admin).
    pub fn kubectl(&self, args: &[&str]) -> std::process::Output {
        Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .output()
            .unwrap()
    }

    /// The Secret `euphrosyne-redis` in `namespace` that sandbox Jobs read the Redis URL from
    /// (README: Deploy to a cluster).
    pub fn redis_secret(&self, namespace: &str, url: &str) {
        ok(self.kubectl(&[
            "-n",
            namespace,
            "create",
            "secret",
            "generic",
            "euphrosyne-redis",
            &format!("--from-literal=url={url}"),
            "--from-literal=password=unused",
        ]));
    }

    /// A kubeconfig for a ServiceAccount, from its token Secret.
    pub async fn service_account_kubeconfig(&self, namespace: &str, sa: &str) -> PathBuf {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let token = loop {
            let list = secrets.list(&ListParams::default()).await.unwrap();
            let found = list.items.into_iter().find(|s| {
                s.type_.as_deref() == Some("kubernetes.io/service-account-token")
                    && s.metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get("kubernetes.io/service-account.name"))
                        .is_some_and(|n| n == sa)
            });
            if let Some(s) = found {
                let data = s.data.unwrap_or_default();
                break String::from_utf8(data["token"].0.clone()).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let path = self.dir.path().join(format!("{sa}.kubeconfig"));
        let kc = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: {sa}\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context: {{cluster: test, user: {sa}, namespace: {namespace}}}\ncurrent-context: test\n",
            self.server,
            self.ca.display()
        );
        std::fs::write(&path, kc).unwrap();
        path
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kube-down");
        let _ = Command::new(script).arg(self.dir.path()).output();
    }
}

/// The test node agent. Dropping it stops it.
pub struct NodeAgent {
    task: tokio::task::JoinHandle<()>,
    /// While set, bound pods wait before they start (to change things under a run).
    pub hold: Arc<AtomicBool>,
    /// Pods started so far.
    pub started: Arc<AtomicUsize>,
    /// Per run id: when the agent first saw its pod, when the process started and ended.
    pub timings: Timings,
}

/// Per run id: (pod first seen, process started, process ended), wall clock.
pub type Timings = Arc<std::sync::Mutex<HashMap<String, (SystemTime, SystemTime, Option<SystemTime>)>>>;

impl Drop for NodeAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const NODE: &str = "test-node";

/// Secret keys and the file names they are written to.
type KeyPaths = Vec<(String, String)>;

impl NodeAgent {
    pub async fn start(cp: &ControlPlane, namespace: &str) -> NodeAgent {
        let nodes: Api<Node> = Api::all(cp.client.clone());
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
        }))
        .unwrap();
        let _ = nodes.create(&PostParams::default(), &node).await;
        let port = cp.server.rsplit(':').next().unwrap().to_string();
        let agent = Agent {
            client: cp.client.clone(),
            namespace: namespace.into(),
            binary: super::euphrosyne_bin(),
            api_port: port,
            work: tempfile::tempdir().unwrap(),
            hold: Arc::default(),
            started: Arc::default(),
            timings: Arc::default(),
            seen: Default::default(),
        };
        let (hold, started, timings) = (agent.hold.clone(), agent.started.clone(), agent.timings.clone());
        let task = tokio::spawn(agent.run());
        NodeAgent {
            task,
            hold,
            started,
            timings,
        }
    }
}

struct Agent {
    client: kube::Client,
    namespace: String,
    binary: PathBuf,
    api_port: String,
    work: tempfile::TempDir,
    hold: Arc<AtomicBool>,
    started: Arc<AtomicUsize>,
    timings: Timings,
    seen: std::sync::Mutex<HashMap<String, SystemTime>>,
}

struct Running {
    kill: tokio::sync::oneshot::Sender<()>,
}

impl Agent {
    async fn run(self) {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let lp = ListParams::default().labels("app.kubernetes.io/managed-by=euphrosyne");
        let mut running: HashMap<String, Running> = HashMap::new();
        let me = Arc::new(self);
        loop {
            let list = match pods.list(&lp).await {
                Ok(l) => l.items,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let names: std::collections::HashSet<String> =
                list.iter().filter_map(|p| p.metadata.name.clone()).collect();
            running.retain(|name, _| names.contains(name)); // dropped sender: the process is killed
            for pod in list {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let spec = pod.spec.clone().unwrap_or_default();
                me.seen
                    .lock()
                    .unwrap()
                    .entry(name.clone())
                    .or_insert_with(SystemTime::now);
                if pod.metadata.deletion_timestamp.is_some() {
                    // Deleted (deadline, TTL, cascade): kill it and let the object go.
                    if let Some(r) = running.remove(&name) {
                        let _ = r.kill.send(());
                    }
                    let _ = pods.delete(&name, &DeleteParams::default().grace_period(0)).await;
                    continue;
                }
                let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
                if spec.node_name.is_none() {
                    let binding = json!({"apiVersion": "v1", "kind": "Binding",
                        "metadata": {"name": name}, "target": {"apiVersion": "v1", "kind": "Node", "name": NODE}});
                    let bound = pods
                        .create_subresource::<_, serde_json::Value>("binding", &name, &PostParams::default(), &binding)
                        .await;
                    if bound.is_err() {
                        continue;
                    }
                    // Bound to us: start it in this same pass, as a kubelet watching would.
                }
                if running.contains_key(&name) || phase == "Succeeded" || phase == "Failed" || phase == "Running" {
                    continue;
                }
                if me.hold.load(Ordering::SeqCst) {
                    continue;
                }
                let (tx, rx) = tokio::sync::oneshot::channel();
                running.insert(name.clone(), Running { kill: tx });
                me.started.fetch_add(1, Ordering::SeqCst);
                let this = me.clone();
                tokio::spawn(async move { this.run_pod(pod, rx).await });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn run_pod(self: Arc<Self>, pod: Pod, kill: tokio::sync::oneshot::Receiver<()>) {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let name = pod.metadata.name.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let container = spec.containers[0].clone();
        let dir = self.work.path().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        // Volumes → directories.
        let mut volume_dirs: HashMap<String, PathBuf> = HashMap::new();
        for v in spec.volumes.clone().unwrap_or_default() {
            let vd = dir.join(format!("vol-{}", v.name));
            std::fs::create_dir_all(&vd).unwrap();
            if let Some(cm) = &v.config_map {
                let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
                if let Ok(cm) = api.get(&cm.name).await {
                    for (k, val) in cm.data.unwrap_or_default() {
                        std::fs::write(vd.join(k), val).unwrap();
                    }
                    for (k, val) in cm.binary_data.unwrap_or_default() {
                        std::fs::write(vd.join(k), val.0).unwrap();
                    }
                }
            }
            // (Secret name, the keys to write as which file; all keys when `None`).
            let mut secrets: Vec<(String, Option<KeyPaths>)> = vec![];
            if let Some(s) = &v.secret {
                let items = s
                    .items
                    .as_ref()
                    .map(|i| i.iter().map(|k| (k.key.clone(), k.path.clone())).collect());
                secrets.push((s.secret_name.clone().unwrap_or_default(), items));
            }
            if let Some(p) = &v.projected {
                for src in p.sources.clone().unwrap_or_default() {
                    if let Some(s) = src.secret {
                        let items = s
                            .items
                            .as_ref()
                            .map(|i| i.iter().map(|k| (k.key.clone(), k.path.clone())).collect());
                        secrets.push((s.name.clone(), items));
                    }
                }
            }
            for (secret, items) in secrets {
                let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
                if let Ok(s) = api.get(&secret).await {
                    let data: BTreeMap<String, Vec<u8>> =
                        s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
                    match items {
                        Some(items) => {
                            for (key, path) in items {
                                if let Some(v) = data.get(&key) {
                                    std::fs::write(vd.join(path), v).unwrap();
                                }
                            }
                        }
                        None => {
                            for (k, v) in data {
                                std::fs::write(vd.join(k), v).unwrap();
                            }
                        }
                    }
                }
            }
            volume_dirs.insert(v.name.clone(), vd);
        }
        let mounts: Vec<(String, PathBuf)> = container
            .volume_mounts
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| volume_dirs.get(&m.name).map(|d| (m.mount_path.clone(), d.clone())))
            .collect();
        let map = |s: &str| -> String {
            for (path, d) in &mounts {
                if let Some(rest) = s.strip_prefix(path.as_str()) {
                    return format!("{}{rest}", d.display());
                }
            }
            s.to_string()
        };
        // Environment, as a kubelet would give it.
        let mut env: Vec<(String, String)> = vec![
            ("KUBERNETES_SERVICE_HOST".into(), "127.0.0.1".into()),
            ("KUBERNETES_SERVICE_PORT".into(), self.api_port.clone()),
            ("HOSTNAME".into(), name.clone()),
        ];
        for e in container.env.clone().unwrap_or_default() {
            let value = match (e.value, e.value_from) {
                (Some(v), _) => Some(map(&v)),
                (None, Some(from)) => match from.secret_key_ref {
                    Some(r) => {
                        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
                        api.get(&r.name)
                            .await
                            .ok()
                            .and_then(|s| s.data.unwrap_or_default().get(&r.key).cloned())
                            .map(|b| String::from_utf8_lossy(&b.0).to_string())
                    }
                    None => None,
                },
                _ => None,
            };
            if let Some(v) = value {
                env.push((e.name, v));
            }
        }
        if let Some((_, d)) = mounts
            .iter()
            .find(|(p, _)| p == euphrosyne::capability::kube::SERVICE_ACCOUNT_DIR)
        {
            env.push(("EUPHROSYNE_SERVICEACCOUNT_DIR".into(), d.display().to_string()));
        }
        let mut command: Vec<String> = container.command.clone().unwrap_or_default();
        command.extend(container.args.clone().unwrap_or_default());
        let program = if command[0] == "euphrosyne" {
            self.binary.clone()
        } else {
            PathBuf::from(&command[0])
        };
        let args: Vec<String> = command[1..].iter().map(|a| map(a)).collect();
        let limit_bytes = container
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("memory"))
            .and_then(|q| q.0.strip_suffix("Mi").and_then(|n| n.parse::<u64>().ok()))
            .map(|mib| mib << 20);
        let started = k8s_openapi::jiff::Timestamp::now().to_string();
        let image = container.image.clone().unwrap_or_default();
        let status = |state: serde_json::Value, phase: &str| {
            json!({"status": {"phase": phase, "startTime": started,
                "containerStatuses": [{"name": container.name, "image": image, "imageID": "", "ready": phase == "Running",
                    "restartCount": 0, "state": state}]}})
        };
        let _ = pods
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(status(json!({"running": {"startedAt": started}}), "Running")),
            )
            .await;
        let child = tokio::process::Command::new(&program)
            .args(&args)
            .env_clear()
            .envs(env)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                let state = json!({"terminated": {"exitCode": 128, "reason": "StartError", "message": e.to_string()}});
                let _ = pods
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(status(state, "Failed")))
                    .await;
                return;
            }
        };
        let pid = child.id().unwrap_or(0);
        let run_id = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("euphrosyne.io/run"))
            .cloned()
            .unwrap_or_default();
        let seen = self
            .seen
            .lock()
            .unwrap()
            .get(&name)
            .copied()
            .unwrap_or_else(SystemTime::now);
        self.timings
            .lock()
            .unwrap()
            .insert(run_id.clone(), (seen, SystemTime::now(), None));
        let mut kill = kill;
        let mut oom = false;
        let exit = loop {
            tokio::select! {
                s = child.wait() => break s.ok().and_then(|s| s.code()).unwrap_or(137),
                _ = &mut kill => {
                    let _ = child.kill().await;
                    return;
                }
                _ = tokio::time::sleep(Duration::from_millis(20)) => {
                    if let Some(limit) = limit_bytes
                        && rss(pid).is_some_and(|r| r > limit)
                    {
                        oom = true;
                        let _ = child.kill().await;
                    }
                }
            }
        };
        if let Some(t) = self.timings.lock().unwrap().get_mut(&run_id) {
            t.2 = Some(SystemTime::now());
        }
        let mut stderr = String::new();
        if let Some(mut s) = child.stderr.take() {
            use tokio::io::AsyncReadExt;
            let _ = s.read_to_string(&mut stderr).await;
        }
        let finished = k8s_openapi::jiff::Timestamp::now().to_string();
        let (phase, reason, code) = match (oom, exit) {
            (true, _) => ("Failed", "OOMKilled", 137),
            (false, 0) => ("Succeeded", "Completed", 0),
            (false, c) => ("Failed", "Error", c),
        };
        let tail: String = stderr
            .chars()
            .rev()
            .take(400)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let state = json!({"terminated": {"exitCode": code, "reason": reason, "message": tail,
            "startedAt": started, "finishedAt": finished}});
        let _ = pods
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(status(state, phase)))
            .await;
    }
}

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
