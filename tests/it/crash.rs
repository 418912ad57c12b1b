//! A server killed (SIGKILL) with calls up leaves their records: each call is journaled when
//! it starts, and the next start closes the rows as `interrupted` with the last time known —
//! every call present once, against SQLite and a real PostgreSQL. The same start closes the
//! queue entries of those calls and the sessions of the agents logged in at the kill.

use std::time::Duration;

use switchboard_testkit::PgCluster;

use crate::harness::*;

fn skip() -> bool {
    if have_sipp() {
        return false;
    }
    eprintln!("SKIPPED: sipp (package sip-tester) is not installed; tests/run.sh installs it");
    true
}

/// A caller (a SIPp trunk call to DID 100) on a thread of its own, staying `talk_ms` after
/// the queue answers.
fn caller_in_background(
    sip: std::net::SocketAddr,
    caller: String,
    talk_ms: u64,
    timeout: Duration,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let talk_ms = talk_ms.to_string();
        let _ = trunk_scenario(
            "trunk_call.xml",
            sip,
            &caller,
            "100",
            &["-d", &talk_ms],
            timeout,
        );
    })
}

fn cdrs(server: &Server) -> Vec<serde_json::Value> {
    let Ok((200, body)) = api_get(server.ports.http, "/api/v1/calls?limit=100") else {
        return Vec::new();
    };
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let list = json.get("calls").cloned().unwrap_or(json);
    list.as_array().cloned().unwrap_or_default()
}

/// Two callers wait in the queue (the department heads are on a break) when the server is
/// killed; after the restart both calls are recorded once, as `interrupted`.
fn calls_in_progress_survive_a_kill(config: String, ports: Ports) {
    let mut server = Server::start(&config, ports);
    for head in ["ivan", "petra"] {
        put_on_break(&server, &[head]);
    }
    let sip = server.sip_addr();
    let callers: Vec<_> = (0..2)
        .map(|i| {
            let caller = format!("+3851300000{i}");
            caller_in_background(sip, caller, 6000, Duration::from_secs(30))
        })
        .collect();
    wait_until(&server, "2 calls queued", Duration::from_secs(10), || {
        server.log().matches("call queued").count() >= 2
    });
    // Give the writer a moment to store the journal rows, then crash.
    std::thread::sleep(Duration::from_millis(700));
    server.kill_hard();
    server.restart();
    let mut rows = Vec::new();
    wait_until(
        &server,
        "2 interrupted calls",
        Duration::from_secs(20),
        || {
            rows = cdrs(&server);
            rows.iter()
                .filter(|r| r["outcome"] == "interrupted")
                .count()
                >= 2
        },
    );
    let mut ids: Vec<_> = rows
        .iter()
        .map(|r| r["id"].as_str().unwrap_or("").to_owned())
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "no call recorded twice: {rows:?}");
    let interrupted: Vec<_> = rows
        .iter()
        .filter(|r| r["outcome"] == "interrupted")
        .collect();
    assert_eq!(interrupted.len(), 2, "{rows:?}");
    for r in &interrupted {
        assert_eq!(r["hangup_side"], "system", "{r}");
        assert!(
            r["caller"].as_str().unwrap_or("").starts_with("+385130000"),
            "{r}"
        );
        let started = r["started_at"].as_str().unwrap_or("");
        let ended = r["ended_at"].as_str().unwrap_or("");
        assert!(ended >= started, "ended at the last time known: {r}");
    }
    // The writer logs the close right after committing it.
    wait_until(&server, "the close logged", Duration::from_secs(5), || {
        server.log().contains("recorded as interrupted")
    });
    for c in callers {
        let _ = c.join();
    }
}

/// Reads the server's database with its own command-line client (`sqlite3` or `psql`):
/// one line per row, columns separated by `|`.
type Query = Box<dyn Fn(&Server, &str) -> String>;

