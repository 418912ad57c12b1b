//! CDR write throughput into a real PostgreSQL (started by `switchboard-testkit`): the record
//! writer with its batched inserts against the same writer inserting one row per transaction
//! (`batch_size = 1`), in the same run. Rows are full `calls` records sent through a
//! `RecordSink`; a run ends when the writer has committed every row, checked with SQL.
//!
//! `cargo bench --bench cdr_write` (rows: `CDR_BENCH_ROWS`, default 100000 batched; the
//! one-row-per-insert baseline writes a tenth of that).

use std::path::Path;
use std::time::{Duration, Instant};

use switchboard_store::{
    CallRecord, Direction, HangupSide, Outcome, Store, StoreOptions, Timestamp,
};
use switchboard_testkit::PgCluster;

fn record(run: &str, i: usize) -> CallRecord {
    let base = 1_700_000_000_000_000i64 + i64::try_from(i).unwrap_or(0) * 1_000;
    let t = |off: i64| Timestamp::from_timestamp_micros(base + off).unwrap_or_default();
    CallRecord {
        id: format!("{run}-{i:08}"),
        sip_call_id: format!("{i:016x}@pbx.example"),
        direction: Direction::Inbound,
        trunk: Some("pbx-main".into()),
        caller: format!("+1555{:07}", i % 10_000_000),
        dialed: "100".into(),
        client_number: Some(format!("+1555{:07}", i % 10_000_000)),
        client_class: Some("standard".into()),
        purpose: Some("order".into()),
        queue: Some("orders".into()),
        agent_id: Some(format!("agent{}", i % 50)),
        route: "queue:orders(agent7)".into(),
        started_at: t(0),
        queued_at: Some(t(1_200)),
        answered_at: Some(t(8_000_000)),
        ended_at: t(95_000_000),
        wait_ms: 7_998,
        talk_ms: 87_000,
        outcome: Outcome::Answered,
        hangup_side: HangupSide::Caller,
        recording: None,
        journal: None,
        callback_id: None,
        campaign: None,
    }
}

/// The bench's only clock reads (an edge binary measuring wall time).
#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

struct RunResult {
    rows: usize,
    secs: f64,
    send_ns: f64,
}

async fn run(pg: &PgCluster, name: &str, rows: usize, batch_size: usize) -> RunResult {
    let url = pg.create_database(name).expect("create database");
    let spool = tempfile::tempdir().expect("spool dir");
    let opts = StoreOptions {
        batch_size,
        queue_capacity: rows + 1,
        memory_limit: rows + 1,
        ..StoreOptions::default()
    };
    let store = Store::open(&url, Path::new(spool.path()), opts)
        .await
        .expect("open store");
    assert!(store.is_ready().await, "database not ready");
    let records: Vec<CallRecord> = (0..rows).map(|i| record(name, i)).collect();
    let sink = store.writer();
    let start = now();
    for r in records {
        sink.send(r).expect("send");
    }
    let send_ns = start.elapsed().as_nanos() as f64 / rows as f64;
    let deadline = Duration::from_secs(300);
    while store.stats().written < rows as u64 {
        assert!(start.elapsed() < deadline, "writer too slow");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let st = store.stats();
    assert_eq!((st.write_errors, st.spooled, st.dropped), (0, 0, 0));
    let counted = pg
        .psql(name, "SELECT COUNT(*) FROM calls")
        .expect("count rows");
    assert_eq!(counted, rows.to_string(), "rows in the database");
    store.close(Duration::from_secs(10)).await.expect("close");
    RunResult {
        rows,
        secs,
        send_ns,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let rows: usize = std::env::var("CDR_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let pg = match PgCluster::start() {
        Ok(pg) => pg,
        Err(e) => {
            eprintln!("cdr_write: {e}");
            std::process::exit(1);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // Warm-up: connections, prepared statements, page cache.
        run(&pg, "warmup", 5_000, 1_024).await;
        let per_row = run(&pg, "per_row", (rows / 10).max(1), 1).await;
        let batched = run(&pg, "batched", rows, 1_024).await;
        let rate = |r: &RunResult| r.rows as f64 / r.secs;
        println!(
            "cdr_write: PostgreSQL (testkit cluster, fsync=off), full `calls` rows via RecordSink"
        );
        println!(
            "  one insert per row : {:>7} rows in {:>6.2} s = {:>9.0} rows/s",
            per_row.rows,
            per_row.secs,
            rate(&per_row)
        );
        println!(
            "  batched (1024/tx)  : {:>7} rows in {:>6.2} s = {:>9.0} rows/s",
            batched.rows,
            batched.secs,
            rate(&batched)
        );
        println!(
            "  ratio batched / per-row: {:.1}x; RecordSink::send {:.0} ns/record",
            rate(&batched) / rate(&per_row),
            batched.send_ns
        );
        println!(
            "  goal >= 20000 rows/s batched: {}",
            if rate(&batched) >= 20_000.0 {
                "met"
            } else {
                "NOT met"
            }
        );
    });
}
