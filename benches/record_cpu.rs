//! CPU the record path costs per call, on the embedded SQLite: the records call control writes
//! for one answered queued call (a journal row at the start and at the answer, the final row,
//! ENTERQUEUE / CONNECT / COMPLETECALLER and the agent's three state changes: 9 records) sent
//! through a `RecordSink` at a steady call rate, as the server sends them under load, until the
//! writer has committed every row. Baseline, same run: the same records sent in one burst
//! (the writer's batches are then always full), the floor of the record path's cost per call.
//!
//! `cargo bench --bench record_cpu` (calls: `RECORD_BENCH_CALLS`, default 20000; rate:
//! `RECORD_BENCH_RATE`, default 2000 calls/s).

use std::path::Path;
use std::time::{Duration, Instant};

use switchboard_store::{
    AgentEventKind, AgentSessionEvent, CallRecord, Direction, HangupSide, Outcome, QueueEvent,
    QueueEventKind, Record, Store, StoreOptions, Timestamp,
};

/// The bench's only clock reads (an edge binary measuring wall time).
#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

/// CPU seconds this process used so far (all threads: the writer's and SQLite's included),
/// from `/proc/self/stat` (utime + stime, clock ticks of 10 ms).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn call_row(run: &str, i: usize, at: Timestamp, final_row: bool) -> CallRecord {
    CallRecord {
        id: format!("{run}-{i:08}"),
        sip_call_id: format!("{i:016x}@pbx.example"),
        direction: Direction::Inbound,
        trunk: Some("pbx-main".into()),
        caller: format!("+3859{i:08}"),
        dialed: "100".into(),
        client_number: Some(format!("+3859{i:08}")),
        client_class: Some("new".into()),
        purpose: Some("order".into()),
        queue: Some("orders".into()),
        agent_id: Some(format!("a{:05}", i % 3_000)),
        route: "queue:orders".into(),
        started_at: at,
        queued_at: Some(at),
        answered_at: Some(at),
        ended_at: at,
        wait_ms: 1,
        talk_ms: 0,
        outcome: if final_row {
            Outcome::Answered
        } else {
            Outcome::Interrupted
        },
        hangup_side: if final_row {
            HangupSide::Caller
        } else {
            HangupSide::System
        },
        recording: None,
        journal: (!final_row).then(|| "node-a".to_owned()),
        callback_id: None,
        campaign: None,
    }
}

/// The nine records of call `i`, in the order call control sends them.
fn call_records(run: &str, i: usize) -> Vec<Record> {
    let base = 1_700_000_000_000_000i64 + i64::try_from(i).unwrap_or(0) * 500;
    let at = Timestamp::from_timestamp_micros(base).unwrap_or_default();
    let agent = format!("a{:05}", i % 3_000);
    let event = |n: usize, kind: QueueEventKind| -> Record {
        QueueEvent {
            id: format!("{run}-{i:08}-q{n}"),
            at,
            call_id: format!("{run}-{i:08}"),
            queue: "orders".into(),
            agent_id: (n > 0).then(|| agent.clone()),
            event: kind,
            data: Some("1".into()),
        }
        .into()
    };
    let state = |n: usize, to: &str, from: &str| -> Record {
        AgentSessionEvent {
            id: format!("{run}-{i:08}-s{n}"),
            at,
            agent_id: agent.clone(),
            event: AgentEventKind::State,
            state: Some(to.into()),
            reason: Some(format!("from {from}")),
        }
        .into()
    };
    vec![
        call_row(run, i, at, false).into(),
        event(0, QueueEventKind::EnterQueue),
        state(0, "ringing", "available"),
        event(1, QueueEventKind::Connect),
        state(1, "busy", "ringing"),
        call_row(run, i, at, false).into(),
        event(2, QueueEventKind::CompleteCaller),
        state(2, "available", "busy"),
        call_row(run, i, at, true).into(),
    ]
}

struct RunResult {
    calls: usize,
    cpu_s: f64,
    wall_s: f64,
}

impl RunResult {
    fn cpu_per_1k(&self) -> f64 {
        self.cpu_s * 1_000.0 / self.calls as f64
    }
}

/// Writes `calls` calls' records, `rate` calls per second (`None`: all at once), and waits
/// until the writer has committed them.
fn run(rt: &tokio::runtime::Runtime, name: &str, calls: usize, rate: Option<f64>) -> RunResult {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("records.db").display());
    let spool = dir.path().join("spool");
    let opts = StoreOptions {
        queue_capacity: calls * 9 + 1,
        memory_limit: calls * 9 + 1,
        ..StoreOptions::default()
    };
    let store = rt
        .block_on(Store::open(&url, Path::new(&spool), opts))
        .expect("open store");
    assert!(rt.block_on(store.is_ready()), "database not ready");
    let records: Vec<Vec<Record>> = (0..calls).map(|i| call_records(name, i)).collect();
    let sink = store.writer();
    let rows = (calls * 9) as u64;
    let cpu0 = cpu_seconds();
    let start = now();
    for (i, call) in records.into_iter().enumerate() {
        if let Some(rate) = rate {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            let wait = due.saturating_duration_since(now());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
        }
        for r in call {
            sink.send(r).expect("send");
        }
    }
    let deadline = Duration::from_secs(300);
    while store.stats().written < rows {
        assert!(start.elapsed() < deadline, "writer too slow");
        std::thread::sleep(Duration::from_millis(1));
    }
    let wall_s = start.elapsed().as_secs_f64();
    let cpu_s = cpu_seconds() - cpu0;
    let st = store.stats();
    assert_eq!((st.write_errors, st.spooled, st.dropped), (0, 0, 0));
    rt.block_on(store.close(Duration::from_secs(10)))
        .expect("close");
    RunResult {
        calls,
        cpu_s,
        wall_s,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let env = |k: &str, d: f64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(d)
    };
    let calls = env("RECORD_BENCH_CALLS", 20_000.0) as usize;
    let rate = env("RECORD_BENCH_RATE", 2_000.0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Warm-up: the statement shapes, the page cache, the allocator.
    run(&rt, "warmup", 2_000, None);
    let paced = run(&rt, "paced", calls, Some(rate));
    let burst = run(&rt, "burst", calls, None);
    println!("record_cpu: SQLite (WAL, synchronous=NORMAL), 9 records per call via RecordSink");
    for (label, r) in [
        (format!("{rate:.0} calls/s"), &paced),
        ("one burst".to_owned(), &burst),
    ] {
        println!(
            "  {label:>14}: {:>6} calls, {:>5.2} CPU-s in {:>5.2} s = {:.3} CPU-s per 1,000 calls",
            r.calls,
            r.cpu_s,
            r.wall_s,
            r.cpu_per_1k()
        );
    }
    println!(
        "  ratio paced / burst: {:.2}x",
        paced.cpu_per_1k() / burst.cpu_per_1k()
    );
}
