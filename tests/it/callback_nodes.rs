//! A call-back whose node dies mid-attempt: the node claims it and rings ana (a SIPp phone
//! that rings and is never picked up) and is killed (`kill -9`) while she rings, leaving the
//! call-back `dialing`. It must be dialed again, once:
//! - two nodes on one real PostgreSQL: node B, where marko is registered, finds A's claim
//!   once its lease (`[callbacks] lease_s`) has run out, puts it back to `pending` and dials;
//! - one node on SQLite: restarted, it puts its own `dialing` row back at once.
//!
//! Either way the PBX (SIPp) receives the number once, and the call-back ends `done` with one
//! attempt (the interrupted one is not counted).

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::Value;
use switchboard_testkit::PgCluster;

use crate::callbacks::callback;
use crate::harness::*;
use crate::outbound::{company_config, pbx_calls, pbx_finished, stored_call};

const LEASE_S: u64 = 3;
const NUMBER: &str = "+385915550700";

fn callbacks_config() -> String {
    format!(
        "\n[callbacks]\nqueue = \"orders\"\nlease_s = {LEASE_S}\n\
         window = [\"00:00\", \"24:00\"]\ntimezone = \"Europe/Zagreb\"\n"
    )
}

/// Schedules a call-back on `node`, where ana rings and never answers, and kills the node
/// while she rings: the call-back is left `dialing`. Returns its id.
fn left_dialing_by_a_killed_node(node: &mut Server) -> String {
    let ana = SippAgent::start(node, "ana", Some("agent_noanswer.xml"));
    wait_available(node, "ana");
    let body = format!(r#"{{"number": "{NUMBER}"}}"#);
    let (status, body) = api_post(node.ports.http, "/api/v1/callbacks", &body).unwrap();
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_until(
        node,
        "ana rung for the call-back",
        Duration::from_secs(10),
        || ana.invites() == 1,
    );
    assert_eq!(callback(node.ports.http, &id)["status"], "dialing");
    node.kill_hard();
    id
}

/// Marko logs in on `node`, which must dial call-back `id` once: the PBX answers, the
/// call-back is `done` after one attempt, and nobody dials it again.
fn dialed_once_by(node: &Server, id: &str, pbx: &mut Child, dir: &Path) {
    let port = node.ports.http;
    let marko = SippAgent::start(node, "marko", None);
    wait_available(node, "marko");
    let pbx_log = pbx_finished(pbx, dir, node);
    assert!(pbx_log.contains(NUMBER), "{pbx_log}");
    wait_until(node, "the call-back done", Duration::from_secs(10), || {
        callback(port, id)["status"] == "done"
    });
    let cb = callback(port, id);
    assert_eq!(
        (cb["attempts"].as_u64(), cb["last_result"].as_str()),
        (Some(1), Some("answered")),
        "the interrupted attempt is not counted: {cb}"
    );
    wait_until(node, "marko's record", Duration::from_secs(10), || {
        callback(port, id)["call_ids"]
            .as_array()
            .is_some_and(|ids| {
                ids.iter()
                    .any(|c| stored_call(port, c.as_str().unwrap())["agent_id"] == "marko")
            })
    });

    // Once: a few more looks, and nobody dials it again.
    std::thread::sleep(Duration::from_secs(LEASE_S + 1));
    assert_eq!(marko.invites(), 1, "{}", marko.messages());
    let pbx_log = std::fs::read_to_string(dir.join("pbx.log")).unwrap_or_default();
    // One call (Call-ID), whose INVITE came twice: before and after the PBX's challenge.
    let mut calls = std::collections::HashSet::new();
    let mut lines = pbx_log.lines();
    while let Some(line) = lines.next() {
        if line.starts_with(&format!("INVITE sip:{NUMBER}@")) {
            let call_id = lines
                .by_ref()
                .take_while(|l| !l.trim().is_empty())
                .find(|l| l.to_ascii_lowercase().starts_with("call-id:"));
            calls.insert(call_id.map(str::to_owned));
        }
    }
    assert_eq!(calls.len(), 1, "{calls:?}\n{pbx_log}");
    assert_eq!(callback(port, id)["status"], "done");
}

#[test]
fn a_call_back_left_dialing_by_a_dead_node_is_dialed_by_another_once() {
    if without_sipp() {
        return;
    }
    let pg = match PgCluster::start() {
        Ok(pg) => pg,
        Err(e) => panic!("PostgreSQL is needed for this test (tests/run.sh installs it): {e}"),
    };
    let url = pg.fresh_database("cbnodes").unwrap();
    let pbx_port = free_port();
    let node = || {
        let ports = Ports::new();
        let config = company_config(&ports, pbx_port, &callbacks_config())
            .replace("sqlite://switchboard.db", &url);
        Server::start(&config, ports)
    };
    let mut node_a = node();
    let node_b = node();
    let dir = tempfile::tempdir().unwrap();
    let mut pbx = pbx_calls("pbx_outbound.xml", pbx_port, 1000, 1, dir.path());

    // Node B has no agent while node A claims the call-back and dies.
    let id = left_dialing_by_a_killed_node(&mut node_a);
    let killed = Instant::now();
    wait_until(
        &node_b,
        "the lapsed claim taken back",
        Duration::from_secs(LEASE_S + 10),
        || {
            node_b
                .log()
                .contains("call-back dialing on a node whose lease ran out is pending again")
        },
    );
    assert!(
        killed.elapsed() >= Duration::from_secs(LEASE_S.saturating_sub(1)),
        "taken back {:?} after the kill, before the lease could run out",
        killed.elapsed()
    );
    dialed_once_by(&node_b, &id, &mut pbx, dir.path());
}

#[test]
fn a_call_back_left_dialing_by_a_killed_sqlite_node_is_dialed_once_after_its_restart() {
    if without_sipp() {
        return;
    }
    let pbx_port = free_port();
    let ports = Ports::new();
    let config = company_config(&ports, pbx_port, &callbacks_config());
    let mut node = Server::start(&config, ports);
    let dir = tempfile::tempdir().unwrap();
    let mut pbx = pbx_calls("pbx_outbound.xml", pbx_port, 1000, 1, dir.path());

    let id = left_dialing_by_a_killed_node(&mut node);
    node.restart();
    wait_until(
        &node,
        "its own dialing row put back",
        Duration::from_secs(10),
        || {
            node.log()
                .contains("call-backs left dialing by the last run are pending again")
        },
    );
    let cb = callback(node.ports.http, &id);
    assert_eq!(
        (cb["status"].as_str(), cb["last_result"].as_str()),
        (Some("pending"), Some("interrupted")),
        "{cb}"
    );
    dialed_once_by(&node, &id, &mut pbx, dir.path());
}
