//! Simulated days in virtual time: seeded Poisson arrivals and exponential talk times through
//! one `longest_idle` queue of `c` identical agents, driven through the engine's own timers,
//! compared with the queueing formulas:
//! - without abandonment, Erlang C (M/M/c): probability of waiting, service level and mean
//!   wait at 70 %, 85 % and 95 % occupancy;
//! - with exponential caller patience, Erlang A (M/M/c+M): probability of waiting, of
//!   abandoning and mean wait at three loads, one of them past 100 % (where Erlang C has no
//!   steady state and Erlang A still has one).
//!
//! Each load runs many simulated days back to back (the engine is never restarted; the first
//! hour is a warm-up that is not measured, so the figures are the steady state the formulas
//! describe). Seeds are fixed, so a run is reproducible; the call counts are chosen so that the
//! ±2 percentage-point tolerance is at least 2.5 standard errors of the simulated figure
//! (measured over independent seeds). Run with `--nocapture` to see the table.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use switchboard_engine::*;

/// Agents on the queue.
const AGENTS: u32 = 10;
/// Mean talk time (a typical order call).
const MEAN_TALK_S: f64 = 180.0;
/// Service-level threshold: answered within 20 s.
const THRESHOLD_S: f64 = 20.0;
/// Arrivals in the first hour are not measured (the queue starts empty every run).
const WARMUP_MS: u64 = 3_600_000;
/// Probabilities and service levels must agree within two percentage points.
const TOLERANCE_PP: f64 = 0.02;
/// Consecutive batches of measured calls for the standard error of the mean wait.
const BATCHES: usize = 20;
/// The mean wait of a loaded queue varies far more than any probability (at 95 % occupancy
/// 300,000 calls leave a standard error of about 8 %, measured over seeds), so it is checked
/// against its own confidence interval: the formula within 3 standard errors of the
/// simulation (batch means), and that standard error at most this share of the formula's
/// figure, so the check keeps its teeth.
const MAX_WAIT_SE: f64 = 0.10;

