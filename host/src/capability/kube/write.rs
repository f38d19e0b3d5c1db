//! Writes: patch (four types), create, delete, evict, scale — each checked against the grants,
//! sent with `dryRun=All` when the run is a preview (whatever the recipe asked), sent with the
//! approved preview's `resourceVersion` as precondition when there is one, and recorded with the
//! diff the host computed itself ([`Write`]).

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, DynamicObject, EvictParams, Patch, PatchParams, PostParams, Preconditions};
use kube::core::ApiResource;
use serde_json::{Value, json};

use super::access::{KubeAccess, KubeError, api_resource, checked_name, lift, to_json};
use crate::capability::kube_grants::KubeVerb;
use crate::model::{Change, ObjectRef, Write};

#[path = "../../../../recipe-sdk/src/diff.rs"]
mod diff;

/// Writes recorded per run (for the result, the event log and an approval's preconditions);
/// past this the rest are only logged, and an approval does not pin them.
pub const MAX_WRITES: usize = 50;
/// Bytes kept of each value in a recorded change.
const MAX_VALUE_BYTES: usize = 512;

/// How `patch` reads its body (mirrors the WIT `patch-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 7386.
    Merge,
    /// Kubernetes strategic merge patch.
    Strategic,
    /// RFC 6902.
    Json,
    /// Server-side apply.
    Apply,
}

/// Per-write options (mirrors the WIT `write-options`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Ask for `dryRun=All`.
    pub dry_run: bool,
    /// Write only at this `resourceVersion`.
    pub resource_version: Option<String>,
    /// The field manager.
    pub field_manager: Option<String>,
}

/// The field manager the host names when a recipe names none.
const FIELD_MANAGER: &str = "euphrosyne";

fn clip(v: Value) -> String {
    let mut t = v.to_string();
    if t.len() > MAX_VALUE_BYTES {
        let mut end = MAX_VALUE_BYTES;
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        t.truncate(end);
        t.push('…');
    }
    t
}

/// The changes between two versions of `object`, as the host records them.
pub fn changes(object: &ObjectRef, before: &Value, after: &Value) -> Vec<Change> {
    diff::diff_values(before, after)
        .into_iter()
        .map(|(path, b, a)| Change {
            object: object.clone(),
            path,
            before: b.map(clip),
            after: a.map(clip),
            description: String::new(),
        })
        .collect()
}

fn rv_of(v: &Value) -> Option<String> {
    v["metadata"]["resourceVersion"].as_str().map(str::to_string)
}

/// What is asked of an object, hashed: the object without `status` and the fields the API
/// server keeps for itself (serde_json's maps are sorted, so the text is canonical).
pub fn fingerprint(v: &Value) -> String {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
    if let Some(m) = v["metadata"].as_object_mut() {
        for k in [
            "resourceVersion",
            "managedFields",
            "generation",
            "creationTimestamp",
            "uid",
            "selfLink",
        ] {
            m.remove(k);
        }
    }
    crate::digest::Digest::of(v.to_string().as_bytes()).to_string()
}

/// Put `rv` into a merge, strategic or apply body's `metadata.resourceVersion`: the API server
/// then refuses the write with 409 if the object moved on.
fn pin_body(mut body: Value, rv: &str) -> Result<Value, KubeError> {
    let Some(obj) = body.as_object_mut() else {
        return Err(KubeError::Invalid(
            "a merge, strategic or apply patch must be a JSON object".into(),
        ));
    };
    let meta = obj.entry("metadata").or_insert_with(|| json!({}));
    match meta.as_object_mut() {
        Some(m) => {
            m.insert("resourceVersion".into(), json!(rv));
            Ok(body)
        }
        None => Err(KubeError::Invalid("the patch's `metadata` is not an object".into())),
    }
}

/// A write the API server refused because the object is not as the write assumed: 409 on a
/// patch, delete or scale (a `resourceVersion` precondition, an apply conflict), 429 on an
/// eviction (a PodDisruptionBudget). A 409 on `create` is "already exists": an ordinary error.
fn is_conflict(verb: &str, e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) if s.code == 409 => verb != "create",
        kube::Error::Api(s) if s.code == 429 => verb == "evict",
        _ => false,
    }
}

