//! Kubernetes access through the host, with the verbs the manifest grants
//! (`capabilities.kubernetes`: `get`, `list`, `logs`, `events`; `patch`, `create`, `delete`,
//! `evict`).
//!
//! Objects are `serde_json::Value`s in the API server's JSON shape, so any field is reachable
//! without a generated client: `pod["status"]["containerStatuses"][0]["restartCount"]`.
//!
//! ## Writes, previews and conflicts
//!
//! Every write has a plain form ([`patch`], [`patch_strategic`], [`patch_json`], [`apply`],
//! [`create`], [`delete`], [`evict`], [`scale`]) and a `_with` form taking [`WriteOptions`]
//! (your own dry run, a `resourceVersion` precondition, a field manager). You rarely need the
//! options: when the host previews an action (`request.dry_run`) it sends **every** write with
//! `dryRun=All`, and when a person approves that preview it pins every write to the
//! `resourceVersion` the preview saw — a changed object fails with [`KubeError::Conflict`]
//! instead of being overwritten. So write the actor once, as if for real, and report what
//! changed with [`diff`]:
//!
//! ```
//! use recipe_sdk::prelude::*;
//! use serde_json::json;
//!
//! struct Scale;
//! impl Actor for Scale {
//!     fn act(req: ActionRequest) -> Result<Outcome, RecipeError> {
//!         let before = kube::get("apps/v1", "Deployment", Some("shop"), "api")?;
//!         let after = kube::patch_strategic("apps/v1", "Deployment", Some("shop"), "api",
//!             &json!({"spec": {"template": {"spec": {"containers": [
//!                 {"name": "api", "resources": {"limits": {"memory": "256Mi"}}}]}}}}))?;
//!         let object = ObjectRef::new("apps/v1", "Deployment", Some("shop"), "api");
//!         let verb = if req.dry_run { "would raise" } else { "raised" };
//!         Ok(Outcome::success(format!("{verb} the memory limit"))
//!             .changes(kube::diff(&object, &before, &after)))
//!     }
//! }
//!
//! let h = recipe_sdk::testing::Harness::new().kube_object("apps/v1", "Deployment", Some("shop"), "api",
//!     json!({"spec": {"template": {"spec": {"containers": [
//!         {"name": "api", "resources": {"limits": {"memory": "128Mi"}}}, {"name": "envoy"}]}}}}));
//! let out = h.act::<Scale>(ActionRequest::new("raise-memory-limit", json!({}), "alice").preview()).unwrap();
//! assert_eq!(out.changes[0].path, "spec.template.spec.containers[api].resources.limits.memory");
//! assert_eq!(out.changes[0].after.as_deref(), Some("\"256Mi\""));
//! // A preview changes nothing.
//! let now = h.kube_object_now("apps/v1", "Deployment", Some("shop"), "api").unwrap();
//! assert_eq!(now["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"], "128Mi");
//! ```

use serde_json::Value;

pub use crate::wire::{KubeError, PatchType, WriteOptions};
use crate::{Change, ObjectRef};

#[cfg(target_arch = "wasm32")]
fn wit_options(o: &WriteOptions) -> crate::bindings::kubernetes::WriteOptions {
    crate::bindings::kubernetes::WriteOptions {
        dry_run: o.dry_run,
        resource_version: o.resource_version.clone(),
        field_manager: o.field_manager.clone(),
    }
}

