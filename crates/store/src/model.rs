//! The records Switchboard keeps: call-detail records, queue events, agent session events,
//! clients and call-back requests. Plain data; no SQL here.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// A UTC instant. Stored as `timestamptz` in PostgreSQL and ISO-8601 text in SQLite, with
/// microsecond precision (finer digits are dropped by the database).
pub type Timestamp = DateTime<Utc>;

/// Declares a closed set of text values: the enum, `as_str`, `FromStr` with a clear message,
/// `Display` and serde under the same spelling as the database column.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling used in the database, JSON and configuration.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = StoreError;

            fn from_str(s: &str) -> Result<Self, StoreError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(StoreError::InvalidValue {
                        what: $what,
                        value: s.to_owned(),
                        expected: [$($text),+].join(", "),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use text_enum;

text_enum!(
    /// Which way a call went.
    Direction, "call direction" {
        /// From a trunk to Switchboard.
        Inbound = "inbound",
        /// From Switchboard out through a trunk (call-backs, campaigns).
        Outbound = "outbound",
    }
);

text_enum!(
    /// How a call ended.
    Outcome, "call outcome" {
        /// An agent talked to the caller.
        Answered = "answered",
        /// The caller hung up while waiting.
        Abandoned = "abandoned",
        /// The caller waited longer than the queue's maximum and had no overflow target.
        Timeout = "timeout",
        /// No step of the route chain had an agent to offer the call to.
        NoAgent = "no_agent",
        /// Switchboard refused the call (policy, unknown trunk, overload).
        Rejected = "rejected",
        /// The agent transferred the call elsewhere.
        Transferred = "transferred",
        /// A technical failure ended the call.
        Failed = "failed",
        /// The caller asked to be called back instead of waiting.
        CallbackRequested = "callback_requested",
        /// The server stopped (was killed) while the call was in progress: the row is the
        /// call's journal, with the last time known as its end.
        Interrupted = "interrupted",
    }
);

text_enum!(
    /// Who hung up first.
    HangupSide, "hangup side" {
        /// The customer.
        Caller = "caller",
        /// The agent.
        Agent = "agent",
        /// Switchboard itself (timeout, rejection, shutdown).
        System = "system",
    }
);

text_enum!(
    /// A queue event, named as in Asterisk's `queue_log`.
    QueueEventKind, "queue event" {
        /// The caller entered the queue (`data`: caller number, position).
        EnterQueue = "ENTERQUEUE",
        /// An agent was rung and did not answer (`data`: ring time in ms).
        RingNoAnswer = "RINGNOANSWER",
        /// An agent answered (`data`: wait time in ms).
        Connect = "CONNECT",
        /// The caller hung up after talking (`data`: wait and talk time).
        CompleteCaller = "COMPLETECALLER",
        /// The agent hung up after talking (`data`: wait and talk time).
        CompleteAgent = "COMPLETEAGENT",
        /// The caller hung up while waiting (`data`: position, wait time).
        Abandon = "ABANDON",
        /// The caller left after the queue's maximum wait (`data`: position, wait time).
        ExitWithTimeout = "EXITWITHTIMEOUT",
        /// The caller left asking to be called back, keeping their place (`data`: the key
        /// pressed and the position, `1|3`).
        ExitWithKey = "EXITWITHKEY",
        /// The call was transferred (`data`: target).
        Transfer = "TRANSFER",
    }
);

text_enum!(
    /// What happened in an agent's session.
    AgentEventKind, "agent session event" {
        /// The agent started a shift (logged in).
        Login = "login",
        /// The agent ended a shift (logged out).
        Logout = "logout",
        /// The agent's state changed (see `state` and `reason`).
        State = "state",
    }
);

text_enum!(
    /// A client's type in the directory (PRODUCT.md §2). Unknown numbers are treated as `new`.
    ClientType, "client type" {
        /// Key account: served by an assigned key-account manager.
        Key = "key",
        /// Regional client: served by operators with the `regional` skill.
        Regional = "regional",
        /// Retail client.
        Retail = "retail",
        /// Marketer.
        Marketer = "marketer",
        /// The company's own outlet.
        OwnOutlet = "own_outlet",
        /// New client, no manager assigned yet.
        New = "new",
        /// Wholesale client that is none of the above.
        Wholesale = "wholesale",
    }
);

text_enum!(
    /// Where a "call me back" request stands.
    CallbackStatus, "call-back status" {
        /// Waiting for its time.
        Pending = "pending",
        /// Being dialled now.
        Dialing = "dialing",
        /// Done: the client was reached.
        Done = "done",
        /// Tried and failed.
        Failed = "failed",
        /// Cancelled before it was dialled.
        Cancelled = "cancelled",
        /// Never dialled: its time passed while it could not be dialled.
        Expired = "expired",
    }
);

/// A new, unique record id (UUID v7: time-ordered, random in its low bits).
pub fn new_record_id() -> String {
    crate::clock::new_uuid_v7().to_string()
}

/// One call-detail record (table `calls`), written when the call ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Unique record id chosen by the caller (see [`new_record_id`]); inserts are idempotent on it.
    pub id: String,
    /// The SIP Call-ID of the customer leg.
    pub sip_call_id: String,
    /// Inbound or outbound.
    pub direction: Direction,
    /// The trunk the call came in on or went out through.
    pub trunk: Option<String>,
    /// The calling number as received.
    pub caller: String,
    /// The dialed number (DID) as received.
    pub dialed: String,
    /// The normalised client number the directory was searched with.
    pub client_number: Option<String>,
    /// The derived client class (`debt`, `key`, `new`, `regional`, `other`, `complaint`, `standard`).
    pub client_class: Option<String>,
    /// The purpose (`order`, `information`, `other`, `complaint`).
    pub purpose: Option<String>,
    /// The queue the caller waited in, if any.
    pub queue: Option<String>,
    /// The agent who answered, if any.
    pub agent_id: Option<String>,
    /// The routing explanation: chain steps tried and why each was skipped.
    pub route: String,
    /// When the call arrived (or was dialled, for outbound calls).
    pub started_at: Timestamp,
    /// When the caller entered a queue.
    pub queued_at: Option<Timestamp>,
    /// When an agent answered.
    pub answered_at: Option<Timestamp>,
    /// When the call ended.
    pub ended_at: Timestamp,
    /// Time spent waiting for an agent, in milliseconds.
    pub wait_ms: i64,
    /// Time spent talking to an agent, in milliseconds.
    pub talk_ms: i64,
    /// How the call ended.
    pub outcome: Outcome,
    /// Who hung up.
    pub hangup_side: HangupSide,
    /// The recording's file name, when the call was recorded.
    pub recording: Option<String>,
    /// `Some(node)` while the call is in progress: a journal row written at the call's start
    /// and at each phase change (outcome `interrupted`, ended at the last time known), which
    /// the final record replaces. `node` names the server that journals it; at its next start
    /// that server closes its journal rows left open (see [`crate::StoreOptions::journal_node`]).
    /// `None` for a final record. A journal row never overwrites a final one, so replays
    /// keep the final state.
    #[serde(default)]
    pub journal: Option<String>,
    /// The call-back this outbound call was made for.
    #[serde(default)]
    pub callback_id: Option<String>,
    /// The campaign this outbound call was made for.
    #[serde(default)]
    pub campaign: Option<String>,
}

/// One queue event (table `queue_events`), like a line of Asterisk's `queue_log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEvent {
    /// Unique record id.
    pub id: String,
    /// When it happened.
    pub at: Timestamp,
    /// The call's record id (`calls.id`).
    pub call_id: String,
    /// The queue.
    pub queue: String,
    /// The agent involved, if any.
    pub agent_id: Option<String>,
    /// What happened.
    pub event: QueueEventKind,
    /// Event-specific details (free text, `|`-separated like `queue_log`).
    pub data: Option<String>,
}

