//! Host memory owned by a run, counted as it is allocated.
//!
//! A recipe makes the host allocate on its behalf: `wasi:http` header fields and bodies, resource
//! table entries, strings it logs or returns, Kubernetes responses. Those bytes count against the
//! run's one memory budget together with its linear memories and tables ([`super::limits`]).
//!
//! [`MeteredAlloc`] is the process's global allocator. Every allocation carries a 16-byte header
//! naming the meter it was charged to (a slot and its generation) and its size. A run's calls into
//! the guest are polled inside [`Metered`], which makes the run's meter current on that thread
//! for the duration of each poll, so whatever the guest's host calls allocate is charged to it;
//! a free uncharges the meter named in its header if that meter still belongs to the same run
//! (the generation matches), wherever and whenever the free happens. Outside a metered poll
//! nothing is charged and the cost is the header and one thread-local read.
//!
//! Meters live in a fixed table of [`SLOTS`] entries that is never freed, so a late free never
//! touches freed memory; runs beyond that many at once go unmetered (the pool has fewer slots).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::task::{Context, Poll};

/// Meters available at once.
pub const SLOTS: usize = 1024;
const HEADER: usize = 16;
const NONE: u32 = u32::MAX;

struct Slot {
    generation: AtomicU32,
    live: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    generation: AtomicU32::new(0),
    live: AtomicUsize::new(0),
};
static TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];
/// Free slots. `std`'s lock (not `parking_lot`, as elsewhere): it is taken outside allocation
/// only (when a meter is made or dropped), and a poisoned list is still a list of free slots.
static FREE: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static NEXT: AtomicU32 = AtomicU32::new(0);

thread_local! {
    /// (slot, generation) charged on this thread right now.
    static CURRENT: Cell<(u32, u32)> = const { Cell::new((NONE, 0)) };
}

/// The process's allocator: the system allocator plus a header charging each block to a meter.
pub struct MeteredAlloc;

#[repr(C)]
struct Header {
    slot: u32,
    generation: u32,
    size: usize,
}

fn offset(align: usize) -> usize {
    align.max(HEADER)
}

fn charge(size: usize) -> (u32, u32) {
    let current = CURRENT.try_with(Cell::get).unwrap_or((NONE, 0));
    if current.0 != NONE {
        let slot = &TABLE[current.0 as usize];
        slot.live.fetch_add(size, Ordering::Relaxed);
    }
    current
}

fn uncharge(h: &Header) {
    if h.slot != NONE {
        let slot = &TABLE[h.slot as usize];
        if slot.generation.load(Ordering::Relaxed) == h.generation {
            slot.live
                .fetch_sub(h.size.min(slot.live.load(Ordering::Relaxed)), Ordering::Relaxed);
        }
    }
}

impl MeteredAlloc {
    /// # Safety
    /// `layout` has a non-zero size (the `GlobalAlloc::alloc` contract).
    unsafe fn allocate(&self, layout: Layout, zeroed: bool) -> *mut u8 {
        let off = offset(layout.align());
        let Some(Ok(outer)) = layout
            .size()
            .checked_add(off)
            .map(|size| Layout::from_size_align(size, layout.align().max(8)))
        else {
            return std::ptr::null_mut();
        };
        // SAFETY: `outer` has a non-zero size.
        let base = unsafe {
            if zeroed {
                System.alloc_zeroed(outer)
            } else {
                System.alloc(outer)
            }
        };
        if base.is_null() {
            return base;
        }
        let (slot, generation) = charge(layout.size());
        // SAFETY: `base + off` is inside the block; the header fits in the 16 bytes before it.
        unsafe {
            let user = base.add(off);
            (user.sub(HEADER) as *mut Header).write(Header {
                slot,
                generation,
                size: layout.size(),
            });
            user
        }
    }
}

