//! Call control in virtual time: each phase and each timer, driven through the real
//! endpoint, engine, media plane and record store by scripted SIP peers (see `sim`).

use std::time::Duration;

use switchboard_engine::AgentStateKind;
use switchboard_sipmsg::{Message, Method, Response};
use switchboard_store::Outcome;

use super::sim::{Sim, Ua};

/// A trunk call to DID 100 from an unknown number (class `new`: department heads), answered
/// into the queue; returns the server's 200.
fn trunk_call(sim: &mut Sim, trunk: &mut Ua, call_id: &str) -> Response {
    let offer = trunk.sdp(trunk.rtp_port, "sendrecv");
    let inv = trunk.invite("100", call_id, Some(offer), &[]);
    sim.deliver(trunk.addr, &Message::Request(inv));
    sim.response(trunk.addr, 180);
    let ok = sim.response(trunk.addr, 200);
    let ack = trunk.ack(&ok, None);
    sim.deliver(trunk.addr, &Message::Request(ack));
    ok
}

fn agent_state(sim: &Sim, id: &str) -> AgentStateKind {
    let idx = sim.calls.engine.agent_idx(id).expect("agent");
    sim.calls.engine.agent_state(idx).expect("state").kind()
}

/// The call's phase name as the API shows it.
fn phase(sim: &Sim) -> Vec<&'static str> {
    sim.calls.calls.values().map(|c| c.phase.name()).collect()
}

fn is_empty(sim: &Sim) -> bool {
    sim.calls.table_sizes()[..5].iter().all(|n| *n == 0)
}

/// Queued → ringing → talking → the caller hangs up: the agent gets a BYE, the record says
/// answered with the agent, and call control's tables are empty.
#[tokio::test]
async fn queued_call_is_answered_bridged_and_ended_by_the_caller() {
    let mut sim = Sim::new("", 29400).await;
    let mut petra = Ua::new("petra", 5301);
    petra.register(&mut sim, "petra-secret");
    let mut trunk = Ua::new("+38599000001", 5201);
    let ok = trunk_call(&mut sim, &mut trunk, "c1");
    assert!(ok.body.starts_with(b"v=0"), "the queue answers with SDP");

    let inv = sim.request(petra.addr, Method::Invite);
    assert_eq!(phase(&sim), ["ringing"]);
    assert_eq!(agent_state(&sim, "petra"), AgentStateKind::Ringing);
    let answer = petra.sdp(petra.rtp_port, "sendrecv");
    sim.deliver(
        petra.addr,
        &Message::Response(petra.answer(&inv, 200, Some(answer))),
    );
    sim.request(petra.addr, Method::Ack);
    assert_eq!(phase(&sim), ["talking"]);
    assert_eq!(agent_state(&sim, "petra"), AgentStateKind::OnCall);

    sim.advance(Duration::from_secs(3));
    let bye = trunk.in_call(Method::Bye, &ok, &[]);
    sim.deliver(trunk.addr, &Message::Request(bye));
    sim.response(trunk.addr, 200);
    let agent_bye = sim.request(petra.addr, Method::Bye);
    assert_eq!(agent_bye.call_id(), inv.call_id());
    assert!(is_empty(&sim));
    let records = sim.records().await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].outcome, Outcome::Answered);
    assert_eq!(records[0].agent_id.as_deref(), Some("petra"));
    assert!(records[0].talk_ms >= 3000, "{}", records[0].talk_ms);
}

/// Ring timeout: an agent who never answers is CANCELled after the ring timeout, counted
/// as a no-answer, and the call waits on.
#[tokio::test]
async fn ring_timeout_cancels_the_agent_leg() {
    let mut sim = Sim::new("", 29500).await;
    let mut petra = Ua::new("petra", 5302);
    petra.register(&mut sim, "petra-secret");
    let mut trunk = Ua::new("+38599000002", 5202);
    trunk_call(&mut sim, &mut trunk, "c2");
    let inv = sim.request(petra.addr, Method::Invite);
    sim.deliver(
        petra.addr,
        &Message::Response(petra.answer(&inv, 180, None)),
    );
    let rang_at = sim.now;
    let cancel = sim.request(petra.addr, Method::Cancel);
    let rang = sim.now.saturating_duration_since(rang_at);
    assert!(
        rang >= Duration::from_secs(10) && rang <= Duration::from_secs(31),
        "cancelled after {rang:?}"
    );
    assert_eq!(cancel.call_id(), inv.call_id());
    // A no-answer, not a refusal: the call waits on and (petra being the only candidate)
    // is offered to her again with a new INVITE.
    let again = sim.request(petra.addr, Method::Invite);
    assert_ne!(again.call_id(), inv.call_id());
    assert_eq!(phase(&sim), ["ringing"]);
}

