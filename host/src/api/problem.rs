//! Errors as `application/problem+json` (RFC 9457): every refusal of the API has a stable
//! `type` (a link to its entry in `/api/docs`), a `title` per type, the HTTP `status`, and a
//! `detail` that says what was wrong and what to do. Axum's own rejections (a body over the
//! limit, a method the route does not serve, a path that does not exist) are answered the same
//! way ([`conform`]).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The body of every error answer.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "type": "/api/docs#problem-unknown-incident",
    "title": "Unknown incident",
    "status": 404,
    "detail": "unknown incident `inc-0123456789ab`",
    "error": "unknown incident `inc-0123456789ab`"
}))]
pub struct ProblemBody {
    /// Which error this is: stable, one per kind (`/api/docs#problem-SLUG`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The kind, for people.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What was wrong in this request, and what to do.
    pub detail: String,
    /// The same as `detail`, for clients of the earlier `{"error": …}` body.
    pub error: String,
}

/// Every kind of error the API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// 400: the body or a parameter could not be used.
    Malformed,
    /// 401: credentials missing or wrong.
    Unauthorized,
    /// 403: the credentials are fine, the role or person is not allowed.
    Forbidden,
    /// 404: no such incident.
    UnknownIncident,
    /// 404: no such action.
    UnknownAction,
    /// 404: the integration is not configured on this host.
    NotConfigured,
    /// 404: no such route.
    NotFound,
    /// 405: the route does not answer this method.
    MethodNotAllowed,
    /// 409: the request conflicts with the state (no actor installed, a replayed callback).
    Conflict,
    /// 413: the body is over `max_body_bytes`.
    TooLarge,
    /// 422: the request is well formed and refused (an approval that is not allowed).
    Refused,
    /// 429: the circuit breaker is open for this action and target.
    TooMany,
    /// 502: an upstream (Webex, Slack) failed.
    Upstream,
    /// 503: not now (queue full, shutting down, the store away, no leader); retry.
    Unavailable,
    /// 500: a bug.
    Internal,
}

impl Problem {
    /// Every kind, for the documentation.
    pub const ALL: [Problem; 15] = [
        Problem::Malformed,
        Problem::Unauthorized,
        Problem::Forbidden,
        Problem::UnknownIncident,
        Problem::UnknownAction,
        Problem::NotConfigured,
        Problem::NotFound,
        Problem::MethodNotAllowed,
        Problem::Conflict,
        Problem::TooLarge,
        Problem::Refused,
        Problem::TooMany,
        Problem::Upstream,
        Problem::Unavailable,
        Problem::Internal,
    ];

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Problem::Malformed => StatusCode::BAD_REQUEST,
            Problem::Unauthorized => StatusCode::UNAUTHORIZED,
            Problem::Forbidden => StatusCode::FORBIDDEN,
            Problem::UnknownIncident | Problem::UnknownAction | Problem::NotConfigured | Problem::NotFound => {
                StatusCode::NOT_FOUND
            }
            Problem::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Problem::Conflict => StatusCode::CONFLICT,
            Problem::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Problem::Refused => StatusCode::UNPROCESSABLE_ENTITY,
            Problem::TooMany => StatusCode::TOO_MANY_REQUESTS,
            Problem::Upstream => StatusCode::BAD_GATEWAY,
            Problem::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Problem::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable name in `type`.
    pub fn slug(self) -> &'static str {
        match self {
            Problem::Malformed => "malformed-request",
            Problem::Unauthorized => "unauthorized",
            Problem::Forbidden => "forbidden",
            Problem::UnknownIncident => "unknown-incident",
            Problem::UnknownAction => "unknown-action",
            Problem::NotConfigured => "not-configured",
            Problem::NotFound => "not-found",
            Problem::MethodNotAllowed => "method-not-allowed",
            Problem::Conflict => "conflict",
            Problem::TooLarge => "body-too-large",
            Problem::Refused => "approval-refused",
            Problem::TooMany => "breaker-open",
            Problem::Upstream => "upstream-failed",
            Problem::Unavailable => "unavailable",
            Problem::Internal => "internal",
        }
    }

    /// The title, for people.
    pub fn title(self) -> &'static str {
        match self {
            Problem::Malformed => "Malformed request",
            Problem::Unauthorized => "Credentials missing or wrong",
            Problem::Forbidden => "Not allowed",
            Problem::UnknownIncident => "Unknown incident",
            Problem::UnknownAction => "Unknown action",
            Problem::NotConfigured => "Not configured",
            Problem::NotFound => "No such route",
            Problem::MethodNotAllowed => "Method not allowed",
            Problem::Conflict => "Conflict",
            Problem::TooLarge => "Body too large",
            Problem::Refused => "Approval refused",
            Problem::TooMany => "Circuit breaker open",
            Problem::Upstream => "Upstream failed",
            Problem::Unavailable => "Unavailable",
            Problem::Internal => "Internal error",
        }
    }

    /// The kind a bare status stands for (chat callbacks, axum's rejections).
    pub fn of_status(status: StatusCode) -> Problem {
        match status.as_u16() {
            400 => Problem::Malformed,
            401 => Problem::Unauthorized,
            403 => Problem::Forbidden,
            404 => Problem::NotFound,
            405 => Problem::MethodNotAllowed,
            409 => Problem::Conflict,
            413 => Problem::TooLarge,
            422 => Problem::Refused,
            429 => Problem::TooMany,
            502 => Problem::Upstream,
            503 => Problem::Unavailable,
            s if s < 500 => Problem::Malformed,
            _ => Problem::Internal,
        }
    }

    /// The kind of a refused approval or preview.
    pub fn of_approval(e: &crate::reconciler::ApproveError) -> Problem {
        use crate::reconciler::ApproveError as E;
        match e {
            E::UnknownIncident(_) => Problem::UnknownIncident,
            E::Unprocessable(_) | E::NotSuggested(_) => Problem::Refused,
            E::Breaker(_) => Problem::TooMany,
            E::NoActor(_) => Problem::Conflict,
        }
    }

    /// The `type` URI reference.
    pub fn uri(self) -> String {
        format!("/api/docs#problem-{}", self.slug())
    }

    /// The answer: this kind, saying `detail`.
    pub fn answer(self, detail: impl Into<String>) -> Response {
        self.answer_as(self.status(), detail.into())
    }

    fn answer_as(self, status: StatusCode, detail: String) -> Response {
        let body = ProblemBody {
            kind: self.uri(),
            title: self.title().into(),
            status: status.as_u16(),
            error: detail.clone(),
            detail,
        };
        let mut r = (status, axum::Json(body)).into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        r
    }
}

/// The media type of an error answer.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Make every error answer of the API a problem: axum's own rejections (plain text) become
/// one, with their text as the detail.
pub async fn conform(r: Response) -> Response {
    let status = r.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return r;
    }
    let is_problem = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return r;
    }
    let (parts, body) = r.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let kind = Problem::of_status(status);
    let detail = if text.is_empty() {
        kind.title().to_string()
    } else {
        text
    };
    let mut out = kind.answer_as(status, detail);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name, value.clone());
        }
    }
    out
}

/// `404` for a path no route serves.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    Problem::NotFound.answer(format!(
        "no route `{}`; the routes are in /api/openapi.json",
        uri.path()
    ))
}
