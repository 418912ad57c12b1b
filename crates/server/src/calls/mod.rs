//! Call control: Switchboard as a back-to-back user agent between a trunk (the customer) and
//! agent softphones.
//!
//! A trunk INVITE is admitted (source ACL), classified and handed to the engine; the caller
//! is answered into the queue (music), and every [`Offer`](switchboard_engine::Offer) of the
//! engine becomes INVITEs to the offered agents' registered contacts. The first 2xx wins and
//! is bridged; the rest are cancelled. BYE on either side ends the other; a caller who leaves
//! while waiting is an abandoned call. Every call ends in exactly one call-detail record.
//!
//! One file per phase of a call: `admission` (trunk ACL and digest), `inbound` (the caller's
//! INVITE, extensions, CANCEL, ACK), `menu` (the voice menu), `queued` (announcements),
//! `legs` (INVITEs to agents and their answers), `transfer` (REFER), `outbound` (agent-first
//! outbound calls: call-backs, click-to-call), `dialogs` (in-dialog requests: BYE,
//! re-INVITE/UPDATE, PRACK, INFO, session timers), `ending` (tearing a call down, the RTP
//! inactivity check), `records` (CDRs, queue events, agent sessions) and `timers` (deadlines
//! by due time and by call). `media` is call control's view of the call's media session,
//! `state` what is kept per call: a call's state is a `state::Phase` whose variants own what
//! exists in that phase.
//!
//! Like the endpoint, this state is owned by the endpoint task alone: no locks. The engine
//! is shared (it is lock-free) so the HTTP API can read and change agent states. Nothing here
//! reads the clock except the RTP check (media counters are stamped by the media tasks), so
//! the `sim` harness of the tests drives calls in virtual time.

mod admission;
mod capacity;
mod dialogs;
mod ending;
mod inbound;
mod inqueue;
mod legs;
pub mod media;
mod menu;
mod outbound;
mod outbound_view;
mod queued;
mod records;
mod state;
mod timers;
mod transfer;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_dialogs;
#[cfg(test)]
mod tests_inqueue;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use switchboard_engine::{
    AgentIdx, AgentStateChange, AgentStateKind, CallId, Engine, Purpose, Time,
};
use switchboard_sip::digest::NonceSource;
use switchboard_sip::{ClientTxnKey, Endpoint, Event, Instant, ServerTxnKey, TxnKey};
use switchboard_sipmsg::{HeaderName, Method, Request, Response};
use switchboard_store::RecordSink;
use tracing::debug;

use crate::calls::media::MediaSetup;
use crate::config::{self, Config};
use crate::http::events::EventBus;
use crate::http::shared::{ActiveCall, Shared};
use crate::ops::metrics::Metrics;
use crate::routing::StoreDirectory;

pub use outbound::{DialRequest, OutboundKind};
use state::{Call, Ended, Side, Timer};

/// A trunk's admission rule.
#[derive(Debug, Clone)]
struct Trunk {
    name: String,
    allow: Vec<IpNet>,
    dids: HashMap<String, Purpose>,
    /// `username` and `password`: sources outside `allow` may answer a 407 with them.
    credentials: Option<(String, String)>,
    /// `outbound`: where outbound calls through this trunk go.
    outbound: Option<Box<config::OutboundTarget>>,
    /// `outbound_username` and `outbound_password`: our answer to the PBX's challenge.
    outbound_credentials: Option<(String, String)>,
    /// `caller_id`: the From number of outbound calls.
    caller_id: Option<String>,
}

/// An agent leg given up on (cancelled, or left behind by its call) is forgotten this many
/// T1 later when its INVITE has still not ended: twice the 64·T1 within which RFC 3261 §9.1
/// expects an INVITE to end after its CANCEL. A 2xx after that is never ACKed (the agent's
/// phone ends that dialog itself), and call control keeps nothing of a call that is over.
const FORGET_LEG_AFTER_T1: u32 = 128;

/// The names of call control's tables, in the order of [`Calls::table_sizes`]: every one is
/// empty when no call is in progress and no agent leg is still ending.
pub const TABLES: [&str; 9] = [
    "calls",
    "outbound",
    "by_engine",
    "by_invite",
    "by_client_txn",
    "by_sip_call_id",
    "timers",
    "orphans",
    "finished",
];

