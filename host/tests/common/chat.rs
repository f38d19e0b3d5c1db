//! Loopback emulators of the Webex and Slack Web APIs, written from their public API references
//! (field names, status codes, headers). They record every request and can be told to answer
//! 429 with `Retry-After` or 5xx for a path.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub auth: String,
    pub body: Value,
}

#[derive(Default)]
pub struct Emu {
    pub token: String,
    pub calls: Mutex<Vec<Call>>,
    /// path → statuses to answer before behaving (429 gets `Retry-After: 1`).
    pub failures: Mutex<HashMap<String, VecDeque<u16>>>,
    pub attachment_actions: Mutex<HashMap<String, Value>>,
    pub people: Mutex<HashMap<String, Value>>,
    pub webhooks: Mutex<Vec<Value>>,
    pub slack_users: Mutex<HashMap<String, String>>,
    counters: Mutex<HashMap<String, u64>>,
}

type S = State<Arc<Emu>>;

impl Emu {
    fn record(&self, method: &str, path: &str, headers: &HeaderMap, body: Value) -> Option<Response> {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        self.calls.lock().unwrap().push(Call {
            method: method.into(),
            path: path.into(),
            auth: auth.clone(),
            body,
        });
        if auth != format!("Bearer {}", self.token) {
            // Webex answers 401 for a bad token; Slack answers 200 {"ok": false, "error": "invalid_auth"}.
            return Some(if path.starts_with("/api/") {
                axum::Json(json!({"ok": false, "error": "invalid_auth"})).into_response()
            } else {
                (StatusCode::UNAUTHORIZED, axum::Json(json!({"message": "The request requires a valid access token set in the Authorization request header."}))).into_response()
            });
        }
        let status = self
            .failures
            .lock()
            .unwrap()
            .get_mut(path)
            .and_then(|q| q.pop_front())?;
        let mut r = (
            StatusCode::from_u16(status).unwrap(),
            axum::Json(json!({"message": "emulated failure"})),
        )
            .into_response();
        if status == 429 {
            r.headers_mut().insert("retry-after", "1".parse().unwrap());
        }
        Some(r)
    }

    fn next_id(&self, prefix: &str) -> String {
        let mut counters = self.counters.lock().unwrap();
        let c = counters.entry(prefix.to_string()).or_insert(0);
        *c += 1;
        format!("{prefix}-{c}")
    }

    pub fn calls(&self, method: &str, path: &str) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.method == method && c.path == path)
            .cloned()
            .collect()
    }

    pub fn fail(&self, path: &str, statuses: &[u16]) {
        self.failures
            .lock()
            .unwrap()
            .insert(path.into(), statuses.iter().copied().collect());
    }
}

fn parse(body: &Bytes) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

async fn webex_post_message(State(e): S, h: HeaderMap, body: Bytes) -> Response {
    let body = parse(&body);
    if let Some(r) = e.record("POST", "/v1/messages", &h, body.clone()) {
        return r;
    }
    let id = e.next_id("msg");
    let mut msg = json!({"id": id, "roomId": body["roomId"], "roomType": "group", "markdown": body["markdown"], "personId": "bot", "personEmail": "bot@webex.bot", "created": super::now_millis()});
    if let Some(p) = body.get("parentId") {
        msg["parentId"] = p.clone();
    }
    axum::Json(msg).into_response()
}

async fn webex_put_message(State(e): S, h: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    let body = parse(&body);
    if let Some(r) = e.record("PUT", &format!("/v1/messages/{id}"), &h, body.clone()) {
        return r;
    }
    axum::Json(
        json!({"id": id, "roomId": body["roomId"], "markdown": body["markdown"], "updated": super::now_millis()}),
    )
    .into_response()
}

async fn webex_attachment_action(State(e): S, h: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = e.record("GET", &format!("/v1/attachment/actions/{id}"), &h, Value::Null) {
        return r;
    }
    match e.attachment_actions.lock().unwrap().get(&id) {
        Some(a) => axum::Json(a.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "The requested resource could not be found."})),
        )
            .into_response(),
    }
}

async fn webex_person(State(e): S, h: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = e.record("GET", &format!("/v1/people/{id}"), &h, Value::Null) {
        return r;
    }
    match e.people.lock().unwrap().get(&id) {
        Some(p) => axum::Json(p.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "The requested resource could not be found."})),
        )
            .into_response(),
    }
}

async fn webex_list_webhooks(State(e): S, h: HeaderMap) -> Response {
    if let Some(r) = e.record("GET", "/v1/webhooks", &h, Value::Null) {
        return r;
    }
    axum::Json(json!({"items": *e.webhooks.lock().unwrap()})).into_response()
}

async fn webex_create_webhook(State(e): S, h: HeaderMap, body: Bytes) -> Response {
    let body = parse(&body);
    if let Some(r) = e.record("POST", "/v1/webhooks", &h, body.clone()) {
        return r;
    }
    let mut w = body.clone();
    w["id"] = json!(e.next_id("wh"));
    w["status"] = json!("active");
    w.as_object_mut().unwrap().remove("secret"); // Webex never echoes the secret
    e.webhooks.lock().unwrap().push(w.clone());
    axum::Json(w).into_response()
}

async fn slack_post(State(e): S, h: HeaderMap, Path(method): Path<String>, body: Bytes) -> Response {
    let body = parse(&body);
    if let Some(r) = e.record("POST", &format!("/api/{method}"), &h, body.clone()) {
        return r;
    }
    match method.as_str() {
        "chat.postMessage" => {
            let ts = format!(
                "1795510000.{:06}",
                e.next_id("").trim_start_matches('-').parse::<u64>().unwrap_or(0)
            );
            axum::Json(json!({"ok": true, "channel": body["channel"], "ts": ts, "message": {"type": "message", "text": body["text"], "ts": ts}})).into_response()
        }
        "chat.update" => {
            axum::Json(json!({"ok": true, "channel": body["channel"], "ts": body["ts"], "text": body["text"]}))
                .into_response()
        }
        _ => axum::Json(json!({"ok": false, "error": "unknown_method"})).into_response(),
    }
}

async fn slack_users_info(State(e): S, h: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Some(r) = e.record("GET", "/api/users.info", &h, json!(q)) {
        return r;
    }
    let user = q.get("user").cloned().unwrap_or_default();
    match e.slack_users.lock().unwrap().get(&user) {
        Some(email) => axum::Json(
            json!({"ok": true, "user": {"id": user, "name": email.split('@').next(), "profile": {"email": email}}}),
        )
        .into_response(),
        None => axum::Json(json!({"ok": false, "error": "user_not_found"})).into_response(),
    }
}

/// Start an emulator serving Webex under `/v1` and Slack under `/api`; returns it and its base URL.
pub async fn start(token: &str) -> (Arc<Emu>, String) {
    let emu = Arc::new(Emu {
        token: token.into(),
        ..Default::default()
    });
    let app = Router::new()
        .route("/v1/messages", post(webex_post_message))
        .route("/v1/messages/{id}", put(webex_put_message))
        .route("/v1/attachment/actions/{id}", get(webex_attachment_action))
        .route("/v1/people/{id}", get(webex_person))
        .route("/v1/webhooks", get(webex_list_webhooks).post(webex_create_webhook))
        .route("/api/users.info", get(slack_users_info))
        .route("/api/{method}", post(slack_post))
        .with_state(emu.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (emu, url)
}
