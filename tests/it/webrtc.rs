//! WebRTC agents beyond one browser and one offer, through the real server: an agent logged in
//! from two browsers (two aiortc peers on two WebSocket flows) is rung on both, each with a
//! WebRTC leg of its own; the browser that answers talks, the other is cancelled; when her
//! desk phone (SIPp on UDP) answers instead, the ringing browser's leg is freed at once. A
//! browser's own re-INVITEs (hold and resume, negotiated by aiortc) are answered by its leg
//! while the media stops and flows again; a browser that tries to place a call is refused
//! with a reason.
//! The agent is `tests/data/ws/ws_agent.py` (see `websocket.rs`).

use std::time::Duration;

use crate::harness::*;
use crate::websocket::{
    agent_output, answered_by, company_with_ws, counted, trunk_talking, trunk_with,
    wait_registered, without_peers, ws_agent,
};

/// The `key:value` word of the agent's OFFER line (`ufrag`, `port`).
fn offer_field(said: &str, key: &str) -> String {
    said.lines()
        .find(|l| l.starts_with("OFFER webrtc"))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{key}:")))
        })
        .unwrap_or_default()
        .to_owned()
}

fn webrtc_sessions(server: &Server) -> f64 {
    let (_, text) = http_get(server.ports.http, "/metrics").expect("metrics");
    metric_sum(&text, "switchboard_webrtc_sessions", &[])
}

#[test]
fn two_browsers_of_one_agent_ring_on_their_own_legs_and_the_loser_is_cancelled() {
    if without_peers() {
        return;
    }
    let (server, ws) = company_with_ws();
    // Petra is logged in twice: one browser answers after a second, the other only rings.
    let answers = ws_agent(
        ws,
        "petra",
        &["--answer", "--answer-delay", "1.5", "--timeout", "15"],
    );
    let rings = ws_agent(ws, "petra", &["--ring-only", "--timeout", "15"]);
    wait_registered(&server, 2.0);
    // While both ring, two WebRTC legs run.
    let http = server.ports.http;
    let watcher = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut most = 0.0f64;
        while std::time::Instant::now() < deadline {
            if let Ok((_, text)) = http_get(http, "/metrics") {
                most = most.max(metric_sum(&text, "switchboard_webrtc_sessions", &[]));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        most
    });
    // The queue answers the trunk at once: 6 s of call leave the browser 4 s of talk.
    let (status, out, messages) = trunk_talking(&server, "trunk_call.xml", 6000);
    assert!(status.success(), "{out}\n{messages}\n{}", server.log());
    let winner = agent_output(answers);
    let loser = agent_output(rings);
    // Each fork had its own offer: its own ICE credentials and its own port.
    let (ufrag_a, ufrag_b) = (offer_field(&winner, "ufrag"), offer_field(&loser, "ufrag"));
    let (port_a, port_b) = (offer_field(&winner, "port"), offer_field(&loser, "port"));
    assert!(
        !ufrag_a.is_empty() && !ufrag_b.is_empty(),
        "{winner}\n{loser}"
    );
    assert_ne!(ufrag_a, ufrag_b, "{winner}\n{loser}");
    assert_ne!(port_a, port_b, "{winner}\n{loser}");
    assert_eq!(watcher.join().unwrap(), 2.0, "two legs while both rang");
    // The one that answered talked over DTLS-SRTP both ways; the other was cancelled.
    assert!(
        winner.contains("WEBRTC connected"),
        "{winner}\n{}",
        server.log()
    );
    assert!(counted(&winner, "INBOUND-RTP ") > 20, "{winner}");
    assert!(counted(&winner, "RTP-IN ") > 20, "{winner}");
    assert!(loser.contains("CANCELLED"), "{loser}\n{}", server.log());
    assert!(!loser.contains("ANSWERED"), "{loser}");
    let rec = &answered_by(&server, "petra");
    let agent_in: u64 = rec["agent_rtp_in"].parse().unwrap();
    let agent_out: u64 = rec["agent_rtp_out"].parse().unwrap();
    assert!(agent_in > 20 && agent_out > 20, "{rec:?}");
    // Both legs are gone: the loser's at the answer, the winner's with the call.
    wait_until(&server, "no WebRTC session", Duration::from_secs(5), || {
        webrtc_sessions(&server) == 0.0
    });
}

