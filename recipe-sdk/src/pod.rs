//! What is wrong with a pod: the diagnosis the bundled debuggers share.
//!
//! [`classify`] reads a pod (as the API returns it) and its events and names the most specific
//! cause it sees — OOMKilled, an image that cannot be pulled, a missing ConfigMap or Secret, a
//! volume that cannot be mounted, a failing init container, unschedulable, evicted, failing
//! probes, an application crash — in the words and numbers the kubelet and the scheduler wrote.
//! [`Cause::headline`] is the same for every pod with the same problem, so a debugger can
//! [`group`](crate::objects::group) pods by it; [`Cause::remedy`] says which bundled action fits.
//!
//! ```
//! use recipe_sdk::pod::{classify, Cause};
//! let pod = serde_json::json!({
//!     "spec": {"containers": [{"name": "api", "resources": {"limits": {"memory": "128Mi"}}}]},
//!     "status": {"containerStatuses": [{"name": "api", "restartCount": 4,
//!         "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}
//! });
//! let cause = classify(&pod, &[]).unwrap();
//! assert_eq!(cause.headline(), "container api OOMKilled at its 128Mi memory limit");
//! ```

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::Finding;
use crate::kube::{self, KubeError};

/// Why a pod does not run or is not ready, most specific first.
#[derive(Debug, Clone, PartialEq)]
pub enum Cause {
    /// A container was killed for exceeding its memory limit.
    OomKilled {
        /// The container.
        container: String,
        /// Its memory limit, if it has one.
        limit: Option<String>,
    },
    /// An image cannot be pulled.
    ImagePull {
        /// The container.
        container: String,
        /// The image reference.
        image: String,
        /// `ErrImagePull`, `ImagePullBackOff`, `InvalidImageName`.
        reason: String,
        /// The registry's (or the runtime's) own words.
        message: String,
    },
    /// A container cannot be created from its configuration (a missing ConfigMap, Secret or key).
    ConfigError {
        /// The container.
        container: String,
        /// The kubelet's message, which names the missing object.
        detail: String,
    },
    /// A volume cannot be attached or mounted (`FailedMount`, `FailedAttachVolume`).
    Mount {
        /// The volume, when the message names it.
        volume: Option<String>,
        /// The kubelet's or the attach controller's message.
        detail: String,
    },
    /// An init container fails, so the pod never starts its containers.
    InitContainer {
        /// The init container.
        container: String,
        /// Its exit code.
        exit_code: i64,
        /// The runtime's reason.
        reason: String,
    },
    /// The scheduler finds no node.
    Unschedulable {
        /// The scheduler's message ("0/3 nodes are available: 3 Insufficient memory.").
        message: String,
    },
    /// The kubelet evicted the pod.
    Evicted {
        /// The kubelet's message.
        message: String,
        /// The node it ran on.
        node: Option<String>,
    },
    /// Liveness or readiness probes fail.
    FailingProbe {
        /// The probe's message.
        detail: String,
    },
    /// A container exits with a non-zero code.
    AppCrash {
        /// The container.
        container: String,
        /// The exit code.
        exit_code: i64,
        /// The runtime's reason (`Error`, `Completed`…).
        reason: String,
    },
}

/// What to do about a cause: a bundled action with its parameters, or why none applies.
#[derive(Debug, Clone, PartialEq)]
pub enum Remedy {
    /// Suggest these actions (name, parameters, reason), best first.
    Actions(Vec<(String, Value, String)>),
    /// No bundled action fits; the reason says what a human must do.
    None(String),
}

impl Cause {
    /// One line that is the same for every pod with this problem: the grouping key.
    pub fn headline(&self) -> String {
        match self {
            Cause::OomKilled { container, limit } => match limit {
                Some(l) => format!("container {container} OOMKilled at its {l} memory limit"),
                None => format!("container {container} OOMKilled (no memory limit: the node ran out)"),
            },
            Cause::ImagePull {
                container,
                image,
                reason,
                message,
            } => {
                let said = if message.is_empty() {
                    String::new()
                } else {
                    format!(": {message}")
                };
                format!(
                    "container {container} cannot pull image {image} from {} ({reason}){said}",
                    registry(image)
                )
            }
            Cause::ConfigError { container, detail } => format!("container {container} cannot start: {detail}"),
            Cause::Mount { volume, detail } => match volume {
                Some(v) => format!("volume {v} cannot be mounted: {detail}"),
                None => format!("a volume cannot be mounted: {detail}"),
            },
            Cause::InitContainer {
                container,
                exit_code,
                reason,
            } => format!("init container {container} exits with code {exit_code} ({reason})"),
            Cause::Unschedulable { message } => format!("unschedulable: {message}"),
            Cause::Evicted { message, .. } => format!("evicted: {message}"),
            Cause::FailingProbe { detail } => format!("failing probe: {detail}"),
            Cause::AppCrash {
                container,
                exit_code,
                reason,
            } => format!("container {container} exits with code {exit_code} ({reason})"),
        }
    }

