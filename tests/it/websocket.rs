//! SIP over WebSocket (RFC 7118) and WebRTC agents through the real server: an agent phone
//! that speaks SIP the way JsSIP does (`tests/data/ws/ws_agent.py`, the `websockets` package:
//! subprotocol `sip`, a `.invalid` Via and Contact host, `reg-id` and `+sip.instance`)
//! registers with digest on a `ws:` listener and takes a SIPp trunk call down that same
//! socket. Its media is aiortc, a real WebRTC stack (ICE against the server's ICE-lite
//! candidate, DTLS-SRTP both ways). Hang-up from either end; the binding goes when the socket
//! closes.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::*;

/// True (after saying so) when SIPp or the Python `websockets` package is missing.
pub(crate) fn without_peers() -> bool {
    if without_sipp() {
        return true;
    }
    if have_python_modules("websockets, aiortc") {
        return false;
    }
    peer_missing("python3 websockets and aiortc (PyPI)");
    true
}

/// The demo company with a `ws:` listener; returns the server and the WebSocket port.
pub(crate) fn company_with_ws() -> (Server, u16) {
    let ports = Ports::new();
    let ws = free_port();
    let config = demo_config(&ports).replace(
        &format!("\"tcp:127.0.0.1:{}\"]", ports.sip),
        &format!("\"tcp:127.0.0.1:{}\", \"ws:127.0.0.1:{ws}\"]", ports.sip),
    );
    assert!(config.contains("\"ws:127.0.0.1:"), "{config}");
    (Server::start(&config, ports), ws)
}

/// Starts the Python WebSocket agent; its stdout lines are read by [`agent_output`].
pub(crate) fn ws_agent(ws: u16, agent: &str, args: &[&str]) -> Child {
    ws_agent_at(&format!("ws://127.0.0.1:{ws}"), agent, args)
}

fn ws_agent_at(url: &str, agent: &str, args: &[&str]) -> Child {
    Command::new("python3")
        .arg(data("ws/ws_agent.py"))
        .args([
            "--url",
            url,
            "--agent",
            agent,
            "--password",
            &format!("{agent}-secret"),
        ])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ws_agent.py")
}

pub(crate) fn agent_output(child: Child) -> String {
    let out = child.wait_with_output().expect("ws_agent.py output");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    text
}

pub(crate) fn registrations(server: &Server) -> f64 {
    let (_, text) = http_get(server.ports.http, "/metrics").expect("metrics");
    metric_sum(&text, "switchboard_registrations", &[])
}

pub(crate) fn wait_registered(server: &Server, count: f64) {
    wait_until(
        server,
        "the WebSocket registration",
        Duration::from_secs(10),
        || registrations(server) == count,
    );
}

pub(crate) fn counted(out: &str, what: &str) -> u64 {
    out.lines()
        .find_map(|l| l.strip_prefix(what))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits for the call's record and checks it was answered by `agent`; returns it.
pub(crate) fn answered_by(server: &Server, agent: &str) -> HashMap<String, String> {
    wait_until(server, "the call record", Duration::from_secs(5), || {
        !ended_calls(&server.log()).is_empty()
    });
    let rec = ended_calls(&server.log()).remove(0);
    assert_eq!(rec["outcome"], "answered", "{rec:?}");
    assert_eq!(rec["agent"], agent, "{rec:?}");
    rec
}

/// A SIPp trunk call from an unknown number to DID 100 (a department head takes it), 3 s of
/// talk after the answer when `scenario` hangs up itself.
pub(crate) fn trunk(server: &Server, scenario: &str) -> (std::process::ExitStatus, String, String) {
    trunk_talking(server, scenario, 3000)
}

/// [`trunk`] with `talk_ms` of talk after the answer.
pub(crate) fn trunk_talking(
    server: &Server,
    scenario: &str,
    talk_ms: u32,
) -> (std::process::ExitStatus, String, String) {
    trunk_with(server, scenario, talk_ms, &[])
}

/// [`trunk_talking`] with more SIPp arguments (`-rtp_echo`).
pub(crate) fn trunk_with(
    server: &Server,
    scenario: &str,
    talk_ms: u32,
    more: &[&str],
) -> (std::process::ExitStatus, String, String) {
    let talk = talk_ms.to_string();
    let mut args = vec!["-d", talk.as_str()];
    args.extend_from_slice(more);
    let timeout = Duration::from_secs(30 + u64::from(talk_ms / 1000));
    trunk_scenario(
        scenario,
        server.sip_addr(),
        "+38511000004",
        "100",
        &args,
        timeout,
    )
}

#[test]
fn an_aiortc_agent_on_websocket_talks_over_dtls_srtp() {
    if without_peers() {
        return;
    }
    let (server, ws) = company_with_ws();
    // An unknown caller is a `new` client: a department head (petra) takes it.
    let agent = ws_agent(ws, "petra", &["--answer", "--timeout", "15"]);
    wait_registered(&server, 1.0);
    // While the call talks, the API shows the agent's leg as WebRTC.
    let http = server.ports.http;
    let watcher = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if let Ok((200, body)) = api_get(http, "/api/v1/calls/active")
                && body.contains("\"agent_media\":\"webrtc\"")
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    });
    let (status, out, messages) = trunk(&server, "trunk_call.xml");
    assert!(status.success(), "{out}\n{messages}\n{}", server.log());
    assert!(
        watcher.join().unwrap(),
        "calls/active never showed agent_media webrtc"
    );
    let said = agent_output(agent);
    // The browser-style offer: ICE-lite, DTLS with us passive or actpass, then connected.
    assert!(
        said.contains("OFFER webrtc ice-lite setup:actpass"),
        "{said}"
    );
    assert!(said.contains("ANSWERED webrtc"), "{said}");
    assert!(
        said.contains("WEBRTC connected"),
        "{said}\n{}",
        server.log()
    );
    assert!(said.contains("DTLS closed srtp-profile"), "{said}");
    // The trunk's audio reached aiortc through SRTP; its tone reached the relay (3 s of talk
    // is 150 packets each way; a loaded machine may take a second for ICE and DTLS).
    assert!(counted(&said, "INBOUND-RTP ") > 20, "{said}");
    assert!(counted(&said, "RTP-IN ") > 20, "{said}");
    assert!(
        server.log().contains("WebRTC agent leg connected"),
        "{}",
        server.log()
    );
    let rec = &answered_by(&server, "petra");
    let agent_in: u64 = rec["agent_rtp_in"].parse().unwrap();
    let agent_out: u64 = rec["agent_rtp_out"].parse().unwrap();
    assert!(agent_in > 20 && agent_out > 20, "{rec:?}");
    // The leg is gone with the call.
    wait_until(&server, "no WebRTC session", Duration::from_secs(5), || {
        let (_, text) = http_get(server.ports.http, "/metrics").expect("metrics");
        metric_sum(&text, "switchboard_webrtc_sessions", &[]) == 0.0
    });
}

