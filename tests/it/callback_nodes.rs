//! A call-back whose node dies mid-attempt, with two nodes on one real PostgreSQL: node A
//! claims it and rings ana (a SIPp phone that rings and is never picked up); A is killed
//! (`kill -9`) while she rings. Node B, where marko is registered, finds A's claim once its
//! lease (`[callbacks] lease_s`) has run out, puts it back to `pending` and dials it: the PBX
//! (SIPp) receives the number once, and the call-back ends `done` with one attempt.

use std::time::{Duration, Instant};

use serde_json::Value;
use switchboard_testkit::PgCluster;

use crate::callbacks::callback;
use crate::harness::*;
use crate::outbound::{company_config, pbx_calls, pbx_finished, stored_call};

const LEASE_S: u64 = 3;

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
    let callbacks = format!(
        "\n[callbacks]\nqueue = \"orders\"\nlease_s = {LEASE_S}\n\
         window = [\"00:00\", \"24:00\"]\ntimezone = \"Europe/Zagreb\"\n"
    );
    let node = || {
        let ports = Ports::new();
        let config =
            company_config(&ports, pbx_port, &callbacks).replace("sqlite://switchboard.db", &url);
        Server::start(&config, ports)
    };
    let mut node_a = node();
    let node_b = node();
    let (port_a, port_b) = (node_a.ports.http, node_b.ports.http);
    let dir = tempfile::tempdir().unwrap();
    let mut pbx = pbx_calls("pbx_outbound.xml", pbx_port, 1000, 1, dir.path());

    // Ana, on node A, rings and never answers; node B has no agent yet.
    let ana = SippAgent::start(&node_a, "ana", Some("agent_noanswer.xml"));
    wait_available(&node_a, "ana");
    let (status, body) = api_post(
        port_a,
        "/api/v1/callbacks",
        r#"{"number": "+385 91 555 0700"}"#,
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_until(
        &node_a,
        "ana rung for the call-back",
        Duration::from_secs(10),
        || ana.invites() == 1,
    );
    let cb = callback(port_b, &id);
    assert_eq!(cb["status"], "dialing", "{cb}");
    node_a.kill_hard();
    let killed = Instant::now();

    // Marko logs in on node B: the call-back is A's until the lease runs out.
    let marko = SippAgent::start(&node_b, "marko", None);
    wait_available(&node_b, "marko");
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

    let pbx_log = pbx_finished(&mut pbx, dir.path(), &node_b);
    assert!(pbx_log.contains("+385915550700"), "{pbx_log}");
    wait_until(
        &node_b,
        "the call-back done",
        Duration::from_secs(10),
        || callback(port_b, &id)["status"] == "done",
    );
    let cb = callback(port_b, &id);
    assert_eq!(
        (cb["attempts"].as_u64(), cb["last_result"].as_str()),
        (Some(1), Some("answered")),
        "the interrupted attempt is not counted: {cb}"
    );
    wait_until(&node_b, "node B's record", Duration::from_secs(10), || {
        callback(port_b, &id)["call_ids"]
            .as_array()
            .is_some_and(|ids| {
                ids.iter()
                    .any(|c| stored_call(port_b, c.as_str().unwrap())["agent_id"] == "marko")
            })
    });

    // Once: a few more looks, and nobody dials it again.
    std::thread::sleep(Duration::from_secs(LEASE_S + 1));
    assert_eq!(marko.invites(), 1, "{}", marko.messages());
    let pbx_log = std::fs::read_to_string(dir.path().join("pbx.log")).unwrap_or_default();
    // One call (Call-ID), whose INVITE came twice: before and after the PBX's challenge.
    let mut calls = std::collections::HashSet::new();
    let mut lines = pbx_log.lines();
    while let Some(line) = lines.next() {
        if line.starts_with("INVITE sip:+385915550700@") {
            let call_id = lines
                .by_ref()
                .take_while(|l| !l.trim().is_empty())
                .find(|l| l.to_ascii_lowercase().starts_with("call-id:"));
            calls.insert(call_id.map(str::to_owned));
        }
    }
    assert_eq!(calls.len(), 1, "{calls:?}\n{pbx_log}");
    assert_eq!(callback(port_b, &id)["status"], "done");
}
