//! All SQL lives here: connecting, migrations, batch inserts and queries, for PostgreSQL and
//! SQLite. Statements are written once with `$N` placeholders (both drivers accept them) and
//! run through the runtime query API, but for the batch INSERTs, which use anonymous `?` on
//! SQLite (see [`InsertShape`]); timestamps are bound as `timestamptz` for PostgreSQL and
//! as ISO-8601 text for SQLite.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Postgres, Row, SqlSafeStr, Sqlite};

use crate::model::{AgentSessionEvent, CallRecord, Client, Money, QueueEvent, Record, Timestamp};
use crate::{StoreError, StoreOptions};

/// Most rows in one INSERT statement. Batches are cut into power-of-two pieces up to this size
/// so that each connection prepares at most nine statement shapes per table.
const MAX_ROWS_PER_STATEMENT: usize = 256;

/// How a backend's batch INSERTs are cut and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct InsertShape {
    /// Most rows in one statement.
    max_rows: usize,
    /// `$1, $2, …` (PostgreSQL) or `?, ?, …` (SQLite). sqlx binds a numbered parameter on
    /// SQLite by asking for its name, which SQLite finds by walking the statement's parameter
    /// list, so binding a statement costs the square of its parameter count (a fifth of the
    /// server's CPU at 2,000 calls/s with 256-row statements); an anonymous `?` has no name
    /// and binds in order.
    numbered: bool,
}

const PG_INSERTS: InsertShape = InsertShape {
    max_rows: MAX_ROWS_PER_STATEMENT,
    numbered: true,
};

const SQLITE_INSERTS: InsertShape = InsertShape {
    max_rows: MAX_ROWS_PER_STATEMENT,
    numbered: false,
};

/// Where the records go, parsed from `[database] url`.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Postgres(PgConnectOptions),
    Sqlite(SqliteConnectOptions),
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Target, StoreError> {
        let bad = |reason: String| StoreError::Url {
            url: redact(url),
            reason,
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url).map_err(|e| bad(e.to_string()))?;
            Ok(Target::Postgres(opts))
        } else if url.starts_with("sqlite:") {
            if url.contains(":memory:") || url.contains("mode=memory") {
                return Err(bad(
                    "an in-memory SQLite database cannot hold records: give a file path".into(),
                ));
            }
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|e| bad(e.to_string()))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5));
            Ok(Target::Sqlite(opts))
        } else {
            Err(bad(
                "expected postgres://… or sqlite://… (for example sqlite://switchboard.db)".into(),
            ))
        }
    }
}

/// The URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = url.get(scheme + 3..at).unwrap_or("");
            match userinfo.split_once(':') {
                Some((user, _)) => format!(
                    "{}{user}:***{}",
                    url.get(..scheme + 3).unwrap_or(""),
                    url.get(at..).unwrap_or("")
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The migrations of each backend, in order: (version, description, PostgreSQL, SQLite).
/// Versions are assigned once and never reused; gaps are allowed.
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "records",
        include_str!("../migrations/postgres/0001_records.sql"),
        include_str!("../migrations/sqlite/0001_records.sql"),
    ),
    (
        2,
        "call journal",
        include_str!("../migrations/postgres/0002_call_journal.sql"),
        include_str!("../migrations/sqlite/0002_call_journal.sql"),
    ),
    (
        3,
        "supervision",
        include_str!("../migrations/postgres/0003_supervision.sql"),
        include_str!("../migrations/sqlite/0003_supervision.sql"),
    ),
    (
        4,
        "callbacks",
        include_str!("../migrations/postgres/0004_callbacks.sql"),
        include_str!("../migrations/sqlite/0004_callbacks.sql"),
    ),
    (
        6,
        "session node",
        include_str!("../migrations/postgres/0006_session_node.sql"),
        include_str!("../migrations/sqlite/0006_session_node.sql"),
    ),
    (
        7,
        "callback lease",
        include_str!("../migrations/postgres/0007_callback_lease.sql"),
        include_str!("../migrations/sqlite/0007_callback_lease.sql"),
    ),
    (
        8,
        "exit with key",
        include_str!("../migrations/postgres/0008_exit_with_key.sql"),
        include_str!("../migrations/sqlite/0008_exit_with_key.sql"),
    ),
    (
        9,
        "campaigns",
        include_str!("../migrations/postgres/0009_campaigns.sql"),
        include_str!("../migrations/sqlite/0009_campaigns.sql"),
    ),
];