/// `SIM_SEED=n` shifts every seed by `n`: anyone can check the figures are not seed-picked.
fn seed_offset() -> u64 {
    std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

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
fn erlang_c_service_level(a: f64, c: u32, t_s: f64, mean_talk_s: f64) -> f64 {
    1.0 - erlang_c(a, c) * (-(f64::from(c) - a) * t_s / mean_talk_s).exp()
}

/// Mean wait of M/M/c FCFS over all calls: C(a, c) * mean_talk / (c - a).
fn erlang_c_mean_wait_s(a: f64, c: u32, mean_talk_s: f64) -> f64 {
    erlang_c(a, c) * mean_talk_s / (f64::from(c) - a)
}

/// Erlang A (M/M/c+M, Palm's model) from its birth-death chain: arrivals at `lambda`, each of
/// the `c` busy agents ends a call at `mu`, each waiting caller leaves at `theta`.
struct ErlangA {
    p_wait: f64,
    p_abandon: f64,
    mean_wait_s: f64,
}

fn erlang_a(lambda: f64, mu: f64, theta: f64, c: u32) -> ErlangA {
    // Unnormalised stationary weights, truncated where they no longer matter.
    let mut weights = vec![1.0_f64];
    let mut n = 0u32;
    loop {
        n += 1;
        let waiting = f64::from(n.saturating_sub(c));
        let death = f64::from(n.min(c)) * mu + waiting * theta;
        let w = weights.last().unwrap() * lambda / death;
        weights.push(w);
        if n > c && w < 1e-16 * weights.iter().sum::<f64>() {
            break;
        }
    }
    let total: f64 = weights.iter().sum();
    let mut p_wait = 0.0;
    let mut queue_len = 0.0;
    for (n, w) in weights.iter().enumerate() {
        let n = n as u32;
        if n >= c {
            p_wait += w / total;
            queue_len += f64::from(n - c) * w / total;
        }
    }
    ErlangA {
        // PASTA: an arrival sees the stationary distribution.
        p_wait,
        // Little: callers leave the queue at theta each, so theta * E[Q] per unit of time.
        p_abandon: theta * queue_len / lambda,
        mean_wait_s: queue_len / lambda,
    }
}

fn exp_ms(rng: &mut SmallRng, mean_ms: f64) -> u64 {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    (-u.ln() * mean_ms).round() as u64
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Hangup(u64),
    Patience(u64),
    Arrival,
}

/// One load: `c` agents, `a` Erlang offered, optional mean patience.
#[derive(Clone, Copy)]
struct Load {
    seed: u64,
    a: f64,
    patience_s: Option<f64>,
    /// Measured calls wanted (arrivals stop once this many arrived after the warm-up).
    calls: u64,
}

/// What the harness measured over the calls that arrived after the warm-up.
#[derive(Default)]
struct Measured {
    offered: u64,
    answered: u64,
    abandoned: u64,
    waited: u64,
    within_threshold: u64,
    /// Time in queue of every measured call, answered or abandoned.
    wait_ms_total: u64,
    /// The same per batch of consecutive arrivals: (calls, time in queue).
    batches: [(u64, u64); BATCHES],
    days: f64,
    /// The engine's own statistics over the whole run (warm-up included): answered within
    /// the threshold, answered, abandoned; and the harness's figures over the same calls.
    engine: (u64, u64, u64),
    harness: (u64, u64, u64),
}

impl Measured {
    fn p_wait(&self) -> f64 {
        self.waited as f64 / self.offered as f64
    }
    fn service_level(&self) -> f64 {
        self.within_threshold as f64 / self.offered as f64
    }
    fn p_abandon(&self) -> f64 {
        self.abandoned as f64 / self.offered as f64
    }
    fn mean_wait_s(&self) -> f64 {
        self.wait_ms_total as f64 / self.offered as f64 / 1000.0
    }
    /// Standard error of the mean wait from the batch means.
    fn mean_wait_se_s(&self) -> f64 {
        let means: Vec<f64> = self
            .batches
            .iter()
            .map(|&(n, ms)| ms as f64 / n as f64 / 1000.0)
            .collect();
        let b = means.len() as f64;
        let mean = means.iter().sum::<f64>() / b;
        let var = means.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / (b - 1.0);
        (var / b).sqrt()
    }
    /// Records the time in queue of the measured call number `ordinal`.
    fn wait(&mut self, ordinal: u64, wait_ms: u64, calls: u64) {
        self.wait_ms_total += wait_ms;
        let batch = (ordinal * BATCHES as u64 / calls) as usize;
        let slot = &mut self.batches[batch.min(BATCHES - 1)];
        slot.0 += 1;
        slot.1 += wait_ms;
    }
}

fn engine_for(c: u32) -> Engine {
    // The formulas have no bound on the wait: the queue's and the chain's are a week.
    const WEEK_S: u32 = 7 * 24 * 3600;
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
                max_wait_s: Some(WEEK_S),
                ..QueueConfig::new("orders", "orders")
            },
            QueueConfig::new("regional", "regional"),
        ],
        service_level_threshold_s: THRESHOLD_S as u32,
        step_wait_s: WEEK_S,
        max_wait_s: WEEK_S,
        ..EngineConfig::default()
    };
    let engine = Engine::new(cfg).unwrap();
    for i in 0..c {
        engine
            .set_agent_state(Time::ZERO, AgentIdx(i), AgentStateChange::Available)
            .unwrap();
    }
    engine
}