/// One agent session event (table `agent_sessions`): login, logout or a state change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSessionEvent {
    /// Unique record id.
    pub id: String,
    /// When it happened.
    pub at: Timestamp,
    /// The agent.
    pub agent_id: String,
    /// Login, logout or state change.
    pub event: AgentEventKind,
    /// The agent's state after the event (`available`, `break`, `absent`, …).
    pub state: Option<String>,
    /// Why (break reason, substitute, "3 missed calls", …).
    pub reason: Option<String>,
}

/// Anything the record writer stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// A call-detail record (boxed: it is several times larger than the events).
    Call(Box<CallRecord>),
    /// A queue event.
    QueueEvent(QueueEvent),
    /// An agent session event.
    AgentSession(AgentSessionEvent),
}

impl Record {
    /// The record's unique id.
    pub fn id(&self) -> &str {
        match self {
            Record::Call(c) => &c.id,
            Record::QueueEvent(e) => &e.id,
            Record::AgentSession(e) => &e.id,
        }
    }
}

impl From<CallRecord> for Record {
    fn from(r: CallRecord) -> Self {
        Record::Call(Box::new(r))
    }
}

impl From<QueueEvent> for Record {
    fn from(r: QueueEvent) -> Self {
        Record::QueueEvent(r)
    }
}

