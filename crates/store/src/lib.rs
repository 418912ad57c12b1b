//! Switchboard's records in PostgreSQL or SQLite. The only crate that knows SQL.
//!
//! What it keeps: call-detail records (`calls`), queue events (`queue_events`, like Asterisk's
//! `queue_log`), agent session events (`agent_sessions`: login, logout, state changes), the
//! client directory (`clients`) and "call me back" requests (`callbacks`). The backend is
//! chosen by the URL: `postgres://…` or `sqlite://path` (created if missing; the default
//! `sqlite://switchboard.db` needs no database server). Migrations for both backends are
//! embedded and applied by [`Store::open`] (when the database is reachable) and [`Store::migrate`].
//!
//! What it is not: it holds no call logic, reads no configuration files and exposes no metrics
//! registry. It counts ([`WriterStats`]); the binary turns the counts into Prometheus metrics
//! (`switchboard_cdr_pending` = [`WriterStats::pending`],
//! `switchboard_cdr_write_errors_total` = [`WriterStats::write_errors`]).
//!
//! # Records are never lost
//! Call control hands records to a [`RecordSink`]; [`RecordSink::send`] never blocks or awaits.
//! A writer thread (its own runtime and connection pool) takes them from a bounded queue and
//! inserts them in batches (multi-row `INSERT … ON CONFLICT (id) DO NOTHING`, one transaction
//! per batch). When the database is unreachable or slower than [`StoreOptions::db_timeout`],
//! records are appended to a local spool (checksummed JSON lines, `fdatasync`'d per batch) and
//! replayed in order once the database answers again. Every record carries a caller-chosen
//! unique id, so a replay after a crash never stores a record twice. When the spool cannot be
//! written either (disk full), records stay in memory up to [`StoreOptions::memory_limit`]
//! plus the queue bound, write errors are counted, and `send` keeps returning at once; only a
//! full queue makes `send` refuse a record (counted in [`WriterStats::dropped`]).
//!
//! # API used by the server
//! ```no_run
//! # async fn demo() -> Result<(), switchboard_store::StoreError> {
//! use std::{path::Path, time::Duration};
//! use switchboard_store::*;
//!
//! let store = Store::open("sqlite://switchboard.db", Path::new("spool"), StoreOptions::default()).await?;
//! let sink = store.writer(); // clone into every call task
//! # let record: Record = unimplemented_record();
//! sink.send(record)?; // never waits
//! let ready = store.is_ready().await; // for /readyz
//! let stats = store.stats(); // for /metrics
//! let client = store.clients().get("+1 555 0100"); // cached, no database round trip
//! let calls = store.recent_calls(None, 50).await?; // GET /api/v1/calls
//! store.flush(Duration::from_secs(5)).await?; // graceful shutdown
//! # let _ = (ready, stats, client, calls);
//! # Ok(()) }
//! # fn unimplemented_record() -> switchboard_store::Record { panic!() }
//! ```
//!
//! Times come from the caller; this crate reads the clock only in its `clock` module.

mod callbacks;
mod campaigns;
mod clients;
mod clock;
mod db;
mod dnc;
mod model;
pub mod reports;
mod spool;
mod supervision;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub use callbacks::{AttemptEnd, CancelRefused};
pub use campaigns::{Campaign, CampaignCounts, CampaignStatus, Contact, ContactEnd, ContactStatus};
pub use chrono;
pub use clients::{CSV_HEADER, Directory, ImportReport};
pub use clock::now_utc;
pub use dnc::DncEntry;
pub use model::{
    AgentEventKind, AgentSessionEvent, CallRecord, Callback, CallbackStatus, Client, ClientType,
    Direction, HangupSide, Money, Outcome, QueueEvent, QueueEventKind, Record, Timestamp,
    new_record_id, normalize_number,
};
pub use supervision::{Disposition, Escalation, Quality, StoredCall};
pub use writer::{RecordSink, WriterStats};

