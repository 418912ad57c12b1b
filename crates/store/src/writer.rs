//! The record writer: a bounded in-memory queue drained by one thread that writes batches to
//! the database, or to the spool while the database is unreachable or slow, and replays the
//! spool in order when the database is back.
//!
//! The thread runs its own single-threaded tokio runtime and its own connection pool, so
//! nothing it does (slow inserts, `fsync`, reconnect back-off) can stall the caller's runtime.
//! Callers only ever do a non-blocking `try_send`.
//!
//! Order: records are written in the order they were sent. While the spool holds a backlog,
//! new records are appended behind it, and go straight to the database again only once the
//! backlog is fully replayed.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::clients::DirectoryCache;
use crate::db::{Closed, Db, Target, is_data_error};
use crate::model::Record;
use crate::spool::Spool;
use crate::{StoreError, StoreOptions, clock};

/// Most records appended (and fsync'd) to the spool at once; a full disk still takes what fits.
const SPOOL_CHUNK: usize = 256;

/// Counters shared by the sink, the writer thread and the store handle.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) pending: AtomicU64,
    pub(crate) write_errors: AtomicU64,
    pub(crate) spooled: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) written: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) spool_corrupt: AtomicU64,
    pub(crate) database_up: AtomicBool,
    pub(crate) migrated: AtomicBool,
    pub(crate) spool_failing: AtomicBool,
    pub(crate) dropping: AtomicBool,
}

/// A snapshot of the writer's counters. `pending` backs the `switchboard_cdr_pending` gauge and
/// `write_errors` the `switchboard_cdr_write_errors_total` counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriterStats {
    /// Records accepted by [`RecordSink::send`] (or found in the spool at start-up) and not yet
    /// in the database: in the queue, in memory or in the spool.
    pub pending: u64,
    /// Failed write operations: a batch the database did not take (unreachable, timed out,
    /// or a row it rejected) or a spool append that failed (disk full, I/O error).
    pub write_errors: u64,
    /// Records waiting in the spool (durable, not yet replayed).
    pub spooled: u64,
    /// Records refused by [`RecordSink::send`] because the queue was full, or sent after the
    /// store was closed. These are lost.
    pub dropped: u64,
    /// Records committed to the database by this process.
    pub written: u64,
    /// Records the database refused as invalid (constraint violations); they are kept in
    /// `rejected.spool` in the spool directory, not retried.
    pub rejected: u64,
    /// Damaged spool lines skipped on replay (torn by a crash, or a bad checksum).
    pub spool_corrupt: u64,
    /// Whether the last database operation succeeded.
    pub database_up: bool,
    /// Whether records are held in memory because the last spool append failed (disk full,
    /// I/O error); cleared when they reach the spool or the database.
    pub spool_failing: bool,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> WriterStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WriterStats {
            pending: get(&self.pending),
            write_errors: get(&self.write_errors),
            spooled: get(&self.spooled),
            dropped: get(&self.dropped),
            written: get(&self.written),
            rejected: get(&self.rejected),
            spool_corrupt: get(&self.spool_corrupt),
            database_up: self.database_up.load(Ordering::Relaxed),
            spool_failing: self.spool_failing.load(Ordering::Relaxed),
        }
    }

    fn add(a: &AtomicU64, n: usize) {
        a.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn sub(a: &AtomicU64, n: usize) {
        // Saturating: never wraps even if counts disagree after a damaged spool.
        let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(n as u64))
        });
    }
}

/// Where call control sends records. Cheap to clone; [`RecordSink::send`] never blocks or waits.
#[derive(Debug, Clone)]
pub struct RecordSink {
    tx: mpsc::Sender<Record>,
    counters: Arc<Counters>,
}

impl RecordSink {
    pub(crate) fn new(tx: mpsc::Sender<Record>, counters: Arc<Counters>) -> RecordSink {
        RecordSink { tx, counters }
    }

