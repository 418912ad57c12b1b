//! The server's own SIP addresses: several UDP listeners (each answers from its own socket,
//! and requests to a peer leave from the listener that peer uses), and a host name as
//! `[sip] advertised_address` (resolved once at start, the address in SDP, the name in SIP).

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use crate::harness::*;

/// The demo company listening on a second UDP port as well; returns it with that address.
fn two_udp_listeners() -> (Server, SocketAddr) {
    let ports = Ports::new();
    let second = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let first_entry = format!("\"udp:127.0.0.1:{}\"", ports.sip);
    let config =
        demo_config(&ports).replacen(&first_entry, &format!("{first_entry}, \"udp:{second}\""), 1);
    assert!(config.contains(&second.to_string()), "{config}");
    (Server::start(&config, ports), second)
}

/// The first message in a SIPp message trace whose first line starts with `start` and whose
/// CSeq names `method`: its header lines and body.
fn traced<'a>(trace: &'a str, start: &str, method: &str) -> Vec<&'a str> {
    let lines: Vec<&str> = trace.lines().map(str::trim).collect();
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with(start))
        .map(|(i, _)| {
            lines[i..]
                .iter()
                .copied()
                .take_while(|l| !l.starts_with("-----"))
                .collect::<Vec<_>>()
        })
        .find(|m| {
            m.iter()
                .any(|l| l.starts_with("CSeq:") && l.ends_with(method))
        })
        .unwrap_or_else(|| panic!("no {start} … {method} in the trace:\n{trace}"))
}

fn header<'a>(message: &[&'a str], name: &str) -> &'a str {
    message
        .iter()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .unwrap_or_else(|| panic!("no {name} in {message:#?}"))
}

/// A trunk call (a new client to DID 100, which the department heads take) placed by SIPp
/// through `listener`; returns SIPp's message trace after checking that the call went through.
fn trunk_call_through(server: &Server, listener: SocketAddr) -> String {
    let (status, out, trace) = trunk_calls_to(
        listener,
        "+38599999999",
        "100",
        1000,
        &[],
        Duration::from_secs(30),
    );
    assert!(
        status.success(),
        "trunk call through {listener} failed ({status:?}):\n{out}\n{trace}\n--- server ---\n{}",
        server.log()
    );
    trace
}

#[test]
fn each_udp_listener_answers_from_itself_and_calls_its_own_peers_from_itself() {
    if without_sipp() {
        return;
    }
    let (server, second) = two_udp_listeners();
    let first = server.sip_addr();

    // A request is answered from the socket it came in on.
    for listener in [first, second] {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        probe
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let port = probe.local_addr().unwrap().port();
        let options = format!(
            "OPTIONS sip:callcenter.local SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-listener-{port};rport\r\n\
             From: <sip:probe@127.0.0.1>;tag=p{port}\r\n\
             To: <sip:callcenter.local>\r\n\
             Call-ID: listener-{port}@127.0.0.1\r\n\
             CSeq: 1 OPTIONS\r\n\
             Max-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n"
        );
        probe.send_to(options.as_bytes(), listener).unwrap();
        let mut buf = [0u8; 8192];
        let (n, from) = probe.recv_from(&mut buf).expect("an answer to OPTIONS");
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("SIP/2.0 200"), "{answer}");
        assert_eq!(from, listener, "the answer to a request sent to {listener}");
    }

    // The department heads register through the second listener: their INVITE leaves from
    // it (Via and Contact name it), while the trunk on the first listener is answered there.
    let heads = SippAgent::start_at(second, &["ivan", "petra"], None, &[]);
    wait_available(&server, "ivan");
    let trunk = trunk_call_through(&server, first);
    let agent_trace = heads.messages();
    let invite = traced(&agent_trace, "INVITE sip:", "INVITE");
    let via = header(&invite, "Via");
    assert!(
        via.contains(&format!("127.0.0.1:{}", second.port())),
        "the INVITE to an agent registered through {second} has Via {via}"
    );
    let contact = header(&invite, "Contact");
    assert!(
        contact.contains(&format!(":{}", second.port())),
        "{contact}"
    );
    let ok = traced(&trunk, "SIP/2.0 200", "INVITE");
    let contact = header(&ok, "Contact");
    assert!(
        contact.contains(&format!(":{}>", first.port())),
        "the 200 to a trunk on {first} has Contact {contact}"
    );

    // A trunk on the second listener is answered with that listener in Contact, so its ACK
    // and BYE come back to it.
    let trunk = trunk_call_through(&server, second);
    let ok = traced(&trunk, "SIP/2.0 200", "INVITE");
    let contact = header(&ok, "Contact");
    assert!(
        contact.contains(&format!(":{}>", second.port())),
        "the 200 to a trunk on {second} has Contact {contact}"
    );
    wait_until(&server, "both call records", Duration::from_secs(5), || {
        ended_calls(&server.log()).len() == 2
    });
}

#[test]
fn a_host_name_as_advertised_address_is_resolved_at_start_and_sdp_carries_the_address() {
    if without_sipp() {
        return;
    }
    let ports = Ports::new();
    let config = demo_config(&ports).replace(
        "advertised_address = \"127.0.0.1\"",
        "advertised_address = \"localhost\"",
    );
    assert!(config.contains("\"localhost\""));
    let server = Server::start(&config, ports);
    let log = server.log();
    assert!(
        log.contains("advertised address resolved") && log.contains("127.0.0.1"),
        "{log}"
    );
    let heads = SippAgent::start_many(&server, &["ivan", "petra"], None);
    wait_available(&server, "ivan");
    let trunk = trunk_call_through(&server, server.sip_addr());
    let ok = traced(&trunk, "SIP/2.0 200", "INVITE");
    assert!(
        ok.contains(&"c=IN IP4 127.0.0.1"),
        "SDP carries the resolved address: {ok:#?}"
    );
    assert!(header(&ok, "Contact").contains("@localhost:"), "{ok:#?}");
    let agent_trace = heads.messages();
    let invite = traced(&agent_trace, "INVITE sip:", "INVITE");
    assert!(
        invite.contains(&"c=IN IP4 127.0.0.1"),
        "and so does the offer to the agent: {invite:#?}"
    );
}

#[test]
fn a_host_name_that_does_not_resolve_is_refused_by_check_config_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let demo = std::fs::read_to_string(repo_root().join("config/demo.toml")).unwrap();
    let with = |name: &str| {
        demo.replace(
            "advertised_address = \"127.0.0.1\"",
            &format!("advertised_address = \"{name}\""),
        )
    };

    let good = dir.path().join("good.toml");
    std::fs::write(&good, with("localhost")).unwrap();
    let out = run_cli(&["check-config", good.to_str().unwrap()], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("advertised address localhost resolves to 127.0.0.1"),
        "{stdout}"
    );

    // `.invalid` never resolves (RFC 6761 §6.4).
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, with("pbx.example.invalid")).unwrap();
    for args in [
        vec!["check-config", bad.to_str().unwrap()],
        vec!["run", "--config", bad.to_str().unwrap()],
    ] {
        let out = run_cli(&args, dir.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        assert!(
            err.contains("sip.advertised_address")
                && err.contains("\"pbx.example.invalid\" does not resolve"),
            "{args:?}: {err}"
        );
    }
}