/// Input for call control from tasks other than the endpoint task.
#[derive(Debug, Clone)]
pub enum CallInput {
    /// A DTMF digit from the caller of call `key`.
    Digit { key: u64, digit: char },
    /// Start an outbound call (click-to-call, a due call-back).
    Dial(Box<DialRequest>),
    /// A held place the engine offered is not dialed now (see `PlaceNote::Reached`): free
    /// its agents.
    DropPlace { call: CallId },
}

/// What call control works with, built by the server.
#[derive(Debug)]
pub struct CallDeps {
    pub engine: Arc<Engine>,
    pub directory: StoreDirectory,
    pub records: RecordSink,
    pub metrics: Metrics,
    pub events: EventBus,
    pub media: MediaSetup,
    pub shared: Arc<Shared>,
    /// Where tasks outside the endpoint task send call input (DTMF digits).
    pub inputs: tokio::sync::mpsc::UnboundedSender<CallInput>,
    /// Random bytes keying the nonces of trunk digest challenges.
    pub nonce_secret: Vec<u8>,
    /// The call-back dialer's notes of held places (the in-queue call-back is offered only
    /// with one).
    pub places: Option<tokio::sync::mpsc::UnboundedSender<crate::callbacks::PlaceNote>>,
}

/// The call-control state of the endpoint task.
pub struct Calls {
    engine: Arc<Engine>,
    directory: StoreDirectory,
    records: RecordSink,
    metrics: Metrics,
    events: EventBus,
    media: MediaSetup,
    trunks: Vec<Trunk>,
    trunk_nonces: NonceSource,
    /// Nonce counts seen in trunks' digest answers (a replayed answer is refused).
    trunk_nonce_counts: switchboard_sip::digest::NonceCounts,
    numbers: config::NumbersConfig,
    domain: String,
    queue_settings: HashMap<String, config::QueueConfig>,
    calls: HashMap<u64, Call>,
    /// Outbound calls in progress (agent first, then the customer through a trunk).
    outbound: HashMap<u64, outbound::Outbound>,
    next_key: u64,
    by_engine: HashMap<CallId, u64>,
    by_invite: HashMap<ServerTxnKey, u64>,
    by_client_txn: HashMap<ClientTxnKey, u64>,
    by_sip_call_id: HashMap<String, (u64, Side)>,
    timers: timers::Timers,
    /// Agent legs cancelled or left behind by their call: a late 2xx is ACKed and BYEd.
    /// Where the leg's INVITE went, and when the leg is forgotten if it never ends.
    orphans: HashMap<ClientTxnKey, (switchboard_sip::Peer, Instant)>,
    /// Ended calls whose last engine events are still to come: record id and queue.
    finished: HashMap<CallId, (String, Option<String>)>,
    shutting_down: bool,
    shared: Arc<Shared>,
    ivr: Option<config::IvrConfig>,
    /// Every role some agent holds (transfer targets).
    roles: std::collections::HashSet<String>,
    inputs: tokio::sync::mpsc::UnboundedSender<CallInput>,
    /// The active-call snapshot is stale; it is republished at most every [`PUBLISH_EVERY`].
    dirty: bool,
    last_publish: Instant,
    /// `media.rtp_timeout_s`; `None` when 0 (off).
    rtp_timeout: Option<Duration>,
    /// `[routing] timezone`: the daily counters reset at its midnight.
    day_zone: chrono_tz::Tz,
    /// The name this server journals calls in progress under.
    journal_node: String,
    /// The in-queue call-back offer (`[callbacks] offer_after_s`), when configured.
    callback_offer: Option<inqueue::InQueueOffer>,
    /// Places held in the engine for callers who asked to be called back, by engine call.
    places: HashMap<CallId, inqueue::HeldPlace>,
    /// Refusals of an overload are recorded (false while the record queue is half full).
    recording_overload: bool,
    /// Admission of new calls against the RTP ports and descriptors left.
    headroom: crate::ops::headroom::Headroom,
}

/// How often the active-call snapshot for the HTTP API is rebuilt at most.
const PUBLISH_EVERY: Duration = Duration::from_millis(200);

impl std::fmt::Debug for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Calls")
            .field("calls", &self.calls.len())
            .field("timers", &self.timers.len())
            .finish_non_exhaustive()
    }
}

/// Engine time from endpoint time (both count from the UNIX epoch).
pub fn engine_time(now: Instant) -> Time {
    Time::from_millis(now.as_micros() / 1000)
}

