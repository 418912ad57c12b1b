//! The concurrency primitives the engine's protocol is built on, behind one shim so the loom
//! models (`tests/loom.rs`, built with `--cfg loom`) run the real engine code.
//!
//! - Atomics come from `std` normally and from `loom` under `--cfg loom`.
//! - [`OrderedMap`] is a lock-free ordered map (`crossbeam-skiplist`) normally. Loom cannot see
//!   inside crossbeam, so under `--cfg loom` it is a linearizable stand-in with the same API
//!   (a loom `Mutex` around a `BTreeMap`). The loom models therefore prove the engine's
//!   protocol *given a linearizable ordered map*, which is what the skip list provides.
//! - [`Fifo`] (offers) is one `crossbeam-queue` `SegQueue` per producing thread (up to
//!   [`FIFO_SHARDS`]) normally, and a loom `Mutex<VecDeque>` under loom.
//! - [`EventLog`] collects each engine operation's events in a thread-local batch and
//!   publishes the batch with one push when the operation ends; under loom every event is
//!   pushed at once into a loom `Mutex<VecDeque>`.
//!
//! Why shards and batches: with one shared `SegQueue` for events (about two per operation)
//! and offers, two threads pushing into the same block made its tail the hottest spot of the
//! engine at 2 threads (17 % of the profile, the engine slower at 2 threads than at 1).

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
    ///
    /// Walks entry by entry (`lower_bound`, `next`) rather than with `range`: in
    /// crossbeam-skiplist 0.1.3 the range iterator never releases the entries it steps past,
    /// so every removed entry a scan had passed — a finished call's `Arc<CallCell>` and its
    /// node — was never freed (≈ 200 bytes per call; crossbeam issue #1178). An `Entry`
    /// releases itself when dropped.
    pub(crate) fn scan(&self, from: Bound<&K>, mut f: impl FnMut(&K, &V) -> ControlFlow<()>) {
        let mut cur = self.0.lower_bound(from);
        while let Some(e) = cur {
            if f(e.key(), e.value()).is_break() {
                return;
            }
            cur = e.next();
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

/// A multi-producer multi-consumer FIFO without a global order: each producing thread pushes
/// into its own shard, so one thread's items come out in the order it pushed them, and a
/// consumer takes from its own shard first, then from the others. (Offers need no order
/// between threads: each is for a different call.)
#[cfg(not(loom))]
pub(crate) struct Fifo<T>(Box<[crossbeam_utils::CachePadded<crossbeam_queue::SegQueue<T>>]>);

/// Shards of a [`Fifo`]; threads beyond it share shards.
#[cfg(not(loom))]
pub(crate) const FIFO_SHARDS: usize = 8;

/// This thread's shard, assigned round robin on first use.
#[cfg(not(loom))]
fn my_shard() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Relaxed) % FIFO_SHARDS;
    }
    SHARD.with(|s| *s)
}

#[cfg(not(loom))]
impl<T> Fifo<T> {
    pub(crate) fn new() -> Self {
        Fifo((0..FIFO_SHARDS).map(|_| Default::default()).collect())
    }
    pub(crate) fn push(&self, t: T) {
        if let Some(q) = self.0.get(my_shard()) {
            q.push(t);
        }
    }
    pub(crate) fn pop(&self) -> Option<T> {
        let me = my_shard();
        (0..FIFO_SHARDS).find_map(|i| self.0.get((me + i) % FIFO_SHARDS)?.pop())
    }
}

/// The engine's event stream: events come out in the order their operations published them,
/// and the events of one operation stay together and in order.
///
/// An operation opens a batch ([`EventLog::batch`]); the events it produces go into a
/// thread-local vector, and when the outermost batch guard of the thread drops, the vector is
/// published with one push. An event produced outside any batch is published at once, so an
/// event is never held back past the end of the operation that produced it.
#[cfg(not(loom))]
pub(crate) struct EventLog {
    /// Tells this log's thread-local batch from another engine's on the same thread.
    id: u64,
    batches: crossbeam_queue::SegQueue<Vec<crate::model::Event>>,
    /// The rest of a batch that [`EventLog::pop`] took apart, served before the next batch.
    rest: crossbeam_queue::SegQueue<crate::model::Event>,
}

#[cfg(not(loom))]
struct Pending {
    log: u64,
    depth: u32,
    events: Vec<crate::model::Event>,
}

#[cfg(not(loom))]
thread_local! {
    static PENDING: std::cell::RefCell<Pending> = const {
        std::cell::RefCell::new(Pending { log: 0, depth: 0, events: Vec::new() })
    };
}

/// Ends a batch when dropped (see [`EventLog::batch`]).
#[cfg(not(loom))]
pub(crate) struct Batch<'a> {
    log: &'a EventLog,
    counted: bool,
}

#[cfg(not(loom))]
impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        let done = PENDING.with_borrow_mut(|p| {
            p.depth = p.depth.saturating_sub(1);
            (p.depth == 0 && !p.events.is_empty()).then(|| std::mem::take(&mut p.events))
        });
        if let Some(events) = done {
            self.log.batches.push(events);
        }
    }
}

#[cfg(not(loom))]
impl EventLog {
    pub(crate) fn new() -> EventLog {
        use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        EventLog {
            id: NEXT.fetch_add(1, Relaxed),
            batches: crossbeam_queue::SegQueue::new(),
            rest: crossbeam_queue::SegQueue::new(),
        }
    }

    /// Opens a batch on this thread until the guard drops; nested batches join the outer one.
    pub(crate) fn batch(&self) -> Batch<'_> {
        let counted = PENDING.with_borrow_mut(|p| {
            if p.depth == 0 {
                p.log = self.id;
            }
            let mine = p.log == self.id;
            if mine {
                p.depth += 1;
            }
            mine
        });
        Batch { log: self, counted }
    }

    pub(crate) fn push(&self, e: crate::model::Event) {
        let direct = PENDING.with_borrow_mut(|p| {
            if p.depth > 0 && p.log == self.id {
                p.events.push(e);
                None
            } else {
                Some(e)
            }
        });
        if let Some(e) = direct {
            self.batches.push(vec![e]);
        }
    }

    pub(crate) fn pop(&self) -> Option<crate::model::Event> {
        if let Some(e) = self.rest.pop() {
            return Some(e);
        }
        let mut batch = self.batches.pop()?.into_iter();
        let first = batch.next();
        for e in batch {
            self.rest.push(e);
        }
        first
    }

    pub(crate) fn drain(&self, out: &mut Vec<crate::model::Event>) {
        while let Some(e) = self.rest.pop() {
            out.push(e);
        }
        while let Some(mut batch) = self.batches.pop() {
            out.append(&mut batch);
        }
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

/// Loom stand-in for [`EventLog`]: every event is pushed at once.
#[cfg(loom)]
pub(crate) struct EventLog(Fifo<crate::model::Event>);

/// Loom stand-in for the batch guard.
#[cfg(loom)]
pub(crate) struct Batch;

#[cfg(loom)]
impl EventLog {
    pub(crate) fn new() -> EventLog {
        EventLog(Fifo::new())
    }
    pub(crate) fn batch(&self) -> Batch {
        Batch
    }
    pub(crate) fn push(&self, e: crate::model::Event) {
        self.0.push(e);
    }
    pub(crate) fn pop(&self) -> Option<crate::model::Event> {
        self.0.pop()
    }
    pub(crate) fn drain(&self, out: &mut Vec<crate::model::Event>) {
        out.extend(std::iter::from_fn(|| self.0.pop()));
    }
}
