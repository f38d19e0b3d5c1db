//! `euphrosyne serve` over real HTTP: a real host process, real components, a loopback endpoint
//! that is down, and a loopback stand-in for Jira's REST API (`POST /rest/api/2/issue` → 201
//! with the issue key, as Jira documents it).

mod common;

use common::host::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The status code `request` gets.
async fn code(request: reqwest::RequestBuilder) -> StatusCode {
    request.send().await.unwrap().status()
}

fn world(config: &str) -> World {
    World::start(
        config,
        &["cordon-node", "pod-crashloop"],
        &[("webhook-token", "hook-token"), ("webhook-password", "pa55")],
    )
}

#[tokio::test]
async fn alert_to_analysis_to_approved_action_over_http() {
    let w = world("");
    let h = &w.host;
    let body = w.endpoint_alert("fp-endpoint-1");

    // Accepted at once; Alertmanager's retry of the same notification is counted, not re-run.
    let r = h.post("/webhook", None).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"accepted": 1, "duplicates": 0})
    );
    let r = h.post("/webhook", None).json(&body).send().await.unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"accepted": 0, "duplicates": 1})
    );

    let v = h.analysed_incident().await;
    let inc = &v["incident"];
    let id = inc["id"].as_str().unwrap();
    assert_eq!(inc["source"], "alertmanager");
    assert_eq!(inc["group_key"], "{}:{alertname=\"EndpointDown\"}");
    assert_eq!(
        inc["runs"].as_array().unwrap().len(),
        1,
        "only http-probe matches EndpointDown, once"
    );
    assert_eq!(inc["runs"][0]["recipe"], "http-probe");
    assert_eq!(inc["runs"][0]["status"], "ok");
    let analysis = &inc["analysis"];
    assert_eq!(analysis["verdict"], "identified");
    assert!(
        analysis["summary"].as_str().unwrap().contains("answers 503"),
        "{analysis}"
    );
    let suggestion = &analysis["actions"][0];
    assert_eq!(suggestion["action"], "open-ticket");
    assert_eq!(w.endpoint.hits(), 1, "probed once, not once per webhook retry");

    // Approve: the actor recipe runs once, however often it is approved.
    let approval = json!({"incident": id, "action": "open-ticket", "approver": "alice"});
    let r = h
        .post("/api/actions", Some(APPROVER))
        .json(&approval)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let created: Value = r.json().await.unwrap();
    let action_id = created["id"].as_str().unwrap().to_string();
    assert_eq!(
        action_id,
        suggestion["id"].as_str().unwrap(),
        "the run id is the suggestion's stable id"
    );
    let r = h
        .post("/api/actions", Some(APPROVER))
        .json(&approval)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["new"], false);

    let action = h
        .wait_for(&format!("/api/actions/{action_id}"), |a| {
            a["status"] == "succeeded" || a["status"] == "failed"
        })
        .await;
    assert_eq!(action["status"], "succeeded", "{action:#}");
    assert_eq!(action["result"]["outcome"]["summary"], "opened OPS-7");
    assert_eq!(action["approved_by"], "alice");
    assert_eq!(action["token"], "approver-bot");
    assert_eq!(w.jira.hits(), 1, "the ticket was opened once");

    // The event log tells the story, with who and through which channel.
    let v = h
        .wait_for(&format!("/api/incidents/{id}"), |v| {
            v["incident"]["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "outcome-sent")
        })
        .await;
    let events = v["incident"]["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for k in [
        "alert-received",
        "run-started",
        "run-finished",
        "analysis-complete",
        "analysis-sent",
        "action-approved",
        "action-duplicate",
        "action-finished",
        "outcome-sent",
    ] {
        assert!(kinds.contains(&k), "missing {k} in {kinds:?}");
    }
    let approved = events.iter().find(|e| e["kind"] == "action-approved").unwrap();
    assert_eq!(approved["by"], "alice (token approver-bot)");
    assert_eq!(approved["channel"], "api");
    assert_eq!(v["actions"][0]["id"], action_id.as_str());

    // Status and metrics.
    let status = h.json("/api/status").await;
    assert_eq!(status["incidents"]["analyzed"], 1);
    let names = recipe_names(&status);
    assert_eq!(names, ["cordon-node", "http-probe", "open-ticket", "pod-crashloop"]);
    assert!(status["recipes"][1]["digest"].as_str().unwrap().starts_with("sha256:"));
    let metrics = h.get("/metrics", None).send().await.unwrap().text().await.unwrap();
    for line in [
        "euphrosyne_alerts_received_total 2",
        "euphrosyne_alerts_deduplicated_total 1",
        "euphrosyne_runs_total{recipe=\"http-probe\",status=\"ok\"} 1",
        // The suggested action's preview (a dry run), then the approved run.
        "euphrosyne_runs_total{recipe=\"open-ticket\",status=\"ok\"} 2",
        "euphrosyne_incidents{state=\"analyzed\"} 1",
        "euphrosyne_actions_total{action=\"open-ticket\",status=\"succeeded\"} 1",
    ] {
        assert!(metrics.contains(line), "metrics lack `{line}`:\n{metrics}");
    }
    assert!(metrics.contains("euphrosyne_run_duration_seconds_bucket{recipe=\"http-probe\""));
    // Prometheus' linter takes the text format as served to curl…
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian: prometheus) is needed; scripts/test installs it");
    use std::io::Write as _;
    promtool.stdin.take().unwrap().write_all(metrics.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{metrics}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // …and Prometheus, which asks for OpenMetrics, gets it.
    let om = h
        .get("/metrics", None)
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert!(
        om.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(om.text().await.unwrap().ends_with("# EOF\n"));

    // A resolved notification resolves the incident.
    let mut resolved = w.endpoint_alert("fp-endpoint-1");
    resolved["status"] = json!("resolved");
    resolved["alerts"][0]["status"] = json!("resolved");
    let r = h.post("/webhook", None).json(&resolved).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    h.wait_for(&format!("/api/incidents/{id}"), |v| {
        v["incident"]["state"] == "resolved"
    })
    .await;
}

#[tokio::test]
async fn every_route_refuses_bad_input_clearly() {
    let w = world("max_body_bytes = 65536\nbreaker_max = 1");
    let h = &w.host;
    let post = |path: &str, token: Option<&str>, body: &str| {
        h.post(path, token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    async fn err(r: reqwest::Response) -> (StatusCode, String) {
        let s = r.status();
        (
            s,
            r.json::<Value>()
                .await
                .map(|v| v["error"].as_str().unwrap_or_default().to_string())
                .unwrap_or_default(),
        )
    }

    // /webhook
    let (s, e) = err(post("/webhook", None, "{not json").await.unwrap()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(e.contains("not JSON"), "{e}");
    let mut bad = w.endpoint_alert("fp");
    bad["alerts"][0]["status"] = json!("burning");
    let (s, e) = err(post("/webhook", None, &bad.to_string()).await.unwrap()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(e.contains("alerts[0].status"), "{e}");
    let (s, e) = err(post("/webhook", None, r#"{"labels": {"severity": 3}}"#).await.unwrap()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(e.contains("labels.severity"), "{e}");
    let huge = format!(
        r#"{{"labels": {{"alertname": "X", "pad": "{}"}}}}"#,
        "x".repeat(100_000)
    );
    assert_eq!(
        post("/webhook", None, &huge).await.unwrap().status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );

    // Reads need a token once tokens exist.
    assert_eq!(code(h.get("/api/status", None)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        code(h.get("/api/incidents", Some("wrong"))).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        code(h.get("/api/incidents/inc-nope", Some(VIEWER))).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        code(h.get("/api/actions/act-nope", Some(VIEWER))).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        code(h.get("/api/incidents?state=sleeping", Some(VIEWER))).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        code(h.get("/api/incidents?label=novalue", Some(VIEWER))).await,
        StatusCode::BAD_REQUEST
    );

    // An incident to approve things on.
    post("/webhook", None, &w.endpoint_alert("fp-2").to_string())
        .await
        .unwrap();
    let v = h.analysed_incident().await;
    let id = v["incident"]["id"].as_str().unwrap().to_string();

    // /api/actions
    let approve = |token: Option<&'static str>, body: Value| h.post("/api/actions", token).json(&body).send();
    assert_eq!(
        approve(None, json!({"incident": id, "action": "open-ticket", "approver": "a"}))
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        approve(
            Some(VIEWER),
            json!({"incident": id, "action": "open-ticket", "approver": "a"})
        )
        .await
        .unwrap()
        .status(),
        StatusCode::FORBIDDEN
    );
    let (s, e) = err(
        approve(Some(APPROVER), json!({"action": "open-ticket", "approver": "a"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "a body without an incident is an error, not a crash"
    );
    assert!(e.contains("incident"), "{e}");
    let (s, e) = err(
        approve(Some(APPROVER), json!({"incident": id, "action": 7, "approver": "a"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(e.contains("field `action`"), "{e}");
    let (s, _) = err(post("/api/actions", Some(APPROVER), "[").await.unwrap()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        approve(
            Some(APPROVER),
            json!({"incident": "inc-nope", "action": "open-ticket", "approver": "a"})
        )
        .await
        .unwrap()
        .status(),
        StatusCode::NOT_FOUND
    );
    // Not suggested: an approver may not, an operator may.
    let cordon = json!({"incident": id, "action": "cordon-node", "params": {"node": "worker-9"}, "approver": "bob"});
    let (s, e) = err(approve(Some(APPROVER), cordon.clone()).await.unwrap()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(e.contains("not suggested"), "{e}");
    let (status, cordon_id) = h.approve(OPERATOR, cordon.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let a = h
        .wait_for(&format!("/api/actions/{cordon_id}"), |a| {
            a["status"] == "failed" || a["status"] == "succeeded"
        })
        .await;
    assert_eq!(a["status"], "failed", "no cluster here: the actor ran and reported why");
    assert!(a["error"].as_str().unwrap().contains("no Kubernetes cluster"), "{a:#}");
    // No actor for the action: refused, with why, before anything is queued.
    let r = approve(
        Some(OPERATOR),
        json!({"incident": id, "action": "rollback-deployment", "params": {"name": "web"}, "approver": "bob"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no action recipe implements `rollback-deployment`"),
        "{body}"
    );
    // The original reconciler's body, same authentication; the circuit breaker (max 1) trips on a
    // second run of the same action on the same target.
    let compat = json!({"uuid": id, "actions": [{"name": "cordon-node", "data": {"node": "worker-8"}}]});
    assert_eq!(
        post("/api/actions", None, &compat.to_string()).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        approve(Some(OPERATOR), compat).await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    post(
        "/webhook",
        None,
        &alertmanager_body(
            "{}:{alertname=\"Other\"}",
            "firing",
            json!({"alertname": "Other"}),
            json!({}),
            common::firing_since(),
            "fp-other",
        )
        .to_string(),
    )
    .await
    .unwrap();
    let other = h
        .wait_for("/api/incidents?state=analyzed", |v| {
            v["incidents"].as_array().unwrap().len() == 2
        })
        .await;
    let other_id = other["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] != id.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, e) = err(approve(
        Some(OPERATOR),
        json!({"incident": other_id, "action": "cordon-node", "params": {"node": "worker-8"}, "approver": "bob"}),
    )
    .await
    .unwrap())
    .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert!(e.contains("circuit breaker"), "{e}");
    // Refusals are in the event log with who and when.
    let v = h.json(&format!("/api/incidents/{id}")).await;
    let refused = v["incident"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "action-refused")
        .expect("refusal logged")
        .clone();
    assert_eq!(refused["by"], "bob (token approver-bot)");
    assert!(refused["at"].as_str().unwrap().starts_with("20"));
}

#[tokio::test]
async fn webhook_authentication_bearer_and_basic() {
    let w = world(
        "[webhook_auth]\nbearer = { file = \"{dir}/secrets/webhook-token\" }\nbasic_username = \"alertmanager\"\nbasic_password = { file = \"{dir}/secrets/webhook-password\" }",
    );
    let h = &w.host;
    let body = w.endpoint_alert("fp-auth").to_string();
    let send = |rb: reqwest::RequestBuilder| rb.header("content-type", "application/json").body(body.clone()).send();
    assert_eq!(
        send(h.post("/webhook", None)).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(h.post("/webhook", Some("wrong"))).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(h.post("/webhook", None).basic_auth("alertmanager", Some("nope")))
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(h.post("/webhook", None).basic_auth("alertmanager", Some("pa55")))
            .await
            .unwrap()
            .status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        send(h.post("/webhook", Some("hook-token"))).await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    let metrics = h.get("/metrics", None).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("euphrosyne_alerts_rejected_total{reason=\"unauthorized\"} 3"),
        "{metrics}"
    );
}

/// Walks the route table the router is built from: every route that changes state refuses an
/// anonymous caller and a viewer, whatever its way of authenticating (API token, webhook
/// credentials, chat signatures), and every read refuses an anonymous caller once tokens exist.
#[tokio::test]
async fn every_state_changing_route_refuses_anonymous_and_viewer_callers() {
    let chat = "api_base = \"http://127.0.0.1:9\"\napprovers = [\"@example.com\"]";
    let w = world(&format!(
        "[webhook_auth]\nbearer = {{ file = \"{{dir}}/secrets/webhook-token\" }}\n\
         [webex]\nroom_id = \"room\"\ntoken = {{ file = \"{{dir}}/secrets/webhook-token\" }}\nwebhook_secret = {{ file = \"{{dir}}/secrets/webhook-password\" }}\n{chat}\n\
         [slack]\nchannel = \"C1\"\ntoken = {{ file = \"{{dir}}/secrets/webhook-token\" }}\nsigning_secret = {{ file = \"{{dir}}/secrets/webhook-password\" }}\n{chat}"
    ));
    let h = &w.host;
    let mut changing = 0;
    for route in euphrosyne::api::ROUTES {
        let path = route.path.replace("{id}", "inc-0123456789ab");
        let request = |token: Option<&str>| {
            let rb = match route.method {
                "GET" => h.get(&path, token),
                _ => h
                    .post(&path, token)
                    .header("content-type", "application/json")
                    .body("{}"),
            };
            code(rb)
        };
        let (anonymous, viewer) = (request(None).await, request(Some(VIEWER)).await);
        let what = format!("{} {} ({:?})", route.method, route.path, route.access);
        if route.method == "GET" {
            let open = route.access == euphrosyne::api::Access::Open;
            assert_eq!(
                anonymous == StatusCode::UNAUTHORIZED,
                !open,
                "{what}: anonymous got {anonymous}"
            );
            assert_ne!(viewer, StatusCode::UNAUTHORIZED, "{what}: a viewer may read");
            continue;
        }
        changing += 1;
        for (who, got) in [("anonymous", anonymous), ("viewer", viewer)] {
            assert!(
                got == StatusCode::UNAUTHORIZED || got == StatusCode::FORBIDDEN,
                "{what}: {who} got {got}"
            );
        }
    }
    assert_eq!(
        changing, 4,
        "webhook, the two chat callbacks and approvals change state"
    );
}

#[tokio::test]
async fn trigger_limiter_min_occurrences_window_and_cooldown() {
    let w = world("[trigger]\nmin_occurrences = 2\nwait_for_more_ms = 300\ncooldown_ms = 600000");
    let h = &w.host;
    let send = |fp: &str| h.post("/webhook", None).json(&w.endpoint_alert(fp)).send();
    send("fp-a").await.unwrap();
    let list = h
        .wait_for("/api/incidents", |v| {
            v["incidents"].as_array().is_some_and(|a| a.len() == 1)
        })
        .await;
    let id = list["incidents"][0]["id"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let v = h.json(&format!("/api/incidents/{id}")).await;
    assert_eq!(v["incident"]["state"], "collecting", "one occurrence of the two needed");
    assert!(
        v["incident"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "waiting")
    );
    // Two more arrive together: one fan-out after the window, with all three alerts.
    send("fp-b").await.unwrap();
    send("fp-c").await.unwrap();
    let v = h
        .wait_for(&format!("/api/incidents/{id}"), |v| {
            v["incident"]["state"] == "analyzed"
        })
        .await;
    assert_eq!(
        v["incident"]["runs"].as_array().unwrap().len(),
        1,
        "one fan-out for alerts arriving together"
    );
    assert_eq!(v["incident"]["alerts"].as_array().unwrap().len(), 3);
    // Within the cooldown, news does not re-run the debuggers.
    send("fp-d").await.unwrap();
    let v = h
        .wait_for(&format!("/api/incidents/{id}"), |v| {
            v["incident"]["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "suppressed")
        })
        .await;
    assert_eq!(v["incident"]["runs"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn openapi_over_http_and_graceful_shutdown() {
    let w = world("");
    let doc = w
        .host
        .get("/api/openapi.json", None)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    for p in [
        "/webhook",
        "/api/status",
        "/api/incidents",
        "/api/incidents/{id}",
        "/api/actions",
        "/api/actions/{id}",
        "/metrics",
        "/healthz",
        "/readyz",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} missing from openapi.json");
    }
    assert_eq!(
        w.host.get("/readyz", None).send().await.unwrap().status(),
        StatusCode::OK
    );
    // SIGTERM: the host stops cleanly.
    let mut host = w.host;
    // SAFETY: kill(2) on our own child's pid.
    unsafe { kill(host.child.id() as i32, 15) };
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = host.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the host did not stop on SIGTERM"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
}

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

#[tokio::test]
async fn a_bad_recipe_is_reported_by_name_and_skipped() {
    let host = Host::start(
        |dir| {
            pack_into(dir, "cordon-node", |_| {});
            std::fs::write(
                dir.join("broken.yaml"),
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: recipe-broken}\ndata: {}\n",
            )
            .unwrap();
            // A recipe whose bytes are not what its manifest pins.
            let yaml = std::fs::read_to_string(dir.join("cordon-node.yaml")).unwrap();
            let (mut m, mut bytes) = euphrosyne::pack::unpack(&yaml, "t").unwrap();
            bytes.push(0);
            m.name = "tampered".into();
            m.digest = Some(euphrosyne::digest::Digest::of(&bytes));
            let mut packed = euphrosyne::pack::pack(&m, &bytes).unwrap();
            packed = packed.replace(
                &euphrosyne::digest::Digest::of(&bytes).to_string(),
                &format!("sha256:{}", "0".repeat(64)),
            );
            std::fs::write(dir.join("tampered.yaml"), packed).unwrap();
        },
        "",
        &[],
    );
    let status = host.json("/api/status").await;
    let names = recipe_names(&status);
    assert_eq!(names, ["cordon-node"]);
    let errors = status["recipe_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0]["origin"].as_str().unwrap().ends_with("broken.yaml"));
    assert!(
        errors[0]["error"].as_str().unwrap().contains("recipe.toml"),
        "{errors:#?}"
    );
    assert!(errors[1]["origin"].as_str().unwrap().ends_with("tampered.yaml"));
    assert!(errors[1]["error"].as_str().unwrap().contains("pins"), "{errors:#?}");
    assert_eq!(host.get("/readyz", None).send().await.unwrap().status(), StatusCode::OK);
}
