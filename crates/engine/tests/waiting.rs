//! PRODUCT §3 "Waiting inside a chain" and "Agent answers that are not yes": who is waited
//! for and how long, the bound of every chain (`timeout`), chains that reach nobody
//! (`no_agent`), declines and abandons, and the daily reset on the engine's clock.

#![allow(clippy::unwrap_used)] // tests may unwrap

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

fn t(s: u64) -> Time {
    Time::from_secs(s)
}

/// Operators on `orders` (max wait 30 s, overflow to the head of sales), two key-account
/// managers, a head of sales, finance.
fn company(max_wait: Option<u32>, overflow: Option<&str>) -> Engine {
    let cfg = EngineConfig {
        agents: vec![
            agent("olga", &["operator"], &[("orders", 5)]),
            agent("ana", &["key_account_manager"], &[]),
            agent("kira", &["key_account_manager"], &[]),
            agent("sam", &["head_of_sales", "head_of_wholesale"], &[]),
            agent("fin", &["finance"], &[]),
        ],
        queues: vec![
            QueueConfig {
                wrap_up_s: 0,
                max_wait_s: max_wait,
                overflow: overflow.map(|s| s.parse().unwrap()),
                ..QueueConfig::new("orders", "orders")
            },
            QueueConfig::new("regional", "regional"),
        ],
        other_manager_wait_s: 60,
        step_wait_s: 120,
        max_wait_s: 300,
        default_wrap_up_s: 0,
        ..EngineConfig::default()
    };
    Engine::new(cfg).unwrap()
}

fn idx(e: &Engine, id: &str) -> AgentIdx {
    e.agent_idx(id).unwrap()
}

fn set(e: &Engine, at: u64, id: &str, change: AgentStateChange) {
    e.set_agent_state(t(at), idx(e, id), change).unwrap();
}

fn login(e: &Engine, ids: &[&str]) {
    for id in ids {
        set(e, 0, id, AgentStateChange::Available);
    }
}

fn client(ty: ClientType, manager: Option<&str>, debt: u64) -> Client {
    Client {
        number: "+1".into(),
        name: "c".into(),
        client_type: ty,
        manager: manager.map(Into::into),
        region: None,
        overdue_debt: debt,
    }
}

fn route(e: &Engine, at: u64, c: Client, purpose: Purpose) -> Result<CallId, EngineError> {
    e.route_call(
        t(at),
        CallRequest {
            caller: "+1".into(),
            purpose,
            client: Some(c),
            priority: None,
            queue: None,
        },
    )
}

fn offer(e: &Engine) -> (CallId, Vec<String>) {
    let o = e.next_offer().expect("an offer");
    let ids = o
        .agents
        .iter()
        .map(|&a| e.agent_id(a).unwrap().to_owned())
        .collect();
    (o.call, ids)
}

/// Makes `id` busy with a call of their own (answered at `at`).
fn busy(e: &Engine, at: u64, id: &str) -> CallId {
    let c = e
        .route_call_to(
            t(at),
            CallRequest {
                caller: "+9".into(),
                ..CallRequest::default()
            },
            &Step::Agent(id.into()),
        )
        .unwrap();
    let (call, agents) = offer(e);
    assert_eq!((call, agents), (c, vec![id.to_owned()]));
    e.report(t(at), c, Outcome::Answered(idx(e, id))).unwrap();
    c
}

fn events(e: &Engine) -> Vec<Event> {
    std::iter::from_fn(|| e.poll_event()).collect()
}

fn timed_out(e: &Engine) -> Vec<CallId> {
    events(e)
        .into_iter()
        .filter_map(|ev| match ev {
            Event::CallTimedOut { call, .. } => Some(call),
            _ => None,
        })
        .collect()
}

/// Fires every timer up to `until`, one deadline at a time.
fn run_until(e: &Engine, until: u64) {
    while let Some(at) = e.poll_timeout() {
        if at > t(until) {
            break;
        }
        e.handle_timeout(at);
    }
}

