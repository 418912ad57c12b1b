//! Requests inside a call's dialogs (RFC 3261 §12): matched on Call-ID and both tags (else
//! 481); BYE, re-INVITE and UPDATE (RFC 3264 offer/answer re-pointing the relay, hold
//! answered `recvonly`/`inactive`, a re-INVITE without SDP answered with our offer, glare
//! answered 491, target refresh), PRACK (RFC 3262), INFO DTMF, REFER; session timers (RFC
//! 4028) of the caller's dialog.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use switchboard_sip::dialog::Dialog;
use switchboard_sip::extensions::{self, MIN_SE_S, SessionExpires};
use switchboard_sip::{Endpoint, Instant, Peer, ServerTxnKey};
use switchboard_sipmsg::{ContactValue, HeaderName, Host, Method, NameAddr, Request, Response};
use tracing::{debug, info, warn};

use super::legs::CallResponse;
use super::state::{Call, Ended, Phase, Side, Timer};
use super::{Calls, respond};

impl Calls {
    /// A request that is not the endpoint's business and not a new call's INVITE. Returns
    /// false when call control has nothing to do with it (the caller answers it generically
    /// with 481).
    pub(super) fn on_request(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        txn: ServerTxnKey,
        req: &Request,
        src: &Peer,
    ) -> bool {
        if !in_dialog(req) {
            return false;
        }
        let Some(&(key, side)) = req.call_id().and_then(|c| self.by_sip_call_id.get(c)) else {
            return false;
        };
        let rq = InDialog {
            txn,
            req,
            key,
            side,
        };
        if self.outbound.contains_key(&key) {
            return self.outbound_request(ep, now, rq);
        }
        // RFC 3261 §12.2.2: the Call-ID alone is not a dialog; both tags must match too.
        let Some(dialog) = self.calls.get_mut(&key).and_then(|c| dialog_of(c, side)) else {
            return false;
        };
        if !rq.enter(dialog) {
            info!(call = key, method = %req.method, peer = %src.addr, "in-dialog request with foreign tags: 481");
            return false;
        }
        // Target refresh (§12.2.2): a re-INVITE or UPDATE may move the peer's Contact.
        if matches!(req.method, Method::Invite | Method::Update)
            && let Some(target) = first_contact(req)
        {
            dialog.remote_target = target;
        }
        match req.method {
            Method::Bye => {
                rq.respond(ep, now, 200, "OK");
                self.end_call(ep, now, key, side.hung_up());
            }
            Method::Invite | Method::Update => self.offer_in_dialog(ep, now, rq),
            Method::Prack => {
                // RFC 3262 §3: a PRACK must name the RSeq of a reliable provisional response
                // we sent; ours (the 180) carries no SDP, so confirming it is all there is.
                let rack = req
                    .headers
                    .get(&HeaderName::Other("RAck".into()))
                    .and_then(|v| v.split_whitespace().next()?.parse::<u32>().ok());
                let sent = self.calls.get(&key).map_or(0, |c| c.caller_leg.rseq);
                if side == Side::Caller && sent > 0 && rack == Some(sent) {
                    rq.respond(ep, now, 200, "OK");
                } else {
                    rq.respond(ep, now, 481, "No Matching Reliable Response");
                }
            }
            Method::Refer if side == Side::Agent => self.refer(ep, now, rq),
            Method::Info if side == Side::Caller => {
                rq.respond(ep, now, 200, "OK");
                if let Some(digit) = info_dtmf(req) {
                    self.on_digit(ep, now, key, digit);
                }
            }
            _ => {
                // NOTIFY, MESSAGE and the like inside a call: accepted, no action.
                rq.respond(ep, now, 200, "OK");
            }
        }
        true
    }

