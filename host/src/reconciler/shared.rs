//! The incident book behind its lock, and a tick that moves whenever someone changed it: every
//! mutable access through [`SharedBook::lock`] counts as a change when its guard drops, so no
//! transition can forget to announce itself. The console's live updates wait on the tick.

use std::ops::{Deref, DerefMut};

use parking_lot::{Mutex, MutexGuard};
use tokio::sync::watch;

use super::book::IncidentBook;

/// The book, locked, with its change tick.
#[derive(Debug)]
pub struct SharedBook {
    book: Mutex<IncidentBook>,
    changed: watch::Sender<u64>,
}

/// A locked book. A mutable borrow marks it changed; the tick moves when it is released.
pub struct BookGuard<'a> {
    guard: MutexGuard<'a, IncidentBook>,
    changed: &'a watch::Sender<u64>,
    dirty: bool,
}

impl SharedBook {
    /// `book`, shared.
    pub fn new(book: IncidentBook) -> Self {
        SharedBook {
            book: Mutex::new(book),
            changed: watch::channel(0).0,
        }
    }

    /// Lock the book.
    pub fn lock(&self) -> BookGuard<'_> {
        BookGuard {
            guard: self.book.lock(),
            changed: &self.changed,
            dirty: false,
        }
    }

    /// A receiver that sees the tick move after every change (it may move for a change that
    /// left a given incident as it was: compare what you show).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

impl Deref for BookGuard<'_> {
    type Target = IncidentBook;

    fn deref(&self) -> &IncidentBook {
        &self.guard
    }
}

impl DerefMut for BookGuard<'_> {
    fn deref_mut(&mut self) -> &mut IncidentBook {
        self.dirty = true;
        &mut self.guard
    }
}

impl Drop for BookGuard<'_> {
    fn drop(&mut self) {
        if self.dirty {
            self.changed.send_modify(|v| *v = v.wrapping_add(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mutable_access_moves_the_tick_and_a_read_does_not() {
        let shared = SharedBook::new(IncidentBook::new(10));
        let mut rx = shared.subscribe();
        let _ = shared.lock().get("inc-1");
        assert!(!rx.has_changed().unwrap(), "a read moved the tick");
        shared
            .lock()
            .note("inc-1", "2026-01-01T00:00:00Z", "note", "x", None, None);
        assert!(rx.has_changed().unwrap(), "a change did not move the tick");
        assert_eq!(*rx.borrow_and_update(), 1);
    }
}
