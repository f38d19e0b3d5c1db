//! Native test harness: run a recipe's logic under `cargo test` with canned Kubernetes objects,
//! logs, events, HTTP responses, secrets and config — no wasm, no cluster.
//!
//! ```
//! use recipe_sdk::prelude::*;
//! use recipe_sdk::testing::Harness;
//!
//! struct Cordon;
//! impl Actor for Cordon {
//!     fn act(req: ActionRequest) -> Result<Outcome, RecipeError> {
//!         let node = req.parameters["node"].as_str().unwrap_or_default();
//!         kube::patch("v1", "Node", None, node, &serde_json::json!({"spec": {"unschedulable": true}}))?;
//!         Ok(Outcome::success(format!("cordoned {node}")))
//!     }
//! }
//!
//! let h = Harness::new().kube_object("v1", "Node", None, "n1", serde_json::json!({"spec": {}}));
//! let out = h.act::<Cordon>(ActionRequest::new("cordon-node", serde_json::json!({"node": "n1"}), "alice")).unwrap();
//! assert!(out.success);
//! assert_eq!(h.kube_object_now("v1", "Node", None, "n1").unwrap()["spec"]["unschedulable"], true);
//! assert_eq!(h.kube_writes().len(), 1);
//! ```
//!
//! On `wasm32` targets the helpers call the host instead and none of this is used.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::Value;

use crate::wire::{HttpError, KubeError, Level, PatchType, Request, Response, WriteOptions};
use crate::{ActionRequest, Actor, Analysis, Debugger, Incident, Outcome, RecipeError};

type Key = (String, String, Option<String>, String);

/// A write a recipe made through [`crate::kube`], recorded for assertions.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeWrite {
    /// `patch`, `create` or `delete`.
    pub verb: String,
    /// `Kind/namespace/name` (namespace omitted for cluster-scoped objects).
    pub target: String,
    /// The patch or object sent (`Null` for delete).
    pub body: Value,
    /// Sent as a dry run (the request was a preview, or the recipe asked): nothing changed.
    pub dry_run: bool,
}

/// The canned world a recipe sees in a native test.
#[derive(Debug, Default)]
pub struct Mock {
    objects: BTreeMap<Key, Value>,
    pod_logs: BTreeMap<(String, String), String>,
    http: Vec<(String, Response)>,
    pub(crate) config: BTreeMap<String, String>,
    pub(crate) secrets: BTreeMap<String, String>,
    /// Lines the recipe logged.
    pub logs: Vec<(Level, String)>,
    /// Requests the recipe sent.
    pub requests: Vec<Request>,
    /// Writes the recipe made.
    pub writes: Vec<KubeWrite>,
    /// The run is a preview: every write is a dry run, as the host makes it.
    pub(crate) dry_run: bool,
    /// Pods whose eviction a PodDisruptionBudget refuses.
    pub(crate) eviction_blocked: Vec<(String, String)>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<RefCell<Mock>>>> = const { RefCell::new(None) };
}

/// Run `f` against the mock of the harness that is running the recipe on this thread.
pub(crate) fn mock<R>(f: impl FnOnce(&mut Mock) -> R) -> R {
    let current = CURRENT.with(|c| c.borrow().clone());
    let mock = current.expect(
        "recipe_sdk host call outside a testing::Harness run: call your recipe through Harness::debug / Harness::act",
    );
    let mut guard = mock.borrow_mut();
    f(&mut guard)
}

