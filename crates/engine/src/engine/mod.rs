//! The lock-free engine: agent slots, waiting lists, agent hints, the offer protocol and timers.
//! See the crate documentation for the protocol and its invariants.

use std::collections::{BTreeSet, HashMap};
use std::ops::{Bound, ControlFlow};
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use crate::config::{EngineConfig, QueueConfig, classify, default_chain};
use crate::error::EngineError;
use crate::model::{
    AgentIdx, AgentSnapshot, AgentState, AgentStateChange, AgentStateKind, CallId, CallRequest,
    Class, Client, Event, HangupSide, Offer, Outcome, Purpose, QueueIdx, QueueStats, Step,
    Strategy, Time,
};
use crate::sync::{
    AtomicU32, AtomicU64, EventLog, Fifo, OrderedMap,
    Ordering::{Relaxed, SeqCst},
    fence,
};

mod avail;
mod build;
mod calls;
mod cells;
mod offer;
mod place;
mod route;
mod waiting;
mod words;

use avail::*;
use cells::*;
use waiting::*;
use words::*;

/// The queue engine. All methods take `&self` and may be called from many threads at once;
/// see the crate documentation.
pub struct Engine {
    no_answer_limit: u32,
    other_wait_ms: u64,
    step_wait_ms: u64,
    chain_max_ms: u64,
    /// Per role and per skill: members that are present (neither logged out nor absent), so
    /// that a step nobody can ever serve now is skipped and a chain of such steps is refused.
    role_present: Vec<AtomicU32>,
    skill_present: Vec<AtomicU32>,
    sl_threshold_ms: u64,
    seed: u64,
    default_ring_ms: u64,
    default_wrap_ms: u64,
    ring_all_limit: usize,
    class_priority: [u8; 7],

    agents: Vec<AgentInfo>,
    /// Every agent id, concatenated, with `id_ends[a]` the end of agent `a`'s: route traces
    /// read an id per offer, and this keeps them in a few cache lines rather than one heap
    /// allocation per agent.
    ids: String,
    id_ends: Vec<u32>,
    slots: Vec<CachePadded<AgentSlot>>,
    agent_by_id: HashMap<String, u32>,
    agent_lists: Vec<WaitList>,
    role_names: Vec<String>,
    role_lists: Vec<WaitList>,
    /// Availability indices: one per skill a queue uses and per role a chain uses.
    avail: Vec<AvailIndex>,
    /// Per skill: its availability index, `None` when no queue needs the skill.
    skill_avail: Vec<Option<usize>>,
    /// Per role: its availability index (longest idle first), `None` when no chain uses it.
    role_avail: Vec<Option<usize>>,
    queues: Vec<QueueRt>,
    queue_by_name: HashMap<String, u32>,
    chains: Vec<Vec<TemplateStep>>,
    /// Per queue: the chain of a call routed straight to it (the queue and its overflow).
    queue_chains: Vec<Vec<TemplateStep>>,
    /// One-step chains for transfers: `agent:<id>` per agent, `role:<role>` per role.
    agent_chains: Vec<Vec<TemplateStep>>,
    role_chains: Vec<Vec<TemplateStep>>,

    /// Calls by id, sharded by the low bits of the id so that threads routing consecutive
    /// calls do not meet at the tail of one ordered map.
    calls: [OrderedMap<u64, Arc<CallCell>>; CALL_SHARDS as usize],
    next_call: AtomicU64,
    rng_counter: AtomicU64,
    timers: OrderedMap<TimerKey, ()>,
    ring_sets: OrderedMap<u64, Arc<Vec<u32>>>,
    reasons: OrderedMap<u32, String>,
    offers: Fifo<Offer>,
    events: EventLog,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("agents", &self.agents.len())
            .field("queues", &self.queues.len())
            .finish_non_exhaustive()
    }
}

fn secs_to_ms(s: u32) -> u64 {
    u64::from(s) * 1000
}

impl Engine {
    // ---- lookups ---------------------------------------------------------------------------

    /// Index of an agent id.
    pub fn agent_idx(&self, id: &str) -> Option<AgentIdx> {
        self.agent_by_id.get(id).map(|&i| AgentIdx(i))
    }

    /// Id of an agent index.
    pub fn agent_id(&self, agent: AgentIdx) -> Option<&str> {
        self.agents.get(agent.0 as usize).map(|a| a.id.as_str())
    }