/// An agent who answers 486 frees at once: no CANCEL, no waiting for the ring timeout; the
/// call goes on to the next candidate at the same instant.
#[tokio::test]
async fn agent_busy_ends_the_offer_at_once() {
    let mut sim = Sim::new("", 29600).await;
    let mut petra = Ua::new("petra", 5303);
    let mut ivan = Ua::new("ivan", 5313);
    petra.register(&mut sim, "petra-secret");
    ivan.register(&mut sim, "ivan-secret");
    let mut trunk = Ua::new("+38599000003", 5203);
    trunk_call(&mut sim, &mut trunk, "c3");
    // Class `new`: the department heads, one at a time.
    let first = sim.take_sent().into_iter().find_map(|s| match s.msg {
        Message::Request(r) if r.method == Method::Invite => Some((s.to, r)),
        _ => None,
    });
    let (to, inv) = first.expect("an agent rings");
    let (busy, other) = if to == petra.addr {
        (&petra, &ivan)
    } else {
        (&ivan, &petra)
    };
    let before = sim.now;
    sim.deliver(busy.addr, &Message::Response(busy.answer(&inv, 486, None)));
    sim.request(busy.addr, Method::Ack);
    let next = sim.request(other.addr, Method::Invite);
    assert_eq!(sim.now, before, "the next agent rang at once, no timer ran");
    assert_ne!(next.call_id(), inv.call_id());
    assert_ne!(agent_state(&sim, &busy.user), AgentStateKind::Ringing);
    assert_eq!(agent_state(&sim, &other.user), AgentStateKind::Ringing);
    assert!(
        sim.take_sent()
            .iter()
            .all(|s| !matches!(&s.msg, Message::Request(r) if r.method == Method::Cancel))
    );
}

/// The voice menu: without a choice the call is queued as an order when the menu times out.
#[tokio::test]
async fn menu_timeout_queues_the_call_as_an_order() {
    let mut sim = Sim::new(
        "[ivr]\nenabled = true\ntimeout_s = 7\noptions = { \"1\" = \"order\", \"2\" = \"complaint\" }\n",
        30900,
    )
    .await;
    let mut trunk = Ua::new("+38599000004", 5204);
    let offer = trunk.sdp(trunk.rtp_port, "sendrecv");
    let inv = trunk.invite("999", "c4", Some(offer), &[]);
    sim.deliver(trunk.addr, &Message::Request(inv));
    let ok = sim.response(trunk.addr, 200);
    sim.deliver(trunk.addr, &Message::Request(trunk.ack(&ok, None)));
    assert_eq!(phase(&sim), ["menu"]);
    sim.advance(Duration::from_millis(6900));
    assert_eq!(phase(&sim), ["menu"]);
    sim.advance(Duration::from_millis(200));
    // Nobody registered: after the menu the call cannot be routed, or waits queued.
    let phases = phase(&sim);
    assert!(phases.is_empty() || phases == ["queued"], "{phases:?}");
}

/// RTP inactivity: a caller who sends no RTP is hung up after `media.rtp_timeout_s`.
#[tokio::test]
async fn silent_caller_is_hung_up_by_the_rtp_check() {
    let mut sim = Sim::new("", 29700).await;
    let mut trunk = Ua::new("+38599000005", 5205);
    let mut petra = Ua::new("petra", 5305);
    petra.register(&mut sim, "petra-secret");
    trunk_call(&mut sim, &mut trunk, "c5");
    let inv = sim.request(petra.addr, Method::Invite);
    sim.deliver(
        petra.addr,
        &Message::Response(petra.answer(&inv, 180, None)),
    );
    let start = sim.now;
    let bye = sim.request(trunk.addr, Method::Bye);
    let after = sim.now.saturating_duration_since(start);
    assert!(
        after >= Duration::from_secs(59) && after <= Duration::from_secs(61),
        "{after:?}"
    );
    assert_eq!(bye.call_id(), Some("c5"));
    sim.request(petra.addr, Method::Cancel);
    let records = sim.records().await;
    assert_eq!(records[0].outcome, Outcome::Abandoned);
}