fn migrator(target: &Target) -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|&(version, what, pg, lite)| {
            let (sql, kind) = match target {
                Target::Postgres(_) => (pg, "postgres"),
                Target::Sqlite(_) => (lite, "sqlite"),
            };
            Migration::new(
                version,
                Cow::Owned(format!("{what} ({kind})")),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    let mut m = Migrator::with_migrations(migrations);
    m.set_locking(true);
    m
}

/// A connection pool for one backend.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    Pg(PgPool),
    Lite(SqlitePool),
}

/// Runs `$body` with `$pool` bound to the concrete pool of either backend.
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Pg($pool) => $body,
            $crate::db::Db::Lite($pool) => $body,
        }
    };
}
pub(crate) use on_db;

/// A bind value. Timestamps are encoded per backend.
#[derive(Debug)]
pub(crate) enum Val<'a> {
    Text(Option<&'a str>),
    Owned(String),
    Int(i64),
    Ts(Option<Timestamp>),
}

/// SQLite text form of a timestamp: fixed width, so text order is time order.
pub(crate) fn sqlite_ts(t: &Timestamp) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub(crate) trait BindVals: Sized {
    fn bind_vals(self, vals: &[Val<'_>]) -> Self;
}

impl BindVals for Query<'_, Postgres, PgArguments> {
    fn bind_vals(mut self, vals: &[Val<'_>]) -> Self {
        for v in vals {
            self = match v {
                Val::Text(t) => self.bind(*t),
                Val::Owned(s) => self.bind(s.clone()),
                Val::Int(i) => self.bind(*i),
                Val::Ts(t) => self.bind(*t),
            };
        }
        self
    }
}

impl BindVals for Query<'_, Sqlite, SqliteArguments> {
    fn bind_vals(mut self, vals: &[Val<'_>]) -> Self {
        for v in vals {
            self = match v {
                Val::Text(t) => self.bind(t.map(str::to_owned)),
                Val::Owned(s) => self.bind(s.clone()),
                Val::Int(i) => self.bind(*i),
                Val::Ts(t) => self.bind(t.as_ref().map(sqlite_ts)),
            };
        }
        self
    }
}

fn decode_err(e: impl std::error::Error + Send + Sync + 'static) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(e))
}

/// Reads columns the same way from both backends' rows.
pub(crate) trait RowExt {
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, col: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;
    fn opt_ts(&self, col: &str) -> Result<Option<Timestamp>, sqlx::Error>;

    fn ts(&self, col: &str) -> Result<Timestamp, sqlx::Error> {
        self.opt_ts(col)?.ok_or_else(|| sqlx::Error::ColumnDecode {
            index: col.to_owned(),
            source: "unexpected NULL".into(),
        })
    }

    fn parsed<T: FromStr<Err = StoreError>>(&self, col: &str) -> Result<T, sqlx::Error> {
        self.text(col)?.parse().map_err(decode_err)
    }
}

/// The accessors both backends decode alike (sqlx's own types); only timestamps differ.
macro_rules! same_on_both_backends {
    () => {
        fn text(&self, col: &str) -> Result<String, sqlx::Error> {
            self.try_get(col)
        }
        fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
            self.try_get(col)
        }
        fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
            self.try_get(col)
        }
        fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
            self.try_get(col)
        }
    };
}

impl RowExt for PgRow {
    same_on_both_backends!();
    fn opt_ts(&self, col: &str) -> Result<Option<Timestamp>, sqlx::Error> {
        self.try_get(col)
    }
}

impl RowExt for SqliteRow {
    same_on_both_backends!();
    /// SQLite keeps timestamps as RFC 3339 text.
    fn opt_ts(&self, col: &str) -> Result<Option<Timestamp>, sqlx::Error> {
        let text: Option<String> = self.try_get(col)?;
        text.map(|t| {
            chrono::DateTime::parse_from_rfc3339(&t)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(decode_err)
        })
        .transpose()
    }
}

