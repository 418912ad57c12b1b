//! Held places (PRODUCT §4 `[callbacks] in_queue_digit`): a caller who asks to be called back
//! keeps their place in the queue. The entry is no live call, yet it is served in arrival
//! order against callers who came later, never times out, and stays out of the queue's
//! waiting, answered and abandoned figures.

#![allow(clippy::unwrap_used)] // tests may unwrap

use switchboard_engine::*;

fn t(s: u64) -> Time {
    Time::from_secs(s)
}

/// Two operators on `orders` (max wait 30 s, no overflow, no wrap-up), both logged out, and
/// the `regional` queue the built-in chains name.
fn company() -> Engine {
    let op = |id: &str| AgentConfig {
        id: id.into(),
        name: id.to_uppercase(),
        skills: vec![("orders".into(), 5)],
        ..AgentConfig::default()
    };
    let cfg = EngineConfig {
        agents: vec![op("olga"), op("ivo")],
        queues: vec![
            QueueConfig {
                wrap_up_s: 0,
                max_wait_s: Some(30),
                ..QueueConfig::new("orders", "orders")
            },
            QueueConfig::new("regional", "regional"),
        ],
        default_wrap_up_s: 0,
        ..EngineConfig::default()
    };
    Engine::new(cfg).unwrap()
}

fn order(e: &Engine, at: u64, caller: &str) -> CallId {
    let q = e.queue_idx("orders");
    e.route_call(
        t(at),
        CallRequest {
            caller: caller.into(),
            purpose: Purpose::Order,
            queue: q,
            ..CallRequest::default()
        },
    )
    .unwrap()
}

fn set(e: &Engine, at: u64, id: &str, change: AgentStateChange) {
    e.set_agent_state(t(at), e.agent_idx(id).unwrap(), change)
        .unwrap();
}

fn events(e: &Engine) -> Vec<Event> {
    std::iter::from_fn(|| e.poll_event()).collect()
}

fn stats(e: &Engine, at: u64) -> QueueStats {
    e.stats(t(at), e.queue_idx("orders").unwrap()).unwrap()
}

/// Olga is busy with a call of her own, so callers wait; ivo is logged in but on a break.
fn busy_company() -> (Engine, CallId) {
    let e = company();
    set(&e, 0, "olga", AgentStateChange::Available);
    set(&e, 0, "ivo", AgentStateChange::Available);
    set(&e, 0, "ivo", AgentStateChange::Break { reason: None });
    let own = order(&e, 0, "+1");
    let o = e.next_offer().unwrap();
    e.report(t(0), own, Outcome::Answered(o.agents[0])).unwrap();
    (e, own)
}

#[test]
fn a_held_place_is_offered_before_a_caller_who_came_later() {
    let (e, own) = busy_company();
    let a = order(&e, 1, "+385100");
    let b = order(&e, 5, "+385200");
    assert_eq!(stats(&e, 6).waiting, 2);
    events(&e);

    e.hold_place(t(10), a).unwrap();
    assert!(e.is_held_place(a) && !e.is_held_place(b));
    let held: Vec<_> = events(&e)
        .into_iter()
        .filter_map(|ev| match ev {
            Event::PlaceHeld {
                call,
                queue,
                wait_ms,
                ..
            } => Some((call, queue, wait_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(held, vec![(a, e.queue_idx("orders"), 9_000)]);
    // Only B is a caller on the line; A's place is still ahead of B.
    let s = stats(&e, 12);
    assert_eq!((s.waiting, s.oldest_wait_ms), (1, 7_000));

    // Olga frees: the held place is offered first, and B only after it.
    e.hangup(t(20), own, HangupSide::Caller).unwrap();
    let o = e.next_offer().unwrap();
    assert_eq!(o.call, a, "the held place comes first");
    assert!(e.next_offer().is_none());
    let olga = e.agent_idx("olga").unwrap();
    e.report(t(21), a, Outcome::Answered(olga)).unwrap();
    e.hangup(t(80), a, HangupSide::Agent).unwrap();
    let o = e.next_offer().unwrap();
    assert_eq!(o.call, b);
    e.report(t(81), b, Outcome::Answered(olga)).unwrap();

    // The held place's answer is not a queue answer: only the caller served live counts.
    let s = stats(&e, 82);
    assert_eq!((s.answered, s.abandoned, s.waiting), (2, 0, 0), "{s:?}");
}

#[test]
fn a_held_place_outlives_the_queues_max_wait_and_is_not_an_abandon_when_given_up() {
    let (e, own) = busy_company();
    let a = order(&e, 1, "+385100");
    let b = order(&e, 1, "+385200");
    e.hold_place(t(2), a).unwrap();
    events(&e);
    // Both reached their 30 s bound: B (on the line) times out, the held place stays.
    e.handle_timeout(t(40));
    let timed_out: Vec<_> = events(&e)
        .into_iter()
        .filter_map(|ev| match ev {
            Event::CallTimedOut { call, .. } => Some(call),
            _ => None,
        })
        .collect();
    assert_eq!(timed_out, vec![b]);
    assert!(e.is_held_place(a));
    assert!(e.poll_timeout().is_none_or(|at| at > t(40)));

    // Offered to olga when she frees; she does not take it and the call-back is given up:
    // no abandon, and nothing is left in the engine.
    e.hangup(t(300), own, HangupSide::Caller).unwrap();
    let o = e.next_offer().unwrap();
    assert_eq!(o.call, a);
    e.report(t(301), a, Outcome::CallerGone).unwrap();
    assert!(!e.is_held_place(a));
    let s = stats(&e, 302);
    assert_eq!((s.abandoned, s.timed_out, s.waiting), (0, 1, 0), "{s:?}");
    assert_eq!(
        e.agent_state(e.agent_idx("olga").unwrap()).unwrap().kind(),
        AgentStateKind::Available
    );
}

#[test]
fn only_a_waiting_call_can_hold_its_place() {
    let e = company();
    set(&e, 0, "olga", AgentStateChange::Available);
    let ringing = order(&e, 0, "+1");
    assert_eq!(e.next_offer().unwrap().call, ringing);
    assert!(matches!(
        e.hold_place(t(1), ringing),
        Err(EngineError::WrongCallState { .. })
    ));
    let waiting = order(&e, 1, "+2");
    e.hold_place(t(2), waiting).unwrap();
    assert!(matches!(
        e.hold_place(t(3), waiting),
        Err(EngineError::WrongCallState { state: "held", .. })
    ));
    assert!(matches!(
        e.hold_place(t(3), CallId(999)),
        Err(EngineError::UnknownCall(_))
    ));
}