#[test]
fn rule4_a_busy_key_manager_is_skipped_at_once() {
    let e = company(None, None);
    login(&e, &["ana", "kira", "sam"]);
    busy(&e, 1, "ana");
    let c = route(
        &e,
        2,
        client(ClientType::Key, Some("ana"), 0),
        Purpose::Order,
    )
    .unwrap();
    let o = e.next_offer().unwrap();
    assert_eq!(o.call, c);
    assert_eq!(o.agents, vec![idx(&e, "kira")]);
    assert_eq!(
        o.route,
        "assigned_manager(ana: on_call) > role:key_account_manager(kira)"
    );
}

#[test]
fn rule5_a_busy_manager_of_a_debtor_is_skipped_at_once() {
    let e = company(None, None);
    login(&e, &["ana", "fin"]);
    busy(&e, 1, "ana");
    route(
        &e,
        2,
        client(ClientType::Retail, Some("ana"), 100),
        Purpose::Order,
    )
    .unwrap();
    assert_eq!(offer(&e).1, ["fin"]);
}

#[test]
fn rule8_a_busy_manager_is_waited_for_up_to_other_manager_wait_s() {
    let e = company(None, None);
    login(&e, &["ana", "sam"]);
    let first = busy(&e, 1, "ana");
    let other = || client(ClientType::Retail, Some("ana"), 0);
    // ana is only busy: the head of sales stays idle while the call waits for her ...
    let second = route(&e, 2, other(), Purpose::Other).unwrap();
    assert!(e.next_offer().is_none());
    assert_eq!(e.poll_timeout(), Some(t(62)));
    // ... and she gets it when she frees within the wait.
    e.hangup(t(30), first, HangupSide::Caller).unwrap();
    let (call, agents) = offer(&e);
    assert_eq!((call, agents), (second, vec!["ana".to_owned()]));
    e.report(t(30), second, Outcome::Answered(idx(&e, "ana")))
        .unwrap();
    // A third call waits 60 s for her, then the head of sales is offered it.
    let third = route(&e, 31, other(), Purpose::Other).unwrap();
    run_until(&e, 90);
    assert!(e.next_offer().is_none());
    run_until(&e, 91);
    let o = e.next_offer().unwrap();
    assert_eq!((o.call, o.agents.clone()), (third, vec![idx(&e, "sam")]));
    assert_eq!(
        o.route,
        "assigned_manager(ana: on_call) > role:head_of_sales(sam)"
    );
}

#[test]
fn rule8_an_absent_or_logged_out_manager_moves_on_at_once() {
    for change in [
        AgentStateChange::Absent { substitute: None },
        AgentStateChange::LoggedOut,
    ] {
        let e = company(None, None);
        login(&e, &["ana", "sam"]);
        set(&e, 1, "ana", change.clone());
        route(
            &e,
            2,
            client(ClientType::Retail, Some("ana"), 0),
            Purpose::Other,
        )
        .unwrap();
        assert_eq!(offer(&e).1, ["sam"], "{change:?}");
    }
}

#[test]
fn a_named_agent_who_is_busy_holds_the_call_for_step_wait_s() {
    let e = company(None, None);
    login(&e, &["ana"]);
    busy(&e, 1, "ana");
    let c = e
        .route_call_to(t(2), CallRequest::default(), &Step::Agent("ana".into()))
        .unwrap();
    run_until(&e, 121);
    assert!(timed_out(&e).is_empty());
    run_until(&e, 122);
    assert_eq!(timed_out(&e), vec![c]);
    assert_eq!(e.active_calls(), 1, "only ana's own call is left");
}

