//! Outbound calls, agent first: the engine reserves the agent (the call is routed to
//! `agent:<id>`), the agent's phone rings with the number to call; when the agent answers,
//! the number is dialed through the trunk's `outbound` URI (digest answered when the PBX
//! challenges, early media passed to the agent, who hears the ringing); the customer's 2xx
//! is bridged. 486/600/603 end the attempt as `busy`, 408/480/487 (and our no-answer CANCEL)
//! as `no_answer`, anything else as `failed`. One call-detail record per attempt, with
//! direction `outbound`.

use std::time::Duration;

use switchboard_engine::{CallRequest, HangupSide, Outcome, Purpose, Step};
use switchboard_sip::dialog::{self, Dialog};
use switchboard_sip::digest::{Challenge, answer_challenge};
use switchboard_sip::{ClientTxnKey, Endpoint, Instant, Peer};
use switchboard_sipmsg::{HeaderName, Method, Request, Response};
use switchboard_store::{CallRecord, Direction, HangupSide as CdrHangup, Outcome as CdrOutcome};
use tracing::{debug, info, warn};

use super::dialogs::InDialog;
use super::legs::{CallResponse, Unconfirmed, ack_and_bye, confirm_answer};
use super::state::{AgentLeg, Side, Timer};
use super::{Calls, engine_time};
use crate::callbacks::AttemptReport;
use crate::callbacks::plan::AttemptResult;
use crate::calls::media::CallMedia;
use crate::campaigns::CampaignDial;

/// How long the customer's phone may ring before the attempt ends as `no_answer`.
pub const CUSTOMER_RING_TIMEOUT: Duration = Duration::from_secs(45);

/// What an outbound call is for (the `kind` label of `switchboard_outbound_calls_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundKind {
    Callback,
    Campaign,
    Click,
}

impl OutboundKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            OutboundKind::Callback => "callback",
            OutboundKind::Campaign => "campaign",
            OutboundKind::Click => "click",
        }
    }
}

/// A request to call `number` with `agent` on the line first.
#[derive(Debug, Clone)]
pub struct DialRequest {
    /// The id the call's record will have.
    pub record_id: String,
    pub agent: String,
    /// Normalised number to dial.
    pub number: String,
    pub queue: Option<String>,
    pub kind: OutboundKind,
    /// The call-back this call is made for (its records name it).
    pub callback_id: Option<String>,
    /// What the agent's phone shows; absent: the kind and the number.
    pub label: Option<String>,
    /// Where the attempt's result goes (the call-back dialer).
    pub report: Option<tokio::sync::mpsc::UnboundedSender<AttemptReport>>,
    /// The campaign contact this call is made for (its records name the campaign; the
    /// result goes back to the campaign dialer).
    pub campaign: Option<CampaignDial>,
    /// The engine's offer of a held place (an in-queue call-back): its agents are reserved
    /// already, so the call is not routed again.
    pub place: Option<switchboard_engine::Offer>,
}

/// How an outbound attempt ended (the `outcome` label of the metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OutResult {
    Answered,
    NoAnswer,
    Busy,
    Failed,
    /// The agent did not take the call (no answer, declined, unreachable).
    AgentNoAnswer,
}

impl OutResult {
    const fn as_str(self) -> &'static str {
        match self {
            OutResult::Answered => "answered",
            OutResult::NoAnswer => "no_answer",
            OutResult::Busy => "busy",
            OutResult::Failed => "failed",
            OutResult::AgentNoAnswer => "agent_no_answer",
        }
    }

    const fn attempt(self) -> AttemptResult {
        match self {
            OutResult::Answered => AttemptResult::Answered,
            OutResult::NoAnswer => AttemptResult::NoAnswer,
            OutResult::Busy => AttemptResult::Busy,
            OutResult::Failed => AttemptResult::Failed,
            OutResult::AgentNoAnswer => AttemptResult::AgentNoAnswer,
        }
    }

    /// The result of a final failure response from the trunk.
    fn of_status(status: u16) -> OutResult {
        match status {
            486 | 600 | 603 => OutResult::Busy,
            408 | 480 | 487 => OutResult::NoAnswer,
            _ => OutResult::Failed,
        }
    }
}