const CALL_COLS: &[&str] = &[
    "id",
    "sip_call_id",
    "direction",
    "trunk",
    "caller",
    "dialed",
    "client_number",
    "client_class",
    "purpose",
    "queue",
    "agent_id",
    "route",
    "started_at",
    "queued_at",
    "answered_at",
    "ended_at",
    "wait_ms",
    "talk_ms",
    "outcome",
    "hangup_side",
    "recording",
    "journal",
    "callback_id",
    "campaign",
];
const QUEUE_EVENT_COLS: &[&str] = &["id", "at", "call_id", "queue", "agent_id", "event", "data"];
const AGENT_SESSION_COLS: &[&str] = &["id", "at", "agent_id", "event", "state", "reason", "node"];

fn call_vals<'a>(c: &'a CallRecord, out: &mut Vec<Val<'a>>) {
    out.extend([
        Val::Text(Some(&c.id)),
        Val::Text(Some(&c.sip_call_id)),
        Val::Text(Some(c.direction.as_str())),
        Val::Text(c.trunk.as_deref()),
        Val::Text(Some(&c.caller)),
        Val::Text(Some(&c.dialed)),
        Val::Text(c.client_number.as_deref()),
        Val::Text(c.client_class.as_deref()),
        Val::Text(c.purpose.as_deref()),
        Val::Text(c.queue.as_deref()),
        Val::Text(c.agent_id.as_deref()),
        Val::Text(Some(&c.route)),
        Val::Ts(Some(c.started_at)),
        Val::Ts(c.queued_at),
        Val::Ts(c.answered_at),
        Val::Ts(Some(c.ended_at)),
        Val::Int(c.wait_ms),
        Val::Int(c.talk_ms),
        Val::Text(Some(c.outcome.as_str())),
        Val::Text(Some(c.hangup_side.as_str())),
        Val::Text(c.recording.as_deref()),
        Val::Text(c.journal.as_deref()),
        Val::Text(c.callback_id.as_deref()),
        Val::Text(c.campaign.as_deref()),
    ]);
}

fn queue_event_vals<'a>(e: &'a QueueEvent, out: &mut Vec<Val<'a>>) {
    out.extend([
        Val::Text(Some(&e.id)),
        Val::Ts(Some(e.at)),
        Val::Text(Some(&e.call_id)),
        Val::Text(Some(&e.queue)),
        Val::Text(e.agent_id.as_deref()),
        Val::Text(Some(e.event.as_str())),
        Val::Text(e.data.as_deref()),
    ]);
}

/// An agent session row and the server that writes it.
type SessionRow<'a> = (&'a AgentSessionEvent, Option<&'a str>);

fn agent_session_vals<'a>(row: &SessionRow<'a>, out: &mut Vec<Val<'a>>) {
    let (e, node) = *row;
    out.extend([
        Val::Text(Some(&e.id)),
        Val::Ts(Some(e.at)),
        Val::Text(Some(&e.agent_id)),
        Val::Text(Some(e.event.as_str())),
        Val::Text(e.state.as_deref()),
        Val::Text(e.reason.as_deref()),
        Val::Text(node),
    ]);
}

/// The INSERT of `rows` rows into `table`, built once per shape and kept: the batch writer
/// runs the same few statements thousands of times a second.
fn insert_sql(table: &'static str, cols: &[&str], rows: usize, shape: InsertShape) -> Arc<str> {
    type Key = (&'static str, usize, bool);
    static BUILT: OnceLock<Mutex<HashMap<Key, Arc<str>>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    built
        .entry((table, rows, shape.numbered))
        .or_insert_with(|| build_insert_sql(table, cols, rows, shape.numbered).into())
        .clone()
}

/// `INSERT INTO table (cols) VALUES ($1, …), (…) ON CONFLICT (id) DO NOTHING` for `rows` rows
/// (`?` for every placeholder unless `numbered`). The text holds only our column names and
/// placeholders, never data.
fn build_insert_sql(table: &str, cols: &[&str], rows: usize, numbered: bool) -> String {
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", cols.join(", "));
    let mut n = 0usize;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..cols.len() {
            if c > 0 {
                sql.push_str(", ");
            }
            n += 1;
            if numbered {
                sql.push('$');
                sql.push_str(&n.to_string());
            } else {
                sql.push('?');
            }
        }
        sql.push(')');
    }
    if table == "calls" {
        // A journal row (a call in progress) gives way to every later row of its call; a
        // final row only to another final row over one closed as `interrupted` (the call's
        // final record was still in the spool when the next start closed its journal). So a
        // replay never turns a final record back into a journal row.
        sql.push_str(" ON CONFLICT (id) DO UPDATE SET ");
        for (i, c) in cols.iter().filter(|c| **c != "id").enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(c);
            sql.push_str(" = excluded.");
            sql.push_str(c);
        }
        sql.push_str(
            " WHERE calls.journal IS NOT NULL \
             OR (calls.outcome = 'interrupted' AND excluded.journal IS NULL)",
        );
    } else {
        sql.push_str(" ON CONFLICT (id) DO NOTHING");
    }
    sql
}