impl From<AgentSessionEvent> for Record {
    fn from(r: AgentSessionEvent) -> Self {
        Record::AgentSession(r)
    }
}

/// An amount of money in minor units (cents). Parsed from and printed as a decimal with up to
/// two fractional digits (`"1500"`, `"1500.5"`, `"1500.50"`); never negative. In JSON it is a
/// number; in the database a `NUMERIC`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

impl Money {
    /// Zero.
    pub const ZERO: Money = Money(0);

    /// From minor units (cents); `None` when negative.
    pub fn from_cents(cents: i64) -> Option<Money> {
        (cents >= 0).then_some(Money(cents))
    }

    /// The amount in minor units.
    pub fn cents(self) -> i64 {
        self.0
    }

    /// Whether the amount is above zero.
    pub fn is_positive(self) -> bool {
        self.0 > 0
    }
}

impl FromStr for Money {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Money, StoreError> {
        let bad = || StoreError::InvalidValue {
            what: "amount",
            value: s.to_owned(),
            expected: "a non-negative decimal with at most two fractional digits".to_owned(),
        };
        let t = s.trim();
        let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
        let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(frac) || frac.len() > 2 {
            return Err(bad());
        }
        // A database NUMERIC may print trailing zeros beyond two digits ("12.50" is fine).
        let whole: i64 = whole.parse().map_err(|_| bad())?;
        let frac_cents: i64 = match frac.len() {
            0 => 0,
            1 => frac.parse::<i64>().map_err(|_| bad())? * 10,
            _ => frac.parse().map_err(|_| bad())?,
        };
        whole
            .checked_mul(100)
            .and_then(|c| c.checked_add(frac_cents))
            .map(Money)
            .ok_or_else(bad)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Exact for every amount below 2^53 cents; JSON has no decimal type.
        #[allow(clippy::cast_precision_loss)]
        s.serialize_f64(self.0 as f64 / 100.0)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Float(f64),
            Text(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Int(i) => i.to_string(),
            Raw::Float(f) => {
                if !f.is_finite() || f < 0.0 {
                    return Err(serde::de::Error::custom(
                        "amount must be a non-negative number",
                    ));
                }
                format!("{f:.2}")
            }
            Raw::Text(s) => s,
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Normalises a telephone number for the client directory: strips spaces, dashes, dots and
/// parentheses, keeps one leading `+`, and requires the rest to be digits.
pub fn normalize_number(raw: &str) -> Result<String, StoreError> {
    let bad = |why: &str| StoreError::InvalidValue {
        what: "telephone number",
        value: raw.to_owned(),
        expected: why.to_owned(),
    };
    let mut out = String::with_capacity(raw.len());
    for (i, c) in raw.trim().chars().enumerate() {
        match c {
            ' ' | '-' | '(' | ')' | '.' | '\t' => {}
            '+' if i == 0 => out.push('+'),
            '0'..='9' => out.push(c),
            _ => {
                return Err(bad(
                    "digits, optionally with a leading + (spaces, dashes and parentheses are ignored)",
                ));
            }
        }
    }
    let digits = out.trim_start_matches('+').len();
    if digits == 0 {
        return Err(bad("at least one digit"));
    }
    if digits > 32 {
        return Err(bad("at most 32 digits"));
    }
    Ok(out)
}

/// A client in the directory (table `clients`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// Normalised telephone number (see [`normalize_number`]); the key.
    pub number: String,
    /// Display name.
    pub name: String,
    /// Client type.
    #[serde(rename = "type")]
    pub client_type: ClientType,
    /// Assigned manager (agent id), if any.
    pub manager: Option<String>,
    /// Region, if any.
    pub region: Option<String>,
    /// Overdue debt; above zero routes order calls to the manager or finance.
    pub overdue_debt: Money,
}

/// A "call me back" request (table `callbacks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Callback {
    /// Unique id (see [`new_record_id`]).
    pub id: String,
    /// The number to call (normalised).
    pub number: String,
    /// When to call; `None` means as soon as possible.
    pub at: Option<Timestamp>,
    /// The queue to connect the call to, if not the default.
    pub queue: Option<String>,
    /// When the request was made.
    pub created_at: Timestamp,
    /// Where it stands.
    pub status: CallbackStatus,
    /// Attempts made so far (calls to the number; an agent who did not take the call does
    /// not count).
    pub attempts: u32,
    /// When the next attempt is due; `None` means as soon as possible.
    pub next_at: Option<Timestamp>,
    /// How the last attempt ended (`answered`, `busy`, `no_answer`, `failed`, …).
    pub last_result: Option<String>,
    /// When the status last changed.
    pub updated_at: Option<Timestamp>,
    /// The records of the calls it produced (filled when read; ignored on insert).
    #[serde(default)]
    pub call_ids: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_normalised() {
        assert_eq!(
            normalize_number("+1 (555) 010-99 88").unwrap(),
            "+15550109988"
        );
        assert_eq!(normalize_number(" 8.800.555 ").unwrap(), "8800555");
        assert!(normalize_number("12+3").is_err());
        assert!(normalize_number("++1").is_err());
        assert!(normalize_number("abc").is_err());
        assert!(normalize_number(" - ").is_err());
    }

