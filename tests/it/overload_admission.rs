//! Admission control against the server's own resources, with real SIPp trunks and agents:
//! an RTP range too small for the calls offered refuses the extra calls with `503` at once
//! (no agent rung, recorded `rejected`, counted as overload), and a call whose ACK never
//! comes gives its ports back when the 200's retransmissions give up (64·T1).

use std::time::{Duration, Instant};

use crate::harness::*;

/// T1 of the test server: the 200 nobody acknowledges is given up after 64·T1 = 3.2 s.
const T1_MS: u64 = 50;

/// The demo company with an RTP range of six port pairs: two calls (two pairs each) and
/// the reserve of one pair.
fn tiny_range_config(ports: &Ports) -> String {
    let first = ports.rtp;
    let demo_range = format!("rtp_ports = [{}, {}]", first, first + 79);
    let config = demo_config(ports);
    assert!(config.contains(&demo_range), "the demo's RTP range moved");
    config
        .replace(
            &demo_range,
            &format!("rtp_ports = [{}, {}]", first, first + 11),
        )
        .replace("[sip]\n", &format!("[sip]\nt1_ms = {T1_MS}\n"))
}

fn count(server: &Server, filter: &str) -> u64 {
    sqlite(
        server,
        &format!("SELECT COUNT(*) FROM calls WHERE {filter}"),
    )
    .parse()
    .unwrap_or(0)
}

fn active_calls(server: &Server) -> usize {
    api_get(server.ports.http, "/api/v1/calls/active")
        .ok()
        .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
        .and_then(|v| v.as_array().map(Vec::len))
        .unwrap_or(usize::MAX)
}

#[test]
fn overload_of_the_rtp_range_refuses_new_calls_before_any_agent_rings() {
    if without_sipp() {
        return;
    }
    let ports = Ports::new();
    let server = Server::start(&tiny_range_config(&ports), ports);
    // A new client's chain is the department heads: both answer at once.
    let agents = SippAgent::start_many(&server, &["ivan", "petra"], None);
    wait_available(&server, "ivan");
    wait_available(&server, "petra");

    // Five calls within 100 ms, each talking 4 s: the range holds two.
    let (_, out, messages) = trunk_calls(
        &server,
        "+38599000123",
        "100",
        4_000,
        &["-m", "5", "-r", "50", "-l", "5"],
        Duration::from_secs(40),
    );
    // Five final records: a call's journal row (`journal` set) stands until its final row
    // replaces it.
    wait_until(
        &server,
        "five final records",
        Duration::from_secs(10),
        || count(&server, "journal IS NULL") == 5,
    );
    let rejected = count(
        &server,
        "outcome = 'rejected' AND route LIKE '%503%overload%' AND agent_id IS NULL",
    );
    // The two calls the range holds reach an agent (answered; under a heavy machine an agent
    // may answer after the caller gave up: abandoned), never refused.
    let carried = count(&server, "outcome IN ('answered', 'abandoned')");
    let metrics = http_get(server.ports.http, "/metrics").unwrap().1;
    let overload = metric_sum(
        &metrics,
        "switchboard_sip_refused_total",
        &["reason=\"overload\""],
    );
    println!(
        "tiny range: {carried} carried, {rejected} rejected, {overload} counted as overload, \
         agents rung {} times",
        agents.invites()
    );
    let outcomes = sqlite(
        &server,
        "SELECT outcome, agent_id, route FROM calls ORDER BY started_at",
    );
    assert_eq!(
        (carried, rejected),
        (2, 3),
        "records:\n{outcomes}\n{out}\n{}",
        server.log()
    );
    assert!(
        messages.contains("SIP/2.0 503 Service Unavailable") && messages.contains("Retry-After: "),
        "{messages}"
    );
    // Nobody was rung for a call that could not be carried.
    assert_eq!(agents.invites(), 2, "{}", agents.messages());
    assert_eq!(overload, 3.0, "{metrics}");
    assert!(
        server
            .log()
            .contains("new calls refused with 503 before resources run out"),
        "{}",
        server.log()
    );

    // Two calls whose ACK never comes hold the whole range until the 200 is given up; then
    // their ports are back at once and the next call is carried.
    wait_until(&server, "no call up", Duration::from_secs(10), || {
        active_calls(&server) == 0
    });
    let started = Instant::now();
    let (status, out, messages) = trunk_scenario(
        "trunk_call_no_ack.xml",
        server.sip_addr(),
        "+38599000124",
        "100",
        &["-m", "2", "-r", "50", "-l", "2"],
        Duration::from_secs(30),
    );
    let gave_up = started.elapsed();
    assert!(status.success(), "{out}\n{messages}");
    let give_up = Duration::from_millis(64 * T1_MS);
    assert!(
        gave_up >= give_up && gave_up < give_up + Duration::from_secs(2),
        "BYE after {gave_up:?}, the 200 is given up after {give_up:?}"
    );
    wait_until(&server, "no call up", Duration::from_secs(2), || {
        active_calls(&server) == 0
    });
    assert_eq!(
        count(&server, "caller = '+38599000124' AND ended_at IS NOT NULL"),
        2
    );
    let (status, out, messages) = trunk_call(&server, "+38599000125", "100", 200);
    assert!(status.success(), "{out}\n{messages}");
    assert_eq!(
        count(&server, "outcome = 'rejected'"),
        3,
        "refused after the range was free again"
    );
    drop(agents);
}