fn endpoint_time(t: Time) -> Instant {
    Instant::from_micros(t.as_millis().saturating_mul(1000))
}

/// Wall-clock timestamp of an endpoint instant.
pub fn timestamp(now: Instant) -> switchboard_store::Timestamp {
    let micros = i64::try_from(now.as_micros()).unwrap_or(i64::MAX);
    switchboard_store::chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

fn millis_between(a: Instant, b: Instant) -> i64 {
    i64::try_from(b.saturating_duration_since(a).as_millis()).unwrap_or(i64::MAX)
}

impl Calls {
    pub fn new(config: &Config, deps: CallDeps) -> Calls {
        let trunks = config
            .trunks
            .iter()
            .map(|t| Trunk {
                name: t.name.clone(),
                allow: t
                    .allow
                    .iter()
                    .filter_map(|n| config::parse_net(n))
                    .collect(),
                dids: t
                    .dids
                    .iter()
                    .filter_map(|(did, p)| Purpose::from_str(p).ok().map(|p| (did.clone(), p)))
                    .collect(),
                credentials: t.username.clone().zip(t.password.clone()),
                outbound: t
                    .outbound
                    .as_deref()
                    .and_then(|u| config::OutboundTarget::parse(u).ok())
                    .map(Box::new),
                outbound_credentials: t.outbound_username.clone().zip(t.outbound_password.clone()),
                caller_id: t.caller_id.clone(),
            })
            .collect();
        let (free, in_use) = deps.media.port_pairs();
        Calls {
            headroom: crate::ops::headroom::Headroom::new(free + in_use),
            engine: deps.engine,
            directory: deps.directory,
            records: deps.records,
            metrics: deps.metrics,
            events: deps.events,
            media: deps.media,
            trunks,
            trunk_nonce_counts: switchboard_sip::digest::NonceCounts::default(),
            trunk_nonces: NonceSource::new(
                deps.nonce_secret,
                Duration::from_secs(u64::from(config.sip.nonce_lifetime_s)),
            ),
            numbers: config.numbers.clone(),
            domain: config.sip.domain.clone(),
            queue_settings: config
                .queues
                .iter()
                .map(|q| (q.name.clone(), q.clone()))
                .collect(),
            calls: HashMap::new(),
            outbound: HashMap::new(),
            next_key: 1,
            by_engine: HashMap::new(),
            by_invite: HashMap::new(),
            by_client_txn: HashMap::new(),
            by_sip_call_id: HashMap::new(),
            timers: timers::Timers::default(),
            orphans: HashMap::new(),
            finished: HashMap::new(),
            shutting_down: false,
            shared: deps.shared,
            ivr: config.ivr.clone(),
            roles: config
                .agents
                .iter()
                .flat_map(|a| a.roles.iter().cloned())
                .collect(),
            inputs: deps.inputs,
            dirty: false,
            last_publish: Instant::ZERO,
            rtp_timeout: (config.media.rtp_timeout_s > 0)
                .then(|| Duration::from_secs(u64::from(config.media.rtp_timeout_s))),
            day_zone: config
                .routing
                .timezone
                .parse()
                .unwrap_or(chrono_tz::Tz::UTC),
            journal_node: crate::ops::journal::node_name(config),
            callback_offer: inqueue::InQueueOffer::new(config, deps.places),
            places: HashMap::new(),
            recording_overload: true,
        }
    }

    /// Calls in progress.
    pub fn active(&self) -> usize {
        self.calls.len() + self.outbound.len()
    }

    /// Entries in each table of [`TABLES`] (for the `switchboard_call_state_entries` gauge).
    pub fn table_sizes(&self) -> [usize; TABLES.len()] {
        [
            self.calls.len(),
            self.outbound.len(),
            self.by_engine.len(),
            self.by_invite.len(),
            self.by_client_txn.len(),
            self.by_sip_call_id.len(),
            self.timers.len(),
            self.orphans.len(),
            self.finished.len(),
        ]
    }

    /// New INVITEs are refused from now on.
    pub fn begin_shutdown(&mut self) {
        self.shutting_down = true;
    }

    /// The next deadline of call control or the engine.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut own = self.timers.first().map(|(at, _)| at);
        if self.dirty {
            let publish = self.last_publish + PUBLISH_EVERY;
            own = Some(own.map_or(publish, |t| t.min(publish)));
        }
        let engine = self.engine.poll_timeout().map(endpoint_time);
        match (own, engine) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs due timers (ours and the engine's), then carries out what the engine decided.
    pub fn handle_timeout(&mut self, ep: &mut Endpoint, now: Instant) {
        self.engine.handle_timeout(engine_time(now));
        while let Some((_, timer)) = self.timers.pop_due(now) {
            match timer {
                Timer::RingTimeout { key, agent } => self.ring_timeout(ep, now, key, agent),
                Timer::Announce { key } => self.announce(now, key),
                Timer::MenuTimeout { key } => self.menu_timeout(ep, now, key),
                Timer::NoAgentGoodbye { key } => self.end_call(ep, now, key, Ended::NoAgent),
                Timer::ForgetLeg { txn } => self.forget_leg(txn),
                Timer::RtpCheck { key } => self.check_rtp(ep, now, key),
                Timer::SessionRefresh { key } => self.refresh_session(ep, now, key),
                Timer::SessionExpired { key } => self.session_expired(ep, now, key),
                Timer::OutboundAgentRing { key } => self.outbound_agent_timeout(ep, now, key),
                Timer::OutboundNoAnswer { key } => self.outbound_customer_timeout(ep, now, key),
                Timer::CallbackOffer { key } => self.offer_callback(key),
                Timer::CallbackGoodbye { key } => {
                    self.end_call(ep, now, key, Ended::CallbackBooked)
                }
            }
        }
        self.pump(ep, now);
    }

    /// Carries out the engine's offers and records its events. Call after every input.
    pub fn pump(&mut self, ep: &mut Endpoint, now: Instant) {
        for offer in self.engine.poll_offers() {
            self.ring(ep, now, offer);
        }
        while let Some(event) = self.engine.poll_event() {
            self.on_engine_event(ep, now, event);
        }
        self.dirty = true;
        if now.saturating_duration_since(self.last_publish) >= PUBLISH_EVERY {
            self.publish(now);
        }
    }

    /// Rebuilds the active-call snapshot the HTTP API serves.
    fn publish(&mut self, now: Instant) {
        self.dirty = false;
        self.last_publish = now;
        let mut list: Vec<&Call> = self.calls.values().collect();
        list.sort_by_key(|c| (c.started_at, c.key));
        let name = |a: AgentIdx| self.engine.agent_id(a).unwrap_or_default().to_owned();
        let snapshot = list
            .into_iter()
            .map(|c| ActiveCall {
                call: c.key,
                id: c.record_id.clone(),
                sip_call_id: c.caller_leg.sip_call_id.clone(),
                trunk: c.trunk.clone(),
                caller: c.caller.clone(),
                dialed: c.dialed.clone(),
                client_class: c.class.clone(),
                purpose: c.purpose.as_str().to_owned(),
                state: c.phase.name().to_owned(),
                queue: c.queue.clone(),
                ringing: c.offered().iter().map(|a| name(*a)).collect(),
                agent: c.phase.bridged().map(|b| name(b.agent)),
                route: c.route.clone(),
                started_at: timestamp(c.started_at).to_rfc3339(),
                answered_at: c.answered_at.map(|a| timestamp(a).to_rfc3339()),
                on_hold: c.caller_leg.held || c.phase.bridged().is_some_and(|b| b.held),
                agent_media: c.phase.bridged().map(|_| c.media.agent_media().to_owned()),
                direction: "inbound".to_owned(),
                kind: None,
                campaign: None,
            })
            .chain(self.outbound_snapshot())
            .collect();
        self.shared.set_active_calls(snapshot);
    }

    /// A registration changed: the agent logs in with their first binding (when logged
    /// out) and out with their last.
    pub fn registration_changed(&mut self, now: Instant, agent_id: &str, registered: bool) {
        let Some(agent) = self.engine.agent_idx(agent_id) else {
            return;
        };
        let state = self.engine.agent_state(agent).map(|s| s.kind());
        let change = match (registered, state) {
            (true, Some(AgentStateKind::LoggedOut)) => Some(AgentStateChange::Available),
            (false, Some(k)) if k != AgentStateKind::LoggedOut => Some(AgentStateChange::LoggedOut),
            _ => None,
        };
        if let Some(change) = change
            && let Err(e) = self.engine.set_agent_state(engine_time(now), agent, change)
        {
            debug!(agent = agent_id, "agent state unchanged: {e}");
        }
    }

    /// An endpoint event that concerns calls. Returns it back when it is not call control's
    /// (registrations, which the driver handles).
    pub fn on_sip_event(&mut self, ep: &mut Endpoint, now: Instant, event: Event) -> Option<Event> {
        match event {
            Event::NewRequest { txn, req, src }
                if req.method == Method::Invite && !dialogs::in_dialog(&req) =>
            {
                self.new_call(ep, now, txn, req, src);
            }
            Event::NewRequest { txn, req, src } => {
                if !self.on_request(ep, now, txn, &req, &src) {
                    let (status, reason) = match req.method {
                        Method::Message => (405, "Method Not Allowed"),
                        _ => (481, "Call/Transaction Does Not Exist"),
                    };
                    debug!(method = %req.method, %status, peer = %src.addr, "request outside any call");
                    let tag = ep.new_tag();
                    let mut resp = Response::from_request(&req, status, reason, Some(&tag));
                    if status == 405 {
                        resp.headers.push(HeaderName::Allow, switchboard_sip::ALLOW);
                    }
                    if let Err(e) = ep.respond(now, txn, resp) {
                        debug!("response not sent: {e}");
                    }
                }
            }
            Event::Response { txn, resp } => self.on_response(ep, now, txn, resp),
            Event::CancelRequested { invite_txn, cancel } => {
                if !self.on_cancel(ep, now, invite_txn) {
                    let tag = ep.new_tag();
                    if let Some(invite) = ep.server_request(invite_txn).cloned() {
                        let resp =
                            Response::from_request(&invite, 487, "Request Terminated", Some(&tag));
                        if let Err(e) = ep.respond(now, invite_txn, resp) {
                            debug!("487 not sent: {e}");
                        }
                    }
                }
                debug!(
                    call_id = cancel.call_id().unwrap_or_default(),
                    "INVITE cancelled"
                );
            }
            Event::AckReceived {
                invite_txn, ack, ..
            } => self.on_ack(ep, now, invite_txn, &ack),
            Event::AckTimeout { invite_txn } => self.on_ack_timeout(ep, now, invite_txn),
            Event::TransactionTimeout {
                txn: TxnKey::Client(txn),
            }
            | Event::TransportError { txn } => self.on_client_failure(ep, now, txn),
            Event::OverloadRefused { req, src } => {
                self.write_overload_refusal(now, &req, src.addr.ip());
            }
            other @ Event::RegistrationChanged { .. } => return Some(other),
            other => debug!(event = ?other, "SIP event"),
        }
        None
    }

    /// Input for call control from tasks outside the endpoint task.
    pub fn on_input(&mut self, ep: &mut Endpoint, now: Instant, input: CallInput) {
        match input {
            CallInput::Digit { key, digit } => self.on_digit(ep, now, key, digit),
            CallInput::Dial(req) => self.dial(ep, now, *req),
            CallInput::DropPlace { call } => self.drop_place(now, call),
        }
        self.pump(ep, now);
    }

    /// Ends every call (shutdown after the grace period).
    pub fn end_all(&mut self, ep: &mut Endpoint, now: Instant) {
        let keys: Vec<u64> = self.calls.keys().copied().collect();
        for key in keys {
            self.end_call(ep, now, key, Ended::Shutdown);
        }
        let keys: Vec<u64> = self.outbound.keys().copied().collect();
        for key in keys {
            self.end_outbound(
                ep,
                now,
                key,
                outbound::OutResult::Failed,
                switchboard_store::HangupSide::System,
            );
        }
    }

    /// Removes every timer of call `key` that `which` selects.
    fn cancel_timers(&mut self, key: u64, which: impl Fn(&Timer) -> bool) {
        self.timers.cancel(key, which);
    }
}

fn take(list: &mut Vec<AgentIdx>, agent: AgentIdx) -> bool {
    match list.iter().position(|a| *a == agent) {
        Some(i) => {
            list.swap_remove(i);
            true
        }
        None => false,
    }
}

fn respond(
    ep: &mut Endpoint,
    now: Instant,
    txn: ServerTxnKey,
    req: &Request,
    status: u16,
    reason: &str,
    to_tag: Option<&str>,
) {
    let resp = Response::from_request(req, status, reason, to_tag);
    if let Err(e) = ep.respond(now, txn, resp) {
        debug!(status, "response not sent: {e}");
    }
}
