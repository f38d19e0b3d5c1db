//! The handlers behind the route table, each one thing: take alerts in, pass chat callbacks on,
//! answer reads from the reconciler, approve actions, expose metrics and probes. Access was
//! checked before any of them runs (the router's guard).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::Auth;
use super::bodies::{Approved, ApprovedMany, ChatAnswer, IncidentDetail, IncidentList, LegacyApproval, Previewed};
use super::problem::Problem;
use crate::incident::IncidentState;
use crate::reconciler::{Approval, ApproveError, Caller, IntakeError, Reconciler};

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
    /// The console's settings.
    pub console: super::console::settings::ConsoleConfig,
    /// Where runs execute (`in-process`, `subprocess`, `kube`), as the console shows it.
    pub executor: &'static str,
}

pub(super) async fn webhook(State(api): State<Arc<Api>>, body: Bytes) -> Response {
    let metrics = api.reconciler.metrics();
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
                    let mut r = Problem::Unavailable.answer(
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
            Problem::Malformed.answer(e.to_string())
        }
        Err(e) => {
            metrics.rejected("unavailable");
            let mut r = Problem::Unavailable.answer(e.to_string());
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
    }
}

pub(super) async fn webex_callback(State(api): State<Arc<Api>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(webex) = &api.webex else {
        return Problem::NotConfigured.answer("Webex is not configured on this host");
    };
    chat_answer(webex.callback(&*api.reconciler, &headers, &body).await)
}

pub(super) async fn slack_callback(State(api): State<Arc<Api>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(slack) = &api.slack else {
        return Problem::NotConfigured.answer("Slack is not configured on this host");
    };
    chat_answer(slack.callback(&*api.reconciler, &headers, &body).await)
}

/// A chat callback's answer: `{"result"}` on success, the usual error body otherwise.
fn chat_answer((code, msg): (StatusCode, String)) -> Response {
    if code.is_success() {
        (code, axum::Json(ChatAnswer { result: msg })).into_response()
    } else {
        Problem::of_status(code).answer(msg)
    }
}

pub(super) async fn status(State(api): State<Arc<Api>>) -> Response {
    axum::Json(api.reconciler.status()).into_response()
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    state: Option<String>,
    label: Option<String>,
}

pub(super) async fn list_incidents(State(api): State<Arc<Api>>, Query(q): Query<ListQuery>) -> Response {
    let state = match q.state.as_deref() {
        None => None,
        Some(s) => match IncidentState::ALL.iter().find(|st| st.as_str() == s) {
            Some(st) => Some(*st),
            None => {
                return Problem::Malformed.answer(format!(
                    "state `{s}`: expected one of collecting, analyzing, analyzed, resolved"
                ));
            }
        },
    };
    let label = match q.label.as_deref() {
        None => None,
        Some(l) => match l.split_once('=') {
            Some(kv) => Some(kv),
            None => return Problem::Malformed.answer(format!("label `{l}`: expected name=value")),
        },
    };
    axum::Json(IncidentList {
        incidents: api.reconciler.incidents(state, label),
    })
    .into_response()
}

