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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecipeErrorInfo {
    /// File or ConfigMap.
    pub origin: String,
    /// Why.
    pub error: String,
}

/// One loaded recipe, as `/api/status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    pub fn replace(&self, recipes: Vec<Recipe>, errors: Vec<RecipeErrorInfo>, sources: HashMap<String, Registered>) {
        *self.now.write() = Arc::new(Snapshot {
            recipes: Arc::new(recipes),
            errors,
            sources,
        });
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
            })
            .collect();
        (infos, s.errors.clone())
    }
}