    /// Whether the queue has at least half its places free: a sender of records it can do
    /// without under load (the refusals of a flood) sends them only then, so the other half
    /// stays for the records of calls.
    pub fn has_spare_room(&self) -> bool {
        self.tx.capacity() >= self.tx.max_capacity() / 2
    }

    /// Queues a record for writing. Returns at once. Fails only when the bounded queue is full
    /// ([`StoreError::Overloaded`]: the database and the spool are both failing or far behind)
    /// or the store is closed; the record is then counted in [`WriterStats::dropped`].
    pub fn send(&self, record: impl Into<Record>) -> Result<(), StoreError> {
        Counters::add(&self.counters.pending, 1);
        match self.tx.try_send(record.into()) {
            Ok(()) => Ok(()),
            Err(e) => {
                Counters::sub(&self.counters.pending, 1);
                Counters::add(&self.counters.dropped, 1);
                let closed = matches!(e, mpsc::error::TrySendError::Closed(_));
                if !self.counters.dropping.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        closed,
                        "record queue refused a record: it is lost (see switchboard_cdr_pending)"
                    );
                }
                Err(if closed {
                    StoreError::Closed
                } else {
                    StoreError::Overloaded
                })
            }
        }
    }

    /// The writer's counters.
    pub fn stats(&self) -> WriterStats {
        self.counters.snapshot()
    }
}

/// Requests from the store handle to the writer thread.
#[derive(Debug)]
pub(crate) enum Control {
    /// Answer once every record queued before this request is in the database or the spool.
    Flush(oneshot::Sender<()>),
    /// Finish what can be finished quickly and stop.
    Shutdown,
}

pub(crate) struct Writer {
    /// When the store was opened: journal rows of calls that started before are another
    /// run's (see [`crate::StoreOptions::journal_node`]).
    pub(crate) opened_at: crate::model::Timestamp,
    pub(crate) target: Target,
    pub(crate) opts: StoreOptions,
    pub(crate) rx: mpsc::Receiver<Record>,
    pub(crate) ctl: mpsc::UnboundedReceiver<Control>,
    pub(crate) spool: Spool,
    pub(crate) counters: Arc<Counters>,
    pub(crate) directory: Arc<DirectoryCache>,
}

/// The longest a record waits in memory for more to share its transaction when the database
/// is keeping up. At 2,000 calls/s a call's records come one by one; written as they come, each
/// transaction carries two or three rows, and its commit, not the rows, is the cost (SQLite
/// rewrites the same pages into its log at every commit). A `flush`, a full batch and shutdown
/// write at once.
const GATHER: Duration = Duration::from_millis(20);

/// Until when records that came into memory at `since` wait for more (`None`: write now, or
/// nothing in memory). `urgent` (a full batch, a flush, shutdown, a spool backlog) writes now.
fn gather_deadline(since: Option<Instant>, now: Instant, urgent: bool) -> Option<Instant> {
    let until = since? + GATHER;
    (until > now && !urgent).then_some(until)
}

struct Running {
    w: Writer,
    db: Db,
    pending: VecDeque<Record>,
    /// When the oldest record in `pending` came in (see [`GATHER`]).
    pending_since: Option<Instant>,
    db_retry_at: Option<Instant>,
    spool_retry_at: Option<Instant>,
    next_refresh: Instant,
    flush_waiters: Vec<oneshot::Sender<()>>,
    shutting_down: bool,
    /// Journal rows of an earlier run are still to be closed.
    journal_to_close: bool,
}

impl Writer {
    /// Runs the writer until shutdown. Call on the writer thread's runtime.
    pub(crate) async fn run(self) {
        let db = Db::connect_lazy(&self.target, &self.opts);
        let now = clock::monotonic();
        let journal_to_close = self.opts.journal_node.is_some();
        let mut r = Running {
            w: self,
            db,
            pending: VecDeque::new(),
            pending_since: None,
            db_retry_at: None,
            spool_retry_at: None,
            next_refresh: now,
            journal_to_close,
            flush_waiters: Vec::new(),
            shutting_down: false,
        };
        r.run().await;
    }
}

