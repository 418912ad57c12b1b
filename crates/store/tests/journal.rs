//! Crash-safe call records against real databases (a throwaway PostgreSQL and SQLite): a call
//! journaled at its start and phase changes leaves its row when the server stops without
//! ending it; the next start of the same server closes it as `interrupted` with the last time
//! known; replays never duplicate a row or turn a final record back into a journal row.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use switchboard_store::*;
use switchboard_testkit::PgCluster;

/// `secs` after the test's calls started: now, as the first run is already open (its own
/// calls are never closed by it).
fn t(secs: i64) -> Timestamp {
    use std::sync::OnceLock;
    static BASE: OnceLock<i64> = OnceLock::new();
    let base = *BASE.get_or_init(|| now_utc().timestamp());
    Timestamp::from_timestamp(base + secs, 0).unwrap()
}

/// Call `id` as journaled (`node` set) or final, last known at `last`.
fn row(id: &str, node: Option<&str>, last: i64, outcome: Outcome) -> CallRecord {
    CallRecord {
        id: id.to_owned(),
        sip_call_id: format!("{id}@pbx"),
        direction: Direction::Inbound,
        trunk: Some("pbx-main".into()),
        caller: "+15550100".into(),
        dialed: "100".into(),
        client_number: Some("+15550100".into()),
        client_class: Some("standard".into()),
        purpose: Some("order".into()),
        queue: Some("orders".into()),
        agent_id: None,
        route: String::new(),
        started_at: t(0),
        queued_at: Some(t(0)),
        answered_at: None,
        ended_at: t(last),
        wait_ms: 0,
        talk_ms: 0,
        outcome,
        hangup_side: HangupSide::System,
        recording: None,
        journal: node.map(str::to_owned),
        callback_id: None,
        campaign: None,
    }
}

async fn open(url: &str, spool: &std::path::Path, node: &str) -> Store {
    let opts = StoreOptions {
        db_timeout: Duration::from_secs(2),
        retry_interval: Duration::from_millis(100),
        journal_node: Some(node.to_owned()),
        ..StoreOptions::default()
    };
    Store::open(url, spool, opts).await.unwrap()
}

async fn calls_by_id(store: &Store) -> std::collections::BTreeMap<String, Vec<CallRecord>> {
    let mut by_id = std::collections::BTreeMap::<String, Vec<CallRecord>>::new();
    for c in store.recent_rows(None, 100, true).await.unwrap() {
        by_id.entry(c.id.clone()).or_default().push(c);
    }
    by_id
}

async fn journal_survives_and_is_closed(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    // First run: A is journaled twice (start, then answered) and never ends; B ends; C is
    // another node's call in progress.
    let first = open(url, &spool, "node-1").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let _ = t(0);
    let sink = first.writer();
    sink.send(row("a", Some("node-1"), 1, Outcome::Interrupted))
        .unwrap();
    sink.send(row("b", Some("node-1"), 2, Outcome::Interrupted))
        .unwrap();
    sink.send(row("a", Some("node-1"), 5, Outcome::Interrupted))
        .unwrap();
    sink.send(row("b", None, 9, Outcome::Abandoned)).unwrap();
    sink.send(row("c", Some("node-2"), 3, Outcome::Interrupted))
        .unwrap();
    first.flush(Duration::from_secs(10)).await.unwrap();
    let rows = calls_by_id(&first).await;
    assert_eq!(rows["a"][0].journal.as_deref(), Some("node-1"), "{rows:?}");
    // Stops without ending A (what a kill leaves in the database).
    drop(sink);
    first.close(Duration::from_secs(5)).await.unwrap();

    // Next start of node-1: A is closed as interrupted at the last time known.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = open(url, &spool, "node-1").await;
    let mut rows = calls_by_id(&second).await;
    for _ in 0..100 {
        if rows["a"][0].journal.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        rows = calls_by_id(&second).await;
    }
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows.values().all(|v| v.len() == 1),
        "no duplicates: {rows:?}"
    );
    let a = &rows["a"][0];
    assert_eq!(
        (a.outcome, a.journal.as_deref()),
        (Outcome::Interrupted, None)
    );
    assert_eq!(a.ended_at, t(5), "the last time known");
    assert_eq!(rows["b"][0].outcome, Outcome::Abandoned);
    assert_eq!(rows["b"][0].journal, None);
    assert_eq!(
        rows["c"][0].journal.as_deref(),
        Some("node-2"),
        "another node's call in progress is left alone"
    );

    // A replay of the first run's rows changes nothing: journal rows never overwrite a
    // closed or final row...
    let sink = second.writer();
    sink.send(row("a", Some("node-1"), 1, Outcome::Interrupted))
        .unwrap();
    sink.send(row("b", Some("node-1"), 2, Outcome::Interrupted))
        .unwrap();
    second.flush(Duration::from_secs(10)).await.unwrap();
    let rows = calls_by_id(&second).await;
    assert_eq!(
        (rows["a"][0].journal.as_deref(), rows["a"][0].ended_at),
        (None, t(5))
    );
    assert_eq!(rows["b"][0].outcome, Outcome::Abandoned);
    // ... while A's final record, had it still been in the spool, would win.
    sink.send(row("a", None, 7, Outcome::Answered)).unwrap();
    second.flush(Duration::from_secs(10)).await.unwrap();
    let rows = calls_by_id(&second).await;
    assert_eq!(rows["a"][0].outcome, Outcome::Answered);
    assert_eq!(rows.len(), 3);
    drop(sink);
    second.close(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn sqlite_journal_survives_a_stop_and_is_closed_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("records.db").display());
    journal_survives_and_is_closed(&url).await;
}

