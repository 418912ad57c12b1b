//! What call control keeps per call: the call, its phase (each variant owns what exists only
//! in that phase), agent legs, timers and the reasons a call ends.

use switchboard_engine::{AgentIdx, CallId, Purpose};
use switchboard_sip::dialog::Dialog;
use switchboard_sip::{ClientTxnKey, Instant, Peer, ServerTxnKey};
use switchboard_store::{HangupSide as CdrHangup, Outcome as CdrOutcome};

use crate::calls::media::CallMedia;

/// Which side of a call a SIP dialog belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Caller,
    Agent,
}

impl Side {
    /// How a call ends when this side sends BYE.
    pub fn hung_up(self) -> Ended {
        match self {
            Side::Caller => Ended::CallerHungUp,
            Side::Agent => Ended::AgentHungUp,
        }
    }

    /// Who hung up, as a record says, when this side sends BYE.
    pub fn hangup(self) -> CdrHangup {
        match self {
            Side::Caller => CdrHangup::Caller,
            Side::Agent => CdrHangup::Agent,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LegState {
    /// INVITE sent, no final response.
    Calling,
    /// CANCEL sent (ring timeout, another leg won, caller left).
    Cancelling,
}

/// One INVITE to one contact of an offered agent.
#[derive(Debug)]
pub(super) struct AgentLeg {
    pub agent: AgentIdx,
    pub txn: ClientTxnKey,
    pub dest: Peer,
    pub sip_call_id: String,
}

/// An agent leg with the state of its INVITE.
#[derive(Debug)]
pub(super) struct RingingLeg {
    pub leg: AgentLeg,
    pub state: LegState,
}

/// The agent leg that answered.
#[derive(Debug)]
pub(super) struct Bridged {
    /// The INVITE the agent answered (a second 2xx to it comes from a fork).
    pub invite_txn: ClientTxnKey,
    pub agent: AgentIdx,
    pub dialog: Dialog,
    pub dest: Peer,
    pub sip_call_id: String,
    /// The agent put the caller on hold (re-INVITE sendonly/inactive).
    pub held: bool,
}

/// Agents being offered a queued call and the INVITEs ringing their phones.
#[derive(Debug, Default)]
pub(super) struct Ringing {
    pub legs: Vec<RingingLeg>,
    /// Agents whose offer is outstanding (not yet reported to the engine).
    pub offered: Vec<AgentIdx>,
}

/// Where a call is. Each phase owns what exists only in it: agent legs while queued, the
/// agent's dialog while talking.
#[derive(Debug)]
pub(super) enum Phase {
    /// In the voice menu: answered, not yet routed.
    Menu,
    /// Waiting for an agent (music, announcements; agents may be ringing).
    Queued(Ringing),
    /// Bridged to an agent.
    Talking(Box<Bridged>),
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Menu => "menu",
            Phase::Queued(r) if r.offered.is_empty() => "queued",
            Phase::Queued(_) => "ringing",
            Phase::Talking(_) => "talking",
        }
    }

    pub fn is_queued(&self) -> bool {
        matches!(self, Phase::Queued(_))
    }

    pub fn ringing(&self) -> Option<&Ringing> {
        match self {
            Phase::Queued(r) => Some(r),
            _ => None,
        }
    }

    pub fn ringing_mut(&mut self) -> Option<&mut Ringing> {
        match self {
            Phase::Queued(r) => Some(r),
            _ => None,
        }
    }

    pub fn bridged(&self) -> Option<&Bridged> {
        match self {
            Phase::Talking(b) => Some(b),
            _ => None,
        }
    }
}

/// RFC 4028 session timer of the caller's dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SessionTimer {
    /// The negotiated interval (Session-Expires), seconds.
    pub interval_s: u32,
    /// Switchboard refreshes (refresher=uas); otherwise the caller does.
    pub we_refresh: bool,
}

/// The caller's side of a call: the trunk's INVITE and the dialog it formed.
#[derive(Debug)]
pub(super) struct CallerLeg {
    pub invite_txn: ServerTxnKey,
    pub dialog: Dialog,
    pub peer: Peer,
    pub sip_call_id: String,
    /// The caller put the agent on hold (re-INVITE sendonly/inactive).
    pub held: bool,
    pub session_timer: Option<SessionTimer>,
    /// The caller's INVITE allows UPDATE (our session refreshes use it, else re-INVITE).
    pub allows_update: bool,
    /// A re-INVITE of ours to the caller is in progress: the caller's re-INVITE meets 491
    /// (RFC 3261 §14.2 glare).
    pub our_reinvite: Option<switchboard_sip::ClientTxnKey>,
    /// Reliable provisional responses sent (RFC 3262 `RSeq`).
    pub rseq: u32,
}

