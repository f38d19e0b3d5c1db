//! The HTTP API (axum): `/webhook`, `/api/*`, `/metrics`, `/healthz`, `/readyz`. Every API route
//! is declared once in [`ROUTES`] ([`routes`]); the router, the access guard and the OpenAPI
//! document are all built from it. The incident console's pages ([`console`]) are served beside
//! it, with their own session sign-in.

mod auth;
pub mod bodies;
pub mod console;
mod forward;
mod handlers;
mod openapi;
pub mod problem;
pub mod routes;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};

pub use self::auth::Auth;
pub use self::handlers::Api;
use self::problem::Problem;
pub use self::routes::{Access, Endpoint, ROUTES, Route};
use crate::access::Role;
use crate::reconciler::Caller;

/// The router: every route of [`ROUTES`] behind the access its entry declares (the `guard`
/// layer), so no handler checks credentials by hand.
pub fn router(api: Arc<Api>) -> Router {
    let mut r = Router::new();
    for route in ROUTES {
        let guarded = method_router(route.endpoint)
            .route_layer(axum::middleware::from_fn_with_state((api.clone(), route.access), guard));
        r = r.route(route.path, guarded);
    }
    r.with_state(api.clone())
        .layer(axum::middleware::map_response(problem::conform))
        .merge(console::router(api.clone()))
        .fallback(problem::not_found)
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            forward::follow_leader,
        ))
        .layer(DefaultBodyLimit::max(api.max_body_bytes))
}

/// The handler function behind `endpoint`.
fn method_router(endpoint: Endpoint) -> MethodRouter<Arc<Api>> {
    use handlers as h;
    match endpoint {
        Endpoint::Webhook => post(h::webhook),
        Endpoint::WebexCallback => post(h::webex_callback),
        Endpoint::SlackCallback => post(h::slack_callback),
        Endpoint::Status => get(h::status),
        Endpoint::ListIncidents => get(h::list_incidents),
        Endpoint::GetIncident => get(h::get_incident),
        Endpoint::Approve => post(h::approve),
        Endpoint::GetAction => get(h::get_action),
        Endpoint::OpenApi => get(h::openapi_json),
        Endpoint::Metrics => get(h::metrics),
        Endpoint::Healthz => get(h::healthz),
        Endpoint::Readyz => get(h::readyz),
    }
}

/// A refusal: its kind and message.
type Refusal = (Problem, &'static str);

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
            Problem::Forbidden,
            "this token is a viewer token; approving needs the approver or operator role",
        )),
        (Access::Approver, None) if !api.auth.has_tokens() => Err((
            Problem::Unauthorized,
            "approving needs an API token and none is configured (set `tokens` in the config, or EUPHROSYNE_OPERATOR_TOKEN)",
        )),
        _ => Err((Problem::Unauthorized, "missing or unknown bearer token")),
    }
}

/// Enforce a route's [`Access`] before its handler runs; the caller of a token-checked route is
/// handed on as a request extension ([`Caller`]).
async fn guard(
    State((api, access)): State<(Arc<Api>, Access)>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match access {
        Access::Open => {}
        Access::Webhook => {
            if !api.auth.webhook_allows(req.headers()) {
                api.reconciler.metrics().rejected("unauthorized");
                return Problem::Unauthorized.answer(
                    "missing or wrong webhook credentials (bearer or basic auth, as configured in webhook_auth)",
                );
            }
        }
        Access::Viewer | Access::Approver => match authorize(&api, req.headers(), access) {
            Ok(Some(caller)) => {
                req.extensions_mut().insert(caller);
            }
            Ok(None) => {}
            Err((kind, msg)) => return kind.answer(msg),
        },
    }
    next.run(req).await
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
