//! The call center's day through the real server: "calls today" and the queue's totals for
//! today start again from 0 at local midnight in `[routing] timezone`.
//!
//! The server runs under libfaketime (Debian package `faketime`) with its wall clock started
//! at 23:59:10 in Zagreb, its host's zone UTC; `FAKETIME_DONT_FAKE_MONOTONIC=1` keeps the
//! monotonic clock real, so tokio's timers and the SIP timers run as always. Nothing else
//! changes: the server reads the wall clock once at start (`clock::wall_now`), dates the
//! engine's time from it and schedules the reset at the next local midnight (`daily.rs`) —
//! the production path, on a clock that reaches midnight 50 s after start. A SIPp trunk call
//! answered by oleg (a SIPp agent) before midnight, then another one after it.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use switchboard_store::chrono::{DateTime, FixedOffset};

use crate::harness::*;

const CLIENTS: &str = "number,name,type,manager,region,overdue_debt
+38511000004,Retail Corner,retail,oleg,,0
";
const CALLER: &str = "+38511000004";
/// Start of the server's clock in UTC: 23:59:10 in Zagreb (UTC+1 in March), leaving 50 s
/// for start-up, registration and the first call.
const FAKE_START: &str = "2026-03-02 22:59:10";
const MIDNIGHT: &str = "2026-03-03T00:00:00+01:00";
const YESTERDAY: &str = "from=2026-03-02T00:00:00%2B01:00&to=2026-03-03T00:00:00%2B01:00";

/// libfaketime's multi-threaded preload library, if installed.
fn libfaketime() -> Option<PathBuf> {
    ["x86_64-linux-gnu", "aarch64-linux-gnu"]
        .iter()
        .map(|arch| PathBuf::from(format!("/usr/lib/{arch}/faketime/libfaketimeMT.so.1")))
        .find(|p| p.exists())
}

fn agent(port: u16, id: &str) -> Value {
    let (status, body) = api_get(port, &format!("/api/v1/agents/{id}")).unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn calls_today(port: u16, id: &str) -> u64 {
    agent(port, id)["calls_today"].as_u64().unwrap()
}

/// The orders queue's (offered, answered) in the queue report of `query` (empty: today).
fn orders_totals(port: u16, query: &str) -> (i64, i64) {
    let (status, body) = api_get(port, &format!("/api/v1/reports/queues?{query}")).unwrap();
    assert_eq!(status, 200, "{body}");
    let rows: Value = serde_json::from_str(&body).unwrap();
    let rows: Vec<&Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["queue"] == "orders")
        .collect();
    assert_eq!(rows.len(), 1, "one day, one row: {body}");
    (
        rows[0]["offered"].as_i64().unwrap(),
        rows[0]["answered"].as_i64().unwrap(),
    )
}

/// Places a call from the retail client (standard class: queue `orders`) answered by oleg;
/// returns its stored record (the newest of `known + 1`).
fn place_call(server: &Server, known: usize) -> Value {
    let (status, out, messages) = trunk_call(server, CALLER, "100", 1000);
    assert!(
        status.success(),
        "trunk call failed:\n{out}\n{messages}\n{}",
        server.log()
    );
    let call = newest_call(server, known);
    assert_eq!(call["outcome"], "answered", "{call}");
    assert_eq!(call["agent_id"], "oleg", "{call}");
    call
}

fn started(call: &Value) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(call["started_at"].as_str().unwrap()).unwrap()
}

#[test]
fn daily_counters_start_again_at_local_midnight() {
    if without_sipp() {
        return;
    }
    let Some(preload) = libfaketime() else {
        return peer_missing("libfaketime (Debian package faketime)");
    };
    let ports = Ports::new();
    let config = demo_config(&ports);
    assert!(config.contains("timezone = \"Europe/Zagreb\""), "{config}");
    let dir = tempfile::tempdir().unwrap();
    import_clients(dir.path(), &config, CLIENTS);
    let env = [
        ("LD_PRELOAD", preload.to_string_lossy().into_owned()),
        ("FAKETIME", format!("@{FAKE_START}")),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_owned()),
        // The host's zone is UTC (libfaketime reads FAKETIME in it); the server's day is
        // `[routing] timezone`'s, for the counters and for the reports' "today" alike.
        ("TZ", "UTC".to_owned()),
    ];
    let env = env.map(|(k, v)| (k.to_owned(), v)).to_vec();
    let server = Server::start_with_env(dir, &config, ports, env);
    let port = server.ports.http;
    let midnight = DateTime::parse_from_rfc3339(MIDNIGHT).unwrap();
    let _oleg = SippAgent::start(&server, "oleg", None);
    wait_available(&server, "oleg");
    assert_eq!(calls_today(port, "oleg"), 0);

    // Before midnight: the call counts today.
    let first = place_call(&server, 0);
    assert!(
        started(&first) < midnight,
        "the server's clock passed midnight before the first call (a very slow start?): {first}"
    );
    assert_eq!(calls_today(port, "oleg"), 1, "{}", server.log());
    assert_eq!(orders_totals(port, ""), (1, 1));

    // Midnight in Zagreb: the engine zeroes the counters on its own clock.
    wait_until(
        &server,
        "calls today back to 0",
        Duration::from_secs(60),
        || calls_today(port, "oleg") == 0,
    );
    let scheduled: Vec<String> = server
        .log()
        .lines()
        .filter(|l| l.contains("daily counters reset scheduled"))
        .map(str::to_owned)
        .collect();
    // At start for this midnight, then (after the reset) for the next one, 24 h later.
    let next_ms = (midnight + switchboard_store::chrono::Duration::days(1)).timestamp_millis();
    assert_eq!(scheduled.len(), 2, "{scheduled:?}");
    assert!(
        scheduled[0].contains(&format!("at_ms={}", midnight.timestamp_millis())),
        "{scheduled:?}"
    );
    assert!(
        scheduled[1].contains(&format!("at_ms={next_ms}")),
        "{scheduled:?}"
    );
    // Today has no call yet; yesterday keeps its own.
    assert_eq!(orders_totals(port, ""), (0, 0));
    assert_eq!(orders_totals(port, YESTERDAY), (1, 1));

    // After midnight, today's calls count from 1.
    wait_available(&server, "oleg");
    let second = place_call(&server, 1);
    assert!(started(&second) >= midnight, "{second}");
    assert_eq!(calls_today(port, "oleg"), 1, "{}", server.log());
    assert_eq!(orders_totals(port, ""), (1, 1));
    assert_eq!(orders_totals(port, YESTERDAY), (1, 1));
}