/// Cuts `len` into pieces of power-of-two sizes, at most `max` (a power of two).
fn piece_sizes(mut len: usize, max: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if len == 0 {
            return None;
        }
        let piece = if len >= max {
            max
        } else {
            1usize << len.ilog2()
        };
        len -= piece;
        Some(piece)
    })
}

/// Inserts `items` into `table` on the open transaction `$tx`.
macro_rules! insert_rows {
    ($tx:expr, $shape:expr, $items:expr, $table:expr, $cols:expr, $vals:path) => {{
        let (items, shape): (_, InsertShape) = ($items, $shape);
        let mut start = 0usize;
        for piece in piece_sizes(items.len(), shape.max_rows) {
            let end = start + piece;
            let mut vals = Vec::with_capacity(piece * $cols.len());
            for item in items.get(start..end).unwrap_or_default() {
                $vals(item, &mut vals);
            }
            sqlx::query(AssertSqlSafe(insert_sql($table, $cols, piece, shape)))
                .bind_vals(&vals)
                .execute(&mut *$tx)
                .await?;
            start = end;
        }
    }};
}

/// The column list of `SELECT … FROM calls`.
pub(crate) const CALL_SELECT: &str = "id, sip_call_id, direction, trunk, caller, dialed, client_number, \
     client_class, purpose, queue, agent_id, route, started_at, queued_at, answered_at, ended_at, \
     wait_ms, talk_ms, outcome, hangup_side, recording, journal, callback_id, campaign";

pub(crate) fn call_from_row<R: RowExt>(r: &R) -> Result<CallRecord, sqlx::Error> {
    Ok(CallRecord {
        id: r.text("id")?,
        sip_call_id: r.text("sip_call_id")?,
        direction: r.parsed("direction")?,
        trunk: r.opt_text("trunk")?,
        caller: r.text("caller")?,
        dialed: r.text("dialed")?,
        client_number: r.opt_text("client_number")?,
        client_class: r.opt_text("client_class")?,
        purpose: r.opt_text("purpose")?,
        queue: r.opt_text("queue")?,
        agent_id: r.opt_text("agent_id")?,
        route: r.text("route")?,
        started_at: r.ts("started_at")?,
        queued_at: r.opt_ts("queued_at")?,
        answered_at: r.opt_ts("answered_at")?,
        ended_at: r.ts("ended_at")?,
        wait_ms: r.int("wait_ms")?,
        talk_ms: r.int("talk_ms")?,
        outcome: r.parsed("outcome")?,
        hangup_side: r.parsed("hangup_side")?,
        recording: r.opt_text("recording")?,
        journal: r.opt_text("journal")?,
        callback_id: r.opt_text("callback_id")?,
        campaign: r.opt_text("campaign")?,
    })
}

fn client_from_row<R: RowExt>(r: &R) -> Result<Client, sqlx::Error> {
    Ok(Client {
        number: r.text("number")?,
        name: r.text("name")?,
        client_type: r.parsed("type")?,
        manager: r.opt_text("manager")?,
        region: r.opt_text("region")?,
        overdue_debt: r.parsed::<Money>("overdue_debt")?,
    })
}

