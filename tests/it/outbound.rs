//! Outbound calls through the real server: SIPp plays the PBX's outbound side (digest
//! challenge, early media, answer or busy) and a SIPp agent answers first (click-to-call,
//! `POST /api/v1/calls`). The checks: the agent is rung before the number is dialed, the
//! PBX's challenge is answered with the trunk's outbound credentials, RTP flows both ways,
//! and the record says `outbound` with the result.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::*;

/// The demo company with its trunk's outbound side at `pbx_port`.
fn company(pbx_port: u16) -> Server {
    company_with(pbx_port, "")
}

/// As [`company`], with `extra` appended to the configuration (e.g. a `[callbacks]` table).
pub(crate) fn company_with(pbx_port: u16, extra: &str) -> Server {
    company_over(pbx_port, "udp", extra)
}

/// As [`company_with`], the trunk's outbound side reached over `transport`.
fn company_over(pbx_port: u16, transport: &str, extra: &str) -> Server {
    let ports = Ports::new();
    let config = outbound_config_over(&ports, pbx_port, transport) + extra;
    Server::start(&config, ports)
}

/// The configuration of [`company_with`].
pub(crate) fn company_config(ports: &Ports, pbx_port: u16, extra: &str) -> String {
    outbound_config(ports, pbx_port) + extra
}

/// The demo configuration on `ports` with its trunk's outbound side at `pbx_port` (user `sb`,
/// password `sb-secret`, caller id +38512345678).
pub(crate) fn outbound_config(ports: &Ports, pbx_port: u16) -> String {
    outbound_config_over(ports, pbx_port, "udp")
}

/// As [`outbound_config`], the trunk's outbound side reached over `transport`.
fn outbound_config_over(ports: &Ports, pbx_port: u16, transport: &str) -> String {
    demo_config(ports).replacen(
        "name = \"pbx-main\"\n",
        &format!(
            "name = \"pbx-main\"\noutbound = \"sip:127.0.0.1:{pbx_port};transport={transport}\"\n\
             outbound_username = \"sb\"\noutbound_password = \"sb-secret\"\n\
             caller_id = \"+38512345678\"\n"
        ),
        1,
    )
}

/// SIPp as the PBX, answering one INVITE with `scenario` on `port`; `talk_ms` before its BYE.
fn pbx(scenario: &str, port: u16, talk_ms: u64, dir: &std::path::Path) -> Child {
    pbx_calls(scenario, port, talk_ms, 1, dir)
}

/// As [`pbx`], for `calls` calls one after the other.
pub(crate) fn pbx_calls(
    scenario: &str,
    port: u16,
    talk_ms: u64,
    calls: u32,
    dir: &std::path::Path,
) -> Child {
    pbx_over(scenario, port, talk_ms, calls, dir, "u1")
}

