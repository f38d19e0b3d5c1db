//! Compile cache, keyed by digest: in memory for the process (bounded: the least recently used
//! component goes first, hits, misses and evictions counted for `/metrics`), and on disk across
//! restarts.
//!
//! The disk cache holds precompiled code, which wasmtime loads with an `unsafe` deserialize, so
//! it is only ever read from a directory this process created with mode 0700 and owns, from
//! files it wrote itself, named by (sha256, `Engine::precompile_compatibility_hash()`). Never
//! point it at anything a recipe author can write (a ConfigMap, a shared volume).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker, types::ComponentItem};

use super::bindings;
use super::config::CacheStats;
use super::run::CacheUse;
use super::state::RunState;
use crate::bounded::Recent;
use crate::digest::Digest;

/// A compiled component and what it claims, cached by digest.
pub(super) struct Compiled {
    /// The verified buffer this was compiled from. `Arc<[u8]>` is immutable, so a later run
    /// handing in the very same allocation needs no second hash.
    pub source: Arc<[u8]>,
    /// The compiled code (`None` when it did not compile), for serializing it.
    pub component: Option<Component>,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    pub debugger: Option<DebugPre>,
    pub actor: Option<ActPre>,
    pub invalid: Option<String>,
}

/// A debugger ready to instantiate, by the contract version it was built against.
pub(super) enum DebugPre {
    Current(bindings::debugger::DebuggerPre<RunState>),
    V1(bindings::v1::debugger::DebuggerPre<RunState>),
}

/// An actor ready to instantiate, by the contract version it was built against.
pub(super) enum ActPre {
    Current(bindings::actor::ActorPre<RunState>),
    V1(bindings::v1::actor::ActorPre<RunState>),
}

impl Compiled {
    fn invalid(source: Arc<[u8]>, why: String) -> Self {
        Compiled {
            source,
            component: None,
            imports: vec![],
            exports: vec![],
            debugger: None,
            actor: None,
            invalid: Some(why),
        }
    }
}

/// Compiled components by digest, at most `cap` of them, the least recently used out first.
pub(super) struct MemoryCache {
    kept: Mutex<Recent<Digest, Arc<Compiled>>>,
    stats: Arc<CacheStats>,
}

impl MemoryCache {
    pub fn new(cap: usize, stats: Arc<CacheStats>) -> Self {
        MemoryCache {
            kept: Mutex::new(Recent::new(cap)),
            stats,
        }
    }

    /// The component for `digest`, counted as a hit (and made the most recently used) or a miss.
    pub fn get(&self, digest: &Digest) -> Option<Arc<Compiled>> {
        let mut kept = self.kept.lock();
        let hit = kept.get(digest).cloned();
        if hit.is_some() {
            kept.touch(digest);
            self.stats.hits.inc();
        } else {
            self.stats.misses.inc();
        }
        hit
    }

    pub fn insert(&self, digest: Digest, compiled: Arc<Compiled>) {
        let mut kept = self.kept.lock();
        let before = kept.evictions();
        kept.insert(digest, compiled);
        self.stats.evictions.inc_by(kept.evictions() - before);
        self.stats.entries.set(kept.len() as i64);
    }

    pub fn clear(&self) {
        self.kept.lock().clear();
        self.stats.entries.set(0);
    }
}

/// Compile `bytes` (verified against `digest` by the caller), or load them from `disk`; link
/// them against `linker`. Blocking: call it off the async workers. A component that does not
/// compile or link comes back `invalid`, with why.
pub(super) fn compile(
    engine: &Engine,
    linker: &Linker<RunState>,
    disk: Option<&DiskCache>,
    digest: &Digest,
    bytes: Arc<[u8]>,
) -> (Compiled, CacheUse) {
    let (component, from) = match disk.and_then(|d| d.load(engine, digest)) {
        Some(c) => (Ok(c), CacheUse::Disk),
        None => (Component::new(engine, &bytes), CacheUse::Compiled),
    };
    let component = match component {
        Ok(c) => c,
        Err(e) => {
            return (
                Compiled::invalid(bytes, format!("not a valid WebAssembly component: {e:#}")),
                from,
            );
        }
    };
    if from == CacheUse::Compiled
        && let Some(d) = disk
    {
        d.store(digest, &component);
    }
    (link(engine, linker, component, bytes), from)
}

/// What `component` (compiled from `bytes`) claims, and how it instantiates against `linker`.
pub(super) fn link(engine: &Engine, linker: &Linker<RunState>, component: Component, bytes: Arc<[u8]>) -> Compiled {
    let ty = component.component_type();
    let imports = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
    let exports = ty
        .exports(engine)
        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentFunc(_)))
        .map(|(n, _)| n.to_string())
        .collect();
    let (debugger, actor, invalid) = match linker.instantiate_pre(&component) {
        Ok(pre) => {
            let debugger = bindings::debugger::DebuggerPre::new(pre.clone())
                .map(DebugPre::Current)
                .or_else(|_| bindings::v1::debugger::DebuggerPre::new(pre.clone()).map(DebugPre::V1))
                .ok();
            let actor = bindings::actor::ActorPre::new(pre.clone())
                .map(ActPre::Current)
                .or_else(|_| bindings::v1::actor::ActorPre::new(pre).map(ActPre::V1))
                .ok();
            (debugger, actor, None)
        }
        Err(e) => (None, None, Some(format!("cannot link: {e:#}"))),
    };
    Compiled {
        source: bytes,
        component: Some(component),
        imports,
        exports,
        debugger,
        actor,
        invalid,
    }
}

/// The compiler panicked (a wasmtime bug): the run is refused as invalid, the host carries on.
pub(super) fn panicked(source: Arc<[u8]>, e: impl std::fmt::Display) -> Compiled {
    Compiled::invalid(source, format!("compiler panicked: {e}"))
}

/// The engine's code-compatibility fingerprint: code one engine compiled loads in another only
/// when they agree.
pub(super) fn compat(engine: &Engine) -> u64 {
    let mut h = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    h.finish()
}

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
        Ok(DiskCache {
            dir: dir.to_path_buf(),
            compat: compat(engine),
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
