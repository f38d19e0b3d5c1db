//! Chat approval against loopback emulators of Webex and Slack: the card with the right
//! buttons, a signed click that approves and runs the action, the outcome in the thread, and
//! every way a click must be refused. No test calls a real cloud.

mod common;

use std::time::{Duration, Instant};

use common::chat::Emu;
use common::host::*;
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const BOT_TOKEN: &str = "bot-token-xyz";
const WEBEX_SECRET: &str = "webex-webhook-secret";
const SLACK_SECRET: &str = "slack-signing-secret";

struct ChatWorld {
    w: World,
    emu: std::sync::Arc<Emu>,
}

impl std::ops::Deref for ChatWorld {
    type Target = World;
    fn deref(&self) -> &World {
        &self.w
    }
}

async fn world(chat: &str) -> ChatWorld {
    let (emu, base) = common::chat::start(BOT_TOKEN).await;
    let secrets = [
        ("bot-token", BOT_TOKEN),
        ("webex-secret", WEBEX_SECRET),
        ("slack-secret", SLACK_SECRET),
    ];
    ChatWorld {
        w: World::start(&chat.replace("{base}", &base), &[], &secrets),
        emu,
    }
}

async fn raise_incident(w: &World) -> String {
    let body = alertmanager_body(
        "{}:{alertname=\"EndpointDown\"}",
        "firing",
        json!({"alertname": "EndpointDown", "service": "shop"}),
        json!({"probe_url": format!("http://127.0.0.1:{}/health", w.endpoint.port)}),
        common::firing_since(),
        "fp-chat",
    );
    w.host.post("/webhook", None).json(&body).send().await.unwrap();
    w.host.analysed_incident().await["incident"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn wait_calls(emu: &Emu, method: &str, path: &str, n: usize) -> Vec<common::chat::Call> {
    let started = Instant::now();
    loop {
        let calls: Vec<_> = emu
            .calls(method, path)
            .into_iter()
            .filter(|c| c.auth == format!("Bearer {BOT_TOKEN}"))
            .collect();
        if calls.len() >= n {
            return calls;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "waited for {n} × {method} {path}; got {}",
            calls.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const WEBEX: &str = r#"[webex]
api_base = "{base}/v1"
room_id = "room-1"
token = { file = "{dir}/secrets/bot-token" }
webhook_secret = { file = "{dir}/secrets/webex-secret" }
public_url = "https://euphrosyne.test"
approvers = ["alice@example.com", "@sre.example.com"]
"#;

/// Webex's webhook call for attachment action `id`, signed with `secret`.
fn webex_click(
    w: &ChatWorld,
    id: &str,
    person: &str,
    email: &str,
    inputs: Value,
    secret: &str,
) -> reqwest::RequestBuilder {
    w.emu.attachment_actions.lock().unwrap().insert(id.into(), json!({"id": id, "type": "submit", "messageId": "msg-1", "personId": person, "roomId": "room-1", "inputs": inputs, "created": common::now_millis()}));
    w.emu.people.lock().unwrap().insert(
        person.into(),
        json!({"id": person, "emails": [email], "displayName": email, "type": "person"}),
    );
    let body = json!({"id": "wh-1", "name": "euphrosyne approvals", "targetUrl": "https://euphrosyne.test/webhook/webex", "resource": "attachmentActions", "event": "created",
                      "orgId": "org-1", "createdBy": "bot", "appId": "app-1", "ownedBy": "creator", "status": "active", "actorId": person,
                      "data": {"id": id, "type": "submit", "messageId": "msg-1", "personId": person, "roomId": "room-1", "created": common::now_millis()}})
    .to_string();
    let sig = euphrosyne::chat::hmac_sha1_hex(secret.as_bytes(), body.as_bytes());
    w.host
        .post("/webhook/webex", None)
        .header("content-type", "application/json")
        .header("x-spark-signature", sig)
        .body(body)
}

#[tokio::test]
async fn webex_card_click_approves_and_the_outcome_lands_in_the_thread() {
    let w = world(WEBEX).await;
    // The attachmentActions webhook was registered on start.
    let hooks = wait_calls(&w.emu, "POST", "/v1/webhooks", 1).await;
    assert_eq!(hooks[0].body["targetUrl"], "https://euphrosyne.test/webhook/webex");
    assert_eq!(
        (
            hooks[0].body["resource"].as_str(),
            hooks[0].body["event"].as_str(),
            hooks[0].body["secret"].as_str()
        ),
        (Some("attachmentActions"), Some("created"), Some(WEBEX_SECRET))
    );

    let id = raise_incident(&w).await;
    let posted = wait_calls(&w.emu, "POST", "/v1/messages", 1).await;
    let msg = &posted[0].body;
    assert_eq!(msg["roomId"], "room-1");
    assert!(
        msg["markdown"].as_str().unwrap().contains(&format!("Incident {id}")),
        "{msg}"
    );
    let card = &msg["attachments"][0];
    assert_eq!(card["contentType"], "application/vnd.microsoft.card.adaptive");
    assert_eq!(card["content"]["type"], "AdaptiveCard");
    let buttons = card["content"]["actions"].as_array().unwrap();
    let titles: Vec<&str> = buttons.iter().map(|b| b["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Approve open-ticket", "Reject"]);
    assert_eq!(buttons[0]["type"], "Action.Submit");
    let approve = buttons[0]["data"].clone();

    // A click with a wrong signature is refused before anything is parsed or fetched.
    let r = webex_click(
        &w,
        "aa-forged",
        "p-alice",
        "alice@example.com",
        approve.clone(),
        "not-the-secret",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(w.emu.calls("GET", "/v1/attachment/actions/aa-forged").is_empty());
    // Someone not on the allow-list.
    let r = webex_click(
        &w,
        "aa-mallory",
        "p-mallory",
        "mallory@evil.example",
        approve.clone(),
        WEBEX_SECRET,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Alice approves.
    let r = webex_click(
        &w,
        "aa-1",
        "p-alice",
        "alice@example.com",
        approve.clone(),
        WEBEX_SECRET,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    // The same callback again (a replay) is refused; a double click runs nothing twice.
    assert_eq!(
        webex_click(
            &w,
            "aa-1",
            "p-alice",
            "alice@example.com",
            approve.clone(),
            WEBEX_SECRET
        )
        .send()
        .await
        .unwrap()
        .status(),
        StatusCode::CONFLICT
    );
    let r = webex_click(
        &w,
        "aa-2",
        "p-bob",
        "bob@sre.example.com",
        approve.clone(),
        WEBEX_SECRET,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("already approved"));

    // The outcome is a reply in the card's thread.
    let started = Instant::now();
    let reply = loop {
        let found = w
            .emu
            .calls("POST", "/v1/messages")
            .into_iter()
            .find(|c| c.body["markdown"].as_str().is_some_and(|m| m.contains("opened OPS-7")));
        if let Some(c) = found {
            break c;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no outcome reply: {:#?}",
            w.emu.calls("POST", "/v1/messages")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(reply.body["parentId"], "msg-1");
    assert!(
        reply.body["markdown"]
            .as_str()
            .unwrap()
            .contains("approved by alice@example.com via webex")
    );
    assert_eq!(w.jira.hits(), 1, "one ticket for two clicks");

    // The event log has the approval and the refusal, with who and the channel.
    let v = w.host.json(&format!("/api/incidents/{id}")).await;
    let events = v["incident"]["events"].as_array().unwrap();
    let approved = events.iter().find(|e| e["kind"] == "action-approved").unwrap();
    assert_eq!(
        (approved["by"].as_str(), approved["channel"].as_str()),
        (Some("alice@example.com (token webex)"), Some("webex"))
    );
    let refused = events.iter().find(|e| e["kind"] == "action-refused").unwrap();
    assert_eq!(
        (refused["by"].as_str(), refused["channel"].as_str()),
        (Some("mallory@evil.example"), Some("webex"))
    );

    // Reject edits the card.
    let r = webex_click(
        &w,
        "aa-3",
        "p-alice",
        "alice@example.com",
        json!({"incident": id, "decision": "reject"}),
        WEBEX_SECRET,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let edits = wait_calls(&w.emu, "PUT", "/v1/messages/msg-1", 1).await;
    assert!(edits[0].body["markdown"].as_str().unwrap().contains("rejected"));
}

#[tokio::test]
async fn webex_429_is_honoured_and_5xx_is_retried_then_reported() {
    let w = world(WEBEX).await;
    wait_calls(&w.emu, "POST", "/v1/webhooks", 1).await;
    w.emu.fail("/v1/messages", &[429]);
    let started = Instant::now();
    let id = raise_incident(&w).await;
    let posted = wait_calls(&w.emu, "POST", "/v1/messages", 2).await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    assert!(posted[1].body["attachments"].is_array());
    let v = w
        .host
        .wait_for(&format!("/api/incidents/{id}"), |v| {
            v["incident"]["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "analysis-sent" && e["channel"] == "webex")
        })
        .await;
    assert!(
        v["incident"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["kind"] != "notify-failed")
    );

    // Webex failing for good: retried with backoff, then reported in the event log.
    w.emu.fail("/v1/messages", &[503, 502, 500, 503]);
    let approval = json!({"incident": id, "action": "open-ticket", "approver": "alice"});
    w.host
        .post("/api/actions", Some(APPROVER))
        .json(&approval)
        .send()
        .await
        .unwrap();
    let v = w
        .host
        .wait_for(&format!("/api/incidents/{id}"), |v| {
            v["incident"]["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "notify-failed")
                && v["incident"]["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["kind"] == "outcome-sent" && e["channel"] == "webex")
        })
        .await;
    let failed = v["incident"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "notify-failed")
        .unwrap()
        .clone();
    assert!(
        failed["detail"].as_str().unwrap().contains("gave up after 4 attempts"),
        "{failed}"
    );
    // The analysis and a retried 429 (2), the "approved" reply given up after 4 attempts, then
    // the outcome reply once Webex is back (1).
    assert_eq!(w.emu.calls("POST", "/v1/messages").len(), 2 + 4 + 1);
}

const SLACK: &str = r#"[slack]
api_base = "{base}/api"
channel = "C0123"
token = { file = "{dir}/secrets/bot-token" }
signing_secret = { file = "{dir}/secrets/slack-secret" }
approvers = ["@example.com"]
"#;

fn slack_click(
    w: &ChatWorld,
    user: &str,
    email: &str,
    action_id: &str,
    value: &str,
    ts: i64,
    secret: &str,
) -> reqwest::RequestBuilder {
    w.emu.slack_users.lock().unwrap().insert(user.into(), email.into());
    let payload = json!({"type": "block_actions", "user": {"id": user, "username": email, "name": email, "team_id": "T1"}, "api_app_id": "A1",
                         "container": {"type": "message", "message_ts": "1795510000.000001", "channel_id": "C0123", "is_ephemeral": false},
                         "channel": {"id": "C0123", "name": "incidents"}, "response_url": "https://hooks.slack.test/actions/1",
                         "actions": [{"action_id": action_id, "block_id": "b", "type": "button", "value": value, "action_ts": "1795510001.0"}]});
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish();
    let sig = format!(
        "v0={}",
        euphrosyne::chat::hmac_sha256_hex(secret.as_bytes(), format!("v0:{ts}:{body}").as_bytes())
    );
    w.host
        .post("/webhook/slack", None)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", ts.to_string())
        .header("x-slack-signature", sig)
        .body(body)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn slack_button_click_approves_and_updates_the_message() {
    let w = world(SLACK).await;
    let id = raise_incident(&w).await;
    let posted = wait_calls(&w.emu, "POST", "/api/chat.postMessage", 1).await;
    let msg = &posted[0].body;
    assert_eq!(msg["channel"], "C0123");
    let buttons = msg["blocks"][1]["elements"].as_array().unwrap();
    assert_eq!(
        buttons
            .iter()
            .map(|b| b["text"]["text"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["Approve open-ticket", "Reject"]
    );
    let (approve_id, approve_value) = (
        buttons[0]["action_id"].as_str().unwrap().to_string(),
        buttons[0]["value"].as_str().unwrap().to_string(),
    );

    let click = |user: &str, email: &str, ts: i64, secret: &str| {
        slack_click(&w, user, email, &approve_id, &approve_value, ts, secret)
    };
    assert_eq!(
        click("U1", "alice@example.com", now(), "wrong")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        click("U1", "alice@example.com", now() - 400, SLACK_SECRET)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED,
        "older than 5 minutes"
    );
    assert_eq!(
        click("U9", "mallory@evil.example", now(), SLACK_SECRET)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    let ts = now();
    let r = click("U1", "alice@example.com", ts, SLACK_SECRET).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    assert_eq!(
        click("U1", "alice@example.com", ts, SLACK_SECRET)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::CONFLICT,
        "replay"
    );
    let r = click("U2", "bob@example.com", now() + 1, SLACK_SECRET)
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("already approved"), "double click");

    // The message is updated with the decision, then the outcome.
    let started = Instant::now();
    loop {
        let updates = w.emu.calls("POST", "/api/chat.update");
        if updates
            .iter()
            .any(|u| u.body["blocks"].to_string().contains("opened OPS-7"))
        {
            let last = updates.last().unwrap();
            assert_eq!(last.body["channel"], "C0123");
            assert!(
                last.body["blocks"]
                    .to_string()
                    .contains("approved by alice@example.com")
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no outcome update: {updates:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(w.jira.hits(), 1);
    let v = w.host.json(&format!("/api/incidents/{id}")).await;
    let approved = v["incident"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "action-approved")
        .unwrap()
        .clone();
    assert_eq!(approved["channel"], "slack");
}

#[tokio::test]
async fn plain_webhook_notifier_signs_its_posts() {
    let sink = HttpServer::start(200, "ok");
    let w = world(&format!("[[notify_webhooks]]\nurl = \"http://127.0.0.1:{}/api/analysis\"\nformat = \"euphrosyne-bot\"\nsecret = {{ file = \"{{dir}}/secrets/bot-token\" }}\n", sink.port)).await;
    let id = raise_incident(&w).await;
    let v = w
        .host
        .wait_for(&format!("/api/incidents/{id}"), |v| {
            v["incident"]["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "analysis-sent" && e["detail"].as_str().unwrap().contains("webhook"))
        })
        .await;
    assert!(v["incident"]["events"].as_array().is_some());
    assert_eq!(sink.hits(), 1);
    // The original bot's /api/analysis body, signed with the configured secret.
    let (head, body) = sink.requests.lock().unwrap()[0].clone();
    assert!(head.starts_with("POST /api/analysis "), "{head}");
    let sig = head
        .lines()
        .find_map(|l| l.strip_prefix("x-euphrosyne-signature: "))
        .expect("signature header");
    assert_eq!(
        sig,
        format!(
            "sha256={}",
            euphrosyne::chat::hmac_sha256_hex(BOT_TOKEN.as_bytes(), &body)
        )
    );
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["uuid"], id.as_str());
    assert_eq!(json["actions"], json!(["open-ticket"]));
    assert!(json["analysis"].as_str().unwrap().contains("answers 503"));
}

#[tokio::test]
async fn webex_webhook_registration_is_idempotent() {
    let (emu, base) = common::chat::start(BOT_TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), BOT_TOKEN).unwrap();
    std::fs::write(dir.path().join("secret"), WEBEX_SECRET).unwrap();
    let toml = format!(
        "api_base = \"{base}/v1\"\nroom_id = \"room-1\"\ntoken = {{ file = \"{d}/token\" }}\nwebhook_secret = {{ file = \"{d}/secret\" }}\npublic_url = \"https://euphrosyne.test/\"\napprovers = []\n",
        d = dir.path().display()
    );
    let cfg: euphrosyne::chat::webex::WebexConfig = toml::from_str(&toml).unwrap();
    for _ in 0..2 {
        // Two hosts starting (or one restarting) against the same Webex.
        let webex = euphrosyne::chat::webex::Webex::new(cfg.clone(), Default::default()).unwrap();
        webex.register_webhook().await.unwrap();
    }
    assert_eq!(emu.calls("GET", "/v1/webhooks").len(), 2);
    assert_eq!(emu.calls("POST", "/v1/webhooks").len(), 1, "registered once");
    assert_eq!(
        emu.webhooks.lock().unwrap()[0]["targetUrl"],
        "https://euphrosyne.test/webhook/webex"
    );
}

/// Chat hears of an action in the order it happened: the "approved" line before the outcome,
/// also when the outcome is known at once (no recipe implements the action) — two updates once
/// raced and Slack could show "failed" above "approved".
/// An action no installed actor implements is refused before anything is queued: `409`, the
/// refusal in the event log, no action on record — and so nothing for chat to announce.
#[tokio::test]
async fn an_action_no_actor_implements_is_refused_before_it_is_queued() {
    let w = world(SLACK).await;
    let id = raise_incident(&w).await;
    wait_calls(&w.emu, "POST", "/api/chat.postMessage", 1).await;
    let r = w
        .host
        .post("/api/actions", Some(OPERATOR))
        .json(&json!({"incident": id, "action": "rollback-deployment", "params": {"name": "web"}, "approver": "bob"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("no action recipe implements `rollback-deployment` (actions available: open-ticket)"),
        "{text}"
    );
    let v = w.host.json(&format!("/api/incidents/{id}")).await;
    assert_eq!(v["incident"]["actions"], json!([]), "{v:#}");
    let refused = v["incident"]["events"].as_array().unwrap().iter().any(|e| {
        e["kind"] == "action-refused" && e["detail"].as_str().unwrap().contains("no action recipe implements")
    });
    assert!(refused, "{v:#}");
}