fn key(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Key {
    (api_version.into(), kind.into(), namespace.map(Into::into), name.into())
}

fn target(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

/// JSON merge patch; `strategic`: lists whose items all carry a `name` merge by name, the way
/// the API server merges containers, ports, volumes and env.
fn merge(target: &mut Value, patch: &Value, strategic: bool) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v, strategic);
                }
            }
        }
        (Value::Array(t), Value::Array(p)) if strategic && named(t) && named(p) => {
            for item in p {
                match t.iter_mut().find(|x| x["name"] == item["name"]) {
                    Some(x) => merge(x, item, true),
                    None => t.push(item.clone()),
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn named(items: &[Value]) -> bool {
    items.iter().all(|i| i["name"].is_string())
}

/// Bump a canned object's `resourceVersion` (when it has one), as a real write does.
fn bump(obj: &mut Value) {
    if let Some(rv) = obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|r| r.parse::<u64>().ok())
    {
        obj["metadata"]["resourceVersion"] = Value::String((rv + 1).to_string());
    }
}

/// JSON patch (RFC 6902): `add`, `replace`, `remove` and `test`.
fn json_patch(target: &mut Value, ops: &Value) -> Result<(), KubeError> {
    let invalid = |m: String| KubeError::Invalid(m);
    let ops = ops
        .as_array()
        .ok_or_else(|| invalid("a JSON patch is a list of operations".into()))?;
    for op in ops {
        let path = op["path"]
            .as_str()
            .ok_or_else(|| invalid(format!("operation without a path: {op}")))?;
        let (parent, last) = path
            .rsplit_once('/')
            .ok_or_else(|| invalid(format!("bad path `{path}`")))?;
        let last = last.replace("~1", "/").replace("~0", "~");
        match op["op"].as_str() {
            Some("test") => {
                if target.pointer(path) != Some(&op["value"]) {
                    return Err(invalid(format!("test operation failed at {path}")));
                }
            }
            Some(kind @ ("add" | "replace" | "remove")) => {
                let p = target
                    .pointer_mut(parent)
                    .ok_or_else(|| invalid(format!("no parent for `{path}`")))?;
                match (p, kind) {
                    (Value::Object(m), "remove") => {
                        m.remove(&last);
                    }
                    (Value::Object(m), _) => {
                        m.insert(last, op["value"].clone());
                    }
                    (Value::Array(a), k) => {
                        let i = if last == "-" {
                            a.len()
                        } else {
                            last.parse().map_err(|_| invalid(format!("bad index in `{path}`")))?
                        };
                        match k {
                            "remove" if i < a.len() => {
                                a.remove(i);
                            }
                            "replace" if i < a.len() => a[i] = op["value"].clone(),
                            "add" if i <= a.len() => a.insert(i, op["value"].clone()),
                            _ => return Err(invalid(format!("index out of range in `{path}`"))),
                        }
                    }
                    _ => return Err(invalid(format!("`{parent}` is not an object or a list"))),
                }
            }
            other => return Err(invalid(format!("unsupported operation {other:?}"))),
        }
    }
    Ok(())
}

fn lookup<'a>(v: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(v, |v, part| v.get(part))
}

fn selector_matches(obj: &Value, selector: Option<&str>, labels: bool) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    selector.split(',').all(|term| {
        let (k, v, negate) = match term.split_once("!=") {
            Some((k, v)) => (k, v, true),
            None => match term.split_once('=') {
                Some((k, v)) => (k, v.trim_start_matches('='), false),
                None => return true,
            },
        };
        let actual = if labels {
            obj["metadata"]["labels"][k.trim()].as_str().map(str::to_string)
        } else {
            lookup(obj, k.trim()).map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
        };
        (actual.as_deref() == Some(v.trim())) != negate
    })
}

impl Mock {
    pub(crate) fn kube_get(&mut self, av: &str, kind: &str, ns: Option<&str>, name: &str) -> Result<String, KubeError> {
        self.objects
            .get(&key(av, kind, ns, name))
            .map(Value::to_string)
            .ok_or_else(|| KubeError::NotFound(target(kind, ns, name)))
    }

