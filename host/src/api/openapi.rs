//! The OpenAPI 3.1 document: the operations from the route table the router is built from (so a
//! route cannot exist undocumented), the request and response schemas generated from the Rust
//! types the handlers read and write (utoipa's `ToSchema`), errors as RFC 9457 problems.
//!
//! Why utoipa, and only its schema half: the route table already drives the router and the
//! access guard; utoipa-axum's router, or aide's handler inference, would be a second place where
//! routes are declared. utoipa derives a JSON Schema from each type at compile time, following
//! its serde attributes (renames, flattening, defaults), and emits OpenAPI 3.1.

use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use super::bodies::{
    Approved, ApprovedMany, ChatAnswer, IncidentDetail, IncidentList, LegacyAction, LegacyApproval, Previewed,
};
use super::problem::{PROBLEM_JSON, Problem, ProblemBody};
use super::routes::{Access, Body, ROUTES};
use crate::incident::ActionRun;
use crate::reconciler::{Accepted, Approval, Status};

/// The schemas, and every schema they use.
#[derive(OpenApi)]
#[openapi(components(schemas(
    crate::alert::Webhook,
    crate::alert::GenericAlert,
    Accepted,
    ChatAnswer,
    Status,
    IncidentList,
    IncidentDetail,
    ActionRun,
    Approval,
    LegacyApproval,
    LegacyAction,
    Approved,
    ApprovedMany,
    Previewed,
    ProblemBody
)))]
struct Schemas;

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// The `content` of a body.
fn content(body: Body) -> Value {
    match body {
        Body::Json(name) => json!({"application/json": {"schema": schema_ref(name)}}),
        Body::OneOf(names) => {
            let refs: Vec<Value> = names.iter().map(|n| schema_ref(n)).collect();
            json!({"application/json": {"schema": {"oneOf": refs}}})
        }
        Body::AnyJson(what) => json!({"application/json": {"schema": {"type": "object", "description": what}}}),
        Body::Form(what) => json!({"application/x-www-form-urlencoded": {"schema": {
            "type": "object", "description": what,
            "properties": {"payload": {"type": "string"}}, "required": ["payload"]}}}),
        Body::Text => json!({"text/plain": {"schema": {"type": "string"}}}),
        Body::Problem => json!({PROBLEM_JSON: {"schema": schema_ref("ProblemBody")}}),
    }
}

/// An example request body, for the operations people call by hand.
fn request_example(operation: &str) -> Option<Value> {
    match operation {
        "postWebhook" => serde_json::from_str(include_str!("../../../examples/alerts/endpoint-down.json")).ok(),
        "approveAction" => Some(json!({
            "incident": "inc-0123456789ab",
            "action": "act-5f0c1e2d3b4a",
            "approver": "oncall@example.com",
            "dry_run": true
        })),
        _ => None,
    }
}

/// `GET /api/openapi.json`.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let mut params = vec![];
        for seg in r.path.split('/') {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                params.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
            }
        }
        for (name, desc) in r.query {
            let schema = match *name {
                "state" => json!({"type": "string", "enum": ["collecting", "analyzing", "analyzed", "resolved"]}),
                "label" => json!({"type": "string", "pattern": "^[^=]+=", "example": "namespace=shop"}),
                _ => json!({"type": "string"}),
            };
            params.push(json!({"name": name, "in": "query", "required": false, "description": desc, "schema": schema}));
        }
        let security = match r.access {
            Access::Open => json!([]),
            Access::Webhook => json!([{"webhookBearer": []}, {"webhookBasic": []}, {}]),
            Access::Viewer | Access::Approver => json!([{"apiToken": []}]),
        };
        let mut responses = Map::new();
        for (code, desc, body) in r.responses {
            responses.insert(
                code.to_string(),
                json!({"description": desc, "content": content(*body)}),
            );
        }
        // What the access guard and the body's extraction may answer, on every such route.
        let mut implied: Vec<(u16, &str)> = vec![];
        match r.access {
            Access::Viewer => implied.push((401, "a token is required (tokens are configured)")),
            Access::Approver => {
                implied.push((401, "a token is required"));
                implied.push((403, "the token's role may not approve"));
            }
            Access::Webhook => implied.push((401, "missing or wrong webhook credentials")),
            Access::Open => {}
        }
        if r.request.is_some() {
            implied.push((400, "malformed: the answer names the field"));
            implied.push((413, "the body is over max_body_bytes"));
        }
        // Several replicas: a follower forwards all but the probes and metrics to the leader.
        if !super::routes::answered_locally(r.path) {
            implied.push((
                503,
                "a follower replica could not reach a leader (the lease is changing hands); retry",
            ));
        }
        for (code, desc) in implied {
            responses
                .entry(code.to_string())
                .or_insert_with(|| json!({"description": desc, "content": content(Body::Problem)}));
        }
        let mut op = json!({
            "summary": r.summary,
            "operationId": r.operation,
            "parameters": params,
            "security": security,
            "responses": responses,
            "x-role": format!("{:?}", r.access).to_lowercase(),
        });
        if let Some(body) = r.request {
            let mut c = content(body);
            if let Some(example) = request_example(r.operation)
                && let Some(media) = c.as_object_mut().and_then(|m| m.values_mut().next())
            {
                media["example"] = example;
            }
            op["requestBody"] = json!({"required": true, "content": c});
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method.to_lowercase()] = op;
    }
    let mut schemas = serde_json::to_value(Schemas::openapi().components.unwrap_or_default())
        .map(|c| c["schemas"].clone())
        .unwrap_or_default();
    // What utoipa's attributes cannot say.
    // Every alert has a label (intake refuses one without).
    schemas["Alert"]["properties"]["labels"]["minProperties"] = json!(1);
    let problems: Vec<String> = Problem::ALL
        .iter()
        .map(|p| format!("`{}` ({}): {}", p.uri(), p.status().as_u16(), p.title()))
        .collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Euphrosyne",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "Incident reconciler that runs WebAssembly recipes. Errors are application/problem+json (RFC 9457); their types: {}.",
                problems.join("; ")
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "apiToken": {"type": "http", "scheme": "bearer", "description": "API token; its role (viewer < approver < operator) decides what it may do"},
                "webhookBearer": {"type": "http", "scheme": "bearer", "description": "webhook_auth.bearer"},
                "webhookBasic": {"type": "http", "scheme": "basic", "description": "webhook_auth.basic_username / basic_password"},
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in `v`.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v.as_str()) {
                        ("$ref", Some(r)) => out.push(r.to_string()),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves_and_every_error_is_a_problem() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut all = vec![];
        refs(&doc, &mut all);
        assert!(all.len() > 20, "{all:?}");
        for r in all {
            let name = r.strip_prefix("#/components/schemas/").expect("a component reference");
            assert!(doc["components"]["schemas"][name].is_object(), "{r} does not resolve");
        }
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                for (code, resp) in op["responses"].as_object().unwrap() {
                    if code.as_str() >= "400" {
                        assert!(resp["content"][PROBLEM_JSON].is_object(), "{method} {path} {code}");
                    }
                }
            }
        }
        // Serde's shapes are what the schemas say: a flattened finding, renamed fields.
        let s = &doc["components"]["schemas"];
        assert!(
            s["AttributedFinding"]
                .to_string()
                .contains("#/components/schemas/Finding"),
            "{}",
            s["AttributedFinding"]
        );
        assert!(s["Alert"]["properties"]["generatorURL"].is_object(), "{}", s["Alert"]);
        assert!(s["ProblemBody"]["properties"]["type"].is_object());
    }
}
