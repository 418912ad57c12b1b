//! Dialogs, offer/answer and extensions in virtual time: what PBX trunks and SBCs send.

use std::time::Duration;

use switchboard_sip::digest::{Challenge, answer_challenge};
use switchboard_sipmsg::{HeaderName, Message, Method, Request, Response};
use switchboard_store::Outcome;

use super::sim::{Sim, Ua};

/// The demo company with the RTP inactivity timeout at `rtp_timeout_s` (scripted peers
/// send no RTP; 0 turns the check off).
/// The demo company with `rtp_timeout_s`, and chains that hold a waiting call for an hour
/// (the session-timer tests run longer than the default `step_wait_s`).
fn demo(rtp_timeout_s: u32) -> String {
    crate::config::DEMO_CONFIG
        .replace(
            "rtp_ports = [20000, 29999]",
            &format!("rtp_ports = [20000, 29999]\nrtp_timeout_s = {rtp_timeout_s}"),
        )
        .replace("step_wait_s = 120", "step_wait_s = 3600")
}

fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers.get(&HeaderName::Other(name.into()))
}

fn body(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// The trunk's INVITE (with `extra` headers) answered by the queue; returns the 200.
fn answered(sim: &mut Sim, trunk: &mut Ua, call_id: &str, extra: &[&str]) -> Response {
    let offer = trunk.sdp(trunk.rtp_port, "sendrecv");
    let inv = trunk.invite("100", call_id, Some(offer), extra);
    sim.deliver(trunk.addr, &Message::Request(inv));
    let ok = sim.response(trunk.addr, 200);
    sim.deliver(trunk.addr, &Message::Request(trunk.ack(&ok, None)));
    ok
}

fn with_sdp(mut req: Request, sdp: Vec<u8>) -> Request {
    req.headers.push(HeaderName::ContentType, "application/sdp");
    req.body = sdp;
    req
}

/// PJSIP with `100rel` and session timers required: a reliable 180 (PRACKed), a 200 that
/// names the caller as refresher; no refresh → BYE before the interval ends; the record
/// says why.
#[tokio::test]
async fn required_100rel_and_timer_are_honoured_and_an_unrefreshed_session_ends() {
    let mut sim = Sim::with_config(&demo(0), "", 29900).await;
    sim.everyone_on_break();
    let mut trunk = Ua::new("+38599000011", 5211);
    let offer = trunk.sdp(trunk.rtp_port, "sendrecv");
    let inv = trunk.invite(
        "100",
        "t1",
        Some(offer),
        &[
            "Require: 100rel, timer",
            "Supported: 100rel, timer",
            "Session-Expires: 120",
            "Min-SE: 90",
            "Allow: INVITE, ACK, BYE, CANCEL, UPDATE, PRACK",
        ],
    );
    sim.deliver(trunk.addr, &Message::Request(inv));
    let ringing = sim.response(trunk.addr, 180);
    assert_eq!(ringing.headers.get(&HeaderName::Require), Some("100rel"));
    assert_eq!(header(&ringing, "RSeq"), Some("1"));
    let prack = trunk.in_call(Method::Prack, &ringing, &["RAck: 1 1 INVITE"]);
    let ok = sim.response(trunk.addr, 200);
    sim.deliver(trunk.addr, &Message::Request(prack));
    let prack_ok = sim.response(trunk.addr, 200);
    assert_eq!(prack_ok.cseq().unwrap().method, Method::Prack);
    assert_eq!(header(&ok, "Session-Expires"), Some("120;refresher=uac"));
    assert_eq!(ok.headers.get(&HeaderName::Require), Some("timer"));
    sim.deliver(trunk.addr, &Message::Request(trunk.ack(&ok, None)));

    // A refresh by re-INVITE at half time keeps the call; then silence.
    sim.advance(Duration::from_secs(60));
    let refresh = trunk.in_call(Method::Invite, &ok, &["Session-Expires: 120;refresher=uac"]);
    sim.deliver(trunk.addr, &Message::Request(refresh));
    let refreshed = sim.response(trunk.addr, 200);
    assert_eq!(
        header(&refreshed, "Session-Expires"),
        Some("120;refresher=uac")
    );
    let at = sim.now;
    let bye = sim.request(trunk.addr, Method::Bye);
    let after = sim.now.saturating_duration_since(at);
    // Expiry: the interval less min(32 s, a third of it) after the last refresh.
    assert_eq!(after, Duration::from_secs(88), "{after:?}");
    assert_eq!(bye.call_id(), Some("t1"));
    let records = sim.records().await;
    assert_eq!(records[0].outcome, Outcome::Failed);
}

/// refresher=uas: Switchboard refreshes with UPDATE at half the interval; the answered
/// refresh keeps the call up.
#[tokio::test]
async fn switchboard_refreshes_by_update_when_it_is_the_refresher() {
    let mut sim = Sim::with_config(&demo(0), "", 30000).await;
    sim.everyone_on_break();
    let mut trunk = Ua::new("+38599000012", 5212);
    let ok = answered(
        &mut sim,
        &mut trunk,
        "t2",
        &[
            "Supported: timer",
            "Session-Expires: 300;refresher=uas",
            "Allow: INVITE, ACK, BYE, UPDATE",
        ],
    );
    assert_eq!(header(&ok, "Session-Expires"), Some("300;refresher=uas"));
    let start = sim.now;
    let update = sim.request(trunk.addr, Method::Update);
    assert_eq!(
        sim.now.saturating_duration_since(start),
        Duration::from_secs(150)
    );
    assert!(update.body.is_empty());
    let mut answer = Response::from_request(&update, 200, "OK", None);
    answer.headers.push(
        HeaderName::Other("Session-Expires".into()),
        "300;refresher=uas",
    );
    sim.deliver(trunk.addr, &Message::Response(answer));
    sim.advance(Duration::from_secs(140));
    assert_eq!(sim.calls.active(), 1, "refreshed: still up");
    // The next refresh comes; left unanswered, the call ends before the session would.
    sim.request(trunk.addr, Method::Update);
    sim.advance(Duration::from_secs(300));
    assert_eq!(sim.calls.active(), 0);
}

/// Session-Expires below Min-SE gets 422 with Min-SE; an unknown required extension gets
/// 420 with Unsupported; both are recorded as rejected calls.
#[tokio::test]
async fn refused_invites_are_answered_with_the_reason_and_recorded() {
    let mut sim = Sim::new("", 30100).await;
    let mut trunk = Ua::new("+38599000013", 5213);
    let offer = trunk.sdp(trunk.rtp_port, "sendrecv");
    let inv = trunk.invite("100", "t3", Some(offer.clone()), &["Session-Expires: 30"]);
    sim.deliver(trunk.addr, &Message::Request(inv));
    let small = sim.response(trunk.addr, 422);
    assert_eq!(header(&small, "Min-SE"), Some("90"));
    let inv = trunk.invite("100", "t4", Some(offer), &["Require: timer, precondition"]);
    sim.deliver(trunk.addr, &Message::Request(inv));
    let bad = sim.response(trunk.addr, 420);
    assert_eq!(header(&bad, "Unsupported"), Some("precondition"));
    let records = sim.records().await;
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r.outcome == Outcome::Rejected));
    assert!(records.iter().any(|r| r.route.contains("420")));
    assert!(records.iter().any(|r| r.route.contains("422")));
}

