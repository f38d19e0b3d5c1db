//! Durability: what the store's write-behind needs of the reconciler, and no more — the
//! incidents that changed since it last wrote, and the persist points that make the host answer
//! `/webhook` 2xx, or start a run or an action, only once it is on record.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::incident::{ActionRun, IncidentRecord};

use super::shared::SharedBook;

/// The incident book seen by a store, and the persist-point handshake with it.
#[derive(Debug)]
pub struct Journal {
    book: Arc<SharedBook>,
    enabled: AtomicBool,
    /// Persist points asked for so far.
    requested: AtomicU64,
    /// The last persist point the store reached.
    persisted: OnceLock<watch::Sender<u64>>,
    flush: Notify,
}

impl Journal {
    /// The journal of `book`; nothing waits on a store until [`Journal::enable`].
    pub fn new(book: Arc<SharedBook>) -> Self {
        Journal {
            book,
            enabled: AtomicBool::new(false),
            requested: AtomicU64::new(0),
            persisted: OnceLock::new(),
            flush: Notify::new(),
        }
    }

    /// A store now keeps what changes: from here on [`Journal::persist_point`] waits for it.
    /// Idempotent; call it before the host serves as the leader (a persist point asked before
    /// the write-behind's first pass is reached by that pass).
    pub fn enable(&self) {
        let _ = self.persisted.set(watch::channel(0).0);
        self.enabled.store(true, Ordering::SeqCst);
    }

    /// Is a store attached?
    pub fn durable(&self) -> bool {
        self.enabled.load(Ordering::SeqCst)
    }

    /// Wait (at most `within`) until everything changed before this call is in the store;
    /// `true` at once without a store. `false`: the store did not take it in time.
    pub async fn persist_point(&self, within: Duration) -> bool {
        let Some(persisted) = self.persisted.get().filter(|_| self.durable()) else {
            return true;
        };
        let want = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut rx = persisted.subscribe();
        self.flush.notify_one();
        matches!(
            tokio::time::timeout(within, rx.wait_for(|v| *v >= want)).await,
            Ok(Ok(_))
        )
    }

    /// For the write-behind: the persist point a pass starting now will reach.
    pub fn target(&self) -> u64 {
        self.requested.load(Ordering::SeqCst)
    }

    /// For the write-behind: a pass that started at `target` has been stored.
    pub fn persisted(&self, target: u64) {
        if let Some(p) = self.persisted.get() {
            p.send_if_modified(|v| {
                let newer = target > *v;
                if newer {
                    *v = target;
                }
                newer
            });
        }
    }

    /// For the write-behind: resolves when someone waits on a persist point.
    pub async fn flush_requested(&self) {
        self.flush.notified().await
    }

    /// Incidents whose version differs from `written`, with their approved actions.
    pub fn changed_since(&self, written: &HashMap<String, u64>) -> (Vec<IncidentRecord>, Vec<ActionRun>) {
        self.book.lock().changed_since(written)
    }

    /// Forget the `written` entries of incidents no longer kept (when it outgrows the book).
    pub fn prune(&self, written: &mut HashMap<String, u64>) {
        let book = self.book.lock();
        if written.len() > 4 * book.max() {
            written.retain(|id, _| book.contains(id));
        }
    }
}
