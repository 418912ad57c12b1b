//! Transaction behaviour of two endpoints in virtual time (RFC 3261 §17, RFC 6026).

use switchboard_sip::{Event, Transport, TxnKey, dialog};
use switchboard_sipmsg::{Message, Method, Response};

use crate::util::{Side, Sim, at_ms, ms};

fn deltas(times: &[u64]) -> Vec<u64> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

#[test]
fn timer_a_doubles_and_timer_b_times_out_after_64_t1() {
    let mut sim = Sim::new(Transport::Udp);
    sim.set_drop(|from, _| from == Side::A); // B never hears A
    let req = sim.request(Method::Invite, "call-a", 1);
    let txn = sim.a.send_request(sim.now, sim.b_peer.clone(), req);
    sim.run_until(at_ms(100_000));
    assert_eq!(
        sim.sent_at(Side::A, "INVITE"),
        vec![0, 500, 1500, 3500, 7500, 15_500, 31_500]
    );
    assert_eq!(
        deltas(&sim.sent_at(Side::A, "INVITE")),
        vec![500, 1000, 2000, 4000, 8000, 16_000]
    );
    let timeouts: Vec<_> = sim
        .a_events
        .iter()
        .filter(
            |(_, e)| matches!(e, Event::TransactionTimeout { txn: TxnKey::Client(k) } if *k == txn),
        )
        .map(|(t, _)| t.as_micros() / 1000)
        .collect();
    assert_eq!(timeouts, vec![32_000]);
    assert_eq!(sim.a.transaction_count(), (0, 0));
}

#[test]
fn timer_e_is_capped_at_t2_and_timer_f_times_out() {
    let mut sim = Sim::new(Transport::Udp);
    sim.set_drop(|from, _| from == Side::A);
    let req = sim.request(Method::Message, "call-e", 1);
    sim.a.send_request(sim.now, sim.b_peer.clone(), req);
    sim.run_until(at_ms(100_000));
    let sent = sim.sent_at(Side::A, "MESSAGE");
    assert_eq!(&sent[..6], &[0, 500, 1500, 3500, 7500, 11_500]);
    assert!(deltas(&sent)[3..].iter().all(|d| *d == 4000), "{sent:?}");
    assert!(sent.iter().all(|t| *t < 32_000));
    let timeouts: Vec<u64> = sim
        .a_events
        .iter()
        .filter(|(_, e)| matches!(e, Event::TransactionTimeout { .. }))
        .map(|(t, _)| t.as_micros() / 1000)
        .collect();
    assert_eq!(timeouts, vec![32_000]);
}

#[test]
fn timer_e_goes_to_t2_after_a_provisional() {
    let mut sim = Sim::new(Transport::Udp);
    // B's TU answers 100 and then never a final; A's retransmissions every T2 are absorbed
    // by B, which resends its provisional.
    let req = sim.request(Method::Message, "call-e2", 1);
    sim.a.send_request(sim.now, sim.b_peer.clone(), req);
    sim.deliver();
    let (txn, req) = sim.b_new_requests()[0].clone();
    sim.b
        .respond(
            sim.now,
            txn,
            Response::from_request(&req, 100, "Trying", None),
        )
        .unwrap();
    sim.run_until(at_ms(20_000));
    // The E armed in Trying (500 ms) still fires; from then on every T2 (§17.1.2.2).
    assert_eq!(
        sim.sent_at(Side::A, "MESSAGE"),
        vec![0, 500, 4500, 8500, 12_500, 16_500]
    );
    assert_eq!(sim.sent_at(Side::B, "100").len(), 6);
    assert_eq!(sim.b_new_requests().len(), 1);
}

#[test]
fn reliable_transport_never_retransmits() {
    let mut sim = Sim::new(Transport::Tcp);
    sim.set_drop(|from, _| from == Side::A);
    let req = sim.request(Method::Invite, "call-tcp", 1);
    sim.a.send_request(sim.now, sim.b_peer.clone(), req);
    sim.run_until(at_ms(100_000));
    assert_eq!(sim.sent_at(Side::A, "INVITE"), vec![0]);
    let timeouts: Vec<u64> = sim
        .a_events
        .iter()
        .filter(|(_, e)| matches!(e, Event::TransactionTimeout { .. }))
        .map(|(t, _)| t.as_micros() / 1000)
        .collect();
    assert_eq!(timeouts, vec![32_000]);
}

