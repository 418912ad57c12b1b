//! The engine's records: agent slots and their static data, queues at run time, route
//! templates and the call cell with the atomics of the offer protocol.

use super::*;

/// One agent's mutable state. The `word` is the truth; everything else is bookkeeping that
/// only its current owner (the thread that moved the word) writes.
pub(super) struct AgentSlot {
    pub(super) word: AtomicU64,
    pub(super) state_since: AtomicU64,
    pub(super) idle_since: AtomicU64,
    pub(super) calls_today: AtomicU64,
    pub(super) talk_ms_today: AtomicU64,
    pub(super) no_answer_streak: AtomicU32,
    pub(super) substitute: AtomicU32,
}

pub(super) struct AgentInfo {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) roles: Vec<u32>,
    pub(super) skills: Vec<(u32, u8)>,
    pub(super) default_substitute: u32,
    /// Waiting lists this agent can serve: its own, its roles', its skills' queues'.
    pub(super) lists: Vec<ListRef>,
    /// The agent's place in each availability index it belongs to: (index, position).
    pub(super) hints: Vec<(usize, usize)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ListRef {
    Agent(u32),
    Role(u32),
    Queue(u32),
}

pub(super) struct QueueRt {
    pub(super) cfg: QueueConfig,
    pub(super) skill: u32,
    pub(super) waiting: WaitList,
    pub(super) rr_cursor: AtomicU32,
    pub(super) agents: Vec<u32>,
    pub(super) entered: AtomicU64,
    pub(super) answered: AtomicU64,
    pub(super) answered_within: AtomicU64,
    pub(super) abandoned: AtomicU64,
    pub(super) overflowed: AtomicU64,
    pub(super) timed_out: AtomicU64,
    pub(super) wait_total: AtomicU64,
    /// Calls of this queue offered at once on arrival and not yet answered, put back or gone:
    /// they wait (ring) without being in `waiting`.
    pub(super) unlisted: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    Agent(u32),
    Role(u32),
    Queue(u32),
    Nobody,
}

#[derive(Debug, Clone)]
pub(super) enum TemplateKind {
    AssignedManager,
    Agent(u32),
    Role(u32),
    Queue(u32),
}

#[derive(Debug, Clone)]
pub(super) struct TemplateStep {
    pub(super) label: Arc<str>,
    pub(super) kind: TemplateKind,
}

/// Which route chain template a call was resolved from (its steps' labels live there).
#[derive(Debug, Clone, Copy)]
pub(super) enum TemplateRef {
    Class(usize),
    Queue(usize),
    /// A transfer to one agent (`agent:<id>`).
    Agent(usize),
    /// A transfer to a role (`role:<role>`).
    Role(usize),
}

/// A resolved step of one call's chain (step `i` comes from step `i` of the call's template).
pub(super) struct CallStep {
    pub(super) target: Target,
    /// For `assigned_manager`: the manager (the target may be their substitute).
    pub(super) manager: u32,
    /// Position key priority in the target's list.
    pub(super) prio: u8,
}

/// One call. Immutable routing data plus the atomics of the offer protocol.
pub(super) struct CallCell {
    pub(super) id: CallId,
    pub(super) template: TemplateRef,
    pub(super) enqueued_at: Time,
    pub(super) steps: Vec<CallStep>,
    /// [`CS_WAITING`] ... with the offered/talking agent in the low bits. Every move of a call
    /// is one CAS on this word: "never offered twice at once" is this CAS.
    pub(super) status: AtomicU64,
    /// Steps `0..frontier` have been reached; reached steps stay eligible.
    pub(super) frontier: AtomicU32,
    pub(super) frontier_since: AtomicU64,
    /// Bit i: step i's target list holds this call.
    pub(super) registered: AtomicU64,
    pub(super) attempts: AtomicU32,
    pub(super) offer_seq: AtomicU32,
    /// Agents still ringing for the current offer; the release that brings it to zero puts
    /// the call back.
    pub(super) ringing: AtomicU32,
    pub(super) last_no_answer: AtomicU32,
    pub(super) offered_step: AtomicU32,
    pub(super) stats_queue: AtomicU32,
    pub(super) answered_at: AtomicU64,
    /// 1 while the call, offered at once on arrival, is in no waiting list (see
    /// [`Engine::route_along`]); counted in its queue's `unlisted`.
    pub(super) unlisted: AtomicU32,
    /// 1 once the caller hung up asking to be called back: the entry only holds their place
    /// (see [`Engine::hold_place`]). Set once, never cleared.
    pub(super) held: AtomicU32,
}

impl CallCell {
    pub(super) fn st(&self) -> u64 {
        self.status.load(SeqCst)
    }
    /// Whether the entry holds the place of a caller who asked to be called back.
    pub(super) fn is_held(&self) -> bool {
        self.held.load(SeqCst) == 1
    }
    /// Moves a waiting call (one not being offered) to gone by CAS; false when it was not
    /// waiting.
    pub(super) fn leave_waiting(&self) -> bool {
        self.status
            .compare_exchange(
                mk_status(CS_WAITING, NONE),
                mk_status(CS_GONE, NONE),
                SeqCst,
                SeqCst,
            )
            .is_ok()
    }
    pub(super) fn is_registered(&self, i: usize) -> bool {
        i < 64 && self.registered.load(SeqCst) & (1u64 << i) != 0
    }
    pub(super) fn key(&self, i: usize) -> Option<WaitKey> {
        self.steps.get(i).map(|s| WaitKey {
            prio_rev: u8::MAX - s.prio,
            seq: self.id.0,
        })
    }
    pub(super) fn step_for(&self, lr: ListRef) -> Option<usize> {
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

pub(super) const T_ADVANCE: u8 = 0;
pub(super) const T_WRAPUP: u8 = 1;
/// The scheduled daily reset of the counters (see [`Engine::schedule_daily_reset`]).
pub(super) const T_DAY: u8 = 2;

/// A claimed agent and the (pending) word its claim wrote.
#[derive(Debug, Clone, Copy)]
pub(super) struct Claim {
    pub(super) agent: u32,
    pub(super) word: u64,
}

/// A timer: (deadline, kind, call or agent, stage or call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct TimerKey {
    pub(super) at: u64,
    pub(super) kind: u8,
    pub(super) id: u64,
    pub(super) aux: u64,
}

pub(super) enum Attempt {
    Offered,
    CallTaken,
    NoAgent,
}

pub(super) enum Hold {
    Until(Time),
    Pass,
}

/// Present: could take calls at some point without logging in or coming back (neither
/// logged out nor absent).
pub(super) const fn present(k: AgentStateKind) -> bool {
    !matches!(k, AgentStateKind::LoggedOut | AgentStateKind::Absent)
}
