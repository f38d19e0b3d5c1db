//! The HTTP API (axum): `/webhook`, `/api/*`, `/metrics`, `/healthz`, `/readyz`. Every route is
//! declared once in [`ROUTES`]; the router and the OpenAPI document are both built from it.

mod auth;
mod openapi;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde::Deserialize;
use serde_json::json;

pub use self::auth::Auth;
use crate::access::Role;
use crate::incident::IncidentState;
use crate::reconciler::{Approval, ApproveError, Caller, IntakeError, Reconciler};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Open,
    /// Alertmanager (webhook credentials, when configured).
    Webhook,
    /// A viewer token (when tokens are configured; open otherwise).
    Viewer,
    /// An approver or operator token, always.
    Approver,
}

/// One route.
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path (axum syntax).
    pub path: &'static str,
    /// OpenAPI operation id.
    pub operation: &'static str,
    /// One line.
    pub summary: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Query parameters.
    pub query: &'static [(&'static str, &'static str)],
    /// The request body, described.
    pub body: Option<&'static str>,
    /// Status codes and what they mean.
    pub responses: &'static [(u16, &'static str)],
    handler: fn() -> MethodRouter<Arc<Api>>,
}

/// The API's shared state.
pub struct Api {
    /// The host loop.
    pub reconciler: Arc<Reconciler>,
    /// Credentials.
    pub auth: Auth,
    /// Webex approvals, when configured.
    pub webex: Option<Arc<crate::chat::webex::Webex>>,
    /// Slack approvals, when configured.
    pub slack: Option<Arc<crate::chat::slack::Slack>>,
    /// Several replicas (Redis mode): while this one follows, requests go to the leader.
    pub replicas: Option<Arc<crate::lease::Replicas>>,
    /// Largest request body.
    pub max_body_bytes: usize,
}