#[test]
fn timer_g_retransmits_final_until_timer_h_when_ack_is_lost() {
    let mut sim = Sim::new(Transport::Udp);
    sim.set_drop(|from, w| from == Side::A && w.label() == "ACK");
    let req = sim.request(Method::Invite, "call-g", 1);
    sim.a.send_request(sim.now, sim.b_peer.clone(), req);
    sim.deliver();
    let (txn, req) = sim.b_new_requests()[0].clone();
    let busy = Response::from_request(&req, 486, "Busy Here", Some("b1"));
    sim.b.respond(sim.now, txn, busy).unwrap();
    sim.run_until(at_ms(100_000));
    let finals = sim.sent_at(Side::B, "486");
    assert_eq!(&finals[..6], &[0, 500, 1500, 3500, 7500, 11_500]);
    assert!(
        deltas(&finals)[3..].iter().all(|d| *d == 4000),
        "{finals:?}"
    );
    assert!(finals.iter().all(|t| *t < 32_000));
    // A answered every copy with an ACK, but passed the 486 up only once.
    assert_eq!(sim.sent_at(Side::A, "ACK").len(), finals.len());
    let responses = sim
        .a_events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Response { resp, .. } if resp.status == 486))
        .count();
    assert_eq!(responses, 1);
    let h: Vec<u64> = sim
        .b_events
        .iter()
        .filter(
            |(_, e)| matches!(e, Event::TransactionTimeout { txn: TxnKey::Server(k) } if *k == txn),
        )
        .map(|(t, _)| t.as_micros() / 1000)
        .collect();
    assert_eq!(h, vec![32_000]);
}

#[test]
fn timers_d_and_i_end_invite_transactions_after_the_ack() {
    let mut sim = Sim::new(Transport::Udp);
    let req = sim.request(Method::Invite, "call-di", 1);
    sim.a.send_request(sim.now, sim.b_peer.clone(), req);
    sim.deliver();
    let (txn, req) = sim.b_new_requests()[0].clone();
    sim.run_until(at_ms(1000));
    sim.b
        .respond(
            sim.now,
            txn,
            Response::from_request(&req, 404, "Not Found", Some("b1")),
        )
        .unwrap();
    sim.deliver();
    assert_eq!(sim.sent_at(Side::A, "ACK"), vec![1000]);
    assert_eq!(sim.sent_at(Side::B, "404"), vec![1000], "ACK stops Timer G");
    // Timer I = T4 = 5 s at B; Timer D = 32 s at A.
    sim.run_until(at_ms(5999));
    assert_eq!(sim.b.transaction_count(), (1, 0));
    sim.run_until(at_ms(6000));
    assert_eq!(sim.b.transaction_count(), (0, 0));
    sim.run_until(at_ms(32_999));
    assert_eq!(sim.a.transaction_count(), (0, 1));
    sim.run_until(at_ms(33_000));
    assert_eq!(sim.a.transaction_count(), (0, 0));
    // A retransmitted 404 inside Timer D would have been re-ACKed without a second event.
    assert_eq!(
        sim.a_events
            .iter()
            .filter(|(_, e)| matches!(e, Event::Response { .. }))
            .count(),
        2 // 100 Trying and 404
    );
}

#[test]
fn timers_j_and_k_end_non_invite_transactions() {
    for (transport, j, k) in [(Transport::Udp, 32_000, 5000), (Transport::Tcp, 0, 0)] {
        let mut sim = Sim::new(transport);
        let req = sim.request(Method::Message, "call-jk", 1);
        sim.a.send_request(sim.now, sim.b_peer.clone(), req);
        sim.deliver();
        let (txn, req) = sim.b_new_requests()[0].clone();
        sim.b
            .respond(
                sim.now,
                txn,
                Response::from_request(&req, 200, "OK", Some("b1")),
            )
            .unwrap();
        sim.deliver();
        assert_eq!(sim.a.transaction_count(), (0, 1));
        assert_eq!(sim.b.transaction_count(), (1, 0));
        let mut a_end = None;
        let mut b_end = None;
        for t in (0..=40_000).step_by(500) {
            sim.run_until(at_ms(t));
            if a_end.is_none() && sim.a.transaction_count() == (0, 0) {
                a_end = Some(t);
            }
            if b_end.is_none() && sim.b.transaction_count() == (0, 0) {
                b_end = Some(t);
            }
        }
        assert_eq!(a_end, Some(k), "Timer K on {transport:?}");
        assert_eq!(b_end, Some(j), "Timer J on {transport:?}");
    }
}