    pub(crate) fn kube_list(
        &mut self,
        av: &str,
        kind: &str,
        ns: Option<&str>,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<String, KubeError> {
        let items: Vec<Value> = self
            .objects
            .iter()
            .filter(|((a, k, n, _), _)| a == av && k == kind && (ns.is_none() || n.as_deref() == ns))
            .map(|(_, v)| v)
            .filter(|v| selector_matches(v, labels, true) && selector_matches(v, fields, false))
            .cloned()
            .collect();
        Ok(serde_json::json!({ "kind": format!("{kind}List"), "items": items }).to_string())
    }

    pub(crate) fn kube_logs(
        &mut self,
        ns: &str,
        pod: &str,
        _container: Option<&str>,
        tail: Option<u32>,
        _previous: bool,
    ) -> Result<String, KubeError> {
        let logs = self
            .pod_logs
            .get(&(ns.to_string(), pod.to_string()))
            .ok_or_else(|| KubeError::NotFound(format!("logs of pod {ns}/{pod}")))?;
        let lines: Vec<&str> = logs.lines().collect();
        let skip = tail.map(|t| lines.len().saturating_sub(t as usize)).unwrap_or(0);
        Ok(lines[skip..].join("\n"))
    }

    pub(crate) fn kube_events(&mut self, ns: Option<&str>, kind: &str, name: &str) -> Result<String, KubeError> {
        let fields = format!("involvedObject.kind={kind},involvedObject.name={name}");
        self.kube_list("v1", "Event", ns, None, Some(&fields))
    }

    /// Check a write's precondition against the object's canned `resourceVersion`.
    fn precondition(&self, k: &Key, opts: &WriteOptions) -> Result<(), KubeError> {
        let (Some(want), Some(obj)) = (&opts.resource_version, self.objects.get(k)) else {
            return Ok(());
        };
        match obj["metadata"]["resourceVersion"].as_str() {
            Some(have) if have != want => Err(KubeError::Conflict(format!(
                "{}: the object has been modified (resourceVersion {want}, now {have})",
                target(&k.1, k.2.as_deref(), &k.3)
            ))),
            _ => Ok(()),
        }
    }

    /// Record a write; `true` when it is to persist (not a dry run).
    fn wrote(&mut self, verb: &str, target: String, body: Value, opts: &WriteOptions) -> bool {
        let dry_run = self.dry_run || opts.dry_run;
        self.writes.push(KubeWrite {
            verb: verb.into(),
            target,
            body,
            dry_run,
        });
        !dry_run
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn kube_patch(
        &mut self,
        av: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
        ptype: PatchType,
        body: &str,
        opts: &WriteOptions,
    ) -> Result<String, KubeError> {
        let patch: Value = serde_json::from_str(body).map_err(|e| KubeError::Invalid(e.to_string()))?;
        let k = key(av, kind, ns, name);
        self.precondition(&k, opts)?;
        let mut obj = self
            .objects
            .get(&k)
            .cloned()
            .ok_or_else(|| KubeError::NotFound(target(kind, ns, name)))?;
        match ptype {
            PatchType::Merge => merge(&mut obj, &patch, false),
            PatchType::Strategic | PatchType::Apply => merge(&mut obj, &patch, true),
            PatchType::Json => json_patch(&mut obj, &patch)?,
        }
        if self.wrote("patch", target(kind, ns, name), patch, opts) {
            bump(&mut obj);
            self.objects.insert(k, obj.clone());
        }
        Ok(obj.to_string())
    }

    pub(crate) fn kube_create(
        &mut self,
        av: &str,
        kind: &str,
        ns: Option<&str>,
        body: &str,
        opts: &WriteOptions,
    ) -> Result<String, KubeError> {
        let obj: Value = serde_json::from_str(body).map_err(|e| KubeError::Invalid(e.to_string()))?;
        let name = obj["metadata"]["name"]
            .as_str()
            .or(obj["metadata"]["generateName"].as_str())
            .unwrap_or("generated")
            .to_string();
        if self.wrote("create", target(kind, ns, &name), obj.clone(), opts) {
            self.objects.insert(key(av, kind, ns, &name), obj.clone());
        }
        Ok(obj.to_string())
    }

    pub(crate) fn kube_delete(
        &mut self,
        av: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
        opts: &WriteOptions,
    ) -> Result<(), KubeError> {
        let k = key(av, kind, ns, name);
        if !self.objects.contains_key(&k) {
            return Err(KubeError::NotFound(target(kind, ns, name)));
        }
        self.precondition(&k, opts)?;
        if self.wrote("delete", target(kind, ns, name), Value::Null, opts) {
            self.objects.remove(&k);
        }
        Ok(())
    }

    pub(crate) fn kube_evict(&mut self, ns: &str, pod: &str, opts: &WriteOptions) -> Result<(), KubeError> {
        let k = key("v1", "Pod", Some(ns), pod);
        if !self.objects.contains_key(&k) {
            return Err(KubeError::NotFound(target("Pod", Some(ns), pod)));
        }
        if self.eviction_blocked.iter().any(|(n, p)| n == ns && p == pod) {
            return Err(KubeError::Conflict(format!(
                "pod {ns}/{pod}: Cannot evict pod as it would violate the pod's disruption budget. (429)"
            )));
        }
        self.precondition(&k, opts)?;
        if self.wrote("evict", target("Pod", Some(ns), pod), Value::Null, opts) {
            self.objects.remove(&k);
        }
        Ok(())
    }

    pub(crate) fn kube_get_scale(&mut self, av: &str, kind: &str, ns: &str, name: &str) -> Result<String, KubeError> {
        let obj = self
            .objects
            .get(&key(av, kind, Some(ns), name))
            .ok_or_else(|| KubeError::NotFound(target(kind, Some(ns), name)))?;
        Ok(serde_json::json!({
            "apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": name, "namespace": ns, "resourceVersion": obj["metadata"]["resourceVersion"]},
            "spec": {"replicas": obj["spec"]["replicas"]},
            "status": {"replicas": obj["status"]["replicas"]},
        })
        .to_string())
    }

    pub(crate) fn kube_scale(
        &mut self,
        av: &str,
        kind: &str,
        ns: &str,
        name: &str,
        replicas: u32,
        opts: &WriteOptions,
    ) -> Result<String, KubeError> {
        let patch = serde_json::json!({"spec": {"replicas": replicas}}).to_string();
        self.kube_patch(av, kind, Some(ns), name, PatchType::Merge, &patch, opts)?;
        if let Some(w) = self.writes.last_mut() {
            w.verb = "scale".into();
        }
        let mut scale: Value = serde_json::from_str(&self.kube_get_scale(av, kind, ns, name)?)
            .map_err(|e| KubeError::Api(e.to_string()))?;
        scale["spec"]["replicas"] = replicas.into();
        Ok(scale.to_string())
    }

    pub(crate) fn http_send(&mut self, req: &Request) -> Result<Response, HttpError> {
        self.requests.push(req.clone());
        self.http
            .iter()
            .find(|(prefix, _)| req.url.starts_with(prefix.as_str()))
            .map(|(_, r)| r.clone())
            .ok_or_else(|| HttpError {
                message: format!("no canned response for {} (connection refused)", req.url),
            })
    }
}

/// Builds the canned world, runs a recipe against it, and shows what the recipe did.
#[derive(Debug, Default, Clone)]
pub struct Harness {
    mock: Rc<RefCell<Mock>>,
}

impl Harness {
    /// An empty world: every Kubernetes object is absent, every HTTP request refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a Kubernetes object. `namespace` is `None` for cluster-scoped kinds.
    pub fn kube_object(
        self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        mut object: Value,
    ) -> Self {
        if let Value::Object(o) = &mut object {
            let meta = o.entry("metadata").or_insert_with(|| serde_json::json!({}));
            if let Value::Object(m) = meta {
                m.entry("name").or_insert_with(|| name.into());
                if let Some(ns) = namespace {
                    m.entry("namespace").or_insert_with(|| ns.into());
                }
            }
            o.entry("kind").or_insert_with(|| kind.into());
            o.entry("apiVersion").or_insert_with(|| api_version.into());
        }
        self.mock
            .borrow_mut()
            .objects
            .insert(key(api_version, kind, namespace, name), object);
        self
    }

