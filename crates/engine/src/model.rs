//! The engine's vocabulary: time, identifiers, clients, classes, route steps, agent states,
//! offers, outcomes and events. Plain data; no behaviour beyond parsing and printing.

use std::fmt;
use std::str::FromStr;

use crate::error::EngineError;

/// A point in time: milliseconds since an epoch the caller chooses (the server uses the Unix
/// epoch, the simulation starts at zero). The engine never reads a clock; every call that
/// depends on time takes one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(u64);

impl Time {
    /// The epoch itself.
    pub const ZERO: Time = Time(0);

    /// `ms` milliseconds after the epoch.
    pub const fn from_millis(ms: u64) -> Time {
        Time(ms)
    }

    /// `s` seconds after the epoch (saturating).
    pub const fn from_secs(s: u64) -> Time {
        Time(s.saturating_mul(1000))
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// This time plus `ms` milliseconds (saturating).
    pub const fn plus_millis(self, ms: u64) -> Time {
        Time(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self`; zero when `earlier` is later.
    pub const fn millis_since(self, earlier: Time) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// Dense index of an agent, in configuration order. Stable for the life of an [`crate::Engine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentIdx(pub u32);

/// Dense index of a queue, in configuration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueIdx(pub u32);

/// Identifier of a call inside the engine; increasing in arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why the customer calls (PRODUCT §3): from the dialed number or the voice menu.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Purpose {
    /// Placing an order (the default).
    #[default]
    Order,
    /// Reference information.
    Information,
    /// Neither an order nor information.
    Other,
    /// A complaint.
    Complaint,
}

impl Purpose {
    /// Every purpose.
    pub const ALL: [Purpose; 4] = [
        Purpose::Order,
        Purpose::Information,
        Purpose::Other,
        Purpose::Complaint,
    ];

    /// The configuration spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Purpose::Order => "order",
            Purpose::Information => "information",
            Purpose::Other => "other",
            Purpose::Complaint => "complaint",
        }
    }
}

impl FromStr for Purpose {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Purpose::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| EngineError::BadValue {
                what: "purpose",
                value: s.to_owned(),
            })
    }
}

/// Client type from the client directory (PRODUCT §2 rule 2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientType {
    /// Key account: served by key-account managers (rule 4).
    Key,
    /// Regional client: served by operators with the `regional` skill (rule 7).
    Regional,
    /// Retail client.
    Retail,
    /// Marketer.
    Marketer,
    /// The company's own outlet.
    OwnOutlet,
    /// New client: no assigned manager yet (rule 6).
    New,
    /// Any other type the directory knows; routed like retail.
    Other(String),
}

impl ClientType {
    /// The directory spelling.
    pub fn as_str(&self) -> &str {
        match self {
            ClientType::Key => "key",
            ClientType::Regional => "regional",
            ClientType::Retail => "retail",
            ClientType::Marketer => "marketer",
            ClientType::OwnOutlet => "own_outlet",
            ClientType::New => "new",
            ClientType::Other(s) => s,
        }
    }

    /// Parses a directory spelling; unknown spellings become [`ClientType::Other`].
    pub fn parse(s: &str) -> ClientType {
        match s {
            "key" => ClientType::Key,
            "regional" => ClientType::Regional,
            "retail" => ClientType::Retail,
            "marketer" => ClientType::Marketer,
            "own_outlet" => ClientType::OwnOutlet,
            "new" => ClientType::New,
            other => ClientType::Other(other.to_owned()),
        }
    }
}

/// A client directory record (PRODUCT §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Caller number as the directory stores it.
    pub number: String,
    /// Display name.
    pub name: String,
    /// Client type.
    pub client_type: ClientType,
    /// Id of the assigned manager (an agent id), if any.
    pub manager: Option<String>,
    /// Region, if any.
    pub region: Option<String>,
    /// Overdue or excess debt in minor currency units; anything above zero counts (rule 5).
    pub overdue_debt: u64,
}

/// Lookup of callers in the client directory. The store implements it; tests use a map.
pub trait ClientDirectory {
    /// The client record for a caller number, or `None` for an unknown number (class `new`).
    fn lookup(&self, number: &str) -> Option<Client>;
}