// SAFETY: every block handed out is `offset(align)` bytes into a block from `System` of the
// user's size plus that offset and the same alignment; the header sits right before the user's
// pointer (the offset is at least 16 and a multiple of the alignment, so it is aligned for
// `Header`), and `dealloc`/`realloc` undo exactly that arithmetic.
unsafe impl GlobalAlloc for MeteredAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { self.allocate(layout, false) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { self.allocate(layout, true) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let off = offset(layout.align());
        // SAFETY: `ptr` came from `alloc`/`realloc` with this layout, so the header is there and
        // the block starts `off` bytes before it.
        unsafe {
            uncharge(&*(ptr.sub(HEADER) as *const Header));
            let outer = Layout::from_size_align_unchecked(layout.size() + off, layout.align().max(8));
            System.dealloc(ptr.sub(off), outer);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let off = offset(layout.align());
        // SAFETY: as in `dealloc`; the system allocator keeps the first `off` bytes (the header's
        // block prefix) when it moves the block, and we rewrite the header afterwards.
        unsafe {
            let old = (ptr.sub(HEADER) as *const Header).read();
            let outer = Layout::from_size_align_unchecked(layout.size() + off, layout.align().max(8));
            let Some(outer_new) = new_size.checked_add(off) else {
                return std::ptr::null_mut();
            };
            let base = System.realloc(ptr.sub(off), outer, outer_new);
            if base.is_null() {
                return base;
            }
            uncharge(&old);
            let (slot, generation) = charge(new_size);
            let user = base.add(off);
            (user.sub(HEADER) as *mut Header).write(Header {
                slot,
                generation,
                size: new_size,
            });
            user
        }
    }
}

/// One run's meter. Dropping it frees the slot; blocks still charged to it are then forgotten.
#[derive(Debug)]
pub struct Meter {
    slot: u32,
    generation: u32,
}

impl Meter {
    /// A fresh meter at zero, or `None` when every slot is taken.
    pub fn new() -> Option<Meter> {
        let reused = FREE.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let slot = match reused {
            Some(s) => s,
            None => {
                let s = NEXT.fetch_add(1, Ordering::Relaxed);
                if s as usize >= SLOTS {
                    NEXT.store(SLOTS as u32, Ordering::Relaxed);
                    return None;
                }
                s
            }
        };
        let entry = &TABLE[slot as usize];
        let generation = entry.generation.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        entry.live.store(0, Ordering::Relaxed);
        Some(Meter { slot, generation })
    }

    /// Bytes allocated while this meter was current and not yet freed.
    pub fn live(&self) -> usize {
        TABLE[self.slot as usize].live.load(Ordering::Relaxed)
    }

    /// The id a [`Metered`] future charges to.
    pub fn id(&self) -> MeterId {
        MeterId(self.slot, self.generation)
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        // A new generation: frees of this run's blocks no longer touch the slot.
        TABLE[self.slot as usize].generation.fetch_add(1, Ordering::Relaxed);
        FREE.lock().unwrap_or_else(|e| e.into_inner()).push(self.slot);
    }
}

/// Which meter a [`Metered`] future charges (a slot and its generation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeterId(u32, u32);

/// A future whose polls charge their allocations to a meter.
pub struct Metered<F> {
    inner: Pin<Box<F>>,
    meter: Option<MeterId>,
}

impl<F: Future> Metered<F> {
    /// Charge `inner`'s polls to `meter` (`None`: unmetered).
    pub fn new(meter: Option<MeterId>, inner: F) -> Self {
        Metered {
            inner: Box::pin(inner),
            meter,
        }
    }
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let id = self.meter.map_or((NONE, 0), |m| (m.0, m.1));
        let before = CURRENT.with(|c| c.replace(id));
        let r = self.inner.as_mut().poll(cx);
        CURRENT.with(|c| c.set(before));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_what_a_metered_poll_allocates_and_uncharges_its_frees() {
        let meter = Meter::new().expect("a free slot");
        let kept = futures::executor::block_on(Metered::new(Some(meter.id()), async { vec![0u8; 1 << 20] }));
        assert!(meter.live() >= 1 << 20, "live {}", meter.live());
        let unmetered = vec![0u8; 1 << 20];
        assert!(meter.live() < 2 << 20);
        drop(kept);
        assert!(meter.live() < 1 << 10, "live after free {}", meter.live());
        drop(unmetered);
    }

    #[test]
    fn realloc_moves_the_charge() {
        let meter = Meter::new().expect("a free slot");
        let mut v = futures::executor::block_on(Metered::new(Some(meter.id()), async { Vec::<u8>::with_capacity(16) }));
        futures::executor::block_on(Metered::new(Some(meter.id()), async {
            v.reserve(1 << 20);
        }));
        assert!(meter.live() >= 1 << 20);
        drop(v);
        assert!(meter.live() < 1 << 10);
    }
}
