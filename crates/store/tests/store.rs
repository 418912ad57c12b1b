//! The store against real databases: the same suite runs on PostgreSQL (a throwaway cluster
//! from `switchboard-testkit`) and on SQLite, followed by fault tests: PostgreSQL stopped while
//! records are written, a writer process killed with SIGKILL, a database that is down at
//! start-up, and a spool on a full disk.

// Test helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sqlx::{PgPool, SqlitePool};
use switchboard_store::*;
use switchboard_testkit::PgCluster;

// ---------------------------------------------------------------------------------------------
// Helpers

#[derive(Debug, Clone, Copy)]
enum Kind {
    Pg,
    Sqlite,
}

/// A fresh database of `kind` and a spool directory.
struct Env {
    url: String,
    dir: tempfile::TempDir,
}

impl Env {
    fn new(kind: Kind, name: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let url = match kind {
            Kind::Pg => PgCluster::shared().unwrap().fresh_database(name).unwrap(),
            Kind::Sqlite => format!("sqlite://{}", dir.path().join("records.db").display()),
        };
        Env { url, dir }
    }

    fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    async fn open(&self) -> Store {
        Store::open(&self.url, &self.spool(), fast_opts())
            .await
            .unwrap()
    }
}

fn fast_opts() -> StoreOptions {
    StoreOptions {
        db_timeout: Duration::from_secs(2),
        retry_interval: Duration::from_millis(100),
        directory_refresh: Duration::from_millis(200),
        ..StoreOptions::default()
    }
}

/// Plain SQL access for checks, independent of the store.
enum Check {
    Pg(PgPool),
    Lite(SqlitePool),
}

impl Check {
    async fn connect(url: &str) -> Check {
        if url.starts_with("postgres") {
            Check::Pg(PgPool::connect(url).await.unwrap())
        } else {
            Check::Lite(SqlitePool::connect(url).await.unwrap())
        }
    }

    async fn i64(&self, sql: &'static str) -> i64 {
        match self {
            Check::Pg(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
            Check::Lite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        }
    }

    async fn ids(&self, sql: &'static str) -> Vec<String> {
        match self {
            Check::Pg(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
            Check::Lite(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
        }
    }

    /// Rows in `queue_events` that are out of order: per call, `data` (the event's index in
    /// its call) must rise by one in write order (`seq`).
    async fn out_of_order_queue_events(&self) -> i64 {
        self.i64(
            "SELECT COUNT(*) FROM (SELECT CAST(data AS INTEGER) AS n, \
             LAG(CAST(data AS INTEGER)) OVER (PARTITION BY call_id ORDER BY seq) AS prev \
             FROM queue_events) t WHERE prev IS NOT NULL AND n <> prev + 1",
        )
        .await
    }

    /// Calls whose first stored event is not event 0.
    async fn calls_missing_their_first_event(&self) -> i64 {
        self.i64(
            "SELECT COUNT(*) FROM (SELECT call_id, MIN(CAST(data AS INTEGER)) AS first \
             FROM queue_events GROUP BY call_id) t WHERE first <> 0",
        )
        .await
    }
}

fn t(micros: i64) -> Timestamp {
    Timestamp::from_timestamp_micros(1_700_000_000_000_000 + micros).unwrap()
}

fn call(id: &str, started: i64) -> CallRecord {
    CallRecord {
        id: id.to_owned(),
        sip_call_id: format!("{id}@pbx"),
        direction: Direction::Inbound,
        trunk: Some("pbx-main".into()),
        caller: "+15550100".into(),
        dialed: "100".into(),
        client_number: Some("+15550100".into()),
        client_class: Some("key".into()),
        purpose: Some("order".into()),
        queue: Some("orders".into()),
        agent_id: Some("ana".into()),
        route: "assigned_manager(ana: absent→marko: busy) > queue:key_accounts(ivan)".into(),
        started_at: t(started),
        queued_at: Some(t(started + 1_500)),
        answered_at: Some(t(started + 9_250_001)),
        ended_at: t(started + 70_000_000),
        wait_ms: 9_248,
        talk_ms: 60_750,
        outcome: Outcome::Answered,
        hangup_side: HangupSide::Caller,
        recording: None,
        journal: None,
        callback_id: None,
        campaign: None,
    }
}

/// Queue event number `n` of call `c` (its `data` is `n`, for order checks).
fn event(prefix: &str, c: usize, n: usize) -> QueueEvent {
    QueueEvent {
        id: format!("{prefix}-c{c}-e{n}"),
        at: t(i64::try_from(n).unwrap() * 1000),
        call_id: format!("{prefix}-call-{c}"),
        queue: "orders".into(),
        agent_id: None,
        event: QueueEventKind::EnterQueue,
        data: Some(n.to_string()),
    }
}

async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let polled = tokio::time::timeout(limit, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(polled.is_ok(), "timed out waiting for {what}");
}

async fn wait_written(store: &Store) {
    store.flush(Duration::from_secs(20)).await.unwrap();
    let s = store.clone();
    wait_until(
        "every record in the database",
        Duration::from_secs(30),
        move || {
            let st = s.stats();
            st.pending == 0 && st.spooled == 0
        },
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// The suite, run on both backends

macro_rules! suite {
    ($($name:ident),+ $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Kind::Pg).await;
                }
            )+
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Kind::Sqlite).await;
                }
            )+
        }
    };
}

