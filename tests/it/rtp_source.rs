//! PRODUCT §5 through the real server: while a trunk caller (SIPp) talks to an agent's
//! softphone (baresip), a stranger sprays RTP at both of the call's relay ports. Every
//! sprayed packet is dropped and counted (`switchboard_rtp_rejected_packets_total`), the
//! stranger receives nothing of the call, and the call goes on as if nothing happened.

use std::net::UdpSocket;
use std::time::Duration;

use crate::harness::{
    Baresip, Ports, Server, call_ended, demo_config, http_get, metric_sum,
    new_client_call_answered_by, relay_ports, rtp_packet, without_baresip, without_sipp,
};

#[test]
fn a_stranger_spraying_the_relay_ports_reaches_neither_party() {
    if without_sipp() || without_baresip() {
        return;
    }
    let ports = Ports::new();
    let server = Server::start(&demo_config(&ports), ports);
    let ivan = Baresip::start(&server, "ivan");
    let caller = new_client_call_answered_by(&server, "ivan", 3000);
    let (caller_port, agent_port) = relay_ports(&server.log()).expect("the media span");
    // Both parties are talking by now (SIPp plays its recording, baresip its file).
    std::thread::sleep(Duration::from_millis(300));

    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger
        .set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let mut received = 0;
    let mut buf = [0u8; 2048];
    const SPRAYED: u16 = 100;
    for seq in 0..SPRAYED {
        for port in [caller_port, agent_port] {
            stranger
                .send_to(&rtp_packet(seq, 0), ("127.0.0.1", port))
                .unwrap();
        }
        while stranger.recv_from(&mut buf).is_ok() {
            received += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    stranger
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while stranger.recv_from(&mut buf).is_ok() {
        received += 1;
    }
    assert_eq!(received, 0, "the stranger received call audio");

    let rec = call_ended(&server, caller);
    assert_eq!(rec["outcome"], "answered", "{rec:?}");
    assert_eq!(rec["hangup"], "caller", "{rec:?}");
    let (_, metrics) = http_get(server.ports.http, "/metrics").unwrap();
    let rejected = metric_sum(&metrics, "switchboard_rtp_rejected_packets_total", &[]);
    assert_eq!(
        rejected,
        f64::from(SPRAYED) * 2.0,
        "every sprayed packet is dropped and counted, nothing else"
    );
    let log = server.log();
    assert_eq!(
        log.matches("RTP from another source dropped").count(),
        2,
        "one warning per leg:\n{log}"
    );
    ivan.assert_heard_the_caller();
}

/// The attack of a stranger who sprays both relay ports from before the agent answers,
/// against an agent whose phone starts talking 1 s after answering (SIPp). Until the agent's
/// first packet the stranger holds the agent leg (PRODUCT §5 latches another source only
/// while the SDP address is silent, for phones behind NAT); from it on, not one packet of
/// the call reaches the stranger.
#[test]
fn a_sprayer_holds_a_leg_only_until_its_party_speaks() {
    if without_sipp() {
        return;
    }
    let ports = Ports::new();
    let server = Server::start(&demo_config(&ports), ports);
    let _ivan = crate::harness::SippAgent::start(&server, "ivan", Some("agent_talks_late.xml"));
    // ivan is on a break: the call waits in the queue while the stranger starts spraying.
    crate::harness::put_on_break(&server, &["ivan"]);
    let sip = server.sip_addr();
    let caller = std::thread::spawn(move || {
        crate::harness::trunk_calls_to(
            sip,
            "+38599999999",
            "100",
            4000,
            &[],
            Duration::from_secs(30),
        )
    });
    let mut relay = None;
    crate::harness::wait_until(
        &server,
        "the call's relay ports",
        Duration::from_secs(10),
        || {
            relay = relay_ports(&server.log());
            relay.is_some()
        },
    );
    let (caller_port, agent_port) = relay.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sprayer = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
            stranger.set_nonblocking(true).unwrap();
            let mut arrivals = Vec::new();
            let mut buf = [0u8; 2048];
            let mut seq = 0u16;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for port in [caller_port, agent_port] {
                    let _ = stranger.send_to(&rtp_packet(seq, 0), ("127.0.0.1", port));
                }
                seq = seq.wrapping_add(1);
                while stranger.recv_from(&mut buf).is_ok() {
                    arrivals.push(std::time::Instant::now());
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            arrivals
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let (status, body) = crate::harness::api_post(
        server.ports.http,
        "/api/v1/agents/ivan/state",
        r#"{"state": "available"}"#,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    crate::harness::wait_until(&server, "ivan answers", Duration::from_secs(10), || {
        server.log().contains("answered call=1 agent=ivan")
    });
    let answered = std::time::Instant::now();

    let rec = call_ended(&server, caller);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let arrivals = sprayer.join().unwrap();
    assert_eq!(rec["outcome"], "answered", "{rec:?}");
    assert_eq!(rec["agent"], "ivan", "{rec:?}");
    // ivan's voice starts 1 s after the answer; give it half a second more.
    let spoke = answered + Duration::from_millis(1500);
    let late = arrivals.iter().filter(|t| **t > spoke).count();
    assert_eq!(
        late,
        0,
        "the stranger still received {late} packets after ivan spoke ({} in all)\n{rec:?}",
        arrivals.len()
    );
    let agent_in: u64 = rec["agent_rtp_in"].parse().unwrap();
    assert!(agent_in > 50, "ivan's voice was not taken: {rec:?}");
}