/// Whether an error says something about the data (retrying the same rows will fail again)
/// rather than about the connection (retrying later may succeed).
pub(crate) fn is_data_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            if !matches!(db.kind(), sqlx::error::ErrorKind::Other) {
                return true; // unique / foreign key / not null / check violation
            }
            // PostgreSQL data exceptions (class 22) and integrity violations (class 23).
            db.code()
                .is_some_and(|c| c.starts_with("22") || c.starts_with("23"))
        }
        sqlx::Error::Encode(_) | sqlx::Error::TypeNotFound { .. } => true,
        _ => false,
    }
}

impl Db {
    /// How this backend's batch INSERTs are cut and written.
    pub(crate) fn insert_shape(&self) -> InsertShape {
        match self {
            Db::Pg(_) => PG_INSERTS,
            Db::Lite(_) => SQLITE_INSERTS,
        }
    }

    /// Runs one statement with `vals` bound; the number of rows it changed. For the
    /// conditional status moves of call-backs and campaign contacts.
    pub(crate) async fn execute(&self, sql: &str, vals: &[Val<'_>]) -> Result<u64, sqlx::Error> {
        on_db!(self, pool => sqlx::query(AssertSqlSafe(sql.to_owned()))
            .bind_vals(vals)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
    }

    /// A pool that connects on first use, so a down database does not stop start-up.
    pub(crate) fn connect_lazy(target: &Target, opts: &StoreOptions) -> Db {
        match target {
            Target::Postgres(o) => Db::Pg(
                PgPoolOptions::new()
                    .max_connections(opts.max_connections)
                    .acquire_timeout(opts.db_timeout)
                    .connect_lazy_with(o.clone()),
            ),
            Target::Sqlite(o) => Db::Lite(
                SqlitePoolOptions::new()
                    .max_connections(opts.max_connections)
                    .acquire_timeout(opts.db_timeout)
                    .connect_lazy_with(o.clone()),
            ),
        }
    }

    /// Applies the migrations that are not applied yet.
    pub(crate) async fn migrate(&self, target: &Target) -> Result<(), StoreError> {
        let m = migrator(target);
        match self {
            Db::Pg(pool) => m.run(pool).await?,
            Db::Lite(pool) => m.run(pool).await?,
        }
        Ok(())
    }

    /// Connects once (no pool, so the real connection error is reported) and migrates.
    pub(crate) async fn migrate_once(target: &Target) -> Result<(), StoreError> {
        use sqlx::{ConnectOptions, Connection};
        let m = migrator(target);
        match target {
            Target::Postgres(o) => {
                let mut conn = o.connect().await?;
                m.run(&mut conn).await?;
                conn.close().await?;
            }
            Target::Sqlite(o) => {
                let mut conn = o.connect().await?;
                m.run(&mut conn).await?;
                conn.close().await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn ping(&self) -> Result<(), sqlx::Error> {
        on_db!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop))
    }

    pub(crate) async fn close(&self) {
        on_db!(self, pool => pool.close().await)
    }

    /// Inserts a batch in one transaction, in order per table; rows whose id is already
    /// stored are skipped (idempotent replay). Agent sessions are stamped with `node`, the
    /// server that writes them (see [`Db::close_left_open`]).
    pub(crate) async fn insert_records(
        &self,
        records: &[Record],
        node: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        let mut calls: Vec<&CallRecord> = Vec::new();
        let mut call_index: HashMap<&str, usize> = HashMap::new();
        let mut queue_events = Vec::new();
        let mut sessions = Vec::new();
        for r in records {
            match r {
                // One row per call and statement (PostgreSQL refuses to update a row twice
                // in one INSERT): a later row of the same call supersedes an earlier one.
                Record::Call(c) => match call_index.entry(c.id.as_str()) {
                    Entry::Occupied(at) => {
                        if let Some(slot) = calls.get_mut(*at.get()) {
                            *slot = c.as_ref();
                        }
                    }
                    Entry::Vacant(v) => {
                        v.insert(calls.len());
                        calls.push(c.as_ref());
                    }
                },
                Record::QueueEvent(e) => queue_events.push(e),
                Record::AgentSession(e) => sessions.push((e, node)),
            }
        }
        fn call_ref<'a>(c: &&'a CallRecord, out: &mut Vec<Val<'a>>) {
            call_vals(c, out);
        }
        fn qe_ref<'a>(e: &&'a QueueEvent, out: &mut Vec<Val<'a>>) {
            queue_event_vals(e, out);
        }
        let shape = self.insert_shape();
        on_db!(self, pool => {
            let mut tx = pool.begin().await?;
            insert_rows!(tx, shape, calls.as_slice(), "calls", CALL_COLS, call_ref);
            insert_rows!(tx, shape, queue_events.as_slice(), "queue_events", QUEUE_EVENT_COLS, qe_ref);
            insert_rows!(tx, shape, sessions.as_slice(), "agent_sessions", AGENT_SESSION_COLS, agent_session_vals);
            tx.commit().await
        })
    }

    /// Call-detail records that started at or after `since`, newest first. Rows still open
    /// in the journal (calls in progress: `GET /api/v1/calls/active` shows those) only with
    /// `open_journal`.
    pub(crate) async fn recent_calls(
        &self,
        since: Option<Timestamp>,
        limit: u32,
        open_journal: bool,
    ) -> Result<Vec<CallRecord>, sqlx::Error> {
        let journal = if open_journal {
            ""
        } else {
            "journal IS NULL AND "
        };
        let sql = format!(
            "SELECT {CALL_SELECT} FROM calls WHERE {journal}($1 IS NULL OR started_at >= $2) \
             ORDER BY started_at DESC, seq DESC LIMIT $3"
        );
        let vals = [Val::Ts(since), Val::Ts(since), Val::Int(i64::from(limit))];
        on_db!(self, pool => {
            let rows = sqlx::query(AssertSqlSafe(sql)).bind_vals(&vals).fetch_all(pool).await?;
            rows.iter().map(call_from_row).collect()
        })
    }

    /// SQL for a timestamp column or parameter as whole milliseconds since the UNIX epoch
    /// (BIGINT / INTEGER): the one place report arithmetic on times differs between backends.
    pub(crate) fn millis(&self, expr: &str) -> String {
        match self {
            Db::Pg(_) => format!("CAST(FLOOR(EXTRACT(EPOCH FROM {expr}) * 1000) AS BIGINT)"),
            Db::Lite(_) => {
                format!("CAST(ROUND((julianday({expr}) - 2440587.5) * 86400000.0) AS INTEGER)")
            }
        }
    }

    fn debt_text(&self) -> &'static str {
        match self {
            Db::Pg(_) => "overdue_debt::text AS overdue_debt",
            // NUMERIC affinity stores 12.50 as REAL 12.5: print it back with two digits.
            Db::Lite(_) => "printf('%.2f', overdue_debt) AS overdue_debt",
        }
    }