/// As [`pbx_calls`], SIPp on `transport` (`u1` UDP, `t1` TCP).
fn pbx_over(
    scenario: &str,
    port: u16,
    talk_ms: u64,
    calls: u32,
    dir: &std::path::Path,
    transport: &str,
) -> Child {
    let media_port = free_media_ports();
    Command::new("timeout")
        .arg("40")
        .arg("sipp")
        .arg("-sf")
        .arg(data(&format!("sipp/{scenario}")))
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-t", transport])
        .args([
            "-mi",
            "127.0.0.1",
            "-mp",
            &media_port.to_string(),
            "-rtp_echo",
        ])
        .args([
            "-m",
            &calls.to_string(),
            "-d",
            &talk_ms.to_string(),
            "-nostdin",
        ])
        .args([
            "-timeout",
            "35s",
            "-timeout_error",
            "-trace_msg",
            "-message_file",
        ])
        .arg(dir.join("pbx.log"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sipp pbx")
}

/// Waits for the PBX's scenario to pass; its message trace.
pub(crate) fn pbx_finished(pbx: &mut Child, dir: &std::path::Path, server: &Server) -> String {
    let done = wait_with_timeout(pbx, Duration::from_secs(35));
    let pbx_log = std::fs::read_to_string(dir.join("pbx.log")).unwrap_or_default();
    assert!(
        done.is_some_and(|s| s.success()),
        "the PBX scenario failed\n{pbx_log}\n{}",
        server.log()
    );
    pbx_log
}

/// The ended-call log line shows RTP relayed both ways on both legs.
pub(crate) fn assert_rtp_both_ways(rec: &std::collections::HashMap<String, String>) {
    for key in [
        "caller_rtp_in",
        "caller_rtp_out",
        "agent_rtp_in",
        "agent_rtp_out",
    ] {
        assert!(num(rec, key) > 20, "too few RTP packets for {key}: {rec:?}");
    }
}

/// The stored record `id` (`GET /api/v1/calls`).
pub(crate) fn stored_call(port: u16, id: &str) -> serde_json::Value {
    let calls = stored_calls(port);
    calls
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no record {id} in {calls:?}"))
}

/// The newest 100 stored records (`GET /api/v1/calls`); none while the API does not answer.
pub(crate) fn stored_calls(port: u16) -> Vec<serde_json::Value> {
    let Ok((200, body)) = api_get(port, "/api/v1/calls?limit=100") else {
        return Vec::new();
    };
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    json.as_array().cloned().unwrap_or_default()
}

/// Orders a click-to-call (`POST /api/v1/calls`): agent ana dials +385 91 555 0100.
fn click_to_call(server: &Server) -> serde_json::Value {
    let (status, body) = api_post(
        server.ports.http,
        "/api/v1/calls",
        r#"{"agent": "ana", "number": "+385 91 555 0100", "queue": "orders"}"#,
    )
    .unwrap();
    assert_eq!(status, 202, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The stored record `id` once written: an answered outbound call of ana's.
fn stored_answer(server: &Server, id: &str) -> serde_json::Value {
    wait_until(server, "the stored record", Duration::from_secs(10), || {
        api_get(server.ports.http, "/api/v1/calls").is_ok_and(|(_, b)| b.contains(id))
    });
    let call = stored_call(server.ports.http, id);
    assert_eq!(call["direction"], "outbound", "{call}");
    assert_eq!(call["outcome"], "answered", "{call}");
    assert_eq!(call["agent_id"], "ana", "{call}");
    call
}

fn num(rec: &std::collections::HashMap<String, String>, key: &str) -> u64 {
    rec.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[test]
fn click_to_call_rings_the_agent_then_dials_the_trunk_with_digest() {
    if without_sipp() {
        return;
    }
    let pbx_port = free_port();
    let server = company(pbx_port);
    let dir = tempfile::tempdir().unwrap();
    let mut pbx = pbx("pbx_outbound.xml", pbx_port, 3000, dir.path());
    let agent = SippAgent::start(&server, "ana", None);
    wait_available(&server, "ana");

    let order = click_to_call(&server);
    assert_eq!(order["number"], "+385915550100");
    let id = order["id"].as_str().unwrap().to_owned();

    let pbx_log = pbx_finished(&mut pbx, dir.path(), &server);
    // The PBX saw our INVITE twice: bare, then with the digest answer, From = caller_id.
    assert!(
        pbx_log.contains("INVITE sip:+385915550100@127.0.0.1:"),
        "{pbx_log}"
    );
    assert!(
        pbx_log.contains("Authorization: Digest username=\"sb\""),
        "{pbx_log}"
    );
    assert!(pbx_log.contains("From: <sip:+38512345678@"), "{pbx_log}");
    assert!(!pbx_log.contains("403 Forbidden"), "{pbx_log}");
    assert_eq!(agent.invites(), 1, "{}", agent.messages());
    // Agent first: the agent's INVITE shows the number, before the PBX was called.
    assert!(agent.messages().contains("+385915550100"));

    let rec = outbound_record(&server);
    assert_eq!(rec["result"], "answered", "{rec:?}");
    assert_eq!(rec["hangup"], "caller", "{rec:?}");
    assert_rtp_both_ways(&rec);
    let call = stored_answer(&server, &id);
    assert_eq!(call["dialed"], "+385915550100", "{call}");
    assert_eq!(call["caller"], "+38512345678", "{call}");
    assert_eq!(call["trunk"], "pbx-main", "{call}");
    assert!(call["talk_ms"].as_i64().unwrap() >= 2000, "{call}");
    let (_, metrics) = http_get(server.ports.http, "/metrics").unwrap();
    assert_eq!(
        metric_sum(
            &metrics,
            "switchboard_outbound_calls_total",
            &["kind=\"click\"", "outcome=\"answered\""]
        ),
        1.0,
        "{metrics}"
    );
    // Nothing of the call is left in call control's tables.
    wait_until(
        &server,
        "call control's tables empty",
        Duration::from_secs(5),
        || {
            let (_, m) = http_get(server.ports.http, "/metrics").unwrap();
            [
                "outbound",
                "by_engine",
                "by_client_txn",
                "by_sip_call_id",
                "timers",
            ]
            .iter()
            .all(|t| {
                metric_sum(
                    &m,
                    "switchboard_call_state_entries",
                    &[&format!("table=\"{t}\"")],
                ) == 0.0
            })
        },
    );
}

/// The trunk's outbound side over TCP (SIPp `-t t1` as the PBX): Switchboard opens one TCP
/// connection for the call and carries every request of it there — the INVITE, the one
/// with the digest answer, the ACK — and takes the PBX's BYE on it; audio flows both ways
/// and the record says answered.
#[test]
fn click_to_call_opens_a_tcp_connection_to_the_trunk_and_keeps_the_call_on_it() {
    if without_sipp() {
        return;
    }
    let pbx_port = free_port();
    let server = company_over(pbx_port, "tcp", "");
    let dir = tempfile::tempdir().unwrap();
    let mut pbx = pbx_over("pbx_outbound.xml", pbx_port, 3000, 1, dir.path(), "t1");
    let _agent = SippAgent::start(&server, "ana", None);
    wait_available(&server, "ana");
    let order = click_to_call(&server);
    let id = order["id"].as_str().unwrap().to_owned();
    let pbx_log = pbx_finished(&mut pbx, dir.path(), &server);
    assert!(
        pbx_log.contains("Via: SIP/2.0/TCP"),
        "our INVITE came over TCP: {pbx_log}"
    );
    assert!(
        pbx_log.contains("Authorization: Digest username=\"sb\""),
        "{pbx_log}"
    );
    let rec = outbound_record(&server);
    assert_eq!(rec["result"], "answered", "{rec:?}");
    assert_eq!(rec["hangup"], "caller", "{rec:?}");
    assert_rtp_both_ways(&rec);
    let log = server.log();
    assert_eq!(
        log.matches("outbound TCP connection established").count(),
        1,
        "one connection carried the whole call\n{log}"
    );
    assert!(!log.contains("outbound TCP connection failed"), "{log}");
    stored_answer(&server, &id);
}

#[test]
fn a_busy_number_ends_as_busy_and_frees_the_agent() {
    if without_sipp() {
        return;
    }
    let pbx_port = free_port();
    let server = company(pbx_port);
    let dir = tempfile::tempdir().unwrap();
    let mut pbx = pbx("pbx_busy.xml", pbx_port, 0, dir.path());
    let agent = SippAgent::start(&server, "ana", None);
    wait_available(&server, "ana");

    // Orders the API refuses: unknown agent, bad number, agent not available.
    let port = server.ports.http;
    let (s, b) = api_post(
        port,
        "/api/v1/calls",
        r#"{"agent": "zoe", "number": "+38591"}"#,
    )
    .unwrap();
    assert_eq!(s, 404, "{b}");
    let (s, b) = api_post(
        port,
        "/api/v1/calls",
        r#"{"agent": "ana", "number": "call me"}"#,
    )
    .unwrap();
    assert_eq!(s, 422, "{b}");
    let (s, b) = api_post(
        port,
        "/api/v1/calls",
        r#"{"agent": "marko", "number": "+38591555"}"#,
    )
    .unwrap();
    assert_eq!(s, 409, "marko is logged out: {b}");

    let (s, b) = api_post(
        port,
        "/api/v1/calls",
        r#"{"agent": "ana", "number": "+385915550101"}"#,
    )
    .unwrap();
    assert_eq!(s, 202, "{b}");
    let done = wait_with_timeout(&mut pbx, Duration::from_secs(30));
    let pbx_log = std::fs::read_to_string(dir.path().join("pbx.log")).unwrap_or_default();
    assert!(
        done.is_some_and(|s| s.success()),
        "{pbx_log}\n{}",
        server.log()
    );
    wait_until(
        &server,
        "the outbound record",
        Duration::from_secs(10),
        || !ended_calls(&server.log()).is_empty(),
    );
    let rec = ended_calls(&server.log()).swap_remove(0);
    assert_eq!(rec["direction"], "outbound", "{rec:?}");
    assert_eq!(rec["result"], "busy", "{rec:?}");
    assert_eq!(rec["outcome"], "failed", "{rec:?}");
    assert!(rec["route"].contains("486"), "{rec:?}");
    // The agent, who had answered, got a BYE and is free again after the wrap-up.
    wait_until(&server, "the agent's BYE", Duration::from_secs(5), || {
        agent.messages().contains("BYE sip:")
    });
    wait_until(
        &server,
        "ana available again",
        Duration::from_secs(15),
        || {
            api_get(port, "/api/v1/agents/ana")
                .is_ok_and(|(_, b)| b.contains("\"state\":\"available\""))
        },
    );
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert_eq!(
        metric_sum(
            &metrics,
            "switchboard_outbound_calls_total",
            &["kind=\"click\"", "outcome=\"busy\""]
        ),
        1.0
    );
}