/// Late offer: the 200 carries our offer, the ACK the answer; an ACK without it ends the
/// call.
#[tokio::test]
async fn late_offer_is_answered_with_an_offer_and_completed_by_the_ack() {
    let mut sim = Sim::new("", 30200).await;
    sim.everyone_on_break();
    let mut trunk = Ua::new("+38599000014", 5214);
    let inv = trunk.invite("100", "t5", None, &[]);
    sim.deliver(trunk.addr, &Message::Request(inv));
    let ok = sim.response(trunk.addr, 200);
    assert!(
        body(&ok).contains("a=rtpmap:0 PCMU/8000"),
        "our offer: {}",
        body(&ok)
    );
    let answer = trunk.sdp(trunk.rtp_port, "sendrecv");
    sim.deliver(trunk.addr, &Message::Request(trunk.ack(&ok, Some(answer))));
    let call = sim.calls.calls.values().next().expect("call");
    assert!(!call.media.awaits_answer());

    let inv = trunk.invite("100", "t6", None, &[]);
    sim.deliver(trunk.addr, &Message::Request(inv));
    let ok = sim.response(trunk.addr, 200);
    sim.deliver(trunk.addr, &Message::Request(trunk.ack(&ok, None)));
    let bye = sim.request(trunk.addr, Method::Bye);
    assert_eq!(bye.call_id(), Some("t6"));
    assert_eq!(sim.calls.active(), 1);
}

