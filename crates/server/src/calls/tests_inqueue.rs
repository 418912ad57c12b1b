//! The in-queue call-back in virtual time (`[callbacks] offer_after_s`, `in_queue_digit`),
//! with the digit sent as SIP INFO (the RFC 4733 path runs against SIPp in
//! `tests/it/inqueue_callback.rs`).

use std::time::Duration;

use switchboard_sipmsg::{HeaderName, Message, Method, Response};
use switchboard_store::{CallbackStatus, HangupSide, Outcome};

use super::sim::{Sim, Ua};
use crate::callbacks::PlaceNote;

/// The demo company with an outbound trunk (call-backs can be dialed) and the offer after 5 s.
async fn company(rtp_base: u16) -> Sim {
    let base = crate::config::DEMO_CONFIG.replacen(
        "name = \"pbx-main\"\n",
        "name = \"pbx-main\"\noutbound = \"sip:127.0.0.1:5999;transport=udp\"\n",
        1,
    );
    let mut sim = Sim::with_config(&base, "[callbacks]\noffer_after_s = 5\n", rtp_base).await;
    sim.everyone_on_break();
    sim
}

fn info(trunk: &mut Ua, ok: &Response, digit: char) -> Message {
    let mut info = trunk.in_call(Method::Info, ok, &[]);
    info.headers
        .push(HeaderName::ContentType, "application/dtmf-relay");
    info.body = format!("Signal={digit}\r\nDuration=160\r\n").into_bytes();
    Message::Request(info)
}

/// The digit counts only once the offer was heard and only the configured one; then the
/// caller's place is held in the engine, the dialer is told to store a pending call-back,
/// the caller hears the confirmation and gets a BYE, and the record says
/// `callback_requested` with the call-back's id.
#[tokio::test]
async fn info_dtmf_books_the_call_back_after_the_offer() {
    let mut sim = company(31200).await;
    let mut trunk = Ua::new("+38599000031", 5231);
    let offer = trunk.sdp(trunk.rtp_port, "sendrecv");
    let inv = trunk.invite("100", "t31", Some(offer), &[]);
    sim.deliver(trunk.addr, &Message::Request(inv));
    let ok = sim.response(trunk.addr, 200);
    sim.deliver(trunk.addr, &Message::Request(trunk.ack(&ok, None)));

    // Before the offer: pressing 1 does nothing.
    sim.deliver(trunk.addr, &info(&mut trunk, &ok, '1'));
    sim.response(trunk.addr, 200);
    assert!(sim.places.try_recv().is_err());
    assert!(sim.calls.places.is_empty());

    sim.advance(Duration::from_secs(5));
    let call = sim.calls.calls.values().next().expect("the call");
    assert!(call.callback_offered && call.callback_id.is_none());
    // Another digit does nothing either.
    sim.deliver(trunk.addr, &info(&mut trunk, &ok, '2'));
    sim.response(trunk.addr, 200);
    assert!(sim.places.try_recv().is_err());

    sim.deliver(trunk.addr, &info(&mut trunk, &ok, '1'));
    sim.response(trunk.addr, 200);
    let Ok(PlaceNote::Held(cb)) = sim.places.try_recv() else {
        panic!("no call-back booked");
    };
    // A caller unknown to the directory is a new client: their chain is a role, no queue
    // (the dialer then uses `[callbacks] queue`).
    assert_eq!(
        (cb.number.as_str(), cb.status, cb.queue.as_deref()),
        ("+38599000031", CallbackStatus::Pending, None)
    );
    assert!(cb.next_at.is_some_and(|t| t > cb.created_at));
    let held: Vec<_> = sim.calls.places.keys().copied().collect();
    assert_eq!(held.len(), 1);
    assert!(sim.calls.engine.is_held_place(held[0]));

    // The confirmation plays, then Switchboard hangs up.
    sim.take_sent();
    sim.advance(Duration::from_secs(4));
    assert!(
        sim.take_sent()
            .iter()
            .all(|s| !matches!(&s.msg, Message::Request(r) if r.method == Method::Bye))
    );
    let bye = sim.request(trunk.addr, Method::Bye);
    sim.deliver(
        trunk.addr,
        &Message::Response(trunk.answer(&bye, 200, None)),
    );
    assert_eq!(sim.calls.active(), 0);
    let records = sim.records().await;
    let rec = records
        .iter()
        .find(|r| r.sip_call_id == "t31")
        .expect("the record");
    assert_eq!(rec.outcome, Outcome::CallbackRequested);
    assert_eq!(rec.hangup_side, HangupSide::System);
    assert_eq!(rec.callback_id.as_deref(), Some(cb.id.as_str()));
    // The place stays held after the call ended.
    assert!(sim.calls.engine.is_held_place(held[0]));
}
