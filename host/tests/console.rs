//! The incident console in a real browser: Debian's chromium, headless, through chromedriver.
//! A real alert becomes an incident with an analysis and a dry-run diff; a viewer reads it and
//! sees no button; an operator signs in, approves after a confirmation, and watches the outcome
//! arrive without reloading; a form without its CSRF token is refused; markup in alerts never
//! runs. Plain HTTP checks (cookies, redirects, the live stream) need no browser.

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::host::*;
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The analysed incident of a `World`'s failing endpoint, once its suggestion was previewed.
async fn previewed_incident(world: &World) -> Value {
    let r = world
        .host
        .post("/webhook", None)
        .json(&world.endpoint_alert("fp-console"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let inc = world.host.analysed_incident().await;
    let id = inc["incident"]["id"].as_str().unwrap().to_string();
    world
        .host
        .wait_for(&format!("/api/incidents/{id}"), |v| {
            v["incident"]["analysis"]["actions"][0]["preview"]["ok"] == true
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engineer_takes_an_incident_from_alert_to_outcome_in_the_browser() {
    let world = World::start("", &[], &[]);
    let host = &world.host;
    let inc = previewed_incident(&world).await;
    let id = inc["incident"]["id"].as_str().unwrap();
    let suggestion = &inc["incident"]["analysis"]["actions"][0];
    assert_eq!(suggestion["action"], "open-ticket", "{inc:#}");
    let sid = suggestion["id"].as_str().unwrap();
    let ticket = suggestion["preview"]["changes"][0]["after"]
        .as_str()
        .unwrap()
        .trim_matches('"')
        .to_string();
    let page = format!("{}/incidents/{id}", host.url);

    let b = Browser::start().await;
    // Tokens are configured: the list asks who you are first, and comes back after.
    b.goto(&format!("{}/incidents", host.url)).await;
    b.wait("#token").await;
    assert!(
        b.client
            .current_url()
            .await
            .unwrap()
            .as_str()
            .contains("/sign-in?next=%2Fincidents")
    );

    // A viewer reads everything and can act on nothing.
    b.sign_in(&host.url, VIEWER).await;
    let row = b.wait(&format!("a[href='/incidents/{id}']")).await;
    let list = b.text().await;
    for want in ["EndpointDown", "analyzed", "identified", "viewer-bot · viewer"] {
        assert!(list.contains(want), "the list lacks `{want}`:\n{list}");
    }
    b.screenshot("console-list").await;
    row.click().await.unwrap();
    b.wait("#analysis pre.summary").await;
    let text = b.text().await;
    for want in [
        "EndpointDown",
        "503",
        "open-ticket",
        "Dry run",
        &ticket,
        "run-started",
        "analysis-complete",
    ] {
        assert!(text.contains(want), "the incident page lacks `{want}`:\n{text}");
    }
    assert_eq!(b.count("table.diff td.after").await, 1, "the dry run's diff");
    assert_eq!(b.count("a.approve").await, 0, "a viewer was offered Approve");
    assert_eq!(b.count("form.reject").await, 0, "a viewer was offered Reject");
    b.goto(&format!("{page}/actions/{sid}")).await;
    assert!(b.text().await.contains("Not allowed"));
    b.goto(&page).await;
    b.sign_out().await;

    // An operator: Approve… leads to a confirmation that repeats what will change.
    b.sign_in(&host.url, OPERATOR).await;
    b.goto(&page).await;
    b.wait("a.approve").await.click().await.unwrap();
    b.wait("form.confirm").await;
    let confirm = b.text().await;
    assert!(
        confirm.contains("It will change:") && confirm.contains(&ticket),
        "{confirm}"
    );

    // The same form without its CSRF token is refused, and nothing is approved.
    b.js("document.querySelector('form.confirm input[name=csrf]').remove(); return true")
        .await;
    b.wait("form.confirm button.approve").await.click().await.unwrap();
    b.wait("p.error").await;
    let refused = b.text().await;
    assert!(refused.contains("Form refused"), "{refused}");
    let now = host.json(&format!("/api/incidents/{id}")).await;
    assert_eq!(
        now["actions"],
        json!([]),
        "a CSRF-less form approved something: {now:#}"
    );

    // Approve for real while Jira is held: the page comes back with the action waiting, and its
    // outcome arrives over the live stream once Jira answers, without a reload.
    world.jira.hold();
    b.goto(&format!("{page}/actions/{sid}")).await;
    b.wait("form.confirm button.approve").await.click().await.unwrap();
    let action = b.wait("article.action").await;
    let status = action.attr("data-status").await.unwrap().unwrap();
    assert!(["pending", "running"].contains(&status.as_str()), "{status}");
    b.js("window.notReloaded = true; return true").await;
    until("the page's live stream connects", Duration::from_secs(20), || async {
        (b.js("return document.body.dataset.updates || ''").await != json!("")).then_some(())
    })
    .await;
    world.jira.release();
    b.wait("article.action[data-status='succeeded']").await;
    let done = b.text().await;
    assert!(done.contains("OPS-7"), "the outcome lacks the ticket:\n{done}");
    assert_eq!(
        b.js("return window.notReloaded === true").await,
        json!(true),
        "the page reloaded"
    );
    assert!(!done.contains("Approve…"), "Approve is still offered after approval");
    b.js("window.scrollTo(0, 0); return true").await;
    b.screenshot("console-incident").await;

    // Recorded as any approval is: who, and through which channel.
    let after = host.json(&format!("/api/incidents/{id}")).await;
    let a = &after["actions"][0];
    assert_eq!(
        (a["approved_by"].as_str(), a["channel"].as_str()),
        (Some("operator-bot"), Some("console")),
        "{a:#}"
    );
    assert_eq!(a["status"], "succeeded");
    let approved = after["incident"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "action-approved")
        .cloned()
        .unwrap_or_default();
    assert!(
        approved["by"].as_str().is_some_and(|b| b.starts_with("operator-bot")),
        "{approved:#}"
    );
    assert_eq!(world.jira.hits(), 1, "the ticket was opened once");
    b.close().await;
}

/// An Alertmanager body whose labels and annotations try every way into the page.
fn hostile_alert() -> Value {
    let long = format!("{}</pre><script>window.xss=6</script>END", "x".repeat(400));
    alertmanager_body(
        "{}:{alertname=\"Hostile\"}",
        "firing",
        json!({
            "alertname": "Hostile<script>window.xss=1</script>",
            "namespace": "\"><img src=x onerror=\"window.xss=2;alert(2)\">",
            "pod": "' onmouseover='window.xss=3' x='",
        }),
        json!({
            "summary": "<svg onload=\"window.xss=4\"></svg><b>bold?</b>",
            "runbook_url": "javascript:window.xss=5",
            "description": long,
        }),
        firing_since(),
        "fp-hostile",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_in_alerts_is_shown_as_text_and_never_runs() {
    let host = Host::start(|_| {}, "", &[]);
    let mut alert = hostile_alert();
    alert["alerts"][0]["generatorURL"] = json!("javascript:alert(7)");
    let id = host.open_incident(&alert).await;

    let b = Browser::start().await;
    b.sign_in(&host.url, VIEWER).await;
    for path in ["/incidents".to_string(), format!("/incidents/{id}")] {
        b.goto(&format!("{}{path}", host.url)).await;
        b.wait("main h1").await;
        if path != "/incidents" {
            // The live stream replaced the page's part at least once: its HTML is escaped too.
            until("the live update", Duration::from_secs(20), || async {
                (b.js("return document.body.dataset.updates || ''").await != json!("")).then_some(())
            })
            .await;
        }
        assert!(
            b.client.get_alert_text().await.is_err(),
            "{path}: an alert() dialog opened"
        );
        assert_eq!(
            b.js("return typeof window.xss").await,
            json!("undefined"),
            "{path}: injected script ran"
        );
        assert_eq!(b.count("script").await, 1, "{path}: a script element was injected");
        assert_eq!(
            b.count("main img, main svg").await,
            0,
            "{path}: an element was injected"
        );
        let bold = b
            .js("return [...document.querySelectorAll('main b')].some(e => e.textContent === 'bold?')")
            .await;
        assert_eq!(bold, json!(false), "{path}: an annotation's <b> became an element");
        assert_eq!(b.count("a[href^='javascript']").await, 0, "{path}: a javascript: link");
        let text = b.text().await;
        assert!(
            text.contains("Hostile<script>window.xss=1</script>"),
            "{path}: the label is not shown as text:\n{text}"
        );
    }
    // On the incident page the quotes stay inside their text, and the long value is reachable
    // whole behind its disclosure.
    let text = b.text().await;
    assert!(text.contains("' onmouseover='window.xss=3' x='"), "{text}");
    assert!(
        text.contains("<svg onload=\"window.xss=4\"></svg><b>bold?</b>"),
        "{text}"
    );
    let whole = b
        .js("return [...document.querySelectorAll('details.long')].map(d => d.textContent).join('\\n')")
        .await;
    assert!(
        whole.as_str().unwrap().contains("<script>window.xss=6</script>END"),
        "{whole}"
    );
    b.close().await;
}

/// Sign in over plain HTTP: the session cookie and the redirect back.
async fn http_sign_in(host: &Host, token: &str) -> (reqwest::Client, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = http
        .get(format!("{}/sign-in?next=/recipes", host.url))
        .send()
        .await
        .unwrap();
    let cookie = form.headers()[reqwest::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    let html = form.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let jar = cookie.split(';').next().unwrap().to_string();
    let r = http
        .post(format!("{}/sign-in", host.url))
        .header(reqwest::header::COOKIE, &jar)
        .form(&[("token", token), ("csrf", &csrf), ("next", "/recipes")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[reqwest::header::LOCATION], "/recipes");
    let set = r.headers()[reqwest::header::SET_COOKIE].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "the session cookie lacks {attr}: {set}");
    }
    (http, set.split(';').next().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_forms_and_the_live_stream_over_http() {
    let host = Host::start(|dir| pack_into(dir, "http-probe", |_| {}), "", &[]);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Not signed in: to the sign-in form, and back after.
    let r = http.get(format!("{}/recipes", host.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[reqwest::header::LOCATION], "/sign-in?next=%2Frecipes");
    let csp = r.headers()[reqwest::header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );

    // A wrong token, or a sign-in form without its cookie, signs nobody in.
    let r = http
        .post(format!("{}/sign-in", host.url))
        .form(&[("token", OPERATOR), ("csrf", "guess"), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        !r.headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("euphrosyne_session="))
    );

    let (http, session) = http_sign_in(&host, VIEWER).await;
    let page = http
        .get(format!("{}/recipes", host.url))
        .header(reqwest::header::COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("http-probe") && html.contains("sha256:"), "{html}");
    // A forged or tampered cookie is nobody.
    let forged = session.replacen(".viewer.", ".operator.", 1);
    let r = http
        .get(format!("{}/recipes", host.url))
        .header(reqwest::header::COOKIE, &forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    // The live stream's first event is the page as it is now.
    let id = host
        .open_incident(&alertmanager_body(
            "{}:{alertname=\"Quiet\"}",
            "firing",
            json!({"alertname": "Quiet", "service": "shop"}),
            json!({}),
            firing_since(),
            "fp-quiet",
        ))
        .await;
    let mut live = http
        .get(format!("{}/incidents/{id}/live", host.url))
        .header(reqwest::header::COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    assert_eq!(live.headers()[reqwest::header::CONTENT_TYPE], "text/event-stream");
    let first = tokio::time::timeout(Duration::from_secs(10), live.chunk())
        .await
        .expect("no first event")
        .unwrap()
        .unwrap();
    let first = String::from_utf8_lossy(&first);
    assert!(first.starts_with("event: update") && first.contains(&id), "{first}");

    // Signed out, the stream says so once and ends (the page stops retrying).
    let r = http
        .get(format!("{}/incidents/{id}/live", host.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = tokio::time::timeout(Duration::from_secs(10), r.text())
        .await
        .unwrap()
        .unwrap();
    assert!(body.starts_with("event: gone") && body.contains("signed out"), "{body}");

    // A viewer's session cannot approve, with or without a token.
    let r = http
        .post(format!("{}/incidents/{id}/reject", host.url))
        .header(reqwest::header::COOKIE, &session)
        .form(&[("csrf", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let events = host.json(&format!("/api/incidents/{id}")).await;
    assert!(
        !events["incident"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "rejected"),
        "{events:#}"
    );
    // The API's errors are RFC 9457 problems with a stable type, axum's own refusals too.
    for (method, path, status, kind) in [
        (
            reqwest::Method::GET,
            "/api/incidents/inc-nope".to_string(),
            404,
            "unknown-incident",
        ),
        (
            reqwest::Method::DELETE,
            "/api/status".to_string(),
            405,
            "method-not-allowed",
        ),
        (reqwest::Method::GET, "/api/nowhere".to_string(), 404, "not-found"),
    ] {
        let r = host
            .http
            .request(method.clone(), format!("{}{path}", host.url))
            .bearer_auth(VIEWER)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        assert_eq!(
            r.headers()[reqwest::header::CONTENT_TYPE],
            "application/problem+json",
            "{method} {path}"
        );
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["type"], format!("/api/docs#problem-{kind}"), "{p:#}");
        assert_eq!(p["status"], status);
        assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()), "{p:#}");
    }
    let big = "x".repeat(2 * 1024 * 1024);
    let r = host.post("/webhook", None).body(big).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.headers()[reqwest::header::CONTENT_TYPE], "application/problem+json");

    // The API's rendering is served from the host itself.
    let docs = http.get(format!("{}/api/docs", host.url)).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    let docs = docs.text().await.unwrap();
    assert!(
        docs.contains("POST /api/actions") && !docs.contains("https://cdn"),
        "{docs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_incident_page_reconnects_after_a_host_restart() {
    let redis = common::redis::RedisServer::start();
    let url = redis.url();
    let env = [("EUPHROSYNE_REDIS_URL", url.as_str())];
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // One replica on a fixed port; its lease short, so the next host leads at once.
    let config = format!("listen = \"127.0.0.1:{port}\"\nredis_prefix = \"console\"\nleader_lease_ms = 1000");
    let alert = |fingerprint: &str, pod: &str| {
        alertmanager_body(
            "{}:{alertname=\"Flappy\"}",
            "firing",
            json!({"alertname": "Flappy", "pod": pod}),
            json!({}),
            firing_since(),
            fingerprint,
        )
    };
    let first = Host::start_with_env(|_| {}, &config, &[], &env);
    let id = first.open_incident(&alert("fp-1", "before-restart")).await;

    let b = Browser::start().await;
    b.sign_in(&first.url, VIEWER).await;
    b.goto(&format!("{}/incidents/{id}", first.url)).await;
    b.wait("#alerts").await;
    until("the live stream connects", Duration::from_secs(20), || async {
        (b.js("return document.body.dataset.updates || ''").await != json!("")).then_some(())
    })
    .await;
    b.js("window.notReloaded = true; return true").await;

    // The host goes away and a new one takes over the same address and the same Redis.
    drop(first);
    until("the page notices", Duration::from_secs(20), || async {
        let s = b.js("return document.getElementById('live-status').textContent").await;
        s.as_str().is_some_and(|s| s.contains("reconnecting")).then_some(())
    })
    .await;
    let second = Host::start_with_env(|_| {}, &config, &[], &env);
    second
        .wait_for(&format!("/api/incidents/{id}"), |v| v["incident"]["id"] == id.as_str())
        .await;
    let r = second
        .post("/webhook", None)
        .json(&alert("fp-2", "after-restart"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    // The page, never reloaded, shows what the new host received.
    until(
        "the new alert appears on the open page",
        Duration::from_secs(30),
        || async { b.text().await.contains("after-restart").then_some(()) },
    )
    .await;
    assert_eq!(
        b.js("return window.notReloaded === true").await,
        json!(true),
        "the page reloaded"
    );
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_names_the_person_and_nobody_else_can() {
    // The test talks from 127.0.0.1, which this host trusts as its SSO proxy.
    let config =
        "[console]\ntrusted_proxies = [\"127.0.0.1\"]\n[console.proxy_roles]\n\"oncall@example.com\" = \"approver\"\n";
    let host = Host::start(|_| {}, config, &[]);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = |email: Option<&'static str>| {
        let mut r = http.get(format!("{}/incidents", host.url));
        if let Some(e) = email {
            r = r.header("X-Forwarded-Email", e);
        }
        r.send()
    };
    let r = page(Some("oncall@example.com")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("oncall@example.com · approver"));
    // Someone the configuration gives no role, or no header at all: sign in first.
    for email in [Some("stranger@example.com"), None] {
        let r = page(email).await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{email:?}");
    }
}