impl KubeAccess {
    /// The precondition for a write to `object`: the recipe's own `resourceVersion`, else the
    /// approved preview's (with its fingerprint).
    fn precondition(&self, object: &ObjectRef, asked: &Option<String>) -> Option<(String, Option<String>)> {
        match asked {
            Some(rv) => Some((rv.clone(), None)),
            None => self
                .mode
                .preconditions
                .iter()
                .find(|p| &p.object == object)
                .map(|p| (p.resource_version.clone(), p.fingerprint.clone())),
        }
    }

    fn record(&self, w: Write) {
        let mut writes = self.writes.lock();
        // Past the cap a write is only logged (`recorded = false`).
        let recorded = writes.len() < MAX_WRITES;
        tracing::info!(
            verb = %w.verb,
            object = %w.object,
            changes = w.changes.len(),
            dry_run = w.dry_run,
            conflict = w.conflict,
            recorded,
            "recipe write"
        );
        if recorded {
            writes.push(w);
        }
    }

    /// Record a write's outcome and map the error. A refusal of a write the host pinned to a
    /// preview's `resourceVersion` marks the write `conflict`: the action ends `conflict`.
    fn finish<T>(
        &self,
        mut w: Write,
        result: Result<T, kube::Error>,
        target: &str,
        after: impl FnOnce(&T) -> Option<Value>,
        before: Option<&Value>,
        pinned: bool,
    ) -> Result<T, KubeError> {
        match result {
            Ok(v) => {
                if let (Some(b), Some(a)) = (before, after(&v)) {
                    w.changes = changes(&w.object, b, &a);
                }
                self.record(w);
                Ok(v)
            }
            Err(e) => {
                let conflict = is_conflict(&w.verb, &e);
                let stale = conflict && pinned && matches!(&e, kube::Error::Api(s) if s.code == 409);
                let err = if conflict {
                    let msg = match &e {
                        kube::Error::Api(s) => format!("{target}: {} ({})", s.message, s.code),
                        _ => format!("{target}: {e}"),
                    };
                    KubeError::Conflict(msg)
                } else {
                    lift(e, target)
                };
                w.conflict = stale;
                w.error = Some(err.to_string());
                self.record(w);
                Err(err)
            }
        }
    }

    /// The object as it is now, for the diff and the recorded `resourceVersion` and
    /// fingerprint (read with the recipe's identity; `None` when it cannot be read), and the
    /// `resourceVersion` to send the write with. A pinned write whose object has changed since
    /// (more than its status) is refused here, before anything is sent; one whose object only
    /// had its status updated goes ahead, pinned to the version just read.
    async fn before(
        &self,
        api: &Api<DynamicObject>,
        name: &str,
        w: &mut Write,
        pin: Option<(String, Option<String>)>,
        target: &str,
    ) -> Result<(Option<Value>, Option<String>), KubeError> {
        let now = api
            .get_opt(name)
            .await
            .ok()
            .flatten()
            .and_then(|o| serde_json::to_value(o).ok());
        w.resource_version = now.as_ref().and_then(rv_of);
        w.fingerprint = now.as_ref().map(fingerprint);
        let Some((want, want_fp)) = pin else {
            return Ok((now, None));
        };
        match &w.resource_version {
            Some(have) if *have != want && (want_fp.is_none() || want_fp != w.fingerprint) => {
                let msg = format!(
                    "{target} changed since it was previewed (resourceVersion {want}, now {have}); nothing was written"
                );
                w.conflict = true;
                w.error = Some(msg.clone());
                self.record(w.clone());
                Err(KubeError::Conflict(msg))
            }
            Some(have) => {
                let have = have.clone();
                Ok((now, Some(have)))
            }
            None => Ok((now, Some(want))),
        }
    }

    fn start(&self, verb: &str, ar: &ApiResource, ns: Option<&str>, name: &str, opts: &WriteOptions) -> Write {
        Write {
            verb: verb.into(),
            object: ObjectRef {
                api_version: ar.api_version.clone(),
                kind: ar.kind.clone(),
                namespace: ns.map(str::to_string),
                name: name.to_string(),
            },
            dry_run: opts.dry_run || self.mode.dry_run,
            resource_version: None,
            fingerprint: None,
            changes: vec![],
            error: None,
            conflict: false,
        }
    }