/// Every route, in one place.
pub const ROUTES: &[Route] = &[
    Route {
        method: "POST",
        path: "/webhook",
        operation: "postWebhook",
        summary: "Receive alerts: Alertmanager webhook (version 4), Grafana webhook, or a generic JSON alert",
        access: Access::Webhook,
        query: &[],
        body: Some(
            "Alertmanager webhook body, or {\"labels\": {...}, \"annotations\": {...}, \"status\", \"startsAt\"}",
        ),
        responses: &[
            (202, "accepted (duplicates are counted, not re-run)"),
            (400, "malformed; the error names the field"),
            (401, "missing or wrong credentials"),
            (413, "body over max_body_bytes"),
            (503, "queue full or shutting down; Retry-After says when to retry"),
        ],
        handler: || post(webhook),
    },
    Route {
        method: "POST",
        path: "/webhook/webex",
        operation: "postWebexCallback",
        summary: "Webex attachmentActions webhook: a click on an Approve/Reject card button",
        access: Access::Open,
        query: &[],
        body: Some(
            "Webex webhook envelope; verified by X-Spark-Signature (HMAC-SHA1 of the body with the webhook secret) before parsing",
        ),
        responses: &[
            (200, "handled"),
            (401, "bad signature"),
            (403, "the person is not an allowed approver"),
            (404, "Webex is not configured"),
            (409, "replayed callback"),
            (422, "approval refused"),
            (502, "the Webex API failed"),
        ],
        handler: || post(webex_callback),
    },
    Route {
        method: "POST",
        path: "/webhook/slack",
        operation: "postSlackInteraction",
        summary: "Slack interactivity: a click on an Approve/Reject button",
        access: Access::Open,
        query: &[],
        body: Some(
            "application/x-www-form-urlencoded `payload`; verified by X-Slack-Signature (v0 HMAC-SHA256) and a 5-minute timestamp window before parsing",
        ),
        responses: &[
            (200, "handled"),
            (401, "bad signature or stale timestamp"),
            (403, "the user is not an allowed approver"),
            (404, "Slack is not configured"),
            (409, "replayed request"),
            (422, "approval refused"),
            (502, "the Slack API failed"),
        ],
        handler: || post(slack_callback),
    },
    Route {
        method: "GET",
        path: "/api/status",
        operation: "getStatus",
        summary: "Incidents by state, runs in flight, loaded recipes with digests",
        access: Access::Viewer,
        query: &[],
        body: None,
        responses: &[(200, "status"), (401, "token required")],
        handler: || get(status),
    },
    Route {
        method: "GET",
        path: "/api/incidents",
        operation: "listIncidents",
        summary: "Incidents, newest first (summaries without event logs)",
        access: Access::Viewer,
        query: &[
            ("state", "collecting | analyzing | analyzed | resolved"),
            ("label", "name=value carried by an alert"),
        ],
        body: None,
        responses: &[(200, "incidents"), (400, "bad filter"), (401, "token required")],
        handler: || get(list_incidents),
    },
    Route {
        method: "GET",
        path: "/api/incidents/{id}",
        operation: "getIncident",
        summary: "One incident: alerts, runs with results, analysis, suggested and approved actions, event log",
        access: Access::Viewer,
        query: &[],
        body: None,
        responses: &[(200, "incident"), (401, "token required"), (404, "unknown incident")],
        handler: || get(get_incident),
    },
    Route {
        method: "POST",
        path: "/api/actions",
        operation: "approveAction",
        summary: "Approve an action: {incident, action, params?, approver}, or the original reconciler's {uuid, actions: [{name, data}]}",
        access: Access::Approver,
        query: &[],
        body: Some("{\"incident\": ID, \"action\": NAME or suggestion id, \"params\": {...}?, \"approver\": WHO}"),
        responses: &[
            (202, "approved; the action runs"),
            (200, "approved before; the same run, nothing runs again"),
            (400, "malformed"),
            (401, "token required"),
            (403, "token lacks the approver role"),
            (404, "unknown incident"),
            (422, "not suggested (operator only) or ambiguous"),
            (429, "circuit breaker open for this action and target"),
        ],
        handler: || post(approve),
    },
    Route {
        method: "GET",
        path: "/api/actions/{id}",
        operation: "getAction",
        summary: "One approved action and its outcome",
        access: Access::Viewer,
        query: &[],
        body: None,
        responses: &[(200, "action"), (401, "token required"), (404, "unknown action")],
        handler: || get(get_action),
    },
    Route {
        method: "GET",
        path: "/api/openapi.json",
        operation: "getOpenApi",
        summary: "This document",
        access: Access::Open,
        query: &[],
        body: None,
        responses: &[(200, "OpenAPI 3 document")],
        handler: || get(openapi_json),
    },
    Route {
        method: "GET",
        path: "/metrics",
        operation: "getMetrics",
        summary: "Prometheus metrics",
        access: Access::Open,
        query: &[],
        body: None,
        responses: &[(200, "text exposition format")],
        handler: || get(metrics),
    },
    Route {
        method: "GET",
        path: "/healthz",
        operation: "getHealth",
        summary: "Liveness",
        access: Access::Open,
        query: &[],
        body: None,
        responses: &[(200, "alive")],
        handler: || get(healthz),
    },
    Route {
        method: "GET",
        path: "/readyz",
        operation: "getReady",
        summary: "Readiness: accepting alerts",
        access: Access::Open,
        query: &[],
        body: None,
        responses: &[(200, "ready"), (503, "not ready (shutting down)")],
        handler: || get(readyz),
    },
];

/// The router.
pub fn router(api: Arc<Api>) -> Router {
    let mut r = Router::new();
    for route in ROUTES {
        r = r.route(route.path, (route.handler)());
    }
    r.layer(axum::middleware::from_fn_with_state(api.clone(), follow_leader))
        .layer(DefaultBodyLimit::max(api.max_body_bytes))
        .with_state(api)
}

/// Set on a request one replica forwarded to another (never forwarded twice).
const FORWARDED_BY: &str = "x-euphrosyne-forwarded-by";

