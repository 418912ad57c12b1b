//! Loom models of the engine's offer protocol. They run the real `Engine` code with loom's
//! atomics; the ordered maps are replaced by a linearizable stand-in loom can see (see
//! `src/sync.rs`). Run (release, bounded preemptions, separate target dir):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=3 \
//!     cargo test -p switchboard-engine --release --test loom
//! ```
#![cfg(loom)]
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::sync::Arc;

use loom::thread;
use switchboard_engine::*;

fn engine(agents: u32) -> Arc<Engine> {
    let cfg = EngineConfig {
        agents: (0..agents)
            .map(|i| AgentConfig {
                id: format!("a{i}"),
                name: format!("A{i}"),
                roles: vec![],
                skills: vec![("orders".into(), 1)],
                substitute: None,
            })
            .collect(),
        queues: vec![
            QueueConfig {
                wrap_up_s: 0,
                ..QueueConfig::new("orders", "orders")
            },
            QueueConfig::new("regional", "regional"),
        ],
        ..EngineConfig::default()
    };
    let e = Arc::new(Engine::new(cfg).unwrap());
    // Present but not taking calls: a call routed now waits for them (a chain whose agents
    // are all logged out is refused at once).
    for i in 0..agents {
        e.set_agent_state(t(), AgentIdx(i), AgentStateChange::Break { reason: None })
            .unwrap();
    }
    e
}

fn order(priority: Option<u8>) -> CallRequest {
    CallRequest {
        caller: "+1".into(),
        purpose: Purpose::Order,
        client: Some(Client {
            number: "+1".into(),
            name: "shop".into(),
            client_type: ClientType::Retail,
            manager: None,
            region: None,
            overdue_debt: 0,
        }),
        priority,
        queue: None,
    }
}

fn t() -> Time {
    Time::from_secs(1)
}

fn available(e: &Engine, a: u32) {
    e.set_agent_state(t(), AgentIdx(a), AgentStateChange::Available)
        .unwrap();
}

/// Every agent's claim matches the offers made: ringing agents are exactly the offered ones.
fn check_consistent(e: &Engine, offers: &[Offer]) {
    let mut claimed = Vec::new();
    for a in e.agents() {
        if let AgentState::Ringing(c) = a.state {
            claimed.push((a.idx, c));
        }
    }
    let mut offered: Vec<(AgentIdx, CallId)> = offers
        .iter()
        .flat_map(|o| o.agents.iter().map(move |a| (*a, o.call)))
        .collect();
    offered.sort();
    claimed.sort();
    assert_eq!(
        claimed, offered,
        "ringing agents are exactly the offered ones"
    );
    let mut calls: Vec<CallId> = offers.iter().map(|o| o.call).collect();
    calls.dedup();
    assert_eq!(calls.len(), offers.len(), "no call offered twice");
}

/// Two calls arrive at once for one available agent: the agent is claimed by exactly one.
#[test]
fn an_agent_is_never_claimed_by_two_calls() {
    loom::model(|| {
        let e = engine(1);
        available(&e, 0);
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let e = e.clone();
                thread::spawn(move || e.route_call(t(), order(None)).unwrap())
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let offers = e.poll_offers();
        assert_eq!(offers.len(), 1);
        check_consistent(&e, &offers);
        assert_eq!(e.stats(t(), QueueIdx(0)).unwrap().waiting, 2);
    });
}

