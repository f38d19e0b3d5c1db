//! The Kubernetes test harness: a real control plane (etcd, kube-apiserver and
//! kube-controller-manager, started by `scripts/kube-up`), and with [`ControlPlane::with_node`]
//! a **real node**: kube-scheduler, a kubelet and containerd (`scripts/kube-up --node`) running
//! the image `scripts/build-image` makes of the `euphrosyne` binary under test, imported as
//! `euphrosyne:latest`. Pods reach the machine only at the node's gateway address (a test's
//! Redis listens there: [`RedisServer::start_for_node`](super::redis::RedisServer)).
//!
//! One node per machine: the tests that start one hold [`node_lock`] for their whole run, so
//! the real-node tests of a binary run one after another.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::ListParams;

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
    /// The real node, when started [`ControlPlane::with_node`].
    pub node: Option<RealNode>,
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

    /// With a real node running the image of the binary under test (`euphrosyne:latest`,
    /// pull policy `Never`). Hold [`node_lock`] first.
    pub async fn with_node(audit: bool) -> ControlPlane {
        Self::start_full(if audit { "1" } else { "0" }, true).await
    }

    async fn start_audited(audit: &str) -> ControlPlane {
        Self::start_full(audit, false).await
    }

    async fn start_full(audit: &str, node: bool) -> ControlPlane {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kube-up");
        let mut cmd = Command::new(&script);
        if node {
            cmd.arg("--node");
        }
        cmd.arg(dir.path()).env("EUPHROSYNE_KUBE_AUDIT", audit);
        if node {
            cmd.arg(format!("docker.io/library/euphrosyne={}", image().display()));
        }
        let out = cmd.output().unwrap();
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
        let node = node.then(|| RealNode {
            name: var("EUPHROSYNE_NODE"),
            gateway: var("EUPHROSYNE_NODE_GATEWAY"),
            containerd: PathBuf::from(var("CONTAINERD_ADDRESS")),
            dir: dir.path().join("node"),
        });
        ControlPlane {
            server: var("EUPHROSYNE_KUBE_API"),
            ca: PathBuf::from(var("EUPHROSYNE_KUBE_CA")),
            kubeconfig,
            client,
            node,
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

    /// `kubectl apply -k manifests/` (server-side: a recipe ConfigMap is too big for client-side
    /// apply's last-applied-configuration annotation, 256 KiB), with the host's and Redis'
    /// Deployments at 0 replicas: their images are in registries this machine cannot reach (and
    /// must not try to), and the tests run the host as a local process with its own
    /// redis-server.
    pub fn apply_manifests(&self) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests");
        let rendered = ok(self.kubectl(&["kustomize", dir.to_str().unwrap()]));
        let mut items = vec![];
        for doc in rendered.split("\n---\n") {
            // As JSON: re-emitted YAML could turn a string like `yes` into a boolean for kubectl.
            let mut v: serde_json::Value = serde_yaml::from_str(doc).unwrap();
            if v["kind"] == "Deployment" {
                v["spec"]["replicas"] = 0.into();
            }
            items.push(v);
        }
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
        let file = self.dir.path().join("manifests.json");
        std::fs::write(&file, list.to_string()).unwrap();
        ok(self.kubectl(&["apply", "--server-side", "-f", file.to_str().unwrap()]));
    }

    /// The Secret `euphrosyne-redis` in `namespace` that sandbox Jobs read the Redis URL from
    /// (README: Deploy to a cluster).
    pub fn redis_secret(&self, namespace: &str, url: &str) {
        self.create_redis_secret(namespace, url, &[]);
    }

    /// The same Secret with an `artifact-key` too (the host then ships its Jobs precompiled
    /// code sealed with it; start the host with `EUPHROSYNE_ARTIFACT_KEY` = [`ARTIFACT_KEY`]).
    pub fn redis_secret_with_artifact_key(&self, namespace: &str, url: &str) {
        self.create_redis_secret(
            namespace,
            url,
            &[&format!("--from-literal=artifact-key={ARTIFACT_KEY}")],
        );
    }

    fn create_redis_secret(&self, namespace: &str, url: &str, more: &[&str]) {
        let url = format!("--from-literal=url={url}");
        let mut args = vec![
            "-n",
            namespace,
            "create",
            "secret",
            "generic",
            "euphrosyne-redis",
            &url,
            "--from-literal=password=unused",
        ];
        args.extend_from_slice(more);
        ok(self.kubectl(&args));
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

/// The artifact key the tests' hosts and Jobs share.
pub const ARTIFACT_KEY: &str = "test-artifact-key-0123456789abcdef0123456789";

/// Held by a test for as long as its real node runs (one per machine; `scripts/kube-up --node`
/// refuses a second).
pub async fn node_lock() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// The image archive of the `euphrosyne` binary under test (`scripts/build-image`'s default
/// path, so the one `scripts/test` built is used), made again when the binary is newer.
pub fn image() -> PathBuf {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let bin = super::euphrosyne_bin();
            let out = super::target_dir().join("image/euphrosyne.tar");
            let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
            if mtime(&out).is_none() || mtime(&out) < mtime(&bin) {
                let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-image");
                ok(Command::new(script).arg(&out).arg(&bin).output().unwrap());
            }
            out
        })
        .clone()
}

/// The real node of a [`ControlPlane::with_node`]: a kubelet, kube-scheduler and containerd on
/// this machine.
pub struct RealNode {
    /// The Node's name.
    pub name: String,
    /// The address pods reach the machine at.
    pub gateway: String,
    /// containerd's socket.
    pub containerd: PathBuf,
    /// `DIR/node` of scripts/kube-up: the pid files, logs and state.
    pub dir: PathBuf,
}

/// A process stopped with SIGSTOP; continued when dropped.
pub struct Stopped(u32);

impl Drop for Stopped {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

impl RealNode {
    fn pid(&self, name: &str) -> u32 {
        std::fs::read_to_string(self.dir.join(format!("{name}.pid")))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Stop the scheduler: new pods stay pending (no one looks at them, so none is
    /// `Unschedulable` either) until the guard is dropped.
    pub fn hold_scheduling(&self) -> Stopped {
        self.stop("scheduler")
    }

    /// Freeze the kubelet (the node stops reporting; its containers run on) until dropped.
    pub fn freeze_kubelet(&self) -> Stopped {
        self.stop("kubelet")
    }

    /// SIGSTOP the node's process `name` (its pid file under `DIR/node`) until the guard drops.
    fn stop(&self, name: &str) -> Stopped {
        let pid = self.pid(name);
        signal(pid, "STOP");
        Stopped(pid)
    }

    /// `ctr -n k8s.io ARGS` against the node's containerd.
    pub fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.containerd)
            .args(["-n", "k8s.io"])
            .args(args)
            .output()
            .unwrap()
    }

    /// The pid (in this machine's pid namespace) of the sandbox process of run `run_id`, once it
    /// runs; waits up to 30 s.
    pub async fn sandbox_pid(&self, run_id: &str) -> u32 {
        let started = std::time::Instant::now();
        loop {
            if let Some(pid) = sandbox_process(run_id) {
                return pid;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no sandbox process for run {run_id}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The process whose command line is `euphrosyne sandbox --run RUN_ID …`.
pub fn sandbox_process(run_id: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is = args.len() > 3
            && args[0].ends_with(b"euphrosyne")
            && args[1] == b"sandbox"
            && args.windows(2).any(|w| w[0] == b"--run" && w[1] == run_id.as_bytes());
        is.then_some(pid)
    })
}