    /// Index of a queue name.
    pub fn queue_idx(&self, name: &str) -> Option<QueueIdx> {
        self.queue_by_name.get(name).map(|&i| QueueIdx(i))
    }

    /// Name of a queue index.
    pub fn queue_name(&self, queue: QueueIdx) -> Option<&str> {
        self.queues
            .get(queue.0 as usize)
            .map(|q| q.cfg.name.as_str())
    }

    /// Number of configured agents.
    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }

    /// Number of configured queues.
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// The client class of a caller (PRODUCT §3).
    pub fn classify(&self, client: Option<&Client>, purpose: Purpose) -> Class {
        classify(client, purpose)
    }

    /// Number of calls in the engine (waiting, ringing or talking).
    pub fn active_calls(&self) -> usize {
        self.calls.iter().map(OrderedMap::len).sum()
    }

    // ---- outputs ---------------------------------------------------------------------------

    /// The next offer to carry out (ring these agents). Offers are made eagerly by the
    /// operation that created the opportunity (a call arriving, an agent becoming available,
    /// a timeout); this only hands them out. Any thread may take any offer.
    pub fn next_offer(&self) -> Option<Offer> {
        self.offers.pop()
    }

    /// All pending offers.
    pub fn poll_offers(&self) -> Vec<Offer> {
        std::iter::from_fn(|| self.offers.pop()).collect()
    }

    /// The next event. Each engine operation publishes its events together when it ends, in
    /// the order it produced them; operations' events come out in the order they ended.
    pub fn poll_event(&self) -> Option<Event> {
        self.events.pop()
    }

    /// When [`Engine::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.timers.first_key().map(|k| Time::from_millis(k.at))
    }

    /// Fires every timer due at `now`: wrap-up ends, holds at a step running out (a queue's
    /// max wait and overflow, the wait for a manager, the chain's bound and `timeout`), the
    /// daily reset. Several threads may call it; each timer fires once.
    pub fn handle_timeout(&self, now: Time) {
        let _batch = self.events.batch();
        while let Some(k) = self.timers.first_key() {
            if k.at > now.as_millis() {
                break;
            }
            if !self.timers.remove(&k) {
                continue;
            }
            match k.kind {
                T_ADVANCE => {
                    if let Some(cell) = self.call_shard(k.id).get(&k.id)
                        && u64::from(cell.frontier.load(SeqCst)) == k.aux
                    {
                        self.dispatch_call(now, &cell);
                    }
                }
                T_DAY => {
                    self.reset_daily_counters();
                    self.events.push(Event::DailyCountersReset { at: now });
                }
                _ => {
                    let Some(slot) = self.slots.get(k.id as usize) else {
                        continue;
                    };
                    let w = slot.word.load(SeqCst);
                    if tag(w) == AgentStateKind::WrapUp
                        && call_of(w) == k.aux & CALL_MASK
                        && self.move_agent(now, k.id as u32, w, AgentStateKind::Available, 0)
                    {
                        self.dispatch_agent(now, k.id as u32);
                    }
                }
            }
        }
    }

    // ---- agents ----------------------------------------------------------------------------

    /// Changes an agent's state (login, break, logout, absence). A ringing agent's offer is
    /// withdrawn and the call goes back to its place; a talking agent is refused.
    pub fn set_agent_state(
        &self,
        now: Time,
        agent: AgentIdx,
        change: AgentStateChange,
    ) -> Result<(), EngineError> {
        let _batch = self.events.batch();
        let a = agent.0;
        let slot = self.slot(a)?;
        let to = match &change {
            AgentStateChange::Available => AgentStateKind::Available,
            AgentStateChange::Break { .. } => AgentStateKind::Break,
            AgentStateChange::LoggedOut => AgentStateKind::LoggedOut,
            AgentStateChange::Absent { .. } => AgentStateKind::Absent,
            AgentStateChange::NotReady => AgentStateKind::NotReady,
        };
        match &change {
            AgentStateChange::Break { reason: Some(r) } => {
                self.reasons.insert(a, r.clone());
            }
            AgentStateChange::Break { reason: None } => {
                // No entry reads as no reason; removing allocates nothing.
                self.reasons.remove(&a);
            }
            AgentStateChange::Absent { substitute } => {
                let sub = match substitute {
                    None => self
                        .agents
                        .get(a as usize)
                        .map_or(NONE, |i| i.default_substitute),
                    Some(id) => *self
                        .agent_by_id
                        .get(id)
                        .ok_or_else(|| EngineError::UnknownAgent(id.clone()))?,
                };
                slot.substitute.store(sub, SeqCst);
            }
            _ => {}
        }
        loop {
            let w = slot.word.load(SeqCst);
            let from = tag(w);
            match from {
                AgentStateKind::OnCall => return Err(EngineError::AgentOnCall(agent)),
                AgentStateKind::Available | AgentStateKind::Ringing
                    if to == AgentStateKind::Available =>
                {
                    return Ok(());
                }
                _ => {}
            }
            if from == to && to != AgentStateKind::Available {
                return Ok(());
            }
            if !self.move_agent(now, a, w, to, 0) {
                continue;
            }
            if to == AgentStateKind::Available {
                slot.no_answer_streak.store(0, SeqCst);
            }
            // A pending claim is not part of an offer yet: its committer sees the claim gone
            // and releases it (see `commit`).
            if from == AgentStateKind::Ringing
                && !pending(w)
                && let Some(cell) = self.call_by_low_bits(call_of(w))
            {
                self.release_ring(now, &cell);
            }
            if to == AgentStateKind::Available {
                self.dispatch_agent(now, a);
            }
            return Ok(());
        }
    }

    /// Zeroes the daily counters at `at` (the next local midnight, which only the caller
    /// knows): the reset runs in [`Engine::handle_timeout`] on the engine's own time, and
    /// [`Event::DailyCountersReset`] tells the caller to schedule the next one.
    pub fn schedule_daily_reset(&self, at: Time) {
        self.timers.insert(
            TimerKey {
                at: at.as_millis(),
                kind: T_DAY,
                id: 0,
                aux: 0,
            },
            (),
        );
    }

    /// Zeroes every agent's calls and talk time today (call at the start of the day).
    pub fn reset_daily_counters(&self) {
        for (a, slot) in self.slots.iter().enumerate() {
            slot.calls_today.store(0, SeqCst);
            slot.talk_ms_today.store(0, SeqCst);
            if tag(slot.word.load(SeqCst)) == AgentStateKind::Available {
                // Rewrites the keys. If the agent leaves `available` meanwhile its bits may be
                // left set: a stale bit, skipped by the next scan that meets it.
                self.index(a as u32);
            }
        }
    }

    /// Snapshot of every agent.
    pub fn agents(&self) -> Vec<AgentSnapshot> {
        self.agents
            .iter()
            .zip(&self.slots)
            .enumerate()
            .map(|(i, (info, slot))| AgentSnapshot {
                idx: AgentIdx(i as u32),
                id: info.id.clone(),
                name: info.name.clone(),
                roles: info
                    .roles
                    .iter()
                    .filter_map(|&r| self.role_names.get(r as usize).cloned())
                    .collect(),
                state: self.agent_state_of(i as u32),
                state_since: Time::from_millis(slot.state_since.load(SeqCst)),
                calls_today: slot.calls_today.load(SeqCst),
                talk_ms_today: slot.talk_ms_today.load(SeqCst),
                idle_since: Time::from_millis(slot.idle_since.load(SeqCst)),
            })
            .collect()
    }

    /// Current state of one agent.
    pub fn agent_state(&self, agent: AgentIdx) -> Option<AgentState> {
        self.slots
            .get(agent.0 as usize)
            .map(|_| self.agent_state_of(agent.0))
    }

    /// Statistics of one queue; the oldest wait is measured at `now`.
    pub fn stats(&self, now: Time, queue: QueueIdx) -> Option<QueueStats> {
        let q = self.queues.get(queue.0 as usize)?;
        let mut waiting = 0;
        let mut oldest: Option<Time> = None;
        q.waiting.scan(Bound::Unbounded, |_, cell| {
            let s = status(cell.st());
            if (s == CS_WAITING || s == CS_OFFERED) && !cell.is_held() {
                waiting += 1;
                oldest = Some(oldest.map_or(cell.enqueued_at, |o| o.min(cell.enqueued_at)));
            }
            ControlFlow::Continue(())
        });
        if q.unlisted.load(SeqCst) > 0 {
            // Calls ringing since their arrival are in no list; only then is the call map read.
            for shard in &self.calls {
                shard.scan(Bound::Unbounded, |_, cell| {
                    if cell.unlisted.load(SeqCst) == 1
                        && cell.stats_queue.load(SeqCst) == queue.0
                        && matches!(status(cell.st()), CS_WAITING | CS_OFFERED)
                    {
                        waiting += 1;
                        oldest = Some(oldest.map_or(cell.enqueued_at, |o| o.min(cell.enqueued_at)));
                    }
                    ControlFlow::Continue(())
                });
            }
        }
        let mut by_state = [0usize; 8];
        for &a in &q.agents {
            if let Some(slot) = self.slots.get(a as usize)
                && let Some(n) = by_state.get_mut(tag(slot.word.load(SeqCst)) as usize)
            {
                *n += 1;
            }
        }
        Some(QueueStats {
            name: q.cfg.name.clone(),
            waiting,
            oldest_wait_ms: oldest.map_or(0, |o| now.millis_since(o)),
            entered: q.entered.load(SeqCst),
            answered: q.answered.load(SeqCst),
            answered_within_threshold: q.answered_within.load(SeqCst),
            abandoned: q.abandoned.load(SeqCst),
            overflowed: q.overflowed.load(SeqCst),
            timed_out: q.timed_out.load(SeqCst),
            answered_wait_ms_total: q.wait_total.load(SeqCst),
            agents_by_state: AgentStateKind::ALL
                .iter()
                .zip(by_state)
                .map(|(k, n)| (*k, n))
                .collect(),
        })
    }

    // ---- internals: agents -----------------------------------------------------------------

    fn slot(&self, a: u32) -> Result<&AgentSlot, EngineError> {
        self.slots
            .get(a as usize)
            .map(|s| &**s)
            .ok_or_else(|| EngineError::UnknownAgent(format!("#{a}")))
    }

    fn agent_state_of(&self, a: u32) -> AgentState {
        let Some(slot) = self.slots.get(a as usize) else {
            return AgentState::LoggedOut;
        };
        let w = slot.word.load(SeqCst);
        let call = CallId(call_of(w));
        match tag(w) {
            AgentStateKind::LoggedOut => AgentState::LoggedOut,
            AgentStateKind::Available => AgentState::Available,
            AgentStateKind::Ringing => AgentState::Ringing(call),
            AgentStateKind::OnCall => AgentState::OnCall(call),
            AgentStateKind::WrapUp => AgentState::WrapUp(call),
            AgentStateKind::Break => AgentState::Break {
                reason: self.reasons.get(&a).filter(|r| !r.is_empty()),
            },
            AgentStateKind::Absent => AgentState::Absent {
                substitute: self
                    .agents
                    .get(slot.substitute.load(SeqCst) as usize)
                    .map(|i| i.id.clone()),
            },
            AgentStateKind::NotReady => AgentState::NotReady,
        }
    }

    fn kind_of(&self, a: u32) -> AgentStateKind {
        self.slots
            .get(a as usize)
            .map_or(AgentStateKind::LoggedOut, |s| tag(s.word.load(SeqCst)))
    }

    fn id_of(&self, a: u32) -> &str {
        let a = a as usize;
        let start = match a.checked_sub(1) {
            None => 0,
            Some(prev) => self.id_ends.get(prev).copied().unwrap_or(0),
        };
        self.id_ends
            .get(a)
            .and_then(|&end| self.ids.get(start as usize..end as usize))
            .unwrap_or("?")
    }

    fn template(&self, t: TemplateRef) -> &[TemplateStep] {
        match t {
            TemplateRef::Class(c) => self.chains.get(c),
            TemplateRef::Queue(q) => self.queue_chains.get(q),
            TemplateRef::Agent(a) => self.agent_chains.get(a),
            TemplateRef::Role(r) => self.role_chains.get(r),
        }
        .map_or(&[][..], |c| &c[..])
    }

    // ---- internals: calls ------------------------------------------------------------------

    /// The cell of `call`, or `UnknownCall`.
    fn cell(&self, call: CallId) -> Result<Arc<CallCell>, EngineError> {
        self.call_shard(call.0)
            .get(&call.0)
            .ok_or(EngineError::UnknownCall(call))
    }

    fn call_shard(&self, id: u64) -> &OrderedMap<u64, Arc<CallCell>> {
        // In range: the array has CALL_SHARDS entries.
        &self.calls[(id % CALL_SHARDS) as usize]
    }

    fn call_by_low_bits(&self, low: u64) -> Option<Arc<CallCell>> {
        // Call ids stay below 2^40 in practice, so the low bits are the id.
        self.call_shard(low).get(&low)
    }
}