/// The customer's side: our INVITE to the trunk and, once answered, its dialog.
#[derive(Debug)]
pub(super) struct CustomerLeg {
    pub txn: ClientTxnKey,
    pub dest: Peer,
    pub sip_call_id: String,
    pub dialog: Option<Dialog>,
    /// A digest challenge was answered already (a second one ends the attempt).
    pub authenticated: bool,
}

/// The agent's answered leg.
#[derive(Debug)]
pub(super) struct AgentDialog {
    pub invite_txn: ClientTxnKey,
    pub dialog: Dialog,
    pub dest: Peer,
    pub sip_call_id: String,
}

/// One outbound call in progress.
#[derive(Debug)]
pub(super) struct Outbound {
    pub record_id: String,
    pub kind: OutboundKind,
    pub number: String,
    pub trunk: usize,
    pub queue: Option<String>,
    pub agent_id: String,
    pub engine_call: switchboard_engine::CallId,
    pub route: String,
    pub media: CallMedia,
    pub started_at: Instant,
    /// INVITEs ringing the agent's contacts.
    pub agent_legs: Vec<AgentLeg>,
    pub agent: Option<AgentDialog>,
    pub customer: Option<CustomerLeg>,
    /// The customer answered.
    pub answered_at: Option<Instant>,
    pub callback_id: Option<String>,
    pub label: Option<String>,
    pub report: Option<tokio::sync::mpsc::UnboundedSender<AttemptReport>>,
    pub campaign: Option<CampaignDial>,
}

impl Outbound {
    fn new(
        req: DialRequest,
        trunk: usize,
        engine_call: switchboard_engine::CallId,
        route: String,
        media: CallMedia,
        now: Instant,
    ) -> Outbound {
        Outbound {
            record_id: req.record_id,
            kind: req.kind,
            number: req.number,
            trunk,
            queue: req.queue,
            route,
            agent_id: req.agent,
            engine_call,
            media,
            started_at: now,
            agent_legs: Vec::new(),
            agent: None,
            customer: None,
            answered_at: None,
            callback_id: req.callback_id,
            label: req.label,
            report: req.report,
            campaign: req.campaign,
        }
    }
}

impl Calls {
    /// Starts an outbound call: the engine reserves the agent, whose phone rings first (at
    /// once for a held place, whose offer came with the request).
    pub(super) fn dial(&mut self, ep: &mut Endpoint, now: Instant, mut req: DialRequest) {
        let key = self.next_key;
        self.next_key += 1;
        let place = req.place.take();
        let Some(trunk) = self.trunks.iter().position(|t| t.outbound.is_some()) else {
            warn!(number = %req.number, "outbound call refused: no trunk has an outbound URI");
            if let Some(offer) = &place {
                self.drop_place(now, offer.call);
            }
            return self.dial_refused(now, &req, "no trunk has an outbound URI");
        };
        let customer_call_id = format!("{}-out", req.record_id);
        let media = match self.media.open(&customer_call_id, b"") {
            Ok(m) => m,
            Err(e) => {
                warn!(number = %req.number, "outbound call refused: media: {e}");
                if let Some(offer) = &place {
                    self.drop_place(now, offer.call);
                }
                return self.dial_refused(now, &req, "no media ports");
            }
        };
        if let Some(offer) = place {
            info!(call = key, agent = %req.agent, number = %req.number, "call-back of a held place: ringing the agent first");
            let route = format!("{}: held place > {}", req.kind.as_str(), offer.route);
            self.by_engine.insert(offer.call, key);
            self.outbound.insert(
                key,
                Outbound::new(req, trunk, offer.call, route, media, now),
            );
            return self.ring_outbound(ep, now, key, offer);
        }
        let queue_idx = req.queue.as_deref().and_then(|q| self.engine.queue_idx(q));
        let routed = self.engine.route_call_to(
            engine_time(now),
            CallRequest {
                caller: req.number.clone(),
                purpose: Purpose::Order,
                client: None,
                priority: None,
                queue: queue_idx,
            },
            &Step::Agent(req.agent.clone()),
        );
        let engine_call = match routed {
            Ok(c) => c,
            Err(e) => {
                warn!(agent = %req.agent, number = %req.number, "outbound call refused by the engine: {e}");
                return self.dial_refused(now, &req, "the agent cannot be reserved");
            }
        };
        info!(call = key, kind = req.kind.as_str(), agent = %req.agent, number = %req.number, "outbound call: ringing the agent first");
        self.by_engine.insert(engine_call, key);
        let route = format!("{}: agent:{}", req.kind.as_str(), req.agent);
        self.outbound.insert(
            key,
            Outbound::new(req, trunk, engine_call, route, media, now),
        );
    }

