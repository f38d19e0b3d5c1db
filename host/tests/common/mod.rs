//! Test fixtures: the real components built from `recipes/` and `host/tests/guests/`, jobs for
//! them, and a loopback HTTP server. Build the components first (`scripts/test` does).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use euphrosyne::digest::Digest;
use euphrosyne::manifest::{Capabilities, Limits, Manifest};
use euphrosyne::model::{ActionRequest, Incident};
use euphrosyne::sandbox::{RunInput, RunJob};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The cargo target directory these tests were built into.
pub fn target_dir() -> PathBuf {
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(t);
    }
    // …/target/<profile>/deps/<test-binary>
    std::env::current_exe()
        .unwrap()
        .ancestors()
        .nth(3)
        .unwrap()
        .to_path_buf()
}

/// The `p` quantile (0–1) of `sorted` durations (the benches' p50 and p99).
pub fn pct(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The `euphrosyne` binary built beside this test.
pub fn euphrosyne_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_euphrosyne"))
}

/// A test guest component from `host/tests/guests/NAME`.
pub fn guest(name: &str) -> Vec<u8> {
    let path = target_dir()
        .join("wasm32-wasip2/recipe")
        .join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{}: {e}. Build the test guests first: cargo build --profile recipe --target wasm32-wasip2 -p hostile -p future-wit -p wrong-export -p legacy-actor (scripts/build-wasm does)", path.display())
    })
}

/// The bundled recipes.
pub const BUNDLED: [&str; 18] = [
    "pod-crashloop",
    "workload-rollout",
    "job-failure",
    "persistent-volume",
    "capacity",
    "node-health",
    "http-probe",
    "restart-workload",
    "cordon-node",
    "open-ticket",
    "raise-limit",
    "rollback-deployment",
    "scale-workload",
    "raise-hpa-max",
    "delete-pod",
    "drain-node",
    "rerun-job",
    "expand-pvc",
];