/// A leg left behind is forgotten 128·T1 after it was given up when its INVITE never ends.
#[tokio::test]
async fn orphaned_leg_is_forgotten() {
    let mut sim = Sim::new("", 29800).await;
    let mut petra = Ua::new("petra", 5306);
    petra.register(&mut sim, "petra-secret");
    let mut trunk = Ua::new("+38599000006", 5206);
    let ok = trunk_call(&mut sim, &mut trunk, "c6");
    let inv = sim.request(petra.addr, Method::Invite);
    sim.deliver(
        petra.addr,
        &Message::Response(petra.answer(&inv, 180, None)),
    );
    sim.deliver(
        trunk.addr,
        &Message::Request(trunk.in_call(Method::Bye, &ok, &[])),
    );
    sim.request(petra.addr, Method::Cancel);
    assert_eq!(sim.calls.table_sizes()[6], 1, "one orphan");
    sim.advance(Duration::from_secs(65));
    assert_eq!(sim.calls.table_sizes()[6], 0, "forgotten after 128·T1");
    assert!(is_empty(&sim));
}

/// A second 2xx to the agent's INVITE from a fork (another To tag) is ACKed and BYEd; the
/// call stays with the dialog that answered first.
#[tokio::test]
async fn forked_second_2xx_is_acked_and_ended() {
    let mut sim = Sim::new("", 30700).await;
    let mut petra = Ua::new("petra", 5307);
    petra.register(&mut sim, "petra-secret");
    let mut trunk = Ua::new("+38599000007", 5207);
    trunk_call(&mut sim, &mut trunk, "c7");
    let inv = sim.request(petra.addr, Method::Invite);
    let sdp = petra.sdp(petra.rtp_port, "sendrecv");
    sim.deliver(
        petra.addr,
        &Message::Response(petra.answer(&inv, 200, Some(sdp.clone()))),
    );
    sim.request(petra.addr, Method::Ack);
    let mut fork = petra.clone();
    fork.tag = "fork-tag".into();
    sim.deliver(
        petra.addr,
        &Message::Response(fork.answer(&inv, 200, Some(sdp))),
    );
    let ack = sim.request(petra.addr, Method::Ack);
    let bye = sim.request(petra.addr, Method::Bye);
    for r in [&ack, &bye] {
        let to = r.to_hdr().unwrap();
        assert_eq!(to.tag(), Some("fork-tag"), "{r:?}");
    }
    assert_eq!(phase(&sim), ["talking"]);
}

/// The 200 to the caller is retransmitted until the ACK; without one the call ends after
/// 64·T1 and the caller gets a BYE.
#[tokio::test]
async fn missing_ack_ends_the_call_after_64_t1() {
    let mut sim = Sim::new("", 30800).await;
    sim.everyone_on_break();
    let mut trunk = Ua::new("+38599000008", 5208);
    let offer = trunk.sdp(trunk.rtp_port, "sendrecv");
    let inv = trunk.invite("100", "c8", Some(offer), &[]);
    sim.deliver(trunk.addr, &Message::Request(inv));
    let start = sim.now;
    sim.response(trunk.addr, 200);
    let again = sim.response(trunk.addr, 200);
    assert_eq!(again.call_id(), Some("c8"), "retransmitted");
    let bye = sim.request(trunk.addr, Method::Bye);
    let after = sim.now.saturating_duration_since(start);
    assert_eq!(after, Duration::from_secs(32), "{after:?}");
    assert_eq!(bye.call_id(), Some("c8"));
    assert!(is_empty(&sim));
    let records = sim.records().await;
    assert_eq!(records[0].outcome, Outcome::Failed);
}

/// A phone that registered over UDP with a Contact asking for TCP at its own address is
/// called over TCP (RFC 3263; the server opens the connection), with a TCP Via.
#[tokio::test]
async fn a_contact_asking_for_tcp_is_called_over_tcp() {
    let mut sim = Sim::new("", 32100).await;
    let mut petra = Ua::new("petra", 5331);
    petra.contact_params = ";transport=tcp".to_owned();
    petra.register(&mut sim, "petra-secret");
    let mut trunk = Ua::new("+38599000031", 5231);
    trunk_call(&mut sim, &mut trunk, "c31");
    let invite = sim
        .take_sent()
        .into_iter()
        .find(|s| matches!(&s.msg, Message::Request(r) if r.method == Method::Invite))
        .expect("INVITE to petra");
    assert_eq!(invite.to, petra.addr);
    assert_eq!(invite.transport, switchboard_sip::Transport::Tcp);
    let Message::Request(inv) = &invite.msg else {
        unreachable!()
    };
    let via = inv
        .headers
        .get(&switchboard_sipmsg::HeaderName::Via)
        .unwrap();
    assert!(via.starts_with("SIP/2.0/TCP "), "{via}");
}