#[test]
fn request_retransmission_is_absorbed_and_answered_with_last_response() {
    let mut sim = Sim::new(Transport::Udp);
    let req = sim.request(Method::Message, "call-r", 1);
    sim.a.send_request(sim.now, sim.b_peer.clone(), req);
    sim.deliver();
    let (txn, req) = sim.b_new_requests()[0].clone();
    // The TU thinks for 2 s: A retransmits at 0.5 and 1.5 s, B absorbs (Trying).
    sim.run_until(at_ms(2000));
    assert_eq!(sim.sent_at(Side::A, "MESSAGE"), vec![0, 500, 1500]);
    assert_eq!(sim.b_new_requests().len(), 1);
    assert!(sim.sent_at(Side::B, "200").is_empty());
    // The 200 is lost; A's next retransmission (3.5 s) gets it resent from Completed.
    sim.set_drop(|from, w| from == Side::B && w.label() == "200" && w.at.as_micros() < 3_000_000);
    sim.b
        .respond(
            sim.now,
            txn,
            Response::from_request(&req, 200, "OK", Some("b1")),
        )
        .unwrap();
    sim.run_until(at_ms(10_000));
    assert_eq!(sim.sent_at(Side::A, "MESSAGE"), vec![0, 500, 1500, 3500]);
    assert_eq!(sim.sent_at(Side::B, "200"), vec![2000, 3500]);
    assert_eq!(sim.b_new_requests().len(), 1);
    assert_eq!(sim.b.stats().retransmissions_absorbed, 3);
    let oks = sim
        .a_events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Response { resp, .. } if resp.status == 200))
        .count();
    assert_eq!(oks, 1);
}

#[test]
fn cancel_of_pending_invite() {
    let mut sim = Sim::new(Transport::Udp);
    let req = sim.request(Method::Invite, "call-c", 1);
    let invite = sim.a.send_request(sim.now, sim.b_peer.clone(), req);
    sim.deliver();
    let (txn, req) = sim.b_new_requests()[0].clone();
    sim.b
        .respond(
            sim.now,
            txn,
            Response::from_request(&req, 180, "Ringing", Some("b1")),
        )
        .unwrap();
    sim.run_until(at_ms(3000));
    let cancel = sim.a.cancel(sim.now, invite).unwrap();
    sim.deliver();
    // B answered the CANCEL itself and told the TU.
    let cancels: Vec<_> = sim
        .b_events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::CancelRequested { invite_txn, .. } => Some(*invite_txn),
            _ => None,
        })
        .collect();
    assert_eq!(cancels, vec![txn]);
    assert_eq!(sim.sent_at(Side::B, "200"), vec![3000]);
    // The TU ends the INVITE with 487; A ACKs it; B absorbs the ACK.
    sim.b
        .respond(
            sim.now,
            txn,
            Response::from_request(&req, 487, "Request Terminated", Some("b1")),
        )
        .unwrap();
    sim.run_until(at_ms(60_000));
    let a_finals: Vec<(switchboard_sip::ClientTxnKey, u16)> = sim
        .a_events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Response { txn, resp } if resp.status >= 200 => Some((*txn, resp.status)),
            _ => None,
        })
        .collect();
    assert_eq!(a_finals, vec![(cancel, 200), (invite, 487)]);
    assert_eq!(sim.sent_at(Side::A, "ACK"), vec![3000]);
    assert_eq!(
        sim.sent_at(Side::B, "487"),
        vec![3000],
        "ACK stopped Timer G"
    );
    assert!(
        !sim.b_events
            .iter()
            .any(|(_, e)| matches!(e, Event::AckReceived { .. })),
        "the ACK for a non-2xx is absorbed by the transaction"
    );
    // The CANCEL shares the INVITE's branch.
    let branch = |label: &str| {
        let w = sim.wire.iter().find(|w| w.label() == label).unwrap();
        match w.msg() {
            Message::Request(r) => r.top_via().unwrap().branch().unwrap().to_string(),
            Message::Response(_) => unreachable!(),
        }
    };
    assert_eq!(branch("INVITE"), branch("CANCEL"));
}

