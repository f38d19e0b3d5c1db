//! Kubernetes grants with scope: which verbs on which resources, in which namespaces.
//!
//! ```toml
//! [capabilities.kubernetes]
//! pods = ["get", "list", "logs"]
//! events = ["list"]
//! deployments = ["get", "patch"]
//! # scope = "cluster"   # default: only the incident's namespace(s); cluster-scoped resources
//! #                     # (nodes, namespaces, …) need it, and the host's policy must allow it
//! ```
//!
//! Resources are the API's plural names from a fixed table ([`KNOWN`]); a call is matched by the
//! group and plural of its apiVersion/kind, so a custom resource that happens to be called
//! `deployments` in another group matches nothing. Some grants hand a recipe the keys to the
//! cluster — Secrets, ServiceAccounts, RBAC, creating Pods or workloads with arbitrary specs,
//! Jobs — and are refused unless the host's [`KubePolicy`] lists them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Kubernetes verb a recipe may be granted on a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KubeVerb {
    /// Read one object.
    Get,
    /// List objects (and, on `events`, the `events` call).
    List,
    /// Read pod logs (`pods` only).
    Logs,
    /// Merge-patch an object.
    Patch,
    /// Create an object.
    Create,
    /// Delete an object.
    Delete,
    /// Evict a pod through `pods/eviction`, which honours PodDisruptionBudgets (`pods` only).
    Evict,
}

impl KubeVerb {
    /// Does this verb change the cluster?
    pub fn writes(self) -> bool {
        matches!(
            self,
            KubeVerb::Patch | KubeVerb::Create | KubeVerb::Delete | KubeVerb::Evict
        )
    }

    /// The lowercase name, as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            KubeVerb::Get => "get",
            KubeVerb::List => "list",
            KubeVerb::Logs => "logs",
            KubeVerb::Patch => "patch",
            KubeVerb::Create => "create",
            KubeVerb::Delete => "delete",
            KubeVerb::Evict => "evict",
        }
    }

    /// The RBAC verbs this verb needs.
    pub fn rbac(self) -> &'static str {
        match self {
            KubeVerb::Logs => "get",
            KubeVerb::Evict => "create",
            v => v.as_str(),
        }
    }
}

impl fmt::Display for KubeVerb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One resource recipes can be granted: plural name, API group, namespaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// Plural, lowercase (`deployments`).
    pub name: &'static str,
    /// API group (`""` for core).
    pub group: &'static str,
    /// Lives in a namespace?
    pub namespaced: bool,
}

const fn r(name: &'static str, group: &'static str, namespaced: bool) -> Resource {
    Resource {
        name,
        group,
        namespaced,
    }
}

/// The resources a manifest may name.
pub const KNOWN: &[Resource] = &[
    r("pods", "", true),
    r("events", "", true),
    r("services", "", true),
    r("endpoints", "", true),
    r("configmaps", "", true),
    r("persistentvolumeclaims", "", true),
    r("resourcequotas", "", true),
    r("secrets", "", true),
    r("serviceaccounts", "", true),
    r("nodes", "", false),
    r("namespaces", "", false),
    r("persistentvolumes", "", false),
    r("deployments", "apps", true),
    r("replicasets", "apps", true),
    r("statefulsets", "apps", true),
    r("controllerrevisions", "apps", true),
    r("daemonsets", "apps", true),
    r("jobs", "batch", true),
    r("cronjobs", "batch", true),
    r("horizontalpodautoscalers", "autoscaling", true),
    r("poddisruptionbudgets", "policy", true),
    r("storageclasses", "storage.k8s.io", false),
    r("ingresses", "networking.k8s.io", true),
    r("networkpolicies", "networking.k8s.io", true),
    r("roles", "rbac.authorization.k8s.io", true),
    r("rolebindings", "rbac.authorization.k8s.io", true),
    r("clusterroles", "rbac.authorization.k8s.io", false),
    r("clusterrolebindings", "rbac.authorization.k8s.io", false),
];

impl Resource {
    /// The known resource called `name`.
    pub fn named(name: &str) -> Option<Resource> {
        KNOWN.iter().copied().find(|r| r.name == name)
    }

    /// The known resource with this group and plural.
    pub fn of(group: &str, plural: &str) -> Option<Resource> {
        KNOWN.iter().copied().find(|r| r.group == group && r.name == plural)
    }

    /// Is `verb` on this resource one that hands a recipe more than its own task: reading
    /// credentials, granting rights, or running arbitrary code as some identity?
    pub fn sensitive(self, verb: KubeVerb) -> bool {
        match self.name {
            "secrets" | "serviceaccounts" | "roles" | "rolebindings" | "clusterroles" | "clusterrolebindings" => true,
            "pods" => matches!(verb, KubeVerb::Create | KubeVerb::Patch),
            "jobs" | "cronjobs" => verb.writes(),
            "deployments" | "replicasets" | "statefulsets" | "daemonsets" => verb == KubeVerb::Create,
            "namespaces" | "nodes" | "persistentvolumes" => matches!(verb, KubeVerb::Create | KubeVerb::Delete),
            _ => false,
        }
    }
}

/// Where a recipe's grants apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scope {
    /// Only the namespaces the incident's alerts name (label `namespace`).
    #[default]
    Namespace,
    /// Every namespace and cluster-scoped resources (the host's policy must allow it).
    Cluster,
}

/// A recipe's Kubernetes grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeGrants {
    /// Where they apply.
    pub scope: Scope,
    /// Verbs per resource.
    pub resources: BTreeMap<String, BTreeSet<KubeVerb>>,
}