use clients::DirectoryCache;
use db::{Db, Target, Val};
use spool::Spool;
use writer::{Control, Counters, Writer};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `[database] url` is not a usable database URL.
    #[error("database url {url:?} is not usable: {reason}")]
    Url {
        /// The URL, password hidden.
        url: String,
        /// Why.
        reason: String,
    },
    /// The spool directory cannot be used.
    #[error("record spool: cannot {what}: {source}")]
    Spool {
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the spool directory.
    #[error("record spool {0} is in use by another process")]
    SpoolLocked(PathBuf),
    /// Another I/O error (reading an import file, starting the writer thread).
    #[error("cannot {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The database refused or could not run a statement.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A value outside its allowed set (client type, number, amount, …).
    #[error("invalid {what} {value:?}: expected {expected}")]
    InvalidValue {
        /// What kind of value.
        what: &'static str,
        /// The value given.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// The record queue is full; the record was not accepted.
    #[error("record queue full: the record was dropped")]
    Overloaded,
    /// The store is closed; the record was not accepted.
    #[error("record store is closed")]
    Closed,
    /// [`Store::flush`] did not finish in time.
    #[error("records still pending after the flush timeout: {pending}")]
    FlushTimeout {
        /// Records not yet in the database or the spool.
        pending: u64,
    },
}

/// Tuning for [`Store::open`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Capacity of the queue between [`RecordSink::send`] and the writer thread.
    pub queue_capacity: usize,
    /// Records the writer holds in memory when neither the database nor the spool takes them.
    pub memory_limit: usize,
    /// Most records per database transaction.
    pub batch_size: usize,
    /// A database operation slower than this counts as a failure (records go to the spool);
    /// also the connection pool's acquire timeout.
    pub db_timeout: Duration,
    /// How long to wait before trying a failed database or spool again.
    pub retry_interval: Duration,
    /// Spool segment size before a new segment file is started.
    pub segment_bytes: u64,
    /// How often the writer checks whether the client directory changed in the database.
    pub directory_refresh: Duration,
    /// Connections per pool (the writer and the API each have a pool).
    pub max_connections: u32,
    /// The name this server journals calls in progress under ([`CallRecord::journal`]).
    /// When set, the writer closes the rows this name left open — calls that started before
    /// this store was opened — as `interrupted`, once the database is reachable and the spool
    /// replayed (so a final record still in the spool is stored first).
    pub journal_node: Option<String>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            queue_capacity: 65_536,
            memory_limit: 65_536,
            batch_size: 1_024,
            db_timeout: Duration::from_secs(5),
            retry_interval: Duration::from_secs(1),
            segment_bytes: 8 << 20,
            directory_refresh: Duration::from_secs(5),
            max_connections: 4,
            journal_node: None,
        }
    }
}

/// Which database a store uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL.
    Postgres,
    /// SQLite (embedded).
    Sqlite,
}

#[derive(Debug)]
struct Inner {
    target: Target,
    db: Db,
    counters: Arc<Counters>,
    sink: RecordSink,
    ctl: mpsc::UnboundedSender<Control>,
    directory: Arc<DirectoryCache>,
    writer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    migrate_lock: tokio::sync::Mutex<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.ctl.send(Control::Shutdown);
    }
}

