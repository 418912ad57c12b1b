//! Agent registration against the running server with real SIPp user agents.

use std::time::Duration;

use crate::harness::*;

#[test]
fn sipp_registers_with_digest_queries_and_unregisters() {
    if without_sipp() {
        return;
    }
    let ports = Ports::new();
    let server = Server::start(&demo_config(&ports), ports);
    let (status, out, messages) = sipp(
        "register_query_unregister.xml",
        server.sip_addr(),
        &["-s", "ana", "-au", "ana", "-ap", "ana-secret"],
        Duration::from_secs(20),
    );
    assert!(
        status.success(),
        "sipp failed ({status:?}):\n{out}\n--- messages ---\n{messages}\n--- server ---\n{}",
        server.log()
    );
    // The 200 to the binding REGISTER echoed the contact with its expiry.
    assert!(messages.contains(";expires="), "{messages}");
    let log = server.log();
    assert!(log.contains("ana"), "registration is logged: {log}");
}

#[test]
fn sipp_over_tcp_registers_too() {
    if without_sipp() {
        return;
    }
    let ports = Ports::new();
    let server = Server::start(&demo_config(&ports), ports);
    let (status, out, messages) = sipp(
        "register_query_unregister.xml",
        server.sip_addr(),
        &[
            "-t",
            "t1",
            "-s",
            "marko",
            "-au",
            "marko",
            "-ap",
            "marko-secret",
        ],
        Duration::from_secs(20),
    );
    assert!(
        status.success(),
        "sipp failed ({status:?}):\n{out}\n--- messages ---\n{messages}\n--- server ---\n{}",
        server.log()
    );
}

#[test]
fn sipp_with_a_wrong_password_is_refused() {
    if without_sipp() {
        return;
    }
    let ports = Ports::new();
    let server = Server::start(&demo_config(&ports), ports);
    let (status, out, messages) = sipp(
        "register_wrong_password.xml",
        server.sip_addr(),
        &["-s", "ana", "-au", "ana", "-ap", "not-the-password"],
        Duration::from_secs(20),
    );
    assert!(
        status.success(),
        "sipp failed ({status:?}):\n{out}\n{messages}"
    );
    assert!(!messages.contains("SIP/2.0 200"), "{messages}");
}

#[test]
fn unknown_user_and_wrong_password_look_the_same() {
    if without_sipp() {
        return;
    }
    let ports = Ports::new();
    let server = Server::start(&demo_config(&ports), ports);
    let shape = |user: &str| {
        let (status, out, messages) = sipp(
            "register_wrong_password.xml",
            server.sip_addr(),
            &["-s", user, "-au", user, "-ap", "guess"],
            Duration::from_secs(20),
        );
        assert!(status.success(), "{out}\n{messages}");
        // The final answer's status line and header names, without values that vary.
        let last = messages
            .split("SIP/2.0 ")
            .filter(|m| m.starts_with("40"))
            .last()
            .unwrap_or_default()
            .to_owned();
        let status_line = last.lines().next().unwrap_or_default().to_owned();
        let mut names: Vec<String> = last
            .lines()
            .skip(1)
            .filter_map(|l| {
                l.split_once(':')
                    .map(|(n, _)| n.trim().to_ascii_lowercase())
            })
            .filter(|n| !n.is_empty() && !n.contains(' '))
            .collect();
        names.sort();
        (status_line, names)
    };
    assert_eq!(shape("ana"), shape("nobody"));
}

/// A REGISTER over raw UDP from `port`, with optional Authorization.
/// A SIP user agent on a UDP socket of its own that sends one request and reads the answer.
pub struct UdpUa {
    sock: std::net::UdpSocket,
    /// The local port (for Via and Contact).
    pub port: u16,
}

impl UdpUa {
    pub fn new() -> UdpUa {
        UdpUa::on_port(0)
    }

    /// A user agent on 127.0.0.1:`port` (0: any free port).
    pub fn on_port(port: u16) -> UdpUa {
        let sock = std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let port = sock.local_addr().unwrap().port();
        UdpUa { sock, port }
    }

    /// Sends `request` to the server and returns its first answer (requests arriving
    /// meanwhile, such as an INVITE to a contact just registered, are skipped).
    pub fn exchange(&self, server: &Server, request: &str) -> String {
        self.exchange_retransmitting(server, request, 1)
    }