    #[test]
    fn money_parses_and_prints() {
        assert_eq!("1500".parse::<Money>().unwrap().cents(), 150_000);
        assert_eq!("1500.5".parse::<Money>().unwrap().to_string(), "1500.50");
        assert_eq!("0.07".parse::<Money>().unwrap().cents(), 7);
        for bad in [
            "",
            "-1",
            "1.234",
            "1,5",
            "abc",
            ".5",
            "99999999999999999999",
        ] {
            assert!(bad.parse::<Money>().is_err(), "{bad:?} parsed");
        }
        let m: Money = serde_json::from_str("12.5").unwrap();
        assert_eq!(m.cents(), 1250);
        assert_eq!(serde_json::to_string(&m).unwrap(), "12.5");
        assert!(serde_json::from_str::<Money>("-3").is_err());
    }

    #[test]
    fn unknown_client_type_is_named_in_the_error() {
        let err = "vip".parse::<ClientType>().unwrap_err().to_string();
        assert!(err.contains("vip") && err.contains("own_outlet"), "{err}");
        assert_eq!(
            "own_outlet".parse::<ClientType>().unwrap(),
            ClientType::OwnOutlet
        );
    }

    #[test]
    fn queue_event_names_match_queue_log() {
        assert_eq!(QueueEventKind::ExitWithTimeout.as_str(), "EXITWITHTIMEOUT");
        assert_eq!(
            serde_json::to_string(&QueueEventKind::RingNoAnswer).unwrap(),
            "\"RINGNOANSWER\""
        );
    }
}
