//! Result bus: publish → collected-by-host latency and throughput, through a real Redis
//! (`EUPHROSYNE_BENCH_REDIS`). Part of `scripts/bench-bus`, which puts `redis-benchmark` PUBLISH on
//! the same server beside it as the ceiling.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::pct;
use euphrosyne::bus::Bus;
use euphrosyne::sandbox::{RunInput, RunJob, RunResult, RunStatus};

fn result(i: usize) -> RunResult {
    let incident =
        euphrosyne::alert::incident_from_json(br#"{"labels":{"alertname":"Bench"}}"#, "inc", "2026-11-24T00:00:00Z")
            .unwrap();
    let job = RunJob {
        run_id: format!("run-{i}"),
        recipe: "bench".into(),
        digest: euphrosyne::digest::Digest::of(b"x"),
        bytes: Arc::from(&b"x"[..]),
        capabilities: Default::default(),
        limits: Default::default(),
        config: Default::default(),
        input: RunInput::Debug(incident),
    };
    RunResult::closed(&job, RunStatus::Ok, "")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url =
        std::env::var("EUPHROSYNE_BENCH_REDIS").expect("EUPHROSYNE_BENCH_REDIS=redis://… (scripts/bench-bus sets it)");
    let prefix = format!("bench{}", std::process::id());
    let publisher = Bus::connect(&url, &prefix, Duration::from_secs(5)).await.unwrap();
    publisher.ensure_group().await.unwrap();
    let reader = Bus::connect(&url, &prefix, Duration::from_secs(5)).await.unwrap();
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let got: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let (s2, g2) = (sent.clone(), got.clone());
    let total = 25_000usize;
    let collector = tokio::spawn(async move {
        let mut n = 0;
        while n < total {
            let batch = reader.read("bench-host", false, Duration::from_secs(1)).await.unwrap();
            let now = Instant::now();
            let mut ids = Vec::new();
            for d in batch {
                let r = d.result.unwrap();
                if let Some(t) = s2.lock().unwrap().remove(&r.run_id) {
                    g2.lock().unwrap().push(now - t);
                }
                ids.push(d.entry);
                n += 1;
            }
            reader.ack(&ids).await.unwrap();
        }
    });
    // Latency: one result at a time (5 000), then throughput: 16 publishers at once (20 000).
    for i in 0..5_000 {
        let r = result(i);
        sent.lock().unwrap().insert(r.run_id.clone(), Instant::now());
        publisher.publish(&r).await.unwrap();
        if i % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    while got.lock().unwrap().len() < 5_000 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut lat = got.lock().unwrap().clone();
    lat.sort();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..16 {
        let (p, sent) = (publisher.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..1_250 {
                let r = result(5_000 + t * 1_250 + i);
                sent.lock().unwrap().insert(r.run_id.clone(), Instant::now());
                p.publish(&r).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    collector.await.unwrap();
    let elapsed = started.elapsed();
    let size = serde_json::to_vec(&result(0)).unwrap().len();
    println!("| result bus, one host collecting ({size}-byte results) | figure |");
    println!("|---|---|");
    println!(
        "| publish → collected, one at a time (5000): p50 / p99 | {:.2} ms / {:.2} ms |",
        pct(&lat, 0.5).as_secs_f64() * 1e3,
        pct(&lat, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "| throughput, 16 publishers, collected and acknowledged (20000) | {:.0} results/s |",
        20_000.0 / elapsed.as_secs_f64()
    );
}