    /// A short title for a finding.
    pub fn title(&self) -> &'static str {
        match self {
            Cause::OomKilled { .. } => "OOMKilled",
            Cause::ImagePull { .. } => "Image pull failure",
            Cause::ConfigError { .. } => "Configuration error",
            Cause::Mount { .. } => "Volume mount failure",
            Cause::InitContainer { .. } => "Init container failure",
            Cause::Unschedulable { .. } => "Unschedulable",
            Cause::Evicted { .. } => "Evicted",
            Cause::FailingProbe { .. } => "Failing probe",
            Cause::AppCrash { .. } => "Application crash",
        }
    }

    /// Should the log tail of the crashing container be read as evidence?
    pub fn wants_log(&self) -> bool {
        matches!(
            self,
            Cause::OomKilled { .. } | Cause::AppCrash { .. } | Cause::InitContainer { .. } | Cause::FailingProbe { .. }
        )
    }

    /// The bundled action that fits, for pods owned by `owner`, or why none does.
    pub fn remedy(&self, owner: &Owner) -> Remedy {
        let target = owner.params();
        let workload = owner.is_workload();
        let no_workload = || {
            Remedy::None(format!(
                "the pod belongs to no Deployment, StatefulSet or DaemonSet ({} {}); fix its spec and recreate it",
                owner.kind, owner.name
            ))
        };
        let one = |action: &str, params: Value, why: String| Remedy::Actions(vec![(action.to_string(), params, why)]);
        match self {
            Cause::OomKilled { container, limit } => {
                if !workload {
                    return no_workload();
                }
                let raised = limit.as_deref().and_then(double_quantity);
                let mut params = target;
                params["container"] = json!(container);
                if let Some(r) = &raised {
                    params["memory"] = json!(r);
                }
                one(
                    "raise-memory-limit",
                    params,
                    format!(
                        "the container needs more memory than its limit{}",
                        raised.map(|r| format!("; raise it to {r}")).unwrap_or_default()
                    ),
                )
            }
            Cause::ImagePull { .. } if owner.can_roll_back() => one(
                "rollback-deployment",
                target,
                "the image cannot be pulled; roll back to the last revision that ran".into(),
            ),
            Cause::InitContainer { .. } | Cause::AppCrash { .. } if owner.can_roll_back() => Remedy::Actions(vec![
                (
                    "rollback-deployment".into(),
                    target.clone(),
                    "if a new revision brought the crash, roll back to the last one that ran".into(),
                ),
                (
                    "restart-workload".into(),
                    target,
                    "if the crash is transient (a dependency was down), a restart is enough".into(),
                ),
            ]),
            Cause::FailingProbe { .. } if workload => one(
                "restart-workload",
                target,
                "the probes fail although the process runs; a rolling restart often clears a stuck state".into(),
            ),
            Cause::ConfigError { detail, .. } | Cause::Mount { detail, .. } => one(
                "open-ticket",
                json!({
                    "summary": format!("{}: {}", owner.path(), self.title().to_lowercase()),
                    "description": detail,
                }),
                "an object the pod needs is missing or unusable; a human must provide it".into(),
            ),
            Cause::Unschedulable { message } => Remedy::None(format!(
                "no bundled action adds capacity: free or add nodes, or lower the pods' requests ({message})"
            )),
            Cause::Evicted { node, .. } => Remedy::None(format!(
                "the kubelet evicted it under node pressure{}; the workload's controller replaces it, and the node's own alert says why",
                node.as_deref().map(|n| format!(" on {n}")).unwrap_or_default()
            )),
            _ => no_workload(),
        }
    }
}

/// The registry an image reference pulls from (`docker.io` when it names none).
pub fn registry(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => first,
        _ => "docker.io",
    }
}