#[derive(Debug)]
pub(super) struct Call {
    pub key: u64,
    /// `None` while the caller is still in the voice menu.
    pub engine_call: Option<CallId>,
    pub record_id: String,
    pub trunk: String,
    pub caller: String,
    pub dialed: String,
    pub client_number: String,
    /// What agents' phones are told of the client (`X-Switchboard-Client`, the screen pop).
    pub client_card: String,
    pub class: String,
    pub purpose: Purpose,
    pub caller_leg: CallerLeg,
    pub phase: Phase,
    pub route: String,
    pub queue: Option<String>,
    pub started_at: Instant,
    pub queued_at: Instant,
    pub answered_at: Option<Instant>,
    pub media: CallMedia,
    /// RTP silence is counted from here at the earliest: the caller's answer, the bridge to
    /// an agent, the end of a hold.
    pub rtp_since: Instant,
    /// The caller has heard the in-queue call-back offer (`[callbacks] in_queue_digit`).
    pub callback_offered: bool,
    /// The call-back the caller asked for (their place is held; the call ends as
    /// `callback_requested`).
    pub callback_id: Option<String>,
}

impl Call {
    /// Agents whose offer of this call is outstanding.
    pub fn offered(&self) -> &[AgentIdx] {
        self.phase.ringing().map_or(&[], |r| r.offered.as_slice())
    }

    /// Either side holds the call.
    pub fn held(&self) -> bool {
        self.caller_leg.held || self.phase.bridged().is_some_and(|b| b.held)
    }
}

/// Deadlines call control keeps besides the endpoint's and the engine's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    /// The offer of `agent` for call `key` rang too long.
    RingTimeout { key: u64, agent: AgentIdx },
    /// Time for the next position announcement of call `key`.
    Announce { key: u64 },
    /// The caller of `key` chose nothing in the voice menu.
    MenuTimeout { key: u64 },
    /// Agent leg `txn`, given up on, still has no final response: forget it.
    ForgetLeg { txn: ClientTxnKey },
    /// Time to check that call `key`'s legs still send RTP (`media.rtp_timeout_s`).
    RtpCheck { key: u64 },
    /// Switchboard is the refresher of call `key`'s session timer: time to refresh.
    SessionRefresh { key: u64 },
    /// The session timer of call `key` ran out without a refresh (RFC 4028 §10).
    SessionExpired { key: u64 },
    /// The agent's phone of outbound call `key` rang too long.
    OutboundAgentRing { key: u64 },
    /// The customer of outbound call `key` did not answer in time.
    OutboundNoAnswer { key: u64 },
    /// Call `key`, which no agent can serve, has heard its short message: hang up.
    NoAgentGoodbye { key: u64 },
    /// Call `key` has waited `[callbacks] offer_after_s`: offer the call-back.
    CallbackOffer { key: u64 },
    /// The caller of `key`, whose call-back is booked, has heard the confirmation: hang up.
    CallbackGoodbye { key: u64 },
}

impl Timer {
    /// The call the timer belongs to (`None` for a forgotten leg's).
    pub fn call(self) -> Option<u64> {
        match self {
            Timer::RingTimeout { key, .. }
            | Timer::Announce { key }
            | Timer::MenuTimeout { key }
            | Timer::RtpCheck { key }
            | Timer::SessionRefresh { key }
            | Timer::SessionExpired { key }
            | Timer::OutboundAgentRing { key }
            | Timer::OutboundNoAnswer { key }
            | Timer::NoAgentGoodbye { key }
            | Timer::CallbackOffer { key }
            | Timer::CallbackGoodbye { key } => Some(key),
            Timer::ForgetLeg { .. } => None,
        }
    }
}

/// How one record of a call ended (a transfer ends a segment, the call goes on).
#[derive(Debug, Clone)]
pub(super) struct SegmentEnd {
    pub agent: Option<String>,
    pub outcome: CdrOutcome,
    pub side: CdrHangup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    CallerHungUp,
    AgentHungUp,
    Failed,
    Shutdown,
    /// Nobody can take the call (after the voice menu).
    NoAgent,
    /// A leg sent no RTP for `media.rtp_timeout_s` (its party is most likely gone and the
    /// BYE was lost).
    RtpTimeout,
    /// The call waited as long as its route chain allows (PRODUCT §3).
    Timeout,
    /// The caller's session timer ran out without a refresh.
    SessionExpired,
    /// The caller booked a call-back and heard the confirmation.
    CallbackBooked,
}
