//! The route table: every route the API serves, with who may call it and what it answers. The
//! router, its access guard and the OpenAPI document are all built from [`ROUTES`], so a route
//! cannot exist undocumented or unguarded.

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

/// What a request or an answer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// JSON of one schema (a component's name).
    Json(&'static str),
    /// JSON of one of these schemas.
    OneOf(&'static [&'static str]),
    /// JSON of any shape, described.
    AnyJson(&'static str),
    /// `application/x-www-form-urlencoded`, described.
    Form(&'static str),
    /// `text/plain`.
    Text,
    /// `application/problem+json` ([`super::problem::ProblemBody`]).
    Problem,
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
    /// The request body.
    pub request: Option<Body>,
    /// Status codes, what they mean, and what they carry. The access adds its 401/403, a body
    /// its 400/413 ([`super::openapi`]).
    pub responses: &'static [(u16, &'static str, Body)],
    /// What serves it.
    pub endpoint: Endpoint,
}

/// The handler behind a route (the router maps each to its function).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `webhook`.
    Webhook,
    /// `webex_callback`.
    WebexCallback,
    /// `slack_callback`.
    SlackCallback,
    /// `status`.
    Status,
    /// `list_incidents`.
    ListIncidents,
    /// `get_incident`.
    GetIncident,
    /// `approve`.
    Approve,
    /// `get_action`.
    GetAction,
    /// `openapi_json`.
    OpenApi,
    /// `metrics`.
    Metrics,
    /// `healthz`.
    Healthz,
    /// `readyz`.
    Readyz,
}