/// Through an SBC: Record-Route is echoed in 180 and 200, and our BYE goes to the SBC with
/// a Route header; a BYE with the right Call-ID but foreign tags gets 481 and ends nothing.
#[tokio::test]
async fn route_sets_are_honoured_and_foreign_tags_get_481() {
    let mut sim = Sim::with_config(&demo(30), "", 30300).await;
    sim.everyone_on_break();
    let mut trunk = Ua::new("+38599000015", 5215);
    let rr = "Record-Route: <sip:127.0.0.1:5090;lr;ftag=x>";
    let offer = trunk.sdp(trunk.rtp_port, "sendrecv");
    let inv = trunk.invite("100", "t7", Some(offer), &[rr]);
    sim.deliver(trunk.addr, &Message::Request(inv));
    let ringing = sim.response(trunk.addr, 180);
    assert_eq!(
        ringing.headers.get(&HeaderName::RecordRoute),
        Some("<sip:127.0.0.1:5090;lr;ftag=x>")
    );
    let ok = sim.response(trunk.addr, 200);
    assert!(ok.headers.get(&HeaderName::RecordRoute).is_some());
    sim.deliver(trunk.addr, &Message::Request(trunk.ack(&ok, None)));

    let mut stranger = Ua::new("stranger", 5299);
    stranger.tag = "forged".into();
    let forged = stranger.dialog_request(
        Method::Bye,
        "sip:switchboard@127.0.0.1:5060",
        "t7",
        "<sip:x@127.0.0.1>;tag=forged",
        ok.headers.get(&HeaderName::To).unwrap(),
        &[],
    );
    sim.deliver(stranger.addr, &Message::Request(forged));
    sim.response(stranger.addr, 481);
    assert_eq!(sim.calls.active(), 1, "a foreign BYE ends nothing");

    // The RTP check ends the silent call: our BYE goes to the SBC, routed.
    let sbc = "127.0.0.1:5090".parse().unwrap();
    let bye = sim.request(sbc, Method::Bye);
    assert_eq!(
        bye.headers.get(&HeaderName::Route),
        Some("<sip:127.0.0.1:5090;lr;ftag=x>")
    );
    assert_eq!(
        bye.uri.to_string(),
        format!("sip:{}@{}", trunk.user, trunk.addr)
    );
}

/// re-INVITE and UPDATE with SDP re-point the caller leg and are answered with SDP; hold is
/// answered recvonly; a re-INVITE meeting our own pending re-INVITE gets 491.
#[tokio::test]
async fn reinvite_and_update_are_answered_and_glare_gets_491() {
    let mut sim = Sim::with_config(&demo(0), "", 30400).await;
    sim.everyone_on_break();
    let mut trunk = Ua::new("+38599000016", 5216);
    let ok = answered(
        &mut sim,
        &mut trunk,
        "t8",
        &[
            "Supported: timer",
            "Session-Expires: 180;refresher=uas",
            "Allow: INVITE, ACK, BYE",
        ],
    );
    let moved = trunk.sdp(trunk.rtp_port + 2, "sendrecv");
    let reinvite = with_sdp(trunk.in_call(Method::Invite, &ok, &[]), moved);
    sim.deliver(trunk.addr, &Message::Request(reinvite));
    let answer = sim.response(trunk.addr, 200);
    assert!(body(&answer).contains("a=sendrecv"), "{}", body(&answer));
    sim.deliver(trunk.addr, &Message::Request(trunk.ack(&answer, None)));

    let hold = with_sdp(
        trunk.in_call(Method::Update, &ok, &[]),
        trunk.sdp(trunk.rtp_port + 2, "sendonly"),
    );
    sim.deliver(trunk.addr, &Message::Request(hold));
    let held = sim.response(trunk.addr, 200);
    assert!(body(&held).contains("a=recvonly"), "{}", body(&held));
    assert!(sim.calls.calls.values().all(|c| c.caller_leg.held));

    // Our refresh (a re-INVITE: this trunk does not allow UPDATE) is pending...
    let ours = sim.request(trunk.addr, Method::Invite);
    assert!(!ours.body.is_empty(), "a re-INVITE refresh carries our SDP");
    let theirs = with_sdp(
        trunk.in_call(Method::Invite, &ok, &[]),
        trunk.sdp(trunk.rtp_port, "sendrecv"),
    );
    sim.deliver(trunk.addr, &Message::Request(theirs));
    sim.response(trunk.addr, 491);
    // ... and once answered (and ACKed by us) the trunk's retry goes through.
    sim.deliver(
        trunk.addr,
        &Message::Response(trunk.answer(&ours, 200, Some(trunk.sdp(trunk.rtp_port, "sendrecv")))),
    );
    sim.request(trunk.addr, Method::Ack);
    let retry = with_sdp(
        trunk.in_call(Method::Invite, &ok, &[]),
        trunk.sdp(trunk.rtp_port, "sendrecv"),
    );
    sim.deliver(trunk.addr, &Message::Request(retry));
    sim.response(trunk.addr, 200);
}