impl Running {
    fn db_allowed(&self, now: Instant) -> bool {
        self.db_retry_at.is_none_or(|t| now >= t)
    }

    fn spool_allowed(&self, now: Instant) -> bool {
        self.spool_retry_at.is_none_or(|t| now >= t)
    }

    /// How long the loop may sleep before it has something to do.
    fn idle_wait(&self) -> Duration {
        let now = clock::monotonic();
        let db = self.db_allowed(now);
        let work = (db && (self.w.spool.has_backlog() || !self.pending.is_empty()))
            || (!db && !self.pending.is_empty() && self.spool_allowed(now));
        if work {
            return self
                .gather_until(now)
                .map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
        }
        let mut until = self.next_refresh;
        for t in [self.db_retry_at, self.spool_retry_at]
            .into_iter()
            .flatten()
        {
            until = until.min(t);
        }
        until
            .saturating_duration_since(now)
            .clamp(Duration::from_millis(1), self.w.opts.retry_interval)
    }

    /// Until when the records in memory wait for more before they are written (`None`: write
    /// now).
    fn gather_until(&self, now: Instant) -> Option<Instant> {
        let urgent = self.pending.len() >= self.w.opts.batch_size
            || !self.flush_waiters.is_empty()
            || self.shutting_down
            || self.w.spool.has_backlog();
        gather_deadline(self.pending_since, now, urgent)
    }

    /// Notes that records came into memory.
    fn took_in(&mut self) {
        if self.pending_since.is_none() && !self.pending.is_empty() {
            self.pending_since = Some(clock::monotonic());
        }
    }

    fn room(&self) -> bool {
        self.pending.len() < self.w.opts.memory_limit
    }

    /// Moves what is queued into memory, up to the memory bound.
    fn drain_queue(&mut self) {
        while self.room() {
            match self.w.rx.try_recv() {
                Ok(r) => self.pending.push_back(r),
                Err(_) => break,
            }
        }
        self.took_in();
        self.w.counters.dropping.store(false, Ordering::Relaxed);
    }

    async fn run(&mut self) {
        let batch = self.w.opts.batch_size.max(1);
        let mut buf = Vec::with_capacity(batch);
        loop {
            let wait = self.idle_wait();
            let room = self.room();
            tokio::select! {
                biased;
                c = self.w.ctl.recv() => match c {
                    Some(Control::Flush(done)) => {
                        self.drain_queue();
                        self.flush_waiters.push(done);
                    }
                    Some(Control::Shutdown) | None => self.shutting_down = true,
                },
                n = self.w.rx.recv_many(&mut buf, batch), if room => {
                    if n == 0 {
                        self.shutting_down = true; // every sink is gone
                    }
                    self.pending.extend(buf.drain(..));
                    self.took_in();
                    self.w.counters.dropping.store(false, Ordering::Relaxed);
                }
                () = tokio::time::sleep(wait) => {}
            }
            if self.shutting_down {
                self.finish().await;
                return;
            }
            self.step().await;
            self.answer_flushes();
            self.refresh_directory().await;
        }
    }

    fn answer_flushes(&mut self) {
        if self.flush_waiters.is_empty() || !self.pending.is_empty() || !self.w.rx.is_empty() {
            return;
        }
        for done in self.flush_waiters.drain(..) {
            let _ = done.send(());
        }
    }

