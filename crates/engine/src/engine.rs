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
    Class, Client, ClientDirectory, Event, HangupSide, Offer, Outcome, Purpose, QueueIdx,
    QueueStats, Step, Strategy, Time,
};
use crate::sync::{
    AtomicU32, AtomicU64, EventLog, Fifo, OrderedMap,
    Ordering::{Relaxed, SeqCst},
    fence,
};

// ---- the agent word: state tag | generation | call -------------------------------------------

const TAG_SHIFT: u32 = 60;
const GEN_SHIFT: u32 = 40;
const GEN_MASK: u64 = (1 << 19) - 1;
/// Set on a `ringing` word while its offer is being committed (see [`Engine::commit`]): the
/// agent is claimed, but the call may not be offered to it yet.
const PENDING: u64 = 1 << 59;
/// Calls are identified in agent words by the low 40 bits of their id (10^12 calls).
const CALL_MASK: u64 = (1 << 40) - 1;
const NONE: u32 = u32::MAX;
/// Shards of the call map (one under loom, whose models have a few calls).
#[cfg(not(loom))]
const CALL_SHARDS: u64 = 64;
#[cfg(loom)]
const CALL_SHARDS: u64 = 1;

fn pack(kind: AgentStateKind, generation: u64, call: u64) -> u64 {
    ((kind as u64) << TAG_SHIFT) | ((generation & GEN_MASK) << GEN_SHIFT) | (call & CALL_MASK)
}
fn tag(w: u64) -> AgentStateKind {
    AgentStateKind::from_tag(w >> TAG_SHIFT)
}
fn generation(w: u64) -> u64 {
    (w >> GEN_SHIFT) & GEN_MASK
}
fn call_of(w: u64) -> u64 {
    w & CALL_MASK
}
fn pending(w: u64) -> bool {
    w & PENDING != 0
}
/// Agent `a`'s word says it rings for `call`, its offer committed.
fn rings_for(w: u64, call: u64) -> bool {
    tag(w) == AgentStateKind::Ringing && !pending(w) && call_of(w) == call & CALL_MASK
}

// ---- the call status word: status << 56 | agent ---------------------------------------------

const CS_WAITING: u64 = 0;
const CS_OFFERED: u64 = 1;
const CS_TALKING: u64 = 2;
const CS_ENDED: u64 = 3;
const CS_GONE: u64 = 4;
/// Agent field of a `ring_all` offer (the agents are in `ring_sets`).
const RING_ALL: u32 = u32::MAX;

fn status(st: u64) -> u64 {
    st >> 56
}
fn status_agent(st: u64) -> u32 {
    (st & 0xffff_ffff) as u32
}
fn mk_status(s: u64, agent: u32) -> u64 {
    (s << 56) | u64::from(agent)
}
/// `offered` with the call's offer sequence number, so that each offer's status word is
/// unique and "put the call back" is one CAS that only the offer's last releaser wins.
fn mk_offered(seq: u32, agent: u32) -> u64 {
    mk_status(CS_OFFERED, agent) | (u64::from(seq & 0xff_ffff) << 32)
}
fn status_name(st: u64) -> &'static str {
    match status(st) {
        CS_WAITING => "waiting",
        CS_OFFERED => "offered",
        CS_TALKING => "talking",
        CS_ENDED => "ended",
        _ => "gone",
    }
}

/// One agent's mutable state. The `word` is the truth; everything else is bookkeeping that
/// only its current owner (the thread that moved the word) writes.
struct AgentSlot {
    word: AtomicU64,
    state_since: AtomicU64,
    idle_since: AtomicU64,
    calls_today: AtomicU64,
    talk_ms_today: AtomicU64,
    no_answer_streak: AtomicU32,
    substitute: AtomicU32,
}

struct AgentInfo {
    id: String,
    name: String,
    roles: Vec<u32>,
    skills: Vec<(u32, u8)>,
    default_substitute: u32,
    /// Waiting lists this agent can serve: its own, its roles', its skills' queues'.
    lists: Vec<ListRef>,
    /// The agent's place in each availability index it belongs to: (index, position).
    hints: Vec<(usize, usize)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListRef {
    Agent(u32),
    Role(u32),
    Queue(u32),
}

/// Which agent-global key orders a strategy's choice within a skill level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HintKind {
    Idle = 0,
    Index = 1,
    Calls = 2,
    Talk = 3,
}

fn hint_kind(s: Strategy) -> HintKind {
    match s {
        Strategy::LongestIdle => HintKind::Idle,
        Strategy::FewestCalls => HintKind::Calls,
        Strategy::LeastTalkTime => HintKind::Talk,
        Strategy::RoundRobin | Strategy::RingAll | Strategy::Random | Strategy::Linear => {
            HintKind::Index
        }
    }
}

/// The available agents of one skill (or role), as a *hint*: one bit per member, plus each
/// member's strategy keys as they were when it became available.
///
/// Members have fixed positions, ordered by (level desc, agent index), so a level is a
/// contiguous range of bits and index order within a level is bit order. Publishing or
/// withdrawing an agent is one `fetch_or` / `fetch_and` per skill — no search, no allocation
/// (a lock-free ordered map here cost a skip-list search per skill × strategy key on every
/// availability change). A claim always re-validates the agent word, so a set bit whose agent
/// is no longer available (a *stale* bit) only costs a look; the invariant the engine keeps is
/// the other direction: **an available agent's bits are set** once its publisher has run
/// (see [`Engine::unindex`]). Keys only order the choice; a key that moved during a scan is
/// made up for by a final pass in index order, so a live agent is never passed over.
struct AvailIndex {
    /// Agent indices by (level desc, index asc).
    members: Vec<u32>,
    /// Level ranges over `members`, best level first: `start..end`.
    levels: Vec<(usize, usize)>,
    /// Bit p set: `members[p]` is (probably) available.
    bits: Vec<AtomicU64>,
    /// Per [`HintKind`] with a key (idle since, calls today, talk today), when a queue on this
    /// skill uses it: each member's key at the moment it became available.
    keys: [Option<Vec<AtomicU64>>; 4],
}

impl AvailIndex {
    fn new(mut members: Vec<(u8, u32)>, kinds: &BTreeSet<usize>) -> AvailIndex {
        members.sort_by_key(|&(level, a)| (u8::MAX - level, a));
        let mut levels: Vec<(usize, usize)> = Vec::new();
        for (p, w) in members.windows(2).enumerate() {
            if let [(l0, _), (l1, _)] = w
                && l0 != l1
            {
                levels.push((levels.last().map_or(0, |l| l.1), p + 1));
            }
        }
        if !members.is_empty() {
            levels.push((levels.last().map_or(0, |l| l.1), members.len()));
        }
        let n = members.len();
        AvailIndex {
            members: members.into_iter().map(|(_, a)| a).collect(),
            levels,
            bits: (0..n.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            keys: std::array::from_fn(|k| {
                (k != HintKind::Index as usize && kinds.contains(&k))
                    .then(|| (0..n).map(|_| AtomicU64::new(0)).collect())
            }),
        }
    }

    fn set(&self, pos: usize, on: bool) {
        if let Some(w) = self.bits.get(pos / 64) {
            let bit = 1u64 << (pos % 64);
            if on {
                w.fetch_or(bit, SeqCst);
            } else {
                w.fetch_and(!bit, SeqCst);
            }
        }
    }

    /// Calls `f` with every set position in `start..end`, in order, until it breaks.
    fn each_set(
        &self,
        start: usize,
        end: usize,
        mut f: impl FnMut(usize) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let mut p = start;
        while p < end {
            let wi = p / 64;
            let Some(word) = self.bits.get(wi) else { break };
            let mut w = (word.load(SeqCst) >> (p % 64)) << (p % 64);
            let word_end = (wi + 1) * 64;
            if end < word_end {
                w &= (1u64 << (end % 64)) - 1;
            }
            while w != 0 {
                f(wi * 64 + w.trailing_zeros() as usize)?;
                w &= w - 1;
            }
            p = word_end;
        }
        ControlFlow::Continue(())
    }
}

/// Position in a waiting list: higher priority first, then arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct WaitKey {
    prio_rev: u8,
    seq: u64,
}

/// A waiting list: calls by (priority desc, arrival).
struct WaitList {
    map: OrderedMap<WaitKey, Arc<CallCell>>,
    /// Incremented before every insert (see [`Engine::register`]), decremented after every
    /// successful remove, so it is never below the number of entries: zero means "nothing to
    /// scan". Agent-side dispatch reads it after its SeqCst fence, which orders it against a
    /// caller's increment the same way the scan itself would be (see
    /// [`Engine::dispatch_agent`]). A call registered twice under the same key leaves it one
    /// too high: a wasted scan, never a missed call.
    count: AtomicU64,
}

impl WaitList {
    fn new() -> WaitList {
        WaitList {
            map: OrderedMap::new(),
            count: AtomicU64::new(0),
        }
    }
    fn remove(&self, key: &WaitKey) -> bool {
        let removed = self.map.remove(key);
        if removed {
            self.count.fetch_sub(1, SeqCst);
        }
        removed
    }
    fn maybe_nonempty(&self) -> bool {
        self.count.load(SeqCst) != 0
    }
    fn len(&self) -> usize {
        self.map.len()
    }
    fn scan(
        &self,
        from: Bound<&WaitKey>,
        f: impl FnMut(&WaitKey, &Arc<CallCell>) -> ControlFlow<()>,
    ) {
        self.map.scan(from, f);
    }
}