    /// Add a core/v1 Event about `kind/name` with `reason` and `message`.
    pub fn kube_event(self, namespace: &str, kind: &str, name: &str, reason: &str, message: &str) -> Self {
        let n = self.mock.borrow().objects.len();
        let event_name = format!("{name}.{n}");
        let event = serde_json::json!({
            "reason": reason, "message": message, "type": "Warning",
            "lastTimestamp": format!("2026-01-01T00:00:{:02}Z", n % 60),
            "involvedObject": { "kind": kind, "name": name, "namespace": namespace },
        });
        self.kube_object("v1", "Event", Some(namespace), &event_name, event)
    }

    /// Set the log of a pod (all containers).
    pub fn pod_log(self, namespace: &str, pod: &str, log: &str) -> Self {
        self.mock
            .borrow_mut()
            .pod_logs
            .insert((namespace.into(), pod.into()), log.into());
        self
    }

    /// Answer every request whose URL starts with `url_prefix` with `response`.
    pub fn http_response(self, url_prefix: &str, response: Response) -> Self {
        self.mock.borrow_mut().http.push((url_prefix.into(), response));
        self
    }

    /// Grant a secret with this value.
    pub fn secret(self, name: &str, value: &str) -> Self {
        self.mock.borrow_mut().secrets.insert(name.into(), value.into());
        self
    }

    /// Set a config value.
    pub fn config(self, key: &str, value: &str) -> Self {
        self.mock.borrow_mut().config.insert(key.into(), value.into());
        self
    }

    fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                CURRENT.with(|c| *c.borrow_mut() = None);
            }
        }
        CURRENT.with(|c| *c.borrow_mut() = Some(self.mock.clone()));
        let _reset = Reset;
        f()
    }

    /// Run debugger `D` on `incident`.
    pub fn debug<D: Debugger>(&self, incident: Incident) -> Result<Analysis, RecipeError> {
        self.run(|| D::debug(incident))
    }

    /// Run actor `A` on `request`. A preview (`request.dry_run`) makes every write a dry run,
    /// as the host does: nothing canned changes.
    pub fn act<A: Actor>(&self, request: ActionRequest) -> Result<Outcome, RecipeError> {
        self.mock.borrow_mut().dry_run = request.dry_run;
        self.run(|| A::act(request))
    }

    /// Make the API server refuse to evict pod `namespace/pod` (a PodDisruptionBudget).
    pub fn eviction_blocked(self, namespace: &str, pod: &str) -> Self {
        self.mock
            .borrow_mut()
            .eviction_blocked
            .push((namespace.into(), pod.into()));
        self
    }

    /// The Kubernetes writes the recipe made, in order.
    pub fn kube_writes(&self) -> Vec<KubeWrite> {
        self.mock.borrow().writes.clone()
    }

    /// An object as it is now (after the recipe's patches).
    pub fn kube_object_now(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        self.mock
            .borrow()
            .objects
            .get(&key(api_version, kind, namespace, name))
            .cloned()
    }

    /// The HTTP requests the recipe sent, in order.
    pub fn http_requests(&self) -> Vec<Request> {
        self.mock.borrow().requests.clone()
    }

    /// The lines the recipe logged.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.mock.borrow().logs.clone()
    }
}
