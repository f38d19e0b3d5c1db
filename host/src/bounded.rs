//! [`Recent`]: a map that keeps at most `cap` keys, forgetting the one written longest ago — the
//! one bounded memory behind alert deduplication, the chat replay guards and trigger cooldowns.
//!
//! The compiled-component cache uses it too, [`Recent::touch`]ing a key on every hit.
//!
//! Hand-written rather than an LRU crate because what these need is narrower and cheaper: order by
//! last *write* (a lookup does not refresh a key — a duplicate alert must not keep itself alive),
//! O(1) amortised insert, and no `unsafe`. Each write appends `(key, stamp)` to a queue; the map
//! holds each key's latest stamp; popping a queue entry whose stamp is stale drops nothing. When
//! rewrites leave the queue twice as long as the map allows, its stale entries are swept out in one
//! pass, so memory stays bounded however often one key is rewritten.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// At most `cap` keys; the key written longest ago goes first.
#[derive(Debug)]
pub struct Recent<K, V = ()> {
    map: HashMap<K, (V, u64)>,
    order: VecDeque<(K, u64)>,
    stamp: u64,
    cap: usize,
    evicted: u64,
}

impl<K: Hash + Eq + Clone, V> Recent<K, V> {
    /// Empty, keeping at most `cap` keys (at least one).
    pub fn new(cap: usize) -> Self {
        Recent {
            map: HashMap::new(),
            order: VecDeque::new(),
            stamp: 0,
            cap: cap.max(1),
            evicted: 0,
        }
    }

    /// Write `key` (again): it becomes the newest. Returns `true` when it was not kept before.
    pub fn insert(&mut self, key: K, value: V) -> bool {
        self.stamp += 1;
        let fresh = self.map.insert(key.clone(), (value, self.stamp)).is_none();
        self.order.push_back((key, self.stamp));
        while self.map.len() > self.cap {
            let Some((old, stamp)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&old).is_some_and(|(_, s)| *s == stamp) {
                self.map.remove(&old);
                self.evicted += 1;
            }
        }
        self.sweep();
        fresh
    }

    /// Make `key` the newest, as if written again (a cache hit); `false` when it is not kept.
    pub fn touch<Q>(&mut self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.stamp += 1;
        let stamp = self.stamp;
        let Some((k, _)) = self.map.get_key_value(key) else {
            return false;
        };
        let k = k.clone();
        if let Some((_, s)) = self.map.get_mut(key) {
            *s = stamp;
        }
        self.order.push_back((k, stamp));
        self.sweep();
        true
    }

    /// Drop the queue's stale entries once it is twice as long as the bound (amortised O(1)).
    fn sweep(&mut self) {
        if self.order.len() > 2 * self.cap {
            let map = &self.map;
            self.order
                .retain(|(k, s)| map.get(k).is_some_and(|(_, live)| live == s));
        }
    }

    /// Keys dropped to stay within the bound, so far.
    pub fn evictions(&self) -> u64 {
        self.evicted
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }

    /// The value kept for `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key).map(|(v, _)| v)
    }

    /// Is `key` kept?
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.contains_key(key)
    }

    /// Keys kept.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Nothing kept?
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl<K: Hash + Eq + Clone> Recent<K, ()> {
    /// `true` the first time `key` is seen while kept (a set's insert).
    pub fn first(&mut self, key: K) -> bool {
        if self.contains(&key) {
            return false;
        }
        self.insert(key, ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_cap_keys_oldest_write_out_first() {
        let mut r = Recent::new(3);
        for k in ["a", "b", "c", "d"] {
            assert!(r.insert(k, ()));
        }
        assert_eq!(r.len(), 3);
        assert!(!r.contains("a") && r.contains("b") && r.contains("d"));
        // Rewriting `b` makes it the newest: `c` goes next.
        assert!(!r.insert("b", ()));
        r.insert("e", ());
        assert!(r.contains("b") && !r.contains("c"));
    }

    #[test]
    fn rewriting_one_key_forever_stays_bounded_and_keeps_the_others() {
        let mut r = Recent::new(4);
        r.insert("other", 0);
        for i in 0..10_000 {
            r.insert("hot", i);
            assert!(r.touch("hot"));
        }
        assert_eq!(r.get("hot"), Some(&9_999));
        assert!(r.order.len() <= 8, "the queue is bounded too: {}", r.order.len());
        assert!(r.contains("other"), "only two keys: nothing to evict");
        assert_eq!(r.evictions(), 0);
    }

    #[test]
    fn a_touch_keeps_a_key_like_a_cache_hit() {
        let mut r = Recent::new(2);
        r.insert("a", ());
        r.insert("b", ());
        assert!(r.touch("a"));
        r.insert("c", ());
        assert!(r.contains("a") && !r.contains("b"), "b was the least recently used");
        assert_eq!(r.evictions(), 1);
        assert!(!r.touch("b"));
    }

    #[test]
    fn a_lookup_does_not_refresh() {
        let mut r = Recent::new(2);
        r.insert(1, ());
        r.insert(2, ());
        assert!(r.contains(&1));
        r.insert(3, ());
        assert!(!r.contains(&1), "looked at, still the oldest write");
        assert!(r.first(4) && !r.first(4));
    }
}
