//! The caller's INVITE: admission of the trunk, identification of the caller, extensions
//! (100rel, session timers), media (offer or late offer), the answer into the queue or the
//! voice menu; CANCEL and ACK of that INVITE.

use std::time::Duration;

use switchboard_engine::ClientDirectory as _;
use switchboard_engine::{CallRequest, EngineError, Outcome, Purpose};
use switchboard_sip::dialog::Dialog;
use switchboard_sip::extensions::{self, MIN_SE_S, Refresher, SessionExpires};
use switchboard_sip::{Endpoint, Instant, Peer, ServerTxnKey, Transport};
use switchboard_sipmsg::{HeaderName, Host, NameAddr, Request, Response, Scheme};
use switchboard_store::Outcome as CdrOutcome;
use tracing::{info, warn};

use super::admission::Admission;
use super::records::Refused;
use super::state::{Call, CallerLeg, Ended, Phase, SessionTimer, Side, Timer};
use super::{Calls, Trunk, engine_time, respond};
use crate::http::events::LiveEvent;

/// What a refused INVITE is answered with, besides status and reason.
#[derive(Debug, Default)]
struct Refusal<'a> {
    headers: Vec<(HeaderName, String)>,
    trunk: Option<&'a Trunk>,
}

/// What a caller no agent can serve hears before Switchboard hangs up (PRODUCT §3).
const NO_AGENT_MESSAGE: &[&str] = &["all_agents_busy.wav", "goodbye.wav"];

/// How long [`NO_AGENT_MESSAGE`] plays (the two shipped prompts are 2.4 s each).
const NO_AGENT_MESSAGE_LEN: Duration = Duration::from_millis(5_000);