/// The record store. Cheap to clone; the writer thread stops when the last clone is dropped
/// (after a bounded attempt to write what is queued) or on [`Store::close`].
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Store {
    /// Opens the store: parses the URL, locks the spool directory, applies migrations when the
    /// database is reachable within [`StoreOptions::db_timeout`], loads the client directory,
    /// and starts the writer thread, which replays any spooled records.
    ///
    /// A database that is down does not make this fail: the store starts, spools records,
    /// reports [`Store::is_ready`] false and reconnects in the background. It fails for a
    /// malformed URL, an unusable spool directory, or a database whose schema is newer than
    /// this build.
    pub async fn open(
        url: &str,
        spool_dir: &Path,
        opts: StoreOptions,
    ) -> Result<Store, StoreError> {
        let target = Target::parse(url)?;
        let (spool, recovered) = Spool::open(spool_dir, opts.segment_bytes)?;
        let counters = Arc::new(Counters::default());
        counters.pending.store(recovered.records, Ordering::Relaxed);
        counters.spooled.store(recovered.records, Ordering::Relaxed);
        counters
            .spool_corrupt
            .store(recovered.corrupt, Ordering::Relaxed);
        if recovered.records > 0 || recovered.corrupt > 0 {
            tracing::info!(
                records = recovered.records,
                damaged_lines = recovered.corrupt,
                segments = recovered.segments,
                spool = %spool_dir.display(),
                "records found in the spool: they will be replayed"
            );
        }
        let db = Db::connect_lazy(&target, &opts);
        let directory = Arc::new(DirectoryCache::default());
        match tokio::time::timeout(opts.db_timeout, db.migrate(&target)).await {
            Ok(Ok(())) => {
                counters.migrated.store(true, Ordering::Relaxed);
                counters.database_up.store(true, Ordering::Relaxed);
                match db.load_directory().await {
                    Ok((version, clients)) => directory.replace(version, clients),
                    Err(e) => tracing::warn!(error = %e, "cannot load the client directory yet"),
                }
            }
            Ok(Err(StoreError::Migrate(
                e @ (sqlx::migrate::MigrateError::VersionMissing(_)
                | sqlx::migrate::MigrateError::VersionMismatch(_)
                | sqlx::migrate::MigrateError::Dirty(_)),
            ))) => return Err(StoreError::Migrate(e)),
            Ok(Err(e)) => tracing::warn!(
                url = %db::redact(url),
                error = %e,
                "database not reachable at start-up: records are spooled until it is"
            ),
            Err(_) => tracing::warn!(
                url = %db::redact(url),
                "database did not answer at start-up: records are spooled until it does"
            ),
        }

        let (tx, rx) = mpsc::channel(opts.queue_capacity.max(1));
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| StoreError::Io {
                what: "start the record writer runtime".into(),
                source,
            })?;
        let writer = Writer {
            opened_at: clock::now_utc(),
            target: target.clone(),
            opts,
            rx,
            ctl: ctl_rx,
            spool,
            counters: counters.clone(),
            directory: directory.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("switchboard-records".into())
            .spawn(move || runtime.block_on(writer.run()))
            .map_err(|source| StoreError::Io {
                what: "start the record writer thread".into(),
                source,
            })?;
        let sink = RecordSink::new(tx, counters.clone());
        Ok(Store {
            inner: Arc::new(Inner {
                target,
                db,
                counters,
                sink,
                ctl: ctl_tx,
                directory,
                writer: std::sync::Mutex::new(Some(handle)),
                migrate_lock: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Applies the migrations to the database at `url` and returns (`switchboard migrate`).
    /// Fails when the database cannot be reached.
    pub async fn migrate(url: &str) -> Result<(), StoreError> {
        let target = Target::parse(url)?;
        const LIMIT: Duration = Duration::from_secs(30);
        match tokio::time::timeout(LIMIT, Db::migrate_once(&target)).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Io {
                what: format!("reach the database at {}", db::redact(url)),
                source: std::io::ErrorKind::TimedOut.into(),
            }),
        }
    }

    /// The sink call control sends records to.
    pub fn writer(&self) -> RecordSink {
        self.inner.sink.clone()
    }

    /// Which backend the URL chose.
    pub fn backend(&self) -> Backend {
        match self.inner.target {
            Target::Postgres(_) => Backend::Postgres,
            Target::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Readiness: the database answers now and the schema is migrated.
    pub async fn is_ready(&self) -> bool {
        if !self.inner.counters.migrated.load(Ordering::Relaxed) {
            return false;
        }
        matches!(
            tokio::time::timeout(Duration::from_secs(2), self.inner.db.ping()).await,
            Ok(Ok(()))
        )
    }

    /// The writer's counters.
    pub fn stats(&self) -> WriterStats {
        self.inner.counters.snapshot()
    }

    /// Waits until every record sent before this call is in the database or fsync'd in the
    /// spool (for graceful shutdown). Spooled records are replayed on the next start.
    pub async fn flush(&self, timeout: Duration) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        if self.inner.ctl.send(Control::Flush(done)).is_err() {
            return Err(StoreError::Closed);
        }
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(StoreError::Closed),
            Err(_) => Err(StoreError::FlushTimeout {
                pending: self.stats().pending,
            }),
        }
    }

    /// Flushes, stops the writer thread and waits for it. Sinks still held elsewhere refuse
    /// records afterwards.
    pub async fn close(self, timeout: Duration) -> Result<(), StoreError> {
        let flushed = self.flush(timeout).await;
        let _ = self.inner.ctl.send(Control::Shutdown);
        let handle = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        self.inner.db.close().await;
        flushed
    }

    /// The client directory.
    pub fn clients(&self) -> Directory {
        Directory::new(self.inner.db.clone(), self.inner.directory.clone())
    }

    /// Runs one INSERT, UPDATE or DELETE on the migrated database; how many rows it changed.
    async fn execute(&self, sql: &str, vals: &[Val<'_>]) -> Result<u64, StoreError> {
        Ok(self.ready_db().await?.execute(sql, vals).await?)
    }

    /// As [`Self::execute`], for a conditional UPDATE: whether it found its row (still in the
    /// state it requires).
    async fn changed(&self, sql: &str, vals: &[Val<'_>]) -> Result<bool, StoreError> {
        Ok(self.execute(sql, vals).await? > 0)
    }

    /// The database, migrated first if start-up could not (database down then).
    async fn ready_db(&self) -> Result<&Db, StoreError> {
        if !self.inner.counters.migrated.load(Ordering::Relaxed) {
            let _guard = self.inner.migrate_lock.lock().await;
            if !self.inner.counters.migrated.load(Ordering::Relaxed) {
                self.inner.db.migrate(&self.inner.target).await?;
                self.inner.counters.migrated.store(true, Ordering::Relaxed);
            }
        }
        Ok(&self.inner.db)
    }

    /// Call-detail records of ended calls that started at or after `since` (all when
    /// `None`), newest first, at most `limit`. Records still queued or spooled are not
    /// included, nor journal rows still open (calls in progress).
    pub async fn recent_calls(
        &self,
        since: Option<Timestamp>,
        limit: u32,
    ) -> Result<Vec<CallRecord>, StoreError> {
        self.recent_rows(since, limit, false).await
    }

    /// As [`Self::recent_calls`]; with `open_journal`, the journal rows still open (calls in
    /// progress, or left by a node that has not restarted yet) are included too.
    pub async fn recent_rows(
        &self,
        since: Option<Timestamp>,
        limit: u32,
        open_journal: bool,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let db = self.ready_db().await?;
        Ok(db.recent_calls(since, limit, open_journal).await?)
    }
}