/// On a follower replica, forward every request but the probes and `/metrics` to the leader,
/// unchanged (body, credentials, chat signatures), and hand its answer back.
async fn follow_leader(
    State(api): State<Arc<Api>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(replicas) = api.replicas.as_ref().filter(|r| !r.is_leader()) else {
        return next.run(req).await;
    };
    if matches!(req.uri().path(), "/healthz" | "/readyz" | "/metrics") {
        return next.run(req).await;
    }
    let unavailable = |msg: String| {
        let mut r = error(StatusCode::SERVICE_UNAVAILABLE, msg);
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        r
    };
    if req.headers().contains_key(FORWARDED_BY) {
        return unavailable("this replica is not the leader either (the lease is changing hands); retry".into());
    }
    let leader = match replicas.leader().await {
        Some(l) if l.replica != replicas.lease().replica() => l,
        _ => return unavailable("no replica leads yet (the lease is being taken); retry in a second".into()),
    };
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, api.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body over {} bytes", api.max_body_bytes),
            );
        }
    };
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut out = replicas
        .http
        .request(
            parts.method.clone(),
            format!("{}{path}", leader.url.trim_end_matches('/')),
        )
        .header(FORWARDED_BY, replicas.lease().replica())
        .body(body);
    for (name, value) in &parts.headers {
        if !is_hop_header(name) {
            out = out.header(name, value);
        }
    }
    match out.send().await {
        Ok(resp) => {
            let status = resp.status();
            let headers = resp.headers().clone();
            let bytes = resp.bytes().await.unwrap_or_default();
            let mut r = (status, bytes).into_response();
            for (name, value) in &headers {
                if !is_hop_header(name) {
                    r.headers_mut().insert(name, value.clone());
                }
            }
            r
        }
        Err(e) => unavailable(format!(
            "the leader `{}` at {} did not answer ({e}); retry",
            leader.replica, leader.url
        )),
    }
}

fn is_hop_header(name: &header::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host" | "connection" | "content-length" | "transfer-encoding" | "keep-alive" | "upgrade" | "te" | "trailer"
    )
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

