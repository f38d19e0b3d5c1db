//! Kubernetes for recipes: the manifest's grants enforced here, the recipe's own identity
//! enforced by the API server.
//!
//! Every call is checked before any request is made ([`KubeAccess`]): the resource (by API group
//! and plural) must be granted the verb, and a namespaced call must stay in the incident's
//! namespaces unless the recipe has cluster scope. A refusal is recorded and the run ends
//! `denied`.
//!
//! The calls never carry the host's identity. In a sandbox Job the client is the Job's
//! ServiceAccount (`[kube] reader_service_account` or `writer_service_account`, by whether the
//! recipe may write); in-process and subprocess runs of `serve` **impersonate** that same
//! ServiceAccount ([`KubeClients::impersonating`]), so the API server's RBAC bounds a run the
//! same way wherever it executes. `recipe run --kubeconfig` acts as the kubeconfig's user: it is
//! the recipe author's own tool.

mod access;
mod clients;
mod read;
mod write;

pub use self::access::{KubeAccess, KubeError, WriteMode, Writes};
pub use self::clients::*;
pub use self::write::{MAX_WRITES, PatchType, WriteOptions, changes, fingerprint};