impl ClientDirectory for std::collections::HashMap<String, Client> {
    fn lookup(&self, number: &str) -> Option<Client> {
        self.get(number).cloned()
    }
}

/// Client class (PRODUCT §3), derived in declaration order by [`crate::classify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// Overdue debt and purpose `order`.
    Debt,
    /// Key account.
    Key,
    /// New or unknown client.
    New,
    /// Regional client.
    Regional,
    /// Purpose `other`.
    Other,
    /// Purpose `complaint`.
    Complaint,
    /// Everything else.
    Standard,
}

impl Class {
    /// Every class in derivation order.
    pub const ALL: [Class; 7] = [
        Class::Debt,
        Class::Key,
        Class::New,
        Class::Regional,
        Class::Other,
        Class::Complaint,
        Class::Standard,
    ];

    /// The configuration spelling (`[routing]` keys, CDR `client_class`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Class::Debt => "debt",
            Class::Key => "key",
            Class::New => "new",
            Class::Regional => "regional",
            Class::Other => "other",
            Class::Complaint => "complaint",
            Class::Standard => "standard",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl FromStr for Class {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Class::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| EngineError::BadValue {
                what: "client class",
                value: s.to_owned(),
            })
    }
}

/// One step of a route chain (PRODUCT §3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    /// The client's assigned manager, or their substitute while they are absent.
    AssignedManager,
    /// A named agent.
    Agent(String),
    /// Any agent holding a role, by the default strategy (longest idle).
    Role(String),
    /// A skill-based queue.
    Queue(String),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::AssignedManager => f.write_str("assigned_manager"),
            Step::Agent(a) => write!(f, "agent:{a}"),
            Step::Role(r) => write!(f, "role:{r}"),
            Step::Queue(q) => write!(f, "queue:{q}"),
        }
    }
}

impl FromStr for Step {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || EngineError::BadValue {
            what: "route step",
            value: s.to_owned(),
        };
        if s == "assigned_manager" {
            return Ok(Step::AssignedManager);
        }
        let (kind, name) = s.split_once(':').ok_or_else(bad)?;
        if name.is_empty() {
            return Err(bad());
        }
        match kind {
            "agent" => Ok(Step::Agent(name.to_owned())),
            "role" => Ok(Step::Role(name.to_owned())),
            "queue" => Ok(Step::Queue(name.to_owned())),
            _ => Err(bad()),
        }
    }
}

/// Queue strategy: which available agent is offered a call first. Higher skill level always
/// goes first; the strategy orders agents within a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// The agent whose last call ended longest ago (the default).
    #[default]
    LongestIdle,
    /// Rotate through agents in configuration order, starting after the last one offered.
    RoundRobin,
    /// Ring every available agent with the skill at once; the first to answer takes the call.
    RingAll,
    /// The agent with the fewest calls today.
    FewestCalls,
    /// The agent with the least talk time today.
    LeastTalkTime,
    /// A seeded pseudo-random available agent.
    Random,
    /// Agents in configuration order, always from the first.
    Linear,
}

impl Strategy {
    /// Every strategy.
    pub const ALL: [Strategy; 7] = [
        Strategy::LongestIdle,
        Strategy::RoundRobin,
        Strategy::RingAll,
        Strategy::FewestCalls,
        Strategy::LeastTalkTime,
        Strategy::Random,
        Strategy::Linear,
    ];

    /// The configuration spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Strategy::LongestIdle => "longest_idle",
            Strategy::RoundRobin => "round_robin",
            Strategy::RingAll => "ring_all",
            Strategy::FewestCalls => "fewest_calls",
            Strategy::LeastTalkTime => "least_talk_time",
            Strategy::Random => "random",
            Strategy::Linear => "linear",
        }
    }
}

impl FromStr for Strategy {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| EngineError::BadValue {
                what: "strategy",
                value: s.to_owned(),
            })
    }
}

