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
        endpoint: Endpoint::Webhook,
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
        endpoint: Endpoint::WebexCallback,
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
        endpoint: Endpoint::SlackCallback,
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
            ("label", "name=value carried by an alert"),
        ],
        body: None,
        responses: &[(200, "incidents"), (400, "bad filter"), (401, "token required")],
        endpoint: Endpoint::ListIncidents,
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
        endpoint: Endpoint::GetIncident,
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
        endpoint: Endpoint::Approve,
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
        endpoint: Endpoint::GetAction,
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
        endpoint: Endpoint::OpenApi,
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
        endpoint: Endpoint::Metrics,
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
        endpoint: Endpoint::Healthz,
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
        endpoint: Endpoint::Readyz,
    },
];
