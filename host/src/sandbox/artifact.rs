//! Precompiled code for sandbox processes. Compiling a recipe is most of a sandbox process's start
//! (~250 ms of a ~270 ms start on the test node, BENCHMARKS.md); a process that starts per run
//! should not repeat it. The host compiles each recipe once, serializes the code and stores it in
//! Redis beside the runs' inputs, **sealed**: an HMAC-SHA256 under a key only the host and its
//! sandboxes hold (`EUPHROSYNE_ARTIFACT_KEY`; in a cluster the key `artifact-key` of the Secret the
//! Jobs read Redis' URL from). A sandbox that finds the artifact for its run's digest and its own
//! engine checks the seal — before anything parses the bytes: loading compiled code is `unsafe`,
//! it is native code — then still verifies the component's bytes against the pinned digest, and
//! loads the code instead of compiling. No key, no artifact, a broken seal, an engine that does not
//! match: it compiles, as without this.
//!
//! The seal binds the code to the digest of the component it was compiled from and to the engine
//! configuration (`Engine::precompile_compatibility_hash`), so code sealed for one recipe can never
//! stand in for another.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::digest::Digest;

/// The key artifacts are sealed with.
#[derive(Clone)]
pub struct ArtifactKey(Vec<u8>);

impl std::fmt::Debug for ArtifactKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArtifactKey(…)")
    }
}

/// Bytes of the seal in front of the code.
const TAG: usize = 32;

impl ArtifactKey {
    /// The environment variable the host and the sandboxes read the key from.
    pub const ENV: &'static str = "EUPHROSYNE_ARTIFACT_KEY";

    /// A key from a secret of at least 32 bytes.
    pub fn new(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < 32 {
            return Err(format!(
                "{} is {} bytes; an artifact key needs at least 32 (e.g. `openssl rand -hex 32`)",
                Self::ENV,
                secret.len()
            ));
        }
        Ok(ArtifactKey(secret.to_vec()))
    }

    /// The key in [`ArtifactKey::ENV`], if set and not empty.
    pub fn from_env() -> Result<Option<Self>, String> {
        match std::env::var(Self::ENV) {
            Ok(v) if !v.trim().is_empty() => Self::new(v.trim().as_bytes()).map(Some),
            _ => Ok(None),
        }
    }

    /// A fresh random key (for sandbox subprocesses of this host process, which get it in their
    /// environment).
    pub fn random() -> Self {
        let hex = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        ArtifactKey(hex.into_bytes())
    }

    /// The key as the environment variable carries it.
    pub fn env_value(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }

    fn mac(&self, digest: &Digest, engine: &str, code: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        for part in [
            b"euphrosyne-artifact-v1".as_slice(),
            digest.hex().as_bytes(),
            engine.as_bytes(),
        ] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.update(code);
        mac
    }

    /// `code` compiled from the component `digest` by an engine `engine`, sealed.
    pub fn seal(&self, digest: &Digest, engine: &str, code: &[u8]) -> Vec<u8> {
        let tag = self.mac(digest, engine, code).finalize().into_bytes();
        let mut out = Vec::with_capacity(TAG + code.len());
        out.extend_from_slice(&tag);
        out.extend_from_slice(code);
        out
    }

    /// The code in `sealed`, if this key sealed it for `digest` and `engine` (checked in constant
    /// time); why not otherwise.
    pub fn open<'a>(&self, digest: &Digest, engine: &str, sealed: &'a [u8]) -> Result<&'a [u8], &'static str> {
        if sealed.len() < TAG {
            return Err("too short to hold a seal");
        }
        let (tag, code) = sealed.split_at(TAG);
        self.mac(digest, engine, code)
            .verify_slice(tag)
            .map_err(|_| "the seal does not match (another key, another recipe or engine, or altered bytes)")?;
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_opens_only_for_its_key_digest_engine_and_bytes() {
        let key = ArtifactKey::new(&[7u8; 32]).unwrap();
        let digest = Digest::of(b"component");
        let sealed = key.seal(&digest, "e1", b"native code");
        assert_eq!(key.open(&digest, "e1", &sealed), Ok(b"native code".as_slice()));
        let other_key = ArtifactKey::new(&[8u8; 32]).unwrap();
        assert!(other_key.open(&digest, "e1", &sealed).is_err());
        assert!(key.open(&Digest::of(b"other"), "e1", &sealed).is_err());
        assert!(key.open(&digest, "e2", &sealed).is_err());
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(key.open(&digest, "e1", &altered).is_err());
        assert!(key.open(&digest, "e1", &sealed[..10]).is_err());
        assert!(ArtifactKey::new(b"short").unwrap_err().contains("at least 32"));
        assert_eq!(format!("{key:?}"), "ArtifactKey(…)", "never printed");
        assert_ne!(ArtifactKey::random().env_value(), ArtifactKey::random().env_value());
        assert!(ArtifactKey::random().env_value().len() >= 64);
    }
}
