//! The incident console's speed (`scripts/bench-console`), against a real host over loopback:
//! - how long the incident page takes to render and arrive for an incident of 500 alerts and 50
//!   runs (50 debuggers, each a copy of `http-probe`, all selecting the alerts), and the list page
//!   beside it, measured by the client from request to the last byte;
//! - the live update's latency: a run waits on its (held) endpoint while a client listens to the
//!   incident's event stream; from releasing the endpoint to the client holding the update that
//!   shows the run finished (the guest's last step, the result recorded, the page re-rendered,
//!   the event written and read).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::host::{Host, OPERATOR, alertmanager_body};
use common::{HttpServer, firing_since, pct};
use serde_json::{Value, json};

const ALERTS: usize = 500;
const RUNS: usize = 50;
const ROUNDS: usize = 30;

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A group of `n` firing alerts, each naming its own pod, all probing `url`.
fn big_group(group: &str, alertname: &str, n: usize, url: &str) -> Value {
    let mut body = alertmanager_body(
        group,
        "firing",
        json!({"alertname": alertname, "namespace": "shop"}),
        json!({"probe_url": url}),
        firing_since(),
        "fp-0",
    );
    let one = body["alerts"][0].clone();
    body["alerts"] = (0..n)
        .map(|i| {
            let mut a = one.clone();
            a["labels"]["pod"] = json!(format!("api-{i:04}-7d9c6b5f4-x2k8q"));
            a["labels"]["container"] = json!("api");
            a["annotations"]["summary"] = json!(format!(
                "Pod shop/api-{i:04} is crash looping (restarted 7 times in 10 minutes)"
            ));
            a["fingerprint"] = json!(format!("fp-{alertname}-{i}"));
            a
        })
        .collect();
    body
}

/// Read the event stream until an event satisfies `done`; that event's text.
async fn next_event(stream: &mut reqwest::Response, buf: &mut String, done: impl Fn(&str) -> bool) -> String {
    loop {
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            if done(&event) {
                return event;
            }
        }
        let chunk = tokio::time::timeout(Duration::from_secs(30), stream.chunk())
            .await
            .expect("no event within 30 s")
            .unwrap()
            .expect("the stream ended");
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let endpoint = HttpServer::start(503, "upstream down");
    let url = format!("http://127.0.0.1:{}/health", endpoint.port);
    let port = endpoint.port;
    let host = Host::start(
        |dir| {
            let (manifest, bytes) = common::bundled("http-probe");
            for i in 0..RUNS {
                let mut m = manifest.clone();
                m.name = format!("probe-{i:02}");
                m.matchers = vec!["alertname=~\"Big|Live.*\"".into()];
                m.capabilities.http = vec![format!("127.0.0.1:{port}")];
                let yaml = euphrosyne::pack::pack(&m, &bytes).unwrap();
                std::fs::write(dir.join(format!("{}.yaml", m.name)), yaml).unwrap();
            }
        },
        "max_body_bytes = 4194304\nmax_concurrent_runs = 8",
        &[],
    );
    let post = |body: Value| {
        let host = &host;
        async move {
            let r = host.post("/webhook", None).json(&body).send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        }
    };
    post(big_group("{}:{alertname=\"Big\"}", "Big", ALERTS, &url)).await;
    let list = host
        .wait_for("/api/incidents?state=analyzed&label=alertname%3DBig", |v| {
            v["incidents"].as_array().is_some_and(|l| !l.is_empty())
        })
        .await;
    let id = list["incidents"][0]["id"].as_str().unwrap().to_string();
    let inc = host.json(&format!("/api/incidents/{id}")).await;
    assert_eq!(inc["incident"]["alerts"].as_array().unwrap().len(), ALERTS);
    assert_eq!(inc["incident"]["runs"].as_array().unwrap().len(), RUNS);

    println!("| page ({ALERTS} alerts, {RUNS} runs) | p50 | p99 | bytes |");
    println!("|---|---|---|---|");
    for (what, path) in [
        ("incident page", format!("/incidents/{id}")),
        (
            "incident JSON (`/api/incidents/{id}`, for comparison)",
            format!("/api/incidents/{id}"),
        ),
        ("incident list", "/incidents".to_string()),
    ] {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..ROUNDS {
            let t = Instant::now();
            let r = host.get(&path, Some(OPERATOR)).send().await.unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
            bytes = r.bytes().await.unwrap().len();
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "| {what} | {} | {} | {bytes} |",
            ms(pct(&times, 0.5)),
            ms(pct(&times, 0.99))
        );
    }

    // Live updates: one small incident per round, its probes held at the endpoint.
    let mut latencies = Vec::new();
    for round in 0..ROUNDS {
        endpoint.hold();
        let alertname = format!("Live{round}");
        post(big_group(
            &format!("{{}}:{{alertname=\"{alertname}\"}}"),
            &alertname,
            1,
            &url,
        ))
        .await;
        let list = host
            .wait_for(&format!("/api/incidents?label=alertname%3D{alertname}"), |v| {
                v["incidents"][0]["state"] == "analyzing"
            })
            .await;
        let id = list["incidents"][0]["id"].as_str().unwrap().to_string();
        let mut stream = host
            .get(&format!("/incidents/{id}/live"), Some(OPERATOR))
            .send()
            .await
            .unwrap();
        let mut buf = String::new();
        next_event(&mut stream, &mut buf, |e| e.starts_with("event: update")).await;
        let t = Instant::now();
        endpoint.release();
        next_event(&mut stream, &mut buf, |e| e.contains("run-finished")).await;
        latencies.push(t.elapsed());
        // Every run of this round done before the next holds the endpoint again.
        host.wait_for(&format!("/api/incidents/{id}"), |v| {
            v["incident"]["state"] == "analyzed"
        })
        .await;
    }
    latencies.sort();
    println!();
    println!("| live update | p50 | p99 | rounds |");
    println!("|---|---|---|---|");
    println!(
        "| endpoint answers → the page's update holding the finished run (SSE, {RUNS} probes each) | {} | {} | {ROUNDS} |",
        ms(pct(&latencies, 0.5)),
        ms(pct(&latencies, 0.99))
    );
}