/// A refusal: status and message.
type Refusal = (StatusCode, &'static str);

/// Check a token for `need`. `Ok(None)` is anonymous read access (no tokens configured).
fn authorize(api: &Api, headers: &HeaderMap, need: Access) -> Result<Option<Caller>, Refusal> {
    let token = api.auth.token(headers);
    let caller = token.map(|t| Caller {
        token: t.name.clone(),
        role: t.role,
        channel: "api".into(),
    });
    match (need, &caller) {
        (Access::Viewer, None) if !api.auth.has_tokens() => Ok(None),
        (Access::Viewer, Some(_)) => Ok(caller),
        (Access::Approver, Some(c)) if c.role >= Role::Approver => Ok(caller),
        (Access::Approver, Some(_)) => Err((
            StatusCode::FORBIDDEN,
            "this token is a viewer token; approving needs the approver or operator role",
        )),
        (Access::Approver, None) if !api.auth.has_tokens() => Err((
            StatusCode::UNAUTHORIZED,
            "approving needs an API token and none is configured (set `tokens` in the config, or EUPHROSYNE_OPERATOR_TOKEN)",
        )),
        _ => Err((StatusCode::UNAUTHORIZED, "missing or unknown bearer token")),
    }
}

async fn webhook(State(api): State<Arc<Api>>, headers: HeaderMap, body: Bytes) -> Response {
    let metrics = api.reconciler.metrics();
    if !api.auth.webhook_allows(&headers) {
        metrics.rejected("unauthorized");
        return error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong webhook credentials (bearer or basic auth, as configured in webhook_auth)",
        );
    }
    match api.reconciler.accept_tracked(&body) {
        Ok((a, ingested)) => {
            // With Redis: answer 2xx only once the alerts are stored (Alertmanager does not
            // retry a 2xx, so an alert acknowledged and then lost with this host is lost for good).
            if let Some(ingested) = ingested.filter(|_| api.reconciler.journal().durable()) {
                let _ = ingested.await;
                if !api
                    .reconciler
                    .journal()
                    .persist_point(std::time::Duration::from_secs(5))
                    .await
                {
                    metrics.rejected("unavailable");
                    let mut r = error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the alerts are queued but Redis did not store them within 5 s; retry (a retry is deduplicated)",
                    );
                    r.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                    return r;
                }
            }
            (StatusCode::ACCEPTED, axum::Json(a)).into_response()
        }
        Err(IntakeError::Invalid(e)) => {
            metrics.rejected("malformed");
            error(StatusCode::BAD_REQUEST, e.to_string())
        }
        Err(e) => {
            metrics.rejected("unavailable");
            let mut r = error(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
    }
}

async fn webex_callback(State(api): State<Arc<Api>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(webex) = &api.webex else {
        return error(StatusCode::NOT_FOUND, "Webex is not configured on this host");
    };
    let (code, msg) = webex.callback(&*api.reconciler, &headers, &body).await;
    if code.is_success() {
        (code, axum::Json(json!({ "result": msg }))).into_response()
    } else {
        error(code, msg)
    }
}

async fn slack_callback(State(api): State<Arc<Api>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(slack) = &api.slack else {
        return error(StatusCode::NOT_FOUND, "Slack is not configured on this host");
    };
    let (code, msg) = slack.callback(&*api.reconciler, &headers, &body).await;
    if code.is_success() {
        (code, axum::Json(json!({ "result": msg }))).into_response()
    } else {
        error(code, msg)
    }
}

async fn status(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    if let Err((code, msg)) = authorize(&api, &headers, Access::Viewer) {
        return error(code, msg);
    }
    axum::Json(api.reconciler.status()).into_response()
}

#[derive(Deserialize)]
struct ListQuery {
    state: Option<String>,
    label: Option<String>,
}

async fn list_incidents(State(api): State<Arc<Api>>, headers: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    if let Err((code, msg)) = authorize(&api, &headers, Access::Viewer) {
        return error(code, msg);
    }
    let state = match q.state.as_deref() {
        None => None,
        Some(s) => match IncidentState::ALL.iter().find(|st| st.as_str() == s) {
            Some(st) => Some(*st),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("state `{s}`: expected one of collecting, analyzing, analyzed, resolved"),
                );
            }
        },
    };
    let label = match q.label.as_deref() {
        None => None,
        Some(l) => match l.split_once('=') {
            Some(kv) => Some(kv),
            None => return error(StatusCode::BAD_REQUEST, format!("label `{l}`: expected name=value")),
        },
    };
    axum::Json(json!({ "incidents": api.reconciler.incidents(state, label) })).into_response()
}

async fn get_incident(State(api): State<Arc<Api>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err((code, msg)) = authorize(&api, &headers, Access::Viewer) {
        return error(code, msg);
    }
    match api.reconciler.incident(&id) {
        Some((incident, actions)) => axum::Json(json!({ "incident": incident, "actions": actions })).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("unknown incident `{id}`")),
    }
}

/// The original reconciler's body: `{"uuid": INCIDENT, "actions": [{"name": ACTION, "data": {...}}]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompatBody {
    uuid: String,
    actions: Vec<CompatAction>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompatAction {
    name: String,
    #[serde(default)]
    data: Option<serde_json::Value>,
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.into_inner().to_string()
        } else {
            format!("field `{path}`: {}", e.into_inner())
        }
    })
}

