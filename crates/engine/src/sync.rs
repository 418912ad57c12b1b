//! The concurrency primitives the engine's protocol is built on, behind one shim so the loom
//! models (`tests/loom.rs`, built with `--cfg loom`) run the real engine code.
//!
//! - Atomics come from `std` normally and from `loom` under `--cfg loom`.
//! - [`OrderedMap`] is a lock-free ordered map (`crossbeam-skiplist`) normally. Loom cannot see
//!   inside crossbeam, so under `--cfg loom` it is a linearizable stand-in with the same API
//!   (a loom `Mutex` around a `BTreeMap`). The loom models therefore prove the engine's
//!   protocol *given a linearizable ordered map*, which is what the skip list provides.
//! - [`Fifo`] is `crossbeam-queue`'s `SegQueue` normally and a loom `Mutex<VecDeque>` under loom.

use std::ops::{Bound, ControlFlow};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

/// A concurrent ordered map: insert, remove and in-order scans may run from many threads.
#[cfg(not(loom))]
pub(crate) struct OrderedMap<K, V>(crossbeam_skiplist::SkipMap<K, V>);

#[cfg(not(loom))]
impl<K: Ord + Clone + Send + 'static, V: Clone + Send + 'static> OrderedMap<K, V> {
    pub(crate) fn new() -> Self {
        OrderedMap(crossbeam_skiplist::SkipMap::new())
    }

    /// Inserts or replaces.
    pub(crate) fn insert(&self, key: K, value: V) {
        self.0.insert(key, value);
    }

    /// Removes; `true` for exactly one of several threads removing the same present key.
    pub(crate) fn remove(&self, key: &K) -> bool {
        self.0.remove(key).is_some()
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        self.0.get(key).map(|e| e.value().clone())
    }

    pub(crate) fn first_key(&self) -> Option<K> {
        self.0.front().map(|e| e.key().clone())
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Visits entries in key order from `from` until `f` breaks. Entries inserted or removed
    /// during the scan may or may not be seen (weakly consistent, like the skip list).
    pub(crate) fn scan(&self, from: Bound<&K>, mut f: impl FnMut(&K, &V) -> ControlFlow<()>) {
        for e in self.0.range((from, Bound::Unbounded)) {
            if f(e.key(), e.value()).is_break() {
                return;
            }
        }
    }
}

/// Loom stand-in: a linearizable ordered map loom can see.
#[cfg(loom)]
pub(crate) struct OrderedMap<K, V>(loom::sync::Mutex<std::collections::BTreeMap<K, V>>);

#[cfg(loom)]
impl<K: Ord + Clone + Send + 'static, V: Clone + Send + 'static> OrderedMap<K, V> {
    pub(crate) fn new() -> Self {
        OrderedMap(loom::sync::Mutex::new(std::collections::BTreeMap::new()))
    }

    fn lock(&self) -> loom::sync::MutexGuard<'_, std::collections::BTreeMap<K, V>> {
        // A poisoned lock only means another model thread panicked; the model fails anyway.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn insert(&self, key: K, value: V) {
        self.lock().insert(key, value);
    }

    pub(crate) fn remove(&self, key: &K) -> bool {
        self.lock().remove(key).is_some()
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        self.lock().get(key).cloned()
    }

    pub(crate) fn first_key(&self) -> Option<K> {
        self.lock().keys().next().cloned()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn scan(&self, from: Bound<&K>, mut f: impl FnMut(&K, &V) -> ControlFlow<()>) {
        let snapshot: Vec<(K, V)> = self
            .lock()
            .range((from, Bound::Unbounded))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in &snapshot {
            if f(k, v).is_break() {
                return;
            }
        }
    }
}

/// A multi-producer multi-consumer FIFO.
#[cfg(not(loom))]
pub(crate) struct Fifo<T>(crossbeam_queue::SegQueue<T>);

#[cfg(not(loom))]
impl<T> Fifo<T> {
    pub(crate) fn new() -> Self {
        Fifo(crossbeam_queue::SegQueue::new())
    }
    pub(crate) fn push(&self, t: T) {
        self.0.push(t);
    }
    pub(crate) fn pop(&self) -> Option<T> {
        self.0.pop()
    }
}

/// Loom stand-in for [`Fifo`].
#[cfg(loom)]
pub(crate) struct Fifo<T>(loom::sync::Mutex<std::collections::VecDeque<T>>);

#[cfg(loom)]
impl<T> Fifo<T> {
    pub(crate) fn new() -> Self {
        Fifo(loom::sync::Mutex::new(std::collections::VecDeque::new()))
    }
    pub(crate) fn push(&self, t: T) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(t);
    }
    pub(crate) fn pop(&self) -> Option<T> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
    }
}
