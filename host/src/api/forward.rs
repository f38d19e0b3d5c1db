//! Several replicas: a follower forwards every request but the probes and `/metrics` to the
//! leader, unchanged (body, credentials, chat signatures), and hands its answer back.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::handlers::Api;
use super::problem::Problem;

/// Set on a request one replica forwarded to another (never forwarded twice).
pub(super) const FORWARDED_BY: &str = "x-euphrosyne-forwarded-by";
/// On a forwarded request: the `Host` the browser addressed (the follower).
pub(super) const FORWARDED_HOST: &str = "x-euphrosyne-forwarded-host";

/// On a follower replica, forward every request but the probes and `/metrics` to the leader,
/// unchanged (body, credentials, chat signatures), and hand its answer back.
pub(super) async fn follow_leader(
    State(api): State<Arc<Api>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(replicas) = api.replicas.as_ref().filter(|r| !r.is_leader()) else {
        return next.run(req).await;
    };
    if super::routes::answered_locally(req.uri().path()) {
        return next.run(req).await;
    }
    let unavailable = |msg: String| {
        let mut r = Problem::Unavailable.answer(msg);
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
            return Problem::TooLarge.answer(format!("body over {} bytes", api.max_body_bytes));
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
    // The console checks a form's `Origin` against the host the browser addressed.
    if let Some(host) = parts.headers.get(header::HOST) {
        out = out.header(FORWARDED_HOST, host);
    }
    for (name, value) in &parts.headers {
        if !is_hop_header(name) {
            out = out.header(name, value);
        }
    }
    match out.send().await {
        Ok(resp) => {
            let status = resp.status();
            let headers = resp.headers().clone();
            // Streamed, not buffered: the console's live updates are a response that does not end.
            let mut r = (status, axum::body::Body::from_stream(resp.bytes_stream())).into_response();
            for (name, value) in &headers {
                if !is_hop_header(name) {
                    r.headers_mut().append(name, value.clone());
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