/// The state of an agent as reported by [`crate::Engine::agents`] and in events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    /// Not logged in.
    LoggedOut,
    /// Waiting for a call.
    Available,
    /// Being offered a call.
    Ringing(CallId),
    /// Talking.
    OnCall(CallId),
    /// After-call work; returns to available after the queue's `wrap_up_s`.
    WrapUp(CallId),
    /// On a break.
    Break {
        /// Reason given with the state change.
        reason: Option<String>,
    },
    /// Away (business trip, vacation, sick leave); assigned clients ring the substitute.
    Absent {
        /// Agent id of the substitute.
        substitute: Option<String>,
    },
    /// Set automatically after repeated no-answers.
    NotReady,
}

impl AgentState {
    /// Short name of the state (`available`, `on_call`, ...), as used in metrics and traces.
    pub fn kind(&self) -> AgentStateKind {
        match self {
            AgentState::LoggedOut => AgentStateKind::LoggedOut,
            AgentState::Available => AgentStateKind::Available,
            AgentState::Ringing(_) => AgentStateKind::Ringing,
            AgentState::OnCall(_) => AgentStateKind::OnCall,
            AgentState::WrapUp(_) => AgentStateKind::WrapUp,
            AgentState::Break { .. } => AgentStateKind::Break,
            AgentState::Absent { .. } => AgentStateKind::Absent,
            AgentState::NotReady => AgentStateKind::NotReady,
        }
    }
}

/// The tag of an [`AgentState`], without its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AgentStateKind {
    /// `logged_out`
    LoggedOut = 0,
    /// `available`
    Available = 1,
    /// `ringing`
    Ringing = 2,
    /// `on_call`
    OnCall = 3,
    /// `wrap_up`
    WrapUp = 4,
    /// `break`
    Break = 5,
    /// `absent`
    Absent = 6,
    /// `not_ready`
    NotReady = 7,
}

impl AgentStateKind {
    /// Every state kind.
    pub const ALL: [AgentStateKind; 8] = [
        AgentStateKind::LoggedOut,
        AgentStateKind::Available,
        AgentStateKind::Ringing,
        AgentStateKind::OnCall,
        AgentStateKind::WrapUp,
        AgentStateKind::Break,
        AgentStateKind::Absent,
        AgentStateKind::NotReady,
    ];

    /// The spelling used in the API, metrics and route traces.
    pub const fn as_str(self) -> &'static str {
        match self {
            AgentStateKind::LoggedOut => "logged_out",
            AgentStateKind::Available => "available",
            AgentStateKind::Ringing => "ringing",
            AgentStateKind::OnCall => "on_call",
            AgentStateKind::WrapUp => "wrap_up",
            AgentStateKind::Break => "break",
            AgentStateKind::Absent => "absent",
            AgentStateKind::NotReady => "not_ready",
        }
    }

    pub(crate) const fn from_tag(tag: u64) -> AgentStateKind {
        match tag {
            1 => AgentStateKind::Available,
            2 => AgentStateKind::Ringing,
            3 => AgentStateKind::OnCall,
            4 => AgentStateKind::WrapUp,
            5 => AgentStateKind::Break,
            6 => AgentStateKind::Absent,
            7 => AgentStateKind::NotReady,
            _ => AgentStateKind::LoggedOut,
        }
    }

    /// Ringing, on a call or in wrap-up: working, but cannot take a call now.
    pub const fn is_busy(self) -> bool {
        matches!(
            self,
            AgentStateKind::Ringing | AgentStateKind::OnCall | AgentStateKind::WrapUp
        )
    }
}

/// A state change requested for an agent (API, softphone registration, supervisor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentStateChange {
    /// Ready for calls (also ends wrap-up early).
    Available,
    /// On a break.
    Break {
        /// Optional reason, kept for the API and events.
        reason: Option<String>,
    },
    /// Log out.
    LoggedOut,
    /// Away; `substitute` overrides the configured substitute.
    Absent {
        /// Agent id of the substitute.
        substitute: Option<String>,
    },
    /// Not ready (normally set by the engine after repeated no-answers).
    NotReady,
}

/// What became of an offer or a call, reported by the engine's caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The agent answered; the call is now talking.
    Answered(AgentIdx),
    /// The agent declined; the call goes back to its place.
    Rejected(AgentIdx),
    /// The agent did not answer within the ring timeout; the call goes back to its place.
    NoAnswer(AgentIdx),
    /// The agent's device went away (unregistered, unreachable); the agent is logged out.
    AgentGone(AgentIdx),
    /// The caller hung up (while waiting, ringing or talking).
    CallerGone,
}