/// A source outside every `allow` list is challenged (407) when a trunk has credentials;
/// the right ones admit the call, wrong ones get 403 and a rejected record.
#[tokio::test]
async fn trunk_digest_admits_sources_outside_allow() {
    let extra =
        "[[trunks]]\nname = \"sbc\"\nallow = []\nusername = \"pbx\"\npassword = \"pbx-secret\"\n";
    let demo = crate::config::DEMO_CONFIG
        .replace("allow = [\"127.0.0.1/32\"]", "allow = [\"10.0.0.0/8\"]");
    assert_ne!(demo, crate::config::DEMO_CONFIG);
    let mut sim = Sim::with_config(&demo, extra, 30500).await;
    sim.everyone_on_break();
    let mut trunk = Ua::new("+38599000017", 5217);
    let offer = trunk.sdp(trunk.rtp_port, "sendrecv");
    let inv = trunk.invite("100", "t9", Some(offer.clone()), &[]);
    sim.deliver(trunk.addr, &Message::Request(inv.clone()));
    let challenge = sim.response(trunk.addr, 407);
    let challenge = Challenge::parse(
        challenge
            .headers
            .get(&HeaderName::ProxyAuthenticate)
            .unwrap(),
    )
    .unwrap();
    let uri = inv.uri.to_string();
    let good = answer_challenge(&challenge, "pbx", "pbx-secret", "INVITE", &uri, "abc", 1);
    let authed = trunk.invite(
        "100",
        "t9",
        Some(offer.clone()),
        &[&format!("Proxy-Authorization: {}", good.to_header_value())],
    );
    sim.deliver(trunk.addr, &Message::Request(authed));
    sim.response(trunk.addr, 200);
    assert_eq!(sim.calls.active(), 1);

    let bad = answer_challenge(&challenge, "pbx", "guess", "INVITE", &uri, "abc", 2);
    let wrong = trunk.invite(
        "100",
        "t10",
        Some(offer),
        &[&format!("Proxy-Authorization: {}", bad.to_header_value())],
    );
    sim.deliver(trunk.addr, &Message::Request(wrong));
    sim.response(trunk.addr, 403);
    let records = sim.records().await;
    assert!(
        records
            .iter()
            .any(|r| r.sip_call_id == "t10" && r.outcome == Outcome::Rejected)
    );
}

/// The caller's number comes from P-Asserted-Identity (`tel:`), normalised by `[numbers]`;
/// a merged INVITE (same Call-ID and From tag, new branch) gets 482.
#[tokio::test]
async fn pai_number_is_normalised_and_a_merged_invite_gets_482() {
    let numbers = "[numbers]\ncountry_code = \"385\"\nnational_prefix = \"0\"\ninternational_prefix = \"00\"\n";
    let mut sim = Sim::new(numbers, 30600).await;
    sim.everyone_on_break();
    let mut trunk = Ua::new("0915550123", 5218);
    let pai = "P-Asserted-Identity: <tel:00385915550123>";
    let offer = trunk.sdp(trunk.rtp_port, "sendrecv");
    let inv = trunk.invite("100", "t11", Some(offer.clone()), &[pai]);
    sim.deliver(trunk.addr, &Message::Request(inv));
    sim.response(trunk.addr, 200);
    let call = sim.calls.calls.values().next().expect("call");
    assert_eq!(call.client_number, "+385915550123");
    let again = trunk.invite("100", "t11", Some(offer), &[pai]);
    sim.deliver(trunk.addr, &Message::Request(again));
    sim.response(trunk.addr, 482);
    assert_eq!(sim.calls.active(), 1);
}

