//! Property tests of the routing rules (PRODUCT §2–§3) over random agent populations, clients
//! and operation sequences.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::strategy::Strategy;
use switchboard_engine::*;

const ROLES: [&str; 7] = [
    "operator",
    "key_account_manager",
    "department_head",
    "head_of_wholesale",
    "head_of_sales",
    "finance",
    "quality",
];

#[derive(Debug, Clone)]
struct AgentSpec {
    roles: Vec<usize>,
    orders: Option<u8>,
    regional: Option<u8>,
    /// 0 available, 1 break, 2 logged out, 3 absent, 4 busy (on a call)
    state: u8,
    substitute: Option<usize>,
}

fn agent_spec(n: usize) -> impl Strategy<Value = AgentSpec> {
    (
        proptest::collection::btree_set(0..ROLES.len(), 0..3),
        proptest::option::of(1u8..10),
        proptest::option::of(1u8..10),
        prop_oneof![4 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8), 2 => Just(4u8)],
        proptest::option::of(0..n),
    )
        .prop_map(|(roles, orders, regional, state, substitute)| AgentSpec {
            roles: roles.into_iter().collect(),
            orders,
            regional,
            state,
            substitute,
        })
}

#[derive(Debug, Clone)]
struct ClientSpec {
    known: bool,
    ty: u8,
    manager: Option<usize>,
    debt: bool,
    purpose: u8,
}

fn client_spec(n: usize) -> impl Strategy<Value = ClientSpec> {
    (
        any::<bool>(),
        0u8..6,
        proptest::option::of(0..n),
        any::<bool>(),
        0u8..4,
    )
        .prop_map(|(known, ty, manager, debt, purpose)| ClientSpec {
            known,
            ty,
            manager,
            debt,
            purpose,
        })
}

fn population() -> impl Strategy<Value = (Vec<AgentSpec>, ClientSpec)> {
    (2usize..10).prop_flat_map(|n| (proptest::collection::vec(agent_spec(n), n), client_spec(n)))
}

fn id(i: usize) -> String {
    format!("ag{i}")
}

fn config(agents: &[AgentSpec]) -> EngineConfig {
    EngineConfig {
        agents: agents
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let mut skills = Vec::new();
                if let Some(l) = a.orders {
                    skills.push(("orders".to_owned(), l));
                }
                if let Some(l) = a.regional {
                    skills.push(("regional".to_owned(), l));
                }
                AgentConfig {
                    id: id(i),
                    name: id(i),
                    roles: a.roles.iter().map(|&r| ROLES[r].to_owned()).collect(),
                    skills,
                    substitute: a.substitute.filter(|&s| s != i).map(id),
                }
            })
            .collect(),
        queues: vec![
            QueueConfig::new("orders", "orders"),
            QueueConfig::new("regional", "regional"),
        ],
        ..EngineConfig::default()
    }
}

fn client(c: &ClientSpec) -> Option<Client> {
    c.known.then(|| Client {
        number: "+1".into(),
        name: "c".into(),
        client_type: match c.ty {
            0 => ClientType::Key,
            1 => ClientType::Regional,
            2 => ClientType::New,
            3 => ClientType::Marketer,
            4 => ClientType::OwnOutlet,
            _ => ClientType::Retail,
        },
        manager: c.manager.map(id),
        region: None,
        overdue_debt: if c.debt { 500 } else { 0 },
    })
}

fn purpose(p: u8) -> Purpose {
    match p {
        0 => Purpose::Order,
        1 => Purpose::Information,
        2 => Purpose::Other,
        _ => Purpose::Complaint,
    }
}

