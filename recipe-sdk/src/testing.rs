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

use crate::wire::{HttpError, KubeError, Level, Request, Response};
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

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
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

    pub(crate) fn kube_patch(
        &mut self,
        av: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
        body: &str,
    ) -> Result<String, KubeError> {
        let patch: Value = serde_json::from_str(body).map_err(|e| KubeError::Invalid(e.to_string()))?;
        let obj = self
            .objects
            .get_mut(&key(av, kind, ns, name))
            .ok_or_else(|| KubeError::NotFound(target(kind, ns, name)))?;
        merge(obj, &patch);
        let out = obj.to_string();
        self.writes.push(KubeWrite {
            verb: "patch".into(),
            target: target(kind, ns, name),
            body: patch,
        });
        Ok(out)
    }

    pub(crate) fn kube_create(
        &mut self,
        av: &str,
        kind: &str,
        ns: Option<&str>,
        body: &str,
    ) -> Result<String, KubeError> {
        let obj: Value = serde_json::from_str(body).map_err(|e| KubeError::Invalid(e.to_string()))?;
        let name = obj["metadata"]["name"].as_str().unwrap_or("generated").to_string();
        self.objects.insert(key(av, kind, ns, &name), obj.clone());
        self.writes.push(KubeWrite {
            verb: "create".into(),
            target: target(kind, ns, &name),
            body: obj.clone(),
        });
        Ok(obj.to_string())
    }

    pub(crate) fn kube_delete(&mut self, av: &str, kind: &str, ns: Option<&str>, name: &str) -> Result<(), KubeError> {
        self.objects
            .remove(&key(av, kind, ns, name))
            .ok_or_else(|| KubeError::NotFound(target(kind, ns, name)))?;
        self.writes.push(KubeWrite {
            verb: "delete".into(),
            target: target(kind, ns, name),
            body: Value::Null,
        });
        Ok(())
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

    /// Run actor `A` on `request`.
    pub fn act<A: Actor>(&self, request: ActionRequest) -> Result<Outcome, RecipeError> {
        self.run(|| A::act(request))
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