/// Which side ended a talking call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangupSide {
    /// The caller hung up.
    Caller,
    /// The agent hung up.
    Agent,
    /// Switchboard ended the call (shutdown, transfer, error).
    System,
}

impl HangupSide {
    /// The CDR spelling (`hangup_side`).
    pub const fn as_str(self) -> &'static str {
        match self {
            HangupSide::Caller => "caller",
            HangupSide::Agent => "agent",
            HangupSide::System => "system",
        }
    }
}

/// A request to route one inbound (or callback) call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallRequest {
    /// Caller number.
    pub caller: String,
    /// Purpose of the call.
    pub purpose: Purpose,
    /// The directory record, `None` for an unknown number.
    pub client: Option<Client>,
    /// Explicit caller priority (higher first); `None` uses the class priority from config.
    pub priority: Option<u8>,
    /// Route straight to this queue (callbacks, transfers to a queue) instead of the class
    /// chain; the queue's overflow still applies.
    pub queue: Option<QueueIdx>,
}

/// The engine's decision: ring these agents for this call. Each agent in `agents` has been
/// claimed (state `ringing`) for this call; the caller of the engine rings them and reports
/// the [`Outcome`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The call.
    pub call: CallId,
    /// The agents to ring (more than one only for `ring_all`).
    pub agents: Vec<AgentIdx>,
    /// The queue the offer came from, if it came from a queue step.
    pub queue: Option<QueueIdx>,
    /// How long to ring before reporting [`Outcome::NoAnswer`].
    pub ring_timeout_ms: u64,
    /// 1 for the first offer of this call, 2 after one no-answer, ...
    pub attempt: u32,
    /// Explanation of the decision for the CDR `route` column, e.g.
    /// `assigned_manager(ana: absent → marko: on_call) > queue:key_accounts(kira)`.
    pub route: String,
}

/// Something that happened, for `queue_events`, `agent_sessions` and the live event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A call entered the engine (ENTERQUEUE).
    CallEnqueued {
        /// The call.
        call: CallId,
        /// Its class.
        class: Class,
        /// The first queue it waits in, if any.
        queue: Option<QueueIdx>,
        /// When.
        at: Time,
    },
    /// Agents were offered a call.
    CallOffered {
        /// The offer.
        offer: Offer,
        /// When.
        at: Time,
    },
    /// An offer was not answered (RINGNOANSWER); the call went back to its place.
    CallNotAnswered {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentIdx,
        /// `true` when the agent declined rather than timed out.
        rejected: bool,
        /// When.
        at: Time,
    },
    /// An agent answered (CONNECT).
    CallAnswered {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentIdx,
        /// The queue the offer came from.
        queue: Option<QueueIdx>,
        /// Time from enqueue to answer.
        wait_ms: u64,
        /// When.
        at: Time,
    },
    /// A talking call ended (COMPLETECALLER / COMPLETEAGENT).
    CallEnded {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentIdx,
        /// Talk time.
        talk_ms: u64,
        /// Who hung up.
        side: HangupSide,
        /// When.
        at: Time,
    },
    /// The caller hung up before an agent answered (ABANDON).
    CallAbandoned {
        /// The call.
        call: CallId,
        /// Time from enqueue to hang-up.
        wait_ms: u64,
        /// When.
        at: Time,
    },
    /// A queue's max wait passed; the call also goes to the next steps, keeping its place
    /// (EXITWITHTIMEOUT from that queue's point of view).
    CallOverflowed {
        /// The call.
        call: CallId,
        /// The queue whose max wait passed.
        queue: QueueIdx,
        /// When.
        at: Time,
    },
    /// The call waited as long as its chain allows and left the engine with outcome `timeout`
    /// (EXITWITHTIMEOUT): the caller of the engine ends it.
    CallTimedOut {
        /// The call.
        call: CallId,
        /// The queue its statistics count it in, if any.
        queue: Option<QueueIdx>,
        /// Time from enqueue to the timeout.
        wait_ms: u64,
        /// The steps it reached and why none served (as an offer's route trace).
        route: String,
        /// When.
        at: Time,
    },
    /// The caller hung up asking to be called back; the call's entry keeps their place in
    /// every list it reached (see [`crate::Engine::hold_place`]). Its later offer is for the
    /// call-back (EXITWITHKEY).
    PlaceHeld {
        /// The call.
        call: CallId,
        /// The queue its statistics count it in, if any.
        queue: Option<QueueIdx>,
        /// Time from enqueue to the request.
        wait_ms: u64,
        /// When.
        at: Time,
    },
    /// The daily counters (calls and talk time today) were zeroed at the time scheduled by
    /// [`crate::Engine::schedule_daily_reset`]; the caller schedules the next one.
    DailyCountersReset {
        /// When.
        at: Time,
    },
    /// An agent changed state (`agent_sessions`).
    AgentStateChanged {
        /// The agent.
        agent: AgentIdx,
        /// Previous state kind.
        from: AgentStateKind,
        /// New state kind.
        to: AgentStateKind,
        /// When.
        at: Time,
    },
}

