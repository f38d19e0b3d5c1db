//! The recipe catalog: the recipes this host may run, the ones that did not load and why, and,
//! in a cluster, the ConfigMap each came from. Loaders write it whole (the recipe directory at
//! start, the ConfigMap [`crate::registry`] on every change); the reconciler, the Job executor
//! and `/api/status` read it. Runs already started keep the recipe (and digest) they were given.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::recipe::Recipe;

/// A recipe that did not load.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecipeErrorInfo {
    /// File or ConfigMap.
    pub origin: String,
    /// Why.
    pub error: String,
}

/// One loaded recipe, as `/api/status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecipeInfo {
    /// Name.
    pub name: String,
    /// `debug` or `action`.
    pub kind: String,
    /// Version.
    pub version: String,
    /// Pinned digest.
    pub digest: String,
    /// Matchers (debug) or action names (action).
    pub handles: Vec<String>,
    /// One line for humans, from the manifest.
    #[serde(default)]
    pub description: String,
    /// What it was granted (everything else is denied).
    #[serde(default)]
    pub capabilities: crate::manifest::Capabilities,
    /// Its limits.
    #[serde(default)]
    pub limits: crate::manifest::Limits,
}

/// Where a loaded recipe came from in the cluster (what its Jobs mount and are owned by).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// ConfigMap name.
    pub configmap: String,
    /// ConfigMap uid.
    pub uid: String,
}

/// One consistent view of the catalog.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The recipes that loaded.
    pub recipes: Arc<Vec<Recipe>>,
    /// The ones that did not, with why.
    pub errors: Vec<RecipeErrorInfo>,
    /// Recipe name → its ConfigMap (cluster registry only).
    pub sources: HashMap<String, Registered>,
}

/// The recipes, replaced whole by whoever loads them.
#[derive(Debug, Default)]
pub struct Catalog {
    now: RwLock<Arc<Snapshot>>,
}

impl Catalog {
    /// A catalog holding `recipes` and the `errors` of those that did not load.
    pub fn new(recipes: Vec<Recipe>, errors: Vec<RecipeErrorInfo>) -> Arc<Self> {
        let c = Arc::new(Catalog::default());
        c.replace(recipes, errors, HashMap::new());
        c
    }

    /// Replace everything at once (a reader sees the old catalog or the new one, never a mix).
    /// Every action a debugger declares it may suggest and no actor implements is logged.
    pub fn replace(&self, recipes: Vec<Recipe>, errors: Vec<RecipeErrorInfo>, sources: HashMap<String, Registered>) {
        for d in dangling(&recipes) {
            tracing::warn!(action = %d.action, suggested_by = ?d.suggested_by, "no installed actor implements an action a debugger may suggest; its suggestions get no Approve button");
        }
        *self.now.write() = Arc::new(Snapshot {
            recipes: Arc::new(recipes),
            errors,
            sources,
        });
    }

    /// The actions debuggers may suggest (their manifests' `suggests`) that no loaded actor
    /// implements.
    pub fn dangling(&self) -> Vec<Dangling> {
        dangling(&self.snapshot().recipes)
    }

    /// The catalog as it is now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.now.read().clone()
    }

    /// The loaded recipes.
    pub fn recipes(&self) -> Arc<Vec<Recipe>> {
        self.now.read().recipes.clone()
    }

    /// The ConfigMap recipe `name` came from.
    pub fn source(&self, name: &str) -> Option<Registered> {
        self.now.read().sources.get(name).cloned()
    }

    /// Every recipe as `/api/status` lists it, and the load errors.
    pub fn describe(&self) -> (Vec<RecipeInfo>, Vec<RecipeErrorInfo>) {
        let s = self.snapshot();
        let infos = s
            .recipes
            .iter()
            .map(|r| RecipeInfo {
                name: r.name().into(),
                kind: r.manifest.kind.to_string(),
                version: r.manifest.version.clone(),
                digest: r.digest.to_string(),
                handles: if r.manifest.kind == crate::manifest::Kind::Debug {
                    r.manifest.matchers.clone()
                } else {
                    r.manifest.actions.clone()
                },
                description: r.manifest.description.clone(),
                capabilities: r.manifest.capabilities.clone(),
                limits: r.manifest.limits,
            })
            .collect();
        (infos, s.errors.clone())
    }
}

/// An action a debugger may suggest that no loaded actor implements (on `/api/status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Dangling {
    /// The action name.
    pub action: String,
    /// The debuggers that declare they may suggest it.
    pub suggested_by: Vec<String>,
}

/// Every action some debugger in `recipes` declares in `suggests` that no actor in `recipes`
/// implements, in name order.
pub fn dangling(recipes: &[Recipe]) -> Vec<Dangling> {
    let mut out: Vec<Dangling> = Vec::new();
    for r in recipes {
        for action in &r.manifest.suggests {
            if recipes.iter().any(|a| a.implements(action)) {
                continue;
            }
            match out.iter_mut().find(|d| &d.action == action) {
                Some(d) => d.suggested_by.push(r.name().to_string()),
                None => out.push(Dangling {
                    action: action.clone(),
                    suggested_by: vec![r.name().to_string()],
                }),
            }
        }
    }
    out.sort_by(|a, b| a.action.cmp(&b.action));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::manifest::Manifest;

    fn recipe(toml: &str) -> Recipe {
        let bytes = toml.as_bytes().to_vec();
        let text = format!("{toml}\ndigest = \"{}\"\n", Digest::of(&bytes));
        Recipe::new(Manifest::from_toml(&text, "test").unwrap(), bytes, "test").unwrap()
    }

    #[test]
    fn declared_suggestions_without_an_actor_are_dangling() {
        let debug = |name: &str, suggests: &str| {
            recipe(&format!(
                "name = \"{name}\"\nkind = \"debug\"\nversion = \"1\"\nmatchers = ['alertname=\"X\"']\nsuggests = [{suggests}]"
            ))
        };
        let actor =
            recipe("name = \"restarter\"\nkind = \"action\"\nversion = \"1\"\nactions = [\"restart-workload\"]");
        let recipes = vec![
            debug("a", "\"restart-workload\", \"rollback-deployment\""),
            debug("b", "\"rollback-deployment\", \"open-ticket\""),
            actor,
        ];
        let d = dangling(&recipes);
        assert_eq!(
            d,
            vec![
                Dangling {
                    action: "open-ticket".into(),
                    suggested_by: vec!["b".into()]
                },
                Dangling {
                    action: "rollback-deployment".into(),
                    suggested_by: vec!["a".into(), "b".into()]
                },
            ]
        );
        let catalog = Catalog::new(recipes, vec![]);
        assert_eq!(catalog.dangling().len(), 2);
    }
}