#[test]
fn cancel_before_any_provisional_waits_for_one() {
    let mut sim = Sim::new(Transport::Udp);
    // B's 100 Trying is lost, so A is still Calling when the TU cancels.
    sim.set_drop(|from, w| from == Side::B && w.label() == "100");
    let req = sim.request(Method::Invite, "call-c2", 1);
    let invite = sim.a.send_request(sim.now, sim.b_peer.clone(), req);
    sim.deliver();
    let cancel = sim.a.cancel(sim.now, invite).unwrap();
    sim.deliver();
    assert!(sim.sent_at(Side::A, "CANCEL").is_empty());
    sim.clear_drop();
    sim.run_until(at_ms(500)); // INVITE retransmitted → B resends 100 → CANCEL goes out
    assert_eq!(sim.sent_at(Side::A, "CANCEL"), vec![500]);
    let ok = sim.a_events.iter().any(
        |(_, e)| matches!(e, Event::Response { txn, resp } if *txn == cancel && resp.status == 200),
    );
    assert!(ok);
}

/// The INVITE timeouts A saw, with their times (ms).
fn invite_timeouts(sim: &Sim) -> Vec<(u64, switchboard_sip::ClientTxnKey)> {
    sim.a_events
        .iter()
        .filter_map(|(at, e)| match e {
            Event::TransactionTimeout {
                txn: TxnKey::Client(txn),
            } => Some((at.as_micros() / 1000, *txn)),
            _ => None,
        })
        .collect()
}

#[test]
fn cancelled_invite_without_final_response_ends_64_t1_after_the_cancel() {
    let mut sim = Sim::new(Transport::Udp);
    let req = sim.request(Method::Invite, "call-c3", 1);
    let invite = sim.a.send_request(sim.now, sim.b_peer.clone(), req);
    sim.deliver();
    let (txn, req) = sim.b_new_requests()[0].clone();
    sim.b
        .respond(
            sim.now,
            txn,
            Response::from_request(&req, 180, "Ringing", Some("b1")),
        )
        .unwrap();
    sim.run_until(at_ms(3000));
    // B's endpoint answers the CANCEL with 200, but its TU never sends the 487.
    let cancel = sim.a.cancel(sim.now, invite).unwrap();
    sim.run_until(at_ms(34_999));
    assert!(invite_timeouts(&sim).is_empty());
    assert_eq!(
        sim.a.transaction_count().1,
        1,
        "the INVITE waits for its final"
    );
    sim.run_until(at_ms(100_000));
    assert_eq!(invite_timeouts(&sim), vec![(35_000, invite)]);
    let cancel_ok = sim.a_events.iter().any(
        |(_, e)| matches!(e, Event::Response { txn, resp } if *txn == cancel && resp.status == 200),
    );
    assert!(cancel_ok);
    assert_eq!(
        sim.a.transaction_count().1,
        0,
        "no client transaction is left"
    );
    assert_eq!(sim.a.stats().transaction_timeouts, 1);
}

#[test]
fn invite_to_a_peer_silent_after_ringing_ends_64_t1_after_the_cancel_over_tcp_too() {
    for transport in [Transport::Udp, Transport::Tcp] {
        let mut sim = Sim::new(transport);
        let req = sim.request(Method::Invite, "call-c4", 1);
        let invite = sim.a.send_request(sim.now, sim.b_peer.clone(), req);
        sim.deliver();
        let (txn, req) = sim.b_new_requests()[0].clone();
        sim.b
            .respond(
                sim.now,
                txn,
                Response::from_request(&req, 180, "Ringing", Some("b1")),
            )
            .unwrap();
        sim.run_until(at_ms(1000));
        // From now on B loses everything it sends: the CANCEL is never answered either.
        sim.set_drop(|from, _| from == Side::B);
        sim.a.cancel(sim.now, invite).unwrap();
        // A second CANCEL keeps the first deadline.
        sim.run_until(at_ms(2000));
        let cancel = sim.a.cancel(sim.now, invite).unwrap();
        sim.run_until(at_ms(100_000));
        let timeouts = invite_timeouts(&sim);
        assert!(
            timeouts.contains(&(33_000, invite)),
            "{transport:?}: {timeouts:?}"
        );
        assert!(
            timeouts.contains(&(34_000, cancel)),
            "{transport:?}: the CANCEL itself ends on Timer F: {timeouts:?}"
        );
        assert_eq!(sim.a.transaction_count().1, 0, "{transport:?}");
    }
}

