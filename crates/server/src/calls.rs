//! Call control: Switchboard as a back-to-back user agent between a trunk (the customer) and
//! agent softphones.
//!
//! A trunk INVITE is admitted (source ACL), classified and handed to the engine; the caller
//! is answered into the queue (music), and every [`Offer`] of the engine becomes INVITEs to
//! the offered agents' registered contacts. The first 2xx wins and is bridged; the rest are
//! cancelled. BYE on either side ends the other; a caller who leaves while waiting is an
//! abandoned call. Every call ends in exactly one call-detail record.
//!
//! Like the endpoint, this state is owned by the endpoint task alone: no locks. The engine
//! is shared (it is lock-free) so the HTTP API can read and change agent states.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use switchboard_engine::{
    AgentIdx, AgentStateChange, AgentStateKind, CallId, CallRequest, ClientDirectory, Engine,
    EngineError, HangupSide, Offer, Outcome, Purpose, Step, Time,
};
use switchboard_sip::dialog::{self, Dialog};
use switchboard_sip::{ClientTxnKey, Endpoint, Instant, Peer, ServerTxnKey, Transport};
use switchboard_sipmsg::{HeaderName, Method, NameAddr, Request, Response};
use switchboard_store::{
    CallRecord, Direction, HangupSide as CdrHangup, Outcome as CdrOutcome, QueueEvent,
    QueueEventKind, RecordSink,
};
use tracing::{debug, info, warn};

use crate::callmedia::{CallMedia, CallMediaStats, MediaSetup};
use crate::config::{self, Config};
use crate::events::{EventBus, LiveEvent};
use crate::metrics::Metrics;
use crate::routing::StoreDirectory;
use crate::shared::{ActiveCall, Shared};

/// A trunk's admission rule.
#[derive(Debug, Clone)]
struct Trunk {
    name: String,
    allow: Vec<IpNet>,
    dids: HashMap<String, Purpose>,
}

/// How one record of a call ended (a transfer ends a segment, the call goes on).
#[derive(Debug, Clone)]
struct SegmentEnd {
    agent: Option<String>,
    outcome: CdrOutcome,
    side: CdrHangup,
}

/// Sends a NOTIFY of the `refer` event package with a `message/sipfrag` body (RFC 3515).
fn notify_sipfrag(
    ep: &mut Endpoint,
    now: Instant,
    dialog: &mut Dialog,
    dest: &Peer,
    status_line: &str,
    last: bool,
) {
    let mut notify = dialog.request(Method::Notify);
    notify.headers.push(HeaderName::Event, "refer");
    notify.headers.push(
        HeaderName::Other("Subscription-State".into()),
        if last {
            "terminated;reason=noresource"
        } else {
            "active;expires=60"
        },
    );
    notify
        .headers
        .push(HeaderName::ContentType, "message/sipfrag;version=2.0");
    notify.body = format!("{status_line}\r\n").into_bytes();
    let _ = ep.send_request(now, dest.clone(), notify);
}

/// Which side of a call a SIP dialog belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Caller,
    Agent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegState {
    /// INVITE sent, no final response.
    Calling,
    /// CANCEL sent (ring timeout, another leg won, caller left).
    Cancelling,
}

/// One INVITE to one contact of an offered agent.
#[derive(Debug)]
struct AgentLeg {
    agent: AgentIdx,
    txn: ClientTxnKey,
    dest: Peer,
    sip_call_id: String,
    state: LegState,
}

/// The agent leg that answered.
#[derive(Debug)]
struct Bridged {
    agent: AgentIdx,
    dialog: Dialog,
    dest: Peer,
    sip_call_id: String,
    /// The agent put the caller on hold (re-INVITE sendonly/inactive).
    held: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// In the voice menu: answered, not yet routed.
    Menu,
    /// Waiting for an agent (music, announcements; agents may be ringing).
    Queued,
    /// Bridged to an agent.
    Talking,
}

#[derive(Debug)]
struct Call {
    key: u64,
    /// `None` while the caller is still in the voice menu.
    engine_call: Option<CallId>,
    record_id: String,
    trunk: String,
    caller: String,
    dialed: String,
    client_number: String,
    class: String,
    purpose: Purpose,
    caller_invite_txn: ServerTxnKey,
    caller_dialog: Dialog,
    caller_peer: Peer,
    caller_sip_call_id: String,
    phase: Phase,
    legs: Vec<AgentLeg>,
    /// Agents whose offer is outstanding (not yet reported to the engine).
    offered: Vec<AgentIdx>,
    bridged: Option<Bridged>,
    route: String,
    queue: Option<String>,
    started_at: Instant,
    queued_at: Instant,
    answered_at: Option<Instant>,
    media: CallMedia,
    /// RTP silence is counted from here at the earliest: the caller's answer, the bridge to
    /// an agent, the end of a hold.
    rtp_since: Instant,
    /// The caller put the agent on hold (re-INVITE sendonly/inactive).
    caller_held: bool,
}

/// Deadlines call control keeps besides the endpoint's and the engine's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
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
}

/// An agent leg given up on (cancelled, or left behind by its call) is forgotten this many
/// T1 later when its INVITE has still not ended: twice the 64·T1 within which RFC 3261 §9.1
/// expects an INVITE to end after its CANCEL. A 2xx after that is never ACKed (the agent's
/// phone ends that dialog itself), and call control keeps nothing of a call that is over.
const FORGET_LEG_AFTER_T1: u32 = 128;

/// The names of call control's tables, in the order of [`Calls::table_sizes`]: every one is
/// empty when no call is in progress and no agent leg is still ending.
pub const TABLES: [&str; 8] = [
    "calls",
    "by_engine",
    "by_invite",
    "by_client_txn",
    "by_sip_call_id",
    "timers",
    "orphans",
    "finished",
];

