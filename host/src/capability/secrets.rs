//! Secrets: values the operator provides to the host; a recipe reads only the names its manifest
//! grants. Values never appear in logs or `Debug` output.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use super::Denials;

/// Where secret values come from: files in a directory (one file per secret, named by it — what
/// a mounted Kubernetes Secret looks like) and `EUPHROSYNE_SECRET_<NAME>` environment variables
/// (name upper-cased, `-` as `_`). Files win.
#[derive(Clone, Default)]
pub struct SecretStore {
    values: Arc<BTreeMap<String, String>>,
}

impl fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretStore")
            .field("names", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why a secret was not given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretError {
    /// Not in the manifest's grants.
    NotGranted(String),
    /// Granted but the host has no value.
    NotFound(String),
}

impl SecretStore {
    /// A store of these values.
    pub fn from_map(values: BTreeMap<String, String>) -> Self {
        SecretStore {
            values: Arc::new(values),
        }
    }

    /// This store plus `extra` values (which win).
    pub fn with_values(self, extra: BTreeMap<String, String>) -> Self {
        let mut values = (*self.values).clone();
        values.extend(extra);
        Self::from_map(values)
    }

    /// Load `dir` (if given) and the environment.
    pub fn load(dir: Option<&Path>) -> crate::Result<Self> {
        let mut values = BTreeMap::new();
        for (k, v) in std::env::vars() {
            if let Some(name) = k.strip_prefix("EUPHROSYNE_SECRET_") {
                values.insert(name.to_ascii_lowercase().replace('_', "-"), v);
            }
        }
        if let Some(dir) = dir {
            for entry in std::fs::read_dir(dir).map_err(|e| crate::Error::io(dir, e))? {
                let entry = entry.map_err(|e| crate::Error::io(dir, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                // Kubernetes mounts Secrets with `..data` symlinks; skip the dot entries.
                if name.starts_with('.') || !entry.path().is_file() {
                    continue;
                }
                let value = std::fs::read_to_string(entry.path()).map_err(|e| crate::Error::io(entry.path(), e))?;
                values.insert(name, value.trim_end_matches(['\n', '\r']).to_string());
            }
        }
        Ok(Self::from_map(values))
    }

    /// The secret `name` for a recipe granted `granted`; a refusal is recorded in `denials`.
    pub fn get(&self, name: &str, granted: &[String], denials: &Denials) -> Result<String, SecretError> {
        if !granted.iter().any(|g| g == name) {
            denials.record(format!("secret `{name}` is not granted (capabilities.secrets)"));
            return Err(SecretError::NotGranted(name.to_string()));
        }
        self.values
            .get(name)
            .cloned()
            .ok_or_else(|| SecretError::NotFound(name.to_string()))
    }

    /// Names (never values) the store holds.
    pub fn names(&self) -> Vec<String> {
        self.values.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_granted_names_are_readable() {
        let store = SecretStore::from_map(
            [
                ("jira-token".to_string(), "t0k".to_string()),
                ("db".into(), "pw".into()),
            ]
            .into(),
        );
        let d = Denials::default();
        let granted = vec!["jira-token".to_string(), "missing".to_string()];
        assert_eq!(store.get("jira-token", &granted, &d).unwrap(), "t0k");
        assert_eq!(store.get("db", &granted, &d), Err(SecretError::NotGranted("db".into())));
        assert_eq!(
            store.get("missing", &granted, &d),
            Err(SecretError::NotFound("missing".into()))
        );
        assert_eq!(d.list().len(), 1);
        assert!(!format!("{store:?}").contains("t0k"), "Debug never shows values");
    }

    #[test]
    fn loads_a_mounted_secret_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("jira-user"), "bot\n").unwrap();
        std::fs::write(dir.path().join("..data"), "ignored").unwrap();
        let store = SecretStore::load(Some(dir.path())).unwrap();
        assert_eq!(
            store
                .get("jira-user", &["jira-user".into()], &Denials::default())
                .unwrap(),
            "bot"
        );
        assert!(!store.names().contains(&"..data".to_string()));
    }
}