#[cfg(target_arch = "wasm32")]
fn lift(e: crate::bindings::kubernetes::KubeError) -> KubeError {
    use crate::bindings::kubernetes::KubeError as W;
    match e {
        W::Denied(m) => KubeError::Denied(m),
        W::NotFound(m) => KubeError::NotFound(m),
        W::Api(m) => KubeError::Api(m),
        W::Invalid(m) => KubeError::Invalid(m),
        W::Conflict(m) => KubeError::Conflict(m),
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

/// Get one object, or `None` when it does not exist — for actors, which answer a missing object
/// with a failed outcome rather than an error:
///
/// ```ignore
/// let Some(dep) = kube::get_opt("apps/v1", "Deployment", Some(ns), name)? else {
///     return Ok(Outcome::failure(format!("Deployment {ns}/{name} does not exist")));
/// };
/// ```
pub fn get_opt(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Result<Option<Value>, KubeError> {
    match get(api_version, kind, namespace, name) {
        Ok(v) => Ok(Some(v)),
        Err(KubeError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
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

/// A workload's `spec.selector.matchLabels` as a label selector (`app=api,tier=web`), for
/// [`list`]ing its pods; `None` when it has none.
pub fn match_labels(workload: &Value) -> Option<String> {
    let labels = workload["spec"]["selector"]["matchLabels"].as_object()?;
    let parts: Vec<String> = labels
        .iter()
        .filter_map(|(k, v)| Some(format!("{k}={}", v.as_str()?)))
        .collect();
    (!parts.is_empty()).then(|| parts.join(","))
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

/// Apply a JSON merge patch (RFC 7386); returns the patched object. Lists are replaced whole:
/// to change one container, use [`patch_strategic`].
pub fn patch(
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    patch: &Value,
) -> Result<Value, KubeError> {
    patch_with(
        api_version,
        kind,
        namespace,
        name,
        PatchType::Merge,
        patch,
        &WriteOptions::default(),
    )
}

/// Apply a strategic merge patch: lists of named items (containers, ports, volumes, env) merge
/// by name, so `{"spec":{"template":{"spec":{"containers":[{"name":"api","image":"v2"}]}}}}`
/// changes one container and keeps the others. Returns the patched object.
pub fn patch_strategic(
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    patch: &Value,
) -> Result<Value, KubeError> {
    patch_with(
        api_version,
        kind,
        namespace,
        name,
        PatchType::Strategic,
        patch,
        &WriteOptions::default(),
    )
}

/// Apply a JSON patch (RFC 6902), `ops` being a list such as
/// `[{"op": "replace", "path": "/spec/replicas", "value": 3}]`. Returns the patched object.
pub fn patch_json(
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    ops: &Value,
) -> Result<Value, KubeError> {
    patch_with(
        api_version,
        kind,
        namespace,
        name,
        PatchType::Json,
        ops,
        &WriteOptions::default(),
    )
}

/// Server-side apply `object` (the fields `field_manager` owns). Returns the object as stored.
pub fn apply(
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    object: &Value,
    field_manager: &str,
) -> Result<Value, KubeError> {
    let opts = WriteOptions {
        field_manager: Some(field_manager.into()),
        ..WriteOptions::default()
    };
    patch_with(api_version, kind, namespace, name, PatchType::Apply, object, &opts)
}

/// Patch with any [`PatchType`] and [`WriteOptions`].
pub fn patch_with(
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    ptype: PatchType,
    patch: &Value,
    options: &WriteOptions,
) -> Result<Value, KubeError> {
    let body = patch.to_string();
    #[cfg(target_arch = "wasm32")]
    {
        use crate::bindings::kubernetes::PatchType as W;
        let t = match ptype {
            PatchType::Merge => W::Merge,
            PatchType::Strategic => W::Strategic,
            PatchType::Json => W::Json,
            PatchType::Apply => W::Apply,
        };
        let text =
            crate::bindings::kubernetes::patch(api_version, kind, namespace, name, t, &body, &wit_options(options))
                .map_err(lift)?;
        parse(text)
    }
    #[cfg(not(target_arch = "wasm32"))]
    parse(crate::testing::mock(|m| {
        m.kube_patch(api_version, kind, namespace, name, ptype, &body, options)
    })?)
}

/// Create an object; returns it as stored.
pub fn create(api_version: &str, kind: &str, namespace: Option<&str>, object: &Value) -> Result<Value, KubeError> {
    create_with(api_version, kind, namespace, object, &WriteOptions::default())
}

/// Create with [`WriteOptions`].
pub fn create_with(
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    object: &Value,
    options: &WriteOptions,
) -> Result<Value, KubeError> {
    let body = object.to_string();
    #[cfg(target_arch = "wasm32")]
    return parse(
        crate::bindings::kubernetes::create(api_version, kind, namespace, &body, &wit_options(options))
            .map_err(lift)?,
    );
    #[cfg(not(target_arch = "wasm32"))]
    parse(crate::testing::mock(|m| {
        m.kube_create(api_version, kind, namespace, &body, options)
    })?)
}

/// Delete an object.
pub fn delete(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Result<(), KubeError> {
    delete_with(api_version, kind, namespace, name, &WriteOptions::default())
}

/// Delete with [`WriteOptions`].
pub fn delete_with(
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    options: &WriteOptions,
) -> Result<(), KubeError> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::kubernetes::delete(api_version, kind, namespace, name, &wit_options(options))
        .map_err(lift);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::mock(|m| m.kube_delete(api_version, kind, namespace, name, options))
}

/// Evict a pod through the `pods/eviction` subresource (granted by `pods = ["evict"]`). The API
/// server refuses with [`KubeError::Conflict`] while a PodDisruptionBudget forbids it.
pub fn evict(namespace: &str, pod: &str) -> Result<(), KubeError> {
    evict_with(namespace, pod, &WriteOptions::default())
}

/// Evict with [`WriteOptions`].
pub fn evict_with(namespace: &str, pod: &str, options: &WriteOptions) -> Result<(), KubeError> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::kubernetes::evict(namespace, pod, &wit_options(options)).map_err(lift);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::mock(|m| m.kube_evict(namespace, pod, options))
}

/// The `scale` subresource of a Deployment, StatefulSet or ReplicaSet (an `autoscaling/v1`
/// `Scale`: `spec.replicas`, `status.replicas`). Granted by `get` on the workload.
pub fn get_scale(api_version: &str, kind: &str, namespace: &str, name: &str) -> Result<Value, KubeError> {
    #[cfg(target_arch = "wasm32")]
    return parse(crate::bindings::kubernetes::get_scale(api_version, kind, namespace, name).map_err(lift)?);
    #[cfg(not(target_arch = "wasm32"))]
    parse(crate::testing::mock(|m| {
        m.kube_get_scale(api_version, kind, namespace, name)
    })?)
}

/// Set a workload's replicas through its `scale` subresource (granted by `patch` on the
/// workload); returns the `Scale`.
pub fn scale(api_version: &str, kind: &str, namespace: &str, name: &str, replicas: u32) -> Result<Value, KubeError> {
    scale_with(api_version, kind, namespace, name, replicas, &WriteOptions::default())
}

/// Scale with [`WriteOptions`].
pub fn scale_with(
    api_version: &str,
    kind: &str,
    namespace: &str,
    name: &str,
    replicas: u32,
    options: &WriteOptions,
) -> Result<Value, KubeError> {
    #[cfg(target_arch = "wasm32")]
    return parse(
        crate::bindings::kubernetes::scale(api_version, kind, namespace, name, replicas, &wit_options(options))
            .map_err(lift)?,
    );
    #[cfg(not(target_arch = "wasm32"))]
    parse(crate::testing::mock(|m| {
        m.kube_scale(api_version, kind, namespace, name, replicas, options)
    })?)
}

/// The changes from `before` to `after` (two versions of `object`), field by field, leaving out
/// what the API server keeps for itself (`resourceVersion`, `managedFields`, `generation`,
/// `status`, …). Values are JSON text. Describe a change for people with
/// [`Change::described`].
pub fn diff(object: &ObjectRef, before: &Value, after: &Value) -> Vec<Change> {
    crate::diff::diff_values(before, after)
        .into_iter()
        .map(|(path, b, a)| Change {
            object: object.clone(),
            path,
            before: b.map(|v| v.to_string()),
            after: a.map(|v| v.to_string()),
            description: String::new(),
        })
        .collect()
}