fn sqlite_query() -> Query {
    Box::new(sqlite)
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.is_empty()).collect()
}

/// Ivan (a department head, a SIPp softphone) talks to one new caller and a second one waits
/// (Petra is on a break) when the server is killed. At the next start, Ivan's call's queue
/// entry is closed as COMPLETECALLER, the waiting one as ABANDON, and both agents' sessions
/// with a logout — once each, at or after every row they close; a further kill and restart
/// adds nothing.
fn queue_entries_and_sessions_are_closed_after_a_kill(config: String, ports: Ports, query: Query) {
    let mut server = Server::start(&config, ports);
    put_on_break(&server, &["petra"]);
    let _ivan = SippAgent::start(&server, "ivan", None);
    let sip = server.sip_addr();
    let caller = |i: u32| {
        let caller = format!("+3851400000{i}");
        caller_in_background(sip, caller, 8000, Duration::from_secs(15))
    };
    let first = caller(0);
    wait_until(&server, "Ivan answered", Duration::from_secs(10), || {
        server
            .log()
            .lines()
            .any(|l| l.contains("answered") && l.contains("ivan"))
    });
    let second = caller(1);
    wait_until(
        &server,
        "a second call queued",
        Duration::from_secs(10),
        || server.log().matches("call queued").count() >= 2,
    );
    std::thread::sleep(Duration::from_millis(700));
    server.kill_hard();
    server.restart();
    let closed_events = "SELECT event || ' ' || COALESCE(agent_id, '-') FROM queue_events \
                         WHERE id LIKE '%-closed' ORDER BY event";
    let closed_sessions = "SELECT agent_id || ' ' || event || ' ' || reason FROM agent_sessions \
                           WHERE id LIKE '%-closed' ORDER BY agent_id";
    let mut events = String::new();
    wait_until(
        &server,
        "queue entries closed",
        Duration::from_secs(20),
        || {
            events = query(&server, closed_events);
            !events.is_empty()
        },
    );
    assert_eq!(
        lines(&events),
        ["ABANDON -", "COMPLETECALLER ivan"],
        "{}",
        query(
            &server,
            "SELECT call_id, event, agent_id, data FROM queue_events ORDER BY seq"
        )
    );
    let sessions = query(&server, closed_sessions);
    assert_eq!(
        lines(&sessions),
        ["ivan logout interrupted", "petra logout interrupted"],
        "{}",
        query(
            &server,
            "SELECT agent_id, event, state, reason, node FROM agent_sessions ORDER BY seq"
        )
    );
    // Each closing event belongs to one of the interrupted calls and says so.
    let interrupted = query(
        &server,
        "SELECT COUNT(*) FROM queue_events q JOIN calls c ON c.id = q.call_id \
         WHERE q.id LIKE '%-closed' AND c.outcome = 'interrupted' AND q.data LIKE '%|interrupted'",
    );
    assert_eq!(interrupted, "2");
    // Nothing is closed before what it closes; no agent is left logged in.
    let earlier = query(
        &server,
        "SELECT COUNT(*) FROM agent_sessions c JOIN agent_sessions o ON o.agent_id = c.agent_id \
         WHERE c.id LIKE '%-closed' AND o.id NOT LIKE '%-closed' AND o.at > c.at",
    );
    assert_eq!(earlier, "0");
    let earlier = query(
        &server,
        "SELECT COUNT(*) FROM queue_events c JOIN queue_events o ON o.call_id = c.call_id \
         WHERE c.id LIKE '%-closed' AND o.id NOT LIKE '%-closed' AND o.at > c.at",
    );
    assert_eq!(earlier, "0");
    let open = query(
        &server,
        "SELECT agent_id FROM agent_sessions s WHERE seq = (SELECT MAX(seq) FROM agent_sessions t \
         WHERE t.agent_id = s.agent_id) AND event <> 'logout'",
    );
    assert_eq!(open, "", "every session closed");
    // The writer logs the close right after committing it.
    wait_until(&server, "the close logged", Duration::from_secs(5), || {
        server.log().contains("agent_sessions=2")
    });

    // Another crash and start: nothing more to close, nothing written twice.
    server.kill_hard();
    server.restart();
    wait_until(
        &server,
        "the second restart's close",
        Duration::from_secs(10),
        || server.log().matches("record store open").count() >= 3,
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(query(&server, closed_events), events);
    assert_eq!(query(&server, closed_sessions), sessions);
    for c in [first, second] {
        let _ = c.join();
    }
}

#[test]
fn sqlite_queue_entries_and_sessions_open_at_a_kill_are_closed() {
    if skip() {
        return;
    }
    let ports = Ports::new();
    queue_entries_and_sessions_are_closed_after_a_kill(demo_config(&ports), ports, sqlite_query());
}

#[test]
fn postgres_queue_entries_and_sessions_open_at_a_kill_are_closed() {
    if skip() {
        return;
    }
    let pg = match PgCluster::start() {
        Ok(pg) => std::sync::Arc::new(pg),
        Err(e) => panic!("PostgreSQL is needed for this test (tests/run.sh installs it): {e}"),
    };
    let url = pg.fresh_database("closed").unwrap();
    let db = url.rsplit('/').next().unwrap_or_default().to_owned();
    let ports = Ports::new();
    let config = demo_config(&ports).replace(
        "url = \"sqlite://switchboard.db\"",
        &format!("url = \"{url}\""),
    );
    let query: Query = Box::new(move |_: &Server, sql: &str| pg.psql(&db, sql).unwrap());
    queue_entries_and_sessions_are_closed_after_a_kill(config, ports, query);
}

#[test]
fn sqlite_calls_in_progress_at_a_kill_are_recorded_as_interrupted() {
    if skip() {
        return;
    }
    let ports = Ports::new();
    calls_in_progress_survive_a_kill(demo_config(&ports), ports);
}

#[test]
fn postgres_calls_in_progress_at_a_kill_are_recorded_as_interrupted() {
    if skip() {
        return;
    }
    let pg = match PgCluster::start() {
        Ok(pg) => pg,
        Err(e) => panic!("PostgreSQL is needed for this test (tests/run.sh installs it): {e}"),
    };
    let url = pg.fresh_database("killed").unwrap();
    let ports = Ports::new();
    let config = demo_config(&ports).replace(
        "url = \"sqlite://switchboard.db\"",
        &format!("url = \"{url}\""),
    );
    calls_in_progress_survive_a_kill(config, ports);
}

/// A clean stop (SIGTERM) logs out every agent still logged in — Ivan registered, Petra on a
/// break — so the next start finds nothing left open.
#[test]
fn sqlite_agents_logged_in_at_a_clean_stop_are_logged_out() {
    if skip() {
        return;
    }
    let ports = Ports::new();
    let mut server = Server::start(&demo_config(&ports), ports);
    let ivan = SippAgent::start(&server, "ivan", None);
    put_on_break(&server, &["petra"]);
    assert!(server.terminate().success(), "{}", server.log());
    drop(ivan);
    let last_rows = "SELECT agent_id || ' ' || event || ' ' || reason FROM agent_sessions s \
                     WHERE seq = (SELECT MAX(seq) FROM agent_sessions t WHERE t.agent_id = s.agent_id) \
                     ORDER BY agent_id";
    assert_eq!(
        lines(&sqlite(&server, last_rows)),
        ["ivan logout server stopped", "petra logout server stopped"],
        "{}",
        server.log()
    );
    server.restart();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        sqlite(
            &server,
            "SELECT COUNT(*) FROM agent_sessions WHERE id LIKE '%-closed'"
        ),
        "0",
        "nothing left open to close"
    );
    assert!(
        !server.log().contains("agent_sessions="),
        "{}",
        server.log()
    );
}