/// `256Mi` → `512Mi`; `1.5Gi` → `3Gi`; `500m` → `1000m`; `None` for what is not a quantity.
pub fn double_quantity(q: &str) -> Option<String> {
    q.parse::<crate::quantity::Quantity>()
        .ok()
        .map(|q| q.doubled().to_string())
}

/// The controller a pod belongs to: a ReplicaSet's Deployment, a StatefulSet, a DaemonSet, a
/// Job, or the pod itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Owner {
    /// `Deployment`, `StatefulSet`, `DaemonSet`, `Job`, `ReplicaSet`, or `Pod` for a bare pod.
    pub kind: String,
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl Owner {
    /// `Deployment shop/api`.
    pub fn path(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }
    /// Parameters that name it for the workload actors.
    pub fn params(&self) -> Value {
        json!({ "namespace": self.namespace, "kind": self.kind, "name": self.name })
    }
    /// A Deployment, StatefulSet or DaemonSet (what the workload actors change).
    pub fn is_workload(&self) -> bool {
        matches!(self.kind.as_str(), "Deployment" | "StatefulSet" | "DaemonSet")
    }
    /// Has revisions `rollback-deployment` can go back to.
    pub fn can_roll_back(&self) -> bool {
        self.is_workload()
    }
}

/// Resolves pods' owners, reading each ReplicaSet once.
#[derive(Debug, Default)]
pub struct Owners {
    replica_sets: BTreeMap<(String, String), Option<(String, String)>>,
}

impl Owners {
    /// The owner of `pod` in `namespace`. A ReplicaSet is asked for its Deployment (one read per
    /// ReplicaSet); when it cannot be read, the `<deployment>-<hash>` naming convention answers.
    pub fn of(&mut self, pod: &Value, namespace: &str) -> Owner {
        let owner = |kind: &str, name: &str| Owner {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        let refs = pod["metadata"]["ownerReferences"].as_array();
        let controller = refs.and_then(|r| r.iter().find(|o| o["controller"] == true).or_else(|| r.first()));
        let Some(c) = controller else {
            return owner("Pod", pod["metadata"]["name"].as_str().unwrap_or("?"));
        };
        let (kind, name) = (c["kind"].as_str().unwrap_or("?"), c["name"].as_str().unwrap_or("?"));
        if kind != "ReplicaSet" {
            return owner(kind, name);
        }
        let key = (namespace.to_string(), name.to_string());
        let parent = self
            .replica_sets
            .entry(key)
            .or_insert_with(|| {
                let rs = kube::get("apps/v1", "ReplicaSet", Some(namespace), name).ok()?;
                let d = rs["metadata"]["ownerReferences"].as_array()?.first()?.clone();
                Some((d["kind"].as_str()?.to_string(), d["name"].as_str()?.to_string()))
            })
            .clone();
        match parent {
            Some((k, n)) => owner(&k, &n),
            None => owner("Deployment", name.rsplit_once('-').map(|(b, _)| b).unwrap_or(name)),
        }
    }
}

/// One pod, examined.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnosis {
    /// The pod's name.
    pub name: String,
    /// Its phase.
    pub phase: String,
    /// All its containers ready.
    pub ready: bool,
    /// The node it runs on.
    pub node: Option<String>,
    /// Its revision: `pod-template-hash` or `controller-revision-hash`.
    pub revision: Option<String>,
    /// The cause, if one is recognised.
    pub cause: Option<Cause>,
    /// One line per container: restarts, state, last state.
    pub containers: Vec<String>,
    /// The container whose log tells most (the most restarted), and whether to read its
    /// previous instance.
    pub log_from: Option<(String, bool)>,
}

/// Reads pod `namespace/name` and its events and diagnoses it; `None` when it does not exist.
pub fn diagnose(namespace: &str, name: &str) -> Result<Option<(Diagnosis, Value)>, KubeError> {
    let Some(pod) = kube::get_opt("v1", "Pod", Some(namespace), name)? else {
        return Ok(None);
    };
    Ok(Some((diagnose_object(&pod)?, pod)))
}

/// Diagnoses a pod already read (from a list, say); reads its events.
pub fn diagnose_object(pod: &Value) -> Result<Diagnosis, KubeError> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let name = pod["metadata"]["name"].as_str().unwrap_or("?");
    let events = kube::events(Some(ns), "Pod", name)?;
    Ok(describe(pod, &events))
}

