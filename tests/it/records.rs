//! Records through the real server: a database that is down at start-up, and a crash
//! (SIGKILL) with records waiting in the spool, against a real PostgreSQL.

use std::time::Duration;

use switchboard_testkit::PgCluster;

use crate::harness::*;

/// `switchboard_cdr_pending` from /metrics.
fn pending(server: &Server) -> Option<u64> {
    let (_, body) = http_get(server.ports.http, "/metrics").ok()?;
    body.lines()
        .find(|l| l.starts_with("switchboard_cdr_pending "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
}

/// Every line of every spool segment.
fn spool_text(server: &Server) -> String {
    let mut text = String::new();
    if let Ok(entries) = std::fs::read_dir(server.dir.path().join("spool")) {
        for e in entries.flatten() {
            text.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    text
}

#[test]
fn unreachable_database_at_startup_the_server_runs_spools_and_is_not_ready() {
    if without_sipp() {
        return;
    }
    let ports = Ports::new();
    let dead_port = free_port();
    let config = demo_config(&ports).replace(
        "url = \"sqlite://switchboard.db\"",
        &format!("url = \"postgres://postgres@127.0.0.1:{dead_port}/switchboard\""),
    );
    let server = Server::start(&config, ports);
    let (status, body) = http_get(server.ports.http, "/readyz").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"database\":false"), "{body}");
    // Calls are still handled, and their records wait in the spool. Without the database the
    // client directory is empty: every caller is a new client, for a department head.
    let _ivan = SippAgent::start(&server, "ivan", None);
    let (status, out, messages) = trunk_call(&server, "+38511000004", "100", 1500);
    assert!(status.success(), "{out}\n{messages}\n{}", server.log());
    wait_until(
        &server,
        "the call's record in the spool",
        Duration::from_secs(15),
        || {
            let spool = spool_text(&server);
            spool.contains("\"outcome\":\"answered\"") && pending(&server).unwrap_or(0) >= 1
        },
    );
    let ended = ended_calls(&server.log());
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0]["agent"], "ivan");
}

#[test]
fn records_pending_when_the_server_is_killed_are_written_exactly_once_after_restart() {
    if without_sipp() {
        return;
    }
    let pg = match PgCluster::start() {
        Ok(pg) => pg,
        Err(e) => panic!("PostgreSQL is needed for this test (tests/run.sh installs it): {e}"),
    };
    let url = pg.fresh_database("crash").unwrap();
    let ports = Ports::new();
    let config = demo_config(&ports).replace(
        "url = \"sqlite://switchboard.db\"",
        &format!("url = \"{url}\""),
    );
    let mut server = Server::start(&config, ports);
    let db = url.rsplit('/').next().unwrap().to_owned();
    // No client directory was loaded: every caller is new, for a department head.
    let _ivan = SippAgent::start(&server, "ivan", None);
    // The database goes away; three calls are handled meanwhile.
    pg.stop().unwrap();
    let mut call_ids = Vec::new();
    for i in 0..3 {
        let caller = format!("+3851200000{i}");
        let (status, out, messages) = trunk_call(&server, &caller, "100", 800);
        assert!(status.success(), "{out}\n{messages}\n{}", server.log());
        call_ids.push(caller);
    }
    wait_until(
        &server,
        "3 call records in the spool",
        Duration::from_secs(20),
        || {
            spool_text(&server)
                .matches("\"outcome\":\"answered\"")
                .count()
                >= 3
        },
    );
    // Crash: no shutdown, no flush.
    server.kill_hard();
    pg.start_server().unwrap();
    server.restart();
    wait_until(
        &server,
        "the spool replayed into PostgreSQL",
        Duration::from_secs(30),
        || {
            pg.psql(&db, "SELECT count(*) FROM calls")
                .is_ok_and(|n| n.trim() == "3")
                && pending(&server) == Some(0)
        },
    );
    let distinct = pg
        .psql(
            &db,
            "SELECT count(DISTINCT id) || '/' || count(*) FROM calls",
        )
        .unwrap();
    assert_eq!(distinct.trim(), "3/3", "every call exactly once");
    let callers = pg
        .psql(
            &db,
            "SELECT string_agg(caller, ',' ORDER BY caller) FROM calls",
        )
        .unwrap();
    assert_eq!(callers.trim(), call_ids.join(","));
    // The agent's login and the queue events survived too, each once.
    let events = pg
        .psql(
            &db,
            "SELECT count(*) - count(DISTINCT id) FROM queue_events",
        )
        .unwrap();
    assert_eq!(events.trim(), "0");
    let connects = pg
        .psql(
            &db,
            "SELECT count(*) FROM queue_events WHERE event = 'CONNECT'",
        )
        .unwrap();
    assert_eq!(connects.trim(), "3");
    // Every queue event belongs to a call record, including those the engine reported after
    // the call ended (COMPLETECALLER).
    let orphans = pg
        .psql(
            &db,
            "SELECT count(*) FROM queue_events q WHERE NOT EXISTS (SELECT 1 FROM calls c WHERE c.id = q.call_id)",
        )
        .unwrap();
    assert_eq!(orphans.trim(), "0");
    let completes = pg
        .psql(
            &db,
            "SELECT count(*) FROM queue_events WHERE event = 'COMPLETECALLER'",
        )
        .unwrap();
    assert_eq!(completes.trim(), "3");
}