    /// An outbound call that never started: one `failed` record.
    fn dial_refused(&self, now: Instant, req: &DialRequest, why: &str) {
        self.count_outbound(req.kind, OutResult::Failed);
        report_attempt(
            req.report.as_ref(),
            req.callback_id.as_deref(),
            OutResult::Failed,
        );
        if let Some(c) = &req.campaign {
            c.report(OutResult::Failed.attempt());
        }
        let record = CallRecord {
            queue: req.queue.clone(),
            agent_id: Some(req.agent.clone()),
            callback_id: req.callback_id.clone(),
            campaign: req.campaign.as_ref().map(|c| c.campaign_id.clone()),
            ..super::records::ended_at_once(
                now,
                req.record_id.clone(),
                Direction::Outbound,
                (self.caller_id(None), req.number.clone(), req.number.clone()),
                (
                    CdrOutcome::Failed,
                    format!("{}: not dialed: {why}", req.kind.as_str()),
                ),
            )
        };
        if let Err(e) = self.records.send(record) {
            warn!("outbound call record not accepted: {e}");
        }
    }

    fn count_outbound(&self, kind: OutboundKind, result: OutResult) {
        self.metrics
            .outbound_calls_total
            .with_label_values(&[kind.as_str(), result.as_str()])
            .inc();
    }

    /// The From number of outbound calls through `trunk` (its `caller_id`).
    pub(super) fn caller_id(&self, trunk: Option<usize>) -> String {
        trunk
            .and_then(|t| self.trunks.get(t))
            .or_else(|| self.trunks.iter().find(|t| t.outbound.is_some()))
            .and_then(|t| t.caller_id.clone())
            .unwrap_or_else(|| "switchboard".to_owned())
    }

    /// The engine offers the reserved agent: ring their contacts with the number shown.
    pub(super) fn ring_outbound(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: u64,
        offer: switchboard_engine::Offer,
    ) {
        let Some(out) = self.outbound.get_mut(&key) else {
            return;
        };
        let display = out
            .label
            .clone()
            .unwrap_or_else(|| format!("{} {}", out.kind.as_str(), out.number));
        let mut legs = Vec::new();
        for &agent in &offer.agents {
            let Some(agent_id) = self.engine.agent_id(agent).map(str::to_owned) else {
                continue;
            };
            for binding in ep.registrar().contacts_for(&agent_id, now) {
                let (mut invite, sip_call_id) = super::legs::agent_invite(
                    ep,
                    &self.domain,
                    &binding,
                    (&display, &out.number),
                    &agent_id,
                    &out.route,
                );
                let dest = super::legs::agent_dest(&binding);
                invite.body = out.media.agent_offer_for(dest.transport, &sip_call_id);
                let txn = ep.send_request(now, dest.clone(), invite);
                legs.push(AgentLeg {
                    agent,
                    txn,
                    dest,
                    sip_call_id,
                });
            }
        }
        if legs.is_empty() {
            info!(
                call = key,
                "outbound call: the agent has no registered contact"
            );
            return self.end_outbound(ep, now, key, OutResult::AgentNoAnswer, CdrHangup::System);
        }
        for leg in &legs {
            self.by_client_txn.insert(leg.txn, key);
            self.by_sip_call_id
                .insert(leg.sip_call_id.clone(), (key, Side::Agent));
        }
        out.agent_legs = legs;
        self.timers.insert((
            now + Duration::from_millis(offer.ring_timeout_ms),
            Timer::OutboundAgentRing { key },
        ));
    }

    /// Whether `txn` is one of an outbound call's INVITEs (not an orphan).
    pub(super) fn outbound_txn(&self, txn: ClientTxnKey) -> Option<u64> {
        let key = *self.by_client_txn.get(&txn)?;
        self.outbound.contains_key(&key).then_some(key)
    }