/// Runs one load through the engine in virtual time: the next event is the earliest of the
/// next arrival, hang-up, caller patience running out and the engine's own timer.
fn simulate(load: Load) -> Measured {
    let engine = engine_for(AGENTS);
    let mut rng = SmallRng::seed_from_u64(load.seed.wrapping_add(seed_offset()));
    let mean_talk_ms = MEAN_TALK_S * 1000.0;
    let mean_gap_ms = mean_talk_ms / load.a;
    let threshold_ms = (THRESHOLD_S * 1000.0) as u64;
    let mut events = BinaryHeap::new();
    let mut seq = 0u64;
    events.push(Reverse((exp_ms(&mut rng, mean_gap_ms), seq, Ev::Arrival)));
    // Calls not yet answered nor gone: arrival time and, once measured, their ordinal.
    let mut waiting: HashMap<CallId, (u64, Option<u64>)> = HashMap::new();
    let mut m = Measured::default();
    let client = Client {
        number: "+1".into(),
        name: "shop".into(),
        client_type: ClientType::Retail,
        manager: None,
        region: None,
        overdue_debt: 0,
    };
    let mut last_ms = 0;
    loop {
        let next_event = events.peek().map(|Reverse((at, _, _))| *at);
        let next_timer = engine.poll_timeout().map(Time::as_millis);
        let at = match (next_event, next_timer) {
            (None, None) => break,
            (Some(e), Some(t)) if t <= e => {
                engine.handle_timeout(Time::from_millis(t));
                t
            }
            (None, Some(t)) => {
                engine.handle_timeout(Time::from_millis(t));
                t
            }
            (Some(_), _) => {
                let Reverse((at, _, ev)) = events.pop().unwrap();
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
                        let ordinal = (at >= WARMUP_MS).then_some(m.offered);
                        waiting.insert(id, (at, ordinal));
                        if ordinal.is_some() {
                            m.offered += 1;
                        }
                        if let Some(p) = load.patience_s {
                            seq += 1;
                            let gone = at + exp_ms(&mut rng, p * 1000.0);
                            events.push(Reverse((gone, seq, Ev::Patience(id.0))));
                        }
                        if m.offered < load.calls {
                            seq += 1;
                            let next = at + exp_ms(&mut rng, mean_gap_ms);
                            events.push(Reverse((next, seq, Ev::Arrival)));
                        }
                    }
                    Ev::Patience(call) => {
                        if let Some((arrived, ordinal)) = waiting.remove(&CallId(call)) {
                            engine
                                .report(now, CallId(call), Outcome::CallerGone)
                                .unwrap();
                            m.harness.2 += 1;
                            if let Some(ordinal) = ordinal {
                                m.abandoned += 1;
                                m.waited += 1;
                                m.wait(ordinal, at - arrived, load.calls);
                            }
                        }
                    }
                    Ev::Hangup(call) => engine
                        .hangup(now, CallId(call), HangupSide::Caller)
                        .unwrap(),
                }
                at
            }
        };
        last_ms = at;
        // Agents answer at once; talk times are exponential.
        while let Some(offer) = engine.next_offer() {
            assert_eq!(offer.agents.len(), 1);
            engine
                .report(
                    Time::from_millis(at),
                    offer.call,
                    Outcome::Answered(offer.agents[0]),
                )
                .unwrap();
            let (arrived, ordinal) = waiting.remove(&offer.call).unwrap();
            let wait = at - arrived;
            m.harness.0 += u64::from(wait <= threshold_ms);
            m.harness.1 += 1;
            if let Some(ordinal) = ordinal {
                m.answered += 1;
                m.waited += u64::from(wait > 0);
                m.within_threshold += u64::from(wait <= threshold_ms);
                m.wait(ordinal, wait, load.calls);
            }
            seq += 1;
            events.push(Reverse((
                at + exp_ms(&mut rng, mean_talk_ms).max(1),
                seq,
                Ev::Hangup(offer.call.0),
            )));
        }
        while engine.poll_event().is_some() {}
    }
    assert!(waiting.is_empty(), "every call was answered or left");
    assert_eq!(
        engine.active_calls(),
        0,
        "the engine holds no call afterwards"
    );
    let s = engine
        .stats(Time::from_millis(last_ms), QueueIdx(0))
        .unwrap();
    assert_eq!(s.timed_out, 0, "no call reached the (week-long) bound");
    m.engine = (s.answered_within_threshold, s.answered, s.abandoned);
    m.days = (last_ms - WARMUP_MS) as f64 / 86_400_000.0;
    m
}