/// One waiting call, two agents becoming available at once: one offer, one idle agent.
#[test]
fn a_call_is_never_offered_twice_at_once() {
    loom::model(|| {
        let e = engine(2);
        let call = e.route_call(t(), order(None)).unwrap();
        let hs: Vec<_> = (0..2)
            .map(|a| {
                let e = e.clone();
                thread::spawn(move || available(&e, a))
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let offers = e.poll_offers();
        assert_eq!(offers.len(), 1);
        assert_eq!(offers[0].call, call);
        check_consistent(&e, &offers);
        let idle = e
            .agents()
            .iter()
            .filter(|a| a.state == AgentState::Available)
            .count();
        assert_eq!(idle, 1);
    });
}

/// A call arriving while the only agent becomes available: never both left waiting
/// (no lost wake-up), never offered twice.
#[test]
fn no_call_is_lost_when_a_call_and_an_agent_meet() {
    loom::model(|| {
        let e = engine(1);
        let e1 = e.clone();
        let h = thread::spawn(move || e1.route_call(t(), order(None)).unwrap());
        available(&e, 0);
        let call = h.join().unwrap();
        let offers = e.poll_offers();
        assert_eq!(offers.len(), 1, "the call is offered exactly once");
        assert_eq!(offers[0].call, call);
        check_consistent(&e, &offers);
    });
}

/// The caller hangs up while an agent becomes available: the agent never stays claimed for
/// a gone call, and the call disappears exactly once.
#[test]
fn withdrawal_racing_an_offer_leaves_no_claimed_agent() {
    loom::model(|| {
        let e = engine(1);
        let call = e.route_call(t(), order(None)).unwrap();
        let e1 = e.clone();
        let h = thread::spawn(move || available(&e1, 0));
        e.report(t(), call, Outcome::CallerGone).unwrap();
        h.join().unwrap();
        assert_eq!(e.agent_state(AgentIdx(0)), Some(AgentState::Available));
        assert_eq!(e.active_calls(), 0);
        assert_eq!(e.stats(t(), QueueIdx(0)).unwrap().abandoned, 1);
        assert!(e.report(t(), call, Outcome::CallerGone).is_err());
    });
}

/// A no-answer racing a new call: each call is offered at most once at a time, agents and
/// offers agree, and the unanswered call keeps its original place: once the agent is free
/// again it is served before the newcomer.
#[test]
fn no_answer_puts_the_call_back_in_place() {
    loom::model(|| {
        let e = engine(1);
        available(&e, 0);
        let first = e.route_call(t(), order(None)).unwrap();
        let o = e.next_offer().unwrap();
        let e1 = e.clone();
        let h = thread::spawn(move || e1.route_call(t(), order(None)).unwrap());
        e.report(t(), first, Outcome::NoAnswer(o.agents[0]))
            .unwrap();
        let second = h.join().unwrap();
        let offers = e.poll_offers();
        if offers.len() != 1 {
            let evs: Vec<_> = std::iter::from_fn(|| e.poll_event()).collect();
            panic!("{offers:?} {:?} {evs:#?}", e.agents());
        }
        check_consistent(&e, &offers);
        if offers[0].call == second {
            // The agent went to the newcomer while `first` was still ringing; `first` is next.
            e.report(t(), second, Outcome::CallerGone).unwrap();
            let again = e.poll_offers();
            assert_eq!(again.len(), 1);
            assert_eq!(again[0].call, first);
        } else {
            assert_eq!(offers[0].call, first);
        }
    });
}

/// FIFO within a priority: calls enqueued one after the other are served in that order even
/// when the agent appears concurrently; a higher priority jumps ahead.
#[test]
fn fifo_within_a_priority() {
    loom::model(|| {
        let e = engine(1);
        let e1 = e.clone();
        let h = thread::spawn(move || {
            let a = e1.route_call(t(), order(None)).unwrap();
            let b = e1.route_call(t(), order(None)).unwrap();
            (a, b)
        });
        available(&e, 0);
        let (a, _b) = h.join().unwrap();
        let offers = e.poll_offers();
        assert_eq!(offers.len(), 1);
        assert_eq!(offers[0].call, a);
    });
}

/// Two threads flip the same agent (break / available) at once. The thread that takes the
/// agent out of `available` clears its index bits after its CAS, possibly after the other
/// thread made it available again and set them: it must then re-publish the agent, or a call
/// arriving later would find no available agent and wait next to an idle one.
#[test]
fn racing_state_flips_leave_an_available_agent_findable() {
    loom::model(|| {
        let e = engine(1);
        available(&e, 0);
        let e1 = e.clone();
        let flip_off = thread::spawn(move || {
            e1.set_agent_state(t(), AgentIdx(0), AgentStateChange::Break { reason: None })
                .unwrap();
        });
        let e2 = e.clone();
        let flip_on = thread::spawn(move || available(&e2, 0));
        flip_off.join().unwrap();
        flip_on.join().unwrap();
        let call = e.route_call(t(), order(None)).unwrap();
        let offers = e.poll_offers();
        match e.agent_state(AgentIdx(0)) {
            Some(AgentState::Available) => {
                panic!("call {call:?} waits while its only agent is available")
            }
            Some(AgentState::Ringing(c)) => {
                assert_eq!(c, call);
                assert_eq!(offers.len(), 1);
            }
            _ => assert!(offers.is_empty()),
        }
    });
}

/// Two threads flip the same agent while a call arrives and claims it: a state change that
/// takes the agent between the claim and the offer must leave the call waiting (and offered
/// again when the agent returns), never offered to an agent who is not ringing for it.
#[test]
fn a_state_change_racing_an_offer_never_strands_the_call() {
    loom::model(|| {
        let e = engine(1);
        available(&e, 0);
        let e1 = e.clone();
        let flip_off = thread::spawn(move || {
            let _ = e1.set_agent_state(t(), AgentIdx(0), AgentStateChange::Break { reason: None });
        });
        let e2 = e.clone();
        let flip_on = thread::spawn(move || available(&e2, 0));
        let call = e.route_call(t(), order(None)).unwrap();
        flip_off.join().unwrap();
        flip_on.join().unwrap();
        // The call is never answered, so the agent must end up ringing for it (the last
        // offer made) or on break with the call waiting.
        let last = e.poll_offers().last().map(|o| o.call);
        match e.agent_state(AgentIdx(0)) {
            Some(AgentState::Ringing(c)) => {
                assert_eq!(c, call);
                assert_eq!(last, Some(call));
                assert_eq!(e.stats(t(), QueueIdx(0)).unwrap().waiting, 1);
            }
            Some(AgentState::Break { .. }) => {
                // Offered at once on arrival or not, the call now waits in its queue.
                assert_eq!(e.stats(t(), QueueIdx(0)).unwrap().waiting, 1);
                e.report(t(), call, Outcome::CallerGone).unwrap();
                assert_eq!(e.active_calls(), 0);
            }
            s => panic!(
                "call {call:?} stranded while its only agent is {s:?}: {:?}",
                std::iter::from_fn(|| e.poll_event())
                    .map(|ev| format!("{ev:?}").chars().take(90).collect::<String>())
                    .collect::<Vec<_>>()
            ),
        }
    });
}