    /// `patch`, of any [`PatchType`].
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
        ptype: PatchType,
        patch: &str,
        opts: WriteOptions,
    ) -> Result<String, KubeError> {
        let target = format!("{kind} {}{name}", ns.map(|n| format!("{n}/")).unwrap_or_default());
        let ar = api_resource(api_version, kind)?;
        let client = self.allow(&ar, KubeVerb::Patch, ns, &target)?;
        let name = checked_name("name", name)?;
        let body: Value =
            serde_json::from_str(patch).map_err(|e| KubeError::Invalid(format!("patch is not JSON: {e}")))?;
        let mut w = self.start("patch", &ar, ns, name, &opts);
        let pin = self.precondition(&w.object, &opts.resource_version);
        let api = self.api(client, &ar, ns)?;
        let (before, pin) = self.before(&api, name, &mut w, pin, &target).await?;
        let patch = match (ptype, &pin) {
            (PatchType::Json, pin) => {
                let mut ops = match body {
                    Value::Array(ops) => ops,
                    _ => return Err(KubeError::Invalid("a JSON patch must be a list of operations".into())),
                };
                if let Some(rv) = pin {
                    ops.insert(
                        0,
                        json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv}),
                    );
                }
                let ops: json_patch::Patch = serde_json::from_value(Value::Array(ops))
                    .map_err(|e| KubeError::Invalid(format!("not a JSON patch (RFC 6902): {e}")))?;
                Patch::Json::<Value>(ops)
            }
            (t, pin) => {
                let body = match pin {
                    Some(rv) => pin_body(body, rv)?,
                    None => body,
                };
                match t {
                    PatchType::Merge => Patch::Merge(body),
                    PatchType::Strategic => Patch::Strategic(body),
                    _ => Patch::Apply(body),
                }
            }
        };
        let pp = PatchParams {
            dry_run: w.dry_run,
            field_manager: opts
                .field_manager
                .clone()
                .or_else(|| (ptype == PatchType::Apply).then(|| FIELD_MANAGER.to_string())),
            ..Default::default()
        };
        let result = api.patch(name, &pp, &patch).await;
        let pinned = pin.is_some();
        let obj = self.finish(
            w,
            result,
            &target,
            |o| serde_json::to_value(o).ok(),
            before.as_ref(),
            pinned,
        )?;
        to_json(&obj)
    }

    /// `create`.
    pub async fn create(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        object: &str,
        opts: WriteOptions,
    ) -> Result<String, KubeError> {
        let target = format!("new {kind}");
        let ar = api_resource(api_version, kind)?;
        let client = self.allow(&ar, KubeVerb::Create, ns, &target)?;
        let obj: DynamicObject = serde_json::from_str(object)
            .map_err(|e| KubeError::Invalid(format!("object is not a Kubernetes object: {e}")))?;
        let name = obj
            .metadata
            .name
            .clone()
            .or(obj.metadata.generate_name.clone())
            .unwrap_or_default();
        let w = self.start("create", &ar, ns, &name, &opts);
        let pp = PostParams {
            dry_run: w.dry_run,
            field_manager: opts.field_manager,
        };
        let result = self.api(client, &ar, ns)?.create(&pp, &obj).await;
        let empty = json!({});
        let created = self.finish(
            w,
            result,
            &target,
            |o| serde_json::to_value(o).ok(),
            Some(&empty),
            false,
        )?;
        to_json(&created)
    }

    /// `delete`.
    pub async fn delete(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
        opts: WriteOptions,
    ) -> Result<(), KubeError> {
        let target = format!("{kind} {}{name}", ns.map(|n| format!("{n}/")).unwrap_or_default());
        let ar = api_resource(api_version, kind)?;
        let client = self.allow(&ar, KubeVerb::Delete, ns, &target)?;
        let name = checked_name("name", name)?;
        let mut w = self.start("delete", &ar, ns, name, &opts);
        let pin = self.precondition(&w.object, &opts.resource_version);
        let api = self.api(client, &ar, ns)?;
        let (_, pin) = self.before(&api, name, &mut w, pin, &target).await?;
        let pinned = pin.is_some();
        let dp = DeleteParams {
            dry_run: w.dry_run,
            preconditions: pin.map(|rv| Preconditions {
                resource_version: Some(rv),
                uid: None,
            }),
            ..Default::default()
        };
        let result = api.delete(name, &dp).await.map(|_| ());
        self.finish(w, result, &target, |_| None, None, pinned)
    }

    /// `evict`: the `pods/eviction` subresource, which honours PodDisruptionBudgets.
    pub async fn evict(&self, ns: &str, pod: &str, opts: WriteOptions) -> Result<(), KubeError> {
        let target = format!("pod {ns}/{pod}");
        let ar = api_resource("v1", "Pod")?;
        let client = self.allow(&ar, KubeVerb::Evict, Some(ns), &target)?;
        let pod = checked_name("pod", pod)?;
        let mut w = self.start("evict", &ar, Some(ns), pod, &opts);
        let pin = self.precondition(&w.object, &opts.resource_version);
        let dynamic = self.api(client.clone(), &ar, Some(ns))?;
        let (_, pin) = self.before(&dynamic, pod, &mut w, pin, &target).await?;
        let api: Api<Pod> = Api::namespaced(client, checked_name("namespace", ns)?);
        let pinned = pin.is_some();
        let ep = EvictParams {
            delete_options: Some(DeleteParams {
                dry_run: w.dry_run,
                preconditions: pin.map(|rv| Preconditions {
                    resource_version: Some(rv),
                    uid: None,
                }),
                ..Default::default()
            }),
            post_options: PostParams {
                dry_run: w.dry_run,
                field_manager: None,
            },
        };
        let result = api.evict(pod, &ep).await.map(|_| ());
        self.finish(w, result, &target, |_| None, None, pinned)
    }

    /// `get-scale`: the workload's `Scale` (read with `get` on the workload).
    pub async fn get_scale(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> Result<String, KubeError> {
        let target = format!("scale of {kind} {ns}/{name}");
        let ar = api_resource(api_version, kind)?;
        let client = self.allow(&ar, KubeVerb::Get, Some(ns), &target)?;
        let scale = self
            .api(client, &ar, Some(ns))?
            .get_scale(checked_name("name", name)?)
            .await
            .map_err(|e| lift(e, &target))?;
        to_json(&scale)
    }

    /// `scale`: set `spec.replicas` through the `scale` subresource (`patch` on the workload).
    pub async fn scale(
        &self,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
        replicas: u32,
        opts: WriteOptions,
    ) -> Result<String, KubeError> {
        let target = format!("{kind} {ns}/{name}");
        let ar = api_resource(api_version, kind)?;
        let client = self.allow(&ar, KubeVerb::Patch, Some(ns), &target)?;
        let name = checked_name("name", name)?;
        let mut w = self.start("scale", &ar, Some(ns), name, &opts);
        let pin = self.precondition(&w.object, &opts.resource_version);
        let api = self.api(client, &ar, Some(ns))?;
        let (before, pin) = self.before(&api, name, &mut w, pin, &target).await?;
        let mut body = json!({"spec": {"replicas": replicas}});
        if let Some(rv) = &pin {
            body = pin_body(body, rv)?;
        }
        let pp = PatchParams {
            dry_run: w.dry_run,
            ..Default::default()
        };
        let pinned = pin.is_some();
        let result = api.patch_scale(name, &pp, &Patch::Merge(body)).await;
        // The diff is of the workload's replicas: the Scale answer carries the new count.
        let before_replicas = before
            .as_ref()
            .map(|b| json!({"spec": {"replicas": b["spec"]["replicas"]}}));
        let scale = self.finish(
            w,
            result,
            &target,
            |s| Some(json!({"spec": {"replicas": s.spec.as_ref().and_then(|s| s.replicas)}})),
            before_replicas.as_ref(),
            pinned,
        )?;
        to_json(&scale)
    }
}