struct QueueRt {
    cfg: QueueConfig,
    skill: u32,
    waiting: WaitList,
    rr_cursor: AtomicU32,
    agents: Vec<u32>,
    entered: AtomicU64,
    answered: AtomicU64,
    answered_within: AtomicU64,
    abandoned: AtomicU64,
    overflowed: AtomicU64,
    wait_total: AtomicU64,
    /// Calls of this queue offered at once on arrival and not yet answered, put back or gone:
    /// they wait (ring) without being in `waiting`.
    unlisted: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Agent(u32),
    Role(u32),
    Queue(u32),
    Nobody,
}

#[derive(Debug, Clone)]
enum TemplateKind {
    AssignedManager,
    Agent(u32),
    Role(u32),
    Queue(u32),
}

#[derive(Debug, Clone)]
struct TemplateStep {
    label: Arc<str>,
    kind: TemplateKind,
}

/// Which route chain template a call was resolved from (its steps' labels live there).
#[derive(Debug, Clone, Copy)]
enum TemplateRef {
    Class(usize),
    Queue(usize),
    /// A transfer to one agent (`agent:<id>`).
    Agent(usize),
    /// A transfer to a role (`role:<role>`).
    Role(usize),
}

/// A resolved step of one call's chain (step `i` comes from step `i` of the call's template).
struct CallStep {
    target: Target,
    /// For `assigned_manager`: the manager (the target may be their substitute).
    manager: u32,
    /// Position key priority in the target's list.
    prio: u8,
}

/// One call. Immutable routing data plus the atomics of the offer protocol.
struct CallCell {
    id: CallId,
    template: TemplateRef,
    enqueued_at: Time,
    steps: Vec<CallStep>,
    /// [`CS_WAITING`] ... with the offered/talking agent in the low bits. Every move of a call
    /// is one CAS on this word: "never offered twice at once" is this CAS.
    status: AtomicU64,
    /// Steps `0..frontier` have been reached; reached steps stay eligible.
    frontier: AtomicU32,
    frontier_since: AtomicU64,
    /// Bit i: step i's target list holds this call.
    registered: AtomicU64,
    attempts: AtomicU32,
    offer_seq: AtomicU32,
    /// Agents still ringing for the current offer; the release that brings it to zero puts
    /// the call back.
    ringing: AtomicU32,
    last_no_answer: AtomicU32,
    offered_step: AtomicU32,
    stats_queue: AtomicU32,
    answered_at: AtomicU64,
    /// 1 while the call, offered at once on arrival, is in no waiting list (see
    /// [`Engine::route_along`]); counted in its queue's `unlisted`.
    unlisted: AtomicU32,
}

impl CallCell {
    fn st(&self) -> u64 {
        self.status.load(SeqCst)
    }
    fn is_registered(&self, i: usize) -> bool {
        i < 64 && self.registered.load(SeqCst) & (1u64 << i) != 0
    }
    fn key(&self, i: usize) -> Option<WaitKey> {
        self.steps.get(i).map(|s| WaitKey {
            prio_rev: u8::MAX - s.prio,
            seq: self.id.0,
        })
    }
    fn step_for(&self, lr: ListRef) -> Option<usize> {
        self.steps.iter().enumerate().position(|(i, s)| {
            self.is_registered(i)
                && match (lr, s.target) {
                    (ListRef::Agent(a), Target::Agent(b)) => a == b,
                    (ListRef::Role(a), Target::Role(b)) => a == b,
                    (ListRef::Queue(a), Target::Queue(b)) => a == b,
                    _ => false,
                }
        })
    }
}

const T_ADVANCE: u8 = 0;
const T_WRAPUP: u8 = 1;

/// A claimed agent and the (pending) word its claim wrote.
#[derive(Debug, Clone, Copy)]
struct Claim {
    agent: u32,
    word: u64,
}

/// A timer: (deadline, kind, call or agent, stage or call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct TimerKey {
    at: u64,
    kind: u8,
    id: u64,
    aux: u64,
}

enum Attempt {
    Offered,
    CallTaken,
    NoAgent,
}

enum Hold {
    Until(Time),
    Forever,
    Pass,
}