#[test]
fn a_browser_holds_resumes_and_re_invites_without_sdp_and_the_media_follows() {
    if without_peers() {
        return;
    }
    let (server, ws) = company_with_ws();
    let agent = ws_agent(
        ws,
        "petra",
        &[
            "--answer",
            "--hold-at",
            "1.5",
            "--resume-at",
            "3.5",
            "--reinvite-without-sdp-at",
            "5",
            "--timeout",
            "15",
        ],
    );
    wait_registered(&server, 1.0);
    // The trunk echoes the browser's tone, so audio flows for the whole call.
    let (status, out, messages) = trunk_with(&server, "trunk_call.xml", 9000, &["-rtp_echo"]);
    assert!(status.success(), "{out}\n{messages}\n{}", server.log());
    let said = agent_output(agent);
    // aiortc's own re-offers, answered by the agent's WebRTC leg: the hold with recvonly,
    // the resume with sendrecv, the ICE credentials of the call kept.
    let ufrag = offer_field(&said, "ufrag");
    assert!(
        said.contains(&format!("REINVITE hold 200 recvonly ufrag:{ufrag}")),
        "{said}\n{}",
        server.log()
    );
    assert!(
        said.contains(&format!("REINVITE resume 200 sendrecv ufrag:{ufrag}")),
        "{said}"
    );
    // Nothing is relayed while held; the caller's audio comes back after the resume.
    assert!(counted(&said, "HELD-IN ") < 10, "{said}");
    assert!(counted(&said, "RESUMED-IN ") > 20, "{said}");
    // A re-INVITE without SDP gets the leg's offer (same ICE credentials), aiortc's answer
    // in the ACK is taken, and audio goes on.
    assert!(
        said.contains(&format!("REINVITE-NOSDP 200 webrtc ufrag:{ufrag}")),
        "{said}\n{}",
        server.log()
    );
    assert!(counted(&said, "AFTER-NOSDP-IN ") > 20, "{said}");
    assert!(
        server.log().contains("agent answered our offer in the ACK"),
        "{}",
        server.log()
    );
    let log = server.log();
    assert!(log.contains("agent holds the caller"), "{log}");
    assert!(log.contains("agent resumes the caller"), "{log}");
    answered_by(&server, "petra");
}

#[test]
fn a_browser_placing_a_call_is_told_to_use_click_to_call() {
    if without_peers() {
        return;
    }
    let (server, ws) = company_with_ws();
    let said = agent_output(ws_agent(
        ws,
        "petra",
        &["--call", "+38591555000", "--timeout", "10"],
    ));
    assert!(said.contains("REGISTERED"), "{said}");
    assert!(
        said.contains("CALL-RESULT 403 Forbidden - Agents Place Calls Through Click-To-Call"),
        "{said}\n{}",
        server.log()
    );
    assert!(said.contains("POST /api/v1/calls"), "{said}");
    assert!(
        server.log().contains("INVITE from a browser agent refused"),
        "{}",
        server.log()
    );
    // Nothing was opened for it.
    assert_eq!(webrtc_sessions(&server), 0.0);
}

#[test]
fn a_desk_phone_answering_frees_the_ringing_browsers_leg_at_once() {
    if without_peers() {
        return;
    }
    let (server, ws) = company_with_ws();
    // Petra's UDP desk phone (SIPp) answers at once; her browser only rings.
    let _phone = SippAgent::start(&server, "petra", None);
    let browser = ws_agent(ws, "petra", &["--ring-only", "--timeout", "10"]);
    wait_registered(&server, 2.0);
    let http = server.ports.http;
    // While the call talks to the phone, the browser's WebRTC leg is already gone.
    let watcher = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            let talking = api_get(http, "/api/v1/calls/active")
                .is_ok_and(|(_, body)| body.contains("\"agent_media\":\"rtp\""));
            let legs = http_get(http, "/metrics").map_or(-1.0, |(_, text)| {
                metric_sum(&text, "switchboard_webrtc_sessions", &[])
            });
            if talking && legs == 0.0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    });
    let (status, out, messages) = trunk_talking(&server, "trunk_call.xml", 4000);
    assert!(status.success(), "{out}\n{messages}\n{}", server.log());
    let said = agent_output(browser);
    assert!(said.contains("OFFER webrtc"), "{said}");
    assert!(said.contains("CANCELLED"), "{said}\n{}", server.log());
    assert!(
        watcher.join().unwrap(),
        "the browser's leg outlived the answer"
    );
    answered_by(&server, "petra");
}