    /// A response to one of an outbound call's requests.
    pub(super) fn outbound_response(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        r: CallResponse<'_>,
    ) {
        let CallResponse { key, txn, resp } = r;
        let Some(out) = self.outbound.get_mut(&key) else {
            return;
        };
        let status = resp.status;
        if let Some(pos) = out.agent_legs.iter().position(|l| l.txn == txn) {
            if status < 200 {
                return;
            }
            let leg = out.agent_legs.swap_remove(pos);
            if (200..300).contains(&status) {
                return self.outbound_agent_answered(ep, now, key, leg, resp);
            }
            self.by_client_txn.remove(&txn);
            self.by_sip_call_id.remove(&leg.sip_call_id);
            out.media.drop_fork(&leg.sip_call_id);
            if out.agent_legs.is_empty() && out.agent.is_none() {
                info!(
                    call = key,
                    status, "outbound call: the agent did not take it"
                );
                self.end_outbound(ep, now, key, OutResult::AgentNoAnswer, CdrHangup::Agent);
            }
            return;
        }
        if let Some(a) = &out.agent
            && a.invite_txn == txn
        {
            if (200..300).contains(&status) && !a.dialog.matches_response(resp) {
                let dest = a.dest.clone();
                ack_and_bye(ep, now, txn, dest, resp);
            }
            return;
        }
        let Some(customer) = out.customer.as_mut().filter(|c| c.txn == txn) else {
            return; // BYE, CANCEL: nothing to do.
        };
        if status < 200 {
            // Early media: the agent hears the customer's ringing (or announcements).
            if !resp.body.is_empty() && out.media.awaits_answer() {
                match out.media.caller_answered(&resp.body) {
                    Ok(_) => debug!(call = key, status, "outbound call: early media"),
                    Err(e) => warn!(call = key, "outbound early media SDP unusable: {e}"),
                }
            }
            return;
        }
        if (200..300).contains(&status) {
            let Some(invite) = ep.client_request(txn).cloned() else {
                return;
            };
            match (
                dialog::ack_for_2xx(&invite, resp),
                Dialog::from_uac(&invite, resp),
            ) {
                (Ok(ack), Ok(d)) => {
                    ep.send_ack(now, customer.dest.clone(), ack);
                    customer.dialog = Some(d);
                }
                _ => {
                    warn!(call = key, "customer 2xx without a usable dialog");
                    return self.end_outbound(ep, now, key, OutResult::Failed, CdrHangup::System);
                }
            }
            if !resp.body.is_empty()
                && let Err(e) = out.media.caller_answered(&resp.body)
            {
                warn!(
                    call = key,
                    "customer SDP unusable ({e}); keeping the early media"
                );
            }
            out.answered_at = Some(now);
            self.cancel_timers(key, |t| matches!(t, Timer::OutboundNoAnswer { .. }));
            info!(call = key, number = %self.outbound.get(&key).map(|o| o.number.as_str()).unwrap_or(""), "outbound call answered by the customer");
            return;
        }
        let challenged = matches!(status, 401 | 407) && !customer.authenticated;
        if challenged && let Some(retry) = self.authenticated_retry(ep, txn, resp, key) {
            let Some(customer) = self
                .outbound
                .get_mut(&key)
                .and_then(|o| o.customer.as_mut())
            else {
                return;
            };
            let new_txn = ep.send_request(now, customer.dest.clone(), retry);
            customer.txn = new_txn;
            customer.authenticated = true;
            self.by_client_txn.remove(&txn);
            self.by_client_txn.insert(new_txn, key);
            info!(
                call = key,
                status, "outbound call: the trunk challenged; answered with digest"
            );
            return;
        }
        let result = OutResult::of_status(status);
        info!(
            call = key,
            status,
            result = result.as_str(),
            "outbound call not answered by the customer"
        );
        self.by_client_txn.remove(&txn);
        if let Some(out) = self.outbound.get_mut(&key) {
            out.route = format!("{} > {} {}", out.route, status, resp.reason);
        }
        self.end_outbound(ep, now, key, result, CdrHangup::System);
    }

