//! Simulated days in virtual time: seeded Poisson arrivals and exponential talk times through
//! one queue of `c` identical agents, compared with the Erlang C (M/M/c) prediction of the
//! probability of waiting and of the service level.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use switchboard_engine::*;

/// Erlang C: probability that a call has to wait, for offered load `a` Erlang and `c` agents.
/// Computed from the Erlang B recursion, which stays numerically stable.
fn erlang_c(a: f64, c: u32) -> f64 {
    let mut b = 1.0;
    for k in 1..=c {
        b = a * b / (f64::from(k) + a * b);
    }
    let rho = a / f64::from(c);
    b / (1.0 - rho + rho * b)
}

/// Service level of M/M/c FCFS: P(wait <= t) = 1 - C(a, c) * exp(-(c - a) * t / mean_talk).
fn erlang_service_level(a: f64, c: u32, t_s: f64, mean_talk_s: f64) -> f64 {
    1.0 - erlang_c(a, c) * (-(f64::from(c) - a) * t_s / mean_talk_s).exp()
}

fn exp_ms(rng: &mut SmallRng, mean_ms: f64) -> u64 {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    (-u.ln() * mean_ms).round() as u64
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Hangup(u64),
    Arrival,
}

struct Day {
    calls: u64,
    waited: u64,
    within_threshold: u64,
    engine_sl: (u64, u64),
}

/// One simulated day: `hours` of arrivals at `a` Erlang with mean talk `mean_talk_s`.
fn simulate_day(seed: u64, a: f64, c: u32, mean_talk_s: f64, hours: u64) -> Day {
    let cfg = EngineConfig {
        agents: (0..c)
            .map(|i| AgentConfig {
                id: format!("op{i}"),
                name: format!("Operator {i}"),
                roles: vec!["operator".into()],
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
        service_level_threshold_s: 20,
        ..EngineConfig::default()
    };
    let engine = Engine::new(cfg).unwrap();
    for i in 0..c {
        engine
            .set_agent_state(Time::ZERO, AgentIdx(i), AgentStateChange::Available)
            .unwrap();
    }
    let mut rng = SmallRng::seed_from_u64(seed);
    let mean_talk_ms = mean_talk_s * 1000.0;
    let mean_gap_ms = mean_talk_ms / a;
    let end_ms = hours * 3_600_000;
    let mut events = BinaryHeap::new();
    let mut seq = 0u64;
    events.push(Reverse((exp_ms(&mut rng, mean_gap_ms), seq, Ev::Arrival)));
    let mut arrived: HashMap<CallId, u64> = HashMap::new();
    let mut day = Day {
        calls: 0,
        waited: 0,
        within_threshold: 0,
        engine_sl: (0, 0),
    };
    let client = Client {
        number: "+1".into(),
        name: "shop".into(),
        client_type: ClientType::Retail,
        manager: None,
        region: None,
        overdue_debt: 0,
    };
    while let Some(Reverse((at, _, ev))) = events.pop() {
        let now = Time::from_millis(at);
        match ev {
            Ev::Arrival => {
                let id = engine
                    .route_call(
                        now,
                        CallRequest {
                            caller: "+1".into(),
                            purpose: Purpose::Order,
                            client: Some(client.clone()),
                            priority: None,
                            queue: None,
                        },
                    )
                    .unwrap();
                arrived.insert(id, at);
                let next = at + exp_ms(&mut rng, mean_gap_ms);
                if next < end_ms {
                    seq += 1;
                    events.push(Reverse((next, seq, Ev::Arrival)));
                }
            }
            Ev::Hangup(call) => engine
                .hangup(now, CallId(call), HangupSide::Caller)
                .unwrap(),
        }
        // Agents answer at once; talk times are exponential.
        while let Some(offer) = engine.next_offer() {
            assert_eq!(offer.agents.len(), 1);
            engine
                .report(now, offer.call, Outcome::Answered(offer.agents[0]))
                .unwrap();
            let wait = at - arrived.remove(&offer.call).unwrap();
            day.calls += 1;
            day.waited += u64::from(wait > 0);
            day.within_threshold += u64::from(wait <= 20_000);
            seq += 1;
            events.push(Reverse((
                at + exp_ms(&mut rng, mean_talk_ms).max(1),
                seq,
                Ev::Hangup(offer.call.0),
            )));
        }
    }
    assert!(
        arrived.is_empty(),
        "every call was answered by the end of the day"
    );
    let s = engine
        .stats(Time::from_millis(end_ms), QueueIdx(0))
        .unwrap();
    assert_eq!(s.answered, day.calls);
    day.engine_sl = (s.answered_within_threshold, s.answered);
    day
}

#[test]
fn erlang_c_function_matches_published_values() {
    // Reference values: A = 2, c = 3 → 0.4444; A = 8, c = 10 → 0.4092.
    assert!((erlang_c(2.0, 3) - 4.0 / 9.0).abs() < 1e-9);
    assert!((erlang_c(8.0, 10) - 0.4092).abs() < 5e-4);
}

#[test]
fn two_simulated_weeks_agree_with_erlang_c() {
    let (a, c, mean_talk_s) = (8.0, 10, 60.0);
    let mut total = Day {
        calls: 0,
        waited: 0,
        within_threshold: 0,
        engine_sl: (0, 0),
    };
    for seed in 1..=14 {
        let d = simulate_day(seed, a, c, mean_talk_s, 24);
        total.calls += d.calls;
        total.waited += d.waited;
        total.within_threshold += d.within_threshold;
        total.engine_sl.0 += d.engine_sl.0;
        total.engine_sl.1 += d.engine_sl.1;
    }
    let p_wait = total.waited as f64 / total.calls as f64;
    let sl = total.within_threshold as f64 / total.calls as f64;
    let engine_sl = total.engine_sl.0 as f64 / total.engine_sl.1 as f64;
    let want_wait = erlang_c(a, c);
    let want_sl = erlang_service_level(a, c, 20.0, mean_talk_s);
    println!(
        "calls {} P(wait) {p_wait:.4} (Erlang C {want_wait:.4}) SL {sl:.4} (Erlang C {want_sl:.4})",
        total.calls
    );
    assert!(total.calls > 100_000, "{}", total.calls);
    assert!(
        (p_wait - want_wait).abs() <= 0.02,
        "P(wait) {p_wait} vs {want_wait}"
    );
    assert!((sl - want_sl).abs() <= 0.02, "SL {sl} vs {want_sl}");
    assert!(
        (engine_sl - sl).abs() < 1e-12,
        "engine statistics agree with the harness"
    );
}