/// The diagnosis of a pod and its events, without reading anything.
pub fn describe(pod: &Value, events: &[Value]) -> Diagnosis {
    let statuses = pod["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let containers = statuses
        .iter()
        .map(|s| {
            format!(
                "{}: restarts {}, state {}, last state {}",
                s["name"].as_str().unwrap_or("?"),
                s["restartCount"].as_i64().unwrap_or(0),
                describe_state(&s["state"]),
                describe_state(&s["lastState"])
            )
        })
        .collect();
    let log_from = statuses
        .iter()
        .max_by_key(|s| s["restartCount"].as_i64().unwrap_or(0))
        .and_then(|s| {
            Some((
                s["name"].as_str()?.to_string(),
                s["restartCount"].as_i64().unwrap_or(0) > 0,
            ))
        });
    let labels = &pod["metadata"]["labels"];
    let ready = !statuses.is_empty() && statuses.iter().all(|s| s["ready"] == true);
    Diagnosis {
        name: pod["metadata"]["name"].as_str().unwrap_or("?").to_string(),
        phase: pod["status"]["phase"].as_str().unwrap_or("Unknown").to_string(),
        ready,
        node: pod["spec"]["nodeName"].as_str().map(str::to_string),
        revision: labels["pod-template-hash"]
            .as_str()
            .or(labels["controller-revision-hash"].as_str())
            .map(str::to_string),
        cause: classify(pod, events),
        containers,
        log_from,
    }
}

/// The last config `log_tail_lines` (default 20) lines of `container` in pod `namespace/pod`
/// (`previous`: its last terminated instance), as evidence; `None` when the log is empty or
/// cannot be read (said in the recipe's log).
pub fn log_tail(namespace: &str, pod: &str, container: &str, previous: bool) -> Option<Finding> {
    let tail = crate::config::parse_or("log_tail_lines", 20u32);
    match kube::pod_logs(namespace, pod, Some(container), Some(tail), previous) {
        Ok(log) if !log.trim().is_empty() => Some(Finding::info(format!("log tail of {pod}/{container}"), log)),
        Ok(_) => None,
        Err(e) => {
            crate::log::warn(&format!("no log for {namespace}/{pod}/{container}: {e}"));
            None
        }
    }
}

/// Why a drain leaves this pod where it is (`DaemonSet pod`, `mirror pod`, `finished`), or
/// `None`: a drain evicts it. What `drain-node` does, and what `node-health` says it would do.
pub fn drain_skip(pod: &Value) -> Option<&'static str> {
    let owners = pod["metadata"]["ownerReferences"].as_array();
    if owners.is_some_and(|o| o.iter().any(|r| r["kind"] == "DaemonSet" && r["controller"] == true)) {
        return Some("DaemonSet pod");
    }
    if pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string() {
        return Some("mirror pod");
    }
    if matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed")) {
        return Some("finished");
    }
    None
}

/// `terminated (OOMKilled, exit 137)`, `waiting (CrashLoopBackOff)`, `running`, `none`.
pub fn describe_state(state: &Value) -> String {
    let Some((phase, detail)) = state.as_object().and_then(|o| o.iter().next()) else {
        return "none".into();
    };
    match detail["reason"].as_str() {
        Some(reason) => match detail["exitCode"].as_i64() {
            Some(code) => format!("{phase} ({reason}, exit {code})"),
            None => format!("{phase} ({reason})"),
        },
        None => phase.clone(),
    }
}

/// The most specific cause the pod's status and events show, or `None`.
pub fn classify(pod: &Value, events: &[Value]) -> Option<Cause> {
    let status = &pod["status"];
    if status["reason"] == "Evicted" {
        return Some(Cause::Evicted {
            message: status["message"].as_str().unwrap_or("evicted").to_string(),
            node: pod["spec"]["nodeName"].as_str().map(str::to_string),
        });
    }
    let statuses = status["containerStatuses"].as_array().cloned().unwrap_or_default();
    let inits = status["initContainerStatuses"].as_array().cloned().unwrap_or_default();
    let all = || inits.iter().chain(statuses.iter());
    if let Some(c) = all().find_map(|s| oom(pod, s)) {
        return Some(c);
    }
    if let Some(c) = all().find_map(|s| waiting(s, events)) {
        return Some(c);
    }
    if let Some(c) = mount_failure(events) {
        return Some(c);
    }
    if let Some(c) = inits.iter().find_map(|s| {
        crashed(s).map(|(container, exit_code, reason)| Cause::InitContainer {
            container,
            exit_code,
            reason,
        })
    }) {
        return Some(c);
    }
    if let Some(c) = unschedulable(pod, events) {
        return Some(c);
    }
    if let Some(e) = events.iter().rev().find(|e| e["reason"] == "Unhealthy") {
        return Some(Cause::FailingProbe {
            detail: e["message"].as_str().unwrap_or("probe failed").to_string(),
        });
    }
    statuses.iter().find_map(|s| {
        crashed(s).map(|(container, exit_code, reason)| Cause::AppCrash {
            container,
            exit_code,
            reason,
        })
    })
}