    /// The INVITE `txn` once more, answering the trunk's challenge in `resp` with the
    /// trunk's `outbound_username`/`outbound_password`.
    fn authenticated_retry(
        &self,
        ep: &mut Endpoint,
        txn: ClientTxnKey,
        resp: &Response,
        key: u64,
    ) -> Option<Request> {
        let out = self.outbound.get(&key)?;
        let trunk = self.trunks.get(out.trunk)?;
        let (user, password) = trunk.outbound_credentials.as_ref()?;
        let (challenge_hdr, answer_hdr) = if resp.status == 407 {
            (
                HeaderName::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
            )
        } else {
            (HeaderName::WwwAuthenticate, HeaderName::Authorization)
        };
        let challenge = resp
            .headers
            .get_all(&challenge_hdr)
            .find_map(|v| Challenge::parse(v).ok())?;
        let mut invite = ep.client_request(txn)?.clone();
        let cnonce = ep.new_token();
        let uri = invite.uri.to_string();
        let creds = answer_challenge(&challenge, user, password, "INVITE", &uri, &cnonce, 1);
        invite.headers.remove(&HeaderName::Via);
        let seq = invite.cseq().map(|c| c.seq).unwrap_or(1).saturating_add(1);
        invite
            .headers
            .set(HeaderName::CSeq, format!("{seq} INVITE"));
        invite.headers.set(answer_hdr, creds.to_header_value());
        Some(invite)
    }

    /// The agent answered: bridge their leg and dial the customer.
    fn outbound_agent_answered(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: u64,
        leg: AgentLeg,
        resp: &Response,
    ) {
        let confirmed = confirm_answer(ep, now, &leg, resp);
        if let Err(Unconfirmed::InviteGone) = confirmed {
            return;
        }
        let Some(out) = self.outbound.get_mut(&key) else {
            return;
        };
        let Ok(dialog) = confirmed else {
            warn!(call = key, "agent 2xx without a usable dialog");
            return self.end_outbound(ep, now, key, OutResult::AgentNoAnswer, CdrHangup::System);
        };
        for other in std::mem::take(&mut out.agent_legs) {
            let _ = ep.cancel(now, other.txn);
            self.by_client_txn.remove(&other.txn);
            self.by_sip_call_id.remove(&other.sip_call_id);
            self.orphan(ep, now, other.txn, other.dest);
        }
        self.cancel_timers(key, |t| matches!(t, Timer::OutboundAgentRing { .. }));
        let Some(out) = self.outbound.get_mut(&key) else {
            return;
        };
        if let Err(e) = out.media.bridge_agent(&leg.sip_call_id, &resp.body, None) {
            warn!(
                call = key,
                "agent SDP unusable ({e}); bridging to the address we know"
            );
        }
        if let Some(id) = self.engine.agent_id(leg.agent) {
            id.clone_into(&mut out.agent_id);
        }
        out.agent = Some(AgentDialog {
            invite_txn: leg.txn,
            dialog,
            dest: leg.dest,
            sip_call_id: leg.sip_call_id,
        });
        if let Err(e) = self.engine.report(
            engine_time(now),
            out.engine_call,
            Outcome::Answered(leg.agent),
        ) {
            warn!(call = key, "engine refused the agent's answer: {e}");
        }
        // Dial the customer through the trunk.
        let Some(trunk) = self.trunks.get(out.trunk) else {
            return;
        };
        let Some(target) = trunk.outbound.clone() else {
            return;
        };
        let caller_id = trunk
            .caller_id
            .clone()
            .unwrap_or_else(|| "switchboard".to_owned());
        let sip_call_id = ep.new_call_id();
        let uri = target.request_uri(&out.number);
        // The socket it leaves from is fixed now, so Contact names it and the whole dialog
        // uses it.
        let dest = ep.with_local(Peer {
            transport: target.transport,
            addr: target.addr,
            conn: None,
            local: None,
        });
        let mut invite = Request::new(Method::Invite, uri.clone());
        invite.headers.push(
            HeaderName::From,
            format!("<sip:{caller_id}@{}>;tag={}", self.domain, ep.new_tag()),
        );
        invite.headers.push(HeaderName::To, format!("<{uri}>"));
        invite.headers.push(HeaderName::CallId, sip_call_id.clone());
        invite.headers.push(HeaderName::CSeq, "1 INVITE");
        invite.headers.push(
            HeaderName::Contact,
            format!("<{}>", ep.local_uri_for(Some("switchboard"), &dest)),
        );
        invite
            .headers
            .push(HeaderName::Allow, switchboard_sip::ALLOW);
        invite
            .headers
            .push(HeaderName::ContentType, "application/sdp");
        invite.body = out.media.caller_sdp();
        let txn = ep.send_request(now, dest.clone(), invite);
        info!(call = key, number = %out.number, trunk = %trunk.name, "outbound call: the agent answered; dialing the customer");
        out.customer = Some(CustomerLeg {
            txn,
            dest,
            sip_call_id: sip_call_id.clone(),
            dialog: None,
            authenticated: false,
        });
        self.by_client_txn.insert(txn, key);
        self.by_sip_call_id.insert(sip_call_id, (key, Side::Caller));
        self.timers
            .insert((now + CUSTOMER_RING_TIMEOUT, Timer::OutboundNoAnswer { key }));
    }