/// Poll `probe` every 50 ms until it returns `Some` (controllers, kubelets and hosts act
/// asynchronously); the test fails naming `what` if that takes longer than `within`.
pub async fn until<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    within: std::time::Duration,
    probe: impl Fn() -> F,
) -> T {
    let started = std::time::Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(started.elapsed() < within, "never happened within {within:?}: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A bundled recipe, built by `euphrosyne recipe build recipes/NAME`.
pub fn bundled(name: &str) -> (Manifest, Vec<u8>) {
    let dir = repo().join("recipes").join(name);
    let manifest = Manifest::from_toml(&std::fs::read_to_string(dir.join("recipe.toml")).unwrap(), name).unwrap();
    let wasm = dir.join(format!("{name}.wasm"));
    let bytes = std::fs::read(&wasm).unwrap_or_else(|e| {
        panic!(
            "{}: {e}. Build the recipes first: euphrosyne recipe build recipes/{name} (scripts/test does)",
            wasm.display()
        )
    });
    (manifest, bytes)
}

/// A job for `bytes` pinned to their own digest.
pub fn job(name: &str, bytes: &[u8], input: RunInput) -> RunJob {
    RunJob {
        run_id: format!("run-{name}"),
        recipe: name.into(),
        digest: Digest::of(bytes),
        bytes: Arc::from(bytes),
        capabilities: Capabilities::default(),
        limits: Limits::default(),
        config: BTreeMap::new(),
        input,
    }
}

/// A job for a bundled recipe, with its manifest's grants, limits and config.
pub fn bundled_job(name: &str, input: RunInput) -> RunJob {
    let (m, bytes) = bundled(name);
    RunJob {
        capabilities: m.capabilities.clone(),
        limits: m.limits,
        config: m.config.clone(),
        digest: m.digest.expect("built recipes pin a digest"),
        ..job(name, &bytes, input)
    }
}

/// The wall-clock time `secs` seconds ago, as RFC 3339 UTC. Tests take every timestamp relative
/// to now, never a calendar date: they must pass on any day.
pub fn ago(secs: u64) -> String {
    let t = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// When this test process's alerts started firing: a minute before it first asked, and the same
/// at every later call, as Alertmanager repeats an alert's `startsAt` on every retry.
pub fn firing_since() -> &'static str {
    static SINCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SINCE.get_or_init(|| ago(60))
}

/// The wall-clock time now with milliseconds, as the chat APIs write their `created` fields.
pub fn now_millis() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// An incident of one firing alert.
pub fn incident(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Incident {
    let body = serde_json::json!({
        "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        "annotations": annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
    });
    euphrosyne::alert::incident_from_json(body.to_string().as_bytes(), "inc-test", &ago(0)).unwrap()
}

/// Debug input.
pub fn debug(labels: &[(&str, &str)]) -> RunInput {
    RunInput::Debug(incident(labels, &[]))
}

/// An action request; its incident is in the namespace the parameters name, if any.
pub fn act(action: &str, params: serde_json::Value) -> RunInput {
    let namespace = params["namespace"].as_str().unwrap_or_default().to_string();
    let mut labels = vec![("alertname", "Test")];
    if !namespace.is_empty() {
        labels.push(("namespace", &namespace));
    }
    RunInput::Action(ActionRequest {
        incident: incident(&labels, &[]),
        action: action.into(),
        parameters: params,
        approved_by: "tester".into(),
        dry_run: false,
        preconditions: vec![],
    })
}

/// The hostile guest in `mode`, with these grants and limits.
pub fn hostile(mode: &str, caps: Capabilities, limits: Limits) -> RunJob {
    let mut j = job("hostile", &guest("hostile"), debug(&[("alertname", "Hostile")]));
    j.run_id = format!("hostile-{mode}");
    j.config.insert("mode".into(), mode.into());
    j.capabilities = caps;
    j.limits = limits;
    j
}

/// Grants that satisfy the hostile guest's imports (it imports http, secrets and kubernetes).
pub fn hostile_caps() -> Capabilities {
    Capabilities {
        http: vec!["allowed.invalid".into()],
        secrets: vec!["api-token".into()],
        kubernetes: euphrosyne::manifest::KubeGrants::of(
            euphrosyne::manifest::Scope::Namespace,
            &[("pods", &[euphrosyne::manifest::KubeVerb::Get])],
        ),
        dirs: vec![],
    }
}

/// Tight limits for the adversarial suites.
pub fn tight() -> Limits {
    Limits {
        timeout_ms: 500,
        memory_mib: 32,
        output_bytes: 64 * 1024,
    }
}

/// The run ended with `status` and its message contains `needle`.
pub fn assert_status(r: &euphrosyne::sandbox::RunResult, status: euphrosyne::sandbox::RunStatus, needle: &str) {
    assert_eq!(
        r.status,
        status,
        "{}: {} (stderr: {})",
        r.run_id,
        r.message,
        r.stderr.chars().take(300).collect::<String>()
    );
    assert!(
        r.message.contains(needle),
        "{}: message `{}` should contain `{needle}`",
        r.run_id,
        r.message
    );
}

/// Requests a [`HttpServer`] received: (head, body).
pub type Requests = Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// A loopback HTTP/1.1 server answering every request with `status` and `body`; counts and
/// keeps the requests (head and body).
pub struct HttpServer {
    pub port: u16,
    pub hits: Arc<AtomicUsize>,
    pub requests: Requests,
    /// While held, requests are read and kept but not answered (see [`HttpServer::hold`]).
    gate: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
}

impl HttpServer {
    pub fn start(status: u16, body: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let requests: Requests = Default::default();
        let (counter, log) = (hits.clone(), requests.clone());
        let gate: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)> = Default::default();
        let held = gate.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                counter.fetch_add(1, Ordering::SeqCst);
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                // Read the head, then the whole body (content-length or chunked), then answer.
                let (head, body_start) = loop {
                    let Ok(n) = s.read(&mut chunk) else {
                        break (String::new(), 0);
                    };
                    if n == 0 {
                        break (String::from_utf8_lossy(&buf).into_owned(), buf.len());
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break (String::from_utf8_lossy(&buf[..i]).into_owned(), i + 4);
                    }
                };
                let header = |name: &str| {
                    head.lines().find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.trim()
                            .eq_ignore_ascii_case(name)
                            .then(|| v.trim().to_ascii_lowercase())
                    })
                };
                let mut req_body = Vec::new();
                if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
                    // Read to the last chunk, then decode (wasi:http streams bodies chunked).
                    while !buf[body_start.min(buf.len())..].windows(5).any(|w| w == b"0\r\n\r\n") {
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let mut rest = &buf[body_start.min(buf.len())..];
                    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
                        let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16).unwrap_or(0);
                        if size == 0 || rest.len() < eol + 2 + size {
                            break;
                        }
                        req_body.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
                        rest = &rest[(eol + 4 + size).min(rest.len())..];
                    }
                } else {
                    let len = header("content-length")
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    while buf.len() < body_start + len {
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    req_body = buf[body_start.min(buf.len())..].to_vec();
                }
                log.lock().unwrap().push((head, req_body));
                let (lock, cv) = &*held;
                drop(cv.wait_while(lock.lock().unwrap(), |held| *held).unwrap());
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        HttpServer {
            port,
            hits,
            requests,
            gate,
        }
    }

    /// Keep requests waiting for their answer until [`HttpServer::release`].
    pub fn hold(&self) {
        *self.gate.0.lock().unwrap() = true;
    }

    /// Answer the waiting requests, and every one after.
    pub fn release(&self) {
        *self.gate.0.lock().unwrap() = false;
        self.gate.1.notify_all();
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

pub mod browser;
pub mod chat;
pub mod cluster;
#[allow(dead_code)]
pub mod fixtures;
pub mod host;
pub mod redis;

/// Pack the hostile guest as a debugger `slow` that sleeps `ms`, for alerts named `Slow…`.
pub fn pack_slow(dir: &std::path::Path, ms: u64) {
    let bytes = guest("hostile");
    let toml = format!(
        "name = \"slow\"\nkind = \"debug\"\nversion = \"1\"\ndigest = \"{}\"\nmatchers = ['alertname=~\"Slow.*\"']\n[capabilities]\nhttp = [\"x.invalid\"]\nsecrets = [\"x\"]\nkubernetes = {{ pods = [\"get\"] }}\n[limits]\ntimeout_ms = 20000\n[config]\nmode = \"sleep\"\nsleep_ms = \"{ms}\"\n",
        euphrosyne::digest::Digest::of(&bytes)
    );
    let m = euphrosyne::manifest::Manifest::from_toml(&toml, "slow").unwrap();
    std::fs::write(dir.join("slow.yaml"), euphrosyne::pack::pack(&m, &bytes).unwrap()).unwrap();
}