/// SIP INFO DTMF (application/dtmf-relay) chooses in the voice menu.
#[tokio::test]
async fn info_dtmf_chooses_in_the_menu() {
    let mut sim = Sim::new(
        "[ivr]\nenabled = true\ntimeout_s = 30\noptions = { \"1\" = \"order\", \"4\" = \"complaint\" }\n",
        31000,
    )
    .await;
    let mut trunk = Ua::new("+38599000019", 5219);
    let offer = trunk.sdp(trunk.rtp_port, "sendrecv");
    let inv = trunk.invite("999", "t12", Some(offer), &[]);
    sim.deliver(trunk.addr, &Message::Request(inv));
    let ok = sim.response(trunk.addr, 200);
    sim.deliver(trunk.addr, &Message::Request(trunk.ack(&ok, None)));
    let mut info = trunk.in_call(Method::Info, &ok, &[]);
    info.headers
        .push(HeaderName::ContentType, "application/dtmf-relay");
    info.body = b"Signal=4\r\nDuration=160\r\n".to_vec();
    sim.deliver(trunk.addr, &Message::Request(info));
    sim.response(trunk.addr, 200);
    let call = sim.calls.calls.values().next();
    assert!(
        call.is_none_or(|c| c.purpose.as_str() == "complaint"),
        "{call:?}"
    );
}

/// A full transaction table (`sip.max_transactions`): the endpoint's stateless 503 to a new
/// INVITE leaves a `rejected` record with the trunk, once even when the INVITE is
/// retransmitted and refused again; a BYE in a dialog would still pass (the endpoint's
/// reserve), and nothing else is recorded.
#[tokio::test]
async fn overload_503_to_an_invite_is_recorded_once_as_rejected() {
    let demo = crate::config::DEMO_CONFIG.replace(
        "advertised_address = \"127.0.0.1\"",
        "advertised_address = \"127.0.0.1\"\nmax_transactions = 1",
    );
    let mut sim = Sim::with_config(&demo, "", 31900).await;
    sim.everyone_on_break();
    let mut trunk = Ua::new("+38599000021", 5221);
    // One OPTIONS fills the table (its transaction lives on for Timer J).
    let options = trunk.request(Method::Options, "sip:127.0.0.1:5060", "o1", &[]);
    sim.deliver(trunk.addr, &Message::Request(options));
    sim.response(trunk.addr, 200);
    let offer = trunk.sdp(trunk.rtp_port, "sendrecv");
    let inv = trunk.invite("100", "flood-1", Some(offer), &[]);
    for _ in 0..3 {
        sim.deliver(trunk.addr, &Message::Request(inv.clone()));
        let refused = sim.response(trunk.addr, 503);
        assert!(refused.headers.get(&HeaderName::RetryAfter).is_some());
    }
    assert_eq!(sim.calls.active(), 0);
    let records = sim.records().await;
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r.outcome, Outcome::Rejected);
    assert_eq!(r.sip_call_id, "flood-1");
    assert_eq!(r.trunk.as_deref(), Some("pbx-main"));
    assert_eq!(r.caller, "+38599000021");
    assert!(r.route.contains("503"), "{}", r.route);
}

/// The RTP port of an SDP body's `m=audio` line.
fn sdp_port(body: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(body);
    text.lines()
        .find_map(|l| l.strip_prefix("m=audio ")?.split(' ').next()?.parse().ok())
        .expect("m=audio port")
}

/// One PCMA packet, sequence `seq`, from `from` to the server's RTP port `to`.
async fn send_packet(from: &tokio::net::UdpSocket, to: u16, seq: u16) {
    let p = switchboard_media::rtp::RtpPacket {
        marker: false,
        payload_type: 8,
        sequence: seq,
        timestamp: u32::from(seq) * 160,
        ssrc: 0x7777,
        payload: bytes::Bytes::from_static(&[0xd5; 160]),
    };
    from.send_to(&p.to_vec().unwrap(), ("127.0.0.1", to))
        .await
        .unwrap();
}