async fn approve(State(api): State<Arc<Api>>, headers: HeaderMap, body: Bytes) -> Response {
    let caller = match authorize(&api, &headers, Access::Approver) {
        Ok(Some(c)) => c,
        Ok(None) => return error(StatusCode::UNAUTHORIZED, "missing bearer token"),
        Err((code, msg)) => return error(code, msg),
    };
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")),
    };
    let approvals: Vec<Approval> = if value.get("uuid").is_some() {
        match parse_json::<CompatBody>(&body) {
            Ok(c) if c.actions.is_empty() => return error(StatusCode::BAD_REQUEST, "field `actions`: empty"),
            Ok(c) => c
                .actions
                .into_iter()
                .map(|a| Approval {
                    incident: c.uuid.clone(),
                    action: a.name,
                    params: a.data,
                    approver: caller.token.clone(),
                })
                .collect(),
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        }
    } else {
        match parse_json::<Approval>(&body) {
            Ok(a) if a.approver.trim().is_empty() => {
                return error(StatusCode::BAD_REQUEST, "field `approver`: empty; say who approves");
            }
            Ok(a) => vec![a],
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        }
    };
    let mut out = Vec::new();
    let mut any_new = false;
    for a in approvals {
        match api.reconciler.approve(a, &caller) {
            Ok((run, new)) => {
                any_new |= new;
                out.push(
                    json!({ "id": run.id, "action": run.action, "status": run.status, "new": new, "error": run.error }),
                );
            }
            Err(e @ ApproveError::UnknownIncident(_)) => return error(StatusCode::NOT_FOUND, e.to_string()),
            Err(e @ (ApproveError::Unprocessable(_) | ApproveError::NotSuggested(_))) => {
                return error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string());
            }
            Err(e @ ApproveError::Breaker(_)) => return error(StatusCode::TOO_MANY_REQUESTS, e.to_string()),
        }
    }
    if any_new {
        // On record before we answer (best effort: the run itself waits for it too).
        api.reconciler
            .journal()
            .persist_point(std::time::Duration::from_secs(5))
            .await;
    }
    let code = if any_new { StatusCode::ACCEPTED } else { StatusCode::OK };
    let body = if out.len() == 1 {
        out.remove(0)
    } else {
        json!({ "actions": out })
    };
    (code, axum::Json(body)).into_response()
}

async fn get_action(State(api): State<Arc<Api>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err((code, msg)) = authorize(&api, &headers, Access::Viewer) {
        return error(code, msg);
    }
    match api.reconciler.action(&id) {
        Some(a) => axum::Json(a).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("unknown action `{id}`")),
    }
}

async fn openapi_json() -> Response {
    axum::Json(openapi::document()).into_response()
}

async fn metrics(State(api): State<Arc<Api>>) -> Response {
    let r = &api.reconciler;
    let text = r.metrics().render(&r.incidents_by_state(), r.queue_depth());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(api): State<Arc<Api>>) -> Response {
    if let Some(replicas) = api.replicas.as_ref().filter(|r| !r.is_leader()) {
        // A follower is ready when it can forward: Redis answers and some replica leads.
        return match replicas.leader().await {
            Some(l) if api.reconciler.ready() => format!("ready (following {})\n", l.replica).into_response(),
            _ => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: no replica leads yet, or the incident store (Redis) is unreachable",
            ),
        };
    }
    if api.reconciler.ready() {
        "ready\n".into_response()
    } else {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down, or the incident store (Redis) is unreachable",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_openapi_document() {
        let doc = openapi::document();
        for r in ROUTES {
            let op = &doc["paths"][r.path][r.method.to_lowercase()];
            assert!(op.is_object(), "{} {} missing from openapi.json", r.method, r.path);
            assert_eq!(op["operationId"], r.operation);
        }
        // The routes the API promises.
        for (m, p) in [
            ("post", "/webhook"),
            ("get", "/api/status"),
            ("get", "/api/incidents"),
            ("get", "/api/incidents/{id}"),
            ("post", "/api/actions"),
            ("get", "/api/actions/{id}"),
            ("get", "/metrics"),
            ("get", "/healthz"),
            ("get", "/readyz"),
        ] {
            assert!(doc["paths"][p][m].is_object(), "{m} {p} missing");
        }
    }
}