    /// A re-INVITE or UPDATE from either side: the offer (if any) re-points that leg of the
    /// relay and gets our answer; a re-INVITE without SDP gets our offer (the answer comes in
    /// the ACK); a session-timer refresh re-arms the timer.
    fn offer_in_dialog(&mut self, ep: &mut Endpoint, now: Instant, rq: InDialog<'_>) {
        let InDialog { req, key, side, .. } = rq;
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        // Glare (RFC 3261 §14.2): our own re-INVITE to the caller is still pending.
        if side == Side::Caller
            && req.method == Method::Invite
            && call.caller_leg.our_reinvite.is_some()
        {
            let mut resp = Response::from_request(req, 491, "Request Pending", None);
            resp.headers.push(HeaderName::RetryAfter, "1");
            rq.reply(ep, now, resp);
            return;
        }
        let mut ok = Response::from_request(req, 200, "OK", None);
        ok.headers.push(
            HeaderName::Contact,
            format!(
                "<{}>",
                ep.local_uri_for(Some("switchboard"), &call.caller_leg.peer)
            ),
        );
        ok.headers
            .push(HeaderName::Supported, extensions::SUPPORTED);
        let sdp = match side {
            Side::Caller => caller_offer(call, now, rq),
            Side::Agent => agent_offer(call, now, rq),
        };
        let sdp = match sdp {
            Ok(sdp) => sdp,
            Err(e) => {
                warn!(call = key, method = %req.method, "offer refused: {e}");
                rq.respond(ep, now, 488, "Not Acceptable Here");
                return;
            }
        };
        let mut refreshed = false;
        if side == Side::Caller
            && let Some(st) = call.caller_leg.session_timer.as_mut()
        {
            let se = SessionExpires::of(req);
            if let Some(se) = se
                && se.interval_s < MIN_SE_S
            {
                let mut resp = Response::from_request(req, 422, "Session Interval Too Small", None);
                resp.headers
                    .push(extensions::min_se_header(), MIN_SE_S.to_string());
                rq.reply(ep, now, resp);
                return;
            }
            let timer = super::inbound::negotiate_timer(
                req,
                se.unwrap_or(SessionExpires {
                    interval_s: st.interval_s,
                    refresher: None,
                }),
                &mut ok,
            );
            *st = timer;
            refreshed = true;
        }
        if let Some(body) = sdp {
            ok.headers.push(HeaderName::ContentType, "application/sdp");
            ok.body = body;
        }
        rq.reply(ep, now, ok);
        if refreshed {
            debug!(call = key, "session refreshed by the caller");
            self.arm_session_timer(now, key);
        }
    }

    /// The ACK of the bridged agent's re-INVITE. After a re-INVITE without SDP (our offer
    /// in the 200) it carries the agent's answer: the agent leg of the relay is re-pointed
    /// at it (address, port, codec) and its direction applied (hold or resume). An ACK
    /// without the answer it owes ends the call, as on the caller's side.
    pub(super) fn on_agent_ack(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: u64,
        ack: &Request,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Phase::Talking(b) = &call.phase else {
            return;
        };
        if !b.dialog.matches(ack) || !call.media.agent_awaits_answer() {
            return;
        }
        let answered = if ack.body.is_empty() {
            Err("no SDP".to_owned())
        } else {
            call.media.agent_answered(&ack.body)
        };
        match answered {
            Ok(hold) => {
                info!(
                    call = key,
                    "agent answered our offer in the ACK: relay re-pointed"
                );
                apply_hold(call, Side::Agent, hold, now, key);
            }
            Err(e) => {
                warn!(
                    call = key,
                    "the agent's ACK lacks a usable answer to our offer ({e}): ending the call"
                );
                self.end_call(ep, now, key, Ended::Failed);
            }
        }
    }

    /// Arms (or re-arms) call `key`'s session timer: a refresh of ours at half the
    /// interval when we are the refresher, and the expiry (RFC 4028 §10: the interval less
    /// a third of it, at most 32 s) either way.
    pub(super) fn arm_session_timer(&mut self, now: Instant, key: u64) {
        self.cancel_timers(key, |t| {
            matches!(
                t,
                Timer::SessionRefresh { .. } | Timer::SessionExpired { .. }
            )
        });
        let Some(st) = self
            .calls
            .get(&key)
            .and_then(|c| c.caller_leg.session_timer)
        else {
            return;
        };
        let interval = Duration::from_secs(u64::from(st.interval_s));
        if st.we_refresh {
            self.timers
                .insert((now + interval / 2, Timer::SessionRefresh { key }));
        } else {
            let margin = (interval / 3).min(Duration::from_secs(32));
            self.timers
                .insert((now + (interval - margin), Timer::SessionExpired { key }));
        }
    }