    /// A request inside one of an outbound call's dialogs. `false`: not in its dialog (481).
    pub(super) fn outbound_request(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        rq: InDialog<'_>,
    ) -> bool {
        let InDialog { req, key, side, .. } = rq;
        let Some(out) = self.outbound.get_mut(&key) else {
            return false;
        };
        let dialog = match side {
            Side::Caller => out.customer.as_mut().and_then(|c| c.dialog.as_mut()),
            Side::Agent => out.agent.as_mut().map(|a| &mut a.dialog),
        };
        if !dialog.is_some_and(|d| rq.enter(d)) {
            return false;
        }
        match req.method {
            Method::Bye => {
                rq.respond(ep, now, 200, "OK");
                let result = if out.answered_at.is_some() {
                    OutResult::Answered
                } else if side == Side::Agent {
                    // The agent gave up while the customer's phone rang.
                    OutResult::NoAnswer
                } else {
                    OutResult::Failed
                };
                self.end_outbound(ep, now, key, result, side.hangup());
            }
            Method::Invite | Method::Update if !req.body.is_empty() => {
                // Hold, resume or a new media address: re-point that leg, answer.
                let answer = match side {
                    Side::Caller => out.media.caller_reoffer(&req.body),
                    Side::Agent => out.media.agent_sdp_for_reinvite(&req.body),
                };
                match answer {
                    Ok(sdp) => {
                        let mut resp = Response::from_request(req, 200, "OK", None);
                        resp.headers
                            .push(HeaderName::ContentType, "application/sdp");
                        resp.body = sdp;
                        rq.reply(ep, now, resp);
                    }
                    Err(e) => {
                        info!(call = key, "outbound re-offer refused: {e}");
                        rq.respond(ep, now, 488, "Not Acceptable Here");
                    }
                }
            }
            _ => rq.respond(ep, now, 200, "OK"),
        }
        true
    }

    /// The agent's phone rang too long.
    pub(super) fn outbound_agent_timeout(&mut self, ep: &mut Endpoint, now: Instant, key: u64) {
        info!(call = key, "outbound call: the agent did not answer");
        self.end_outbound(ep, now, key, OutResult::AgentNoAnswer, CdrHangup::System);
    }

    /// The customer's phone rang too long: CANCEL; the 487 ends the attempt as `no_answer`.
    pub(super) fn outbound_customer_timeout(&mut self, ep: &mut Endpoint, now: Instant, key: u64) {
        let Some(txn) = self
            .outbound
            .get(&key)
            .and_then(|o| o.customer.as_ref())
            .filter(|c| c.dialog.is_none())
            .map(|c| c.txn)
        else {
            return;
        };
        info!(
            call = key,
            "outbound call: no answer from the customer; cancelling"
        );
        if ep.cancel(now, txn).is_err() {
            self.end_outbound(ep, now, key, OutResult::NoAnswer, CdrHangup::System);
        }
    }

