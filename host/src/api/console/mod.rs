//! The incident console: pages an on-call engineer runs an incident from, served by the host
//! itself (server-rendered HTML, assets embedded in the binary, no build step). The list, an
//! incident (alerts, analysis, suggested actions with their dry-run diff, approved actions and
//! their outcome, runs, timeline), the recipes; sign-in and out; approve (after a confirmation
//! page) and reject; live updates of an incident page over Server-Sent Events.
//!
//! Everything but the live updates works with JavaScript off. Who may see and do what is the
//! API's roles ([`session`]); an approval from a page is recorded with the person's name and
//! channel `console`, as one from chat is.

mod live;
mod pages;
pub mod session;
pub mod settings;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use self::session::{Identity, Sessions};
use super::handlers::Api;

/// The console's shared state.
pub struct Console {
    api: Arc<Api>,
    sessions: Sessions,
}

/// The console's routes, with their security headers.
pub fn router(api: Arc<Api>) -> Router {
    let console = Arc::new(Console {
        sessions: Sessions::new(&api.auth, &api.console),
        api,
    });
    Router::new()
        .route("/", get(pages::home))
        .route("/incidents", get(pages::list))
        .route("/incidents/{id}", get(pages::incident))
        .route("/incidents/{id}/live", get(live::incident))
        .route(
            "/incidents/{id}/actions/{suggestion}",
            get(pages::confirm).post(pages::approve),
        )
        .route("/incidents/{id}/reject", post(pages::reject))
        .route("/recipes", get(pages::recipes))
        .route("/sign-in", get(pages::sign_in_form).post(pages::sign_in))
        .route("/sign-out", post(pages::sign_out))
        .route("/api/docs", get(pages::api_docs))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(console)
}

/// Who sent the request (`None`: nobody, and they must sign in). See [`session`].
pub struct Who(pub Option<Identity>);

impl FromRequestParts<Arc<Console>> for Who {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, st: &Arc<Console>) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(Who(st.sessions.identify(&st.api.auth, &parts.headers, peer)))
    }
}

/// Strict headers on every console answer: no inline script or style runs (so markup that slipped
/// through escaping could not execute), no framing, no sniffing, nothing cached.
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// An HTML error page with `status`.
fn problem(status: StatusCode, title: &str, detail: &str, who: Option<&Identity>) -> Response {
    (status, view::problem_page(title, detail, who)).into_response()
}
