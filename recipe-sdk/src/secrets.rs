//! Secrets named in the manifest's `capabilities.secrets`. Asking for any other is denied and
//! the denial is recorded in the run's result.

use std::fmt;

use crate::RecipeError;

/// Why a secret could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretError {
    /// The manifest does not grant it.
    NotGranted(String),
    /// Granted, but the operator did not provide a value.
    NotFound(String),
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretError::NotGranted(n) => write!(
                f,
                "secret `{n}` is not granted to this recipe (add it to capabilities.secrets)"
            ),
            SecretError::NotFound(n) => write!(f, "secret `{n}` is granted but has no value on this host"),
        }
    }
}

impl std::error::Error for SecretError {}

impl From<SecretError> for RecipeError {
    fn from(e: SecretError) -> Self {
        RecipeError::new(e.to_string())
    }
}

/// The value of secret `name`.
pub fn get(name: &str) -> Result<String, SecretError> {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::bindings::secrets as wit;
        return wit::get(name).map_err(|e| match e {
            wit::SecretError::NotGranted(n) => SecretError::NotGranted(n),
            wit::SecretError::NotFound(n) => SecretError::NotFound(n),
        });
    }
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::mock(|m| {
        m.secrets
            .get(name)
            .cloned()
            .ok_or_else(|| SecretError::NotGranted(name.to_string()))
    })
}