impl Calls {
    pub(super) fn new_call(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        txn: ServerTxnKey,
        req: Request,
        src: Peer,
    ) {
        let caller = caller_number(&req);
        let sip_call_id = req.call_id().unwrap_or_default().to_owned();
        if self.shutting_down {
            let retry = vec![(HeaderName::RetryAfter, "30".to_owned())];
            let r = Refusal {
                headers: retry,
                trunk: None,
            };
            self.reject(ep, now, txn, &req, (503, "Shutting Down"), r, &caller);
            return;
        }
        // RFC 3261 §8.2.2.2: the same request again on another path (a fork that came back).
        if self.is_merged(&req) {
            info!(call_id = %sip_call_id, "merged INVITE refused (482)");
            let tag = ep.new_tag();
            respond(ep, now, txn, &req, 482, "Loop Detected", Some(&tag));
            return;
        }
        // Calls come from trunks; a browser on SIP over WebSocket is an agent, and agents
        // place calls through click-to-call (their phone rings first, then the number).
        if matches!(src.transport, Transport::Ws | Transport::Wss) {
            info!(peer = %src.addr, call_id = %sip_call_id, dialed = req.uri.user.as_deref().unwrap_or_default(),
                "INVITE from a browser agent refused: agents place calls with POST /api/v1/calls");
            let warning = format!(
                "399 {} \"calls are taken from trunks only; agents place calls with click-to-call (POST /api/v1/calls)\"",
                self.domain
            );
            let r = Refusal {
                headers: vec![(HeaderName::Other("Warning".into()), warning)],
                trunk: None,
            };
            let status = (403, "Forbidden - Agents Place Calls Through Click-To-Call");
            self.reject(ep, now, txn, &req, status, r, &caller);
            return;
        }
        let trunk = match self.admit(now, &req, src.addr.ip()) {
            Admission::Trunk(t) => t,
            Admission::Challenge(value) => {
                info!(peer = %src.addr, call_id = %sip_call_id, "INVITE from outside the trunks' networks: digest challenge");
                let tag = ep.new_tag();
                let mut resp =
                    Response::from_request(&req, 407, "Proxy Authentication Required", Some(&tag));
                resp.headers.push(HeaderName::ProxyAuthenticate, value);
                let _ = ep.respond(now, txn, resp);
                return;
            }
            Admission::Refused(why) => {
                info!(peer = %src.addr, call_id = %sip_call_id, "INVITE refused: {why}");
                let r = Refusal::default();
                self.reject(ep, now, txn, &req, (403, "Forbidden"), r, &caller);
                return;
            }
        };
        let unsupported = extensions::unsupported(&req);
        if !unsupported.is_empty() {
            info!(call_id = %sip_call_id, require = ?unsupported, "INVITE requires an unsupported extension (420)");
            let r = Refusal {
                headers: vec![
                    (
                        HeaderName::Other("Unsupported".into()),
                        unsupported.join(", "),
                    ),
                    (HeaderName::Supported, extensions::SUPPORTED.to_owned()),
                ],
                trunk: Some(&trunk),
            };
            self.reject(ep, now, txn, &req, (420, "Bad Extension"), r, &caller);
            return;
        }
        let session_expires = SessionExpires::of(&req);
        if let Some(se) = session_expires
            && se.interval_s < MIN_SE_S
        {
            info!(call_id = %sip_call_id, interval_s = se.interval_s, "session interval below Min-SE (422)");
            let r = Refusal {
                headers: vec![(extensions::min_se_header(), MIN_SE_S.to_string())],
                trunk: Some(&trunk),
            };
            let status = (422, "Session Interval Too Small");
            self.reject(ep, now, txn, &req, status, r, &caller);
            return;
        }
        // Before any port is taken or any agent rung: refused while resources run short.
        if self.refuse_without_headroom(ep, now, txn, &req, &src) {
            return;
        }
        let dialed = req.uri.user.clone().unwrap_or_default();
        let client_number = self.numbers.normalize(&caller);
        let client = self.directory.lookup(&client_number);
        let client_card = client_card(client.as_ref());
        let did_purpose = trunk.dids.get(&dialed).copied();
        let purpose = did_purpose.unwrap_or(Purpose::Order);
        let class = self.engine.classify(client.as_ref(), purpose);

        let media = match self.media.open(&sip_call_id, &req.body) {
            Ok(m) => m,
            Err(e) => {
                warn!(call_id = %sip_call_id, "cannot set up media: {e}");
                let status = if e.is_offer_problem() {
                    (488, "Not Acceptable Here")
                } else {
                    (503, "Service Unavailable")
                };
                let r = Refusal {
                    headers: Vec::new(),
                    trunk: Some(&trunk),
                };
                self.reject(ep, now, txn, &req, status, r, &caller);
                return;
            }
        };
        // The purpose comes from the DID, else from the voice menu when one is configured.
        let menu = did_purpose.is_none() && self.ivr.as_ref().is_some_and(|m| m.enabled);
        // A chain that reaches nobody (PRODUCT §3): the call is answered, hears a short
        // message ("all agents are busy", "goodbye") and ends as `no_agent`.
        let mut no_route = false;
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
                Err(EngineError::NoRoute(_)) => {
                    info!(call_id = %sip_call_id, caller = %caller, class = class.as_str(), "no agent can serve this call: short message, then no_agent");
                    no_route = true;
                    None
                }
                Err(e) => {
                    info!(call_id = %sip_call_id, caller = %caller, class = class.as_str(), "call refused: routing failed: {e}");
                    let tag = ep.new_tag();
                    respond(ep, now, txn, &req, 480, "No Agent Available", Some(&tag));
                    self.write_refused(
                        now,
                        Refused {
                            trunk: Some(&trunk.name),
                            caller: &caller,
                            client_number: &client_number,
                            dialed: &dialed,
                            sip_call_id: &sip_call_id,
                            class: Some(class.as_str()),
                            purpose: Some(purpose),
                            outcome: CdrOutcome::NoAgent,
                            route: "no route: no step of the chain has an agent".to_owned(),
                        },
                    );
                    return;
                }
            }
        };
        // Ringing first (reliably when the caller requires 100rel), then the queue (or the
        // menu) answers: with our answer, or our offer when the INVITE had none.
        let tag = ep.new_tag();
        let (_, requires_100rel) = extensions::offers(&req, "100rel");
        let mut ringing = Response::from_request(&req, 180, "Ringing", Some(&tag));
        copy_record_route(&req, &mut ringing);
        if requires_100rel {
            ringing.headers.push(HeaderName::Require, "100rel");
            ringing.headers.push(extensions::rseq_header(), "1");
            ringing.headers.push(
                HeaderName::Contact,
                format!("<{}>", ep.local_uri_for(Some("switchboard"), &src)),
            );
        }
        if let Err(e) = ep.respond(now, txn, ringing) {
            warn!(call_id = %sip_call_id, "180 not sent: {e}");
        }
        let mut ok = Response::from_request(&req, 200, "OK", Some(&tag));
        copy_record_route(&req, &mut ok);
        ok.headers.push(
            HeaderName::Contact,
            format!("<{}>", ep.local_uri_for(Some("switchboard"), &src)),
        );
        ok.headers.push(HeaderName::Allow, switchboard_sip::ALLOW);
        ok.headers
            .push(HeaderName::Supported, extensions::SUPPORTED);
        let session_timer = session_expires.map(|se| negotiate_timer(&req, se, &mut ok));
        ok.headers.push(HeaderName::ContentType, "application/sdp");
        ok.body = media.caller_sdp();
        let dialog = match Dialog::from_uas(&req, &ok) {
            Ok(d) => d,
            Err(e) => {
                warn!(call_id = %sip_call_id, "INVITE without a usable Contact: {e}");
                if let Some(ec) = engine_call {
                    let _ = self
                        .engine
                        .report(engine_time(now), ec, Outcome::CallerGone);
                }
                let tag = ep.new_tag();
                respond(
                    ep,
                    now,
                    txn,
                    &req,
                    400,
                    "Bad Request - Missing Contact",
                    Some(&tag),
                );
                return;
            }
        };
        if let Err(e) = ep.respond(now, txn, ok) {
            warn!(call_id = %sip_call_id, "200 not sent: {e}");
        }
        let key = self.next_key;
        self.next_key = self.next_key.wrapping_add(1);
        let mut media = media;
        if no_route {
            media.play_prompts(NO_AGENT_MESSAGE);
        } else if menu {
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
            client_card,
            class: class.as_str().to_owned(),
            purpose,
            caller_leg: CallerLeg {
                invite_txn: txn,
                dialog,
                peer: src,
                sip_call_id: sip_call_id.clone(),
                held: false,
                session_timer,
                allows_update: allows(&req, "UPDATE"),
                our_reinvite: None,
                rseq: u32::from(requires_100rel),
            },
            phase: if menu {
                Phase::Menu
            } else {
                Phase::Queued(Default::default())
            },
            route: if no_route {
                "no route: no step of the chain has an agent".to_owned()
            } else {
                String::new()
            },
            queue: None,
            started_at: now,
            queued_at: now,
            answered_at: None,
            media,
            rtp_since: now,
            callback_offered: false,
            callback_id: None,
        };
        if let Some(ec) = engine_call {
            self.by_engine.insert(ec, key);
        }
        self.by_invite.insert(txn, key);
        self.by_sip_call_id.insert(sip_call_id, (key, Side::Caller));
        self.calls.insert(key, call);
        self.journal(now, key);
        if no_route {
            self.timers
                .insert((now + NO_AGENT_MESSAGE_LEN, Timer::NoAgentGoodbye { key }));
        } else if !menu {
            self.schedule_announcement(now, key);
            self.schedule_callback_offer(now, key);
        }
        if let Some(timeout) = self.rtp_timeout {
            self.timers.insert((now + timeout, Timer::RtpCheck { key }));
        }
        if let Some(st) = session_timer {
            info!(
                call = key,
                interval_s = st.interval_s,
                we_refresh = st.we_refresh,
                "session timer"
            );
            self.arm_session_timer(now, key);
        }
    }

    /// Refuses a new INVITE before any dialog exists, and records the refusal (PRODUCT §4:
    /// a call refused before a dialog exists is recorded as `rejected`).
    #[allow(clippy::too_many_arguments)]
    fn reject(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        txn: ServerTxnKey,
        req: &Request,
        (status, reason): (u16, &str),
        refusal: Refusal<'_>,
        caller: &str,
    ) {
        let tag = ep.new_tag();
        let mut resp = Response::from_request(req, status, reason, Some(&tag));
        for (name, value) in refusal.headers {
            resp.headers.push(name, value);
        }
        if let Err(e) = ep.respond(now, txn, resp) {
            warn!(status, "refusal not sent: {e}");
        }
        self.write_refused(
            now,
            Refused {
                trunk: refusal.trunk.map(|t| t.name.as_str()),
                caller,
                client_number: &self.numbers.normalize(caller),
                dialed: req.uri.user.as_deref().unwrap_or_default(),
                sip_call_id: req.call_id().unwrap_or_default(),
                class: None,
                purpose: None,
                outcome: CdrOutcome::Rejected,
                route: format!("rejected: {status} {reason}"),
            },
        );
    }

    /// An INVITE without a To tag whose Call-ID and From tag belong to a call already in
    /// progress, on another transaction: a merged request (RFC 3261 §8.2.2.2).
    fn is_merged(&self, req: &Request) -> bool {
        let from_tag = req.from_hdr().ok().and_then(|f| f.tag().map(str::to_owned));
        let Some(&(key, Side::Caller)) = req.call_id().and_then(|c| self.by_sip_call_id.get(c))
        else {
            return false;
        };
        self.calls
            .get(&key)
            .is_some_and(|c| Some(&c.caller_leg.dialog.remote_tag) == from_tag.as_ref())
    }

    /// The caller cancelled the INVITE before the queue answered it.
    pub(super) fn on_cancel(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        invite_txn: ServerTxnKey,
    ) -> bool {
        let Some(&key) = self.by_invite.get(&invite_txn) else {
            return false;
        };
        if let Some(invite) = ep.server_request(invite_txn).cloned() {
            let tag = self
                .calls
                .get(&key)
                .map(|c| c.caller_leg.dialog.local_tag.clone());
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

    /// The ACK for a 2xx of ours arrived. After an offer of ours (late offer, or a
    /// re-INVITE without SDP) it carries the caller's answer: the caller leg is pointed at
    /// it. An ACK without the answer it owes ends the call (RFC 3264 leaves no other way).
    pub(super) fn on_ack(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        invite_txn: Option<ServerTxnKey>,
        ack: &Request,
    ) {
        let key = match invite_txn.and_then(|t| self.by_invite.get(&t)) {
            Some(&key) => key,
            // The ACK of a re-INVITE: found by its dialog.
            None => match ack.call_id().and_then(|c| self.by_sip_call_id.get(c)) {
                Some(&(key, Side::Caller)) => key,
                Some(&(key, Side::Agent)) => return self.on_agent_ack(ep, now, key, ack),
                None => return,
            },
        };
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if !call.caller_leg.dialog.matches(ack) || !call.media.awaits_answer() {
            return;
        }
        if ack.body.is_empty() {
            warn!(
                call = key,
                "ACK without the SDP answer our offer needs: ending the call"
            );
            self.end_call(ep, now, key, Ended::Failed);
            return;
        }
        match call.media.caller_answered(&ack.body) {
            Ok(hold) => {
                info!(call = key, "caller answered our offer in the ACK");
                super::dialogs::apply_hold(call, Side::Caller, hold, now, key);
            }
            Err(e) => {
                warn!(
                    call = key,
                    "unusable SDP answer in the ACK ({e}): ending the call"
                );
                self.end_call(ep, now, key, Ended::Failed);
            }
        }
    }

    /// The ACK for our 2xx never came: the caller's side is gone.
    pub(super) fn on_ack_timeout(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        invite_txn: ServerTxnKey,
    ) {
        if let Some(&key) = self.by_invite.get(&invite_txn) {
            warn!(
                call = key,
                "no ACK for the 200 to the caller: ending the call"
            );
            self.end_call(ep, now, key, Ended::Failed);
        }
    }
}

/// The calling number: the user of P-Asserted-Identity (a `sip:` URI's user, a `tel:` URI's
/// number) when the trunk sends one, else From's user.
pub(super) fn caller_number(req: &Request) -> String {
    let number = |value: &str| {
        let uri = NameAddr::parse(value).ok()?.uri;
        match (&uri.scheme, uri.host) {
            (Scheme::Tel, Host::Domain(n)) => Some(n),
            _ => uri.user,
        }
    };
    let pai = req
        .headers
        .get_all(&HeaderName::PAssertedIdentity)
        .flat_map(|v| v.split(','))
        .find_map(|v| number(v.trim()));
    pai.or_else(|| req.headers.get(&HeaderName::From).and_then(number))
        .unwrap_or_else(|| "anonymous".to_owned())
}

/// Record-Route of a dialog-creating request goes back in every 18x/2xx (RFC 3261 §12.1.1).
fn copy_record_route(req: &Request, resp: &mut Response) {
    for rr in req.headers.get_all(&HeaderName::RecordRoute) {
        resp.headers.push(HeaderName::RecordRoute, rr);
    }
}

/// Whether the request's Allow lists `method`.
pub(super) fn allows(req: &Request, method: &str) -> bool {
    req.headers
        .list(&HeaderName::Allow)
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method))
}