    /// Switchboard refreshes call `key`'s session (refresher=uas): UPDATE without SDP when
    /// the caller allows it, else a re-INVITE with our current SDP.
    pub(super) fn refresh_session(&mut self, ep: &mut Endpoint, now: Instant, key: u64) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(st) = call.caller_leg.session_timer else {
            return;
        };
        let leg = &mut call.caller_leg;
        let method = if leg.allows_update {
            Method::Update
        } else {
            Method::Invite
        };
        let mut req = leg.dialog.request(method.clone());
        req.headers.push(
            HeaderName::Contact,
            format!("<{}>", ep.local_uri_for(Some("switchboard"), &leg.peer)),
        );
        req.headers.push(
            extensions::session_expires_header(),
            format!("{};refresher=uas", st.interval_s),
        );
        req.headers
            .push(HeaderName::Supported, extensions::SUPPORTED);
        if method == Method::Invite {
            req.headers.push(HeaderName::ContentType, "application/sdp");
            req.body = call.media.caller_sdp();
        }
        let dest = next_hop(&leg.dialog, &leg.peer);
        let txn = ep.send_request(now, dest, req);
        if method == Method::Invite {
            leg.our_reinvite = Some(txn);
        }
        self.by_client_txn.insert(txn, key);
        debug!(call = key, %method, "session refresh sent");
        // Until its answer: the session ends if no refresh succeeds in time.
        let interval = Duration::from_secs(u64::from(st.interval_s));
        let margin = (interval / 3).min(Duration::from_secs(32));
        self.timers.insert((
            now + (interval / 2).saturating_sub(margin),
            Timer::SessionExpired { key },
        ));
    }

    /// Call `key`'s session timer ran out (RFC 4028 §10): BYE both sides.
    pub(super) fn session_expired(&mut self, ep: &mut Endpoint, now: Instant, key: u64) {
        let why = "session timer expired without a refresh: ending the call";
        self.end_call_warning(ep, now, key, Ended::SessionExpired, why);
    }

    /// A response to a request of ours in call `key` that is not an agent leg's INVITE: the
    /// session refresh (2xx re-arms the timer; a 2xx to a re-INVITE is ACKed), BYE, NOTIFY.
    pub(super) fn on_other_response(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        r: CallResponse<'_>,
    ) {
        let CallResponse { key, txn, resp } = r;
        self.by_client_txn.remove(&txn);
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let reinvite = call.caller_leg.our_reinvite == Some(txn);
        if reinvite {
            call.caller_leg.our_reinvite = None;
            if (200..300).contains(&resp.status)
                && let Some(invite) = ep.client_request(txn).cloned()
                && let Ok(ack) = switchboard_sip::dialog::ack_for_2xx(&invite, resp)
            {
                let dest = next_hop(&call.caller_leg.dialog, &call.caller_leg.peer);
                ep.send_ack(now, dest, ack);
            }
        }
        match resp.status {
            200..=299 => self.arm_session_timer(now, key),
            408 | 481 => {
                warn!(
                    call = key,
                    status = resp.status,
                    "session refresh: the caller's dialog is gone"
                );
                self.end_call(ep, now, key, Ended::SessionExpired);
            }
            status => info!(
                call = key,
                status, "session refresh refused; the session expires unless the caller refreshes"
            ),
        }
    }
}

/// A request inside one of a call's dialogs, with what it is answered on and belongs to:
/// its server transaction, the call and the side whose dialog it came in.
#[derive(Clone, Copy)]
pub(super) struct InDialog<'a> {
    pub txn: ServerTxnKey,
    pub req: &'a Request,
    pub key: u64,
    pub side: Side,
}

impl InDialog<'_> {
    /// Takes the request into `dialog` when it is that dialog's (RFC 3261 §12.2.2: Call-ID
    /// and both tags match): its CSeq becomes the remote sequence number. False: it is not.
    pub fn enter(&self, dialog: &mut Dialog) -> bool {
        if !dialog.matches(self.req) {
            return false;
        }
        if let Ok(cseq) = self.req.cseq() {
            dialog.remote_seq = Some(cseq.seq);
        }
        true
    }

    /// Answers the request with a bare `status` and `reason`.
    pub fn respond(&self, ep: &mut Endpoint, now: Instant, status: u16, reason: &str) {
        respond(ep, now, self.txn, self.req, status, reason, None);
    }

    /// Answers the request with `resp`, built from it.
    pub fn reply(&self, ep: &mut Endpoint, now: Instant, resp: Response) {
        if let Err(e) = ep.respond(now, self.txn, resp) {
            debug!(call = self.key, "response not sent: {e}");
        }
    }
}

/// Whether `req` names a dialog (its To has a tag, RFC 3261 §12.2): an INVITE without one
/// starts a new call.
pub(super) fn in_dialog(req: &Request) -> bool {
    req.to_hdr().ok().is_some_and(|t| t.tag().is_some())
}

/// The dialog of `call` on `side`, once it exists (the agent's only while talking).
fn dialog_of(call: &mut Call, side: Side) -> Option<&mut Dialog> {
    match side {
        Side::Caller => Some(&mut call.caller_leg.dialog),
        Side::Agent => match &mut call.phase {
            Phase::Talking(b) => Some(&mut b.dialog),
            _ => None,
        },
    }
}

/// Our answer to the caller's offer (or our offer when the request has no SDP: a
/// re-INVITE; an UPDATE without SDP is a refresh and gets none). `Ok(None)`: no SDP.
fn caller_offer(
    call: &mut Call,
    now: Instant,
    rq: InDialog<'_>,
) -> Result<Option<Vec<u8>>, String> {
    let InDialog { req, key, .. } = rq;
    if req.body.is_empty() {
        return Ok((req.method == Method::Invite).then(|| call.media.caller_new_offer()));
    }
    let hold = crate::calls::media::is_hold_offer(&req.body);
    let answer = call.media.caller_reoffer(&req.body)?;
    if !apply_hold(call, Side::Caller, hold, now, key) {
        info!(call = key, "caller's media moved: relay re-pointed");
    }
    Ok(Some(answer))
}