#[test]
fn an_aiortc_agent_on_secure_websocket_registers_and_talks() {
    if without_peers() {
        return;
    }
    let ports = Ports::new();
    let wss = free_port();
    let config = demo_config(&ports).replace(
        &format!("\"tcp:127.0.0.1:{}\"]", ports.sip),
        &format!("\"tcp:127.0.0.1:{}\", \"wss:127.0.0.1:{wss}\"]", ports.sip),
    ) + "\n[tls]\ncert = \"server.pem\"\nkey = \"server.key\"\n";
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::tls::Ca::new();
    let (cert, key, _) = ca.issue();
    crate::tls::install(dir.path(), &cert, &key);
    let ca_file = ca.write(dir.path());
    let server = Server::start_in(dir, &config, ports);
    let agent = ws_agent_at(
        &format!("wss://127.0.0.1:{wss}"),
        "petra",
        &[
            "--answer",
            "--timeout",
            "15",
            "--ca",
            ca_file.to_str().unwrap(),
        ],
    );
    wait_registered(&server, 1.0);
    let (status, out, messages) = trunk(&server, "trunk_call.xml");
    assert!(status.success(), "{out}\n{messages}\n{}", server.log());
    let said = agent_output(agent);
    assert!(said.contains(".invalid;transport=wss>"), "{said}");
    assert!(
        said.contains("WEBRTC connected"),
        "{said}\n{}",
        server.log()
    );
    assert!(counted(&said, "INBOUND-RTP ") > 20, "{said}");
    answered_by(&server, "petra");
    wait_registered(&server, 0.0);
}

#[test]
fn a_websocket_agent_hangs_up_and_the_caller_gets_the_bye() {
    if without_peers() {
        return;
    }
    let (server, ws) = company_with_ws();
    let agent = ws_agent(
        ws,
        "petra",
        &["--answer", "--hangup-after", "2", "--timeout", "15"],
    );
    wait_registered(&server, 1.0);
    let (status, out, messages) = trunk(&server, "trunk_call_wait_bye.xml");
    assert!(status.success(), "{out}\n{messages}\n{}", server.log());
    let said = agent_output(agent);
    assert!(said.contains("BYE answered 200"), "{said}");
    let rec = &answered_by(&server, "petra");
    assert_eq!(rec["hangup"], "agent", "{rec:?}");
}

#[test]
fn closing_the_socket_removes_the_registration_at_once() {
    if without_peers() {
        return;
    }
    let (server, ws) = company_with_ws();
    let said = agent_output(ws_agent(ws, "ana", &["--close-after-register"]));
    assert!(said.contains("REGISTERED"), "{said}");
    // JsSIP's REGISTER (`reg-id`, `+sip.instance`, `Supported: path,gruu,outbound`) is an
    // RFC 5626 flow: the 200 says so.
    assert!(said.contains("REQUIRE outbound"), "{said}");
    assert!(said.contains("CLOSED"), "{said}");
    // Registered for 600 s, yet gone with its connection.
    wait_until(&server, "the binding to go", Duration::from_secs(5), || {
        server.log().contains("agent unregistered agent=ana")
    });
    assert_eq!(registrations(&server), 0.0);
}

/// The HTTP upgrade of a client that does not offer the `sip` subprotocol, and the answer.
fn upgrade(ws: u16, protocol: Option<&str>) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", ws)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let protocol =
        protocol.map_or_else(String::new, |p| format!("Sec-WebSocket-Protocol: {p}\r\n"));
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{ws}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         {protocol}\r\n"
    )
    .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = stream.read(&mut answer).unwrap_or(0);
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

#[test]
fn the_upgrade_needs_the_sip_subprotocol_and_gets_it_echoed() {
    let (server, ws) = company_with_ws();
    let refused = upgrade(ws, None);
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    let refused = upgrade(ws, Some("chat"));
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    let accepted = upgrade(ws, Some("chat, sip"));
    assert!(accepted.starts_with("HTTP/1.1 101"), "{accepted}");
    assert!(
        accepted
            .to_ascii_lowercase()
            .contains("sec-websocket-protocol: sip\r\n"),
        "{accepted}"
    );
    // The server logs the refusal after sending it; the log reaches the test a little later.
    wait_until(
        &server,
        "the logged refusal",
        Duration::from_secs(5),
        || server.log().contains("WebSocket handshake refused"),
    );
}
