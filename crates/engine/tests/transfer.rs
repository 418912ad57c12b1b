//! Blind transfers: routing a call to one named agent, role or queue.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use switchboard_engine::*;

fn engine() -> Engine {
    let mut cfg = EngineConfig::default();
    for (id, roles, skills) in [
        ("fina", vec!["finance"], vec![]),
        ("olga", vec!["operator"], vec![("orders", 5)]),
        ("oleg", vec!["operator"], vec![("orders", 3)]),
    ] {
        cfg.agents.push(AgentConfig {
            id: id.into(),
            name: id.into(),
            roles: roles.into_iter().map(String::from).collect(),
            skills: skills.into_iter().map(|(s, l)| (s.to_owned(), l)).collect(),
            substitute: None,
        });
    }
    cfg.queues.push(QueueConfig::new("orders", "orders"));
    cfg.queues.push(QueueConfig::new("regional", "regional"));
    let engine = Engine::new(cfg).unwrap();
    let t = Time::from_secs(1);
    for id in ["fina", "olga", "oleg"] {
        let a = engine.agent_idx(id).unwrap();
        engine
            .set_agent_state(t, a, AgentStateChange::Available)
            .unwrap();
    }
    engine
}

fn request() -> CallRequest {
    CallRequest {
        caller: "+385100".into(),
        purpose: Purpose::Order,
        client: None,
        priority: None,
        queue: None,
    }
}

fn offered(engine: &Engine) -> (Vec<String>, String) {
    let offer = engine.next_offer().expect("an offer");
    let agents = offer
        .agents
        .iter()
        .map(|a| engine.agent_id(*a).unwrap().to_owned())
        .collect();
    (agents, offer.route)
}

#[test]
fn transfer_to_a_role_offers_its_agents() {
    let e = engine();
    // An unknown caller would go to department heads; the transfer names finance.
    e.route_call_to(Time::from_secs(2), request(), &Step::Role("finance".into()))
        .unwrap();
    let (agents, route) = offered(&e);
    assert_eq!(agents, vec!["fina"]);
    assert_eq!(route, "role:finance(fina)");
}

#[test]
fn transfer_to_an_agent_offers_only_that_agent() {
    let e = engine();
    e.route_call_to(Time::from_secs(2), request(), &Step::Agent("oleg".into()))
        .unwrap();
    let (agents, route) = offered(&e);
    assert_eq!(agents, vec!["oleg"]);
    assert!(route.starts_with("agent:oleg"), "{route}");
}

#[test]
fn transfer_to_a_queue_uses_its_skill_order() {
    let e = engine();
    e.route_call_to(Time::from_secs(2), request(), &Step::Queue("orders".into()))
        .unwrap();
    let (agents, route) = offered(&e);
    assert_eq!(agents, vec!["olga"], "higher skill level first");
    assert!(route.starts_with("queue:orders(olga)"), "{route}");
}

#[test]
fn transfer_to_an_unknown_target_is_an_error() {
    let e = engine();
    for target in [
        Step::Role("astronaut".into()),
        Step::Agent("nobody".into()),
        Step::Queue("nowhere".into()),
    ] {
        assert!(matches!(
            e.route_call_to(Time::from_secs(2), request(), &target),
            Err(EngineError::BadValue { .. })
        ));
    }
    assert!(e.next_offer().is_none());
}

#[test]
fn transfer_to_a_role_no_chain_uses_rings_its_members_in_order() {
    let e = engine();
    // `operator` appears in no route chain, so it has no availability index.
    e.route_call_to(
        Time::from_secs(2),
        request(),
        &Step::Role("operator".into()),
    )
    .unwrap();
    let (agents, route) = offered(&e);
    assert_eq!(agents, vec!["olga"]);
    assert!(route.contains("role:operator(olga)"), "{route}");
}
