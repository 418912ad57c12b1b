//! The company's routing rules (PRODUCT §2 rules 3–11), strategies, priorities, wrap-up,
//! overflow, statistics and events, through the engine's public API in virtual time.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::collections::BTreeSet;

use switchboard_engine::*;

fn agent(id: &str, roles: &[&str], skills: &[(&str, u8)]) -> AgentConfig {
    AgentConfig {
        id: id.into(),
        name: id.to_uppercase(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        skills: skills.iter().map(|(s, l)| ((*s).to_owned(), *l)).collect(),
        substitute: None,
    }
}

fn queue(name: &str, strategy: Strategy) -> QueueConfig {
    QueueConfig {
        strategy,
        wrap_up_s: 0,
        ..QueueConfig::new(name, name)
    }
}

fn cfg(agents: Vec<AgentConfig>) -> EngineConfig {
    EngineConfig {
        agents,
        queues: vec![
            queue("orders", Strategy::LongestIdle),
            queue("regional", Strategy::LongestIdle),
        ],
        ..EngineConfig::default()
    }
}

/// The company of PRODUCT §2: operators, key-account managers, heads, finance, quality.
fn company() -> Engine {
    let mut agents = vec![
        agent("olga", &["operator"], &[("orders", 5)]),
        agent("omar", &["operator"], &[("orders", 5), ("regional", 5)]),
        agent("ana", &["key_account_manager"], &[]),
        agent("marko", &["key_account_manager"], &[]),
        agent("kira", &["key_account_manager"], &[]),
        agent("wes", &["head_of_wholesale"], &[]),
        agent("sam", &["head_of_sales", "department_head"], &[]),
        agent("fin", &["finance"], &[]),
        agent("qa", &["quality"], &[]),
    ];
    agents[2].substitute = Some("marko".into());
    Engine::new(cfg(agents)).unwrap()
}

fn t(s: u64) -> Time {
    Time::from_secs(s)
}

fn idx(e: &Engine, id: &str) -> AgentIdx {
    e.agent_idx(id).unwrap()
}

fn login_all(e: &Engine, now: Time) {
    for a in 0..e.agent_count() {
        e.set_agent_state(now, AgentIdx(a as u32), AgentStateChange::Available)
            .unwrap();
    }
}

fn set(e: &Engine, id: &str, change: AgentStateChange) {
    e.set_agent_state(t(1), idx(e, id), change).unwrap();
}

fn client(t: ClientType, manager: Option<&str>, debt: u64) -> Client {
    Client {
        number: "+1".into(),
        name: "c".into(),
        client_type: t,
        manager: manager.map(Into::into),
        region: None,
        overdue_debt: debt,
    }
}

fn call(e: &Engine, now: Time, c: Option<Client>, purpose: Purpose) -> CallId {
    e.route_call(
        now,
        CallRequest {
            caller: "+1".into(),
            purpose,
            client: c,
            priority: None,
            queue: None,
        },
    )
    .unwrap()
}

fn offered_to(e: &Engine) -> Vec<String> {
    let o = e.next_offer().expect("an offer");
    o.agents
        .iter()
        .map(|&a| e.agent_id(a).unwrap().to_owned())
        .collect()
}

/// Answers and ends the next offer after `talk` seconds; returns the agent.
fn serve(e: &Engine, at: u64, talk: u64) -> String {
    let o = e.next_offer().expect("an offer");
    let a = o.agents[0];
    e.report(t(at), o.call, Outcome::Answered(a)).unwrap();
    e.hangup(t(at + talk), o.call, HangupSide::Caller).unwrap();
    e.agent_id(a).unwrap().to_owned()
}

// ---- PRODUCT §2 rules 3–9 -----------------------------------------------------------

#[test]
fn rule3_operators_take_orders_from_ordinary_clients() {
    let e = company();
    login_all(&e, t(1));
    for ty in [
        ClientType::Retail,
        ClientType::Marketer,
        ClientType::OwnOutlet,
    ] {
        let c = call(&e, t(2), Some(client(ty, Some("ana"), 0)), Purpose::Order);
        let o = e.next_offer().unwrap();
        assert_eq!(o.queue, e.queue_idx("orders"));
        assert!(o.route.starts_with("queue:orders("), "{}", o.route);
        e.report(t(2), c, Outcome::CallerGone).unwrap();
    }
    // Information calls of ordinary clients go to the order desk too.
    call(
        &e,
        t(3),
        Some(client(ClientType::Retail, None, 0)),
        Purpose::Information,
    );
    assert!(["olga", "omar"].contains(&offered_to(&e)[0].as_str()));
}

#[test]
fn rule4_key_clients_go_to_their_manager_then_other_kams_then_head_of_wholesale() {
    let e = company();
    login_all(&e, t(1));
    let key = || Some(client(ClientType::Key, Some("ana"), 0));
    call(&e, t(2), key(), Purpose::Order);
    let o = e.next_offer().unwrap();
    assert_eq!(o.route, "assigned_manager(ana)");
    e.report(t(2), o.call, Outcome::Answered(idx(&e, "ana")))
        .unwrap();
    // ana busy → another key-account manager (longest idle: marko, then kira).
    call(&e, t(3), key(), Purpose::Order);
    let o = e.next_offer().unwrap();
    assert_eq!(
        o.route,
        "assigned_manager(ana: on_call) > role:key_account_manager(marko)"
    );
    e.report(t(3), o.call, Outcome::Answered(idx(&e, "marko")))
        .unwrap();
    call(&e, t(4), key(), Purpose::Order);
    assert_eq!(offered_to(&e), ["kira"]);
    // No key-account manager available → head of wholesale; never the order desk.
    call(&e, t(5), key(), Purpose::Order);
    let o = e.next_offer().unwrap();
    assert_eq!(
        o.route,
        "assigned_manager(ana: on_call) > role:key_account_manager(none available) > role:head_of_wholesale(wes)"
    );
}

#[test]
fn rule5_debtors_go_to_manager_or_finance_never_the_order_desk() {
    let e = company();
    login_all(&e, t(1));
    call(
        &e,
        t(2),
        Some(client(ClientType::Retail, Some("kira"), 100)),
        Purpose::Order,
    );
    assert_eq!(offered_to(&e), ["kira"]);
    call(
        &e,
        t(2),
        Some(client(ClientType::Retail, None, 100)),
        Purpose::Order,
    );
    let o = e.next_offer().unwrap();
    assert_eq!(
        o.route,
        "assigned_manager(none) > role:finance(fin)".replace("(none)", "(no manager)")
    );
    // Finance busy: the debtor waits for finance rather than reaching operators.
    let c = call(
        &e,
        t(3),
        Some(client(ClientType::Retail, None, 100)),
        Purpose::Order,
    );
    assert!(e.next_offer().is_none());
    e.report(t(4), o.call, Outcome::Answered(idx(&e, "fin")))
        .unwrap();
    e.hangup(t(5), o.call, HangupSide::Agent).unwrap();
    let o = e.next_offer().unwrap();
    assert_eq!(
        (o.call, offered_to_ids(&e, &o)),
        (c, vec!["fin".to_owned()])
    );
    // Debt only matters for orders: an information call takes the ordinary route.
    call(
        &e,
        t(6),
        Some(client(ClientType::Retail, None, 100)),
        Purpose::Information,
    );
    assert_eq!(e.next_offer().unwrap().queue, e.queue_idx("orders"));
}

fn offered_to_ids(e: &Engine, o: &Offer) -> Vec<String> {
    o.agents
        .iter()
        .map(|&a| e.agent_id(a).unwrap().to_owned())
        .collect()
}

#[test]
fn rule6_new_clients_go_to_department_heads() {
    let e = company();
    login_all(&e, t(1));
    call(&e, t(2), None, Purpose::Order);
    assert_eq!(offered_to(&e), ["sam"]);
    call(
        &e,
        t(2),
        Some(client(ClientType::New, None, 0)),
        Purpose::Order,
    );
    // sam is ringing: the new client waits for a department head, not the order desk.
    assert!(e.next_offer().is_none());
}

#[test]
fn rule7_regional_clients_go_to_regional_operators() {
    let e = company();
    login_all(&e, t(1));
    call(
        &e,
        t(2),
        Some(client(ClientType::Regional, None, 0)),
        Purpose::Order,
    );
    let o = e.next_offer().unwrap();
    assert_eq!(o.route, "queue:regional(omar)");
    call(
        &e,
        t(2),
        Some(client(ClientType::Regional, None, 0)),
        Purpose::Order,
    );
    assert!(e.next_offer().is_none(), "olga lacks the regional skill");
}

#[test]
fn rule8_other_purposes_go_to_manager_else_head_of_sales() {
    let e = company();
    login_all(&e, t(1));
    call(
        &e,
        t(2),
        Some(client(ClientType::Retail, Some("kira"), 0)),
        Purpose::Other,
    );
    assert_eq!(offered_to(&e), ["kira"]);
    set(&e, "wes", AgentStateChange::Absent { substitute: None });
    call(
        &e,
        t(3),
        Some(client(ClientType::Retail, Some("wes"), 0)),
        Purpose::Other,
    );
    let o = e.next_offer().unwrap();
    assert_eq!(
        o.route,
        "assigned_manager(wes: absent → no substitute) > role:head_of_sales(sam)"
    );
}

#[test]
fn rule9_an_absent_agents_clients_ring_the_substitute() {
    let e = company();
    login_all(&e, t(1));
    set(&e, "ana", AgentStateChange::Absent { substitute: None });
    call(
        &e,
        t(2),
        Some(client(ClientType::Key, Some("ana"), 0)),
        Purpose::Order,
    );
    let o = e.next_offer().unwrap();
    assert_eq!(o.route, "assigned_manager(ana: absent → marko)");
    e.report(t(2), o.call, Outcome::Answered(idx(&e, "marko")))
        .unwrap();
    // Substitute busy: the example trace.
    call(
        &e,
        t(3),
        Some(client(ClientType::Key, Some("ana"), 0)),
        Purpose::Order,
    );
    let o = e.next_offer().unwrap();
    assert_eq!(
        o.route,
        "assigned_manager(ana: absent → marko: on_call) > role:key_account_manager(kira)"
    );
    // An explicit substitute overrides the configured one; an absent agent never rings.
    set(
        &e,
        "wes",
        AgentStateChange::Absent {
            substitute: Some("sam".into()),
        },
    );
    call(
        &e,
        t(4),
        Some(client(ClientType::Retail, Some("wes"), 0)),
        Purpose::Other,
    );
    assert_eq!(offered_to(&e), ["sam"]);
}

#[test]
fn complaints_go_to_quality() {
    let e = company();
    login_all(&e, t(1));
    call(
        &e,
        t(2),
        Some(client(ClientType::Retail, Some("kira"), 0)),
        Purpose::Complaint,
    );
    assert_eq!(offered_to(&e), ["qa"]);
}

// ---- strategies ---------------------------------------------------------------------

fn strategy_engine(strategy: Strategy, levels: &[u8]) -> Engine {
    let agents = levels
        .iter()
        .enumerate()
        .map(|(i, &l)| agent(&format!("a{i}"), &["operator"], &[("orders", l)]))
        .collect();
    let mut c = cfg(agents);
    c.queues[0].strategy = strategy;
    let e = Engine::new(c).unwrap();
    login_all(&e, t(0));
    e
}

fn order(e: &Engine, at: u64) -> CallId {
    call(
        e,
        t(at),
        Some(client(ClientType::Retail, None, 0)),
        Purpose::Order,
    )
}

#[test]
fn longest_idle_offers_the_agent_idle_longest() {
    let e = strategy_engine(Strategy::LongestIdle, &[1, 1, 1]);
    // Each call ends at a later time: a0 at 10, a1 at 20, a2 at 30.
    for (i, end) in [10, 20, 30].into_iter().enumerate() {
        order(&e, end - 5);
        let o = e.next_offer().unwrap();
        assert_eq!(
            o.agents,
            vec![AgentIdx(i as u32)],
            "never-used agents go first"
        );
        e.report(t(end - 5), o.call, Outcome::Answered(o.agents[0]))
            .unwrap();
        e.hangup(t(end), o.call, HangupSide::Caller).unwrap();
    }
    order(&e, 40);
    assert_eq!(offered_to(&e), ["a0"]);
    order(&e, 40);
    assert_eq!(offered_to(&e), ["a1"]);
}

#[test]
fn higher_skill_level_is_offered_first() {
    for s in [
        Strategy::LongestIdle,
        Strategy::RoundRobin,
        Strategy::FewestCalls,
        Strategy::LeastTalkTime,
        Strategy::Random,
        Strategy::Linear,
        Strategy::RingAll,
    ] {
        let e = strategy_engine(s, &[1, 9, 5, 9]);
        order(&e, 1);
        let mut got = offered_to(&e);
        got.sort();
        let want: &[&str] = if s == Strategy::RingAll {
            &["a1", "a3"]
        } else if s == Strategy::Random {
            if got == ["a1"] { &["a1"] } else { &["a3"] }
        } else {
            &["a1"]
        };
        assert_eq!(got, want, "{s:?}");
    }
}

#[test]
fn round_robin_rotates() {
    let e = strategy_engine(Strategy::RoundRobin, &[1, 1, 1]);
    let got: Vec<String> = (0..4).map(|i| serve_one(&e, i)).collect();
    assert_eq!(got, ["a0", "a1", "a2", "a0"]);
}

fn serve_one(e: &Engine, at: u64) -> String {
    order(e, at * 10);
    serve(e, at * 10, 1)
}

#[test]
fn linear_always_starts_from_the_first() {
    let e = strategy_engine(Strategy::Linear, &[1, 1, 1]);
    let got: Vec<String> = (0..3).map(|i| serve_one(&e, i)).collect();
    assert_eq!(got, ["a0", "a0", "a0"]);
    order(&e, 100);
    order(&e, 100);
    assert_eq!(offered_to(&e), ["a0"]);
    assert_eq!(offered_to(&e), ["a1"]);
}

#[test]
fn fewest_calls_prefers_the_least_used() {
    let e = strategy_engine(Strategy::FewestCalls, &[1, 1, 1]);
    let mut got: Vec<String> = (0..3).map(|i| serve_one(&e, i)).collect();
    set(&e, "a0", AgentStateChange::Break { reason: None });
    got.extend((3..5).map(|i| serve_one(&e, i)));
    set(&e, "a0", AgentStateChange::Available);
    // a0 has 1 call, a1 and a2 have 2: a0, then a tie broken by index: a0 again.
    got.extend((5..7).map(|i| serve_one(&e, i)));
    assert_eq!(got, ["a0", "a1", "a2", "a1", "a2", "a0", "a0"]);
    assert_eq!(e.agents()[0].calls_today, 3);
}

#[test]
fn least_talk_time_prefers_the_least_talked() {
    let e = strategy_engine(Strategy::LeastTalkTime, &[1, 1]);
    order(&e, 1);
    assert_eq!(serve(&e, 1, 100), "a0");
    order(&e, 200);
    assert_eq!(serve(&e, 200, 10), "a1");
    // a0 talked 100 s, a1 10 s: a1 again.
    order(&e, 300);
    assert_eq!(serve(&e, 300, 10), "a1");
    order(&e, 400);
    assert_eq!(serve(&e, 400, 200), "a1");
    order(&e, 700);
    assert_eq!(serve(&e, 700, 1), "a0");
}

#[test]
fn random_is_seeded_and_spreads() {
    let run = |seed: u64| {
        let agents = (0..8)
            .map(|i| agent(&format!("a{i}"), &[], &[("orders", 1)]))
            .collect();
        let mut c = cfg(agents);
        c.queues[0].strategy = Strategy::Random;
        c.seed = seed;
        let e = Engine::new(c).unwrap();
        login_all(&e, t(0));
        (0..40).map(|i| serve_one(&e, i)).collect::<Vec<_>>()
    };
    let a = run(7);
    assert_eq!(a, run(7), "same seed, same choices");
    assert_ne!(a, run(8), "another seed, other choices");
    let distinct: BTreeSet<_> = a.iter().collect();
    assert!(distinct.len() >= 5, "{distinct:?}");
}

#[test]
fn ring_all_rings_everyone_and_the_first_answer_wins() {
    let e = strategy_engine(Strategy::RingAll, &[1, 1, 1]);
    let c = order(&e, 1);
    let o = e.next_offer().unwrap();
    assert_eq!(o.agents.len(), 3);
    e.report(t(2), c, Outcome::Answered(AgentIdx(1))).unwrap();
    assert_eq!(e.agent_state(AgentIdx(0)), Some(AgentState::Available));
    assert_eq!(e.agent_state(AgentIdx(1)), Some(AgentState::OnCall(c)));
    assert!(e.report(t(2), c, Outcome::Answered(AgentIdx(2))).is_err());
    // No answer from all: the call goes back and rings again.
    let c2 = order(&e, 3);
    let o = e.next_offer().unwrap();
    assert_eq!(o.agents.len(), 2);
    for a in &o.agents {
        e.report(t(4), c2, Outcome::NoAnswer(*a)).unwrap();
    }
    let o = e.next_offer().unwrap();
    assert_eq!((o.call, o.attempt), (c2, 2));
}

// ---- queue order, offers, timers ----------------------------------------------------

#[test]
fn priority_then_fifo() {
    let e = strategy_engine(Strategy::LongestIdle, &[1]);
    let first = order(&e, 1);
    assert!(e.next_offer().is_some()); // a0 rings for `first`
    let c1 = order(&e, 2);
    let c2 = order(&e, 3);
    let vip = e
        .route_call(
            t(4),
            CallRequest {
                caller: "+9".into(),
                purpose: Purpose::Order,
                client: Some(client(ClientType::Retail, None, 0)),
                priority: Some(5),
                queue: None,
            },
        )
        .unwrap();
    let c3 = order(&e, 5);
    e.report(t(6), first, Outcome::Answered(AgentIdx(0)))
        .unwrap();
    let mut served = Vec::new();
    let mut now = 7;
    e.hangup(t(now), first, HangupSide::Caller).unwrap();
    while let Some(o) = e.next_offer() {
        served.push(o.call);
        e.report(t(now), o.call, Outcome::Answered(AgentIdx(0)))
            .unwrap();
        now += 1;
        e.hangup(t(now), o.call, HangupSide::Caller).unwrap();
    }
    assert_eq!(served, [vip, c1, c2, c3]);
}

#[test]
fn no_answer_keeps_the_place_and_repeated_no_answers_set_not_ready() {
    let mut c = cfg(vec![
        agent("a0", &[], &[("orders", 1)]),
        agent("a1", &[], &[("orders", 1)]),
    ]);
    c.no_answer_limit = 2;
    let e = Engine::new(c).unwrap();
    e.set_agent_state(t(0), AgentIdx(0), AgentStateChange::Available)
        .unwrap();
    let c1 = order(&e, 1);
    let o = e.next_offer().unwrap();
    let c2 = order(&e, 2);
    e.report(t(3), c1, Outcome::NoAnswer(o.agents[0])).unwrap();
    // c1 is back at its original place (ahead of c2); a0 is the only agent, so it rings again.
    let o = e.next_offer().unwrap();
    assert_eq!((o.call, o.attempt), (c1, 2));
    e.report(t(4), c1, Outcome::NoAnswer(AgentIdx(0))).unwrap();
    assert_eq!(e.agent_state(AgentIdx(0)), Some(AgentState::NotReady));
    assert!(e.next_offer().is_none());
    // Another agent logs in and gets c1 first.
    e.set_agent_state(t(5), AgentIdx(1), AgentStateChange::Available)
        .unwrap();
    assert_eq!(e.next_offer().unwrap().call, c1);
    let _ = c2;
}

#[test]
fn wrap_up_returns_the_agent_after_wrap_up_s() {
    let mut c = cfg(vec![agent("a0", &[], &[("orders", 1)])]);
    c.queues[0].wrap_up_s = 5;
    let e = Engine::new(c).unwrap();
    login_all(&e, t(0));
    let c1 = order(&e, 1);
    e.next_offer().unwrap();
    e.report(t(1), c1, Outcome::Answered(AgentIdx(0))).unwrap();
    let c2 = order(&e, 2);
    e.hangup(t(10), c1, HangupSide::Agent).unwrap();
    assert_eq!(e.agent_state(AgentIdx(0)), Some(AgentState::WrapUp(c1)));
    assert_eq!(e.poll_timeout(), Some(t(15)));
    e.handle_timeout(t(14));
    assert!(e.next_offer().is_none());
    e.handle_timeout(t(15));
    assert_eq!(e.next_offer().unwrap().call, c2);
}

#[test]
fn overflow_after_max_wait_keeps_the_place() {
    let mut c = cfg(vec![
        agent("op", &["operator"], &[("orders", 1)]),
        agent("sam", &["head_of_sales"], &[]),
    ]);
    c.queues[0].max_wait_s = Some(30);
    c.queues[0].overflow = Some(Step::Role("head_of_sales".into()));
    let e = Engine::new(c).unwrap();
    e.set_agent_state(t(0), AgentIdx(0), AgentStateChange::Available)
        .unwrap();
    let c0 = order(&e, 0);
    e.next_offer().unwrap();
    e.report(t(0), c0, Outcome::Answered(AgentIdx(0))).unwrap();
    let c1 = order(&e, 1);
    let c2 = order(&e, 2);
    e.handle_timeout(t(31));
    // c1 overflowed, but sam is logged out: nothing yet; c1 still first in `orders`.
    assert!(e.next_offer().is_none());
    e.hangup(t(40), c0, HangupSide::Caller).unwrap();
    let o = e.next_offer().unwrap();
    assert_eq!(o.call, c1, "the overflowed call kept its place");
    e.report(t(40), c1, Outcome::Answered(AgentIdx(0))).unwrap();
    e.handle_timeout(t(41));
    e.set_agent_state(t(42), AgentIdx(1), AgentStateChange::Available)
        .unwrap();
    let o = e.next_offer().unwrap();
    assert_eq!(o.call, c2);
    assert_eq!(o.route, "queue:orders(max wait) > role:head_of_sales(sam)");
    let s = e.stats(t(42), QueueIdx(0)).unwrap();
    assert_eq!((s.overflowed, s.entered), (2, 3));
}

/// Calls overlap (each waits while earlier ones ring and talk), so waiting lists are
/// scanned with several calls in them (by arrivals, by agents and by `stats`): a finished
/// call's record must still be freed.
#[test]
fn a_call_offered_on_arrival_counts_as_waiting_until_answered() {
    let e = strategy_engine(Strategy::LongestIdle, &[1]);
    let c = order(&e, 1);
    let o = e.next_offer().unwrap();
    assert_eq!(o.call, c);
    // Ringing since its arrival, it never entered the waiting list, yet the caller waits.
    let s = e.stats(t(4), QueueIdx(0)).unwrap();
    assert_eq!((s.entered, s.waiting, s.oldest_wait_ms), (1, 1, 3000));
    e.report(t(5), c, Outcome::Answered(o.agents[0])).unwrap();
    let s = e.stats(t(6), QueueIdx(0)).unwrap();
    assert_eq!((s.entered, s.answered, s.waiting), (1, 1, 0));
}

#[test]
fn a_call_offered_on_arrival_keeps_its_arrival_place_when_not_answered() {
    let mut c = cfg(vec![
        agent("a0", &["operator"], &[("orders", 1)]),
        agent("a1", &["operator"], &[("orders", 1)]),
    ]);
    c.no_answer_limit = 1;
    let e = Engine::new(c).unwrap();
    set(&e, "a0", AgentStateChange::Available);
    let first = order(&e, 1);
    let o = e.next_offer().unwrap();
    assert_eq!(
        (o.call, offered_to_ids(&e, &o)),
        (first, vec!["a0".to_owned()])
    );
    let second = order(&e, 2);
    assert!(e.next_offer().is_none());
    // a0 does not answer (and goes not_ready): `first` goes back to the place it had on
    // arrival, ahead of `second`, and is served first when a1 logs in.
    e.report(t(3), first, Outcome::NoAnswer(o.agents[0]))
        .unwrap();
    assert_eq!(e.stats(t(3), QueueIdx(0)).unwrap().waiting, 2);
    set(&e, "a1", AgentStateChange::Available);
    let o = e.next_offer().unwrap();
    assert_eq!((o.call, o.attempt), (first, 2));
    e.report(t(4), first, Outcome::Answered(o.agents[0]))
        .unwrap();
    e.report(t(5), second, Outcome::CallerGone).unwrap();
    e.hangup(t(6), first, HangupSide::Caller).unwrap();
    assert_eq!(e.active_calls(), 0);
    assert_eq!(e.stats(t(6), QueueIdx(0)).unwrap().waiting, 0);
}

#[test]
fn caller_gone_while_waiting_and_while_ringing() {
    let e = strategy_engine(Strategy::LongestIdle, &[1]);
    let c1 = order(&e, 1);
    e.next_offer().unwrap();
    let c2 = order(&e, 2);
    e.report(t(3), c2, Outcome::CallerGone).unwrap();
    e.report(t(4), c1, Outcome::CallerGone).unwrap();
    assert_eq!(e.agent_state(AgentIdx(0)), Some(AgentState::Available));
    assert!(e.next_offer().is_none());
    assert_eq!(e.active_calls(), 0);
    let s = e.stats(t(5), QueueIdx(0)).unwrap();
    assert_eq!((s.abandoned, s.waiting), (2, 0));
    assert!(matches!(
        e.report(t(6), c1, Outcome::CallerGone),
        Err(EngineError::UnknownCall(_))
    ));
}

#[test]
fn state_change_while_ringing_withdraws_the_offer() {
    let e = strategy_engine(Strategy::LongestIdle, &[1, 1]);
    let c = order(&e, 1);
    let o = e.next_offer().unwrap();
    e.set_agent_state(
        t(2),
        o.agents[0],
        AgentStateChange::Break {
            reason: Some("lunch".into()),
        },
    )
    .unwrap();
    let o2 = e.next_offer().unwrap();
    assert_eq!(o2.call, c);
    assert_ne!(o2.agents, o.agents);
    assert_eq!(
        e.agent_state(o.agents[0]),
        Some(AgentState::Break {
            reason: Some("lunch".into())
        })
    );
    e.report(t(3), c, Outcome::Answered(o2.agents[0])).unwrap();
    assert_eq!(
        e.set_agent_state(t(3), o2.agents[0], AgentStateChange::LoggedOut),
        Err(EngineError::AgentOnCall(o2.agents[0]))
    );
}

#[test]
fn stats_service_level_and_asa() {
    let e = strategy_engine(Strategy::LongestIdle, &[1]);
    let c1 = order(&e, 0);
    e.next_offer().unwrap();
    e.report(t(5), c1, Outcome::Answered(AgentIdx(0))).unwrap();
    let c2 = order(&e, 1);
    let c3 = order(&e, 2);
    e.hangup(t(60), c1, HangupSide::Caller).unwrap(); // c2 offered at 60 s
    e.report(t(61), c2, Outcome::Answered(AgentIdx(0))).unwrap();
    let s = e.stats(t(62), QueueIdx(0)).unwrap();
    assert_eq!((s.waiting, s.oldest_wait_ms), (1, 60_000));
    e.report(t(70), c3, Outcome::CallerGone).unwrap();
    let s = e.stats(t(70), QueueIdx(0)).unwrap();
    assert_eq!(
        (s.answered, s.answered_within_threshold, s.abandoned),
        (2, 1, 1)
    );
    assert_eq!(s.service_level(), Some(1.0 / 3.0));
    assert_eq!(s.asa_ms(), Some(32_500.0));
    assert_eq!(s.abandonment_rate(), Some(1.0 / 3.0));
    assert_eq!(s.agents_by_state[3], (AgentStateKind::OnCall, 1));
}

#[test]
fn config_errors_name_the_key() {
    let mut c = cfg(vec![agent("a", &[], &[])]);
    c.routing
        .insert(Class::Key, vec![Step::Queue("nope".into())]);
    let err = Engine::new(c).unwrap_err();
    assert!(
        err.to_string().starts_with("routing.key[0]: unknown queue"),
        "{err}"
    );
    let mut c = cfg(vec![]);
    c.queues.remove(1);
    let err = Engine::new(c).unwrap_err().to_string();
    assert!(
        err.contains("routing.regional[0]") && err.contains("built-in chain"),
        "{err}"
    );
    let mut c = cfg(vec![agent("a", &[], &[]), agent("a", &[], &[])]);
    assert!(Engine::new(c.clone()).is_err());
    c.agents.pop();
    c.agents[0].substitute = Some("ghost".into());
    assert!(
        Engine::new(c)
            .unwrap_err()
            .to_string()
            .contains("agents[0].substitute")
    );
}

#[test]
fn routing_override_is_used() {
    let mut c = cfg(vec![
        agent("kira", &[], &[("key_accounts", 3)]),
        agent("wes", &["head_of_wholesale"], &[]),
    ]);
    c.queues.push(queue("key_accounts", Strategy::LongestIdle));
    c.routing.insert(
        Class::Key,
        [
            "assigned_manager",
            "queue:key_accounts",
            "role:head_of_wholesale",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect(),
    );
    let e = Engine::new(c).unwrap();
    login_all(&e, t(0));
    call(
        &e,
        t(1),
        Some(client(ClientType::Key, None, 0)),
        Purpose::Order,
    );
    assert_eq!(
        e.next_offer().unwrap().route,
        "assigned_manager(no manager) > queue:key_accounts(kira)"
    );
}

#[test]
fn no_route_is_refused() {
    let mut c = cfg(vec![]);
    c.routing.insert(Class::Other, vec![Step::AssignedManager]);
    let e = Engine::new(c).unwrap();
    let r = e.route_call(
        t(0),
        CallRequest {
            caller: "1".into(),
            purpose: Purpose::Other,
            client: Some(client(ClientType::Retail, None, 0)),
            priority: None,
            queue: None,
        },
    );
    assert!(matches!(r, Err(EngineError::NoRoute(_))));
}

#[test]
fn events_describe_the_call() {
    let e = strategy_engine(Strategy::LongestIdle, &[1]);
    while e.poll_event().is_some() {}
    let c = order(&e, 1);
    let o = e.next_offer().unwrap();
    e.report(t(2), c, Outcome::Answered(o.agents[0])).unwrap();
    e.hangup(t(9), c, HangupSide::Agent).unwrap();
    let kinds: Vec<&str> = std::iter::from_fn(|| e.poll_event())
        .map(|ev| match ev {
            Event::CallEnqueued { .. } => "enqueued",
            Event::CallOffered { .. } => "offered",
            Event::CallAnswered { wait_ms: 1000, .. } => "answered",
            Event::CallEnded { talk_ms: 7000, .. } => "ended",
            Event::AgentStateChanged { .. } => "agent",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "enqueued", "agent", "offered", "agent", "answered", "agent", "ended"
        ]
    );
}
