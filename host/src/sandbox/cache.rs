//! Compile cache, keyed by digest: in memory for the process, and on disk across restarts.
//!
//! The disk cache holds precompiled code, which wasmtime loads with an `unsafe` deserialize, so
//! it is only ever read from a directory this process created with mode 0700 and owns, from
//! files it wrote itself, named by (sha256, `Engine::precompile_compatibility_hash()`). Never
//! point it at anything a recipe author can write (a ConfigMap, a shared volume).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::digest::Digest;

/// The on-disk half of the cache.
#[derive(Debug, Clone)]
pub struct DiskCache {
    dir: PathBuf,
    compat: u64,
}

impl DiskCache {
    /// Open (create) `dir`; refuses a directory that others can write or that we do not own.
    pub fn open(dir: &Path, engine: &Engine) -> crate::Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| crate::Error::io(dir, e))?;
        let meta = std::fs::metadata(dir).map_err(|e| crate::Error::io(dir, e))?;
        let uid = rustix::process::geteuid().as_raw();
        if meta.uid() != uid || meta.permissions().mode() & 0o022 != 0 {
            return Err(crate::Error::Sandbox(format!(
                "compile cache {} must be owned by uid {uid} and not writable by others (mode 0700); refusing to load precompiled code from it",
                dir.display()
            )));
        }
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Ok(DiskCache {
            dir: dir.to_path_buf(),
            compat: h.finish(),
        })
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!("{}-{:016x}.cwasm", digest.hex(), self.compat))
    }

    /// A component this process (or an earlier run of it) compiled for `digest`.
    pub fn load(&self, engine: &Engine, digest: &Digest) -> Option<Component> {
        let path = self.path(digest);
        let meta = std::fs::metadata(&path).ok()?;
        if meta.uid() != rustix::process::geteuid().as_raw() {
            return None;
        }
        // SAFETY: the file is in our 0700 directory, owned by us, written by `store` from
        // `Component::serialize` of an engine with the same compatibility hash (in the name).
        unsafe { Component::deserialize_file(engine, &path) }.ok()
    }

    /// Write `component` for `digest` (atomically: temp file, then rename).
    pub fn store(&self, digest: &Digest, component: &Component) {
        let Ok(bytes) = component.serialize() else { return };
        let path = self.path(digest);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, bytes)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .is_err()
        {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(cache = %self.dir.display(), "could not write the compile cache");
        }
    }
}