/// Our answer to the agent's offer (hold / resume / a new address).
fn agent_offer(call: &mut Call, now: Instant, rq: InDialog<'_>) -> Result<Option<Vec<u8>>, String> {
    let InDialog { req, key, .. } = rq;
    if req.body.is_empty() {
        // A re-INVITE without SDP gets our offer (a browser's from its WebRTC leg); the
        // answer comes in the ACK. An UPDATE without SDP is a refresh.
        if req.method != Method::Invite {
            return Ok(None);
        }
        return call.media.agent_new_offer().map(Some);
    }
    // A browser's re-offer goes to its WebRTC leg first: an offer it cannot take is refused
    // before the hold state changes.
    let answer = call.media.agent_sdp_for_reinvite(&req.body)?;
    let hold = crate::calls::media::is_hold_offer(&req.body);
    apply_hold(call, Side::Agent, hold, now, key);
    Ok(Some(answer))
}

/// `side` holds the call (`hold`) or resumed it: recorded on its leg and applied by the
/// relay — nothing is sent to a party who holds, the other party hears our music, nothing
/// is relayed either way meanwhile. Returns whether the hold state changed.
pub(super) fn apply_hold(call: &mut Call, side: Side, hold: bool, now: Instant, key: u64) -> bool {
    let (held, who, whom) = match side {
        Side::Caller => (&mut call.caller_leg.held, "caller", "the call"),
        Side::Agent => match &mut call.phase {
            Phase::Talking(b) => (&mut b.held, "agent", "the caller"),
            _ => return false,
        },
    };
    if !set_hold(held, hold, &mut call.rtp_since, now, key, who, whom) {
        return false;
    }
    match side {
        Side::Caller => call.media.caller_hold(hold),
        Side::Agent => call.media.hold(hold),
    }
    true
}

/// Records a hold or resume by `who` (RTP silence counts from a resume at the earliest).
/// Returns whether the hold state changed.
fn set_hold(
    held: &mut bool,
    hold: bool,
    rtp_since: &mut Instant,
    now: Instant,
    key: u64,
    who: &str,
    whom: &str,
) -> bool {
    if *held == hold {
        return false;
    }
    *held = hold;
    *rtp_since = now;
    let verb = if hold { "holds" } else { "resumes" };
    info!(call = key, hold, "{who} {verb} {whom}");
    true
}

/// The first Contact URI of a request.
fn first_contact(req: &Request) -> Option<switchboard_sipmsg::Uri> {
    req.contacts().ok()?.into_iter().find_map(|c| match c {
        ContactValue::Addr(a) => Some(a.uri),
        ContactValue::Star => None,
    })
}

/// The digit of a SIP INFO DTMF body: `application/dtmf-relay` (`Signal=5`) or
/// `application/dtmf` (`5`).
fn info_dtmf(req: &Request) -> Option<char> {
    let ctype = req
        .headers
        .get(&HeaderName::ContentType)?
        .to_ascii_lowercase();
    let body = std::str::from_utf8(&req.body).ok()?;
    let raw = if ctype.starts_with("application/dtmf-relay") {
        body.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?
    } else if ctype.starts_with("application/dtmf") {
        body.trim()
    } else {
        return None;
    };
    let mut chars = raw.chars();
    let digit = chars.next()?;
    (chars.next().is_none() && matches!(digit, '0'..='9' | '*' | '#' | 'A'..='D')).then_some(digit)
}

/// Where an in-dialog request of ours goes first (RFC 3261 §12.2.1.1 with loose routing):
/// the first hop of the route set when it names an address, else the peer the dialog's
/// requests came from (a caller behind NAT, or the proxy that forwarded them).
pub(super) fn next_hop(dialog: &Dialog, fallback: &Peer) -> Peer {
    let hop = dialog
        .route_set
        .first()
        .and_then(|r| NameAddr::parse(r).ok())
        .and_then(|n| {
            let ip = match n.uri.host {
                Host::V4(ip) => IpAddr::V4(ip),
                Host::V6(ip) => IpAddr::V6(ip),
                Host::Domain(_) => return None,
            };
            Some(SocketAddr::new(
                ip,
                n.uri.port.unwrap_or(fallback.transport.default_port()),
            ))
        });
    match hop {
        Some(addr) if addr != fallback.addr => Peer {
            transport: fallback.transport,
            addr,
            conn: None,
            // Over UDP, from the socket the dialog's requests came in on.
            local: fallback.local,
        },
        _ => fallback.clone(),
    }
}
