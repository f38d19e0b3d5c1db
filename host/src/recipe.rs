//! Loaded recipes: a manifest, the component bytes and where they came from, and the set the
//! host routes alerts and actions with.

use std::path::Path;
use std::sync::Arc;

use crate::Error;
use crate::digest::Digest;
use crate::manifest::{Kind, Manifest};
use crate::matcher::Matchers;
use crate::sandbox::{RunInput, RunJob};

/// A recipe the host can run.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// The manifest.
    pub manifest: Manifest,
    /// The digest pinned by the manifest (checked against the bytes at load and at every run).
    pub digest: Digest,
    /// The component bytes.
    pub bytes: Arc<[u8]>,
    /// Where it came from (file or ConfigMap).
    pub origin: String,
    matchers: Matchers,
}

impl Recipe {
    /// A recipe from a manifest and bytes. The manifest must pin a digest and the bytes must
    /// match it: a recipe whose bytes are not what its manifest says is never loaded.
    pub fn new(manifest: Manifest, bytes: Vec<u8>, origin: &str) -> Result<Self, Error> {
        let err = |message: String| Error::Recipe {
            name: manifest.name.clone(),
            message,
        };
        let digest = manifest.digest.ok_or_else(|| {
            err(format!(
                "{origin}: the manifest pins no digest; run `euphrosyne recipe build`"
            ))
        })?;
        if let Err(actual) = digest.verify(&bytes) {
            return Err(err(format!(
                "{origin}: the component is {actual}, the manifest pins {digest}; rebuild and re-pack"
            )));
        }
        let matchers = manifest.parsed_matchers();
        Ok(Recipe {
            manifest,
            digest,
            bytes: bytes.into(),
            origin: origin.into(),
            matchers,
        })
    }

    /// The recipe's name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Does this debugger handle an alert with these labels?
    pub fn selects(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.manifest.kind == Kind::Debug && self.matchers.matches(labels)
    }

    /// Does this actor implement `action`?
    pub fn implements(&self, action: &str) -> bool {
        self.manifest.kind == Kind::Action && self.manifest.actions.iter().any(|a| a == action)
    }

    /// A run of this recipe, pinned to its current digest.
    pub fn job(&self, run_id: String, input: RunInput) -> RunJob {
        RunJob {
            run_id,
            recipe: self.manifest.name.clone(),
            digest: self.digest,
            bytes: self.bytes.clone(),
            capabilities: self.manifest.capabilities.clone(),
            limits: self.manifest.limits,
            config: self.manifest.config.clone(),
            input,
        }
    }
}

/// What [`load_dir`] found: the recipes that loaded, and the files that did not with why.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Good recipes, in file-name order.
    pub recipes: Vec<Recipe>,
    /// `(file, error)` for each file that did not load.
    pub errors: Vec<(String, Error)>,
}

/// Load every packed recipe (`*.yaml`, `*.yml`, `*.json` ConfigMaps) in `dir`. Bad ones are
/// returned beside the good, by file name, never fatal.
pub fn load_dir(dir: &Path) -> Result<Loaded, Error> {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext, "yaml" | "yml" | "json") {
            continue;
        }
        let origin = path.display().to_string();
        let loaded = std::fs::read_to_string(&path)
            .map_err(|e| Error::io(&path, e))
            .and_then(|text| crate::pack::unpack(&text, &origin))
            .and_then(|(m, bytes)| Recipe::new(m, bytes, &origin));
        match loaded {
            Ok(r) if good.iter().any(|g: &Recipe| g.name() == r.name()) => bad.push((
                origin,
                Error::Recipe {
                    name: r.name().into(),
                    message: "duplicate recipe name; the first one loaded wins".into(),
                },
            )),
            Ok(r) => good.push(r),
            Err(e) => bad.push((origin, e)),
        }
    }
    Ok(Loaded {
        recipes: good,
        errors: bad,
    })
}