/// Runs the loads on scoped threads (they are independent) and returns them in order.
fn simulate_all(loads: &[Load]) -> Vec<Measured> {
    std::thread::scope(|s| {
        let handles: Vec<_> = loads
            .iter()
            .map(|&l| s.spawn(move || simulate(l)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn check_pp(what: &str, load: f64, sim: f64, want: f64) {
    assert!(
        (sim - want).abs() <= TOLERANCE_PP,
        "{what} at {:.0} %: simulated {sim:.4}, formula {want:.4}",
        load * 100.0
    );
}

fn check_wait(load: f64, m: &Measured, want: f64) {
    let (sim, se) = (m.mean_wait_s(), m.mean_wait_se_s());
    assert!(
        se <= MAX_WAIT_SE * want,
        "mean wait at {:.0} %: standard error {se:.2} s is too wide to judge",
        load * 100.0
    );
    assert!(
        (sim - want).abs() <= 3.0 * se,
        "mean wait at {:.0} %: simulated {sim:.2} ± {se:.2} s, formula {want:.2} s",
        load * 100.0
    );
}

#[test]
fn erlang_formulas_match_published_values() {
    // Erlang C reference values: A = 2, c = 3 → 0.4444; A = 8, c = 10 → 0.4092.
    assert!((erlang_c(2.0, 3) - 4.0 / 9.0).abs() < 1e-9);
    assert!((erlang_c(8.0, 10) - 0.4092).abs() < 5e-4);
    // Erlang A tends to Erlang C as patience grows without bound.
    let (a, c) = (8.0, 10);
    let mu = 1.0 / 180.0;
    let near_c = erlang_a(a * mu, mu, 1e-9, c);
    assert!((near_c.p_wait - erlang_c(a, c)).abs() < 1e-6);
    assert!((near_c.mean_wait_s - erlang_c_mean_wait_s(a, c, 180.0)).abs() < 1e-3);
    // ... and with patience equal to the talk time it is M/M/∞'s Poisson(a) occupancy.
    let mm_inf = erlang_a(a * mu, mu, mu, c);
    let mut poisson = vec![(-a).exp()];
    for k in 1..c {
        poisson.push(poisson.last().unwrap() * a / f64::from(k));
    }
    assert!((mm_inf.p_wait - (1.0 - poisson.iter().sum::<f64>())).abs() < 1e-9);
}

#[test]
fn simulated_days_agree_with_erlang_c_at_three_loads() {
    let occupancy = [0.70, 0.85, 0.95];
    let calls = [100_000, 200_000, 300_000];
    let loads: Vec<Load> = occupancy
        .iter()
        .zip(calls)
        .zip(1u64..)
        .map(|((&rho, calls), seed)| Load {
            seed,
            a: rho * f64::from(AGENTS),
            patience_s: None,
            calls,
        })
        .collect();
    let runs = simulate_all(&loads);
    println!(
        "Erlang C, {AGENTS} agents, longest idle, mean talk {MEAN_TALK_S} s, SL within {THRESHOLD_S} s"
    );
    println!(
        "occupancy  days   calls   P(wait) sim/Erlang C   SL sim/Erlang C   mean wait s sim (± s.e.)/Erlang C"
    );
    for (rho, m) in occupancy.iter().zip(&runs) {
        let a = rho * f64::from(AGENTS);
        let (pw, sl, w) = (
            erlang_c(a, AGENTS),
            erlang_c_service_level(a, AGENTS, THRESHOLD_S, MEAN_TALK_S),
            erlang_c_mean_wait_s(a, AGENTS, MEAN_TALK_S),
        );
        println!(
            "  {:>4.0} %  {:>5.1}  {:>7}   {:.4} / {:.4}        {:.4} / {:.4}     {:>7.2} (± {:.2}) / {:.2}",
            rho * 100.0,
            m.days,
            m.offered,
            m.p_wait(),
            pw,
            m.service_level(),
            sl,
            m.mean_wait_s(),
            m.mean_wait_se_s(),
            w
        );
    }
    for (rho, m) in occupancy.iter().zip(&runs) {
        let a = rho * f64::from(AGENTS);
        assert_eq!(m.answered, m.offered, "nobody abandons without patience");
        check_pp("P(wait)", *rho, m.p_wait(), erlang_c(a, AGENTS));
        check_pp(
            "service level",
            *rho,
            m.service_level(),
            erlang_c_service_level(a, AGENTS, THRESHOLD_S, MEAN_TALK_S),
        );
        check_wait(*rho, m, erlang_c_mean_wait_s(a, AGENTS, MEAN_TALK_S));
        assert_eq!(
            m.engine, m.harness,
            "engine statistics agree with the harness"
        );
    }
}

#[test]
fn simulated_days_with_abandonment_follow_erlang_a() {
    // Callers wait two minutes on average before they hang up.
    let patience_s = 120.0;
    let occupancy = [0.85, 0.95, 1.10];
    let loads: Vec<Load> = occupancy
        .iter()
        .zip(11u64..)
        .map(|(&rho, seed)| Load {
            seed,
            a: rho * f64::from(AGENTS),
            patience_s: Some(patience_s),
            calls: 60_000,
        })
        .collect();
    let runs = simulate_all(&loads);
    let mu = 1.0 / MEAN_TALK_S;
    let theta = 1.0 / patience_s;
    println!(
        "Erlang A, {AGENTS} agents, mean talk {MEAN_TALK_S} s, mean patience {patience_s} s \
         (Erlang C's mean wait beside it: abandonment shortens the queue)"
    );
    println!(
        "offered  days   calls   P(wait) sim/Erlang A   P(abandon) sim/Erlang A   mean wait s sim (± s.e.)/Erlang A/Erlang C"
    );
    let mut formulas = Vec::new();
    for (rho, m) in occupancy.iter().zip(&runs) {
        let a = rho * f64::from(AGENTS);
        let f = erlang_a(a * mu, mu, theta, AGENTS);
        let c_wait = if a < f64::from(AGENTS) {
            format!("{:.2}", erlang_c_mean_wait_s(a, AGENTS, MEAN_TALK_S))
        } else {
            "∞".to_owned()
        };
        println!(
            "  {:>4.0} %  {:>5.1}  {:>6}   {:.4} / {:.4}        {:.4} / {:.4}           {:>6.2} (± {:.2}) / {:.2} / {c_wait}",
            rho * 100.0,
            m.days,
            m.offered,
            m.p_wait(),
            f.p_wait,
            m.p_abandon(),
            f.p_abandon,
            m.mean_wait_s(),
            m.mean_wait_se_s(),
            f.mean_wait_s,
        );
        formulas.push(f);
    }
    for ((rho, m), f) in occupancy.iter().zip(&runs).zip(&formulas) {
        check_pp("P(wait)", *rho, m.p_wait(), f.p_wait);
        check_pp("P(abandon)", *rho, m.p_abandon(), f.p_abandon);
        check_wait(*rho, m, f.mean_wait_s);
        assert_eq!(
            m.engine, m.harness,
            "engine statistics agree with the harness"
        );
        if *rho < 1.0 {
            let a = rho * f64::from(AGENTS);
            assert!(
                m.mean_wait_s() < erlang_c_mean_wait_s(a, AGENTS, MEAN_TALK_S),
                "abandonment shortens the wait below Erlang C's"
            );
        }
    }
    // The Erlang A trend: more load, more waiting, more abandonment, longer waits — and a
    // steady state even past 100 % of the agents' capacity.
    for pair in runs.windows(2) {
        assert!(pair[1].p_wait() > pair[0].p_wait());
        assert!(pair[1].p_abandon() > pair[0].p_abandon());
        assert!(pair[1].mean_wait_s() > pair[0].mean_wait_s());
    }
}
