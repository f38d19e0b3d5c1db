//! Sandbox benchmark: cold start per bundled recipe, warm call of a trivial debugger, and the
//! same trivial logic as a `python3` subprocess per call (how script-running remediation tools
//! run actions). Prints a Markdown table for BENCHMARKS.md.
//!
//! Run: `scripts/bench-sandbox` (builds the components, then `cargo bench -p euphrosyne --bench sandbox`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pct;
use euphrosyne::digest::Digest;
use euphrosyne::manifest::{Capabilities, Limits, Manifest};
use euphrosyne::sandbox::{RunInput, RunJob, RunStatus, Sandbox, SandboxConfig};

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn incident() -> euphrosyne::model::Incident {
    euphrosyne::alert::incident_from_json(br#"{"labels":{"alertname":"KubePodCrashLooping","namespace":"shop","pod":"web-1","node":"worker-1"},"annotations":{"probe_url":"http://127.0.0.1:9/"}}"#, "bench", "2026-11-24T00:00:00Z").unwrap()
}

const PY: &str = r#"
import json, sys
incident = json.load(sys.stdin)
name = incident["alerts"][0]["labels"].get("alertname", "?")
print(json.dumps({"verdict": "identified", "summary": "all good: %d alert(s)" % len(incident["alerts"]), "findings": [{"title": "mode", "detail": "ok", "severity": "info"}], "actions": []}))
"#;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let names = [
        "pod-crashloop",
        "node-health",
        "http-probe",
        "restart-workload",
        "cordon-node",
        "open-ticket",
    ];
    println!("## Sandbox (`scripts/bench-sandbox`)\n");
    println!("| recipe | .wasm size | cold start p50 (verify + compile + instantiate + call) | of which compile |");
    println!("|---|---|---|---|");
    let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    for name in names {
        let dir = common::repo().join("recipes").join(name);
        let m = Manifest::from_toml(&std::fs::read_to_string(dir.join("recipe.toml")).unwrap(), name).unwrap();
        let bytes: Arc<[u8]> = std::fs::read(dir.join(format!("{name}.wasm")))
            .expect("build the recipes first")
            .into();
        let input = match m.kind {
            euphrosyne::manifest::Kind::Debug => RunInput::Debug(incident()),
            euphrosyne::manifest::Kind::Action => RunInput::Action(euphrosyne::model::ActionRequest {
                incident: incident(),
                action: m.actions[0].clone(),
                parameters: serde_json::json!({"namespace": "shop", "name": "web", "node": "worker-1"}),
                approved_by: "bench".into(),
                dry_run: false,
                preconditions: vec![],
            }),
        };
        let job = RunJob {
            run_id: "bench".into(),
            recipe: name.into(),
            digest: Digest::of(&bytes),
            bytes: bytes.clone(),
            capabilities: m.capabilities.clone(),
            limits: m.limits,
            config: m.config.clone(),
            input,
        };
        let mut totals = vec![];
        let mut compiles = vec![];
        for _ in 0..5 {
            sandbox.clear_memory_cache();
            let t = Instant::now();
            let r = sandbox.run(&job).await;
            totals.push(t.elapsed());
            compiles.push(Duration::from_micros(r.timings.compile_us));
        }
        totals.sort();
        compiles.sort();
        println!(
            "| {name} | {} KiB | {:.1} ms | {:.1} ms |",
            bytes.len().div_ceil(1024),
            pct(&totals, 0.5).as_secs_f64() * 1e3,
            pct(&compiles, 0.5).as_secs_f64() * 1e3
        );
    }

    // Warm: the trivial debugger (hostile guest, mode ok), compiled once.
    let path = common::target_dir().join("wasm32-wasip2/recipe/hostile.wasm");
    let bytes: Arc<[u8]> = std::fs::read(&path).expect("build the test guests first").into();
    let job = RunJob {
        run_id: "bench".into(),
        recipe: "trivial".into(),
        digest: Digest::of(&bytes),
        bytes,
        capabilities: Capabilities {
            http: vec!["x.invalid".into()],
            secrets: vec!["x".into()],
            kubernetes: euphrosyne::manifest::KubeGrants::of(
                euphrosyne::manifest::Scope::Namespace,
                &[("pods", &[euphrosyne::manifest::KubeVerb::Get])],
            ),
            dirs: vec![],
        },
        limits: Limits::default(),
        config: BTreeMap::from([("mode".to_string(), "ok".to_string())]),
        input: RunInput::Debug(incident()),
    };
    assert_eq!(sandbox.run(&job).await.status, RunStatus::Ok);
    let n = 5000;
    let mut warm = Vec::with_capacity(n);
    let mut inst = Vec::with_capacity(n);
    let mut call = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = sandbox.run(&job).await;
        warm.push(t.elapsed());
        inst.push(Duration::from_micros(r.timings.instantiate_us));
        call.push(Duration::from_micros(r.timings.run_us));
    }
    warm.sort();
    inst.sort();
    call.sort();

    // Baseline: the same logic as a python3 script, one process per call.
    let mut py = Vec::new();
    let payload = serde_json::to_vec(&incident()).unwrap();
    for _ in 0..50 {
        let t = Instant::now();
        let mut child = Command::new("python3")
            .args(["-c", PY])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        child.stdin.take().unwrap().write_all(&payload).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("all good: 1 alert(s)"));
        py.push(t.elapsed());
    }
    py.sort();
    println!("\n| warm call, trivial debugger ({n} calls) | p50 | p99 |");
    println!("|---|---|---|");
    println!(
        "| whole run (verify + cached lookup + instantiate + call + classify) | {} | {} |",
        us(pct(&warm, 0.5)),
        us(pct(&warm, 0.99))
    );
    println!(
        "| of which instantiate | {} | {} |",
        us(pct(&inst, 0.5)),
        us(pct(&inst, 0.99))
    );
    println!("| of which call | {} | {} |", us(pct(&call, 0.5)), us(pct(&call, 0.99)));
    println!(
        "| python3 subprocess per call (50 calls) | {} | {} |",
        us(pct(&py, 0.5)),
        us(pct(&py, 0.99))
    );
    println!(
        "\nratio python3 subprocess / warm sandbox run (p50): {:.0}×",
        pct(&py, 0.5).as_secs_f64() / pct(&warm, 0.5).as_secs_f64()
    );

    allocator();
}

