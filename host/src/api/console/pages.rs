//! The page handlers: read from the reconciler, render ([`super::view`]); the two forms that
//! change something (approve, reject) check the role and the CSRF token first.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::session::{Identity, Via, same_origin};
use super::{Console, Who, problem, view};
use crate::incident::IncidentState;
use crate::reconciler::{Approval, Caller};

/// The page to come back to after signing in: a path of ours (never another site).
fn safe_next(next: &str) -> String {
    let ok = next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') && !next.starts_with("/sign-");
    if ok { next.to_string() } else { "/incidents".into() }
}

/// Nobody signed in (and tokens are configured): to the sign-in form, then back here.
fn sign_in_first(path: &str) -> Response {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("next", path);
    Redirect::to(&format!("/sign-in?{}", q.finish())).into_response()
}

pub(super) async fn home() -> Redirect {
    Redirect::to("/incidents")
}

#[derive(Deserialize, Default)]
pub(super) struct ListQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: Option<String>,
}

/// Does the incident mention `text` (id, group, an alert's label or annotation value, the
/// analysis' summary)? Case-insensitive; `text` is lowercase.
fn mentions(rec: &crate::incident::IncidentRecord, text: &str) -> bool {
    let has = |s: &str| s.to_lowercase().contains(text);
    has(&rec.id)
        || has(&rec.group_key)
        || rec
            .alerts
            .iter()
            .any(|a| a.labels.values().any(|v| has(v)) || a.annotations.values().any(|v| has(v)))
        || rec.analysis.as_ref().is_some_and(|a| has(&a.summary))
}

pub(super) async fn list(State(st): State<Arc<Console>>, Who(who): Who, Query(q): Query<ListQuery>) -> Response {
    let Some(who) = who else {
        return sign_in_first("/incidents");
    };
    let mut error = None;
    let state = match q.state.as_str() {
        "" => None,
        s => match IncidentState::ALL.iter().find(|st| st.as_str() == s) {
            Some(st) => Some(*st),
            None => {
                error = Some(format!(
                    "state `{s}`: expected one of collecting, analyzing, analyzed, resolved"
                ));
                None
            }
        },
    };
    let label = match q.label.trim() {
        "" => None,
        l => match l.split_once('=') {
            Some((k, v)) => Some((k.trim(), v.trim())),
            None => {
                error = Some(format!("label `{l}`: expected name=value, such as namespace=shop"));
                None
            }
        },
    };
    let mut incidents = st.api.reconciler.incidents(state, label);
    let text = q.q.trim().to_lowercase();
    if !text.is_empty() {
        incidents.retain(|r| mentions(r, &text));
    }
    let size = st.api.console.page_size;
    let total = incidents.len();
    let pages = total.div_ceil(size).max(1);
    let page = q
        .page
        .as_deref()
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, pages);
    let shown: Vec<_> = incidents.into_iter().skip((page - 1) * size).take(size).collect();
    let page = view::ListPage {
        incidents: &shown,
        total,
        page,
        pages,
        state: &q.state,
        label: &q.label,
        q: &q.q,
        error,
    };
    view::incident_list(&page, Some(&who)).into_response()
}

pub(super) async fn incident(State(st): State<Arc<Console>>, Who(who): Who, Path(id): Path<String>) -> Response {
    let Some(who) = who else {
        return sign_in_first(&format!("/incidents/{id}"));
    };
    match st.api.reconciler.incident(&id) {
        Some((rec, actions)) => view::incident_page(&rec, &actions, Some(&who), st.api.executor).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "Unknown incident",
            &format!("No incident `{id}` is kept here (it may have been resolved and dropped)."),
            Some(&who),
        ),
    }
}

/// Checks for a form that changes something: signed in with a role that approves, the request
/// from one of our pages (CSRF token, `Origin`). `Err` is the answer.
fn may_act(st: &Console, who: Option<Identity>, headers: &HeaderMap, body: &[u8]) -> Result<Identity, Box<Response>> {
    let form = Form::parse(body);
    let Some(who) = who else {
        return Err(Box::new(problem(
            StatusCode::UNAUTHORIZED,
            "Sign in first",
            "Approving and rejecting need you signed in with an approver or operator token.",
            None,
        )));
    };
    if !same_origin(headers) || !st.sessions.csrf_ok(&who, form.get("csrf")) {
        tracing::warn!(who = %who.name, "console form refused: CSRF token missing or wrong");
        return Err(Box::new(problem(
            StatusCode::FORBIDDEN,
            "Form refused",
            "This form did not come from a page of this console (its CSRF token is missing or wrong). Reload the page and try again.",
            Some(&who),
        )));
    }
    if !who.may_approve() {
        return Err(Box::new(problem(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Your role is viewer: approving and rejecting need the approver or operator role.",
            Some(&who),
        )));
    }
    Ok(who)
}

/// A posted form's fields (`application/x-www-form-urlencoded`).
pub(super) struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Form {
        Form(form_urlencoded::parse(body).into_owned().collect())
    }

    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

pub(super) async fn confirm(
    State(st): State<Arc<Console>>,
    Who(who): Who,
    Path((id, suggestion)): Path<(String, String)>,
) -> Response {
    let Some(who) = who else {
        return sign_in_first(&format!("/incidents/{id}/actions/{suggestion}"));
    };
    if !who.may_approve() {
        return problem(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Your role is viewer: approving needs the approver or operator role.",
            Some(&who),
        );
    }
    match approvable(&st, &id, &suggestion) {
        Ok((rec, s)) => view::confirm_page(&rec, &s, &who).into_response(),
        Err(r) => r.page(&who),
    }
}