/// RFC 4028 §9: the 2xx to a request with Session-Expires keeps its interval (at least
/// Min-SE, checked before) and names the refresher: the one the caller chose, else the
/// caller when it supports `timer`, else us. `Require: timer` when the caller supports it.
pub(super) fn negotiate_timer(
    req: &Request,
    se: SessionExpires,
    ok: &mut Response,
) -> SessionTimer {
    let (caller_supports, _) = extensions::offers(req, "timer");
    let refresher = match (se.refresher, caller_supports) {
        (Some(r), _) => r,
        (None, true) => Refresher::Uac,
        (None, false) => Refresher::Uas,
    };
    let answer = SessionExpires {
        interval_s: se.interval_s,
        refresher: Some(refresher),
    };
    ok.headers
        .push(extensions::session_expires_header(), answer.value());
    if caller_supports {
        ok.headers.push(HeaderName::Require, "timer");
    }
    SessionTimer {
        interval_s: se.interval_s,
        we_refresh: refresher == Refresher::Uas,
    }
}

/// The `X-Switchboard-Client` value of agent INVITEs, the screen pop of phones that show
/// it (the `/agent` page does): `name="…"; type=…; manager=…; debt=yes|no`, or `type=new`
/// for a caller the directory does not know.
fn client_card(client: Option<&switchboard_engine::Client>) -> String {
    let Some(c) = client else {
        return "type=new".to_owned();
    };
    let name: String = c
        .name
        .chars()
        .filter(|ch| !matches!(ch, '"' | '\\' | '\r' | '\n'))
        .collect();
    let manager = c.manager.as_deref().unwrap_or("-");
    let debt = if c.overdue_debt > 0 { "yes" } else { "no" };
    format!(
        "name=\"{name}\"; type={}; manager={manager}; debt={debt}",
        c.client_type.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::client_card;
    use switchboard_engine::{Client, ClientType};

    #[test]
    fn the_client_card_names_the_client_and_flags_debt() {
        assert_eq!(client_card(None), "type=new");
        let client = Client {
            number: "+385100".into(),
            name: "Shop \"Corner\"\r\nX-Evil: 1".into(),
            client_type: ClientType::Key,
            manager: Some("ana".into()),
            region: None,
            overdue_debt: 5,
        };
        assert_eq!(
            client_card(Some(&client)),
            "name=\"Shop CornerX-Evil: 1\"; type=key; manager=ana; debt=yes"
        );
    }
}
