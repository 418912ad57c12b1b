//! What the endpoint answers by itself, and where answers go (RFC 3261 §18.2.2, RFC 3581).

use switchboard_sip::{ConnId, Event, Peer, Transport};
use switchboard_sipmsg::{HeaderName, Message};

use crate::registrar::Ua;

fn request(method: &str, extra: &str) -> String {
    format!(
        "{method} sip:callcenter.local SIP/2.0\r\n\
         Via: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bK-{method}-1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@example.com>;tag=p1\r\n\
         To: <sip:callcenter.local>\r\n\
         Call-ID: probe-{method}\r\n\
         CSeq: 7 {method}\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    )
}

#[test]
fn options_gets_200_with_capabilities() {
    let mut ua = Ua::new();
    let resp = ua.send_one(&request("OPTIONS", ""));
    assert_eq!(resp.status, 200);
    let allow = resp.headers.get(&HeaderName::Allow).unwrap();
    for m in [
        "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "REFER",
    ] {
        assert!(allow.contains(m), "{allow}");
    }
    assert_eq!(
        resp.headers.get(&HeaderName::Accept),
        Some("application/sdp")
    );
    assert!(resp.headers.contains(&HeaderName::Supported));
    assert!(resp.to_hdr().unwrap().tag().is_some());
    assert!(resp.headers.contains(&HeaderName::Server));
    assert!(ua.events().is_empty());
}

#[test]
fn unknown_method_501_known_but_unsupported_405() {
    let mut ua = Ua::new();
    assert_eq!(ua.send_one(&request("FROBNICATE", "")).status, 501);
    let resp = ua.send_one(&request("SUBSCRIBE", "Event: presence\r\n"));
    assert_eq!(resp.status, 405);
    assert!(resp.headers.get(&HeaderName::Allow).is_some());
    assert_eq!(ua.ep.stats().requests("OTHER"), 1);
    assert_eq!(ua.ep.stats().requests("SUBSCRIBE"), 1);
    assert_eq!(ua.ep.stats().responses_sent_class(5), 1);
    assert_eq!(ua.ep.stats().responses_sent_class(4), 1);
}

#[test]
fn max_forwards_zero_gets_483() {
    let mut ua = Ua::new();
    let text = request("MESSAGE", "").replace("Max-Forwards: 70", "Max-Forwards: 0");
    assert_eq!(ua.send_one(&text).status, 483);
    assert!(ua.events().is_empty());
}

#[test]
fn unsupported_require_gets_420() {
    let mut ua = Ua::new();
    let resp = ua.send_one(&request("MESSAGE", "Require: 100rel, precondition\r\n"));
    assert_eq!(resp.status, 420);
    assert_eq!(
        resp.headers.get(&HeaderName::Other("Unsupported".into())),
        Some("precondition")
    );
    // 100rel and timer are supported: the request reaches the TU.
    assert!(
        ua.send(&request("INFO", "Require: 100rel, timer\r\n"))
            .is_empty()
    );
}

#[test]
fn tu_methods_become_events_and_invite_gets_100_trying() {
    let mut ua = Ua::new();
    let resp = ua.send_one(&request(
        "INVITE",
        "Contact: <sip:probe@198.51.100.7:5062>\r\n",
    ));
    assert_eq!(resp.status, 100);
    assert!(
        resp.to_hdr().unwrap().tag().is_none(),
        "100 carries no To tag"
    );
    for m in ["BYE", "REFER", "NOTIFY", "INFO", "UPDATE", "MESSAGE"] {
        assert!(ua.send(&request(m, "")).is_empty(), "{m} is for the TU");
    }
    let methods: Vec<String> = ua
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::NewRequest { req, src, .. } => {
                assert_eq!(src, ua.src);
                Some(req.method.to_string())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        methods,
        vec![
            "INVITE", "BYE", "REFER", "NOTIFY", "INFO", "UPDATE", "MESSAGE"
        ]
    );
}

#[test]
fn malformed_request_gets_400_with_reason_when_recoverable() {
    let mut ua = Ua::new();
    // Bad Content-Length, all the headers needed for a response present.
    let text = request("MESSAGE", "").replace("Content-Length: 0", "Content-Length: abc");
    let resp = ua.send_one(&text);
    assert_eq!(resp.status, 400);
    assert!(resp.reason.starts_with("Bad Request"), "{}", resp.reason);
    assert_eq!(resp.call_id(), Some("probe-MESSAGE"));
    assert!(resp.to_hdr().unwrap().tag().is_some());
    // CSeq method mismatch parses but fails validation.
    let text = request("MESSAGE", "").replace("CSeq: 7 MESSAGE", "CSeq: 7 INVITE");
    let resp = ua.send_one(&text);
    assert_eq!(resp.status, 400);
    // Missing Call-ID in an unparseable message: nothing to answer with.
    let text = request("MESSAGE", "")
        .replace("Call-ID: probe-MESSAGE\r\n", "")
        .replace("Content-Length: 0", "Content-Length: -1");
    assert!(ua.send(&text).is_empty());
    // Plain garbage and garbage responses are dropped and counted.
    assert!(ua.send("\u{1}\u{2}garbage\r\n\r\n").is_empty());
    assert!(ua.send("SIP/2.0 200\r\n\r\n").is_empty());
    assert!(ua.ep.stats().parse_errors >= 3);
    assert!(ua.ep.stats().dropped >= 2);
    // Keep-alives are not errors.
    let before = ua.ep.stats().parse_errors;
    assert!(ua.send("\r\n\r\n").is_empty());
    assert_eq!(ua.ep.stats().parse_errors, before);
}

#[test]
fn ack_is_never_answered() {
    let mut ua = Ua::new();
    assert!(ua.send(&request("ACK", "")).is_empty());
    let broken = request("ACK", "").replace("Content-Length: 0", "Content-Length: x");
    assert!(ua.send(&broken).is_empty());
}

#[test]
fn udp_responses_honour_rport_and_received() {
    let mut ua = Ua::new();
    // Behind NAT: Via says 192.168.1.20:5060 with rport, packet comes from 198.51.100.7:40000.
    ua.src = Peer::udp("198.51.100.7:40000".parse().unwrap());
    let text = request("OPTIONS", "").replace(
        "198.51.100.7:5062;branch=z9hG4bK-OPTIONS-1",
        "192.168.1.20:5060;branch=z9hG4bK-n1;rport",
    );
    ua.ep
        .handle_datagram(ua.now, ua.src.clone(), text.as_bytes());
    let t = ua.ep.poll_transmit().unwrap();
    assert_eq!(t.dest, Peer::udp("198.51.100.7:40000".parse().unwrap()));
    let Message::Response(r) = Message::parse(&t.bytes).unwrap() else {
        panic!()
    };
    let via = r.top_via().unwrap();
    assert_eq!(via.param("received"), Some(Some("198.51.100.7")));
    assert_eq!(via.param("rport"), Some(Some("40000")));

    // No rport, sent-by differs from the source: received= set, sent-by port used.
    let text = request("OPTIONS", "").replace(
        "198.51.100.7:5062;branch=z9hG4bK-OPTIONS-1",
        "pbx.example.com:5070;branch=z9hG4bK-n2",
    );
    ua.ep
        .handle_datagram(ua.now, ua.src.clone(), text.as_bytes());
    let t = ua.ep.poll_transmit().unwrap();
    assert_eq!(t.dest, Peer::udp("198.51.100.7:5070".parse().unwrap()));
    let Message::Response(r) = Message::parse(&t.bytes).unwrap() else {
        panic!()
    };
    assert_eq!(
        r.top_via().unwrap().param("received"),
        Some(Some("198.51.100.7"))
    );
    assert_eq!(r.top_via().unwrap().param("rport"), None);

    // Same IP as sent-by, no rport: Via untouched.
    let text = request("OPTIONS", "").replace("z9hG4bK-OPTIONS-1", "z9hG4bK-n3");
    ua.ep
        .handle_datagram(ua.now, ua.src.clone(), text.as_bytes());
    let t = ua.ep.poll_transmit().unwrap();
    assert_eq!(t.dest, Peer::udp("198.51.100.7:5062".parse().unwrap()));
    let Message::Response(r) = Message::parse(&t.bytes).unwrap() else {
        panic!()
    };
    assert_eq!(r.top_via().unwrap().param("received"), None);
}

#[test]
fn stream_responses_go_back_over_the_connection() {
    let mut ua = Ua::new();
    ua.src = Peer::stream(
        Transport::Ws,
        "198.51.100.7:51000".parse().unwrap(),
        ConnId(9),
    );
    let text = request("OPTIONS", "").replace(
        "SIP/2.0/UDP 198.51.100.7:5062",
        "SIP/2.0/WS df7jal23ls0d.invalid",
    );
    ua.ep
        .handle_datagram(ua.now, ua.src.clone(), text.as_bytes());
    let t = ua.ep.poll_transmit().unwrap();
    assert_eq!(t.dest, ua.src);
}

#[test]
fn requests_we_send_carry_via_branch_max_forwards_and_user_agent() {
    let mut ua = Ua::new();
    let mut req = switchboard_sipmsg::Request::new(
        switchboard_sipmsg::Method::Options,
        "sip:agent@198.51.100.7:5062".parse().unwrap(),
    );
    req.headers
        .push(HeaderName::From, "<sip:callcenter.local>;tag=x");
    req.headers.push(HeaderName::To, "<sip:agent@198.51.100.7>");
    req.headers.push(HeaderName::CSeq, "1 OPTIONS");
    ua.ep
        .send_request(ua.now, Peer::udp("198.51.100.7:5062".parse().unwrap()), req);
    let t = ua.ep.poll_transmit().unwrap();
    let Message::Request(r) = Message::parse(&t.bytes).unwrap() else {
        panic!()
    };
    let via = r.top_via().unwrap();
    assert!(via.branch().unwrap().starts_with("z9hG4bK"));
    assert!(via.param("rport").is_some());
    assert_eq!(via.transport, "UDP");
    assert_eq!(r.headers.get(&HeaderName::MaxForwards), Some("70"));
    assert!(r.call_id().is_some());
    assert!(r.headers.contains(&HeaderName::UserAgent));
    r.validate().unwrap();
}