/// Snapshot of one agent, for the API and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSnapshot {
    /// Index.
    pub idx: AgentIdx,
    /// Configured id (SIP username).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Current state.
    pub state: AgentState,
    /// When the state was entered.
    pub state_since: Time,
    /// Calls answered today.
    pub calls_today: u64,
    /// Talk time today.
    pub talk_ms_today: u64,
    /// End of the last call (or first login): the longest-idle key.
    pub idle_since: Time,
}

/// Queue statistics for metrics and the API.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueStats {
    /// Queue name.
    pub name: String,
    /// Callers in the queue not yet answered (waiting or ringing).
    pub waiting: usize,
    /// Longest current wait.
    pub oldest_wait_ms: u64,
    /// Calls that entered the queue (their first queue).
    pub entered: u64,
    /// Calls answered.
    pub answered: u64,
    /// Calls answered within the service-level threshold.
    pub answered_within_threshold: u64,
    /// Calls whose caller hung up before an answer.
    pub abandoned: u64,
    /// Calls that passed max wait.
    pub overflowed: u64,
    /// Calls that ended with outcome `timeout` (waited as long as their chain allows).
    pub timed_out: u64,
    /// Sum of waits of answered calls.
    pub answered_wait_ms_total: u64,
    /// Agents holding the queue's skill, by state.
    pub agents_by_state: Vec<(AgentStateKind, usize)>,
}

impl QueueStats {
    /// Answered within threshold / offered, where offered = answered + abandoned;
    /// `None` before any call finished waiting.
    pub fn service_level(&self) -> Option<f64> {
        let offered = self.answered.saturating_add(self.abandoned);
        (offered > 0).then(|| self.answered_within_threshold as f64 / offered as f64)
    }

    /// Average speed of answer in milliseconds; `None` before the first answer.
    pub fn asa_ms(&self) -> Option<f64> {
        (self.answered > 0).then(|| self.answered_wait_ms_total as f64 / self.answered as f64)
    }

    /// Abandoned / (answered + abandoned); `None` before any call finished waiting.
    pub fn abandonment_rate(&self) -> Option<f64> {
        let offered = self.answered.saturating_add(self.abandoned);
        (offered > 0).then(|| self.abandoned as f64 / offered as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse_and_print() {
        for s in [
            "assigned_manager",
            "agent:ana",
            "role:finance",
            "queue:orders",
        ] {
            assert_eq!(s.parse::<Step>().unwrap().to_string(), s);
        }
        assert!("queue:".parse::<Step>().is_err());
        assert!("room:x".parse::<Step>().is_err());
    }

    #[test]
    fn names_round_trip() {
        for c in Class::ALL {
            assert_eq!(c.as_str().parse::<Class>().unwrap(), c);
        }
        assert_eq!("ring_all".parse::<Strategy>().unwrap(), Strategy::RingAll);
        assert_eq!(ClientType::parse("own_outlet"), ClientType::OwnOutlet);
        assert_eq!(ClientType::parse("x").as_str(), "x");
    }

    #[test]
    fn time_saturates() {
        assert_eq!(Time::from_millis(5).millis_since(Time::from_millis(9)), 0);
        assert_eq!(
            Time::from_millis(u64::MAX).plus_millis(1).as_millis(),
            u64::MAX
        );
    }
}
