//! The recipe registry in a cluster: every ConfigMap labelled `euphrosyne.io/recipe` in the
//! recipe namespace, watched (kube-runtime's watcher, with backoff), each parsed, decompressed and
//! hashed exactly like a packed file. A bad one is skipped and reported — in the log, on
//! `/api/status` (`recipe_errors`), and as a `Warning` Event on the ConfigMap itself; adding,
//! changing or deleting a ConfigMap takes effect at once, without a restart. Runs already
//! started keep the digest they were pinned to: a ConfigMap changed under a running Job makes that
//! run end `digest-mismatch`, never run other bytes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};

use crate::catalog::{Catalog, RecipeErrorInfo, Registered};
use crate::pack::RECIPE_LABEL;
use crate::recipe::Recipe;

/// What [`register`] makes of the ConfigMaps: the recipes, the ones skipped as `/api/status`
/// shows them, where each recipe came from, and the skipped ConfigMaps with why (to report on).
pub struct Registration {
    /// The recipes that loaded.
    pub recipes: Vec<Recipe>,
    /// The ones skipped, as `/api/status` shows them.
    pub errors: Vec<RecipeErrorInfo>,
    /// Recipe name → its ConfigMap.
    pub sources: HashMap<String, Registered>,
    /// The skipped ConfigMaps with why.
    pub skipped: Vec<(ConfigMap, String)>,
}

impl Registration {
    /// Write it into `catalog` (whole, at once); the skipped ConfigMaps are returned.
    pub fn install(self, catalog: &Catalog) -> Vec<(ConfigMap, String)> {
        catalog.replace(self.recipes, self.errors, self.sources);
        self.skipped
    }
}

/// Parse every ConfigMap into recipes, each with the ConfigMap it came from.
pub fn register(namespace: &str, configmaps: &BTreeMap<String, ConfigMap>) -> Registration {
    let (good, bad) = load(namespace, configmaps);
    let mut sources = HashMap::new();
    let recipes = good
        .into_iter()
        .map(|(r, reg)| {
            sources.insert(r.name().to_string(), reg);
            r
        })
        .collect();
    let errors = bad
        .iter()
        .map(|(cm, e)| RecipeErrorInfo {
            origin: format!("configmap {namespace}/{}", cm.metadata.name.clone().unwrap_or_default()),
            error: e.clone(),
        })
        .collect();
    Registration {
        recipes,
        errors,
        sources,
        skipped: bad,
    }
}

/// The recipes with their source, and the ConfigMaps skipped with why.
type Parsed = (Vec<(Recipe, Registered)>, Vec<(ConfigMap, String)>);

/// Parse every ConfigMap into recipes; the bad ones with why (and the ConfigMap to report on).
fn load(namespace: &str, configmaps: &BTreeMap<String, ConfigMap>) -> Parsed {
    let mut good: Vec<(Recipe, Registered)> = Vec::new();
    let mut bad = Vec::new();
    for (name, cm) in configmaps {
        let origin = format!("configmap {namespace}/{name}");
        let parsed = serde_json::to_value(cm)
            .and_then(serde_json::from_value::<crate::pack::ConfigMap>)
            .map_err(|e| format!("{origin}: not a ConfigMap we can read: {e}"))
            .and_then(|packed| crate::pack::unpack_configmap(&packed, &origin).map_err(|e| e.to_string()))
            .and_then(|(m, bytes)| Recipe::new(m, bytes, &origin).map_err(|e| e.to_string()));
        match parsed {
            Ok(r) if good.iter().any(|(g, _)| g.name() == r.name()) => bad.push((
                cm.clone(),
                format!(
                    "{origin}: recipe `{}` is already registered by another ConfigMap; this one is skipped",
                    r.name()
                ),
            )),
            Ok(r) => {
                let reg = Registered {
                    configmap: name.clone(),
                    uid: cm.metadata.uid.clone().unwrap_or_default(),
                };
                good.push((r, reg));
            }
            Err(e) => bad.push((cm.clone(), e)),
        }
    }
    (good, bad)
}

/// Watch the recipe ConfigMaps of `namespace` and keep `catalog` in step with them, for as long
/// as the process runs.
pub fn spawn(client: kube::Client, namespace: String, catalog: Arc<Catalog>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
        let cfg = watcher::Config::default().labels(RECIPE_LABEL);
        let mut events = watcher(api, cfg).default_backoff().boxed();
        let mut current: BTreeMap<String, ConfigMap> = BTreeMap::new();
        let mut listing: Option<BTreeMap<String, ConfigMap>> = None;
        let mut reported: HashSet<(String, String)> = HashSet::new();
        while let Some(event) = events.next().await {
            let changed = match event {
                Ok(watcher::Event::Init) => {
                    listing = Some(BTreeMap::new());
                    false
                }
                Ok(watcher::Event::InitApply(cm)) => {
                    if let Some(l) = listing.as_mut() {
                        l.insert(cm.metadata.name.clone().unwrap_or_default(), cm);
                    }
                    false
                }
                Ok(watcher::Event::InitDone) => {
                    current = listing.take().unwrap_or_default();
                    true
                }
                Ok(watcher::Event::Apply(cm)) => {
                    current.insert(cm.metadata.name.clone().unwrap_or_default(), cm);
                    true
                }
                Ok(watcher::Event::Delete(cm)) => {
                    current.remove(&cm.metadata.name.clone().unwrap_or_default());
                    true
                }
                Err(e) => {
                    tracing::warn!(namespace = %namespace, "watching recipe ConfigMaps: {e}; retrying");
                    false
                }
            };
            if !changed {
                continue;
            }
            let registration = register(&namespace, &current);
            let names: Vec<String> = registration
                .recipes
                .iter()
                .map(|r| format!("{} {}", r.name(), r.digest))
                .collect();
            let bad = registration.install(&catalog);
            tracing::info!(namespace = %namespace, recipes = ?names, skipped = bad.len(), "recipes registered");
            for (cm, why) in bad {
                let key = (
                    cm.metadata.name.clone().unwrap_or_default(),
                    cm.metadata.resource_version.clone().unwrap_or_default(),
                );
                if reported.insert(key) {
                    tracing::warn!(namespace = %namespace, "recipe skipped: {why}");
                    report(&client, &namespace, &cm, &why).await;
                }
            }
        }
    })
}

/// A `Warning` Event on the ConfigMap: `kubectl describe configmap` shows why it was skipped.
async fn report(client: &kube::Client, namespace: &str, cm: &ConfigMap, why: &str) {
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now());
    let name = cm.metadata.name.clone().unwrap_or_default();
    let event = k8s_openapi::api::core::v1::Event {
        metadata: kube::api::ObjectMeta {
            generate_name: Some(format!("{name}.")),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        involved_object: k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
            name: Some(name),
            namespace: Some(namespace.into()),
            uid: cm.metadata.uid.clone(),
            resource_version: cm.metadata.resource_version.clone(),
            ..Default::default()
        },
        reason: Some("InvalidRecipe".into()),
        message: Some(why.chars().take(1024).collect()),
        type_: Some("Warning".into()),
        source: Some(k8s_openapi::api::core::v1::EventSource {
            component: Some("euphrosyne".into()),
            ..Default::default()
        }),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        ..Default::default()
    };
    let api: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), namespace);
    if let Err(e) = api.create(&Default::default(), &event).await {
        tracing::warn!(namespace = %namespace, "could not record an Event for a skipped recipe: {e}");
    }
}