#[path = "store/callbacks.rs"]
mod callbacks;
#[path = "store/campaigns.rs"]
mod campaigns;
#[path = "store/reports.rs"]
mod reports;
use callbacks::{callbacks_round_trip, dnc_round_trip};
use campaigns::campaigns_round_trip;
use reports::{reports_give_exact_figures, tokens_and_escalations_round_trip};

suite!(
    reports_give_exact_figures,
    tokens_and_escalations_round_trip,
    records_round_trip_with_every_column,
    duplicate_ids_are_stored_once,
    records_reach_the_database_without_a_flush,
    recent_calls_filter_and_order,
    client_directory_upsert_get_delete_and_refresh,
    csv_import_keeps_good_rows_and_reports_bad_ones,
    callbacks_round_trip,
    dnc_round_trip,
    campaigns_round_trip,
    migrate_is_idempotent,
);

async fn records_round_trip_with_every_column(kind: Kind) {
    let env = Env::new(kind, "round_trip");
    let store = env.open().await;
    assert!(store.is_ready().await);
    let sink = store.writer();
    let mut c = call("call-1", 0);
    c.recording = Some("2023/call-1.wav".into());
    sink.send(c.clone()).unwrap();
    let mut rejected = call("call-2", 5);
    rejected.queue = None;
    rejected.agent_id = None;
    rejected.queued_at = None;
    rejected.answered_at = None;
    rejected.trunk = None;
    rejected.outcome = Outcome::Rejected;
    rejected.hangup_side = HangupSide::System;
    rejected.direction = Direction::Outbound;
    sink.send(rejected.clone()).unwrap();
    for n in 0..3 {
        sink.send(event("rt", 1, n)).unwrap();
    }
    let login = AgentSessionEvent {
        id: new_record_id(),
        at: t(1),
        agent_id: "ana".into(),
        event: AgentEventKind::Login,
        state: Some("available".into()),
        reason: None,
    };
    let brk = AgentSessionEvent {
        id: new_record_id(),
        at: t(2),
        event: AgentEventKind::State,
        state: Some("break".into()),
        reason: Some("lunch".into()),
        ..login.clone()
    };
    sink.send(login).unwrap();
    sink.send(brk).unwrap();
    wait_written(&store).await;

    let calls = store.recent_calls(None, 10).await.unwrap();
    assert_eq!(calls, vec![rejected, c]);
    let check = Check::connect(&env.url).await;
    assert_eq!(check.i64("SELECT COUNT(*) FROM queue_events").await, 3);
    assert_eq!(check.out_of_order_queue_events().await, 0);
    assert_eq!(
        check
            .ids("SELECT COALESCE(reason, state) FROM agent_sessions ORDER BY seq")
            .await,
        ["available", "lunch"]
    );
    // A caller who asked to be called back keeping their place (migration 0008).
    let key = QueueEvent {
        event: QueueEventKind::ExitWithKey,
        data: Some("1|3".into()),
        ..event("rt", 2, 0)
    };
    sink.send(key).unwrap();
    wait_written(&store).await;
    assert_eq!(
        check
            .ids("SELECT data FROM queue_events WHERE event = 'EXITWITHKEY'")
            .await,
        ["1|3"]
    );
    let st = store.stats();
    assert_eq!(
        (st.written, st.write_errors, st.dropped, st.spooled),
        (8, 0, 0, 0)
    );
    store.close(Duration::from_secs(5)).await.unwrap();
}