/// The API the server drives, implemented by [`Engine`] and by the benchmark baseline
/// [`crate::baseline::MutexEngine`]. Every method runs the [`Engine`] method of the same name
/// on the engine [`QueueEngine::with_engine`] reaches; an implementation says only how it
/// reaches its engine.
pub trait QueueEngine: Send + Sync {
    /// Runs `f` on the engine behind this handle, under whatever guards it.
    fn with_engine<T>(&self, f: impl FnOnce(&Engine) -> T) -> T;
    /// See [`Engine::route_call`].
    fn route_call(&self, now: Time, req: CallRequest) -> Result<CallId, EngineError> {
        self.with_engine(|e| e.route_call(now, req))
    }
    /// See [`Engine::next_offer`].
    fn next_offer(&self) -> Option<Offer> {
        self.with_engine(Engine::next_offer)
    }
    /// See [`Engine::report`].
    fn report(&self, now: Time, call: CallId, outcome: Outcome) -> Result<(), EngineError> {
        self.with_engine(|e| e.report(now, call, outcome))
    }
    /// See [`Engine::hangup`].
    fn hangup(&self, now: Time, call: CallId, side: HangupSide) -> Result<(), EngineError> {
        self.with_engine(|e| e.hangup(now, call, side))
    }
    /// See [`Engine::set_agent_state`].
    fn set_agent_state(
        &self,
        now: Time,
        agent: AgentIdx,
        change: AgentStateChange,
    ) -> Result<(), EngineError> {
        self.with_engine(|e| e.set_agent_state(now, agent, change))
    }
    /// See [`Engine::handle_timeout`].
    fn handle_timeout(&self, now: Time) {
        self.with_engine(|e| e.handle_timeout(now));
    }
    /// See [`Engine::poll_event`].
    fn poll_event(&self) -> Option<Event> {
        self.with_engine(Engine::poll_event)
    }
    /// See [`Engine::poll_offers`].
    fn poll_offers(&self) -> Vec<Offer> {
        self.with_engine(Engine::poll_offers)
    }
    /// Moves every pending event into `out`.
    fn drain_events(&self, out: &mut Vec<Event>) {
        self.with_engine(|e| e.events.drain(out));
    }
}