pub(super) async fn get_incident(State(api): State<Arc<Api>>, Path(id): Path<String>) -> Response {
    match api.reconciler.incident(&id) {
        Some((incident, actions)) => axum::Json(IncidentDetail { incident, actions }).into_response(),
        None => Problem::UnknownIncident.answer(format!("unknown incident `{id}`")),
    }
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

pub(super) async fn approve(
    State(api): State<Arc<Api>>,
    caller: Option<axum::Extension<Caller>>,
    body: Bytes,
) -> Response {
    // The guard lets no approver route through without a caller.
    let Some(axum::Extension(caller)) = caller else {
        return Problem::Unauthorized.answer("missing bearer token");
    };
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return Problem::Malformed.answer(format!("body is not JSON: {e}")),
    };
    let approvals: Vec<Approval> = if value.get("uuid").is_some() {
        match parse_json::<LegacyApproval>(&body) {
            Ok(c) if c.actions.is_empty() => return Problem::Malformed.answer("field `actions`: empty"),
            Ok(c)
                if c.actions
                    .iter()
                    .any(|a| a.data.as_ref().is_some_and(|d| !d.is_object())) =>
            {
                return Problem::Malformed.answer("field `actions[].data`: expected a JSON object");
            }
            Ok(c) => c
                .actions
                .into_iter()
                .map(|a| Approval {
                    incident: c.uuid.clone(),
                    action: a.name,
                    params: a.data,
                    approver: caller.token.clone(),
                    dry_run: false,
                })
                .collect(),
            Err(e) => return Problem::Malformed.answer(e),
        }
    } else {
        match parse_json::<Approval>(&body) {
            Ok(a) if a.approver.trim().is_empty() => {
                return Problem::Malformed.answer("field `approver`: empty; say who approves");
            }
            Ok(a) if a.params.as_ref().is_some_and(|p| !p.is_object()) => {
                return Problem::Malformed.answer("field `params`: expected a JSON object");
            }
            Ok(a) if a.dry_run => return preview(&api, a, &caller).await,
            Ok(a) => vec![a],
            Err(e) => return Problem::Malformed.answer(e),
        }
    };
    let mut out = Vec::new();
    let mut any_new = false;
    for a in approvals {
        match api.reconciler.approve(a, &caller) {
            Ok((run, new)) => {
                any_new |= new;
                out.push(Approved {
                    id: run.id,
                    action: run.action,
                    status: run.status,
                    new,
                    error: run.error,
                });
            }
            Err(e) => return approve_error(e),
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
    if out.len() == 1 {
        (code, axum::Json(out.remove(0))).into_response()
    } else {
        (code, axum::Json(ApprovedMany { actions: out })).into_response()
    }
}

/// The answer for a refused approval or preview.
fn approve_error(e: ApproveError) -> Response {
    Problem::of_approval(&e).answer(e.to_string())
}

/// `POST /api/actions` with `"dry_run": true`: what the action would change, nothing approved.
async fn preview(api: &Api, a: Approval, caller: &Caller) -> Response {
    match api.reconciler.preview(a, caller).await {
        Ok((action, parameters, preview)) => axum::Json(Previewed {
            action,
            parameters,
            dry_run: true,
            ok: preview.ok,
            summary: preview.summary.clone(),
            diff: preview.lines(),
            changes: preview.changes,
            writes: preview.writes,
            run_id: preview.run_id,
            duration_ms: preview.duration_ms,
        })
        .into_response(),
        Err(e) => approve_error(e),
    }
}

pub(super) async fn get_action(State(api): State<Arc<Api>>, Path(id): Path<String>) -> Response {
    match api.reconciler.action(&id) {
        Some(a) => axum::Json(a).into_response(),
        None => Problem::UnknownAction.answer(format!("unknown action `{id}`")),
    }
}

pub(super) async fn openapi_json() -> Response {
    axum::Json(super::openapi::document()).into_response()
}

pub(super) async fn metrics(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    let r = &api.reconciler;
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (kind, text) = r
        .metrics()
        .render(&r.incidents_by_state(), r.queue_depth(), openmetrics);
    ([(header::CONTENT_TYPE, kind)], text).into_response()
}

pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

pub(super) async fn readyz(State(api): State<Arc<Api>>) -> Response {
    if let Some(replicas) = api.replicas.as_ref().filter(|r| !r.is_leader()) {
        // A follower is ready when it can forward: Redis answers and some replica leads.
        return match replicas.leader().await {
            Some(l) if api.reconciler.ready() => format!("ready (following {})\n", l.replica).into_response(),
            _ => Problem::Unavailable
                .answer("not ready: no replica leads yet, or the incident store (Redis) is unreachable"),
        };
    }
    if api.reconciler.ready() {
        "ready\n".into_response()
    } else {
        Problem::Unavailable.answer("not ready: shutting down, or the incident store (Redis) is unreachable")
    }
}