/// Why a suggestion cannot be approved from the page: status, title, detail.
struct Refusal(StatusCode, &'static str, String);

impl Refusal {
    fn page(self, who: &Identity) -> Response {
        problem(self.0, self.1, &self.2, Some(who))
    }
}

/// The suggestion, if it can be approved from the page now.
fn approvable(
    st: &Console,
    id: &str,
    suggestion: &str,
) -> Result<(crate::incident::IncidentRecord, crate::incident::ActionSuggestion), Refusal> {
    let Some((rec, actions)) = st.api.reconciler.incident(id) else {
        let detail = format!("No incident `{id}` is kept here.");
        return Err(Refusal(StatusCode::NOT_FOUND, "Unknown incident", detail));
    };
    let Some(s) = rec
        .analysis
        .as_ref()
        .and_then(|a| a.actions.iter().find(|s| s.id == suggestion))
        .cloned()
    else {
        let detail = format!("Incident `{id}` has no suggested action `{suggestion}`.");
        return Err(Refusal(StatusCode::NOT_FOUND, "Unknown suggestion", detail));
    };
    if let Some(why) = view::not_approvable(&rec, &s, &actions) {
        let detail = format!("`{}` cannot be approved now: {why}.", s.action);
        return Err(Refusal(StatusCode::CONFLICT, "Not approvable", detail));
    }
    Ok((rec, s))
}

pub(super) async fn approve(
    State(st): State<Arc<Console>>,
    Who(who): Who,
    Path((id, suggestion)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let who = match may_act(&st, who, &headers, &body) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    if let Err(r) = approvable(&st, &id, &suggestion) {
        return r.page(&who);
    }
    let approval = Approval {
        incident: id.clone(),
        action: suggestion,
        params: None,
        approver: who.name.clone(),
        dry_run: false,
    };
    let caller = Caller {
        token: who.credential(),
        role: who.role,
        channel: "console".into(),
    };
    match st.api.reconciler.approve(approval, &caller) {
        Ok((run, new)) => {
            if new {
                st.api
                    .reconciler
                    .journal()
                    .persist_point(std::time::Duration::from_secs(5))
                    .await;
            }
            tracing::info!(incident_id = %id, action_id = %run.id, who = %who.name, "approved from the console");
            Redirect::to(&format!("/incidents/{id}#action-{}", run.id)).into_response()
        }
        Err(e) => problem(
            crate::api::problem::Problem::of_approval(&e).status(),
            "Approval refused",
            &e.to_string(),
            Some(&who),
        ),
    }
}

pub(super) async fn reject(
    State(st): State<Arc<Console>>,
    Who(who): Who,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let who = match may_act(&st, who, &headers, &body) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    if st.api.reconciler.incident(&id).is_none() {
        return problem(
            StatusCode::NOT_FOUND,
            "Unknown incident",
            &format!("No incident `{id}` is kept here."),
            Some(&who),
        );
    }
    st.api.reconciler.note(
        &id,
        "rejected",
        "the suggested actions were rejected",
        Some(who.name.clone()),
        "console",
    );
    tracing::info!(incident_id = %id, who = %who.name, "suggestions rejected from the console");
    Redirect::to(&format!("/incidents/{id}")).into_response()
}

pub(super) async fn recipes(State(st): State<Arc<Console>>, Who(who): Who) -> Response {
    let Some(who) = who else {
        return sign_in_first("/recipes");
    };
    view::recipes_page(&st.api.reconciler.status(), Some(&who)).into_response()
}

#[derive(Deserialize, Default)]
pub(super) struct NextQuery {
    #[serde(default)]
    next: String,
}

pub(super) async fn sign_in_form(State(st): State<Arc<Console>>, Query(q): Query<NextQuery>) -> Response {
    sign_in_answer(&st, StatusCode::OK, &safe_next(&q.next), None)
}

fn sign_in_answer(st: &Console, status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let (csrf, cookie) = st.sessions.sign_in_token();
    (
        status,
        [(header::SET_COOKIE, cookie)],
        view::sign_in_page(&csrf, next, error),
    )
        .into_response()
}

pub(super) async fn sign_in(State(st): State<Arc<Console>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let next = safe_next(form.get("next"));
    if !same_origin(&headers) || !st.sessions.sign_in_ok(&headers, form.get("csrf")) {
        return sign_in_answer(
            &st,
            StatusCode::FORBIDDEN,
            &next,
            Some("The form expired or did not come from this page; try again."),
        );
    }
    let Some(token) = st.api.auth.check(form.get("token")) else {
        tracing::info!("console sign-in refused: unknown token");
        return sign_in_answer(
            &st,
            StatusCode::UNAUTHORIZED,
            &next,
            Some("That token is not one this host knows."),
        );
    };
    tracing::info!(who = %token.name, "signed in to the console");
    let cookie = st.sessions.issue(&token.name, token.role);
    ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
}

pub(super) async fn sign_out(
    State(st): State<Arc<Console>>,
    Who(who): Who,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let signed_in = who.as_ref().is_some_and(|w| matches!(w.via, Via::Session(_)));
    if signed_in && (!same_origin(&headers) || !who.as_ref().is_some_and(|w| st.sessions.csrf_ok(w, form.get("csrf"))))
    {
        return problem(
            StatusCode::FORBIDDEN,
            "Form refused",
            "This form did not come from a page of this console; reload and try again.",
            who.as_ref(),
        );
    }
    ([(header::SET_COOKIE, st.sessions.clear())], Redirect::to("/sign-in")).into_response()
}

pub(super) async fn api_docs(Who(who): Who) -> Response {
    view::api_docs(&crate::api::openapi::document(), who.as_ref()).into_response()
}