impl QueueEngine for Engine {
    fn with_engine<T>(&self, f: impl FnOnce(&Engine) -> T) -> T {
        f(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AgentConfig, QueueConfig};
    use crate::model::{Client, ClientType};

    #[test]
    fn finished_calls_are_freed_after_waiting_list_scans() {
        // Two agents, both talking, and a backlog of calls: every call waits in the list
        // behind others until hang-ups free an agent; dispatch and `stats` scan the list.
        let mut cfg = EngineConfig::default();
        for i in 0..2 {
            cfg.agents.push(AgentConfig {
                id: format!("a{i}"),
                skills: vec![("orders".into(), 1)],
                ..AgentConfig::default()
            });
        }
        cfg.queues.push(QueueConfig {
            wrap_up_s: 0,
            ..QueueConfig::new("orders", "orders")
        });
        cfg.queues.push(QueueConfig::new("regional", "regional"));
        let e = Engine::new(cfg).unwrap();
        for a in 0..2 {
            e.set_agent_state(Time::ZERO, AgentIdx(a), AgentStateChange::Available)
                .unwrap();
        }
        let mut now = Time::from_secs(1);
        let mut cells = Vec::new();
        let mut talking = std::collections::VecDeque::new();
        for i in 0..1000 {
            now = now.plus_millis(10);
            let req = CallRequest {
                caller: "+1".into(),
                client: Some(Client {
                    number: "+1".into(),
                    name: "c".into(),
                    client_type: ClientType::Retail,
                    manager: None,
                    region: None,
                    overdue_debt: 0,
                }),
                ..CallRequest::default()
            };
            let c = e.route_call(now, req).unwrap();
            cells.push(Arc::downgrade(&e.call_shard(c.0).get(&c.0).unwrap()));
            let _ = e.stats(now, QueueIdx(0));
            if i >= 7 && talking.len() >= 2 {
                e.hangup(now, talking.pop_front().unwrap(), HangupSide::Caller)
                    .unwrap();
            }
            for o in e.poll_offers() {
                e.report(now, o.call, Outcome::Answered(o.agents[0]))
                    .unwrap();
                talking.push_back(o.call);
            }
            while e.poll_event().is_some() {}
        }
        let alive = cells.iter().filter(|w| w.strong_count() > 0).count();
        // Calls still in progress, plus removed entries the skip list's epoch collector has
        // not reclaimed yet (a bounded number), stay; a thousand finished calls do not.
        assert!(alive < 200, "{alive} of 1000 call records still alive");
    }
}
