//! Switchboard's queue engine: agents, skills, queues and the company's routing rules
//! (PRODUCT §2–§3). It decides which agent is offered which call.
//!
//! **What it is not.** It contains no networking, no database, no async runtime, no threads
//! and no clock: time ([`Time`], milliseconds since an epoch the caller chooses) and the seed
//! of the `random` strategy come in as arguments. The server drives it; the store implements
//! [`ClientDirectory`]; the CDR writer consumes its [`Event`]s.
//!
//! # Using it
//!
//! ```
//! use switchboard_engine::*;
//! let mut cfg = EngineConfig::default();
//! cfg.agents.push(AgentConfig { id: "kira".into(), skills: vec![("orders".into(), 5)], ..Default::default() });
//! cfg.queues.push(QueueConfig::new("orders", "orders"));
//! cfg.queues.push(QueueConfig::new("regional", "regional"));
//! let engine = Engine::new(cfg).unwrap();
//! let kira = engine.agent_idx("kira").unwrap();
//! let t = Time::from_secs(1);
//! engine.set_agent_state(t, kira, AgentStateChange::Available).unwrap();
//! let call = engine.route_call(t, CallRequest {
//!     caller: "+385100".into(), purpose: Purpose::Order, priority: None, queue: None,
//!     client: Some(Client { number: "+385100".into(), name: "Shop".into(),
//!         client_type: ClientType::Retail, manager: None, region: None, overdue_debt: 0 }),
//! }).unwrap();
//! let offer = engine.next_offer().unwrap();          // ring these agents
//! assert_eq!(offer.agents, vec![kira]);
//! assert_eq!(offer.route, "queue:orders(kira)");     // for the CDR `route` column
//! engine.report(t, call, Outcome::Answered(kira)).unwrap();
//! engine.hangup(Time::from_secs(60), call, HangupSide::Caller).unwrap();
//! while let Some(_event) = engine.poll_event() { /* queue_events, agent_sessions, SSE */ }
//! // sleep until engine.poll_timeout(), then engine.handle_timeout(now)
//! ```
//!
//! The driver loop: feed inputs ([`Engine::route_call`], [`Engine::report`],
//! [`Engine::hangup`], [`Engine::set_agent_state`]), carry out [`Engine::next_offer`]s (ring
//! the agents; report [`Outcome::NoAnswer`] after [`Offer::ring_timeout_ms`]), drain
//! [`Engine::poll_event`], and call [`Engine::handle_timeout`] at [`Engine::poll_timeout`]
//! (wrap-up ends, queue max waits, busy-manager waits).
//!
//! # Routing
//!
//! [`classify`] derives the client class in PRODUCT order (debt → key → new → regional →
//! other → complaint → standard); each class has a route chain ([`default_chain`], or
//! `[routing]` overrides in [`EngineConfig::routing`]). A queue's overflow target is spliced
//! into the chain right after the queue. A call *reaches* steps one by one:
//!
//! - `assigned_manager`: the client's manager, or while they are `absent` their substitute
//!   (one level). No manager, or absent without a present substitute, or a logged-out one:
//!   skipped at once. A present manager who cannot take the call (busy, break, not ready)
//!   holds a call of class `other` for [`EngineConfig::other_manager_wait_s`] (rule 8: only
//!   absence moves on); every other chain moves on at once (rule 4: "absent or busy").
//!   `agent:<id>` holds a call for [`EngineConfig::step_wait_s`] while the agent is present.
//! - `role:<role>`: any agent with the role, longest idle first; if none is available the call
//!   moves on at once.
//! - `queue:<name>`: agents with the queue's skill, higher level first, then the strategy. The
//!   call holds here until the queue's max wait, then moves on to the overflow target and the
//!   rest of the chain **while keeping its place** in this queue. A full queue, or one whose
//!   agents are all logged out or absent, is skipped.
//!
//! **No call waits forever.** Once the last step is reached the call waits at most that
//! step's hold (a queue's max wait, else [`EngineConfig::step_wait_s`]); a chain without a
//! queue waits at most [`EngineConfig::max_wait_s`] in all. Past its bound a waiting call
//! leaves with [`Event::CallTimedOut`] (outcome `timeout`); one that is ringing leaves when
//! its offer ends without another agent to offer it to.
//!
//! Every reached step stays eligible: a call waiting after `key = [assigned_manager,
//! role:key_account_manager, role:head_of_wholesale]` is offered to whichever of those frees
//! first. When nothing can take a call now it waits in the lists of all reached steps — for a
//! chain ending in `role:` steps these are per-role waiting lists — so a call is never lost;
//! a chain that reaches nobody (every step's agents logged out or absent, or no manager) is
//! refused with [`EngineError::NoRoute`] (outcome `no_agent`).
//!
//! An agent's decline ([`Outcome::Rejected`]) ends the offer at once and counts as a
//! no-answer; a caller who leaves while agents ring ([`Outcome::CallerGone`]) never counts
//! against them. [`Engine::schedule_daily_reset`] zeroes the daily counters at a time the
//! caller chooses (local midnight), on the engine's own clock.
//!
//! Within a list, calls are ordered by (priority desc, arrival). Priority is per class
//! ([`EngineConfig::class_priority`], key clients 10 by default), per queue overridable.
//! A no-answer puts the call back under the same key: its original position.
//!
//! Every [`Offer`] carries a route trace for the CDR, e.g.
//! `assigned_manager(ana: absent → marko: on_call) > role:key_account_manager(none available) >
//! role:head_of_wholesale(ivan)`; steps before the serving one are described by their state at
//! the moment of the offer (why they did not get it).
//!
//! # Concurrency design
//!
//! Every method takes `&self`; route, offer, report, hang-up, state changes and timeouts may
//! run from many threads at once, with no `Mutex`/`RwLock` on any path:
//!
//! - **Agents** live in a fixed slab indexed by [`AgentIdx`]. Each slot's state is one
//!   `AtomicU64` word `tag | pending | generation | call`; **the word is the truth**. Claiming
//!   an agent is one CAS `available(g) → ringing(call)` marked *pending*; every transition
//!   bumps the generation.
//! - **Calls** have one `AtomicU64` status word `waiting | offered(agent) | talking(agent) |
//!   ended | gone`. Offering is one CAS `waiting → offered`; withdrawal (caller gone) is a CAS
//!   to `gone`; put-back after no-answer is `offered → waiting`.
//! - **An offer** = claim the agent(s) first, then CAS the call `waiting → offered(seq)`
//!   (`seq` numbers the call's offers, so each offer's status word is unique), then
//!   *confirm* each claim (clear its pending mark by a CAS on the exact claimed word). If the
//!   call CAS fails (another thread offered it, or the caller left) the claims are undone. A
//!   state change that takes an agent while its claim is pending releases nothing; the
//!   committer, failing to confirm, releases it instead — each claimed agent is released
//!   exactly once, and the release that empties an offer puts the call back.
//! - **Waiting lists** (per queue, per role, per agent) are lock-free ordered maps
//!   (`crossbeam-skiplist`) keyed by (priority, sequence). A call stays in its lists until it
//!   is answered or gone; scanners skip calls that are not `waiting` and remove finished ones.
//! - **Arrival fast path**: when nobody waits in the list of a new call's first step, the
//!   call — which no other thread can see yet — is offered without entering the list (no
//!   earlier call has a claim on those agents). If no agent can take it, or its offer fails
//!   (no-answer, reject, the agent's state changes), it takes its place in the list then, under
//!   its arrival key: the place it would have had all along. Queue statistics count such a
//!   ringing call as waiting (a per-queue counter, and a look at the call map while it is
//!   non-zero).
//! - **Availability indices** (hints): per skill a queue uses and per role a chain uses, a
//!   bitmap over the members (ordered by level desc, then index, so a level is a contiguous
//!   bit range) plus each member's strategy keys (idle since, calls today, talk time today) as
//!   they were when it became available. Publishing or withdrawing an agent is one
//!   `fetch_or` / `fetch_and` per skill. Selection scans the best level's set bits (64 agents
//!   per word; the keyed strategies take the lowest key among them), then claims by CAS on the
//!   agent word, which is re-validated, so a *stale* set bit only costs a look and a key that
//!   moved during a scan only bends the order (a final pass in index order still finds every
//!   available member). The invariant they do keep is the other way round: **an available
//!   agent's bits are set** once its publisher has run — whoever clears them re-reads the
//!   word and, if the agent became available again meanwhile, publishes and dispatches it
//!   itself. Cost: O(members at a level / 64) word loads per selection, plus a key
//!   comparison per available member of the best level for the keyed strategies.
//! - **Waiting-list counters**: each list counts its entries (incremented before the insert,
//!   decremented after a successful remove, so never below the true number); an agent that
//!   becomes available skips lists whose count is zero.
//! - **No lost wake-ups**: a call that waits is registered in its lists *before* agents are
//!   searched (a call on the fast path is searched for first, but is then registered and
//!   searched for again before it waits); an agent is published as available (word + hints) *before* waiting calls are
//!   searched; a SeqCst fence separates publish and search on both sides, so a call and an agent
//!   meeting concurrently cannot both miss each other.
//! - **Offers** go through lock-free queues (`crossbeam-queue`), one per producing thread;
//!   **events** are collected per operation in a thread-local batch and published as one
//!   entry when the operation ends, so one operation's events stay together and in order and
//!   operations' events come out in the order the operations ended. (With one shared queue
//!   for both, its tail was the hottest spot of the engine at 2 threads.) Timers are an
//!   ordered map where removing an entry is the right to fire it, so each timer fires once.
//!
//! Invariants, proved by the loom models in `tests/loom.rs` (which run this very code with
//! loom's atomics — the availability bitmaps and waiting-list counters included — and the
//! ordered maps replaced by a linearizable stand-in loom can see, see `sync.rs`): an agent is
//! never claimed by two calls (outside `ring_all`, where one call claims several agents); a
//! call is never offered twice at once; no call is lost (a waiting call and an available agent
//! that can serve it are never both left idle, also when state changes race the offer or each
//! other) or duplicated; FIFO holds within a priority. `tests/routing_props.rs` checks the routing rules over random
//! populations with proptest; `tests/simulation.rs` checks a simulated day against Erlang C.
//!
//! [`baseline::MutexEngine`] is the same API behind one `Mutex`, for benchmarks only.

mod config;
mod engine;
mod error;
mod model;
mod sync;

#[cfg(not(loom))]
pub mod baseline;

pub use config::{AgentConfig, EngineConfig, QueueConfig, classify, default_chain};
pub use engine::{Engine, QueueEngine};
pub use error::EngineError;
pub use model::{
    AgentIdx, AgentSnapshot, AgentState, AgentStateChange, AgentStateKind, CallId, CallRequest,
    Class, Client, ClientDirectory, ClientType, Event, HangupSide, Offer, Outcome, Purpose,
    QueueIdx, QueueStats, Step, Strategy, Time,
};