fn oom(pod: &Value, s: &Value) -> Option<Cause> {
    let name = s["name"].as_str().unwrap_or("?");
    let killed = [&s["state"]["terminated"], &s["lastState"]["terminated"]]
        .iter()
        .any(|t| t["reason"] == "OOMKilled");
    if !killed {
        return None;
    }
    let limit = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| pod["spec"][k].as_array())
        .flatten()
        .find(|c| c["name"] == name)
        .and_then(|c| c["resources"]["limits"]["memory"].as_str().map(str::to_string));
    Some(Cause::OomKilled {
        container: name.to_string(),
        limit,
    })
}

fn waiting(s: &Value, events: &[Value]) -> Option<Cause> {
    let container = s["name"].as_str().unwrap_or("?").to_string();
    let w = &s["state"]["waiting"];
    let reason = w["reason"].as_str().unwrap_or("");
    let message = w["message"].as_str().unwrap_or("");
    match reason {
        "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull" => {
            let image = s["image"].as_str().unwrap_or("?").to_string();
            // The back-off message only repeats the image; the pull's own error is in the events.
            let said = events
                .iter()
                .rev()
                .filter(|e| e["reason"] == "Failed")
                .filter_map(|e| e["message"].as_str())
                .find(|m| m.contains("ull image") || m.contains(&image))
                .unwrap_or(message);
            Some(Cause::ImagePull {
                container,
                image,
                reason: reason.to_string(),
                message: said.to_string(),
            })
        }
        "CreateContainerConfigError" | "CreateContainerError" => Some(Cause::ConfigError {
            container,
            detail: if message.is_empty() {
                reason.to_string()
            } else {
                message.to_string()
            },
        }),
        _ => None,
    }
}

