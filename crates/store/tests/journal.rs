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
    for c in store.recent_rows(None, 100).await.unwrap() {
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