    /// The directory's version (bumped on every change).
    pub(crate) async fn directory_version(&self) -> Result<i64, sqlx::Error> {
        on_db!(self, pool => {
            let row = sqlx::query("SELECT version FROM directory_version WHERE id = 1")
                .fetch_one(pool)
                .await?;
            row.int("version")
        })
    }

    /// The whole directory and its version, read in one transaction.
    pub(crate) async fn load_directory(&self) -> Result<(i64, Vec<Client>), sqlx::Error> {
        let sql = format!(
            "SELECT number, name, type, manager, region, {} FROM clients",
            self.debt_text()
        );
        on_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let version = sqlx::query("SELECT version FROM directory_version WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?
                .int("version")?;
            let rows = sqlx::query(AssertSqlSafe(sql)).fetch_all(&mut *tx).await?;
            tx.commit().await?;
            let clients = rows.iter().map(client_from_row).collect::<Result<Vec<_>, _>>()?;
            Ok((version, clients))
        })
    }

    /// Inserts or replaces clients in one transaction; returns the new directory version
    /// (`None` when `clients` is empty: nothing changed).
    pub(crate) async fn upsert_clients(
        &self,
        clients: &[Client],
        now: Timestamp,
    ) -> Result<Option<i64>, sqlx::Error> {
        const SQL: &str = "INSERT INTO clients (number, name, type, manager, region, overdue_debt, updated_at) \
             VALUES ($1, $2, $3, $4, $5, CAST($6 AS NUMERIC), $7) \
             ON CONFLICT (number) DO UPDATE SET name = excluded.name, type = excluded.type, \
             manager = excluded.manager, region = excluded.region, \
             overdue_debt = excluded.overdue_debt, updated_at = excluded.updated_at";
        let rows: Vec<[Val<'_>; 7]> = clients
            .iter()
            .map(|c| {
                [
                    Val::Text(Some(&c.number)),
                    Val::Text(Some(&c.name)),
                    Val::Text(Some(c.client_type.as_str())),
                    Val::Text(c.manager.as_deref()),
                    Val::Text(c.region.as_deref()),
                    Val::Owned(c.overdue_debt.to_string()),
                    Val::Ts(Some(now)),
                ]
            })
            .collect();
        self.change_directory(SQL, &rows).await
    }

    /// Removes a client; returns the new directory version, or `None` when it was not there.
    pub(crate) async fn delete_client(&self, number: &str) -> Result<Option<i64>, sqlx::Error> {
        let sql = "DELETE FROM clients WHERE number = $1";
        self.change_directory(sql, &[[Val::Text(Some(number))]])
            .await
    }

    /// Runs `sql` once per row of `binds`, in one transaction that also bumps the directory
    /// version (the writers reload their caches when it moves). Returns the new version, or
    /// `None` when no row changed (then nothing is committed and the version stays; with no
    /// `binds`, the database is not asked at all).
    async fn change_directory<const N: usize>(
        &self,
        sql: &'static str,
        binds: &[[Val<'_>; N]],
    ) -> Result<Option<i64>, sqlx::Error> {
        if binds.is_empty() {
            return Ok(None);
        }
        on_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut changed = 0;
            for vals in binds {
                changed += sqlx::query(sql)
                    .bind_vals(vals)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            if changed == 0 {
                tx.rollback().await?;
                return Ok(None);
            }
            let version = sqlx::query(
                "UPDATE directory_version SET version = version + 1 WHERE id = 1 RETURNING version",
            )
            .fetch_one(&mut *tx)
            .await?
            .int("version")?;
            tx.commit().await?;
            Ok(Some(version))
        })
    }
}

mod recovery;
pub(crate) use recovery::Closed;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_sql_numbers_placeholders_in_order() {
        assert_eq!(
            &*insert_sql("t", &["id", "a"], 2, PG_INSERTS),
            "INSERT INTO t (id, a) VALUES ($1, $2), ($3, $4) ON CONFLICT (id) DO NOTHING"
        );
        assert_eq!(
            &*insert_sql("t", &["id", "a"], 2, SQLITE_INSERTS),
            "INSERT INTO t (id, a) VALUES (?, ?), (?, ?) ON CONFLICT (id) DO NOTHING"
        );
    }

    #[test]
    fn batches_are_cut_into_power_of_two_pieces() {
        let max = MAX_ROWS_PER_STATEMENT;
        assert_eq!(piece_sizes(0, max).count(), 0);
        assert_eq!(piece_sizes(7, max).collect::<Vec<_>>(), vec![4, 2, 1]);
        assert_eq!(
            piece_sizes(600, max).collect::<Vec<_>>(),
            vec![256, 256, 64, 16, 8]
        );
        assert_eq!(piece_sizes(600, max).sum::<usize>(), 600);
    }

    #[test]
    fn urls_are_checked_and_passwords_hidden() {
        assert!(matches!(
            Target::parse("sqlite://switchboard.db"),
            Ok(Target::Sqlite(_))
        ));
        assert!(matches!(
            Target::parse("postgres://u:p@127.0.0.1:5/db"),
            Ok(Target::Postgres(_))
        ));
        assert!(Target::parse("mysql://x").is_err());
        assert!(Target::parse("sqlite::memory:").is_err());
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("sqlite://a.db"), "sqlite://a.db");
    }

    #[test]
    fn sqlite_timestamps_sort_as_text() {
        let a = Timestamp::from_timestamp(1_700_000_000, 5_000).unwrap();
        let b = Timestamp::from_timestamp(1_700_000_000, 120_000_000).unwrap();
        assert_eq!(sqlite_ts(&a), "2023-11-14T22:13:20.000005Z");
        assert!(sqlite_ts(&a) < sqlite_ts(&b));
    }
}
