//! Engine contention benchmark: a mixed workload (route, offer, answer, hang up, no-answer,
//! agent state flips) over 10k agents, 200 queues and 20 skills, at 1 and 2 threads, for the
//! lock-free `Engine` and for `baseline::MutexEngine` (the same engine behind one `Mutex`),
//! measured in the same run; then the single-thread routing decision latency at 10k agents.
//!
//! Run from the repository root: `cargo bench --bench engine_contention`.

#![allow(clippy::disallowed_methods)] // a benchmark reads the wall clock
#![allow(clippy::unwrap_used)]

/// The allocator the `switchboard` binary ships with (see its `main.rs`), for both engines.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use switchboard_engine::baseline::MutexEngine;
use switchboard_engine::{
    AgentConfig, AgentIdx, AgentStateChange, CallId, CallRequest, Client, ClientType, Engine,
    EngineConfig, Event, HangupSide, Outcome, Purpose, QueueConfig, QueueEngine, QueueIdx,
    Strategy, Time,
};

const AGENTS: u32 = 10_000;
const QUEUES: u32 = 200;
const SKILLS: u32 = 20;
const RUN: Duration = Duration::from_millis(1000);
/// Rounds per thread count; lock-free and mutex runs alternate so load from other processes
/// hits both alike, and the medians are compared.
const ROUNDS: u64 = 5;

/// xorshift64*: a tiny deterministic generator, so the benchmark needs no extra dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn config() -> EngineConfig {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let strategies = [
        Strategy::LongestIdle,
        Strategy::LongestIdle,
        Strategy::RoundRobin,
        Strategy::FewestCalls,
        Strategy::LeastTalkTime,
        Strategy::Linear,
        Strategy::Random,
    ];
    let mut queues: Vec<QueueConfig> = (0..QUEUES)
        .map(|q| QueueConfig {
            strategy: strategies[(q % strategies.len() as u32) as usize],
            wrap_up_s: 0,
            ..QueueConfig::new(&format!("q{q}"), &format!("skill{}", q % SKILLS))
        })
        .collect();
    queues.push(QueueConfig::new("orders", "skill0"));
    queues.push(QueueConfig::new("regional", "skill1"));
    EngineConfig {
        agents: (0..AGENTS)
            .map(|i| AgentConfig {
                id: format!("agent{i}"),
                name: format!("Agent {i}"),
                roles: vec!["operator".into()],
                skills: vec![
                    (format!("skill{}", i % SKILLS), 1 + rng.below(5) as u8),
                    (
                        format!("skill{}", (i * 7 + 3) % SKILLS),
                        1 + rng.below(5) as u8,
                    ),
                ],
                substitute: None,
            })
            .collect(),
        queues,
        ..EngineConfig::default()
    }
}

fn request(queue: u32) -> CallRequest {
    CallRequest {
        caller: "+385100200".into(),
        purpose: Purpose::Order,
        client: Some(Client {
            number: "+385100200".into(),
            name: "Shop".into(),
            client_type: ClientType::Retail,
            manager: None,
            region: None,
            overdue_debt: 0,
        }),
        priority: None,
        queue: Some(QueueIdx(queue)),
    }
}

fn login_all<E: QueueEngine>(e: &E) {
    for a in 0..AGENTS {
        e.set_agent_state(Time::ZERO, AgentIdx(a), AgentStateChange::Available)
            .unwrap();
    }
}

/// One worker: a server thread's mix of operations. Returns the number of engine operations.
fn worker<E: QueueEngine>(e: &E, seed: u64, stop: &AtomicBool) -> u64 {
    let mut rng = Rng(seed);
    let mut talking: Vec<CallId> = Vec::with_capacity(256);
    let mut events: Vec<Event> = Vec::with_capacity(1024);
    let mut now = 1_000u64;
    let mut ops = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..64 {
            now += 1;
            let t = Time::from_millis(now);
            // Enqueue a call.
            let _ = e.route_call(t, request(rng.below(u64::from(QUEUES)) as u32));
            ops += 1;
            // Carry out offers: most are answered, some ring out.
            for offer in e.poll_offers() {
                let a = offer.agents[0];
                let outcome = if rng.below(20) == 0 {
                    Outcome::NoAnswer(a)
                } else {
                    Outcome::Answered(a)
                };
                if e.report(t, offer.call, outcome).is_ok()
                    && matches!(outcome, Outcome::Answered(_))
                {
                    talking.push(offer.call);
                }
                ops += 1;
            }
            // Hang up the oldest calls.
            while talking.len() > 32 {
                let c = talking.swap_remove(rng.below(talking.len() as u64) as usize);
                let _ = e.hangup(t, c, HangupSide::Caller);
                ops += 1;
            }
            // Agent state flips: a break and back.
            if rng.below(4) == 0 {
                let a = AgentIdx(rng.below(u64::from(AGENTS)) as u32);
                let _ = e.set_agent_state(t, a, AgentStateChange::Break { reason: None });
                let _ = e.set_agent_state(t, a, AgentStateChange::Available);
                ops += 2;
            }
        }
        e.handle_timeout(Time::from_millis(now));
        e.drain_events(&mut events);
        events.clear();
    }
    // Leave the engine drained for the next run.
    for c in talking {
        let _ = e.hangup(Time::from_millis(now), c, HangupSide::Caller);
    }
    ops
}