/// Input for call control from tasks other than the endpoint task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallInput {
    /// A DTMF digit from the caller of call `key`.
    Digit { key: u64, digit: char },
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
    domain: String,
    queue_settings: HashMap<String, config::QueueConfig>,
    calls: HashMap<u64, Call>,
    next_key: u64,
    by_engine: HashMap<CallId, u64>,
    by_invite: HashMap<ServerTxnKey, u64>,
    by_client_txn: HashMap<ClientTxnKey, u64>,
    by_sip_call_id: HashMap<String, (u64, Side)>,
    timers: BTreeSet<(Instant, Timer)>,
    /// Agent legs cancelled or left behind by their call: a late 2xx is ACKed and BYEd.
    /// Where the leg's INVITE went, and when the leg is forgotten if it never ends.
    orphans: HashMap<ClientTxnKey, (Peer, Instant)>,
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
        let CallDeps {
            engine,
            directory,
            records,
            metrics,
            events,
            media,
            shared,
            inputs,
        } = deps;
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
            })
            .collect();
        Calls {
            engine,
            directory,
            records,
            metrics,
            events,
            media,
            trunks,
            domain: config.sip.domain.clone(),
            queue_settings: config
                .queues
                .iter()
                .map(|q| (q.name.clone(), q.clone()))
                .collect(),
            calls: HashMap::new(),
            next_key: 1,
            by_engine: HashMap::new(),
            by_invite: HashMap::new(),
            by_client_txn: HashMap::new(),
            by_sip_call_id: HashMap::new(),
            timers: BTreeSet::new(),
            orphans: HashMap::new(),
            finished: HashMap::new(),
            shutting_down: false,
            shared,
            ivr: config.ivr.clone(),
            roles: config
                .agents
                .iter()
                .flat_map(|a| a.roles.iter().cloned())
                .collect(),
            inputs,
            dirty: false,
            last_publish: Instant::ZERO,
            rtp_timeout: (config.media.rtp_timeout_s > 0)
                .then(|| Duration::from_secs(u64::from(config.media.rtp_timeout_s))),
            day_zone: config
                .routing
                .timezone
                .parse()
                .unwrap_or(chrono_tz::Tz::UTC),
            journal_node: crate::journal::node_name(config),
        }
    }

    /// Calls in progress.
    pub fn active(&self) -> usize {
        self.calls.len()
    }

    /// Entries in each table of [`TABLES`] (for the `switchboard_call_state_entries` gauge).
    pub fn table_sizes(&self) -> [usize; TABLES.len()] {
        [
            self.calls.len(),
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
        let mut own = self.timers.iter().next().map(|(at, _)| *at);
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
        while let Some(&(at, timer)) = self.timers.iter().next() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, timer));
            match timer {
                Timer::RingTimeout { key, agent } => self.ring_timeout(ep, now, key, agent),
                Timer::Announce { key } => self.announce(now, key),
                Timer::MenuTimeout { key } => {
                    info!(call = key, "no menu choice: routing as an order");
                    self.leave_menu(ep, now, key, Purpose::Order);
                }
                Timer::ForgetLeg { txn } => self.forget_leg(txn),
                Timer::RtpCheck { key } => self.check_rtp(ep, now, key),
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
                sip_call_id: c.caller_sip_call_id.clone(),
                trunk: c.trunk.clone(),
                caller: c.caller.clone(),
                dialed: c.dialed.clone(),
                client_class: c.class.clone(),
                purpose: c.purpose.as_str().to_owned(),
                state: match (c.phase, c.offered.is_empty()) {
                    (Phase::Menu, _) => "menu",
                    (Phase::Talking, _) => "talking",
                    (Phase::Queued, false) => "ringing",
                    (Phase::Queued, true) => "queued",
                }
                .to_owned(),
                queue: c.queue.clone(),
                ringing: c.offered.iter().map(|a| name(*a)).collect(),
                agent: c.bridged.as_ref().map(|b| name(b.agent)),
                route: c.route.clone(),
                started_at: timestamp(c.started_at).to_rfc3339(),
                answered_at: c.answered_at.map(|a| timestamp(a).to_rfc3339()),
                on_hold: c.bridged.as_ref().is_some_and(|b| b.held),
            })
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

    // ----- requests -------------------------------------------------------------------------

    /// A request that is not the endpoint's business. Returns false when call control has
    /// nothing to do with it (the caller answers it generically).
    pub fn on_request(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        txn: ServerTxnKey,
        req: Request,
        src: Peer,
    ) -> bool {
        let to_tag = req.to_hdr().ok().and_then(|t| t.tag().map(str::to_owned));
        let call_id = req.call_id().unwrap_or_default().to_owned();
        if to_tag.is_none() {
            if req.method == Method::Invite {
                self.new_call(ep, now, txn, req, src);
                return true;
            }
            return false;
        }
        let Some(&(key, side)) = self.by_sip_call_id.get(&call_id) else {
            return false;
        };
        match req.method {
            Method::Bye => {
                respond(ep, now, txn, &req, 200, "OK", None);
                match side {
                    Side::Caller => self.end_call(ep, now, key, Ended::CallerHungUp),
                    Side::Agent => self.end_call(ep, now, key, Ended::AgentHungUp),
                }
                true
            }
            Method::Invite => {
                self.reinvite(ep, now, txn, &req, key, side);
                true
            }
            Method::Ack => true,
            Method::Refer if side == Side::Agent => {
                self.refer(ep, now, txn, &req, key);
                true
            }
            _ => {
                // INFO, UPDATE, NOTIFY and the like inside a call: accepted, no action.
                respond(ep, now, txn, &req, 200, "OK", None);
                true
            }
        }
    }

    fn new_call(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        txn: ServerTxnKey,
        req: Request,
        src: Peer,
    ) {
        let reject = |ep: &mut Endpoint, status: u16, reason: &str| {
            let tag = ep.new_tag();
            respond(ep, now, txn, &req, status, reason, Some(&tag));
        };
        if self.shutting_down {
            let tag = ep.new_tag();
            let mut resp = Response::from_request(&req, 503, "Shutting Down", Some(&tag));
            resp.headers.push(HeaderName::RetryAfter, "30");
            let _ = ep.respond(now, txn, resp);
            return;
        }
        let Some(trunk) = self.trunk_for(src.addr.ip()).cloned() else {
            info!(peer = %src.addr, "INVITE from an address of no trunk refused");
            reject(ep, 403, "Forbidden");
            return;
        };
        let caller = caller_number(&req);
        let dialed = req.uri.user.clone().unwrap_or_default();
        let purpose = trunk.dids.get(&dialed).copied().unwrap_or(Purpose::Order);
        let client_number =
            switchboard_store::normalize_number(&caller).unwrap_or_else(|_| caller.clone());
        let client = self.directory.lookup(&client_number);
        let class = self.engine.classify(client.as_ref(), purpose);
        let sip_call_id = req.call_id().unwrap_or_default().to_owned();

        let media = match self.media.open(&sip_call_id, &req.body) {
            Ok(m) => m,
            Err(e) => {
                warn!(call_id = %sip_call_id, "cannot set up media: {e}");
                let status = if e.is_offer_problem() { 488 } else { 503 };
                reject(
                    ep,
                    status,
                    if status == 488 {
                        "Not Acceptable Here"
                    } else {
                        "Service Unavailable"
                    },
                );
                return;
            }
        };
        // The purpose comes from the DID, else from the voice menu when one is configured.
        let did_purpose = trunk.dids.get(&dialed).copied();
        let menu = did_purpose.is_none() && self.ivr.as_ref().is_some_and(|m| m.enabled);
        let purpose = did_purpose.unwrap_or(Purpose::Order);
        let engine_call = if menu {
            None
        } else {
            match self.engine.route_call(
                engine_time(now),
                CallRequest {
                    caller: client_number.clone(),
                    purpose,
                    client,
                    priority: None,
                    queue: None,
                },
            ) {
                Ok(c) => Some(c),
                Err(e) => {
                    let why = match e {
                        EngineError::NoRoute(_) => "no agent can serve this call",
                        _ => "routing failed",
                    };
                    info!(call_id = %sip_call_id, caller = %caller, class = class.as_str(), "call refused: {why}");
                    reject(ep, 480, "No Agent Available");
                    self.write_unrouted_cdr(
                        now,
                        Unrouted {
                            trunk: &trunk.name,
                            caller: &caller,
                            dialed: &dialed,
                            client_number: &client_number,
                            class: class.as_str(),
                            purpose,
                            sip_call_id: &sip_call_id,
                        },
                    );
                    return;
                }
            }
        };
        // Ringing first, then the queue (or the menu) answers.
        let tag = ep.new_tag();
        respond(ep, now, txn, &req, 180, "Ringing", Some(&tag));
        let mut ok = Response::from_request(&req, 200, "OK", Some(&tag));
        ok.headers.push(
            HeaderName::Contact,
            format!("<{}>", ep.local_uri(Some("switchboard"), src.transport)),
        );
        ok.headers.push(HeaderName::Allow, switchboard_sip::ALLOW);
        ok.headers.push(HeaderName::ContentType, "application/sdp");
        ok.body = media.caller_sdp();
        let caller_dialog = match Dialog::from_uas(&req, &ok) {
            Ok(d) => d,
            Err(e) => {
                warn!(call_id = %sip_call_id, "INVITE without a usable Contact: {e}");
                if let Some(ec) = engine_call {
                    let _ = self
                        .engine
                        .report(engine_time(now), ec, Outcome::CallerGone);
                }
                reject(ep, 400, "Bad Request - Missing Contact");
                return;
            }
        };
        if let Err(e) = ep.respond(now, txn, ok) {
            warn!(call_id = %sip_call_id, "200 not sent: {e}");
        }
        let key = self.next_key;
        self.next_key = self.next_key.wrapping_add(1);
        let mut media = media;
        if menu {
            self.start_menu(now, key, &mut media);
            info!(call = key, call_id = %sip_call_id, trunk = %trunk.name, caller = %caller, dialed = %dialed, "call in the voice menu");
        } else {
            media.play_music();
            info!(
                call = key,
                call_id = %sip_call_id,
                trunk = %trunk.name,
                caller = %caller,
                dialed = %dialed,
                class = class.as_str(),
                purpose = purpose.as_str(),
                "call queued"
            );
            self.events.send(LiveEvent::CallEnqueued {
                call: key,
                caller: caller.clone(),
                class: class.as_str().to_owned(),
                purpose: purpose.as_str().to_owned(),
            });
        }
        let call = Call {
            key,
            engine_call,
            record_id: switchboard_store::new_record_id(),
            trunk: trunk.name.clone(),
            caller,
            dialed,
            client_number,
            class: class.as_str().to_owned(),
            purpose,
            caller_invite_txn: txn,
            caller_dialog,
            caller_peer: src,
            caller_sip_call_id: sip_call_id.clone(),
            phase: if menu { Phase::Menu } else { Phase::Queued },
            legs: Vec::new(),
            offered: Vec::new(),
            bridged: None,
            route: String::new(),
            queue: None,
            started_at: now,
            queued_at: now,
            answered_at: None,
            media,
            rtp_since: now,
            caller_held: false,
        };
        if let Some(ec) = engine_call {
            self.by_engine.insert(ec, key);
        }
        self.by_invite.insert(txn, key);
        self.by_sip_call_id.insert(sip_call_id, (key, Side::Caller));
        self.calls.insert(key, call);
        self.journal(now, key);
        if !menu {
            self.schedule_announcement(now, key);
        }
        if let Some(timeout) = self.rtp_timeout {
            self.timers.insert((now + timeout, Timer::RtpCheck { key }));
        }
    }

    // ----- voice menu -----------------------------------------------------------------------

    /// Plays the menu prompt and forwards the caller's first digits to the endpoint task.
    fn start_menu(&mut self, now: Instant, key: u64, media: &mut CallMedia) {
        let Some(menu) = self.ivr.clone() else { return };
        let prompt = menu.prompt.unwrap_or_else(|| "ivr_menu.wav".to_owned());
        media.play_prompt_then_music(&prompt);
        if let Some(mut digits) = media.take_dtmf() {
            let inputs = self.inputs.clone();
            tokio::spawn(async move {
                while let Some(digit) = digits.recv().await {
                    if inputs.send(CallInput::Digit { key, digit }).is_err() {
                        break;
                    }
                }
            });
        }
        self.timers.insert((
            now + Duration::from_secs(u64::from(menu.timeout_s)),
            Timer::MenuTimeout { key },
        ));
    }

    /// Input for call control from tasks outside the endpoint task.
    pub fn on_input(&mut self, ep: &mut Endpoint, now: Instant, input: CallInput) {
        match input {
            CallInput::Digit { key, digit } => self.on_digit(ep, now, key, digit),
        }
        self.pump(ep, now);
    }

    fn on_digit(&mut self, ep: &mut Endpoint, now: Instant, key: u64, digit: char) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        if call.phase != Phase::Menu {
            debug!(call = key, %digit, "DTMF outside the menu ignored");
            return;
        }
        let choice = self
            .ivr
            .as_ref()
            .and_then(|m| m.options.get(&digit.to_string()))
            .and_then(|p| Purpose::from_str(p).ok());
        match choice {
            Some(purpose) => {
                info!(call = key, %digit, purpose = purpose.as_str(), "menu choice");
                self.leave_menu(ep, now, key, purpose);
            }
            None => debug!(call = key, %digit, "not a menu option"),
        }
    }

    /// The menu is done (a choice, or its timeout: purpose `order`): classify and queue.
    fn leave_menu(&mut self, ep: &mut Endpoint, now: Instant, key: u64, purpose: Purpose) {
        self.timers
            .retain(|(_, t)| *t != Timer::MenuTimeout { key });
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.phase != Phase::Menu {
            return;
        }
        let client = self.directory.lookup(&call.client_number);
        let class = self.engine.classify(client.as_ref(), purpose);
        call.purpose = purpose;
        call.class = class.as_str().to_owned();
        call.queued_at = now;
        let routed = self.engine.route_call(
            engine_time(now),
            CallRequest {
                caller: call.client_number.clone(),
                purpose,
                client,
                priority: None,
                queue: None,
            },
        );
        match routed {
            Ok(ec) => {
                call.engine_call = Some(ec);
                call.phase = Phase::Queued;
                call.media.play_music();
                info!(
                    call = key,
                    class = class.as_str(),
                    purpose = purpose.as_str(),
                    "call queued"
                );
                self.events.send(LiveEvent::CallEnqueued {
                    call: key,
                    caller: call.caller.clone(),
                    class: class.as_str().to_owned(),
                    purpose: purpose.as_str().to_owned(),
                });
                self.by_engine.insert(ec, key);
                self.schedule_announcement(now, key);
            }
            Err(e) => {
                info!(call = key, "call refused after the menu: {e}");
                call.route = "no route: no step of the chain has an agent".to_owned();
                self.end_call(ep, now, key, Ended::NoAgent);
            }
        }
    }

    fn trunk_for(&self, ip: IpAddr) -> Option<&Trunk> {
        self.trunks
            .iter()
            .find(|t| t.allow.iter().any(|net| net.contains(&ip)))
    }

    fn schedule_announcement(&mut self, now: Instant, key: u64) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let every = call
            .queue
            .as_ref()
            .and_then(|q| self.queue_settings.get(q))
            .map_or(30, |q| q.announce_position_every_s);
        if every > 0 {
            self.timers.insert((
                now + Duration::from_secs(u64::from(every)),
                Timer::Announce { key },
            ));
        }
    }

    fn announce(&mut self, now: Instant, key: u64) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        if call.phase != Phase::Queued {
            return;
        }
        let position = self
            .calls
            .values()
            .filter(|c| {
                c.phase == Phase::Queued
                    && c.queue == call.queue
                    && (c.queued_at, c.key) < (call.queued_at, call.key)
            })
            .count()
            .saturating_add(1);
        let waited_min = now.saturating_duration_since(call.queued_at).as_secs() / 60;
        call.media
            .announce_position(position, waited_min.saturating_add(1));
        self.schedule_announcement(now, key);
    }

    // ----- transfer ---------------------------------------------------------------------------

    /// The transfer target a REFER names: `queue-<name>` a queue, else an agent id, else a
    /// role held by some agent.
    fn transfer_target(&self, user: &str) -> Option<Step> {
        if let Some(queue) = user.strip_prefix("queue-") {
            return self
                .engine
                .queue_idx(queue)
                .map(|_| Step::Queue(queue.to_owned()));
        }
        if self.engine.agent_idx(user).is_some() {
            return Some(Step::Agent(user.to_owned()));
        }
        self.roles
            .contains(user)
            .then(|| Step::Role(user.to_owned()))
    }

    /// A blind transfer by the talking agent (RFC 3515): the caller goes back through the
    /// engine to the named agent, role or queue, the agent's leg ends.
    fn refer(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        txn: ServerTxnKey,
        req: &Request,
        key: u64,
    ) {
        let target = req
            .headers
            .get(&HeaderName::ReferTo)
            .and_then(|v| NameAddr::parse(v).ok())
            .and_then(|n| n.uri.user);
        let Some(user) = target else {
            respond(
                ep,
                now,
                txn,
                req,
                400,
                "Bad Request - Missing Refer-To",
                None,
            );
            return;
        };
        let Some(step) = self.transfer_target(&user) else {
            info!(call = key, target = %user, "transfer to an unknown target refused");
            respond(ep, now, txn, req, 404, "Unknown Transfer Target", None);
            return;
        };
        let Some(call) = self.calls.get_mut(&key) else {
            respond(
                ep,
                now,
                txn,
                req,
                481,
                "Call/Transaction Does Not Exist",
                None,
            );
            return;
        };
        let (Some(bridged), Some(old_engine_call)) = (call.bridged.take(), call.engine_call) else {
            respond(ep, now, txn, req, 491, "Request Pending", None);
            return;
        };
        respond(ep, now, txn, req, 202, "Accepted", None);
        let mut dialog = bridged.dialog;
        let dest = bridged.dest.clone();
        notify_sipfrag(ep, now, &mut dialog, &dest, "SIP/2.0 100 Trying", false);

        // The first segment ends for the agent (wrap-up) and gets its own record.
        let t = engine_time(now);
        if let Err(e) = self.engine.hangup(t, old_engine_call, HangupSide::Agent) {
            warn!(call = key, "engine hangup for transfer: {e}");
        }
        let client = self.directory.lookup(&call.client_number);
        let routed = self.engine.route_call_to(
            t,
            CallRequest {
                caller: call.client_number.clone(),
                purpose: call.purpose,
                client,
                priority: None,
                queue: None,
            },
            &step,
        );
        let agent_id = self
            .engine
            .agent_id(bridged.agent)
            .unwrap_or_default()
            .to_owned();
        info!(call = key, agent = %agent_id, target = %step, "blind transfer");
        let first = SegmentEnd {
            agent: Some(agent_id.clone()),
            outcome: CdrOutcome::Transferred,
            side: CdrHangup::Agent,
        };
        self.write_cdr(now, key, &first);
        self.write_queue_event(
            key,
            QueueEventKind::Transfer,
            Some(agent_id),
            Some(step.to_string()),
        );
        self.by_sip_call_id.remove(&bridged.sip_call_id);
        self.finished.insert(old_engine_call, {
            let c = &self.calls[&key];
            (c.record_id.clone(), c.queue.clone())
        });
        self.by_engine.remove(&old_engine_call);
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        // The caller's next segment is a new record.
        call.record_id = switchboard_store::new_record_id();
        call.phase = Phase::Queued;
        call.answered_at = None;
        call.queued_at = now;
        call.route = format!("transfer:{step}");
        call.media.play_music();
        match routed {
            Ok(ec) => {
                call.engine_call = Some(ec);
                self.by_engine.insert(ec, key);
                notify_sipfrag(ep, now, &mut dialog, &dest, "SIP/2.0 200 OK", true);
            }
            Err(e) => {
                call.engine_call = None;
                info!(call = key, "transfer target cannot take the call: {e}");
                notify_sipfrag(
                    ep,
                    now,
                    &mut dialog,
                    &dest,
                    "SIP/2.0 480 Temporarily Unavailable",
                    true,
                );
            }
        }
        // The transferor's leg is done.
        let bye = dialog.request(Method::Bye);
        let _ = ep.send_request(now, dest, bye);
        if self
            .calls
            .get(&key)
            .is_some_and(|c| c.engine_call.is_none())
        {
            self.end_call(ep, now, key, Ended::NoAgent);
        } else {
            self.schedule_announcement(now, key);
        }
    }

    fn reinvite(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        txn: ServerTxnKey,
        req: &Request,
        key: u64,
        side: Side,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            respond(
                ep,
                now,
                txn,
                req,
                481,
                "Call/Transaction Does Not Exist",
                None,
            );
            return;
        };
        let sdp = match side {
            Side::Caller => {
                // A re-INVITE without SDP (a session refresh) changes nothing.
                let hold = crate::callmedia::is_hold_offer(&req.body);
                if !req.body.is_empty() && call.caller_held != hold {
                    call.caller_held = hold;
                    call.rtp_since = now;
                    info!(
                        call = key,
                        hold,
                        "caller {} the call",
                        if hold { "holds" } else { "resumes" }
                    );
                }
                call.media.caller_sdp()
            }
            Side::Agent => {
                let hold = crate::callmedia::is_hold_offer(&req.body);
                if let Some(b) = call.bridged.as_mut()
                    && b.held != hold
                {
                    b.held = hold;
                    call.rtp_since = now;
                    info!(
                        call = key,
                        hold,
                        "agent {} the caller",
                        if hold { "holds" } else { "resumes" }
                    );
                    call.media.hold(hold);
                }
                call.media.agent_sdp_for_reinvite(&req.body)
            }
        };
        let mut ok = Response::from_request(req, 200, "OK", None);
        ok.headers.push(
            HeaderName::Contact,
            format!("<{}>", ep.local_uri(Some("switchboard"), Transport::Udp)),
        );
        ok.headers.push(HeaderName::ContentType, "application/sdp");
        ok.body = sdp;
        let _ = ep.respond(now, txn, ok);
    }

    /// The caller cancelled the INVITE before the queue answered it.
    pub fn on_cancel(&mut self, ep: &mut Endpoint, now: Instant, invite_txn: ServerTxnKey) -> bool {
        let Some(&key) = self.by_invite.get(&invite_txn) else {
            return false;
        };
        if let Some(invite) = ep.server_request(invite_txn).cloned() {
            let tag = self
                .calls
                .get(&key)
                .map(|c| c.caller_dialog.local_tag.clone());
            respond(
                ep,
                now,
                invite_txn,
                &invite,
                487,
                "Request Terminated",
                tag.as_deref(),
            );
        }
        self.end_call(ep, now, key, Ended::CallerHungUp);
        true
    }

    /// The ACK for our 2xx never came: the caller's side is gone.
    pub fn on_ack_timeout(&mut self, ep: &mut Endpoint, now: Instant, invite_txn: ServerTxnKey) {
        if let Some(&key) = self.by_invite.get(&invite_txn) {
            warn!(
                call = key,
                "no ACK for the 200 to the caller: ending the call"
            );
            self.end_call(ep, now, key, Ended::Failed);
        }
    }

    // ----- agent legs -----------------------------------------------------------------------

    fn ring(&mut self, ep: &mut Endpoint, now: Instant, offer: Offer) {
        let Some(&key) = self.by_engine.get(&offer.call) else {
            // The call ended while the engine decided: give the agents back.
            for agent in offer.agents {
                let _ = self
                    .engine
                    .report(engine_time(now), offer.call, Outcome::Rejected(agent));
            }
            return;
        };
        let queue = offer
            .queue
            .and_then(|q| self.engine.queue_name(q))
            .map(str::to_owned);
        let mut gone = Vec::new();
        let mut new_legs = Vec::new();
        {
            let Some(call) = self.calls.get_mut(&key) else {
                return;
            };
            call.route.clone_from(&offer.route);
            if queue.is_some() {
                call.queue.clone_from(&queue);
            }
            for &agent in &offer.agents {
                let Some(agent_id) = self.engine.agent_id(agent).map(str::to_owned) else {
                    continue;
                };
                let bindings = ep.registrar().contacts_for(&agent_id, now);
                if bindings.is_empty() {
                    gone.push(agent);
                    continue;
                }
                call.offered.push(agent);
                for binding in bindings {
                    let sip_call_id = ep.new_call_id();
                    let mut invite = Request::new(Method::Invite, binding.contact.clone());
                    let display = call.caller.replace('"', "");
                    invite.headers.push(
                        HeaderName::From,
                        format!(
                            "\"{display}\" <sip:{}@{}>;tag={}",
                            call.caller,
                            self.domain,
                            ep.new_tag()
                        ),
                    );
                    invite
                        .headers
                        .push(HeaderName::To, format!("<sip:{agent_id}@{}>", self.domain));
                    invite.headers.push(HeaderName::CallId, sip_call_id.clone());
                    invite.headers.push(HeaderName::CSeq, "1 INVITE");
                    invite.headers.push(
                        HeaderName::Contact,
                        format!(
                            "<{}>",
                            ep.local_uri(Some("switchboard"), binding.source.transport)
                        ),
                    );
                    invite
                        .headers
                        .push(HeaderName::Allow, switchboard_sip::ALLOW);
                    invite.headers.push(
                        HeaderName::Other("X-Switchboard-Route".into()),
                        offer.route.replace(['\r', '\n'], " "),
                    );
                    invite
                        .headers
                        .push(HeaderName::ContentType, "application/sdp");
                    invite.body = call.media.agent_offer_sdp();
                    let txn = ep.send_request(now, binding.source.clone(), invite);
                    debug!(call = key, agent = %agent_id, contact = %binding.contact, "ringing agent");
                    new_legs.push((txn, sip_call_id.clone()));
                    call.legs.push(AgentLeg {
                        agent,
                        txn,
                        dest: binding.source.clone(),
                        sip_call_id,
                        state: LegState::Calling,
                    });
                }
                self.timers.insert((
                    now + Duration::from_millis(offer.ring_timeout_ms),
                    Timer::RingTimeout { key, agent },
                ));
            }
            info!(call = key, route = %offer.route, attempt = offer.attempt, "offered");
        }
        for (txn, sip_call_id) in new_legs {
            self.by_client_txn.insert(txn, key);
            self.by_sip_call_id.insert(sip_call_id, (key, Side::Agent));
        }
        for agent in gone {
            info!(call = key, agent = ?self.engine.agent_id(agent), "offered agent has no registered contact");
            let _ = self
                .engine
                .report(engine_time(now), offer.call, Outcome::AgentGone(agent));
        }
        self.events.send(LiveEvent::CallOffered {
            call: key,
            agents: offer
                .agents
                .iter()
                .filter_map(|a| self.engine.agent_id(*a).map(str::to_owned))
                .collect(),
            route: offer.route,
        });
    }

    /// A response on one of our client transactions.
    pub fn on_response(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        txn: ClientTxnKey,
        resp: Response,
    ) {
        let status = resp.status;
        if status < 200 {
            return;
        }
        if let Some(dest) = self.unorphan(txn) {
            if (200..300).contains(&status) {
                // Answered after we gave up on it: acknowledge and hang up.
                ack_and_bye(ep, now, txn, dest, &resp);
            }
            return;
        }
        let Some(&key) = self.by_client_txn.get(&txn) else {
            return; // BYE and CANCEL responses: nothing to do.
        };
        self.by_client_txn.remove(&txn);
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(pos) = call.legs.iter().position(|l| l.txn == txn) else {
            return;
        };
        let leg = call.legs.remove(pos);
        if (200..300).contains(&status) {
            if call.bridged.is_some() || call.phase != Phase::Queued {
                ack_and_bye(ep, now, txn, leg.dest, &resp);
                self.by_sip_call_id.remove(&leg.sip_call_id);
                return;
            }
            self.answered(ep, now, key, leg, &resp);
            return;
        }
        // A failure: the agent is done when no other contact of theirs is still ringing.
        self.by_sip_call_id.remove(&leg.sip_call_id);
        let still_ringing = call.legs.iter().any(|l| l.agent == leg.agent);
        if still_ringing || leg.state == LegState::Cancelling {
            return;
        }
        if !take(&mut call.offered, leg.agent) {
            return;
        }
        let Some(engine_call) = call.engine_call else {
            return;
        };
        let outcome = match status {
            486 | 480 | 600 | 603 => Outcome::Rejected(leg.agent),
            408 | 487 => Outcome::NoAnswer(leg.agent),
            _ => Outcome::AgentGone(leg.agent),
        };
        info!(call = key, agent = ?self.engine.agent_id(leg.agent), status, "agent leg failed");
        self.remove_ring_timer(key, leg.agent);
        let _ = self.engine.report(engine_time(now), engine_call, outcome);
    }

    /// A client transaction got no final response at all (Timer B) or could not be sent.
    pub fn on_client_failure(&mut self, ep: &mut Endpoint, now: Instant, txn: ClientTxnKey) {
        let Some(invite) = ep.client_request(txn).cloned() else {
            self.unorphan(txn);
            self.by_client_txn.remove(&txn);
            return;
        };
        let resp = Response::from_request(&invite, 408, "Request Timeout", None);
        self.on_response(ep, now, txn, resp);
    }

    fn answered(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: u64,
        leg: AgentLeg,
        resp: &Response,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(invite) = ep.client_request(leg.txn).cloned() else {
            warn!(call = key, "answered INVITE no longer known");
            return;
        };
        let dialog = match dialog::ack_for_2xx(&invite, resp) {
            Ok(ack) => {
                ep.send_ack(now, leg.dest.clone(), ack);
                Dialog::from_uac(&invite, resp)
            }
            Err(e) => Err(e),
        };
        let Ok(dialog) = dialog else {
            warn!(
                call = key,
                "agent 2xx without a usable dialog; treating as a failure"
            );
            return;
        };
        // Everyone else stops ringing.
        for other in std::mem::take(&mut call.legs) {
            if other.state == LegState::Calling {
                let _ = ep.cancel(now, other.txn);
            }
            self.by_sip_call_id.remove(&other.sip_call_id);
            self.orphan(ep, now, other.txn, other.dest);
        }
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        take(&mut call.offered, leg.agent);
        let others: Vec<AgentIdx> = std::mem::take(&mut call.offered);
        let record = call
            .queue
            .as_ref()
            .and_then(|q| self.queue_settings.get(q))
            .is_some_and(|q| q.record);
        let record_as =
            record.then(|| format!("{}/{}", timestamp(now).format("%Y-%m-%d"), call.record_id));
        if let Err(e) = call.media.bridge_agent(&resp.body, record_as.as_deref()) {
            warn!(
                call = key,
                "agent SDP unusable ({e}); bridging to the address we know"
            );
        }
        call.phase = Phase::Talking;
        call.answered_at = Some(now);
        call.rtp_since = now;
        let agent_id = self
            .engine
            .agent_id(leg.agent)
            .unwrap_or_default()
            .to_owned();
        info!(call = key, agent = %agent_id, route = %call.route, "answered");
        let Some(engine_call) = call.engine_call else {
            return;
        };
        call.bridged = Some(Bridged {
            agent: leg.agent,
            dialog,
            dest: leg.dest,
            sip_call_id: leg.sip_call_id,
            held: false,
        });
        self.remove_ring_timer(key, leg.agent);
        for other in others {
            self.remove_ring_timer(key, other);
        }
        if let Err(e) =
            self.engine
                .report(engine_time(now), engine_call, Outcome::Answered(leg.agent))
        {
            warn!(call = key, "engine refused the answer: {e}");
        }
        self.events.send(LiveEvent::CallAnswered {
            call: key,
            agent: agent_id,
        });
        self.journal(now, key);
    }

    fn ring_timeout(&mut self, ep: &mut Endpoint, now: Instant, key: u64, agent: AgentIdx) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if !take(&mut call.offered, agent) {
            return;
        }
        for leg in call.legs.iter_mut().filter(|l| l.agent == agent) {
            if leg.state == LegState::Calling {
                leg.state = LegState::Cancelling;
                let _ = ep.cancel(now, leg.txn);
            }
        }
        info!(call = key, agent = ?self.engine.agent_id(agent), "no answer");
        if let Some(engine_call) = call.engine_call {
            let _ = self
                .engine
                .report(engine_time(now), engine_call, Outcome::NoAnswer(agent));
        }
    }

    /// The engine took an offer back (the agent went on a break or logged out while their
    /// phone rang): stop ringing them now. Offers that ended otherwise are no longer listed.
    fn stop_ringing(&mut self, ep: &mut Endpoint, now: Instant, agent: AgentIdx) {
        let Some((key, call)) = self
            .calls
            .iter_mut()
            .find(|(_, c)| c.offered.contains(&agent))
        else {
            return;
        };
        let key = *key;
        take(&mut call.offered, agent);
        for leg in call.legs.iter_mut().filter(|l| l.agent == agent) {
            if leg.state == LegState::Calling {
                leg.state = LegState::Cancelling;
                let _ = ep.cancel(now, leg.txn);
            }
        }
        info!(call = key, agent = ?self.engine.agent_id(agent), "offer withdrawn: ringing stopped");
        self.remove_ring_timer(key, agent);
    }

    /// An agent leg no call wants any more: a late 2xx for it is ACKed and BYEd, and it is
    /// forgotten [`FORGET_LEG_AFTER_T1`]·T1 from now if its INVITE never ends.
    fn orphan(&mut self, ep: &Endpoint, now: Instant, txn: ClientTxnKey, dest: Peer) {
        let forget_at = now + ep.config().timers.t1.saturating_mul(FORGET_LEG_AFTER_T1);
        if let Some((_, old)) = self.orphans.insert(txn, (dest, forget_at)) {
            self.timers.remove(&(old, Timer::ForgetLeg { txn }));
        }
        self.timers.insert((forget_at, Timer::ForgetLeg { txn }));
    }

    /// The orphaned leg `txn` ended: its entries go. Returns where its INVITE went.
    fn unorphan(&mut self, txn: ClientTxnKey) -> Option<Peer> {
        let (dest, forget_at) = self.orphans.remove(&txn)?;
        self.timers.remove(&(forget_at, Timer::ForgetLeg { txn }));
        self.by_client_txn.remove(&txn);
        Some(dest)
    }

    /// An orphaned leg's INVITE got no final response in time: nothing will come of it.
    fn forget_leg(&mut self, txn: ClientTxnKey) {
        if self.unorphan(txn).is_some() {
            info!(
                txn = ?txn,
                "agent leg without a final response long after it was given up: forgotten"
            );
        }
    }

    fn remove_ring_timer(&mut self, key: u64, agent: AgentIdx) {
        self.timers
            .retain(|(_, t)| *t != Timer::RingTimeout { key, agent });
    }

    // ----- RTP inactivity -------------------------------------------------------------------

    /// The RTP check of call `key` is due: a leg that sent no RTP for `media.rtp_timeout_s`
    /// ends the call; otherwise the check is due again when the quietest leg would reach the
    /// timeout. The caller leg is checked in every phase (callers hearing the menu or music
    /// send RTP too), the agent leg while talking; nothing is checked while either side
    /// holds the call, and silence counts from the answer, the bridge or the resume at the
    /// earliest. One timer entry per call, rarely due while RTP flows.
    fn check_rtp(&mut self, ep: &mut Endpoint, now: Instant, key: u64) {
        let Some(timeout) = self.rtp_timeout else {
            return;
        };
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let held = call.caller_held || call.bridged.as_ref().is_some_and(|b| b.held);
        if held {
            self.timers.insert((now + timeout, Timer::RtpCheck { key }));
            return;
        }
        let ages = call.media.rtp_ages(crate::clock::now());
        let since = now.saturating_duration_since(call.rtp_since);
        let silence = |age: Option<Duration>| age.map_or(since, |a| a.min(since));
        let caller = silence(ages.caller);
        let agent = (call.phase == Phase::Talking).then(|| silence(ages.agent));
        let quietest = agent.map_or(caller, |a| a.max(caller));
        if quietest < timeout {
            self.timers
                .insert((now + (timeout - quietest), Timer::RtpCheck { key }));
            return;
        }
        let (leg, silent) = if caller >= timeout {
            ("caller", caller)
        } else {
            ("agent", quietest)
        };
        warn!(
            call = key,
            call_id = %call.caller_sip_call_id,
            leg,
            silent_s = format_args!("{:.1}", silent.as_secs_f64()),
            caller_silent_s = format_args!("{:.1}", caller.as_secs_f64()),
            agent_silent_s = agent.map(|a| format!("{:.1}", a.as_secs_f64())),
            "RTP timeout: the {leg} leg sent no RTP for {:.1} s; ending the call",
            silent.as_secs_f64()
        );
        self.end_call(ep, now, key, Ended::RtpTimeout);
    }

    // ----- ending ---------------------------------------------------------------------------

    fn end_call(&mut self, ep: &mut Endpoint, now: Instant, key: u64, how: Ended) {
        let Some(mut call) = self.calls.remove(&key) else {
            return;
        };
        if let Some(ec) = call.engine_call {
            self.by_engine.remove(&ec);
            self.finished
                .insert(ec, (call.record_id.clone(), call.queue.clone()));
            // Bounded: entries leave with the call's last event; this only guards a bug.
            if self.finished.len() > 100_000 {
                self.finished.clear();
            }
        }
        self.by_invite.remove(&call.caller_invite_txn);
        self.by_sip_call_id.remove(&call.caller_sip_call_id);
        self.timers.retain(|(_, t)| match t {
            Timer::RingTimeout { key: k, .. }
            | Timer::Announce { key: k }
            | Timer::MenuTimeout { key: k }
            | Timer::RtpCheck { key: k } => *k != key,
            Timer::ForgetLeg { .. } => true,
        });
        let t = engine_time(now);
        // Stop every agent leg still ringing.
        for leg in call.legs.drain(..) {
            if leg.state == LegState::Calling {
                let _ = ep.cancel(now, leg.txn);
            }
            self.by_sip_call_id.remove(&leg.sip_call_id);
            self.orphan(ep, now, leg.txn, leg.dest);
        }
        let (outcome, side) = match (&call.bridged, how) {
            (Some(b), Ended::CallerHungUp) => {
                let mut d = b.dialog.clone();
                let bye = d.request(Method::Bye);
                let _ = ep.send_request(now, b.dest.clone(), bye);
                (CdrOutcome::Answered, CdrHangup::Caller)
            }
            (Some(_), Ended::AgentHungUp) => {
                let bye = call.caller_dialog.request(Method::Bye);
                let _ = ep.send_request(now, call.caller_peer.clone(), bye);
                (CdrOutcome::Answered, CdrHangup::Agent)
            }
            (
                Some(b),
                Ended::Failed
                | Ended::Shutdown
                | Ended::NoAgent
                | Ended::RtpTimeout
                | Ended::Timeout,
            ) => {
                let mut d = b.dialog.clone();
                let _ = ep.send_request(now, b.dest.clone(), d.request(Method::Bye));
                let bye = call.caller_dialog.request(Method::Bye);
                let _ = ep.send_request(now, call.caller_peer.clone(), bye);
                (CdrOutcome::Answered, CdrHangup::System)
            }
            (None, Ended::CallerHungUp | Ended::AgentHungUp) => {
                (CdrOutcome::Abandoned, CdrHangup::Caller)
            }
            (None, Ended::Failed | Ended::Shutdown) => {
                let bye = call.caller_dialog.request(Method::Bye);
                let _ = ep.send_request(now, call.caller_peer.clone(), bye);
                (CdrOutcome::Failed, CdrHangup::System)
            }
            (None, Ended::RtpTimeout) => {
                let bye = call.caller_dialog.request(Method::Bye);
                let _ = ep.send_request(now, call.caller_peer.clone(), bye);
                (CdrOutcome::Abandoned, CdrHangup::System)
            }
            (None, Ended::NoAgent) => {
                let bye = call.caller_dialog.request(Method::Bye);
                let _ = ep.send_request(now, call.caller_peer.clone(), bye);
                (CdrOutcome::NoAgent, CdrHangup::System)
            }
            (None, Ended::Timeout) => {
                let bye = call.caller_dialog.request(Method::Bye);
                let _ = ep.send_request(now, call.caller_peer.clone(), bye);
                (CdrOutcome::Timeout, CdrHangup::System)
            }
        };
        if let Some(b) = &call.bridged {
            self.by_sip_call_id.remove(&b.sip_call_id);
            let engine_side = match side {
                CdrHangup::Caller => HangupSide::Caller,
                CdrHangup::Agent => HangupSide::Agent,
                CdrHangup::System => HangupSide::System,
            };
            if let Some(ec) = call.engine_call
                && let Err(e) = self.engine.hangup(t, ec, engine_side)
            {
                warn!(call = key, "engine hangup: {e}");
            }
        } else if let Some(ec) = call.engine_call {
            // Agents still ringing are released by the engine; a caller who leaves never
            // counts as their no-answer (PRODUCT §3).
            call.offered.clear();
            if let Err(e) = self.engine.report(t, ec, Outcome::CallerGone) {
                debug!(call = key, "engine: caller gone: {e}");
            }
        }
        let stats = call.media.close();
        let agent = call
            .bridged
            .as_ref()
            .and_then(|b| self.engine.agent_id(b.agent))
            .map(str::to_owned);
        let end = SegmentEnd {
            agent,
            outcome,
            side,
        };
        self.record_segment(now, &call, &end, &stats);
    }

    /// The CDR of a call segment in progress (a transfer), with media counts so far.
    fn write_cdr(&self, now: Instant, key: u64, end: &SegmentEnd) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let stats = call.media.stats();
        self.record_segment(now, call, end, &stats);
    }

    /// The call's record as it stands at `now`, ended as `end` says.
    fn call_record(
        &self,
        now: Instant,
        call: &Call,
        end: &SegmentEnd,
        stats: &CallMediaStats,
    ) -> CallRecord {
        let wait_ms = millis_between(call.queued_at, call.answered_at.unwrap_or(now));
        let talk_ms = call.answered_at.map_or(0, |a| millis_between(a, now));
        let (outcome, side) = (end.outcome, end.side);
        let agent_id = end.agent.clone();
        CallRecord {
            id: call.record_id.clone(),
            sip_call_id: call.caller_sip_call_id.clone(),
            direction: Direction::Inbound,
            trunk: Some(call.trunk.clone()),
            caller: call.caller.clone(),
            dialed: call.dialed.clone(),
            client_number: Some(call.client_number.clone()),
            client_class: Some(call.class.clone()),
            purpose: Some(call.purpose.as_str().to_owned()),
            queue: call.queue.clone(),
            agent_id,
            route: call.route.clone(),
            started_at: timestamp(call.started_at),
            queued_at: Some(timestamp(call.queued_at)),
            answered_at: call.answered_at.map(timestamp),
            ended_at: timestamp(now),
            wait_ms,
            talk_ms,
            outcome,
            hangup_side: side,
            recording: stats.recording.as_ref().map(|p| p.display().to_string()),
            journal: None,
        }
    }

    /// Journals call `key` in progress (its start, a phase change): a `kill -9` leaves this
    /// row, closed as `interrupted` at the next start.
    fn journal(&self, now: Instant, key: u64) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let end = SegmentEnd {
            agent: call
                .bridged
                .as_ref()
                .and_then(|b| self.engine.agent_id(b.agent))
                .map(str::to_owned),
            outcome: CdrOutcome::Interrupted,
            side: CdrHangup::System,
        };
        let record = self.call_record(now, call, &end, &call.media.stats());
        let row = crate::journal::journal_row(record, &self.journal_node);
        if let Err(e) = self.records.send(row) {
            warn!(call = key, "call journal not accepted: {e}");
        }
    }

    /// Writes one call-detail record, counts it in the metrics, logs it and tells the live
    /// event stream.
    fn record_segment(&self, now: Instant, call: &Call, end: &SegmentEnd, stats: &CallMediaStats) {
        let key = call.key;
        let (outcome, side) = (end.outcome, end.side);
        let wait_ms = millis_between(call.queued_at, call.answered_at.unwrap_or(now));
        let talk_ms = call.answered_at.map_or(0, |a| millis_between(a, now));
        let agent_id = end.agent.clone();
        let queue_label = call.queue.clone().unwrap_or_else(|| "none".to_owned());
        self.metrics
            .calls_total
            .with_label_values(&[&queue_label, outcome.as_str()])
            .inc();
        self.metrics
            .wait_seconds
            .with_label_values(&[&queue_label])
            .observe(wait_ms as f64 / 1000.0);
        if call.answered_at.is_some() {
            self.metrics
                .talk_seconds
                .with_label_values(&[&queue_label])
                .observe(talk_ms as f64 / 1000.0);
        }
        info!(
            call = key,
            outcome = outcome.as_str(),
            hangup = side.as_str(),
            agent = agent_id.as_deref().unwrap_or("-"),
            wait_ms,
            talk_ms,
            caller_rtp_in = stats.caller_in,
            caller_rtp_out = stats.caller_out,
            agent_rtp_in = stats.agent_in,
            agent_rtp_out = stats.agent_out,
            route = %call.route,
            "call ended"
        );
        self.events.send(LiveEvent::CallEnded {
            call: key,
            outcome: outcome.as_str().to_owned(),
            hangup_side: side.as_str().to_owned(),
        });
        let record = self.call_record(now, call, end, stats);
        if let Err(e) = self.records.send(record) {
            warn!(call = key, "call record not accepted: {e}");
        }
    }

    /// A queue event of call `key` written by call control itself (TRANSFER).
    fn write_queue_event(
        &self,
        key: u64,
        kind: QueueEventKind,
        agent: Option<String>,
        data: Option<String>,
    ) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let record = QueueEvent {
            id: switchboard_store::new_record_id(),
            at: switchboard_store::now_utc(),
            call_id: call.record_id.clone(),
            queue: call.queue.clone().unwrap_or_else(|| "none".to_owned()),
            agent_id: agent,
            event: kind,
            data,
        };
        if let Err(e) = self.records.send(record) {
            warn!(call = key, "queue event not accepted: {e}");
        }
    }

    fn write_unrouted_cdr(&self, now: Instant, u: Unrouted<'_>) {
        let Unrouted {
            trunk,
            caller,
            dialed,
            client_number,
            class,
            purpose,
            sip_call_id,
        } = u;
        self.metrics
            .calls_total
            .with_label_values(&["none", CdrOutcome::NoAgent.as_str()])
            .inc();
        let record = CallRecord {
            id: switchboard_store::new_record_id(),
            sip_call_id: sip_call_id.to_owned(),
            direction: Direction::Inbound,
            trunk: Some(trunk.to_owned()),
            caller: caller.to_owned(),
            dialed: dialed.to_owned(),
            client_number: Some(client_number.to_owned()),
            client_class: Some(class.to_owned()),
            purpose: Some(purpose.as_str().to_owned()),
            queue: None,
            agent_id: None,
            route: "no route: no step of the chain has an agent".to_owned(),
            started_at: timestamp(now),
            queued_at: None,
            answered_at: None,
            ended_at: timestamp(now),
            wait_ms: 0,
            talk_ms: 0,
            outcome: CdrOutcome::NoAgent,
            hangup_side: CdrHangup::System,
            recording: None,
            journal: None,
        };
        if let Err(e) = self.records.send(record) {
            warn!("call record not accepted: {e}");
        }
    }

    /// Ends every call (shutdown after the grace period).
    pub fn end_all(&mut self, ep: &mut Endpoint, now: Instant) {
        let keys: Vec<u64> = self.calls.keys().copied().collect();
        for key in keys {
            self.end_call(ep, now, key, Ended::Shutdown);
        }
    }

    // ----- engine events → queue_events ------------------------------------------------------

    fn on_engine_event(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        event: switchboard_engine::Event,
    ) {
        use switchboard_engine::Event as E;
        let (call, kind, agent, queue, data) = match &event {
            E::CallEnqueued { call, queue, .. } => {
                (*call, QueueEventKind::EnterQueue, None, *queue, None)
            }
            E::CallNotAnswered {
                call,
                agent,
                rejected,
                ..
            } => (
                *call,
                QueueEventKind::RingNoAnswer,
                Some(*agent),
                None,
                Some(if *rejected { "rejected" } else { "no answer" }.to_owned()),
            ),
            E::CallAnswered {
                call,
                agent,
                queue,
                wait_ms,
                ..
            } => (
                *call,
                QueueEventKind::Connect,
                Some(*agent),
                *queue,
                Some(format!("{wait_ms}")),
            ),
            E::CallEnded {
                call,
                agent,
                talk_ms,
                side,
                ..
            } => (
                *call,
                match side {
                    HangupSide::Agent => QueueEventKind::CompleteAgent,
                    _ => QueueEventKind::CompleteCaller,
                },
                Some(*agent),
                None,
                Some(format!("{talk_ms}")),
            ),
            E::CallAbandoned { call, wait_ms, .. } => (
                *call,
                QueueEventKind::Abandon,
                None,
                None,
                Some(format!("{wait_ms}")),
            ),
            E::CallOverflowed { call, queue, .. } => (
                *call,
                QueueEventKind::ExitWithTimeout,
                None,
                Some(*queue),
                None,
            ),
            E::CallTimedOut {
                call,
                queue,
                wait_ms,
                ..
            } => (
                *call,
                QueueEventKind::ExitWithTimeout,
                None,
                *queue,
                Some(format!("timeout {wait_ms}")),
            ),
            E::DailyCountersReset { at } => {
                crate::daily::schedule_next_reset(&self.engine, *at, self.day_zone);
                return;
            }
            E::AgentStateChanged {
                agent,
                from,
                to,
                at,
            } => {
                if *from == AgentStateKind::Ringing
                    && !matches!(to, AgentStateKind::Ringing | AgentStateKind::OnCall)
                {
                    self.stop_ringing(ep, now, *agent);
                }
                self.agent_state_changed(*agent, *from, *to, *at);
                return;
            }
            E::CallOffered { .. } => return,
        };
        let Some(key) = self.by_engine.get(&call).copied() else {
            // Events after the call ended (COMPLETE*, ABANDON) still belong to its record.
            self.write_queue_event_detached(call, kind, agent, queue, data);
            return;
        };
        let Some(c) = self.calls.get(&key) else {
            return;
        };
        let queue_name = queue
            .and_then(|q| self.engine.queue_name(q))
            .map(str::to_owned)
            .or_else(|| c.queue.clone())
            .unwrap_or_else(|| "none".to_owned());
        let record = QueueEvent {
            id: switchboard_store::new_record_id(),
            at: timestamp(now),
            call_id: c.record_id.clone(),
            queue: queue_name,
            agent_id: agent
                .and_then(|a| self.engine.agent_id(a))
                .map(str::to_owned),
            event: kind,
            data,
        };
        if let Err(e) = self.records.send(record) {
            warn!("queue event not accepted: {e}");
        }
        if let E::CallTimedOut { wait_ms, .. } = event {
            info!(
                call = key,
                wait_ms, "waited as long as the route chain allows: timeout"
            );
            self.end_call(ep, now, key, Ended::Timeout);
        }
    }

    fn write_queue_event_detached(
        &mut self,
        call: CallId,
        kind: QueueEventKind,
        agent: Option<AgentIdx>,
        queue: Option<switchboard_engine::QueueIdx>,
        data: Option<String>,
    ) {
        // The engine reports a call's last events (COMPLETE*, ABANDON) after call control has
        // ended it: they belong to the record of the finished call.
        let finished = if matches!(
            kind,
            QueueEventKind::CompleteAgent
                | QueueEventKind::CompleteCaller
                | QueueEventKind::Abandon
        ) {
            self.finished.remove(&call)
        } else {
            self.finished.get(&call).cloned()
        };
        let Some((record_id, last_queue)) = finished else {
            debug!(call = %call, "queue event for an unknown call dropped");
            return;
        };
        let record = QueueEvent {
            id: switchboard_store::new_record_id(),
            at: switchboard_store::now_utc(),
            call_id: record_id,
            queue: queue
                .and_then(|q| self.engine.queue_name(q))
                .map(str::to_owned)
                .or(last_queue)
                .unwrap_or_else(|| "none".to_owned())
                .to_owned(),
            agent_id: agent
                .and_then(|a| self.engine.agent_id(a))
                .map(str::to_owned),
            event: kind,
            data,
        };
        if let Err(e) = self.records.send(record) {
            warn!("queue event not accepted: {e}");
        }
    }

    fn agent_state_changed(
        &self,
        agent: AgentIdx,
        from: AgentStateKind,
        to: AgentStateKind,
        _at: Time,
    ) {
        let id = self.engine.agent_id(agent).unwrap_or_default().to_owned();
        debug!(agent = %id, from = ?from, to = ?to, "agent state");
        self.events.send(LiveEvent::AgentState {
            agent: id.clone(),
            state: state_name(to).to_owned(),
        });
        let record = switchboard_store::AgentSessionEvent {
            id: switchboard_store::new_record_id(),
            at: switchboard_store::now_utc(),
            agent_id: id,
            event: switchboard_store::AgentEventKind::State,
            state: Some(state_name(to).to_owned()),
            reason: Some(format!("from {}", state_name(from))),
        };
        if let Err(e) = self.records.send(record) {
            warn!("agent session record not accepted: {e}");
        }
    }
}