/// The routes every replica answers itself (the probes and metrics are about this replica); a
/// follower forwards the rest to the leader.
pub fn answered_locally(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
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
        request: Some(Body::OneOf(&["AlertmanagerWebhook", "GenericAlert"])),
        responses: &[
            (
                202,
                "accepted (duplicates are counted, not re-run)",
                Body::Json("Accepted"),
            ),
            (401, "missing or wrong credentials", Body::Problem),
            (
                503,
                "queue full, shutting down, or the store away; Retry-After says when to retry",
                Body::Problem,
            ),
        ],
        endpoint: Endpoint::Webhook,
    },
    Route {
        method: "POST",
        path: "/webhook/webex",
        operation: "postWebexCallback",
        summary: "Webex attachmentActions webhook: a click on an Approve/Reject card button",
        access: Access::Open,
        query: &[],
        request: Some(Body::AnyJson(
            "Webex webhook envelope; verified by X-Spark-Signature (HMAC-SHA1 of the body with the webhook secret) before parsing",
        )),
        responses: &[
            (200, "handled", Body::Json("ChatAnswer")),
            (401, "bad signature", Body::Problem),
            (403, "the person is not an allowed approver", Body::Problem),
            (404, "Webex is not configured", Body::Problem),
            (409, "replayed callback", Body::Problem),
            (422, "approval refused", Body::Problem),
            (502, "the Webex API failed", Body::Problem),
        ],
        endpoint: Endpoint::WebexCallback,
    },
    Route {
        method: "POST",
        path: "/webhook/slack",
        operation: "postSlackInteraction",
        summary: "Slack interactivity: a click on an Approve/Reject button",
        access: Access::Open,
        query: &[],
        request: Some(Body::Form(
            "`payload`: the interaction as JSON; verified by X-Slack-Signature (v0 HMAC-SHA256) and a 5-minute timestamp window before parsing",
        )),
        responses: &[
            (200, "handled", Body::Json("ChatAnswer")),
            (401, "bad signature or stale timestamp", Body::Problem),
            (403, "the user is not an allowed approver", Body::Problem),
            (404, "Slack is not configured", Body::Problem),
            (409, "replayed request", Body::Problem),
            (422, "approval refused", Body::Problem),
            (502, "the Slack API failed", Body::Problem),
        ],
        endpoint: Endpoint::SlackCallback,
    },
    Route {
        method: "GET",
        path: "/api/status",
        operation: "getStatus",
        summary: "Incidents by state, runs in flight, loaded recipes with digests",
        access: Access::Viewer,
        query: &[],
        request: None,
        responses: &[(200, "status", Body::Json("Status"))],
        endpoint: Endpoint::Status,
    },
    Route {
        method: "GET",
        path: "/api/incidents",
        operation: "listIncidents",
        summary: "Incidents, newest first (summaries without event logs)",
        access: Access::Viewer,
        query: &[
            ("state", "collecting | analyzing | analyzed | resolved"),
            ("label", "name=value carried by an alert (`namespace=shop`)"),
        ],
        request: None,
        responses: &[
            (200, "incidents", Body::Json("IncidentList")),
            (400, "bad filter", Body::Problem),
        ],
        endpoint: Endpoint::ListIncidents,
    },
    Route {
        method: "GET",
        path: "/api/incidents/{id}",
        operation: "getIncident",
        summary: "One incident: alerts, runs with results, analysis, suggested and approved actions, event log",
        access: Access::Viewer,
        query: &[],
        request: None,
        responses: &[
            (200, "incident", Body::Json("IncidentDetail")),
            (404, "unknown incident", Body::Problem),
        ],
        endpoint: Endpoint::GetIncident,
    },
    Route {
        method: "POST",
        path: "/api/actions",
        operation: "approveAction",
        summary: "Approve an action ({incident, action, params?, approver}, or the original reconciler's {uuid, actions: [{name, data}]}); with \"dry_run\": true, preview it",
        access: Access::Approver,
        query: &[],
        request: Some(Body::OneOf(&["Approval", "LegacyApproval"])),
        responses: &[
            (
                202,
                "approved; the action runs",
                Body::OneOf(&["Approved", "ApprovedMany"]),
            ),
            (
                200,
                "approved before (the same run, nothing runs again), or the preview of a dry run",
                Body::OneOf(&["Approved", "ApprovedMany", "Previewed"]),
            ),
            (404, "unknown incident", Body::Problem),
            (409, "no installed actor implements the action", Body::Problem),
            (422, "not suggested (operator only) or ambiguous", Body::Problem),
            (429, "circuit breaker open for this action and target", Body::Problem),
        ],
        endpoint: Endpoint::Approve,
    },
    Route {
        method: "GET",
        path: "/api/actions/{id}",
        operation: "getAction",
        summary: "One approved action and its outcome",
        access: Access::Viewer,
        query: &[],
        request: None,
        responses: &[
            (200, "action", Body::Json("ActionRun")),
            (404, "unknown action", Body::Problem),
        ],
        endpoint: Endpoint::GetAction,
    },
    Route {
        method: "GET",
        path: "/api/openapi.json",
        operation: "getOpenApi",
        summary: "This document",
        access: Access::Open,
        query: &[],
        request: None,
        responses: &[(200, "OpenAPI 3.1 document", Body::AnyJson("OpenAPI 3.1"))],
        endpoint: Endpoint::OpenApi,
    },
    Route {
        method: "GET",
        path: "/metrics",
        operation: "getMetrics",
        summary: "Prometheus metrics",
        access: Access::Open,
        query: &[],
        request: None,
        responses: &[(
            200,
            "the text exposition format (OpenMetrics when asked for)",
            Body::Text,
        )],
        endpoint: Endpoint::Metrics,
    },
    Route {
        method: "GET",
        path: "/healthz",
        operation: "getHealth",
        summary: "Liveness",
        access: Access::Open,
        query: &[],
        request: None,
        responses: &[(200, "alive", Body::Text)],
        endpoint: Endpoint::Healthz,
    },
    Route {
        method: "GET",
        path: "/readyz",
        operation: "getReady",
        summary: "Readiness: accepting alerts",
        access: Access::Open,
        query: &[],
        request: None,
        responses: &[
            (200, "ready", Body::Text),
            (503, "not ready (shutting down, or the store away)", Body::Problem),
        ],
        endpoint: Endpoint::Readyz,
    },
];