    /// As [`UdpUa::exchange`], sending the request again (as a phone retransmits) up to
    /// `attempts` times while no answer came within the read timeout.
    pub fn exchange_retransmitting(&self, server: &Server, request: &str, attempts: u32) -> String {
        let mut buf = [0u8; 8192];
        // Answers to earlier requests (a retransmitted 401) are not this one's.
        let cseq = |text: &str| {
            text.lines()
                .find(|l| l.starts_with("CSeq:"))
                .map(str::to_owned)
        };
        let ours = cseq(request);
        for attempt in 1..=attempts {
            self.sock
                .send_to(request.as_bytes(), server.sip_addr())
                .unwrap();
            loop {
                let (n, _) = match self.sock.recv_from(&mut buf) {
                    Ok(r) => r,
                    Err(e) if attempt < attempts && e.kind() == std::io::ErrorKind::WouldBlock => {
                        break;
                    }
                    Err(e) => panic!("no answer to {request}: {e}"),
                };
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if text.starts_with("SIP/2.0 ") && cseq(&text) == ours {
                    return text;
                }
            }
        }
        unreachable!("the last attempt returns or panics")
    }
}

/// A REGISTER for `user` from 127.0.0.1:`port` (CSeq `cseq`, a branch of its own), with an
/// optional Authorization value.
pub fn register_request(user: &str, port: u16, cseq: u32, auth: Option<&str>) -> String {
    register_binding(user, port, 300, cseq, auth)
}

/// A REGISTER for `user` from and for the contact 127.0.0.1:`port`, for `expires` seconds.
pub fn register_binding(
    user: &str,
    port: u16,
    expires: u32,
    cseq: u32,
    auth: Option<&str>,
) -> String {
    format!(
        "REGISTER sip:callcenter.local SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-sha-{cseq}-{user};rport\r\n\
         From: <sip:{user}@callcenter.local>;tag=sha{port}\r\n\
         To: <sip:{user}@callcenter.local>\r\n\
         Call-ID: sha256-{port}-{user}@127.0.0.1\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{user}@127.0.0.1:{port}>\r\n\
         Expires: {expires}\r\n\
         {}Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n",
        auth.map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default()
    )
}

#[test]
fn sha256_digest_registers_when_offered_first() {
    use switchboard_sip::digest::{Algorithm, Challenge, answer_challenge};
    let ports = Ports::new();
    let config = demo_config(&ports).replace(
        "advertised_address = \"127.0.0.1\"",
        "advertised_address = \"127.0.0.1\"\ndigest_algorithms = [\"SHA-256\", \"MD5\"]",
    );
    let server = Server::start(&config, ports);
    let ua = UdpUa::new();
    let port = ua.port;
    let challenge = ua.exchange(&server, &register_request("rita", port, 1, None));
    assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
    let offered: Vec<Challenge> = challenge
        .lines()
        .filter_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .map(|v| Challenge::parse(v).unwrap())
        .collect();
    assert_eq!(offered.len(), 2, "{challenge}");
    assert_eq!(
        offered[0].algorithm,
        Algorithm::Sha256,
        "SHA-256 first as configured"
    );
    let creds = answer_challenge(
        &offered[0],
        "rita",
        "rita-secret",
        "REGISTER",
        "sip:callcenter.local",
        "c0ffee",
        1,
    );
    let auth = creds.to_header_value();
    assert!(auth.contains("algorithm=SHA-256"), "{auth}");
    let ok = ua.exchange(&server, &register_request("rita", port, 2, Some(&auth)));
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert!(
        ok.contains(&format!("<sip:rita@127.0.0.1:{port}>;expires=")),
        "{ok}"
    );
}

#[test]
fn responses_the_server_sends_are_counted_by_class() {
    let ports = Ports::new();
    let server = Server::start(&demo_config(&ports), ports);
    let ua = UdpUa::new();
    let port = ua.port;
    let exchange = |request: String| ua.exchange(&server, &request);
    let challenge = exchange(register_request("ana", port, 1, None));
    assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
    let options = register_request("ana", port, 2, None)
        .replace("REGISTER sip:", "OPTIONS sip:")
        .replace("2 REGISTER", "2 OPTIONS")
        .replace("branch=z9hG4bK-sha-2", "branch=z9hG4bK-options-2");
    let ok = exchange(options);
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let lines = [
        "switchboard_sip_responses_total{class=\"2xx\"} 1",
        "switchboard_sip_responses_total{class=\"4xx\"} 1",
        "switchboard_sip_responses_total{class=\"5xx\"} 0",
    ];
    // The endpoint task counts what it sent after the batch that sent it: a scrape may come
    // a moment before.
    let mut text = String::new();
    wait_until(
        &server,
        "the responses counted",
        Duration::from_secs(3),
        || {
            let (status, body) = http_get(server.ports.http, "/metrics").unwrap();
            assert_eq!(status, 200);
            text = body;
            lines.iter().all(|l| text.contains(l))
        },
    );
    for line in lines {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }
}
