//! The OpenAPI document, generated from the route table the router is built from, so a route
//! cannot exist without being documented.

use serde_json::{Value, json};

use super::routes::{Access, ROUTES};

/// `GET /api/openapi.json`.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for r in ROUTES {
        let mut params = vec![];
        for seg in r.path.split('/') {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                params.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
            }
        }
        for (name, desc) in r.query {
            params.push(json!({"name": name, "in": "query", "required": false, "description": desc, "schema": {"type": "string"}}));
        }
        let security = match r.access {
            Access::Open => json!([]),
            Access::Webhook => json!([{"webhookBearer": []}, {"webhookBasic": []}]),
            Access::Viewer | Access::Approver => json!([{"apiToken": []}]),
        };
        let responses: serde_json::Map<String, Value> = r
            .responses
            .iter()
            .map(|(code, desc)| (code.to_string(), json!({"description": desc})))
            .collect();
        let mut op = json!({
            "summary": r.summary,
            "operationId": r.operation,
            "parameters": params,
            "security": security,
            "responses": responses,
            "x-role": format!("{:?}", r.access).to_lowercase(),
        });
        if let Some(body) = r.body {
            op["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": {"description": body}}}});
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method.to_lowercase()] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Euphrosyne", "version": env!("CARGO_PKG_VERSION"), "description": "Incident reconciler that runs WebAssembly recipes."},
        "paths": paths,
        "components": {"securitySchemes": {
            "apiToken": {"type": "http", "scheme": "bearer", "description": "API token; its role (viewer < approver < operator) decides what it may do"},
            "webhookBearer": {"type": "http", "scheme": "bearer"},
            "webhookBasic": {"type": "http", "scheme": "basic"},
        }},
    })
}
