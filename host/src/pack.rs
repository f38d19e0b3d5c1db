//! Packed recipes: one ConfigMap per recipe, holding the manifest (`data["recipe.toml"]`) and
//! the component (`binaryData["component.wasm"]`, or gzip-compressed as
//! `binaryData["component.wasm.gz"]` when the plain bytes would not fit). Labelled
//! `euphrosyne.io/recipe: "true"` so the host's watcher selects it.
//!
//! Kubernetes refuses objects over 1 MiB; [`pack`] compresses when needed and refuses, with the
//! sizes, what still does not fit.

use std::io::{Read, Write};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::digest::Digest;
use crate::manifest::Manifest;

/// The label that marks recipe ConfigMaps.
pub const RECIPE_LABEL: &str = "euphrosyne.io/recipe";
/// Kubernetes' object size limit.
pub const MAX_OBJECT_BYTES: usize = 1024 * 1024;
/// Room left for metadata the API server adds (managedFields, resourceVersion, …).
const HEADROOM: usize = 16 * 1024;
/// The largest component a packed recipe may decompress to (a bound against gzip bombs).
pub const MAX_COMPONENT_BYTES: usize = 64 * 1024 * 1024;

/// A ConfigMap, just the fields we write and read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMap {
    /// `v1`.
    pub api_version: String,
    /// `ConfigMap`.
    pub kind: String,
    /// Name, labels, annotations.
    pub metadata: Metadata,
    /// Text entries.
    #[serde(default)]
    pub data: std::collections::BTreeMap<String, String>,
    /// Binary entries, base64 in YAML/JSON.
    #[serde(default)]
    pub binary_data: std::collections::BTreeMap<String, String>,
}

/// ConfigMap metadata.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Metadata {
    /// Name.
    pub name: String,
    /// Namespace (omitted when packing: manifests are namespace-agnostic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Annotations.
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// The ConfigMap name for recipe `name`.
pub fn configmap_name(name: &str) -> String {
    format!("recipe-{name}")
}

/// Pack `manifest` and `component` into ConfigMap YAML. The manifest's digest must be set and
/// match the bytes.
pub fn pack(manifest: &Manifest, component: &[u8]) -> Result<String, Error> {
    let err = |message: String| Error::Recipe {
        name: manifest.name.clone(),
        message,
    };
    let digest = Digest::of(component);
    match manifest.digest {
        Some(d) if d == digest => {}
        Some(d) => {
            return Err(err(format!(
                "the manifest pins {d} but the component is {digest}; run `euphrosyne recipe build` again"
            )));
        }
        None => {
            return Err(err(
                "the manifest has no digest; run `euphrosyne recipe build` first".into()
            ));
        }
    }
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut cm = ConfigMap {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        metadata: Metadata {
            name: configmap_name(&manifest.name),
            namespace: None,
            labels: [
                (RECIPE_LABEL.to_string(), "true".to_string()),
                ("euphrosyne.io/kind".into(), manifest.kind.to_string()),
                ("app.kubernetes.io/part-of".into(), "euphrosyne".into()),
            ]
            .into(),
            annotations: [
                ("euphrosyne.io/digest".to_string(), digest.to_string()),
                ("euphrosyne.io/version".into(), manifest.version.clone()),
            ]
            .into(),
        },
        data: [("recipe.toml".to_string(), manifest.to_toml())].into(),
        binary_data: [("component.wasm".to_string(), b64(component))].into(),
    };
    let mut yaml = serde_yaml::to_string(&cm).map_err(|e| err(e.to_string()))?;
    if yaml.len() + HEADROOM > MAX_OBJECT_BYTES {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(component).map_err(|e| err(e.to_string()))?;
        let compressed = gz.finish().map_err(|e| err(e.to_string()))?;
        cm.binary_data = [("component.wasm.gz".to_string(), b64(&compressed))].into();
        yaml = serde_yaml::to_string(&cm).map_err(|e| err(e.to_string()))?;
        if yaml.len() + HEADROOM > MAX_OBJECT_BYTES {
            return Err(err(format!(
                "does not fit in a ConfigMap even compressed: component {} bytes, gzip {} bytes, ConfigMap {} bytes (+{} headroom) > {} bytes. Build with the recipe profile (opt-level = \"s\", lto, strip) and drop heavy dependencies.",
                component.len(),
                compressed.len(),
                yaml.len(),
                HEADROOM,
                MAX_OBJECT_BYTES
            )));
        }
    }
    Ok(format!(
        "# Packed by `euphrosyne recipe pack`: recipe {} {} ({digest}).\n{yaml}",
        manifest.name, manifest.version
    ))
}