/// Sends `n` PCMA packets from `from` to the server's RTP port `to`, 20 ms apart.
async fn send_rtp(from: &tokio::net::UdpSocket, to: u16, n: u16) {
    for i in 0..n {
        send_packet(from, to, i).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// RTP packets `sock` receives within `d`, stopping early once it has `n`.
async fn receive_rtp(sock: &tokio::net::UdpSocket, n: usize, d: Duration) -> usize {
    let mut got = 0;
    let mut buf = [0u8; 2048];
    let _ = tokio::time::timeout(d, async {
        while got < n {
            got += usize::from(sock.recv_from(&mut buf).await.is_ok());
        }
    })
    .await;
    got
}

/// RTP packets `sock` receives within `d`.
async fn count_rtp(sock: &tokio::net::UdpSocket, d: Duration) -> usize {
    receive_rtp(sock, usize::MAX, d).await
}

/// How long a test waits for the relay to apply a change of a call's media.
const MEDIA_CHANGE: Duration = Duration::from_secs(3);

/// Sends PCMA packets from `from` to the server's RTP port `to`, 20 ms apart, until `sock`
/// has received `n` packets or [`MEDIA_CHANGE`] has passed; returns how many it received.
/// The relay applies what a SIP exchange changed on its own thread, so on a busy machine
/// the first packets after the exchange may still take the old path: the test waits for
/// the new one instead of guessing how long the relay takes.
async fn audio_reaches(
    from: &tokio::net::UdpSocket,
    to: u16,
    sock: &tokio::net::UdpSocket,
    n: usize,
) -> usize {
    let mut got = 0;
    let mut buf = [0u8; 2048];
    let mut seq = 1000u16;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let deadline = tokio::time::Instant::now() + MEDIA_CHANGE;
    while got < n && tokio::time::Instant::now() < deadline {
        tokio::select! {
            _ = tick.tick() => {
                send_packet(from, to, seq).await;
                seq = seq.wrapping_add(1);
            }
            r = sock.recv_from(&mut buf) => got += usize::from(r.is_ok()),
        }
    }
    got
}

/// Packets `sock` receives until it has `n` or [`MEDIA_CHANGE`] has passed.
async fn await_rtp(sock: &tokio::net::UdpSocket, n: usize) -> usize {
    receive_rtp(sock, n, MEDIA_CHANGE).await
}

/// The bridged agent's re-INVITE without SDP (a delayed offer): our offer in the 200, the
/// agent's answer in the ACK re-points the agent leg of the relay (the caller's audio goes
/// to the agent's new port, none to the old one); an ACK answer that holds (`sendonly`)
/// is applied as the agent's hold.
#[tokio::test]
async fn agent_reinvite_without_sdp_takes_its_answer_from_the_ack() {
    let mut sim = Sim::with_config(&demo(0), "", 32000).await;
    let mut petra = Ua::new("petra", 5322);
    petra.register(&mut sim, "petra-secret");
    let mut trunk = Ua::new("+38599000022", 5222);
    let trunk_rtp = tokio::net::UdpSocket::bind(("127.0.0.1", trunk.rtp_port))
        .await
        .unwrap();
    let old_rtp = tokio::net::UdpSocket::bind(("127.0.0.1", petra.rtp_port))
        .await
        .unwrap();
    let new_rtp = tokio::net::UdpSocket::bind(("127.0.0.1", petra.rtp_port + 2))
        .await
        .unwrap();
    let ok = answered(&mut sim, &mut trunk, "t22", &[]);
    let caller_port = sdp_port(&ok.body);
    let inv = sim.request(petra.addr, Method::Invite);
    let answer = petra.sdp(petra.rtp_port, "sendrecv");
    sim.deliver(
        petra.addr,
        &Message::Response(petra.answer(&inv, 200, Some(answer))),
    );
    sim.request(petra.addr, Method::Ack);
    assert!(audio_reaches(&trunk_rtp, caller_port, &old_rtp, 5).await >= 5);

    // The agent's delayed-offer re-INVITE, From and To as the agent sends them.
    let header = |name| inv.headers.get(&name).unwrap_or_default().to_owned();
    let from = format!("{};tag={}", header(HeaderName::To), petra.tag);
    let target = super::sim::contact_uri(Some(&header(HeaderName::Contact)));
    let reinvite = |petra: &mut Ua| {
        petra.dialog_request(
            Method::Invite,
            &target,
            inv.call_id().unwrap(),
            &from,
            &header(HeaderName::From),
            &[],
        )
    };
    sim.deliver(petra.addr, &Message::Request(reinvite(&mut petra)));
    let offer = sim.response(petra.addr, 200);
    assert!(
        body(&offer).contains("a=rtpmap:8 PCMA/8000"),
        "{}",
        body(&offer)
    );
    assert!(
        sim.calls
            .calls
            .values()
            .all(|c| c.media.agent_awaits_answer())
    );
    let moved = petra.sdp(petra.rtp_port + 2, "sendrecv");
    sim.deliver(
        petra.addr,
        &Message::Request(petra.ack(&offer, Some(moved))),
    );
    assert!(
        sim.calls
            .calls
            .values()
            .all(|c| !c.media.agent_awaits_answer())
    );
    assert!(audio_reaches(&trunk_rtp, caller_port, &new_rtp, 5).await >= 5);
    // Moved: from now on nothing goes to the old port.
    let _ = count_rtp(&old_rtp, Duration::from_millis(50)).await;
    send_rtp(&trunk_rtp, caller_port, 10).await;
    assert!(count_rtp(&new_rtp, Duration::from_millis(300)).await >= 10);
    assert_eq!(count_rtp(&old_rtp, Duration::from_millis(50)).await, 0);
    // The caller, bridged, hears nothing from us (the agent sends nothing).
    let _ = count_rtp(&trunk_rtp, Duration::from_millis(50)).await;

    // Again, answered with sendonly in the ACK: the agent holds the caller.
    sim.deliver(petra.addr, &Message::Request(reinvite(&mut petra)));
    let offer = sim.response(petra.addr, 200);
    let hold = petra.sdp(petra.rtp_port + 2, "sendonly");
    sim.deliver(petra.addr, &Message::Request(petra.ack(&offer, Some(hold))));
    let held = |sim: &Sim| {
        sim.calls
            .calls
            .values()
            .all(|c| c.phase.bridged().is_some_and(|b| b.held))
    };
    assert!(held(&sim));
    // The caller hears our music meanwhile: once it plays, the hold is in the relay.
    assert!(
        await_rtp(&trunk_rtp, 5).await >= 5,
        "music to the held caller"
    );
    let _ = count_rtp(&new_rtp, Duration::from_millis(50)).await;
    send_rtp(&trunk_rtp, caller_port, 10).await;
    assert_eq!(
        count_rtp(&new_rtp, Duration::from_millis(200)).await,
        0,
        "nothing goes to an agent who holds"
    );
}

/// The trunk's re-INVITE without SDP gets our offer; the answer in its ACK re-points the
/// caller leg and its direction is applied: an answer holding the call (`sendonly`) is the
/// caller's hold, a later `sendrecv` one the resume.
#[tokio::test]
async fn trunk_reinvite_without_sdp_takes_its_answer_and_direction_from_the_ack() {
    let mut sim = Sim::with_config(&demo(0), "", 32200).await;
    sim.everyone_on_break();
    let mut trunk = Ua::new("+38599000023", 5223);
    let ok = answered(&mut sim, &mut trunk, "t23", &[]);
    for (direction, held) in [("sendonly", true), ("sendrecv", false)] {
        let reinvite = trunk.in_call(Method::Invite, &ok, &[]);
        sim.deliver(trunk.addr, &Message::Request(reinvite));
        let offer = sim.response(trunk.addr, 200);
        assert!(body(&offer).contains("a=sendrecv"), "{}", body(&offer));
        assert!(sim.calls.calls.values().all(|c| c.media.awaits_answer()));
        let answer = trunk.sdp(trunk.rtp_port + 2, direction);
        sim.deliver(
            trunk.addr,
            &Message::Request(trunk.ack(&offer, Some(answer))),
        );
        assert!(
            sim.calls
                .calls
                .values()
                .all(|c| !c.media.awaits_answer() && c.caller_leg.held == held),
            "{direction}"
        );
    }
}