    /// On shutdown: take in what was queued, and write it (database or spool) for a bounded time.
    async fn finish(&mut self) {
        self.drain_queue();
        let deadline = clock::monotonic() + self.w.opts.db_timeout;
        while !self.pending.is_empty() && clock::monotonic() < deadline {
            let before = self.pending.len();
            self.step().await;
            if self.pending.len() == before && !self.db_allowed(clock::monotonic()) {
                self.spool_pending(true);
                if !self.pending.is_empty() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        self.answer_flushes();
        if !self.pending.is_empty() {
            tracing::error!(
                records = self.pending.len(),
                "record writer stopped with records that are neither in the database nor spooled"
            );
        }
        self.db.close().await;
    }

    async fn step(&mut self) {
        let now = clock::monotonic();
        // While a backlog is spooled, new records join its end to keep their order.
        if self.w.spool.has_backlog() || !self.db_allowed(now) {
            self.spool_pending(false);
        }
        if self.db_allowed(now) && !self.ensure_migrated().await {
            self.spool_pending(false);
            return;
        }
        if self.w.spool.has_backlog() && self.db_allowed(now) {
            self.replay_chunk().await;
        }
        if !self.w.spool.has_backlog()
            && self.db_allowed(now)
            && !self.pending.is_empty()
            && self.gather_until(now).is_none()
        {
            self.insert_direct().await;
        }
        if self.journal_to_close && !self.w.spool.has_backlog() && self.db_allowed(now) {
            self.close_left_open().await;
        }
        if !self.db_allowed(clock::monotonic()) {
            self.spool_pending(false);
        }
        if self.pending.is_empty() {
            self.pending_since = None;
        }
    }

    fn db_down(&mut self, err: &str) {
        Counters::add(&self.w.counters.write_errors, 1);
        if self.w.counters.database_up.swap(false, Ordering::Relaxed) || self.db_retry_at.is_none()
        {
            tracing::warn!(error = err, "database unavailable: records go to the spool");
        }
        self.db_retry_at = Some(clock::monotonic() + self.w.opts.retry_interval);
    }

    fn db_up(&mut self) {
        if !self.w.counters.database_up.swap(true, Ordering::Relaxed) && self.db_retry_at.is_some()
        {
            tracing::info!("database reachable again: replaying the spool");
        }
        self.db_retry_at = None;
    }

    /// Runs the migrations once the database is reachable; false while it is not.
    async fn ensure_migrated(&mut self) -> bool {
        if self.w.counters.migrated.load(Ordering::Relaxed) {
            return true;
        }
        match tokio::time::timeout(self.w.opts.db_timeout, self.db.migrate(&self.w.target)).await {
            Ok(Ok(())) => {
                self.w.counters.migrated.store(true, Ordering::Relaxed);
                self.db_up();
                self.next_refresh = clock::monotonic();
                true
            }
            Ok(Err(e)) => {
                self.db_down(&e.to_string());
                false
            }
            Err(_) => {
                self.db_down("migrations timed out");
                false
            }
        }
    }

    /// Appends everything in memory to the spool. `force` ignores the retry pacing.
    fn spool_pending(&mut self, force: bool) {
        if self.pending.is_empty() || !(force || self.spool_allowed(clock::monotonic())) {
            return;
        }
        let mut chunk = SPOOL_CHUNK;
        while !self.pending.is_empty() {
            let n = self.pending.len().min(chunk);
            self.pending.make_contiguous();
            let records = self.pending.as_slices().0.get(..n).unwrap_or_default();
            match self.w.spool.append(records) {
                Ok(()) => {
                    self.pending.drain(..n);
                    self.spool_retry_at = None;
                    if self.w.counters.spool_failing.swap(false, Ordering::Relaxed) {
                        tracing::info!("record spool writable again");
                    }
                }
                Err(_) if n > 1 => chunk = n / 2, // a nearly full disk may take a smaller chunk
                Err(e) => {
                    Counters::add(&self.w.counters.write_errors, 1);
                    self.spool_retry_at = Some(clock::monotonic() + self.w.opts.retry_interval);
                    if !self.w.counters.spool_failing.swap(true, Ordering::Relaxed) {
                        tracing::error!(
                            error = %e,
                            held_in_memory = self.pending.len(),
                            limit = self.w.opts.memory_limit,
                            "cannot write the record spool: records are held in memory until it or the database recovers"
                        );
                    }
                    break;
                }
            }
        }
        self.w
            .counters
            .spooled
            .store(self.w.spool.backlog(), Ordering::Relaxed);
    }

    async fn insert(&self, records: &[Record]) -> Result<(), (bool, String)> {
        match tokio::time::timeout(
            self.w.opts.db_timeout,
            self.db
                .insert_records(records, self.w.opts.journal_node.as_deref()),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err((is_data_error(&e), e.to_string())),
            Err(_) => Err((false, "insert timed out".to_owned())),
        }
    }

    /// Writes one batch from memory to the database.
    async fn insert_direct(&mut self) {
        let n = self.pending.len().min(self.w.opts.batch_size.max(1));
        self.pending.make_contiguous();
        let batch = self.pending.as_slices().0.get(..n).unwrap_or_default();
        match self.insert(batch).await {
            Ok(()) => {
                self.pending.drain(..n);
                self.written(n);
                self.db_up();
                if self.pending.is_empty() {
                    // Nothing is held in memory for the spool any more.
                    self.spool_retry_at = None;
                    self.w
                        .counters
                        .spool_failing
                        .store(false, Ordering::Relaxed);
                }
            }
            Err((true, _)) => {
                let batch: Vec<Record> = self.pending.iter().take(n).cloned().collect();
                let done = self.isolate(&batch).await;
                self.pending.drain(..done);
            }
            Err((false, e)) => self.db_down(&e),
        }
    }

    fn written(&self, n: usize) {
        Counters::add(&self.w.counters.written, n);
        Counters::sub(&self.w.counters.pending, n);
    }

    /// A batch holds a row the database refuses: write row by row and set the refused rows
    /// aside in `rejected.spool`. Returns how many records from the front were dealt with.
    async fn isolate(&mut self, records: &[Record]) -> usize {
        for (i, r) in records.iter().enumerate() {
            let one = std::slice::from_ref(r);
            match self.insert(one).await {
                Ok(()) => self.written(1),
                Err((true, e)) => {
                    if let Err(io) = self.w.spool.reject(r) {
                        tracing::error!(error = %io, "cannot keep a rejected record");
                        return i;
                    }
                    tracing::error!(
                        id = r.id(),
                        error = e,
                        "database rejected a record; kept in rejected.spool"
                    );
                    Counters::add(&self.w.counters.write_errors, 1);
                    Counters::add(&self.w.counters.rejected, 1);
                    Counters::sub(&self.w.counters.pending, 1);
                }
                Err((false, e)) => {
                    self.db_down(&e);
                    return i;
                }
            }
        }
        self.db_up();
        records.len()
    }

    /// Closes what an earlier run of this server left open (it was killed with calls in
    /// progress or agents logged in): calls become `interrupted` records ended at the last time
    /// known, their open queue entries and the agents' sessions get closing rows.
    async fn close_left_open(&mut self) {
        let Some(node) = self.w.opts.journal_node.clone() else {
            self.journal_to_close = false;
            return;
        };
        let closing = self.db.close_left_open(&node, self.w.opened_at);
        match tokio::time::timeout(self.w.opts.db_timeout, closing).await {
            Ok(Ok(closed)) => {
                self.journal_to_close = false;
                if closed != Closed::default() {
                    tracing::warn!(
                        calls = closed.calls,
                        queue_entries = closed.queue_entries,
                        agent_sessions = closed.agent_sessions,
                        node = %node,
                        "records left open when the server last stopped are closed: calls \
                         recorded as interrupted, their queue entries and the agents' sessions \
                         closed"
                    );
                }
            }
            Ok(Err(e)) => self.db_down(&e.to_string()),
            Err(_) => self.db_down("closing the call journal timed out"),
        }
    }

    /// Replays one chunk of the spool into the database.
    async fn replay_chunk(&mut self) {
        let chunk = match self.w.spool.read_chunk(self.w.opts.batch_size.max(1)) {
            Ok(c) => c,
            Err(e) => {
                Counters::add(&self.w.counters.write_errors, 1);
                tracing::error!(error = %e, "cannot read the record spool");
                self.db_retry_at = Some(clock::monotonic() + self.w.opts.retry_interval);
                return;
            }
        };
        if chunk.corrupt > 0 {
            Counters::add(&self.w.counters.spool_corrupt, chunk.corrupt as usize);
            tracing::warn!(lines = chunk.corrupt, "skipped damaged record spool lines");
        }
        let n = chunk.records.len();
        let ok = match self.insert(&chunk.records).await {
            Ok(()) => {
                self.written(n);
                self.db_up();
                true
            }
            Err((true, _)) => self.isolate(&chunk.records).await == n,
            Err((false, e)) => {
                self.db_down(&e);
                false
            }
        };
        if ok && let Err(e) = self.w.spool.commit(&chunk) {
            tracing::error!(error = %e, "cannot remove a replayed spool segment");
        }
        // Otherwise the chunk is read again next time; rows already stored are skipped by id.
        self.w
            .counters
            .spooled
            .store(self.w.spool.backlog(), Ordering::Relaxed);
    }

    /// Reloads the client directory when another process changed it.
    async fn refresh_directory(&mut self) {
        let now = clock::monotonic();
        if now < self.next_refresh {
            return;
        }
        self.next_refresh = now + self.w.opts.directory_refresh;
        if !self.w.counters.migrated.load(Ordering::Relaxed) || !self.db_allowed(now) {
            return;
        }
        let timeout = self.w.opts.db_timeout;
        let version = match tokio::time::timeout(timeout, self.db.directory_version()).await {
            Ok(Ok(v)) => v,
            _ => return,
        };
        if version == self.w.directory.version() {
            return;
        }
        if let Ok(Ok((version, clients))) =
            tokio::time::timeout(timeout, self.db.load_directory()).await
        {
            self.w.directory.replace(version, clients);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AgentEventKind, AgentSessionEvent};

    /// Records wait at most [`GATHER`] from the first of them, and not at all when something
    /// needs them written (a full batch, a flush, shutdown, a spool backlog).
    #[test]
    fn records_gather_for_twenty_milliseconds_unless_urgent() {
        let t0 = clock::monotonic();
        let ms = Duration::from_millis;
        assert_eq!(gather_deadline(None, t0, false), None, "nothing in memory");
        assert_eq!(gather_deadline(Some(t0), t0, false), Some(t0 + ms(20)));
        assert_eq!(
            gather_deadline(Some(t0), t0 + ms(19), false),
            Some(t0 + ms(20)),
            "later records do not push the deadline"
        );
        assert_eq!(gather_deadline(Some(t0), t0 + ms(20), false), None);
        assert_eq!(gather_deadline(Some(t0), t0 + ms(500), false), None);
        assert_eq!(gather_deadline(Some(t0), t0, true), None, "urgent");
    }

    /// Half the queue is kept for the records of calls: `has_spare_room` turns false once
    /// more than half of it is taken, and true again as it drains.
    #[test]
    fn spare_room_is_half_the_queue() {
        let (tx, mut rx) = mpsc::channel(4);
        let sink = RecordSink::new(tx, Arc::new(Counters::default()));
        let event = || AgentSessionEvent {
            id: crate::new_record_id(),
            at: crate::chrono::DateTime::default(),
            agent_id: "ana".into(),
            event: AgentEventKind::Login,
            state: None,
            reason: None,
        };
        assert!(sink.has_spare_room());
        sink.send(event()).unwrap();
        sink.send(event()).unwrap();
        assert!(sink.has_spare_room(), "two of four taken");
        sink.send(event()).unwrap();
        assert!(!sink.has_spare_room(), "three of four taken");
        assert!(rx.try_recv().is_ok());
        assert!(sink.has_spare_room(), "drained to two");
    }
}