/// A SIPp trunk floods INVITEs at a server whose transaction table is tiny
/// (`sip.max_transactions = 4`): the endpoint refuses the overflow with its stateless `503`
/// and each refused INVITE is one `rejected` call record (trunk known, route naming the
/// overload) — as many as distinct calls got a 503, however often SIPp retransmitted.
#[test]
fn invites_refused_by_overload_are_recorded_as_rejected() {
    if without_sipp() {
        return;
    }
    let ports = Ports::new();
    let config = demo_config(&ports).replacen(
        "advertised_address = \"127.0.0.1\"",
        "advertised_address = \"127.0.0.1\"\nmax_transactions = 4",
        1,
    );
    let server = Server::start(&config, ports);
    // 20 calls at 20 per second, below the per-source INVITE rate (not what is tested).
    let (_, out, messages) = sipp(
        "trunk_call.xml",
        server.sip_addr(),
        &[
            "-key",
            "caller",
            "+38511000004",
            "-s",
            "100",
            "-d",
            "500",
            "-m",
            "20",
            "-r",
            "20",
            "-l",
            "20",
        ],
        Duration::from_secs(20),
    );
    // Calls that met a 503, from SIPp's trace of what it received.
    let refused: std::collections::BTreeSet<&str> = messages
        .split("message received")
        .filter(|m| m.contains("SIP/2.0 503 Service Unavailable"))
        .filter_map(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("Call-ID:").map(str::trim))
        })
        .collect();
    assert!(
        refused.len() >= 10,
        "the flood met the full table: {} refused\n{out}",
        refused.len()
    );
    let sql = "SELECT sip_call_id FROM calls WHERE outcome = 'rejected' AND trunk = 'pbx-main' \
               AND route LIKE '%503%overload%' ORDER BY sip_call_id";
    wait_until(
        &server,
        "the refusals' records",
        Duration::from_secs(10),
        || sqlite(&server, sql).lines().count() >= refused.len(),
    );
    let stored = sqlite(&server, sql);
    let stored: std::collections::BTreeSet<&str> = stored.lines().collect();
    assert_eq!(stored, refused, "one record per refused call");
    let (_, metrics) = http_get(server.ports.http, "/metrics").unwrap();
    let counted = metric_sum(
        &metrics,
        "switchboard_sip_refused_total",
        &["reason=\"overload\""],
    );
    assert!(counted >= refused.len() as f64, "{counted}\n{metrics}");
}