impl KubeGrants {
    /// Grants from `(resource, verbs)` pairs (for tests and code that builds manifests).
    pub fn of(scope: Scope, grants: &[(&str, &[KubeVerb])]) -> KubeGrants {
        KubeGrants {
            scope,
            resources: grants
                .iter()
                .map(|(r, v)| (r.to_string(), v.iter().copied().collect()))
                .collect(),
        }
    }

    /// Nothing granted?
    pub fn is_empty(&self) -> bool {
        self.resources.values().all(BTreeSet::is_empty)
    }

    /// Nothing granted and the default scope (what an absent table means).
    pub fn is_default(&self) -> bool {
        *self == KubeGrants::default()
    }

    /// Any verb that changes the cluster?
    pub fn writes(&self) -> bool {
        self.resources.values().flatten().any(|v| v.writes())
    }

    /// Is `verb` granted on `resource`?
    pub fn allows(&self, resource: &str, verb: KubeVerb) -> bool {
        self.resources.get(resource).is_some_and(|v| v.contains(&verb))
    }

    /// Every `resource:verb` granted that the host's policy must allow explicitly.
    pub fn sensitive(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, verbs) in &self.resources {
            if let Some(res) = Resource::named(name) {
                out.extend(
                    verbs
                        .iter()
                        .filter(|v| res.sensitive(**v))
                        .map(|v| format!("{name}:{v}")),
                );
            }
        }
        out
    }

    /// Check the grants themselves (known resources, valid verbs, scope).
    pub fn validate(&self) -> Result<(), String> {
        for (name, verbs) in &self.resources {
            let Some(res) = Resource::named(name) else {
                let known: Vec<&str> = KNOWN.iter().map(|r| r.name).collect();
                return Err(format!(
                    "capabilities.kubernetes: unknown resource `{name}` (write the plural: {})",
                    known.join(", ")
                ));
            };
            for v in [KubeVerb::Logs, KubeVerb::Evict] {
                if verbs.contains(&v) && name != "pods" {
                    return Err(format!(
                        "capabilities.kubernetes: `{v}` is a verb of `pods`, not of `{name}`"
                    ));
                }
            }
            if !res.namespaced && self.scope != Scope::Cluster {
                return Err(format!(
                    "capabilities.kubernetes: `{name}` are cluster-scoped; add scope = \"cluster\" (and the host's [kube] cluster_scope must list this recipe)"
                ));
            }
        }
        Ok(())
    }
}

impl Serialize for KubeGrants {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        if self.scope == Scope::Cluster {
            map.serialize_entry("scope", "cluster")?;
        }
        for (name, verbs) in &self.resources {
            map.serialize_entry(name, verbs)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for KubeGrants {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KubeGrants;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of resources to verbs, e.g. `pods = [\"get\", \"list\", \"logs\"]`")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<KubeGrants, A::Error> {
                Err(de::Error::custom(
                    "capabilities.kubernetes grants verbs per resource now: write `[capabilities.kubernetes]` with lines like `pods = [\"get\", \"list\", \"logs\"]` and `deployments = [\"get\", \"patch\"]` (a bare verb list granted every kind in every namespace)",
                ))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KubeGrants, A::Error> {
                let mut g = KubeGrants::default();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "scope" {
                        g.scope = match map.next_value::<String>()?.as_str() {
                            "namespace" => Scope::Namespace,
                            "cluster" => Scope::Cluster,
                            other => {
                                return Err(de::Error::custom(format!(
                                    "scope `{other}`: write \"namespace\" (the default) or \"cluster\""
                                )));
                            }
                        };
                    } else {
                        let verbs: Vec<KubeVerb> = map.next_value()?;
                        g.resources.entry(key).or_default().extend(verbs);
                    }
                }
                Ok(g)
            }
        }
        d.deserialize_any(V)
    }
}

/// The operator's policy over Kubernetes grants (`[kube]` in the host's configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubePolicy {
    /// Recipes allowed `scope = "cluster"`.
    pub cluster_scope: Vec<String>,
    /// `resource:verb` grants allowed although sensitive (`secrets:get`, `jobs:create`), to
    /// every recipe; `recipe:resource:verb` allows one to one recipe (`rerun-job:jobs:create`).
    pub allow_sensitive: Vec<String>,
}

/// The sensitive grants the bundled recipes need, each allowed to that recipe alone:
/// `rerun-job` creates a Job from a failed Job's own template.
pub const BUNDLED_SENSITIVE: &[&str] = &["rerun-job:jobs:create"];

impl Default for KubePolicy {
    fn default() -> Self {
        KubePolicy {
            // The bundled recipes that need it: nodes, PersistentVolumes and StorageClasses are
            // cluster-scoped, and a drain evicts pods in every namespace.
            cluster_scope: [
                "node-health",
                "cordon-node",
                "drain-node",
                "expand-pvc",
                "persistent-volume",
            ]
            .map(String::from)
            .to_vec(),
            allow_sensitive: BUNDLED_SENSITIVE.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl KubePolicy {
    /// May recipe `name` hold `grants`? `Err` says what is refused and which setting allows it.
    pub fn check(&self, name: &str, grants: &KubeGrants) -> Result<(), String> {
        if grants.scope == Scope::Cluster && !self.cluster_scope.iter().any(|n| n == name) {
            return Err(format!(
                "recipe `{name}` asks for cluster-wide Kubernetes access (scope = \"cluster\"); the host allows it only for recipes its [kube] cluster_scope lists"
            ));
        }
        let refused: Vec<String> = grants
            .sensitive()
            .into_iter()
            .filter(|g| !self.allow_sensitive.contains(g) && !self.allow_sensitive.contains(&format!("{name}:{g}")))
            .collect();
        if !refused.is_empty() {
            return Err(format!(
                "recipe `{name}` asks for {}, which no recipe is granted unless the host's [kube] allow_sensitive lists it (it reads credentials, changes rights or runs arbitrary pods)",
                refused.join(", ")
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