#[test]
fn deferred_cancel_arms_its_timeout_when_it_is_sent() {
    let mut sim = Sim::new(Transport::Udp);
    // B's first 100 Trying is lost, so the CANCEL waits; after that B's answers are all lost
    // except the 100 that lets the CANCEL go out at 500 ms.
    sim.set_drop(|from, w| from == Side::B && (w.label() != "100" || w.at < at_ms(500)));
    let req = sim.request(Method::Invite, "call-c5", 1);
    let invite = sim.a.send_request(sim.now, sim.b_peer.clone(), req);
    sim.deliver();
    let _cancel = sim.a.cancel(sim.now, invite).unwrap();
    sim.run_until(at_ms(100_000));
    assert_eq!(sim.sent_at(Side::A, "CANCEL")[0], 500);
    assert!(invite_timeouts(&sim).contains(&(32_500, invite)));
    assert_eq!(sim.a.transaction_count().1, 0);
}

#[test]
fn cancel_for_unknown_transaction_gets_481() {
    let mut sim = Sim::new(Transport::Udp);
    let mut req = sim.request(Method::Cancel, "call-x", 1);
    req.headers.push(
        switchboard_sipmsg::HeaderName::Via,
        "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKnothing",
    );
    sim.a.send_request(sim.now, sim.b_peer.clone(), req);
    sim.deliver();
    assert_eq!(sim.sent_at(Side::B, "481"), vec![0]);
}

#[test]
fn two_xx_is_retransmitted_until_ack_and_retransmitted_2xx_is_reacked() {
    let mut sim = Sim::new(Transport::Udp);
    // The first ACK is lost.
    let mut acks_seen = 0;
    sim.set_drop(move |from, w| {
        if from == Side::A && w.label() == "ACK" {
            acks_seen += 1;
            return acks_seen == 1;
        }
        false
    });
    let req = sim.request(Method::Invite, "call-2xx", 1);
    let invite = sim.a.send_request(sim.now, sim.b_peer.clone(), req.clone());
    sim.deliver();
    let (txn, breq) = sim.b_new_requests()[0].clone();
    let mut ok = Response::from_request(&breq, 200, "OK", Some("b1"));
    ok.headers.push(
        switchboard_sipmsg::HeaderName::Contact,
        "<sip:queue@10.0.0.2:5060>",
    );
    sim.b.respond(sim.now, txn, ok).unwrap();
    sim.deliver();
    // A's TU builds the ACK from its INVITE and the 2xx and sends it (lost).
    let resp = sim
        .a_events
        .iter()
        .find_map(|(_, e)| match e {
            Event::Response { txn, resp } if *txn == invite && resp.status == 200 => {
                Some(resp.clone())
            }
            _ => None,
        })
        .unwrap();
    let sent_invite = sim.a.client_request(invite).unwrap().clone();
    let ack = dialog::ack_for_2xx(&sent_invite, &resp).unwrap();
    assert_eq!(ack.uri.to_string(), "sip:queue@10.0.0.2:5060");
    sim.a.send_ack(sim.now, sim.b_peer.clone(), ack);
    sim.run_until(at_ms(60_000));
    // B retransmitted the 200 once (T1); A re-ACKed it on its own; B stopped.
    assert_eq!(sim.sent_at(Side::B, "200"), vec![0, 500]);
    assert_eq!(sim.sent_at(Side::A, "ACK"), vec![0, 500]);
    let two_xx_events = sim
        .a_events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Response { resp, .. } if resp.status == 200))
        .count();
    assert_eq!(two_xx_events, 1, "retransmitted 2xx absorbed at the UAC");
    let acks: Vec<_> = sim
        .b_events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::AckReceived { invite_txn, .. } => Some(*invite_txn),
            _ => None,
        })
        .collect();
    assert_eq!(acks, vec![Some(txn)]);
    assert!(
        !sim.b_events
            .iter()
            .any(|(_, e)| matches!(e, Event::AckTimeout { .. }))
    );
}

