//! Alert → complete analysis, in-process, with 5 debuggers: from `Reconciler::accept` (what
//! `/webhook` calls) to the notifier receiving the merged analysis. p50/p99 over sequential
//! incidents. Part of `scripts/bench-host`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use common::pct;
use euphrosyne::config::{ServeConfig, TriggerPolicy};
use euphrosyne::executor::{Executor, InProcess};
use euphrosyne::incident::{ActionRun, IncidentRecord};
use euphrosyne::manifest::Manifest;
use euphrosyne::metrics::Metrics;
use euphrosyne::notify::Notifier;
use euphrosyne::recipe::Recipe;
use euphrosyne::reconciler::Reconciler;
use euphrosyne::sandbox::{Sandbox, SandboxConfig};
use tokio::sync::mpsc;

struct Signal(mpsc::UnboundedSender<(String, Instant, usize)>);

#[async_trait::async_trait]
impl Notifier for Signal {
    fn name(&self) -> &str {
        "bench"
    }
    async fn analysis(&self, incident: &IncidentRecord) -> Result<(), String> {
        let ok = incident.runs.iter().filter(|r| r.status == "ok").count();
        let _ = self
            .0
            .send((incident.alerts[0].labels["alertname"].clone(), Instant::now(), ok));
        Ok(())
    }
    async fn outcome(&self, _: &IncidentRecord, _: &ActionRun) -> Result<(), String> {
        Ok(())
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bytes = common::guest("hostile");
    let digest = euphrosyne::digest::Digest::of(&bytes);
    let recipes: Vec<Recipe> = (1..=5)
        .map(|i| {
            let toml = format!(
                "name = \"debugger-{i}\"\nkind = \"debug\"\nversion = \"1\"\ndigest = \"{digest}\"\nmatchers = ['alertname=~\"Bench.*\"']\n[capabilities]\nhttp = [\"x.invalid\"]\nsecrets = [\"x\"]\nkubernetes = {{ pods = [\"get\"] }}\n[config]\nmode = \"ok\"\n"
            );
            Recipe::new(Manifest::from_toml(&toml, "bench").unwrap(), bytes.clone(), "bench").unwrap()
        })
        .collect();
    let config = ServeConfig {
        trigger: TriggerPolicy {
            min_occurrences: 1,
            wait_for_more_ms: 0,
            cooldown_ms: 0,
        },
        ..Default::default()
    };
    let metrics = Arc::new(Metrics::default());
    let sandbox = Arc::new(Sandbox::new(SandboxConfig::default()).unwrap());
    let executor: Arc<dyn Executor> = Arc::new(InProcess::new(sandbox, config.max_concurrent_runs));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let r = Reconciler::start(
        config.reconciler_settings().unwrap(),
        euphrosyne::catalog::Catalog::new(recipes, vec![]),
        executor,
        vec![Arc::new(Signal(tx))],
        metrics,
    );
    let mut lat = Vec::new();
    for i in 0..1200 {
        let body = format!(r#"{{"labels": {{"alertname": "Bench{i}", "pod": "p"}}}}"#);
        let t = Instant::now();
        r.accept(body.as_bytes()).unwrap();
        let (name, at, ok) = rx.recv().await.unwrap();
        assert_eq!((name, ok), (format!("Bench{i}"), 5), "all five debuggers ran ok");
        if i >= 200 {
            lat.push(at - t); // the first 200 warm the compile cache and the pool
        }
    }
    lat.sort();
    println!("| alert → complete analysis, 5 debuggers in-process (1000 incidents, sequential) | p50 | p99 |");
    println!("|---|---|---|");
    println!(
        "| accept() → merged analysis at the notifier | {:.2} ms | {:.2} ms |",
        pct(&lat, 0.5).as_secs_f64() * 1e3,
        pct(&lat, 0.99).as_secs_f64() * 1e3
    );
}