/// CPU time this process has used, in seconds (Linux `/proc/self/stat`, 100 ticks/s); zero
/// where that cannot be read. Shows how many cores a run actually got on a shared machine.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Ops/s of `threads` workers on `e` for one [`RUN`], and the cores the run got.
fn throughput<E: QueueEngine + 'static>(e: &Arc<E>, threads: u64, round: u64) -> (f64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let e = e.clone();
            let stop = stop.clone();
            let seed = 0x1234_5678 + i * 7919 + round * 104_729;
            std::thread::spawn(move || worker(&*e, seed, &stop))
        })
        .collect();
    std::thread::sleep(RUN);
    stop.store(true, Ordering::Relaxed);
    let ops: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let wall = start.elapsed().as_secs_f64();
    (ops as f64 / wall, (cpu_seconds() - cpu0) / wall)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Single-thread routing decision latency: `route_call` + `next_offer` with 10k agents,
/// most of them available, calls spread over the 200 queues.
fn latency() -> (Duration, Duration, Duration) {
    let e = Engine::new(config()).unwrap();
    login_all(&e);
    let mut rng = Rng(42);
    let mut samples = Vec::with_capacity(50_000);
    let mut talking: Vec<CallId> = Vec::new();
    for i in 0..50_000u64 {
        let t = Time::from_millis(1_000 + i);
        let q = rng.below(u64::from(QUEUES)) as u32;
        // The request is the caller's (the server builds it from the INVITE): built before the
        // clock starts; dropping it is the engine's and is timed.
        let req = request(q);
        let start = Instant::now();
        let call = e.route_call(t, req).unwrap();
        let offer = e.next_offer();
        samples.push(start.elapsed());
        let offer = offer.unwrap();
        assert_eq!(offer.call, call);
        e.report(t, call, Outcome::Answered(offer.agents[0]))
            .unwrap();
        talking.push(call);
        if talking.len() > 500 {
            let c = talking.swap_remove(rng.below(talking.len() as u64) as usize);
            e.hangup(t, c, HangupSide::Caller).unwrap();
        }
        while e.poll_event().is_some() {}
    }
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99), at(0.999))
}

fn main() {
    // `cargo bench` passes `--bench`; a further argument `throughput` or `latency` runs only
    // that part (for profiling), anything else runs both.
    let only = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_default();
    println!(
        "engine_contention: {AGENTS} agents, {QUEUES} queues, {SKILLS} skills, {ROUNDS} rounds of {RUN:?} per engine and thread count"
    );
    if only != "latency" {
        let mut results = Vec::new();
        // `ENGINE_BENCH_THREADS=2` runs one thread count only (for profiling).
        let counts: Vec<u64> = match std::env::var("ENGINE_BENCH_THREADS") {
            Ok(n) => n.parse().map(|n| vec![n]).unwrap_or_else(|_| vec![1, 2]),
            Err(_) => vec![1, 2],
        };
        for &threads in &counts {
            let lock_free = Arc::new(Engine::new(config()).unwrap());
            let mutex = Arc::new(MutexEngine::new(config()).unwrap());
            login_all(&*lock_free);
            login_all(&*mutex);
            let (mut lf, mut mx) = (Vec::new(), Vec::new());
            let (mut lf_cores, mut mx_cores) = (Vec::new(), Vec::new());
            // `ENGINE_BENCH_ONLY=lock-free` (or `mutex`) runs one engine (for profiling; the
            // other's figures then read as zero).
            let only_engine = std::env::var("ENGINE_BENCH_ONLY").unwrap_or_default();
            for round in 0..ROUNDS {
                if only_engine != "mutex" {
                    let (ops, cores) = throughput(&lock_free, threads, round);
                    lf.push(ops);
                    lf_cores.push(cores);
                }
                if only_engine != "lock-free" {
                    let (ops, cores) = throughput(&mutex, threads, round);
                    mx.push(ops);
                    mx_cores.push(cores);
                }
            }
            for v in [&mut lf, &mut mx, &mut lf_cores, &mut mx_cores] {
                if v.is_empty() {
                    v.push(0.0);
                }
            }
            let ratios: Vec<String> = lf
                .iter()
                .zip(&mx)
                .map(|(l, m)| format!("{:.2}", l / m))
                .collect();
            let (lf, mx) = (median(&mut lf), median(&mut mx));
            println!(
                "threads {threads}: lock-free {lf:>10.0} ops/s   mutex {mx:>10.0} ops/s   (medians of {ROUNDS})   ratio {:.2}   per round: {}   cores used: lock-free {:.2}, mutex {:.2}",
                lf / mx,
                ratios.join(" "),
                median(&mut lf_cores),
                median(&mut mx_cores)
            );
            results.push((threads, lf, mx));
        }
        if let Some((_, lf2, mx2)) = results.iter().find(|r| r.0 == 2) {
            println!("engine lock-free/mutex ratio @2 threads: {:.2}", lf2 / mx2);
        }
    }
    if only != "throughput" {
        let (p50, p99, p999) = latency();
        println!(
            "routing decision latency (route_call + next_offer, 1 thread, {AGENTS} agents): p50 {:.2} µs  p99 {:.2} µs  p99.9 {:.2} µs",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            p999.as_secs_f64() * 1e6
        );
    }
}
