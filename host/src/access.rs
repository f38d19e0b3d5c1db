//! Who may do what, and where a secret is read from: the [`Role`] an API token carries and the
//! [`SecretRef`] that names a secret's source. A leaf: configuration, the API and the chat
//! integrations all read these, and this module reads none of them.

use std::path::PathBuf;

use serde::Deserialize;

use crate::Error;

/// A role an API token carries. Each includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything.
    Viewer,
    /// Also approve suggested actions.
    Approver,
    /// Also run a named action that was not suggested.
    Operator,
}

/// A secret value named by where to read it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// Environment variable holding it.
    #[serde(default)]
    pub env: Option<String>,
    /// File holding it (trailing newline trimmed), e.g. a mounted Kubernetes Secret.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

impl SecretRef {
    /// Read the value; `what` names it in errors (never the value).
    pub fn read(&self, what: &str) -> Result<String, Error> {
        let err = |m: String| Error::Manifest {
            path: "config".into(),
            message: format!("{what}: {m}"),
        };
        let value = match (&self.env, &self.file) {
            (Some(var), None) => {
                std::env::var(var).map_err(|_| err(format!("environment variable {var} is not set")))?
            }
            (None, Some(f)) => std::fs::read_to_string(f)
                .map_err(|e| err(format!("{}: {e}", f.display())))?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
            _ => return Err(err("give exactly one of `env` or `file`".into())),
        };
        if value.is_empty() {
            return Err(err("is empty".into()));
        }
        Ok(value)
    }
}

/// Constant-time equality of two byte strings (`subtle`): how long it takes says nothing about
/// where they differ. Strings of different lengths differ at once (a length is no secret here).
pub fn same(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}
