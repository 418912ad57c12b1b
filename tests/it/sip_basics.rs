//! SIP basics over real sockets: OPTIONS, unknown and malformed requests, rport/received,
//! TCP framing, keep-alives and hostile input.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use crate::harness::*;

fn udp_client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

fn request(method: &str, port: u16, extra: &str, via_params: &str, transport: &str) -> String {
    format!(
        "{method} sip:callcenter.local SIP/2.0\r\n\
         Via: SIP/2.0/{transport} 127.0.0.1:{port};branch=z9hG4bK-{method}-{port}{via_params}\r\n\
         From: <sip:probe@127.0.0.1>;tag=t1\r\n\
         To: <sip:callcenter.local>\r\n\
         Call-ID: {method}-{port}@127.0.0.1\r\n\
         CSeq: 1 {method}\r\n\
         Max-Forwards: 70\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    )
}

fn exchange(sock: &UdpSocket, server: &Server, msg: &str) -> String {
    sock.send_to(msg.as_bytes(), server.sip_addr()).unwrap();
    let mut buf = [0u8; 8192];
    let (n, _) = sock.recv_from(&mut buf).expect("a response");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn options_gets_200_with_allow() {
    let ports = Ports::new();
    let server = Server::start(&demo_config(&ports), ports);
    let sock = udp_client();
    let port = sock.local_addr().unwrap().port();
    let resp = exchange(&sock, &server, &request("OPTIONS", port, "", "", "UDP"));
    assert!(resp.starts_with("SIP/2.0 200"), "{resp}");
    let allow = header(&resp, "Allow").expect("Allow header");
    for m in ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER"] {
        assert!(allow.contains(m), "Allow: {allow}");
    }
    assert_eq!(
        header(&resp, "Call-ID"),
        Some(&*format!("OPTIONS-{port}@127.0.0.1"))
    );
}

#[test]
fn unknown_method_gets_501_and_malformed_gets_400_with_reason() {
    let ports = Ports::new();
    let server = Server::start(&demo_config(&ports), ports);
    let sock = udp_client();
    let port = sock.local_addr().unwrap().port();
    let resp = exchange(&sock, &server, &request("FROB", port, "", "", "UDP"));
    assert!(resp.starts_with("SIP/2.0 501"), "{resp}");

    let bad_cseq =
        request("OPTIONS", port, "", "", "UDP").replace("CSeq: 1 OPTIONS", "CSeq: one OPTIONS");
    let resp = exchange(&sock, &server, &bad_cseq);
    let status_line = resp.lines().next().unwrap();
    assert!(status_line.starts_with("SIP/2.0 400 "), "{resp}");
    assert!(
        status_line.len() > "SIP/2.0 400 ".len() + 3,
        "400 carries a reason: {status_line}"
    );
}

#[test]
fn rport_gets_received_and_port() {
    let ports = Ports::new();
    let server = Server::start(&demo_config(&ports), ports);
    let sock = udp_client();
    let port = sock.local_addr().unwrap().port();
    // Claim a different sent-by port: the response must still come back to the source port.
    let msg = request("OPTIONS", port, "", ";rport", "UDP")
        .replace(&format!("127.0.0.1:{port};"), "127.0.0.1:5999;");
    let resp = exchange(&sock, &server, &msg);
    let via = header(&resp, "Via").unwrap();
    assert!(via.contains(&format!("rport={port}")), "{via}");
    assert!(via.contains("received=127.0.0.1"), "{via}");
}

#[test]
fn hostile_datagrams_never_take_the_server_down() {
    let ports = Ports::new();
    let server = Server::start(&demo_config(&ports), ports);
    let sock = udp_client();
    let port = sock.local_addr().unwrap().port();
    let base = request("OPTIONS", port, "", "", "UDP").into_bytes();
    // Deterministic garbage: truncations, byte flips, NULs, a huge datagram.
    let mut seed: u64 = 0x5eed;
    for i in 0..400 {
        let mut m = base.clone();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        match i % 4 {
            0 => m.truncate((seed as usize) % m.len()),
            1 => {
                let at = (seed as usize) % m.len();
                m[at] = (seed >> 32) as u8;
            }
            2 => m.insert((seed as usize) % m.len(), 0),
            _ => m.extend(std::iter::repeat_n(b'A', 2000)),
        }
        let _ = sock.send_to(&m, server.sip_addr());
    }
    let _ = sock.send_to(&vec![b'X'; 60_000], server.sip_addr());
    // Drain whatever came back, then check the server still answers.
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 8192];
    while sock.recv_from(&mut buf).is_ok() {}
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let fresh =
        request("OPTIONS", port, "", "", "UDP").replace("branch=z9hG4bK-", "branch=z9hG4bK-fresh-");
    let resp = exchange(&sock, &server, &fresh);
    assert!(resp.starts_with("SIP/2.0 200"), "{resp}");
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

#[test]
fn tcp_responses_use_the_same_connection_and_keepalives_are_answered() {
    let ports = Ports::new();
    let server = Server::start(&demo_config(&ports), ports);
    let mut stream = TcpStream::connect(server.sip_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let port = stream.local_addr().unwrap().port();
    // Two requests in one write, the second split across two writes: framing by Content-Length.
    let first = request("OPTIONS", port, "", "", "TCP");
    let second = request("OPTIONS", port, "", "", "TCP")
        .replace("branch=z9hG4bK-", "branch=z9hG4bK-2-")
        .replace("CSeq: 1", "CSeq: 2");
    let (a, b) = second.split_at(40);
    stream.write_all(format!("{first}{a}").as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    stream.write_all(b.as_bytes()).unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 8192];
    while got.matches("SIP/2.0 200").count() < 2 {
        let n = stream
            .read(&mut buf)
            .expect("responses on the same connection");
        assert!(n > 0, "connection closed early: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        got.contains("CSeq: 1 OPTIONS") && got.contains("CSeq: 2 OPTIONS"),
        "{got}"
    );
    // RFC 5626 keep-alive: CRLFCRLF ping → CRLF pong.
    stream.write_all(b"\r\n\r\n").unwrap();
    let n = stream.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"\r\n");
}

#[test]
fn http_client_that_never_finishes_its_headers_is_cut_off() {
    let ports = Ports::new();
    let server = Server::start(&demo_config(&ports), ports);
    let mut slow = TcpStream::connect(("127.0.0.1", server.ports.http)).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 1024];
    // The server gives up on the request (10 s header timeout) and closes the connection.
    let n = slow.read(&mut buf).unwrap_or(0);
    let waited = started.elapsed();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(waited < Duration::from_secs(15), "cut off after {waited:?}");
    // Meanwhile and afterwards, well-behaved clients are served.
    assert_eq!(http_get(server.ports.http, "/healthz").unwrap().0, 200);
}
