//! Kubernetes access through the host, with the verbs the manifest grants
//! (`capabilities.kubernetes`: `get`, `list`, `logs`, `events`; `patch`, `create`, `delete`).
//!
//! Objects are `serde_json::Value`s in the API server's JSON shape, so any field is reachable
//! without a generated client: `pod["status"]["containerStatuses"][0]["restartCount"]`.

use serde_json::Value;

pub use crate::wire::KubeError;

#[cfg(target_arch = "wasm32")]
fn lift(e: crate::bindings::kubernetes::KubeError) -> KubeError {
    use crate::bindings::kubernetes::KubeError as W;
    match e {
        W::Denied(m) => KubeError::Denied(m),
        W::NotFound(m) => KubeError::NotFound(m),
        W::Api(m) => KubeError::Api(m),
        W::Invalid(m) => KubeError::Invalid(m),
    }
}

fn parse(text: String) -> Result<Value, KubeError> {
    serde_json::from_str(&text).map_err(|e| KubeError::Api(format!("response is not JSON: {e}")))
}

fn items(list: Value) -> Vec<Value> {
    match list {
        Value::Object(mut o) => match o.remove("items") {
            Some(Value::Array(items)) => items,
            _ => vec![],
        },
        _ => vec![],
    }
}

/// Get one object. `namespace` is `None` for cluster-scoped kinds such as `Node`.
pub fn get(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Result<Value, KubeError> {
    #[cfg(target_arch = "wasm32")]
    return parse(crate::bindings::kubernetes::get(api_version, kind, namespace, name).map_err(lift)?);
    #[cfg(not(target_arch = "wasm32"))]
    parse(crate::testing::mock(|m| {
        m.kube_get(api_version, kind, namespace, name)
    })?)
}

/// List objects; returns the `items`.
pub fn list(
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    label_selector: Option<&str>,
    field_selector: Option<&str>,
) -> Result<Vec<Value>, KubeError> {
    #[cfg(target_arch = "wasm32")]
    let text = crate::bindings::kubernetes::list(api_version, kind, namespace, label_selector, field_selector)
        .map_err(lift)?;
    #[cfg(not(target_arch = "wasm32"))]
    let text = crate::testing::mock(|m| m.kube_list(api_version, kind, namespace, label_selector, field_selector))?;
    Ok(items(parse(text)?))
}

/// The last `tail_lines` lines of a container's log (`previous`: the last terminated instance).
pub fn pod_logs(
    namespace: &str,
    pod: &str,
    container: Option<&str>,
    tail_lines: Option<u32>,
    previous: bool,
) -> Result<String, KubeError> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::kubernetes::pod_logs(namespace, pod, container, tail_lines, previous).map_err(lift);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::mock(|m| m.kube_logs(namespace, pod, container, tail_lines, previous))
}

/// Events about one object, oldest first.
pub fn events(namespace: Option<&str>, kind: &str, name: &str) -> Result<Vec<Value>, KubeError> {
    #[cfg(target_arch = "wasm32")]
    let text = crate::bindings::kubernetes::events(namespace, kind, name).map_err(lift)?;
    #[cfg(not(target_arch = "wasm32"))]
    let text = crate::testing::mock(|m| m.kube_events(namespace, kind, name))?;
    let mut events = items(parse(text)?);
    events.sort_by(|a, b| event_time(a).cmp(event_time(b)));
    Ok(events)
}

fn event_time(e: &Value) -> &str {
    e["lastTimestamp"].as_str().or(e["eventTime"].as_str()).unwrap_or("")
}

/// Apply a JSON merge patch (RFC 7386); returns the patched object.
pub fn patch(
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    patch: &Value,
) -> Result<Value, KubeError> {
    let body = patch.to_string();
    #[cfg(target_arch = "wasm32")]
    return parse(crate::bindings::kubernetes::patch(api_version, kind, namespace, name, &body).map_err(lift)?);
    #[cfg(not(target_arch = "wasm32"))]
    parse(crate::testing::mock(|m| {
        m.kube_patch(api_version, kind, namespace, name, &body)
    })?)
}

/// Create an object; returns it as stored.
pub fn create(api_version: &str, kind: &str, namespace: Option<&str>, object: &Value) -> Result<Value, KubeError> {
    let body = object.to_string();
    #[cfg(target_arch = "wasm32")]
    return parse(crate::bindings::kubernetes::create(api_version, kind, namespace, &body).map_err(lift)?);
    #[cfg(not(target_arch = "wasm32"))]
    parse(crate::testing::mock(|m| {
        m.kube_create(api_version, kind, namespace, &body)
    })?)
}

/// Delete an object.
pub fn delete(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Result<(), KubeError> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::kubernetes::delete(api_version, kind, namespace, name).map_err(lift);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::mock(|m| m.kube_delete(api_version, kind, namespace, name))
}