/// The process allocator's cost: the system allocator alone, the metered allocator outside a
/// run (every allocation of the host), and inside a run's metered poll.
fn allocator() {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::hint::black_box;
    const N: usize = 2_000_000;
    let layout = Layout::from_size_align(64, 8).unwrap();
    let time = |f: &dyn Fn()| {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64() * 1e9 / N as f64
    };
    let system = time(&|| {
        for _ in 0..N {
            // SAFETY: a valid layout; freed with the same layout at once.
            unsafe {
                let p = System.alloc(black_box(layout));
                black_box(p);
                System.dealloc(p, layout);
            }
        }
    });
    let boxes = || {
        for i in 0..N {
            black_box(Box::new([i as u8; 64]));
        }
    };
    let global = time(&boxes);
    let meter = euphrosyne::sandbox::meter::Meter::new().expect("a meter slot");
    let metered = time(&|| {
        futures::executor::block_on(euphrosyne::sandbox::meter::Metered::new(Some(meter.id()), async {
            boxes()
        }))
    });
    println!("\n| allocator, 64-byte allocate + free ({N} pairs) | ns per pair |");
    println!("|---|---|");
    println!("| system allocator alone | {system:.1} |");
    println!("| process allocator (16-byte header), outside a run | {global:.1} |");
    println!("| process allocator, charged to a run's meter | {metered:.1} |");
}