/// Builds the population: "busy" agents log in and take a call of their own (a transfer to
/// them by name), then the others move to their state.
fn build(agents: &[AgentSpec]) -> Engine {
    let e = Engine::new(config(agents)).unwrap();
    let t = Time::from_secs(1);
    for i in (0..agents.len()).filter(|&i| agents[i].state == 4) {
        e.set_agent_state(t, AgentIdx(i as u32), AgentStateChange::Available)
            .unwrap();
        let c = e
            .route_call_to(
                t,
                CallRequest {
                    caller: "setup".into(),
                    ..CallRequest::default()
                },
                &Step::Agent(id(i)),
            )
            .unwrap();
        let o = e.next_offer().unwrap();
        e.report(t, c, Outcome::Answered(o.agents[0])).unwrap();
    }
    for (i, a) in agents.iter().enumerate() {
        let change = match a.state {
            0 => AgentStateChange::Available,
            1 => AgentStateChange::Break { reason: None },
            2 => continue,
            3 => AgentStateChange::Absent { substitute: None },
            _ => continue,
        };
        e.set_agent_state(t, AgentIdx(i as u32), change).unwrap();
    }
    while e.next_offer().is_some() {}
    e
}

fn has_role(spec: &AgentSpec, role: &str) -> bool {
    spec.roles.iter().any(|&r| ROLES[r] == role)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn routing_rules_hold((agents, c) in population()) {
        let client = client(&c);
        let purpose = purpose(c.purpose);
        let class = classify(client.as_ref(), purpose);
        let e = build(&agents);
        let before = e.agents();
        let available: BTreeSet<usize> = before
            .iter()
            .filter(|a| a.state == AgentState::Available)
            .map(|a| a.idx.0 as usize)
            .collect();
        let absent: BTreeSet<usize> = before
            .iter()
            .filter(|a| matches!(a.state, AgentState::Absent { .. }))
            .map(|a| a.idx.0 as usize)
            .collect();
        let routed = e.route_call(
            Time::from_secs(2),
            CallRequest { caller: "+1".into(), purpose, client: client.clone(), priority: None, queue: None },
        );
        let manager = client.as_ref().and_then(|cl| cl.manager.as_deref()).and_then(|m| e.agent_idx(m)).map(|m| m.0 as usize);
        // The agent the `assigned_manager` step resolves to (substitute while absent).
        let effective_manager = manager.and_then(|m| {
            if absent.contains(&m) {
                agents[m].substitute.filter(|&s| s != m && !absent.contains(&s))
            } else {
                Some(m)
            }
        });
        let Ok(call) = routed else {
            // Only a chain that reaches nobody (all logged out or absent) is refused.
            prop_assert!(matches!(routed, Err(EngineError::NoRoute(_))));
            let eligible = |a: usize| {
                let spec = &agents[a];
                let role = |r: &str| has_role(spec, r);
                let manager = Some(a) == effective_manager;
                match class {
                    Class::Key => manager || role("key_account_manager") || role("head_of_wholesale"),
                    Class::Debt => manager || role("finance"),
                    Class::New => role("department_head"),
                    Class::Regional => spec.regional.is_some(),
                    Class::Standard => spec.orders.is_some(),
                    Class::Other => manager || role("head_of_sales"),
                    Class::Complaint => role("quality"),
                }
            };
            for a in (0..agents.len()).filter(|&a| eligible(a)) {
                prop_assert!(matches!(agents[a].state, 2 | 3), "refused while {a} is present: {:?}", agents[a]);
            }
            return Ok(());
        };
        let offer = e.next_offer();
        prop_assert!(e.next_offer().is_none(), "one call, at most one offer");
        let got: Vec<usize> = offer.iter().flat_map(|o| o.agents.iter().map(|a| a.0 as usize)).collect();
        for &a in &got {
            prop_assert!(available.contains(&a), "offered {a}, who was not available");
            prop_assert!(!absent.contains(&a), "an absent agent is never offered a call");
            prop_assert_eq!(e.agent_state(AgentIdx(a as u32)), Some(AgentState::Ringing(call)));
        }
        let any_available = |role: &str| available.iter().any(|&a| has_role(&agents[a], role));
        let orders_queue = e.queue_idx("orders");
        match class {
            Class::Key => {
                prop_assert!(offer.as_ref().is_none_or(|o| o.queue != orders_queue));
                if let Some(m) = effective_manager.filter(|m| available.contains(m)) {
                    prop_assert_eq!(&got, &vec![m], "an available manager gets their key client");
                } else if let Some(&a) = got.first() {
                    let kam = has_role(&agents[a], "key_account_manager");
                    prop_assert!(kam || has_role(&agents[a], "head_of_wholesale"));
                    if !kam {
                        prop_assert!(!any_available("key_account_manager"),
                            "head of wholesale only when no key-account manager is available");
                    }
                } else {
                    prop_assert!(!any_available("key_account_manager") && !any_available("head_of_wholesale"));
                }
            }
            Class::Debt => {
                prop_assert!(offer.as_ref().is_none_or(|o| o.queue != orders_queue),
                    "a debtor never reaches the order desk");
                for &a in &got {
                    prop_assert!(Some(a) == effective_manager || has_role(&agents[a], "finance"));
                }
                if got.is_empty() {
                    prop_assert!(!any_available("finance"));
                }
            }
            Class::New => {
                for &a in &got {
                    prop_assert!(has_role(&agents[a], "department_head"));
                }
                prop_assert_eq!(got.is_empty(), !any_available("department_head"));
            }
            Class::Regional | Class::Standard => {
                let (skill, name) = if class == Class::Regional { (1, "regional") } else { (0, "orders") };
                let skilled = |a: usize| if skill == 1 { agents[a].regional } else { agents[a].orders };
                if let Some(o) = &offer {
                    prop_assert_eq!(o.queue, e.queue_idx(name));
                }
                let best = available.iter().filter_map(|&a| skilled(a)).max();
                prop_assert_eq!(got.first().and_then(|&a| skilled(a)), best,
                    "the highest available skill level is offered first");
            }
            Class::Other => {
                for &a in &got {
                    prop_assert!(Some(a) == effective_manager || has_role(&agents[a], "head_of_sales"));
                }
            }
            Class::Complaint => {
                for &a in &got {
                    prop_assert!(has_role(&agents[a], "quality"));
                }
                prop_assert_eq!(got.is_empty(), !any_available("quality"));
            }
        }
        if let Some(o) = &offer {
            prop_assert!(!o.route.is_empty());
        }
    }

    /// Random operation sequences keep the protocol's invariants: ringing agents are exactly
    /// the outstanding offers (no agent rings without a live offer), no call is offered twice
    /// at once, no call waits in the queue while an agent with the skill is available, no
    /// call stays queued past its bound (the queue's max wait; a call ringing at its bound
    /// leaves when the offer ends), and a call is refused only when nobody is present.
    #[test]
    fn operation_sequences_keep_invariants(
        levels in proptest::collection::vec(1u8..4, 1..6),
        ops in proptest::collection::vec((0u8..11, 0usize..8), 1..160),
    ) {
        const BOUND_MS: u64 = 4_000;
        let n = levels.len();
        let cfg = EngineConfig {
            agents: levels.iter().enumerate().map(|(i, &l)| AgentConfig {
                id: id(i), name: id(i), roles: vec![], skills: vec![("orders".into(), l)], substitute: None,
            }).collect(),
            queues: vec![
                QueueConfig { wrap_up_s: 2, max_wait_s: Some(4), ..QueueConfig::new("orders", "orders") },
                QueueConfig::new("regional", "regional"),
            ],
            no_answer_limit: 2,
            ..EngineConfig::default()
        };
        let e = Engine::new(cfg).unwrap();
        let mut outstanding: BTreeMap<CallId, Vec<AgentIdx>> = BTreeMap::new();
        let mut talking: Vec<CallId> = Vec::new();
        let mut waiting: BTreeSet<CallId> = BTreeSet::new();
        let mut enqueued: BTreeMap<CallId, u64> = BTreeMap::new();
        let mut present: BTreeSet<AgentIdx> = BTreeSet::new();
        let mut now = 0u64;
        for (op, k) in ops {
            now += if op == 10 { 1_500 } else { 400 };
            let t = Time::from_millis(now);
            // The driver: every timer due by now fires first.
            while let Some(at) = e.poll_timeout().filter(|&at| at <= t) {
                e.handle_timeout(at);
            }
            while let Some(ev) = e.poll_event() {
                if let Event::CallTimedOut { call, .. } = ev {
                    prop_assert!(waiting.remove(&call), "a call timed out that was not waiting: {call:?}");
                }
            }
            for o in e.poll_offers() {
                prop_assert!(waiting.remove(&o.call), "offered a call that was not waiting: {:?}", o.call);
                prop_assert!(outstanding.insert(o.call, o.agents.clone()).is_none(), "offered twice at once");
            }
            let agent = AgentIdx((k % n) as u32);
            match op {
                0 | 1 => {
                    let routed = e.route_call(t, CallRequest {
                        caller: "+1".into(), purpose: Purpose::Order, priority: Some((k % 2) as u8), queue: None,
                        client: Some(Client { number: "+1".into(), name: "c".into(), client_type: ClientType::Retail,
                            manager: None, region: None, overdue_debt: 0 }),
                    });
                    match routed {
                        Ok(c) => {
                            prop_assert!(!present.is_empty(), "a call was queued with nobody present");
                            waiting.insert(c);
                            enqueued.insert(c, now);
                        }
                        Err(err) => {
                            prop_assert!(matches!(err, EngineError::NoRoute(_)), "{err:?}");
                            prop_assert!(present.is_empty(), "refused while {present:?} are present");
                        }
                    }
                }
                2 if e.set_agent_state(t, agent, AgentStateChange::Available).is_ok() => { present.insert(agent); }
                3 if e.set_agent_state(t, agent, AgentStateChange::Break { reason: None }).is_ok() => { present.insert(agent); }
                7 if e.set_agent_state(t, agent, AgentStateChange::LoggedOut).is_ok() => { present.remove(&agent); }
                4 | 8 => {
                    if let Some((&c, agents)) = outstanding.iter().nth(k % outstanding.len().max(1)) {
                        let a = agents[0];
                        let outcome = match (op, k % 3) {
                            (8, _) => Outcome::Rejected(a),
                            (_, 0) => Outcome::NoAnswer(a),
                            _ => Outcome::Answered(a),
                        };
                        if e.report(t, c, outcome).is_ok() {
                            outstanding.remove(&c);
                            if matches!(outcome, Outcome::Answered(_)) { talking.push(c); } else { waiting.insert(c); }
                        }
                    }
                }
                5 if !talking.is_empty() => {
                    let c = talking.remove(k % talking.len());
                    e.hangup(t, c, HangupSide::Caller).unwrap();
                }
                6 => {
                    let all: Vec<CallId> = waiting.iter().chain(outstanding.keys()).copied().collect();
                    if let Some(&c) = all.get(k % all.len().max(1)) {
                        e.report(t, c, Outcome::CallerGone).unwrap();
                        waiting.remove(&c);
                        outstanding.remove(&c);
                    }
                }
                _ => {}
            }
            // Outstanding offers whose agents were withdrawn by a state change went back.
            outstanding.retain(|c, agents| {
                let still = agents.iter().any(|a| e.agent_state(*a) == Some(AgentState::Ringing(*c)));
                if !still { waiting.insert(*c); }
                still
            });
            while let Some(ev) = e.poll_event() {
                if let Event::CallTimedOut { call, .. } = ev {
                    prop_assert!(waiting.remove(&call), "a call timed out that was not waiting: {call:?}");
                }
            }
            for o in e.poll_offers() {
                prop_assert!(waiting.remove(&o.call), "offered a call that was not waiting: {:?}", o.call);
                prop_assert!(outstanding.insert(o.call, o.agents.clone()).is_none(), "offered twice at once");
            }
            let mut ringing = BTreeSet::new();
            let mut any_available = false;
            for a in e.agents() {
                match a.state {
                    AgentState::Ringing(c) => { ringing.insert((c, a.idx)); }
                    AgentState::Available => any_available = true,
                    _ => {}
                }
            }
            let expected: BTreeSet<(CallId, AgentIdx)> = outstanding.iter().flat_map(|(c, v)| v.iter().map(move |a| (*c, *a))).collect();
            prop_assert_eq!(ringing, expected, "ringing agents are exactly the outstanding offers");
            prop_assert!(!any_available || waiting.is_empty(), "a call waits next to an available agent");
            for c in &waiting {
                let age = now - enqueued[c];
                prop_assert!(age <= BOUND_MS, "call {c:?} queued {age} ms, past its bound");
            }
            let s = e.stats(t, QueueIdx(0)).unwrap();
            prop_assert_eq!(s.waiting, waiting.len() + outstanding.len());
        }
    }
}