#[tokio::test]
async fn postgres_journal_survives_a_stop_and_is_closed_at_the_next_start() {
    let url = PgCluster::shared()
        .unwrap()
        .fresh_database("journal")
        .unwrap();
    journal_survives_and_is_closed(&url).await;
}

fn queue_event(
    id: &str,
    call: &str,
    secs: i64,
    event: QueueEventKind,
    agent: Option<&str>,
) -> Record {
    QueueEvent {
        id: id.to_owned(),
        at: t(secs),
        call_id: call.to_owned(),
        queue: "orders".to_owned(),
        agent_id: agent.map(str::to_owned),
        event,
        data: None,
    }
    .into()
}

fn session(id: &str, agent: &str, secs: i64, event: AgentEventKind) -> Record {
    AgentSessionEvent {
        id: id.to_owned(),
        at: t(secs),
        agent_id: agent.to_owned(),
        event,
        state: None,
        reason: Some("registered".to_owned()),
    }
    .into()
}

async fn texts(url: &str, sql: &'static str) -> Vec<String> {
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap()
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap()
    }
}

/// The closing rows the next start wrote: queue events, then agent sessions.
async fn closing_rows(url: &str) -> (Vec<String>, Vec<String>) {
    let events = texts(
        url,
        "SELECT call_id || ' ' || event || ' ' || COALESCE(agent_id, '-') || ' ' || data \
         FROM queue_events WHERE id LIKE '%-closed' ORDER BY call_id",
    )
    .await;
    let sessions = texts(
        url,
        "SELECT s.agent_id || ' ' || s.event || ' ' || s.reason || ' ' || s.node FROM agent_sessions s \
         JOIN calls c ON c.id = 'a' AND c.ended_at = s.at \
         WHERE s.id LIKE '%-closed' ORDER BY s.agent_id",
    )
    .await;
    (events, sessions)
}

async fn open_queue_entries_and_sessions_are_closed(url: &str) {
    use AgentEventKind::{Login, Logout, State};
    use QueueEventKind::*;
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let first = open(url, &spool, "node-1").await;
    let other = open(url, &dir.path().join("spool-2"), "node-2").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let _ = t(0);
    // Node 1: call A talks to Ivan, call D waits, call B is over; Ana and Ivan are logged
    // in, Marko logged out again. Node 2: Petra is logged in there.
    let sink = first.writer();
    for r in [
        row("a", Some("node-1"), 5, Outcome::Interrupted).into(),
        row("d", Some("node-1"), 2, Outcome::Interrupted).into(),
        row("b", None, 1, Outcome::Answered).into(),
        queue_event("a1", "a", 0, EnterQueue, None),
        queue_event("d1", "d", 0, EnterQueue, None),
        queue_event("a2", "a", 0, RingNoAnswer, Some("ana")),
        queue_event("a3", "a", 1, Connect, Some("ivan")),
        queue_event("b1", "b", 0, EnterQueue, None),
        queue_event("b2", "b", 0, Connect, Some("marko")),
        queue_event("b3", "b", 1, CompleteAgent, Some("marko")),
        session("s1", "ana", 0, Login),
        session("s2", "marko", 0, Login),
        session("s3", "ivan", 0, Login),
        session("s4", "marko", 1, Logout),
        session("s5", "ivan", 1, State),
    ] {
        sink.send(r).unwrap();
    }
    other
        .writer()
        .send(session("p1", "petra", 0, Login))
        .unwrap();
    first.flush(Duration::from_secs(10)).await.unwrap();
    other.flush(Duration::from_secs(10)).await.unwrap();
    drop(sink);
    first.close(Duration::from_secs(5)).await.unwrap();
    other.close(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        closing_rows(url).await,
        (vec![], vec![]),
        "nothing closed yet"
    );

    // Next start of node 1 (every row above is older than it).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = open(url, &spool, "node-1").await;
    let mut closed = closing_rows(url).await;
    for _ in 0..100 {
        if !closed.0.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        closed = closing_rows(url).await;
    }
    assert_eq!(
        closed.0,
        [
            "a COMPLETECALLER ivan 4000|interrupted",
            "d ABANDON - 2000|interrupted"
        ],
        "open queue entries closed at each call's last time known"
    );
    assert_eq!(
        closed.1,
        [
            "ana logout interrupted node-1",
            "ivan logout interrupted node-1"
        ],
        "open sessions closed at the node's last time known; Marko's and node 2's left alone"
    );
    // A replay of the first run's rows adds nothing.
    let sink = second.writer();
    sink.send(session("s1", "ana", 0, Login)).unwrap();
    sink.send(queue_event("d1", "d", 0, EnterQueue, None))
        .unwrap();
    second.flush(Duration::from_secs(10)).await.unwrap();
    drop(sink);
    second.close(Duration::from_secs(5)).await.unwrap();

    // A third start finds nothing left open: no closing row twice.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let third = open(url, &spool, "node-1").await;
    third.flush(Duration::from_secs(10)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(closing_rows(url).await, closed);
    let counts = texts(
        url,
        "SELECT agent_id || ' ' || CAST(COUNT(*) AS TEXT) FROM agent_sessions \
         GROUP BY agent_id ORDER BY agent_id",
    )
    .await;
    assert_eq!(counts, ["ana 3", "ivan 4", "marko 2", "petra 1"]);
    third.close(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn sqlite_open_queue_entries_and_sessions_are_closed_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("records.db").display());
    open_queue_entries_and_sessions_are_closed(&url).await;
}

#[tokio::test]
async fn postgres_open_queue_entries_and_sessions_are_closed_at_the_next_start() {
    let url = PgCluster::shared()
        .unwrap()
        .fresh_database("closing")
        .unwrap();
    open_queue_entries_and_sessions_are_closed(&url).await;
}
