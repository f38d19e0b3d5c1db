//! Driven by a real Prometheus Alertmanager (Debian's `prometheus-alertmanager`): alerts are
//! injected through Alertmanager's own API (`POST /api/v2/alerts`); Alertmanager groups them and
//! calls the host's `/webhook` with bearer credentials, as configured in its `http_config`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::host::*;
use serde_json::{Value, json};

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

struct Alertmanager {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_alertmanager(webhook: &str, token: &str) -> Alertmanager {
    assert!(
        std::path::Path::new(ALERTMANAGER).exists(),
        "{ALERTMANAGER} is missing: apt-get install prometheus-alertmanager (.ci/run does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"route:
  receiver: euphrosyne
  group_by: ['alertname']
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: euphrosyne
    webhook_configs:
      - url: {webhook}
        send_resolved: true
        http_config:
          authorization:
            credentials: {token}
"#
    );
    std::fs::write(dir.path().join("alertmanager.yml"), config).unwrap();
    let port = free_port();
    let child = Command::new(ALERTMANAGER)
        .arg(format!(
            "--config.file={}",
            dir.path().join("alertmanager.yml").display()
        ))
        .arg(format!("--storage.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Alertmanager {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

async fn post_alerts(am: &Alertmanager, alerts: Value) {
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        match client
            .post(format!("{}/api/v2/alerts", am.url))
            .json(&alerts)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => panic!(
                "alertmanager refused the alerts: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ),
            Err(_) if started.elapsed() < Duration::from_secs(15) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("alertmanager did not come up: {e}"),
        }
    }
}

#[tokio::test]
async fn a_real_alertmanager_drives_the_whole_loop() {
    let w = World::start(
        "[webhook_auth]\nbearer = { file = \"{dir}/secrets/webhook-token\" }",
        &["pod-crashloop"],
        &[("webhook-token", "am-credential")],
    );
    let (host, endpoint, jira, ep) = (&w.host, &w.endpoint, &w.jira, w.endpoint.port);
    let am = start_alertmanager(&format!("{}/webhook", host.url), "am-credential");
    let labels = json!({"alertname": "EndpointDown", "service": "checkout", "severity": "critical"});
    let annotations = json!({"summary": "checkout is down", "probe_url": format!("http://127.0.0.1:{ep}/healthz")});
    post_alerts(
        &am,
        json!([{"labels": labels, "annotations": annotations, "generatorURL": "http://prometheus.test/graph"}]),
    )
    .await;

    let v = host.analysed_incident().await;
    let inc = &v["incident"];
    let id = inc["id"].as_str().unwrap().to_string();
    assert_eq!(inc["source"], "alertmanager");
    assert_eq!(
        inc["group_key"], "{}:{alertname=\"EndpointDown\"}",
        "Alertmanager's own groupKey"
    );
    assert_eq!(inc["alerts"][0]["labels"]["service"], "checkout");
    assert_eq!(
        inc["alerts"][0]["fingerprint"].as_str().unwrap().len(),
        16,
        "Alertmanager's fingerprint"
    );
    assert_eq!(inc["runs"][0]["recipe"], "http-probe");
    assert!(
        inc["analysis"]["summary"].as_str().unwrap().contains("answers 503"),
        "{:#}",
        inc["analysis"]
    );
    assert_eq!(inc["analysis"]["actions"][0]["action"], "open-ticket");

    let (status, action_id) = host
        .approve(
            APPROVER,
            json!({"incident": id, "action": "open-ticket", "approver": "oncall@example.com"}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED);
    let action = host
        .wait_for(&format!("/api/actions/{action_id}"), |a| {
            a["status"] == "succeeded" || a["status"] == "failed"
        })
        .await;
    assert_eq!(action["status"], "succeeded", "{action:#}");
    assert_eq!(action["result"]["outcome"]["summary"], "opened OPS-7");

    // Resolve it in Alertmanager: it notifies the host, which resolves the incident.
    post_alerts(
        &am,
        json!([{"labels": labels, "annotations": annotations, "endsAt": "2020-01-01T00:00:00Z"}]),
    )
    .await;
    host.wait_for(&format!("/api/incidents/{id}"), |v| {
        v["incident"]["state"] == "resolved"
    })
    .await;
    assert_eq!(endpoint.hits(), 1, "Alertmanager's notifications ran the probe once");
    assert_eq!(jira.hits(), 1);
}
