//! A server killed (SIGKILL) with calls up leaves their records: each call is journaled when
//! it starts, and the next start closes the rows as `interrupted` with the last time known —
//! every call present once, against SQLite and a real PostgreSQL.

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
        let (status, body) = api_post(
            server.ports.http,
            &format!("/api/v1/agents/{head}/state"),
            r#"{"state": "break"}"#,
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let sip = server.sip_addr();
    let callers: Vec<_> = (0..2)
        .map(|i| {
            std::thread::spawn(move || {
                let media_port = free_port().to_string();
                let caller = format!("+3851300000{i}");
                let _ = sipp_at(
                    "trunk_call.xml",
                    sip,
                    free_port(),
                    &[
                        "-key",
                        "caller",
                        &caller,
                        "-s",
                        "100",
                        "-d",
                        "6000",
                        "-mi",
                        "127.0.0.1",
                        "-mp",
                        &media_port,
                    ],
                    Duration::from_secs(30),
                );
            })
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
    assert!(
        server.log().contains("recorded as interrupted"),
        "{}",
        server.log()
    );
    for c in callers {
        let _ = c.join();
    }
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