/// Read a packed recipe from ConfigMap YAML or JSON: its manifest and component bytes. The
/// bytes are not verified here; the sandbox verifies them against the pinned digest per run.
pub fn unpack(text: &str, origin: &str) -> Result<(Manifest, Vec<u8>), Error> {
    let cm: ConfigMap = serde_yaml::from_str(text).map_err(|e| Error::Recipe {
        name: origin.into(),
        message: format!("not a ConfigMap: {e}"),
    })?;
    unpack_configmap(&cm, origin)
}

/// [`unpack`] for an already parsed ConfigMap.
pub fn unpack_configmap(cm: &ConfigMap, origin: &str) -> Result<(Manifest, Vec<u8>), Error> {
    let err = |message: String| Error::Recipe {
        name: origin.into(),
        message,
    };
    let toml = cm
        .data
        .get("recipe.toml")
        .ok_or_else(|| err("no data[\"recipe.toml\"]".into()))?;
    let manifest = Manifest::from_toml(toml, origin)?;
    let decode = |s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map_err(|e| err(format!("binaryData is not base64: {e}")))
    };
    let bytes = if let Some(b) = cm.binary_data.get("component.wasm") {
        decode(b)?
    } else if let Some(b) = cm.binary_data.get("component.wasm.gz") {
        gunzip(&decode(b)?).map_err(err)?
    } else {
        return Err(err(
            "no binaryData[\"component.wasm\"] or [\"component.wasm.gz\"]".into()
        ));
    };
    Ok((manifest, bytes))
}

/// Decompress a gzip-compressed component, refusing more than [`MAX_COMPONENT_BYTES`].
fn gunzip(gz: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .take(MAX_COMPONENT_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("component.wasm.gz does not decompress: {e}"))?;
    if out.len() > MAX_COMPONENT_BYTES {
        return Err(format!(
            "component decompresses past {MAX_COMPONENT_BYTES} bytes; refusing"
        ));
    }
    Ok(out)
}

/// The component of a recipe ConfigMap mounted as a volume (each `binaryData` key a file):
/// `component.wasm`, or `component.wasm.gz` decompressed.
pub fn read_mounted(dir: &std::path::Path) -> Result<Vec<u8>, Error> {
    let plain = dir.join("component.wasm");
    if plain.exists() {
        return std::fs::read(&plain).map_err(|e| Error::io(&plain, e));
    }
    let gz = dir.join("component.wasm.gz");
    let bytes = std::fs::read(&gz).map_err(|e| Error::io(&gz, e))?;
    gunzip(&bytes).map_err(|message| Error::Recipe {
        name: dir.display().to_string(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(bytes: &[u8]) -> Manifest {
        let mut m = Manifest::from_toml(
            "name = \"x\"\nkind = \"action\"\nversion = \"1\"\nactions = [\"x\"]\n",
            "t",
        )
        .unwrap();
        m.digest = Some(Digest::of(bytes));
        m
    }

    #[test]
    fn round_trips_plain_and_compressed() {
        let small = vec![7u8; 1000];
        let (m, b) = unpack(&pack(&manifest(&small), &small).unwrap(), "t").unwrap();
        assert_eq!((m.name.as_str(), b), ("x", small));
        // 2 MiB of zeros only fits compressed.
        let big = vec![0u8; 2 << 20];
        let yaml = pack(&manifest(&big), &big).unwrap();
        assert!(yaml.contains("component.wasm.gz") && yaml.len() < MAX_OBJECT_BYTES);
        assert_eq!(unpack(&yaml, "t").unwrap().1.len(), big.len());
    }

    #[test]
    fn refuses_what_cannot_fit_and_unbuilt_manifests() {
        // Incompressible bytes: a xorshift stream.
        let mut x = 0x2545F4914F6CDD1Du64;
        let noise: Vec<u8> = (0..(1 << 20))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let err = pack(&manifest(&noise), &noise).unwrap_err().to_string();
        assert!(err.contains("does not fit") && err.contains("gzip"), "{err}");
        let mut m = manifest(b"a");
        m.digest = None;
        assert!(pack(&m, b"a").unwrap_err().to_string().contains("recipe build"));
        assert!(pack(&manifest(b"a"), b"b").unwrap_err().to_string().contains("pins"));
    }
}