#[test]
fn a_chain_that_reaches_nobody_is_refused_as_no_agent() {
    // A debtor while no finance agent is logged in and the manager is absent.
    let e = company(None, None);
    login(&e, &["olga"]);
    set(&e, 1, "ana", AgentStateChange::Absent { substitute: None });
    let r = route(
        &e,
        2,
        client(ClientType::Retail, Some("ana"), 100),
        Purpose::Order,
    );
    assert!(matches!(r, Err(EngineError::NoRoute(_))), "{r:?}");
    assert_eq!(e.active_calls(), 0);
    // An agent on a break is present: the call waits for them (bounded).
    set(&e, 3, "fin", AgentStateChange::Break { reason: None });
    let c = route(
        &e,
        4,
        client(ClientType::Retail, Some("ana"), 100),
        Purpose::Order,
    )
    .unwrap();
    assert!(e.next_offer().is_none());
    run_until(&e, 4 + 120);
    assert_eq!(
        timed_out(&e),
        vec![c],
        "role:finance is the last step: step_wait_s"
    );
}

#[test]
fn a_queue_holds_until_its_max_wait_then_times_out_without_overflow() {
    let e = company(Some(30), None);
    login(&e, &["olga"]);
    let talking = busy(&e, 1, "olga");
    let c = route(&e, 2, client(ClientType::Retail, None, 0), Purpose::Order).unwrap();
    run_until(&e, 31);
    assert!(timed_out(&e).is_empty());
    run_until(&e, 32);
    assert_eq!(timed_out(&e), vec![c]);
    let stats = e.stats(t(32), QueueIdx(0)).unwrap();
    assert_eq!((stats.waiting, stats.timed_out), (0, 1));
    assert_eq!(e.active_calls(), 1, "only olga's own call is left");
    e.hangup(t(40), talking, HangupSide::Caller).unwrap();
    assert!(
        e.next_offer().is_none(),
        "the timed-out call is never offered"
    );
}

#[test]
fn a_queue_overflows_at_max_wait_and_the_overflow_step_is_bounded_too() {
    let e = company(Some(30), Some("role:head_of_sales"));
    login(&e, &["olga", "sam"]);
    busy(&e, 1, "olga");
    busy(&e, 1, "sam");
    let c = route(&e, 2, client(ClientType::Retail, None, 0), Purpose::Order).unwrap();
    run_until(&e, 32);
    assert!(
        events(&e)
            .iter()
            .any(|ev| matches!(ev, Event::CallOverflowed { call, .. } if *call == c))
    );
    run_until(&e, 32 + 119);
    assert!(timed_out(&e).is_empty());
    run_until(&e, 32 + 120);
    assert_eq!(timed_out(&e), vec![c]);
    assert_eq!(e.stats(t(200), QueueIdx(0)).unwrap().timed_out, 1);
}

#[test]
fn a_chain_without_a_queue_is_bounded_by_routing_max_wait_s() {
    // key: assigned_manager (skipped at once) > role:kam > role:head_of_wholesale, all busy;
    // the last step alone would hold 120 s.
    let cfg = EngineConfig {
        max_wait_s: 50,
        ..EngineConfig::default()
    };
    let mut cfg = cfg;
    cfg.agents = vec![
        agent("ana", &["key_account_manager"], &[]),
        agent("wes", &["head_of_wholesale"], &[]),
    ];
    cfg.queues = vec![
        QueueConfig::new("orders", "orders"),
        QueueConfig::new("regional", "regional"),
    ];
    let e = Engine::new(cfg).unwrap();
    login(&e, &["ana", "wes"]);
    busy(&e, 1, "ana");
    busy(&e, 1, "wes");
    let c = route(
        &e,
        10,
        client(ClientType::Key, Some("ana"), 0),
        Purpose::Order,
    )
    .unwrap();
    run_until(&e, 59);
    assert!(timed_out(&e).is_empty());
    run_until(&e, 60);
    assert_eq!(timed_out(&e), vec![c]);
}