fn mount_failure(events: &[Value]) -> Option<Cause> {
    let e = events
        .iter()
        .rev()
        .find(|e| matches!(e["reason"].as_str(), Some("FailedMount" | "FailedAttachVolume")))?;
    let detail = e["message"].as_str().unwrap_or("").to_string();
    // `MountVolume.SetUp failed for volume "config" : configmap "web-config" not found`
    let volume = detail
        .split_once("for volume \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(v, _)| v.to_string())
        .or_else(|| {
            // `Unable to attach or mount volumes: unmounted volumes=[data], …`
            let (_, rest) = detail.split_once("unmounted volumes=[")?;
            rest.split_once(']').map(|(v, _)| v.to_string())
        });
    Some(Cause::Mount { volume, detail })
}

fn crashed(s: &Value) -> Option<(String, i64, String)> {
    let t = if s["state"]["terminated"].is_object() {
        &s["state"]["terminated"]
    } else {
        &s["lastState"]["terminated"]
    };
    let code = t["exitCode"].as_i64()?;
    (code != 0).then(|| {
        (
            s["name"].as_str().unwrap_or("?").to_string(),
            code,
            t["reason"].as_str().unwrap_or("Error").to_string(),
        )
    })
}

fn unschedulable(pod: &Value, events: &[Value]) -> Option<Cause> {
    let from_condition = pod["status"]["conditions"].as_array().and_then(|cs| {
        cs.iter()
            .find(|c| c["type"] == "PodScheduled" && c["status"] == "False")
            .map(|c| c["message"].as_str().or(c["reason"].as_str()).unwrap_or("").to_string())
    });
    let from_event = || {
        events
            .iter()
            .rev()
            .find(|e| e["reason"] == "FailedScheduling")
            .and_then(|e| e["message"].as_str().map(str::to_string))
    };
    from_condition
        .filter(|m| !m.is_empty())
        .or_else(from_event)
        .map(|message| Cause::Unschedulable { message })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: Value) -> Value {
        json!({
            "metadata": {"name": "api-1", "namespace": "shop", "labels": {"pod-template-hash": "abc"}},
            "spec": {"containers": [{"name": "api", "resources": {"limits": {"memory": "128Mi"}}}], "nodeName": "n1"},
            "status": status,
        })
    }

    fn event(reason: &str, message: &str) -> Value {
        json!({"reason": reason, "message": message})
    }

    #[test]
    fn names_each_cause_in_the_kubelets_words() {
        let image = pod(
            json!({"containerStatuses": [{"name": "api", "image": "registry.example.com/shop/api:v2",
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]}),
        );
        let pulled = event(
            "Failed",
            "Failed to pull image \"registry.example.com/shop/api:v2\": manifest unknown",
        );
        let c = classify(&image, &[pulled]).unwrap();
        assert_eq!(
            c.headline(),
            "container api cannot pull image registry.example.com/shop/api:v2 from registry.example.com (ImagePullBackOff): Failed to pull image \"registry.example.com/shop/api:v2\": manifest unknown"
        );
        let mount = event(
            "FailedMount",
            "MountVolume.SetUp failed for volume \"config\" : configmap \"web-config\" not found",
        );
        let c = classify(&pod(json!({"phase": "Pending"})), &[mount]).unwrap();
        assert!(
            matches!(&c, Cause::Mount { volume: Some(v), .. } if v == "config"),
            "{c:?}"
        );
        let init = pod(json!({"initContainerStatuses": [{"name": "migrate",
            "lastState": {"terminated": {"reason": "Error", "exitCode": 3}}}]}));
        assert_eq!(
            classify(&init, &[]).unwrap().headline(),
            "init container migrate exits with code 3 (Error)"
        );
        let pending = pod(
            json!({"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient memory."}]}),
        );
        assert_eq!(
            classify(&pending, &[]).unwrap().headline(),
            "unschedulable: 0/3 nodes are available: 3 Insufficient memory."
        );
        let evicted =
            pod(json!({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."}));
        assert!(matches!(classify(&evicted, &[]), Some(Cause::Evicted { node: Some(n), .. }) if n == "n1"));
        let config = pod(json!({"containerStatuses": [{"name": "api",
            "state": {"waiting": {"reason": "CreateContainerConfigError", "message": "secret \"db\" not found"}}}]}));
        assert_eq!(
            classify(&config, &[]).unwrap().headline(),
            "container api cannot start: secret \"db\" not found"
        );
        assert_eq!(classify(&pod(json!({"phase": "Running"})), &[]), None);
    }

    #[test]
    fn remedies_name_bundled_actions_or_say_why_none() {
        let deploy = Owner {
            kind: "Deployment".into(),
            namespace: "shop".into(),
            name: "api".into(),
        };
        let oom = Cause::OomKilled {
            container: "api".into(),
            limit: Some("128Mi".into()),
        };
        let Remedy::Actions(a) = oom.remedy(&deploy) else {
            panic!()
        };
        assert_eq!(a[0].0, "raise-memory-limit");
        assert_eq!(a[0].1["memory"], "256Mi");
        let bare = Owner {
            kind: "Pod".into(),
            ..deploy.clone()
        };
        assert!(matches!(oom.remedy(&bare), Remedy::None(why) if why.contains("no Deployment")));
        let full = Cause::Unschedulable {
            message: "0/1 nodes".into(),
        };
        assert!(matches!(full.remedy(&deploy), Remedy::None(_)));
        assert_eq!(registry("nginx:1"), "docker.io");
        assert_eq!(registry("localhost:5000/x"), "localhost:5000");
        assert_eq!(double_quantity("1Gi").as_deref(), Some("2Gi"));
        assert_eq!(double_quantity("x"), None);
    }

    #[test]
    fn describes_the_pod() {
        let p = pod(
            json!({"phase": "Running", "containerStatuses": [{"name": "api", "ready": false, "restartCount": 2,
            "state": {"running": {}}, "lastState": {"terminated": {"reason": "Error", "exitCode": 1}}}]}),
        );
        let d = describe(&p, &[]);
        assert_eq!(d.revision.as_deref(), Some("abc"));
        assert!(!d.ready);
        assert_eq!(d.log_from, Some(("api".into(), true)));
        assert_eq!(
            d.containers[0],
            "api: restarts 2, state running, last state terminated (Error, exit 1)"
        );
    }
}