/// The queue engine. All methods take `&self` and may be called from many threads at once;
/// see the crate documentation.
pub struct Engine {
    no_answer_limit: u32,
    busy_wait_ms: u64,
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

fn cfg_err(key: String, message: impl Into<String>) -> EngineError {
    EngineError::Config {
        key,
        message: message.into(),
    }
}

fn intern(names: &mut Vec<String>, map: &mut HashMap<String, u32>, name: &str) -> u32 {
    if let Some(&i) = map.get(name) {
        return i;
    }
    let i = names.len() as u32;
    names.push(name.to_owned());
    map.insert(name.to_owned(), i);
    i
}

fn secs_to_ms(s: u32) -> u64 {
    u64::from(s) * 1000
}

impl Engine {
    /// Builds an engine. Every agent starts `logged_out`. Errors name the config key at fault.
    pub fn new(cfg: EngineConfig) -> Result<Engine, EngineError> {
        if cfg.agents.len() >= NONE as usize {
            return Err(cfg_err("agents".into(), "too many agents"));
        }
        let mut agent_by_id = HashMap::new();
        for (i, a) in cfg.agents.iter().enumerate() {
            if agent_by_id.insert(a.id.clone(), i as u32).is_some() {
                return Err(cfg_err(
                    format!("agents[{i}].id"),
                    format!("duplicate agent {:?}", a.id),
                ));
            }
        }
        let mut role_names = Vec::new();
        let mut role_map = HashMap::new();
        let mut skill_names = Vec::new();
        let mut skill_map = HashMap::new();
        let mut agents = Vec::with_capacity(cfg.agents.len());
        for (i, a) in cfg.agents.iter().enumerate() {
            let roles = a
                .roles
                .iter()
                .map(|r| intern(&mut role_names, &mut role_map, r))
                .collect();
            let skills = a
                .skills
                .iter()
                .map(|(s, l)| (intern(&mut skill_names, &mut skill_map, s), *l))
                .collect();
            let default_substitute = match &a.substitute {
                None => NONE,
                Some(s) => *agent_by_id.get(s).ok_or_else(|| {
                    cfg_err(
                        format!("agents[{i}].substitute"),
                        format!("unknown agent {s:?}"),
                    )
                })?,
            };
            agents.push(AgentInfo {
                id: a.id.clone(),
                name: a.name.clone(),
                roles,
                skills,
                default_substitute,
                lists: Vec::new(),
                hints: Vec::new(),
            });
        }
        let mut queue_by_name = HashMap::new();
        for (i, q) in cfg.queues.iter().enumerate() {
            if queue_by_name.insert(q.name.clone(), i as u32).is_some() {
                return Err(cfg_err(
                    format!("queues[{i}].name"),
                    format!("duplicate queue {:?}", q.name),
                ));
            }
        }
        let resolve = |step: &Step,
                       key: String,
                       role_names: &mut Vec<String>,
                       role_map: &mut HashMap<String, u32>| {
            Ok::<_, EngineError>(match step {
                Step::AssignedManager => TemplateKind::AssignedManager,
                Step::Agent(id) => TemplateKind::Agent(
                    *agent_by_id
                        .get(id)
                        .ok_or_else(|| cfg_err(key, format!("unknown agent {id:?}")))?,
                ),
                Step::Role(r) => TemplateKind::Role(intern(role_names, role_map, r)),
                Step::Queue(q) => TemplateKind::Queue(
                    *queue_by_name
                        .get(q)
                        .ok_or_else(|| cfg_err(key, format!("unknown queue {q:?}")))?,
                ),
            })
        };
        let mut overflow = Vec::with_capacity(cfg.queues.len());
        for (i, q) in cfg.queues.iter().enumerate() {
            overflow.push(match &q.overflow {
                None => None,
                Some(step) => Some(TemplateStep {
                    label: step.to_string().into(),
                    kind: resolve(
                        step,
                        format!("queues[{i}].overflow"),
                        &mut role_names,
                        &mut role_map,
                    )?,
                }),
            });
        }
        let mut chains = Vec::with_capacity(Class::ALL.len());
        for class in Class::ALL {
            let (steps, origin) = match cfg.routing.get(&class) {
                Some(s) => (s.clone(), "routing"),
                None => (default_chain(class), "built-in chain"),
            };
            if steps.is_empty() {
                return Err(cfg_err(
                    format!("routing.{}", class.as_str()),
                    "empty route chain",
                ));
            }
            let mut chain = Vec::new();
            for (i, step) in steps.iter().enumerate() {
                let key = format!("routing.{}[{i}]", class.as_str());
                let kind = resolve(step, key.clone(), &mut role_names, &mut role_map).map_err(|e| match e {
                    EngineError::Config { key, message } if origin != "routing" => EngineError::Config {
                        key,
                        message: format!("{message} (needed by the {origin}; define it or override routing.{})", class.as_str()),
                    },
                    e => e,
                })?;
                let of_queue = if let TemplateKind::Queue(q) = kind {
                    Some(q)
                } else {
                    None
                };
                chain.push(TemplateStep {
                    label: step.to_string().into(),
                    kind,
                });
                if let Some(ov) = of_queue.and_then(|q| overflow.get(q as usize).cloned().flatten())
                {
                    chain.push(ov);
                }
            }
            if chain.len() > 64 {
                return Err(cfg_err(
                    format!("routing.{}", class.as_str()),
                    "more than 64 steps",
                ));
            }
            chains.push(chain);
        }
        let queue_chains: Vec<Vec<TemplateStep>> = cfg
            .queues
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let mut chain = vec![TemplateStep {
                    label: format!("queue:{}", q.name).into(),
                    kind: TemplateKind::Queue(i as u32),
                }];
                chain.extend(overflow.get(i).cloned().flatten());
                chain
            })
            .collect();
        let mut skill_kinds: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); skill_names.len()];
        let mut queues = Vec::with_capacity(cfg.queues.len());
        for q in &cfg.queues {
            let skill = intern(&mut skill_names, &mut skill_map, &q.skill);
            if skill_kinds.len() < skill_names.len() {
                skill_kinds.resize(skill_names.len(), BTreeSet::new());
            }
            if let Some(set) = skill_kinds.get_mut(skill as usize) {
                set.insert(hint_kind(q.strategy) as usize);
            }
            queues.push(QueueRt {
                cfg: q.clone(),
                skill,
                waiting: WaitList::new(),
                rr_cursor: AtomicU32::new(0),
                agents: Vec::new(),
                entered: AtomicU64::new(0),
                answered: AtomicU64::new(0),
                answered_within: AtomicU64::new(0),
                abandoned: AtomicU64::new(0),
                overflowed: AtomicU64::new(0),
                wait_total: AtomicU64::new(0),
                unlisted: AtomicU64::new(0),
            });
        }
        for (ai, a) in agents.iter_mut().enumerate() {
            let ai = ai as u32;
            a.lists.push(ListRef::Agent(ai));
            a.lists.extend(a.roles.iter().map(|&r| ListRef::Role(r)));
            for (qi, q) in queues.iter_mut().enumerate() {
                if a.skills.iter().any(|&(s, _)| s == q.skill) {
                    a.lists.push(ListRef::Queue(qi as u32));
                    q.agents.push(ai);
                }
            }
        }
        // Availability indices: per skill a queue uses (keys for its queues' strategies), per
        // role a chain uses (longest idle first).
        let mut avail = Vec::new();
        let mut skill_avail = vec![None; skill_kinds.len()];
        for (s, kinds) in skill_kinds.iter().enumerate() {
            if kinds.is_empty() {
                continue;
            }
            let members = agents
                .iter()
                .enumerate()
                .filter_map(|(ai, a)| {
                    a.skills
                        .iter()
                        .find(|&&(sk, _)| sk as usize == s)
                        .map(|&(_, level)| (level, ai as u32))
                })
                .collect();
            if let Some(slot) = skill_avail.get_mut(s) {
                *slot = Some(avail.len());
            }
            avail.push(AvailIndex::new(members, kinds));
        }
        let agent_chains: Vec<Vec<TemplateStep>> = agents
            .iter()
            .enumerate()
            .map(|(i, a)| {
                vec![TemplateStep {
                    label: format!("agent:{}", a.id).into(),
                    kind: TemplateKind::Agent(i as u32),
                }]
            })
            .collect();
        let idle_only = BTreeSet::from([HintKind::Idle as usize]);
        let mut role_avail = vec![None; role_names.len()];
        for (r, slot) in role_avail.iter_mut().enumerate() {
            let used = chains
                .iter()
                .chain(queue_chains.iter())
                .flatten()
                .any(|t| matches!(t.kind, TemplateKind::Role(x) if x as usize == r));
            if used {
                let members = agents
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| a.roles.iter().any(|&x| x as usize == r))
                    .map(|(ai, _)| (0, ai as u32))
                    .collect();
                *slot = Some(avail.len());
                avail.push(AvailIndex::new(members, &idle_only));
            }
        }
        for (ix, index) in avail.iter().enumerate() {
            for (pos, &a) in index.members.iter().enumerate() {
                if let Some(info) = agents.get_mut(a as usize) {
                    info.hints.push((ix, pos));
                }
            }
        }
        let mut class_priority = [0u8; 7];
        for (c, p) in &cfg.class_priority {
            if let Some(slot) = class_priority.get_mut(c.index()) {
                *slot = *p;
            }
        }
        let slots = agents
            .iter()
            .map(|a| {
                CachePadded::new(AgentSlot {
                    word: AtomicU64::new(pack(AgentStateKind::LoggedOut, 0, 0)),
                    state_since: AtomicU64::new(0),
                    idle_since: AtomicU64::new(0),
                    calls_today: AtomicU64::new(0),
                    talk_ms_today: AtomicU64::new(0),
                    no_answer_streak: AtomicU32::new(0),
                    substitute: AtomicU32::new(a.default_substitute),
                })
            })
            .collect();
        // Transfers to a role: roles the chains use have an availability index and route like
        // a `role:` step; a role no chain uses gets no index (it would cost every availability
        // change) and is served by its members as `agent:` steps, in configuration order.
        let role_chains: Vec<Vec<TemplateStep>> = role_names
            .iter()
            .enumerate()
            .map(|(r, name)| {
                let label: Arc<str> = format!("role:{name}").into();
                if role_avail.get(r).is_some_and(Option::is_some) {
                    vec![TemplateStep {
                        label,
                        kind: TemplateKind::Role(r as u32),
                    }]
                } else {
                    agents
                        .iter()
                        .enumerate()
                        .filter(|(_, a)| a.roles.iter().any(|&x| x as usize == r))
                        .map(|(ai, _)| TemplateStep {
                            label: Arc::clone(&label),
                            kind: TemplateKind::Agent(ai as u32),
                        })
                        .collect()
                }
            })
            .collect();
        Ok(Engine {
            no_answer_limit: cfg.no_answer_limit.max(1),
            busy_wait_ms: secs_to_ms(cfg.busy_manager_wait_s),
            sl_threshold_ms: secs_to_ms(cfg.service_level_threshold_s),
            seed: cfg.seed,
            default_ring_ms: secs_to_ms(cfg.default_ring_timeout_s),
            default_wrap_ms: secs_to_ms(cfg.default_wrap_up_s),
            ring_all_limit: cfg.ring_all_limit.max(1),
            class_priority,
            agent_lists: agents.iter().map(|_| WaitList::new()).collect(),
            role_lists: role_names.iter().map(|_| WaitList::new()).collect(),
            role_names,
            ids: agents.iter().map(|a| a.id.as_str()).collect(),
            id_ends: agents
                .iter()
                .scan(0u32, |end, a| {
                    *end = end.saturating_add(a.id.len() as u32);
                    Some(*end)
                })
                .collect(),
            avail,
            skill_avail,
            role_avail,
            agents,
            slots,
            agent_by_id,
            queues,
            queue_by_name,
            chains,
            queue_chains,
            agent_chains,
            role_chains,
            calls: std::array::from_fn(|_| OrderedMap::new()),
            next_call: AtomicU64::new(1),
            rng_counter: AtomicU64::new(0),
            timers: OrderedMap::new(),
            ring_sets: OrderedMap::new(),
            reasons: OrderedMap::new(),
            offers: Fifo::new(),
            events: EventLog::new(),
        })
    }

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

    /// Fires every timer due at `now`: wrap-up ends, queue max waits (overflow), busy-manager
    /// waits. Several threads may call it; each timer fires once.
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

    // ---- calls -----------------------------------------------------------------------------

    /// Routes a call whose client the caller already looked up: classifies it, walks its
    /// route chain and either offers it at once (see [`Engine::next_offer`]) or lets it wait.
    /// `Err(NoRoute)` when no step of the chain can ever take it.
    pub fn route_call(&self, now: Time, req: CallRequest) -> Result<CallId, EngineError> {
        let class = classify(req.client.as_ref(), req.purpose);
        let template_ref = match req.queue {
            Some(q) => TemplateRef::Queue(q.0 as usize),
            None => TemplateRef::Class(class.index()),
        };
        self.route_along(now, req, class, template_ref)
    }

    /// Routes a call to one named target instead of its class chain: a blind transfer to
    /// `agent:<id>`, `role:<role>` or `queue:<name>` (whose overflow still applies). The
    /// client and purpose still give the class (priority, the record).
    pub fn route_call_to(
        &self,
        now: Time,
        req: CallRequest,
        target: &Step,
    ) -> Result<CallId, EngineError> {
        let class = classify(req.client.as_ref(), req.purpose);
        let unknown = |what: &'static str, value: &str| EngineError::BadValue {
            what,
            value: value.to_owned(),
        };
        let template_ref = match target {
            Step::Agent(id) => TemplateRef::Agent(
                self.agent_by_id
                    .get(id)
                    .copied()
                    .ok_or_else(|| unknown("agent", id))? as usize,
            ),
            Step::Role(role) => TemplateRef::Role(
                self.role_names
                    .iter()
                    .position(|r| r == role)
                    .ok_or_else(|| unknown("role", role))?,
            ),
            Step::Queue(name) => TemplateRef::Queue(
                self.queue_by_name
                    .get(name)
                    .copied()
                    .ok_or_else(|| unknown("queue", name))? as usize,
            ),
            Step::AssignedManager => TemplateRef::Class(class.index()),
        };
        self.route_along(now, req, class, template_ref)
    }

    fn route_along(
        &self,
        now: Time,
        req: CallRequest,
        class: Class,
        template_ref: TemplateRef,
    ) -> Result<CallId, EngineError> {
        let _batch = self.events.batch();
        let id = self.next_call.fetch_add(1, SeqCst);
        let base_prio = req
            .priority
            .unwrap_or_else(|| self.class_priority.get(class.index()).copied().unwrap_or(0));
        let template = self.template(template_ref);
        let steps = self.resolve_chain(template, class, req.client.as_ref(), base_prio);
        if steps.iter().all(|s| s.target == Target::Nobody) {
            return Err(EngineError::NoRoute(CallId(id)));
        }
        let cell = Arc::new(CallCell {
            id: CallId(id),
            template: template_ref,
            enqueued_at: now,
            steps,
            status: AtomicU64::new(mk_status(CS_WAITING, NONE)),
            frontier: AtomicU32::new(1),
            frontier_since: AtomicU64::new(now.as_millis()),
            registered: AtomicU64::new(0),
            attempts: AtomicU32::new(0),
            offer_seq: AtomicU32::new(0),
            ringing: AtomicU32::new(0),
            last_no_answer: AtomicU32::new(NONE),
            offered_step: AtomicU32::new(0),
            stats_queue: AtomicU32::new(NONE),
            answered_at: AtomicU64::new(0),
            unlisted: AtomicU32::new(0),
        });
        self.call_shard(id).insert(id, cell.clone());
        // Fast path: nobody waits in the first step's list, so no earlier call has a claim on
        // its agents, and a call no other thread can see yet needs no place in the list to be
        // offered. It takes its place (by its arrival key) only if it has to wait after all,
        // here or when its offer fails (see `release_ring`).
        let fast = self.nobody_waiting_first(&cell);
        match fast {
            Some(first_queue) => {
                cell.unlisted.store(1, SeqCst);
                if let Some(q) = first_queue {
                    self.count_entry(&cell, q);
                    if let Some(rt) = self.queues.get(q as usize) {
                        rt.unlisted.fetch_add(1, SeqCst);
                    }
                }
            }
            None => self.register(&cell, 0),
        }
        let queue = match cell.stats_queue.load(SeqCst) {
            NONE => None,
            q => Some(QueueIdx(q)),
        };
        self.events.push(Event::CallEnqueued {
            call: cell.id,
            class,
            queue,
            at: now,
        });
        if fast.is_some() {
            let attempt = self.try_step_direct(now, &cell, 0);
            if let Attempt::Offered = attempt {
                return Ok(cell.id);
            }
            self.listed(&cell);
            if let Attempt::CallTaken = attempt {
                return Ok(cell.id);
            }
            self.register_at(&cell, 0, false);
        }
        self.dispatch_call(now, &cell);
        if cell.registered.load(SeqCst) == 0
            && cell
                .status
                .compare_exchange(
                    mk_status(CS_WAITING, NONE),
                    mk_status(CS_GONE, NONE),
                    SeqCst,
                    SeqCst,
                )
                .is_ok()
        {
            self.call_shard(id).remove(&id);
            return Err(EngineError::NoRoute(cell.id));
        }
        Ok(cell.id)
    }

    /// The call entered queue `q`: the first queue it enters is the one its statistics count.
    fn count_entry(&self, cell: &CallCell, q: u32) {
        if let Some(rt) = self.queues.get(q as usize)
            && cell
                .stats_queue
                .compare_exchange(NONE, q, SeqCst, SeqCst)
                .is_ok()
        {
            rt.entered.fetch_add(1, SeqCst);
        }
    }

    /// The call no longer waits unlisted (answered, gone, or now in a waiting list).
    fn listed(&self, cell: &CallCell) {
        if cell.unlisted.swap(0, SeqCst) == 1
            && let Some(rt) = self.queues.get(cell.stats_queue.load(SeqCst) as usize)
        {
            rt.unlisted.fetch_sub(1, SeqCst);
        }
    }

    /// For the arrival fast path: `Some(queue)` when nobody waits in the list of the call's
    /// first step (and the step is a list a call may wait in), with the step's queue if any.
    fn nobody_waiting_first(&self, cell: &CallCell) -> Option<Option<u32>> {
        let step = cell.steps.first()?;
        if self.list_of(step.target)?.maybe_nonempty() {
            return None;
        }
        match step.target {
            Target::Queue(q) => {
                let rt = self.queues.get(q as usize)?;
                (rt.cfg.max_len != Some(0)).then_some(Some(q))
            }
            _ => Some(None),
        }
    }

    /// [`Engine::route_call`] with the client looked up in `directory`.
    pub fn route_call_with(
        &self,
        now: Time,
        caller: &str,
        purpose: Purpose,
        directory: &dyn ClientDirectory,
    ) -> Result<CallId, EngineError> {
        self.route_call(
            now,
            CallRequest {
                caller: caller.to_owned(),
                purpose,
                client: directory.lookup(caller),
                priority: None,
                queue: None,
            },
        )
    }

    /// Reports what became of an offer (or that the caller left).
    pub fn report(&self, now: Time, call: CallId, outcome: Outcome) -> Result<(), EngineError> {
        let _batch = self.events.batch();
        let cell = self
            .call_shard(call.0)
            .get(&call.0)
            .ok_or(EngineError::UnknownCall(call))?;
        match outcome {
            Outcome::Answered(a) => self.answered(now, &cell, a.0),
            Outcome::Rejected(a) => {
                self.not_answered(now, &cell, a.0, AgentStateKind::Available, true)
            }
            Outcome::NoAnswer(a) => {
                let slot = self.slot(a.0)?;
                let ringing_us = rings_for(slot.word.load(SeqCst), call.0);
                if !ringing_us {
                    return Err(EngineError::NotRinging { call, agent: a });
                }
                let streak = slot.no_answer_streak.fetch_add(1, SeqCst).saturating_add(1);
                let to = if streak >= self.no_answer_limit {
                    slot.no_answer_streak.store(0, SeqCst);
                    AgentStateKind::NotReady
                } else {
                    AgentStateKind::Available
                };
                self.not_answered(now, &cell, a.0, to, false)
            }
            Outcome::AgentGone(a) => {
                let st = cell.st();
                if status(st) == CS_TALKING && status_agent(st) == a.0 {
                    self.hangup(now, call, HangupSide::Agent)?;
                    return self.set_agent_state(now, a, AgentStateChange::LoggedOut);
                }
                self.not_answered(now, &cell, a.0, AgentStateKind::LoggedOut, false)
            }
            Outcome::CallerGone => self.caller_gone(now, &cell),
        }
    }

    /// Ends a talking call: the agent goes to wrap-up (or straight to available when the
    /// wrap-up time is zero) and their call count and talk time grow.
    pub fn hangup(&self, now: Time, call: CallId, side: HangupSide) -> Result<(), EngineError> {
        let _batch = self.events.batch();
        let cell = self
            .call_shard(call.0)
            .get(&call.0)
            .ok_or(EngineError::UnknownCall(call))?;
        let st = cell.st();
        if status(st) != CS_TALKING
            || cell
                .status
                .compare_exchange(st, mk_status(CS_ENDED, status_agent(st)), SeqCst, SeqCst)
                .is_err()
        {
            return Err(EngineError::WrongCallState {
                call,
                state: status_name(cell.st()),
            });
        }
        let a = status_agent(st);
        let talk_ms = now.millis_since(Time::from_millis(cell.answered_at.load(SeqCst)));
        let wrap_ms = match cell
            .steps
            .get(cell.offered_step.load(SeqCst) as usize)
            .map(|s| s.target)
        {
            Some(Target::Queue(q)) => self
                .queues
                .get(q as usize)
                .map_or(self.default_wrap_ms, |q| secs_to_ms(q.cfg.wrap_up_s)),
            _ => self.default_wrap_ms,
        };
        self.call_shard(call.0).remove(&call.0);
        if let Some(slot) = self.slots.get(a as usize) {
            slot.calls_today.fetch_add(1, SeqCst);
            slot.talk_ms_today.fetch_add(talk_ms, SeqCst);
            slot.idle_since.store(now.as_millis(), SeqCst);
            let w = slot.word.load(SeqCst);
            if tag(w) == AgentStateKind::OnCall && call_of(w) == call.0 & CALL_MASK {
                if wrap_ms > 0 {
                    if self.move_agent(now, a, w, AgentStateKind::WrapUp, call.0) {
                        self.timers.insert(
                            TimerKey {
                                at: now.plus_millis(wrap_ms).as_millis(),
                                kind: T_WRAPUP,
                                id: u64::from(a),
                                aux: call.0,
                            },
                            (),
                        );
                    }
                } else if self.move_agent(now, a, w, AgentStateKind::Available, 0) {
                    self.dispatch_agent(now, a);
                }
            }
        }
        self.events.push(Event::CallEnded {
            call,
            agent: AgentIdx(a),
            talk_ms,
            side,
            at: now,
        });
        Ok(())
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
            if s == CS_WAITING || s == CS_OFFERED {
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

    fn hint_value(slot: &AgentSlot, kind: usize) -> u64 {
        match kind {
            0 => slot.idle_since.load(SeqCst),
            2 => slot.calls_today.load(SeqCst),
            3 => slot.talk_ms_today.load(SeqCst),
            _ => 0,
        }
    }

    /// Publishes agent `a` as available in its skills' and roles' indices: keys first, then
    /// the bit.
    fn index(&self, a: u32) {
        let (Some(info), Some(slot)) = (self.agents.get(a as usize), self.slots.get(a as usize))
        else {
            return;
        };
        for &(ix, pos) in &info.hints {
            let Some(index) = self.avail.get(ix) else {
                continue;
            };
            for (kind, keys) in index.keys.iter().enumerate() {
                if let Some(k) = keys.as_ref().and_then(|keys| keys.get(pos)) {
                    // Keys only order the choice (see `AvailIndex`); the SeqCst `fetch_or`
                    // below is what publishes the agent.
                    k.store(Self::hint_value(slot, kind), Relaxed);
                }
            }
            index.set(pos, true);
        }
    }

    /// Withdraws agent `a` (which just left `available`) from its indices.
    ///
    /// Another thread may have made the agent available again — and set its bits — between
    /// our CAS and our clearing them. So after clearing, the word is read again: if the agent
    /// is available, this thread publishes it itself, fence and dispatch included. With every
    /// operation SeqCst, either that read sees the other thread's move (and we re-publish) or
    /// the other thread's `fetch_or` comes after our `fetch_and` (and the bits stay set): an
    /// available agent's bits are never left clear, and a call that scanned while they were
    /// clear is found by the re-publishing dispatch.
    fn unindex(&self, now: Time, a: u32) {
        let (Some(info), Some(slot)) = (self.agents.get(a as usize), self.slots.get(a as usize))
        else {
            return;
        };
        if info.hints.is_empty() {
            return;
        }
        for &(ix, pos) in &info.hints {
            if let Some(index) = self.avail.get(ix) {
                index.set(pos, false);
            }
        }
        if tag(slot.word.load(SeqCst)) == AgentStateKind::Available {
            self.index(a);
            self.dispatch_agent(now, a);
        }
    }

    /// Moves agent `a` from word `w` to `to` (with `call` for ringing/on-call/wrap-up) by one
    /// CAS; on success keeps the availability indices, `state_since` and the event stream in
    /// step.
    fn move_agent(&self, now: Time, a: u32, w: u64, to: AgentStateKind, call: u64) -> bool {
        self.move_agent_flagged(now, a, w, to, call, 0).is_some()
    }

    fn move_agent_flagged(
        &self,
        now: Time,
        a: u32,
        w: u64,
        to: AgentStateKind,
        call: u64,
        flags: u64,
    ) -> Option<u64> {
        let slot = self.slots.get(a as usize)?;
        let g = generation(w).wrapping_add(1) & GEN_MASK;
        let new = pack(to, g, call) | flags;
        if slot.word.compare_exchange(w, new, SeqCst, SeqCst).is_err() {
            return None;
        }
        let from = tag(w);
        slot.state_since.store(now.as_millis(), SeqCst);
        if to == AgentStateKind::Available {
            self.index(a);
        }
        self.events.push(Event::AgentStateChanged {
            agent: AgentIdx(a),
            from,
            to,
            at: now,
        });
        if from == AgentStateKind::Available {
            self.unindex(now, a);
        }
        Some(new)
    }

    /// Claims an available agent for `call` (available → ringing, pending until
    /// [`Engine::commit`] confirms it). The claim is the agent word it wrote: its generation
    /// tells this claim from a later one of the same agent for the same call.
    fn claim(&self, now: Time, a: u32, call: u64) -> Option<Claim> {
        let slot = self.slots.get(a as usize)?;
        let w = slot.word.load(SeqCst);
        if tag(w) != AgentStateKind::Available {
            return None;
        }
        self.claim_word(now, a, w, call)
    }

    fn claim_word(&self, now: Time, a: u32, w: u64, call: u64) -> Option<Claim> {
        self.move_agent_flagged(now, a, w, AgentStateKind::Ringing, call, PENDING)
            .map(|word| Claim { agent: a, word })
    }

    /// Confirms a pending claim once the call is offered: false when the agent was taken out
    /// of the claim meanwhile (a state change), which then did not release anything.
    fn confirm(&self, c: &Claim) -> bool {
        self.slots.get(c.agent as usize).is_some_and(|slot| {
            slot.word
                .compare_exchange(c.word, c.word & !PENDING, SeqCst, SeqCst)
                .is_ok()
        })
    }

    /// Undoes this very claim if it is still pending.
    fn unclaim_pending(&self, now: Time, c: &Claim) -> bool {
        self.move_agent(now, c.agent, c.word, AgentStateKind::Available, 0)
    }

    /// Undoes a claim, pending or committed: ringing(call) → available.
    fn unclaim(&self, now: Time, a: u32, call: u64) -> bool {
        let Some(slot) = self.slots.get(a as usize) else {
            return false;
        };
        // A pending claim may be confirmed between our load and our CAS; that is the only
        // change that keeps the agent ringing for `call`, so two tries suffice (three to
        // spare).
        for _ in 0..3 {
            let w = slot.word.load(SeqCst);
            if tag(w) != AgentStateKind::Ringing || call_of(w) != call & CALL_MASK {
                return false;
            }
            if self.move_agent(now, a, w, AgentStateKind::Available, 0) {
                return true;
            }
        }
        false
    }

    fn live(&self, a: u32) -> bool {
        self.slots
            .get(a as usize)
            .is_some_and(|s| tag(s.word.load(SeqCst)) == AgentStateKind::Available)
    }

    /// One candidate from an index: claimed if available, except the agent who just did not
    /// answer this call (`avoid`), who is set aside as the fallback.
    fn try_candidate(
        &self,
        now: Time,
        a: u32,
        cell: &CallCell,
        avoid: u32,
        fallback: &mut Option<u32>,
    ) -> Option<Claim> {
        if !self.live(a) {
            return None;
        }
        if a == avoid {
            *fallback = Some(a);
            return None;
        }
        self.claim(now, a, cell.id.0)
    }

    /// Claims the first available member in (level desc, key asc, index asc) order, where the
    /// key is the strategy's (`Index` has none), preferring anyone over the agent who just did
    /// not answer this call.
    fn claim_ordered(
        &self,
        now: Time,
        index: &AvailIndex,
        kind: HintKind,
        cell: &CallCell,
    ) -> Option<Claim> {
        let avoid = cell.last_no_answer.load(SeqCst);
        let mut fallback = None;
        let keys = index.keys.get(kind as usize).and_then(Option::as_ref);
        for &(start, end) in &index.levels {
            if let Some(keys) = keys {
                // Lowest (key, position) above the last one tried — within a level, position
                // order is index order — one pass per candidate; the first candidate is nearly
                // always claimed.
                let mut after: Option<(u64, usize)> = None;
                for _ in start..end {
                    let mut best: Option<(u64, usize)> = None;
                    let _ = index.each_set(start, end, |p| {
                        if let Some(k) = keys.get(p) {
                            let c = (k.load(Relaxed), p);
                            if after.is_none_or(|x| c > x) && best.is_none_or(|b| c < b) {
                                best = Some(c);
                            }
                        }
                        ControlFlow::Continue(())
                    });
                    let Some(c) = best else { break };
                    after = Some(c);
                    let Some(&a) = index.members.get(c.1) else {
                        break;
                    };
                    if let Some(claim) = self.try_candidate(now, a, cell, avoid, &mut fallback) {
                        return Some(claim);
                    }
                }
            }
            // Index order: the order itself for `Index`; for keyed kinds the pass that finds
            // an available member whose key moved while the passes above ran.
            let mut got = None;
            let _ = index.each_set(start, end, |p| {
                got = index
                    .members
                    .get(p)
                    .and_then(|&a| self.try_candidate(now, a, cell, avoid, &mut fallback));
                if got.is_some() {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            if got.is_some() {
                return got;
            }
        }
        fallback.and_then(|a| self.claim(now, a, cell.id.0))
    }

    /// The best level with an available member: its range of positions.
    fn best_level(&self, index: &AvailIndex) -> Option<(usize, usize)> {
        index.levels.iter().copied().find(|&(start, end)| {
            index
                .each_set(start, end, |p| match index.members.get(p) {
                    Some(&a) if self.live(a) => ControlFlow::Break(()),
                    _ => ControlFlow::Continue(()),
                })
                .is_break()
        })
    }

    /// Claims an agent within the best level, starting at agent index `start` and wrapping.
    fn claim_rotating(
        &self,
        now: Time,
        index: &AvailIndex,
        cell: &CallCell,
        start: impl Fn() -> u32,
    ) -> Option<Claim> {
        let avoid = cell.last_no_answer.load(SeqCst);
        for _ in 0..8 {
            let (lo, hi) = self.best_level(index)?;
            let s = start();
            let mid = lo
                + index
                    .members
                    .get(lo..hi)
                    .map_or(0, |m| m.partition_point(|&a| a < s));
            let mut fallback = None;
            for (from, to) in [(mid, hi), (lo, mid)] {
                let mut got = None;
                let _ = index.each_set(from, to, |p| {
                    got = index
                        .members
                        .get(p)
                        .and_then(|&a| self.try_candidate(now, a, cell, avoid, &mut fallback));
                    if got.is_some() {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                });
                if got.is_some() {
                    return got;
                }
            }
            if let Some(claim) = fallback.and_then(|a| self.claim(now, a, cell.id.0)) {
                return Some(claim);
            }
        }
        None
    }

    // ---- internals: calls ------------------------------------------------------------------

    fn call_shard(&self, id: u64) -> &OrderedMap<u64, Arc<CallCell>> {
        // In range: the array has CALL_SHARDS entries.
        &self.calls[(id % CALL_SHARDS) as usize]
    }

    fn call_by_low_bits(&self, low: u64) -> Option<Arc<CallCell>> {
        // Call ids stay below 2^40 in practice, so the low bits are the id.
        self.call_shard(low).get(&low)
    }

    fn resolve_chain(
        &self,
        template: &[TemplateStep],
        class: Class,
        client: Option<&Client>,
        base: u8,
    ) -> Vec<CallStep> {
        template
            .iter()
            .map(|t| {
                let (target, manager) = match t.kind {
                    TemplateKind::Agent(a) => (Target::Agent(a), NONE),
                    TemplateKind::Role(r) => (Target::Role(r), NONE),
                    TemplateKind::Queue(q) => (Target::Queue(q), NONE),
                    TemplateKind::AssignedManager => {
                        match client
                            .and_then(|c| c.manager.as_deref())
                            .and_then(|m| self.agent_by_id.get(m).copied())
                        {
                            None => (Target::Nobody, NONE),
                            Some(m) if self.kind_of(m) == AgentStateKind::Absent => {
                                let sub = self
                                    .slots
                                    .get(m as usize)
                                    .map_or(NONE, |s| s.substitute.load(SeqCst));
                                if sub != NONE
                                    && sub != m
                                    && self.slots.get(sub as usize).is_some()
                                    && self.kind_of(sub) != AgentStateKind::Absent
                                {
                                    (Target::Agent(sub), m)
                                } else {
                                    (Target::Nobody, m)
                                }
                            }
                            Some(m) => (Target::Agent(m), m),
                        }
                    }
                };
                let prio = match target {
                    Target::Queue(q) => self
                        .queues
                        .get(q as usize)
                        .and_then(|q| q.cfg.class_priority.get(&class).copied())
                        .unwrap_or(base),
                    _ => base,
                };
                CallStep {
                    target,
                    manager,
                    prio,
                }
            })
            .collect()
    }

    fn list(&self, lr: ListRef) -> Option<&WaitList> {
        match lr {
            ListRef::Agent(a) => self.agent_lists.get(a as usize),
            ListRef::Role(r) => self.role_lists.get(r as usize),
            ListRef::Queue(q) => self.queues.get(q as usize).map(|q| &q.waiting),
        }
    }

    fn list_of(&self, target: Target) -> Option<&WaitList> {
        match target {
            Target::Agent(a) => self.list(ListRef::Agent(a)),
            Target::Role(r) => self.list(ListRef::Role(r)),
            Target::Queue(q) => self.list(ListRef::Queue(q)),
            Target::Nobody => None,
        }
    }

    /// Puts the call into the waiting list of step `i` (a full queue is skipped).
    fn register(&self, cell: &Arc<CallCell>, i: usize) {
        self.register_at(cell, i, true);
    }

    /// [`Engine::register`]; `check_full: false` for a call the queue already admitted (one
    /// served at once on arrival whose offer failed).
    fn register_at(&self, cell: &Arc<CallCell>, i: usize, check_full: bool) {
        let (Some(step), Some(key)) = (cell.steps.get(i), cell.key(i)) else {
            return;
        };
        if let Target::Queue(q) = step.target
            && let Some(rt) = self.queues.get(q as usize)
        {
            if check_full && rt.cfg.max_len.is_some_and(|max| rt.waiting.len() >= max) {
                return;
            }
            self.count_entry(cell, q);
        }
        if let Some(list) = self.list_of(step.target) {
            // Counted before the bit is set: whoever sees the bit sees the count include this
            // call (`try_step` relies on it).
            list.count.fetch_add(1, SeqCst);
            cell.registered.fetch_or(1u64 << i, SeqCst);
            list.map.insert(key, cell.clone());
        }
    }

    fn unregister_all(&self, cell: &CallCell) {
        let mask = cell.registered.load(SeqCst);
        for (i, step) in cell.steps.iter().enumerate() {
            if i < 64
                && mask & (1u64 << i) != 0
                && let (Some(list), Some(key)) = (self.list_of(step.target), cell.key(i))
            {
                list.remove(&key);
            }
        }
    }

    /// Should the call stay at its last reached step `i` rather than move on?
    fn hold(&self, now: Time, cell: &CallCell, i: usize) -> Hold {
        let Some(step) = cell.steps.get(i) else {
            return Hold::Pass;
        };
        let since = Time::from_millis(cell.frontier_since.load(SeqCst));
        let until = |ms: u64| {
            let deadline = since.plus_millis(ms);
            if now < deadline {
                Hold::Until(deadline)
            } else {
                Hold::Pass
            }
        };
        match step.target {
            Target::Agent(a) if cell.is_registered(i) => {
                let k = self.kind_of(a);
                if self.busy_wait_ms > 0 && (k.is_busy() || k == AgentStateKind::Available) {
                    until(self.busy_wait_ms)
                } else {
                    Hold::Pass
                }
            }
            Target::Queue(q) if cell.is_registered(i) => {
                match self.queues.get(q as usize).and_then(|q| q.cfg.max_wait_s) {
                    None => Hold::Forever,
                    Some(s) => until(secs_to_ms(s)),
                }
            }
            _ => Hold::Pass,
        }
    }

    /// Call-driven dispatch: tries every reached step in chain order; when none can serve,
    /// moves the frontier over steps that do not hold the call, registering each new step.
    /// The call is registered before agents are looked at, and an agent is published as
    /// available before calls are looked at (with a SeqCst fence on both sides), so a call
    /// and an agent that meet concurrently are never both left waiting.
    fn dispatch_call(&self, now: Time, cell: &Arc<CallCell>) {
        fence(SeqCst);
        let n = cell.steps.len() as u32;
        for _ in 0..=n {
            if status(cell.st()) != CS_WAITING {
                return;
            }
            let f = cell.frontier.load(SeqCst).clamp(1, n.max(1));
            for i in 0..f as usize {
                if cell.is_registered(i) {
                    match self.try_step(now, cell, i) {
                        Attempt::Offered | Attempt::CallTaken => return,
                        Attempt::NoAgent => {}
                    }
                }
            }
            if f >= n {
                return;
            }
            let last = (f - 1) as usize;
            match self.hold(now, cell, last) {
                Hold::Forever => return,
                Hold::Until(deadline) => {
                    self.timers.insert(
                        TimerKey {
                            at: deadline.as_millis(),
                            kind: T_ADVANCE,
                            id: cell.id.0,
                            aux: u64::from(f),
                        },
                        (),
                    );
                    return;
                }
                Hold::Pass => {
                    if cell
                        .frontier
                        .compare_exchange(f, f + 1, SeqCst, SeqCst)
                        .is_ok()
                    {
                        cell.frontier_since.store(now.as_millis(), SeqCst);
                        if let Some(Target::Queue(q)) = cell.steps.get(last).map(|s| s.target)
                            && cell.is_registered(last)
                        {
                            if let Some(rt) = self.queues.get(q as usize) {
                                rt.overflowed.fetch_add(1, SeqCst);
                            }
                            self.events.push(Event::CallOverflowed {
                                call: cell.id,
                                queue: QueueIdx(q),
                                at: now,
                            });
                        }
                        self.register(cell, f as usize);
                        fence(SeqCst);
                    }
                }
            }
        }
    }

    /// Serves step `i` of `cell` in list order: while an earlier call waits in the same list,
    /// the agents found go to that call first (FIFO within a priority also on the call path).
    fn try_step(&self, now: Time, cell: &Arc<CallCell>, i: usize) -> Attempt {
        let (Some(step), Some(my_key)) = (cell.steps.get(i), cell.key(i)) else {
            return Attempt::NoAgent;
        };
        let Some(list) = self.list_of(step.target) else {
            return Attempt::NoAgent;
        };
        // Each round either offers a call, or finds the head taken by another thread; the
        // bound only protects against a pathological stream of such races, after which the
        // call is served directly (never left waiting next to an idle agent).
        for _ in 0..64 {
            // The count never falls below the entries, and this call is one of them: at most
            // one means no earlier call to serve first.
            if list.count.load(SeqCst) <= 1 {
                break;
            }
            let mut head: Option<Arc<CallCell>> = None;
            list.scan(Bound::Unbounded, |k, c| {
                if *k >= my_key {
                    return ControlFlow::Break(());
                }
                if status(c.st()) == CS_WAITING {
                    head = Some(c.clone());
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            });
            let Some(head) = head else { break };
            let Some(j) = head.steps.iter().position(|s| s.target == step.target) else {
                break;
            };
            match self.try_step_direct(now, &head, j) {
                Attempt::NoAgent => return Attempt::NoAgent,
                Attempt::Offered | Attempt::CallTaken => {}
            }
            if status(cell.st()) != CS_WAITING {
                return Attempt::CallTaken;
            }
        }
        self.try_step_direct(now, cell, i)
    }

    /// Tries to find and claim agents for step `i` and offer them the call.
    fn try_step_direct(&self, now: Time, cell: &Arc<CallCell>, i: usize) -> Attempt {
        let Some(step) = cell.steps.get(i) else {
            return Attempt::NoAgent;
        };
        let call = cell.id.0;
        // One claim for every strategy but `ring_all`: no vector for it.
        let one = match step.target {
            Target::Nobody => return Attempt::NoAgent,
            Target::Agent(a) => self.claim(now, a, call),
            Target::Role(r) => {
                let Some(index) = self
                    .role_avail
                    .get(r as usize)
                    .copied()
                    .flatten()
                    .and_then(|ix| self.avail.get(ix))
                else {
                    return Attempt::NoAgent;
                };
                self.claim_ordered(now, index, HintKind::Idle, cell)
            }
            Target::Queue(q) => {
                let Some(rt) = self.queues.get(q as usize) else {
                    return Attempt::NoAgent;
                };
                let strategy = rt.cfg.strategy;
                let Some(index) = self
                    .skill_avail
                    .get(rt.skill as usize)
                    .copied()
                    .flatten()
                    .and_then(|ix| self.avail.get(ix))
                else {
                    return Attempt::NoAgent;
                };
                match strategy {
                    Strategy::RingAll => {
                        let Some((lo, hi)) = self.best_level(index) else {
                            return Attempt::NoAgent;
                        };
                        let mut got = Vec::new();
                        let _ = index.each_set(lo, hi, |p| {
                            if got.len() >= self.ring_all_limit {
                                return ControlFlow::Break(());
                            }
                            if let Some(c) =
                                index.members.get(p).and_then(|&a| self.claim(now, a, call))
                            {
                                got.push(c);
                            }
                            ControlFlow::Continue(())
                        });
                        if got.is_empty() {
                            return Attempt::NoAgent;
                        }
                        return self.commit(now, cell, i, &got, true);
                    }
                    Strategy::RoundRobin => {
                        let c = self.claim_rotating(now, index, cell, || rt.rr_cursor.load(SeqCst));
                        if let Some(c) = c {
                            rt.rr_cursor.store(c.agent.wrapping_add(1), SeqCst);
                        }
                        c
                    }
                    Strategy::Random => {
                        let n = rt.agents.len().max(1) as u32;
                        let pick = || {
                            use rand::{Rng, SeedableRng};
                            let c = self.rng_counter.fetch_add(1, SeqCst);
                            let mut rng =
                                rand::rngs::SmallRng::seed_from_u64(self.seed ^ c.rotate_left(17));
                            rt.agents
                                .get(rng.random_range(0..n) as usize)
                                .copied()
                                .unwrap_or(0)
                        };
                        self.claim_rotating(now, index, cell, pick)
                    }
                    _ => self.claim_ordered(now, index, hint_kind(strategy), cell),
                }
            }
        };
        match one {
            Some(c) => self.commit(now, cell, i, std::slice::from_ref(&c), true),
            None => Attempt::NoAgent,
        }
    }

    /// Second half of an offer: the agents are claimed; move the call waiting → offered.
    /// If another thread offered (or the caller withdrew) the call first, the claims are
    /// undone and, when `redispatch`, the agents look for other calls.
    fn commit(
        &self,
        now: Time,
        cell: &Arc<CallCell>,
        i: usize,
        claims: &[Claim],
        redispatch: bool,
    ) -> Attempt {
        let call = cell.id.0;
        let marker = match claims {
            [one] => one.agent,
            _ => RING_ALL,
        };
        // Only this commit's own pending claims are undone: the same agent may meanwhile
        // have been claimed again, for this very call, by another thread.
        let undo = |claims: &[Claim]| {
            for c in claims {
                if self.unclaim_pending(now, c) && redispatch {
                    self.dispatch_agent(now, c.agent);
                }
            }
        };
        let seq = cell.offer_seq.fetch_add(1, SeqCst).wrapping_add(1);
        let offered = mk_offered(seq, marker);
        if cell
            .status
            .compare_exchange(mk_status(CS_WAITING, NONE), offered, SeqCst, SeqCst)
            .is_err()
        {
            undo(claims);
            return Attempt::CallTaken;
        }
        cell.ringing.store(claims.len() as u32, SeqCst);
        cell.offered_step.store(i as u32, SeqCst);
        if marker == RING_ALL {
            self.ring_sets
                .insert(call, Arc::new(claims.iter().map(|c| c.agent).collect()));
            // A caller who left between the CAS and the insert found no ring set to release.
            if cell.st() != offered {
                self.ring_sets.remove(&call);
                undo(claims);
                return Attempt::CallTaken;
            }
        }
        // Confirm the claims. A claim lost meanwhile (a state change took the agent while it
        // was pending) released nothing, so it is released here: each claimed agent is
        // released exactly once, by whoever moves it out of `ringing` after its confirmation
        // or by this loop, and the release that empties the offer puts the call back.
        let mut agents = Vec::with_capacity(claims.len());
        for c in claims {
            if self.confirm(c) {
                agents.push(AgentIdx(c.agent));
            } else if self.release_ring(now, cell) {
                return Attempt::CallTaken;
            }
        }
        let attempt = cell.attempts.fetch_add(1, SeqCst).saturating_add(1);
        let (queue, ring_ms) = match cell.steps.get(i).map(|s| s.target) {
            Some(Target::Queue(q)) => (
                Some(QueueIdx(q)),
                self.queues
                    .get(q as usize)
                    .map_or(self.default_ring_ms, |q| secs_to_ms(q.cfg.ring_timeout_s)),
            ),
            _ => (None, self.default_ring_ms),
        };
        let offer = Offer {
            call: cell.id,
            route: self.trace(cell, i, &agents),
            agents,
            queue,
            ring_timeout_ms: ring_ms,
            attempt,
        };
        self.events.push(Event::CallOffered {
            offer: offer.clone(),
            at: now,
        });
        self.offers.push(offer);
        Attempt::Offered
    }

    /// Agent-driven dispatch: agent `a` became available; offer it the best waiting call it
    /// can serve (highest priority, then oldest) from its own, its roles' and its queues' lists.
    fn dispatch_agent(&self, now: Time, a: u32) {
        fence(SeqCst);
        let (Some(info), Some(slot)) = (self.agents.get(a as usize), self.slots.get(a as usize))
        else {
            return;
        };
        for _ in 0..16 {
            let w = slot.word.load(SeqCst);
            if tag(w) != AgentStateKind::Available {
                return;
            }
            // A call this agent just did not answer is taken only when nothing else waits.
            let mut best: Option<(WaitKey, Arc<CallCell>, ListRef)> = None;
            let mut fallback: Option<(WaitKey, Arc<CallCell>, ListRef)> = None;
            for &lr in &info.lists {
                // Read after the fence above: a call registered before a caller's fence is
                // counted here, or that caller's agent search sees this agent's bits.
                let Some(list) = self.list(lr).filter(|l| l.maybe_nonempty()) else {
                    continue;
                };
                let mut garbage = Vec::new();
                list.scan(Bound::Unbounded, |k, cell| match status(cell.st()) {
                    CS_WAITING => {
                        let declined = cell.last_no_answer.load(SeqCst) == a;
                        let slot = if declined { &mut fallback } else { &mut best };
                        if slot.as_ref().is_none_or(|(bk, _, _)| k < bk) {
                            *slot = Some((*k, cell.clone(), lr));
                        }
                        if declined {
                            ControlFlow::Continue(())
                        } else {
                            ControlFlow::Break(())
                        }
                    }
                    CS_OFFERED => ControlFlow::Continue(()),
                    _ => {
                        garbage.push(*k);
                        ControlFlow::Continue(())
                    }
                });
                for k in &garbage {
                    list.remove(k);
                }
            }
            let Some((_, cell, lr)) = best.or(fallback) else {
                return;
            };
            let Some(i) = cell.step_for(lr) else { continue };
            let Some(claim) = self.claim_word(now, a, w, cell.id.0) else {
                continue;
            };
            if let Attempt::Offered = self.commit(now, &cell, i, &[claim], false) {
                return;
            }
        }
    }

    /// One ringing agent let go of an offer; the last one puts the call back in its place.
    /// Returns whether this was the last one (the offer is over).
    fn release_ring(&self, now: Time, cell: &Arc<CallCell>) -> bool {
        let prev = cell
            .ringing
            .fetch_update(SeqCst, SeqCst, |n| Some(n.saturating_sub(1)))
            .unwrap_or(0);
        if prev != 1 {
            return false;
        }
        let st = cell.st();
        if status(st) == CS_OFFERED
            && cell
                .status
                .compare_exchange(st, mk_status(CS_WAITING, NONE), SeqCst, SeqCst)
                .is_ok()
        {
            if status_agent(st) == RING_ALL {
                self.ring_sets.remove(&cell.id.0);
            }
            // Offered at once on arrival (see `route_along`): it now takes its place in the
            // first step's list, by its arrival key — the place it would have had all along.
            if cell.registered.load(SeqCst) == 0 {
                self.listed(cell);
                self.register_at(cell, 0, false);
            }
            self.dispatch_call(now, cell);
        }
        true
    }

    fn answered(&self, now: Time, cell: &Arc<CallCell>, a: u32) -> Result<(), EngineError> {
        let call = cell.id;
        let slot = self.slot(a)?;
        let st = cell.st();
        if status(st) != CS_OFFERED {
            return Err(EngineError::WrongCallState {
                call,
                state: status_name(st),
            });
        }
        let w = slot.word.load(SeqCst);
        if !rings_for(w, call.0) || !self.move_agent(now, a, w, AgentStateKind::OnCall, call.0) {
            return Err(EngineError::NotRinging {
                call,
                agent: AgentIdx(a),
            });
        }
        if cell
            .status
            .compare_exchange(st, mk_status(CS_TALKING, a), SeqCst, SeqCst)
            .is_err()
        {
            // The caller left meanwhile: the agent is free again.
            let w = slot.word.load(SeqCst);
            if tag(w) == AgentStateKind::OnCall
                && call_of(w) == call.0 & CALL_MASK
                && self.move_agent(now, a, w, AgentStateKind::Available, 0)
            {
                self.dispatch_agent(now, a);
            }
            return Err(EngineError::WrongCallState {
                call,
                state: status_name(cell.st()),
            });
        }
        slot.no_answer_streak.store(0, SeqCst);
        cell.answered_at.store(now.as_millis(), SeqCst);
        let wait_ms = now.millis_since(cell.enqueued_at);
        if let Some(q) = self.queues.get(cell.stats_queue.load(SeqCst) as usize) {
            q.answered.fetch_add(1, SeqCst);
            q.wait_total.fetch_add(wait_ms, SeqCst);
            if wait_ms <= self.sl_threshold_ms {
                q.answered_within.fetch_add(1, SeqCst);
            }
        }
        if status_agent(st) == RING_ALL
            && let Some(set) = self.ring_sets.get(&call.0)
        {
            self.ring_sets.remove(&call.0);
            for &b in set.iter().filter(|&&b| b != a) {
                if self.unclaim(now, b, call.0) {
                    self.dispatch_agent(now, b);
                }
            }
        }
        self.listed(cell);
        self.unregister_all(cell);
        let queue = match cell
            .steps
            .get(cell.offered_step.load(SeqCst) as usize)
            .map(|s| s.target)
        {
            Some(Target::Queue(q)) => Some(QueueIdx(q)),
            _ => None,
        };
        self.events.push(Event::CallAnswered {
            call,
            agent: AgentIdx(a),
            queue,
            wait_ms,
            at: now,
        });
        Ok(())
    }

    fn not_answered(
        &self,
        now: Time,
        cell: &Arc<CallCell>,
        a: u32,
        to: AgentStateKind,
        rejected: bool,
    ) -> Result<(), EngineError> {
        let call = cell.id;
        let slot = self.slot(a)?;
        let w = slot.word.load(SeqCst);
        if !rings_for(w, call.0) || !self.move_agent(now, a, w, to, 0) {
            return Err(EngineError::NotRinging {
                call,
                agent: AgentIdx(a),
            });
        }
        cell.last_no_answer.store(a, SeqCst);
        self.events.push(Event::CallNotAnswered {
            call,
            agent: AgentIdx(a),
            rejected,
            at: now,
        });
        self.release_ring(now, cell);
        if to == AgentStateKind::Available {
            self.dispatch_agent(now, a);
        }
        Ok(())
    }

    fn caller_gone(&self, now: Time, cell: &Arc<CallCell>) -> Result<(), EngineError> {
        let call = cell.id;
        let st = loop {
            let st = cell.st();
            match status(st) {
                CS_WAITING | CS_OFFERED => {
                    if cell
                        .status
                        .compare_exchange(st, mk_status(CS_GONE, status_agent(st)), SeqCst, SeqCst)
                        .is_ok()
                    {
                        break st;
                    }
                }
                CS_TALKING => return self.hangup(now, call, HangupSide::Caller),
                _ => {
                    return Err(EngineError::WrongCallState {
                        call,
                        state: status_name(st),
                    });
                }
            }
        };
        if status(st) == CS_OFFERED {
            let agents = match status_agent(st) {
                RING_ALL => {
                    let set = self.ring_sets.get(&call.0);
                    self.ring_sets.remove(&call.0);
                    set.map(|s| s.to_vec()).unwrap_or_default()
                }
                one => vec![one],
            };
            for b in agents {
                if self.unclaim(now, b, call.0) {
                    self.dispatch_agent(now, b);
                }
            }
        }
        let wait_ms = now.millis_since(cell.enqueued_at);
        if let Some(q) = self.queues.get(cell.stats_queue.load(SeqCst) as usize) {
            q.abandoned.fetch_add(1, SeqCst);
        }
        self.listed(cell);
        self.unregister_all(cell);
        self.call_shard(call.0).remove(&call.0);
        self.events.push(Event::CallAbandoned {
            call,
            wait_ms,
            at: now,
        });
        Ok(())
    }

    /// The explanation of an offer from step `served` to `agents`, written into one string
    /// (it is built on every offer, so no intermediate strings).
    fn trace(&self, cell: &CallCell, served: usize, agents: &[AgentIdx]) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(48 * (served + 1));
        for (i, step) in cell.steps.iter().enumerate().take(served + 1) {
            if i > 0 {
                out.push_str(" > ");
            }
            out.push_str(
                self.template(cell.template)
                    .get(i)
                    .map_or("?", |t| &t.label),
            );
            out.push('(');
            // Writing into a String cannot fail.
            let _ = if step.manager != NONE {
                let m = self.id_of(step.manager);
                match step.target {
                    Target::Agent(s) if s != step.manager => {
                        if i == served {
                            write!(out, "{m}: absent → {}", self.id_of(s))
                        } else {
                            write!(
                                out,
                                "{m}: absent → {}: {}",
                                self.id_of(s),
                                self.kind_of(s).as_str()
                            )
                        }
                    }
                    Target::Agent(_) if i == served => write!(out, "{m}"),
                    Target::Agent(_) => {
                        write!(out, "{m}: {}", self.kind_of(step.manager).as_str())
                    }
                    _ => write!(out, "{m}: absent → no substitute"),
                }
            } else if i == served {
                for (n, &AgentIdx(a)) in agents.iter().enumerate() {
                    if n > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(self.id_of(a));
                }
                Ok(())
            } else {
                out.push_str(match step.target {
                    Target::Nobody => "no manager",
                    Target::Agent(a) => self.kind_of(a).as_str(),
                    Target::Role(_) => "none available",
                    Target::Queue(_) if cell.is_registered(i) => "max wait",
                    Target::Queue(_) => "full",
                });
                Ok(())
            };
            out.push(')');
        }
        out
    }
}

/// The API the server drives, implemented by [`Engine`] and by the benchmark baseline
/// [`crate::baseline::MutexEngine`].
pub trait QueueEngine: Send + Sync {
    /// See [`Engine::route_call`].
    fn route_call(&self, now: Time, req: CallRequest) -> Result<CallId, EngineError>;
    /// See [`Engine::next_offer`].
    fn next_offer(&self) -> Option<Offer>;
    /// See [`Engine::report`].
    fn report(&self, now: Time, call: CallId, outcome: Outcome) -> Result<(), EngineError>;
    /// See [`Engine::hangup`].
    fn hangup(&self, now: Time, call: CallId, side: HangupSide) -> Result<(), EngineError>;
    /// See [`Engine::set_agent_state`].
    fn set_agent_state(
        &self,
        now: Time,
        agent: AgentIdx,
        change: AgentStateChange,
    ) -> Result<(), EngineError>;
    /// See [`Engine::handle_timeout`].
    fn handle_timeout(&self, now: Time);
    /// See [`Engine::poll_event`].
    fn poll_event(&self) -> Option<Event>;
    /// See [`Engine::poll_offers`].
    fn poll_offers(&self) -> Vec<Offer>;
    /// Moves every pending event into `out`.
    fn drain_events(&self, out: &mut Vec<Event>);
}

impl QueueEngine for Engine {
    fn route_call(&self, now: Time, req: CallRequest) -> Result<CallId, EngineError> {
        Engine::route_call(self, now, req)
    }
    fn next_offer(&self) -> Option<Offer> {
        Engine::next_offer(self)
    }
    fn report(&self, now: Time, call: CallId, outcome: Outcome) -> Result<(), EngineError> {
        Engine::report(self, now, call, outcome)
    }
    fn hangup(&self, now: Time, call: CallId, side: HangupSide) -> Result<(), EngineError> {
        Engine::hangup(self, now, call, side)
    }
    fn set_agent_state(
        &self,
        now: Time,
        agent: AgentIdx,
        change: AgentStateChange,
    ) -> Result<(), EngineError> {
        Engine::set_agent_state(self, now, agent, change)
    }
    fn handle_timeout(&self, now: Time) {
        Engine::handle_timeout(self, now);
    }
    fn poll_event(&self) -> Option<Event> {
        Engine::poll_event(self)
    }
    fn poll_offers(&self) -> Vec<Offer> {
        Engine::poll_offers(self)
    }
    fn drain_events(&self, out: &mut Vec<Event>) {
        self.events.drain(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AgentConfig;
    use crate::model::ClientType;

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
        // Substitute busy: the issue's example trace.
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

    #[test]
    fn busy_manager_is_waited_for_then_skipped() {
        let mut c = cfg(vec![
            agent("ana", &["key_account_manager"], &[]),
            agent("kira", &["key_account_manager"], &[]),
        ]);
        c.busy_manager_wait_s = 10;
        let e = Engine::new(c).unwrap();
        login_all(&e, t(0));
        let key = || Some(client(ClientType::Key, Some("ana"), 0));
        let first = call(&e, t(1), key(), Purpose::Order);
        assert_eq!(offered_to(&e), ["ana"]);
        e.report(t(1), first, Outcome::Answered(idx(&e, "ana")))
            .unwrap();
        // ana is busy: wait for her (kira stays idle) ...
        let second = call(&e, t(2), key(), Purpose::Order);
        assert!(e.next_offer().is_none());
        assert_eq!(e.poll_timeout(), Some(t(12)));
        // ... she frees within the wait and gets it.
        e.hangup(t(5), first, HangupSide::Caller).unwrap();
        let o = e.next_offer().unwrap();
        assert_eq!((o.call, o.agents.clone()), (second, vec![idx(&e, "ana")]));
        e.report(t(5), second, Outcome::Answered(idx(&e, "ana")))
            .unwrap();
        // A third call waits 10 s, then moves on to kira.
        let third = call(&e, t(6), key(), Purpose::Order);
        e.handle_timeout(t(15));
        assert!(e.next_offer().is_none());
        e.handle_timeout(t(16));
        let o = e.next_offer().unwrap();
        assert_eq!((o.call, o.agents.clone()), (third, vec![idx(&e, "kira")]));
        assert_eq!(
            o.route,
            "assigned_manager(ana: on_call) > role:key_account_manager(kira)"
        );
    }

    #[test]
    fn absent_manager_is_skipped_at_once_even_with_a_busy_wait() {
        let mut c = cfg(vec![
            agent("ana", &["key_account_manager"], &[]),
            agent("kira", &["key_account_manager"], &[]),
        ]);
        c.busy_manager_wait_s = 60;
        let e = Engine::new(c).unwrap();
        login_all(&e, t(0));
        set(&e, "ana", AgentStateChange::Absent { substitute: None });
        call(
            &e,
            t(1),
            Some(client(ClientType::Key, Some("ana"), 0)),
            Purpose::Order,
        );
        assert_eq!(offered_to(&e), ["kira"]);
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
    fn finished_calls_are_freed_after_waiting_list_scans() {
        // Two agents, both talking, and a backlog of five calls: every call waits in the list
        // behind others until hang-ups free an agent; dispatch and `stats` scan the list.
        let e = strategy_engine(Strategy::LongestIdle, &[1, 1]);
        let mut now = t(1);
        let mut cells = Vec::new();
        let mut talking = std::collections::VecDeque::new();
        for i in 0..1000 {
            now = now.plus_millis(10);
            let c = call(
                &e,
                now,
                Some(client(ClientType::Retail, None, 0)),
                Purpose::Order,
            );
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
        // Calls still in progress, plus removed entries the skip list's epoch collector has not
        // reclaimed yet (a bounded number), stay; a thousand finished calls do not.
        assert!(alive < 200, "{alive} of 1000 call records still alive");
    }

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
}