#[test]
fn a_ringing_call_is_not_timed_out_until_its_offer_ends() {
    let e = company(Some(30), None);
    login(&e, &["olga"]);
    let talking = busy(&e, 1, "olga");
    let c = route(&e, 2, client(ClientType::Retail, None, 0), Purpose::Order).unwrap();
    // olga frees at 31 and rings for the waiting call; the bound (32) passes while she rings.
    e.hangup(t(31), talking, HangupSide::Caller).unwrap();
    let (call, _) = offer(&e);
    assert_eq!(call, c);
    run_until(&e, 40);
    assert!(timed_out(&e).is_empty());
    assert_eq!(e.agent_state(idx(&e, "olga")), Some(AgentState::Ringing(c)));
    // She goes on a break instead of answering: the offer ends, nobody else can take the
    // call, and it is past its bound: it leaves as `timeout`.
    set(&e, 41, "olga", AgentStateChange::Break { reason: None });
    assert_eq!(timed_out(&e), vec![c]);
    assert_eq!(e.active_calls(), 0);
}

#[test]
fn a_decline_counts_as_a_no_answer_and_an_abandon_never_does() {
    let e = company(None, None);
    login(&e, &["olga"]);
    let order = || client(ClientType::Retail, None, 0);
    // Three callers hang up while olga's phone rings: she stays available.
    for i in 0..5 {
        let c = route(&e, 10 + i, order(), Purpose::Order).unwrap();
        assert_eq!(offer(&e).1, ["olga"]);
        e.report(t(10 + i), c, Outcome::CallerGone).unwrap();
    }
    assert_eq!(e.agent_state(idx(&e, "olga")), Some(AgentState::Available));
    // Three declines (486/603/480) in a row: not_ready, as three ring timeouts would.
    for i in 0..3 {
        let c = route(&e, 20 + i, order(), Purpose::Order).unwrap();
        assert_eq!(offer(&e).1, ["olga"]);
        e.report(t(20 + i), c, Outcome::Rejected(idx(&e, "olga")))
            .unwrap();
        if i < 2 {
            // Back to olga (nobody else): decline again on the next round.
            let (again, _) = offer(&e);
            assert_eq!(again, c);
            e.report(t(20 + i), c, Outcome::CallerGone).unwrap();
        }
    }
    assert_eq!(e.agent_state(idx(&e, "olga")), Some(AgentState::NotReady));
}

#[test]
fn daily_counters_reset_at_the_scheduled_time_on_the_engine_clock() {
    let e = company(None, None);
    login(&e, &["olga"]);
    let c = route(&e, 1, client(ClientType::Retail, None, 0), Purpose::Order).unwrap();
    e.next_offer().unwrap();
    e.report(t(1), c, Outcome::Answered(idx(&e, "olga")))
        .unwrap();
    e.hangup(t(61), c, HangupSide::Caller).unwrap();
    let olga = |e: &Engine| e.agents().into_iter().find(|a| a.id == "olga").unwrap();
    assert_eq!((olga(&e).calls_today, olga(&e).talk_ms_today), (1, 60_000));
    e.schedule_daily_reset(t(86_400));
    e.handle_timeout(t(86_399));
    assert_eq!(olga(&e).calls_today, 1);
    events(&e);
    e.handle_timeout(t(86_400));
    assert_eq!((olga(&e).calls_today, olga(&e).talk_ms_today), (0, 0));
    assert!(
        events(&e)
            .iter()
            .any(|ev| matches!(ev, Event::DailyCountersReset { at } if *at == t(86_400)))
    );
}

#[test]
fn a_timeout_explains_every_step_it_reached() {
    let e = company(Some(30), Some("role:head_of_sales"));
    login(&e, &["olga", "sam"]);
    busy(&e, 1, "olga");
    busy(&e, 1, "sam");
    let c = route(&e, 2, client(ClientType::Retail, None, 0), Purpose::Order).unwrap();
    run_until(&e, 32 + 120);
    let routes: Vec<_> = events(&e)
        .into_iter()
        .filter_map(|ev| match ev {
            Event::CallTimedOut { call, route, .. } => Some((call, route)),
            _ => None,
        })
        .collect();
    assert_eq!(
        routes,
        [(
            c,
            "queue:orders(max wait) > role:head_of_sales(none available)".to_owned()
        )]
    );
}