/// The PRODUCT spelling of an agent state.
pub fn state_name(k: AgentStateKind) -> &'static str {
    match k {
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

/// A call the engine could not route, for its CDR.
#[derive(Debug, Clone, Copy)]
struct Unrouted<'a> {
    trunk: &'a str,
    caller: &'a str,
    dialed: &'a str,
    client_number: &'a str,
    class: &'a str,
    purpose: Purpose,
    sip_call_id: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
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

/// A 2xx we do not want (another leg won, or the call is over): ACK it, then BYE it.
fn ack_and_bye(ep: &mut Endpoint, now: Instant, txn: ClientTxnKey, dest: Peer, resp: &Response) {
    let Some(invite) = ep.client_request(txn).cloned() else {
        return;
    };
    if let (Ok(ack), Ok(mut d)) = (
        dialog::ack_for_2xx(&invite, resp),
        Dialog::from_uac(&invite, resp),
    ) {
        ep.send_ack(now, dest.clone(), ack);
        let bye = d.request(Method::Bye);
        let _ = ep.send_request(now, dest, bye);
    }
}

/// The calling number: P-Asserted-Identity's user when present, else From's.
fn caller_number(req: &Request) -> String {
    let pai = req
        .headers
        .get(&HeaderName::PAssertedIdentity)
        .and_then(|v| NameAddr::parse(v).ok())
        .and_then(|n| n.uri.user);
    pai.or_else(|| req.from_hdr().ok().and_then(|f| f.uri.user))
        .unwrap_or_else(|| "anonymous".to_owned())
}