#[test]
fn retransmitted_invite_after_2xx_is_absorbed() {
    let mut sim = Sim::new(Transport::Udp);
    // Everything B sends in the first 600 ms is lost: A retransmits its INVITE at 500 ms.
    sim.set_drop(|from, w| from == Side::B && w.at.as_micros() < 600_000);
    let req = sim.request(Method::Invite, "call-rx", 1);
    sim.a.send_request(sim.now, sim.b_peer.clone(), req);
    sim.deliver();
    let (txn, breq) = sim.b_new_requests()[0].clone();
    sim.b
        .respond(
            sim.now,
            txn,
            Response::from_request(&breq, 200, "OK", Some("b1")),
        )
        .unwrap();
    sim.run_until(at_ms(2000));
    assert_eq!(sim.sent_at(Side::A, "INVITE"), vec![0, 500, 1500]);
    assert_eq!(
        sim.b_new_requests().len(),
        1,
        "INVITE retransmissions absorbed (Accepted)"
    );
    // The 2xx went out on B's own schedule only, never in reply to a retransmission.
    assert_eq!(sim.sent_at(Side::B, "200"), vec![0, 500, 1500]);
    assert_eq!(sim.b.stats().retransmissions_absorbed, 2);
}

#[test]
fn unacknowledged_2xx_doubles_to_t2_then_times_out() {
    let mut sim = Sim::new(Transport::Udp);
    sim.set_drop(|from, w| from == Side::A && w.label() == "ACK");
    let req = sim.request(Method::Invite, "call-noack", 1);
    sim.a.send_request(sim.now, sim.b_peer.clone(), req);
    sim.deliver();
    let (txn, breq) = sim.b_new_requests()[0].clone();
    sim.b
        .respond(
            sim.now,
            txn,
            Response::from_request(&breq, 200, "OK", Some("b1")),
        )
        .unwrap();
    sim.run_until(at_ms(100_000));
    let sent = sim.sent_at(Side::B, "200");
    assert_eq!(&sent[..5], &[0, 500, 1500, 3500, 7500]);
    assert!(deltas(&sent)[3..].iter().all(|d| *d == 4000), "{sent:?}");
    assert!(sent.iter().all(|t| *t < 32_000));
    let timeouts: Vec<u64> = sim
        .b_events
        .iter()
        .filter(|(_, e)| matches!(e, Event::AckTimeout { invite_txn } if *invite_txn == txn))
        .map(|(t, _)| t.as_micros() / 1000)
        .collect();
    assert_eq!(timeouts, vec![32_000]);
}

#[test]
fn in_dialog_bye_reaches_the_tu_and_completes() {
    let mut sim = Sim::new(Transport::Tcp);
    let req = sim.request(Method::Invite, "call-bye", 1);
    let invite = sim.a.send_request(sim.now, sim.b_peer.clone(), req);
    sim.deliver();
    let (txn, breq) = sim.b_new_requests()[0].clone();
    let mut ok = Response::from_request(&breq, 200, "OK", Some("b1"));
    ok.headers.push(
        switchboard_sipmsg::HeaderName::Contact,
        "<sip:queue@10.0.0.2:5060>",
    );
    sim.b.respond(sim.now, txn, ok.clone()).unwrap();
    sim.deliver();
    let resp = sim
        .a_events
        .iter()
        .find_map(|(_, e)| match e {
            Event::Response { resp, .. } if resp.status == 200 => Some(resp.clone()),
            _ => None,
        })
        .unwrap();
    let sent_invite = sim.a.client_request(invite).unwrap().clone();
    let mut d = switchboard_sip::Dialog::from_uac(&sent_invite, &resp).unwrap();
    let ack = dialog::ack_for_2xx(&sent_invite, &resp).unwrap();
    sim.a.send_ack(sim.now, sim.b_peer.clone(), ack);
    sim.run_for(ms(1000));
    let bye = d.request(Method::Bye);
    let bye_txn = sim.a.send_request(sim.now, sim.b_peer.clone(), bye);
    sim.deliver();
    let (btxn, breq) = sim.b_new_requests().last().cloned().unwrap();
    assert_eq!(breq.method, Method::Bye);
    let b_invite = sim.b_new_requests()[0].1.clone();
    let uas = switchboard_sip::Dialog::from_uas(&b_invite, &ok).unwrap();
    assert!(uas.matches(&breq));
    assert_eq!(uas.remote_target.to_string(), "sip:trunk@10.0.0.1:5060");
    sim.b
        .respond(
            sim.now,
            btxn,
            Response::from_request(&breq, 200, "OK", None),
        )
        .unwrap();
    sim.deliver();
    assert!(sim.a_events.iter().any(
        |(_, e)| matches!(e, Event::Response { txn, resp } if *txn == bye_txn && resp.status == 200)
    ));
}