    /// Ends outbound call `key`: every leg still up is cancelled or hung up, the engine
    /// frees the agent, the record is written and counted.
    pub(super) fn end_outbound(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: u64,
        result: OutResult,
        side: CdrHangup,
    ) {
        let Some(mut out) = self.outbound.remove(&key) else {
            return;
        };
        let sip_call_id = out
            .customer
            .as_ref()
            .map_or_else(String::new, |c| c.sip_call_id.clone());
        self.by_engine.remove(&out.engine_call);
        self.timers.cancel_all(key);
        for leg in std::mem::take(&mut out.agent_legs) {
            let _ = ep.cancel(now, leg.txn);
            self.by_client_txn.remove(&leg.txn);
            self.by_sip_call_id.remove(&leg.sip_call_id);
            self.orphan(ep, now, leg.txn, leg.dest);
        }
        if let Some(mut c) = out.customer.take() {
            self.by_client_txn.remove(&c.txn);
            self.by_sip_call_id.remove(&c.sip_call_id);
            match c.dialog.as_mut() {
                Some(d) if side != CdrHangup::Caller => {
                    let bye = d.request(Method::Bye);
                    let dest = super::dialogs::next_hop(d, &c.dest);
                    let _ = ep.send_request(now, dest, bye);
                }
                Some(_) => {}
                None => {
                    if ep.cancel(now, c.txn).is_ok() {
                        self.orphan(ep, now, c.txn, c.dest);
                    }
                }
            }
        }
        let t = engine_time(now);
        let agent_answered = out.agent.is_some();
        if let Some(mut a) = out.agent.take() {
            self.by_client_txn.remove(&a.invite_txn);
            self.by_sip_call_id.remove(&a.sip_call_id);
            if side != CdrHangup::Agent {
                let bye = a.dialog.request(Method::Bye);
                let dest = super::dialogs::next_hop(&a.dialog, &a.dest);
                let _ = ep.send_request(now, dest, bye);
            }
        }
        let engine_result = if agent_answered {
            let engine_side = match side {
                CdrHangup::Caller => HangupSide::Caller,
                CdrHangup::Agent => HangupSide::Agent,
                CdrHangup::System => HangupSide::System,
            };
            self.engine.hangup(t, out.engine_call, engine_side)
        } else {
            self.engine.report(t, out.engine_call, Outcome::CallerGone)
        };
        if let Err(e) = engine_result {
            debug!(call = key, "engine: outbound call ended: {e}");
        }
        let stats = out.media.close();
        self.count_outbound(out.kind, result);
        let outcome = if result == OutResult::Answered {
            CdrOutcome::Answered
        } else {
            CdrOutcome::Failed
        };
        let route = if result == OutResult::Answered {
            out.route.clone()
        } else {
            format!("{} ({})", out.route, result.as_str())
        };
        info!(
            call = key,
            direction = "outbound",
            kind = out.kind.as_str(),
            result = result.as_str(),
            outcome = outcome.as_str(),
            hangup = side.as_str(),
            agent = %out.agent_id,
            number = %out.number,
            caller_rtp_in = stats.caller_in,
            caller_rtp_out = stats.caller_out,
            agent_rtp_in = stats.agent_in,
            agent_rtp_out = stats.agent_out,
            route = %route,
            "call ended"
        );
        let record = CallRecord {
            sip_call_id,
            trunk: self.trunks.get(out.trunk).map(|t| t.name.clone()),
            queue: out.queue.clone(),
            agent_id: agent_answered.then(|| out.agent_id.clone()),
            hangup_side: side,
            callback_id: out.callback_id.clone(),
            campaign: out.campaign.as_ref().map(|c| c.campaign_id.clone()),
            ..super::records::ended_after(
                now,
                out.record_id.clone(),
                Direction::Outbound,
                (out.started_at, out.started_at, out.answered_at),
                &stats,
                (
                    self.caller_id(Some(out.trunk)),
                    out.number.clone(),
                    out.number.clone(),
                ),
                (outcome, route),
            )
        };
        report_attempt(out.report.as_ref(), out.callback_id.as_deref(), result);
        if let Some(c) = &out.campaign {
            c.report(result.attempt());
        }
        if let Err(e) = self.records.send(record) {
            warn!(call = key, "outbound call record not accepted: {e}");
        }
    }
}

/// Tells the call-back dialer how an attempt ended.
fn report_attempt(
    to: Option<&tokio::sync::mpsc::UnboundedSender<AttemptReport>>,
    callback_id: Option<&str>,
    result: OutResult,
) {
    if let (Some(to), Some(id)) = (to, callback_id)
        && to
            .send(AttemptReport {
                callback_id: id.to_owned(),
                result: result.attempt(),
            })
            .is_err()
    {
        warn!(
            callback = id,
            "call-back result not delivered: the dialer has stopped"
        );
    }
}