async fn duplicate_ids_are_stored_once(kind: Kind) {
    let env = Env::new(kind, "dupes");
    let store = env.open().await;
    let sink = store.writer();
    for _ in 0..3 {
        sink.send(call("same", 0)).unwrap();
        sink.send(event("d", 0, 0)).unwrap();
    }
    wait_written(&store).await;
    // Once more after the first copies are committed.
    sink.send(call("same", 0)).unwrap();
    wait_written(&store).await;
    let check = Check::connect(&env.url).await;
    assert_eq!(check.i64("SELECT COUNT(*) FROM calls").await, 1);
    assert_eq!(check.i64("SELECT COUNT(*) FROM queue_events").await, 1);
}

/// Nobody flushes: the records still reach the database once their gathering time is over
/// (the writer wakes for it), a few at a time as they come.
async fn records_reach_the_database_without_a_flush(kind: Kind) {
    let env = Env::new(kind, "unflushed");
    let store = env.open().await;
    let sink = store.writer();
    let check = Check::connect(&env.url).await;
    for n in 0..3 {
        sink.send(call(&format!("unflushed-{n}"), i64::from(n)))
            .unwrap();
        sink.send(event("u", 0, usize::try_from(n).unwrap()))
            .unwrap();
        let s = store.clone();
        let want = 2 * (u64::try_from(n).unwrap() + 1);
        wait_until("the records written", Duration::from_secs(10), move || {
            s.stats().written >= want
        })
        .await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(check.i64("SELECT COUNT(*) FROM calls").await, 3);
    assert_eq!(check.i64("SELECT COUNT(*) FROM queue_events").await, 3);
    assert_eq!(store.stats().pending, 0);
    store.close(Duration::from_secs(5)).await.unwrap();
}

async fn recent_calls_filter_and_order(kind: Kind) {
    let env = Env::new(kind, "recent");
    let store = env.open().await;
    let sink = store.writer();
    for i in 0..5 {
        sink.send(call(&format!("c{i}"), i * 1_000_000)).unwrap();
    }
    wait_written(&store).await;
    let ids = |v: Vec<CallRecord>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.recent_calls(None, 10).await.unwrap()),
        ["c4", "c3", "c2", "c1", "c0"]
    );
    assert_eq!(
        ids(store.recent_calls(None, 2).await.unwrap()),
        ["c4", "c3"]
    );
    assert_eq!(
        ids(store.recent_calls(Some(t(2_000_000)), 10).await.unwrap()),
        ["c4", "c3", "c2"]
    );
    assert!(
        store
            .recent_calls(Some(t(9_000_000)), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

fn client(number: &str, ty: ClientType) -> Client {
    Client {
        number: number.into(),
        name: "Acme".into(),
        client_type: ty,
        manager: Some("ana".into()),
        region: Some("north".into()),
        overdue_debt: "1500.50".parse().unwrap(),
    }
}

async fn client_directory_upsert_get_delete_and_refresh(kind: Kind) {
    let env = Env::new(kind, "clients");
    let store = env.open().await;
    let dir = store.clients();
    assert!(dir.get("+1 555 0100").is_none());
    let stored = dir
        .upsert(client("+1 (555) 01-00", ClientType::Key))
        .await
        .unwrap();
    assert_eq!(stored.number, "+15550100");
    let got = dir.get("+1-555-0100").unwrap();
    assert_eq!(got, stored);
    assert_eq!(got.overdue_debt.to_string(), "1500.50");
    let mut changed = stored.clone();
    changed.client_type = ClientType::OwnOutlet;
    changed.overdue_debt = Money::ZERO;
    changed.manager = None;
    dir.upsert(changed.clone()).await.unwrap();
    assert_eq!(dir.get("+15550100").unwrap(), changed);

    // A second store (another process, as far as the database knows) sees changes after its
    // refresh, and its own first load.
    let other_env = Env {
        url: env.url.clone(),
        dir: tempfile::tempdir().unwrap(),
    };
    let other = other_env.open().await;
    assert_eq!(other.clients().get("+15550100").unwrap(), changed);
    dir.upsert(client("5550200", ClientType::Retail))
        .await
        .unwrap();
    let od = other.clients();
    wait_until(
        "the other store's cache to refresh",
        Duration::from_secs(10),
        || od.get("5550200").is_some(),
    )
    .await;

    assert!(dir.delete("+1 555 0100").await.unwrap());
    assert!(!dir.delete("+1 555 0100").await.unwrap());
    assert!(dir.get("+15550100").is_none());
    wait_until(
        "the delete to reach the other cache",
        Duration::from_secs(10),
        || od.get("+15550100").is_none(),
    )
    .await;
    assert!(
        dir.upsert(client("not a number", ClientType::New))
            .await
            .is_err()
    );
}

async fn csv_import_keeps_good_rows_and_reports_bad_ones(kind: Kind) {
    let env = Env::new(kind, "csv");
    let store = env.open().await;
    let path = env.dir.path().join("clients.csv");
    std::fs::write(
        &path,
        "number,name,type,manager,region,overdue_debt\n\
         +1 555 0001,Acme,key,ana,north,0\n\
         5550002,Bolt,vip,,,0\n\
         5550003,Cog,regional,,south,250.75\n\
         5550004,Dyn,retail,,\n\
         5550005,Eon,marketer,,,abc\n",
    )
    .unwrap();
    let report = store.clients().import_csv(&path).await.unwrap();
    assert_eq!(report.imported, 2);
    assert!(!report.is_clean());
    let lines: Vec<usize> = report.errors.iter().map(|e| e.0).collect();
    assert_eq!(lines, [3, 5, 6], "{:?}", report.errors);
    assert!(report.errors[0].1.contains("unknown") || report.errors[0].1.contains("vip"));
    let dir = store.clients();
    assert_eq!(dir.get("+15550001").unwrap().client_type, ClientType::Key);
    assert_eq!(dir.get("5550003").unwrap().overdue_debt.cents(), 25_075);
    assert!(dir.get("5550002").is_none());
    let check = Check::connect(&env.url).await;
    assert_eq!(check.i64("SELECT COUNT(*) FROM clients").await, 2);
    let err = store
        .clients()
        .import_csv(&env.dir.path().join("missing.csv"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("missing.csv"), "{err}");
}

async fn migrate_is_idempotent(kind: Kind) {
    let env = Env::new(kind, "migrate");
    Store::migrate(&env.url).await.unwrap();
    Store::migrate(&env.url).await.unwrap();
    let store = env.open().await;
    assert!(store.is_ready().await);
    let check = Check::connect(&env.url).await;
    assert_eq!(check.i64("SELECT COUNT(*) FROM calls").await, 0);
}

// ---------------------------------------------------------------------------------------------
// Start-up failures

#[tokio::test]
async fn malformed_url_or_unusable_spool_fails_open() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open("mysql://x", dir.path(), fast_opts())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("postgres://"), "{err}");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    let err = Store::open(&url, &file, fast_opts()).await.unwrap_err();
    assert!(matches!(err, StoreError::Spool { .. }), "{err}");
    // Two stores cannot share one spool.
    let spool = dir.path().join("spool");
    let _first = Store::open(&url, &spool, fast_opts()).await.unwrap();
    let err = Store::open(&url, &spool, fast_opts()).await.unwrap_err();
    assert!(matches!(err, StoreError::SpoolLocked(_)), "{err}");
    let err = Store::migrate("postgres://nobody@127.0.0.1:1/none")
        .await
        .unwrap_err();
    assert!(err.to_string().to_lowercase().contains("refused"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_unreachable_at_startup_spools_then_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let db_dir = dir.path().join("not-yet");
    let url = format!("sqlite://{}", db_dir.join("records.db").display());
    let store = Store::open(&url, &dir.path().join("spool"), fast_opts())
        .await
        .unwrap();
    assert!(!store.is_ready().await);
    let sink = store.writer();
    for n in 0..50 {
        sink.send(event("s", 0, n)).unwrap();
    }
    store.flush(Duration::from_secs(5)).await.unwrap();
    assert_eq!(store.stats().spooled, 50);
    assert!(store.stats().write_errors > 0);
    std::fs::create_dir(&db_dir).unwrap();
    wait_written(&store).await;
    assert!(store.is_ready().await);
    let check = Check::connect(&url).await;
    assert_eq!(check.i64("SELECT COUNT(*) FROM queue_events").await, 50);
    assert_eq!(check.out_of_order_queue_events().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreachable_at_startup_spools_then_catches_up() {
    let pg = PgCluster::start().unwrap();
    let url = pg.create_database("late").unwrap();
    pg.stop().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&url, dir.path(), fast_opts()).await.unwrap();
    assert!(!store.is_ready().await);
    let sink = store.writer();
    for n in 0..100 {
        sink.send(event("p", n % 4, n / 4)).unwrap();
    }
    store.flush(Duration::from_secs(5)).await.unwrap();
    assert_eq!(store.stats().spooled, 100);
    // The API reports the outage instead of hanging.
    assert!(store.recent_calls(None, 1).await.is_err());
    pg.start_server().unwrap();
    wait_written(&store).await;
    assert!(store.is_ready().await);
    let check = Check::connect(&url).await;
    assert_eq!(check.i64("SELECT COUNT(*) FROM queue_events").await, 100);
    assert_eq!(check.out_of_order_queue_events().await, 0);
}

// ---------------------------------------------------------------------------------------------
// Fault: PostgreSQL stops while records are written

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_while_writing_loses_and_duplicates_nothing() {
    const CALLS: usize = 20;
    const EVENTS: usize = 60;
    let pg = std::sync::Arc::new(PgCluster::start().unwrap());
    let url = pg.create_database("outage").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        db_timeout: Duration::from_secs(1),
        batch_size: 64,
        ..fast_opts()
    };
    let store = Store::open(&url, dir.path(), opts).await.unwrap();
    let sink = store.writer();

    let producer = tokio::spawn(async move {
        for n in 0..EVENTS {
            for c in 0..CALLS {
                sink.send(event("o", c, n)).unwrap();
            }
            sink.send(call(&format!("o-call-{n}"), 0)).unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await; // ~3 s of traffic
        }
    });
    let watcher_store = store.clone();
    let watcher = tokio::spawn(async move {
        let mut max_spooled = 0;
        let mut saw_down = false;
        for _ in 0..400 {
            let st = watcher_store.stats();
            max_spooled = max_spooled.max(st.spooled);
            saw_down |= !st.database_up;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (max_spooled, saw_down)
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let p = pg.clone();
    tokio::task::spawn_blocking(move || p.stop())
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let p = pg.clone();
    tokio::task::spawn_blocking(move || p.start_server())
        .await
        .unwrap()
        .unwrap();
    producer.await.unwrap();
    wait_written(&store).await;
    let (max_spooled, saw_down) = watcher.await.unwrap();
    assert!(saw_down, "the writer never noticed the outage");
    assert!(
        max_spooled > 0,
        "nothing went through the spool during the outage"
    );

    let check = Check::connect(&url).await;
    let want = i64::try_from(CALLS * EVENTS).unwrap();
    assert_eq!(check.i64("SELECT COUNT(*) FROM queue_events").await, want);
    assert_eq!(
        check
            .i64("SELECT COUNT(DISTINCT id) FROM queue_events")
            .await,
        want
    );
    assert_eq!(check.out_of_order_queue_events().await, 0);
    assert_eq!(check.calls_missing_their_first_event().await, 0);
    assert_eq!(
        check.i64("SELECT COUNT(*) FROM calls").await,
        i64::try_from(EVENTS).unwrap()
    );
    let st = store.stats();
    assert!(st.write_errors > 0);
    assert_eq!((st.dropped, st.rejected, st.spool_corrupt), (0, 0, 0));
}

// ---------------------------------------------------------------------------------------------
// Fault: the writing process is killed with SIGKILL while records are pending

const CHILD_URL: &str = "SWITCHBOARD_STORE_CHILD_URL";
const CHILD_SPOOL: &str = "SWITCHBOARD_STORE_CHILD_SPOOL";
const CHILD_RECORDS: usize = 400;

/// Child half of `sigkill_with_pending_records_replays_the_spool_once`; does nothing unless
/// started by it (the environment names a database and a spool).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by sigkill_with_pending_records_replays_the_spool_once"]
async fn crash_child() {
    let (Ok(url), Ok(spool)) = (std::env::var(CHILD_URL), std::env::var(CHILD_SPOOL)) else {
        return;
    };
    let store = Store::open(&url, Path::new(&spool), fast_opts())
        .await
        .unwrap();
    let sink = store.writer();
    for n in 0..CHILD_RECORDS / 8 {
        for c in 0..8 {
            sink.send(event("k", c, n)).unwrap();
        }
    }
    let s = store.clone();
    wait_until(
        "the child's records to be spooled",
        Duration::from_secs(20),
        move || s.stats().spooled >= CHILD_RECORDS as u64,
    )
    .await;
    println!("SPOOLED {CHILD_RECORDS}");
    // Keep records pending until the parent kills this process.
    for n in 0..60_000 {
        let _ = sink.send(event("late", n % 8, n / 8));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_pending_records_replays_the_spool_once() {
    let pg = PgCluster::start().unwrap();
    let url = pg.create_database("crash").unwrap();
    Store::migrate(&url).await.unwrap();
    pg.stop().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_URL, &url)
        .env(CHILD_SPOOL, &spool)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reported = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains(&format!("SPOOLED {CHILD_RECORDS}")))
    });
    let reported = tokio::time::timeout(Duration::from_secs(30), reported).await;
    // Let late records pile up in the queue and the spool, then SIGKILL.
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        matches!(reported, Ok(Ok(true))),
        "the child never reported its spool"
    );
    assert!(!status.success());

    pg.start_server().unwrap();
    let store = Store::open(&url, &spool, fast_opts()).await.unwrap();
    let recovered = store.stats().spooled;
    assert!(
        recovered >= CHILD_RECORDS as u64,
        "only {recovered} records in the spool"
    );
    wait_written(&store).await;

    let check = Check::connect(&url).await;
    assert_eq!(
        check
            .i64("SELECT COUNT(*) FROM queue_events WHERE id LIKE 'k-%'")
            .await,
        i64::try_from(CHILD_RECORDS).unwrap()
    );
    let total = check.i64("SELECT COUNT(*) FROM queue_events").await;
    assert_eq!(
        check
            .i64("SELECT COUNT(DISTINCT id) FROM queue_events")
            .await,
        total
    );
    assert_eq!(total, i64::try_from(recovered).unwrap());
    assert_eq!(check.out_of_order_queue_events().await, 0);
    assert_eq!(check.calls_missing_their_first_event().await, 0);
    // Replaying the same spool again (as after a crash right after the commit) adds nothing.
    drop(store);
    let _ = check;
}

// ---------------------------------------------------------------------------------------------
// Fault: the spool's disk is full

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "this test mounts a tiny tmpfs and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_spool_disk_keeps_records_in_memory_and_calls_going() {
    let pg = PgCluster::start().unwrap();
    let url = pg.create_database("diskfull").unwrap();
    Store::migrate(&url).await.unwrap();
    pg.stop().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mount = Tmpfs::mount(&dir.path().join("spool"), "64k");
    let opts = StoreOptions {
        queue_capacity: 500,
        memory_limit: 1_000,
        retry_interval: Duration::from_millis(50),
        ..fast_opts()
    };
    let store = Store::open(&url, &mount.0, opts).await.unwrap();
    let sink = store.writer();
    // About 600 bytes a line: the 64 KiB spool fills after roughly a hundred records.
    let mut accepted = Vec::new();
    for n in 0..400 {
        let mut e = event("f", n % 4, n / 4);
        e.agent_id = Some("x".repeat(400));
        sink.send(e.clone()).unwrap();
        accepted.push(e.id);
    }
    let s = store.clone();
    wait_until("the spool to fail", Duration::from_secs(10), move || {
        let st = s.stats();
        st.spool_failing && st.write_errors > 0
    })
    .await;
    let st = store.stats();
    assert!(st.spooled > 0 && st.spooled < 400, "spooled {}", st.spooled);
    assert_eq!(st.pending, 400);
    assert_eq!(st.dropped, 0);

    // Past the memory and queue bounds, `send` refuses at once instead of blocking.
    let mut refused = 0;
    let sends = tokio::time::timeout(Duration::from_secs(2), async {
        for n in 400..4_000 {
            match sink.send(event("f", n % 4, n / 4)) {
                Ok(()) => accepted.push(format!("f-c{}-e{}", n % 4, n / 4)),
                Err(StoreError::Overloaded) => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await;
    assert!(sends.is_ok(), "send blocked");
    assert!(refused > 0);
    assert_eq!(store.stats().dropped, refused);
    // A flush cannot finish while nothing can take the records.
    assert!(matches!(
        store.flush(Duration::from_millis(300)).await,
        Err(StoreError::FlushTimeout { .. })
    ));

    pg.start_server().unwrap();
    wait_written(&store).await;
    let check = Check::connect(&url).await;
    let total = check.i64("SELECT COUNT(*) FROM queue_events").await;
    assert_eq!(total, i64::try_from(accepted.len()).unwrap());
    assert_eq!(
        check
            .i64("SELECT COUNT(DISTINCT id) FROM queue_events")
            .await,
        total
    );
    // Refused records leave gaps, but what was stored is in order per call.
    assert_eq!(
        check
            .i64(
                "SELECT COUNT(*) FROM (SELECT CAST(data AS INTEGER) AS n, \
                 LAG(CAST(data AS INTEGER)) OVER (PARTITION BY call_id ORDER BY seq) AS prev \
                 FROM queue_events) t WHERE prev IS NOT NULL AND n <= prev"
            )
            .await,
        0
    );
    let st = store.stats();
    assert_eq!((st.pending, st.spooled), (0, 0));
    assert!(!st.spool_failing);
}
