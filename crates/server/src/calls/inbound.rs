//! The caller's INVITE: admission of the trunk, identification of the caller, media, the
//! answer into the queue or the voice menu; CANCEL and ACK of that INVITE.

use std::net::IpAddr;

use switchboard_engine::ClientDirectory as _;
use switchboard_engine::{CallRequest, EngineError, Outcome, Purpose};
use switchboard_sip::dialog::Dialog;
use switchboard_sip::{Endpoint, Instant, Peer, ServerTxnKey};
use switchboard_sipmsg::{HeaderName, NameAddr, Request, Response};
use tracing::{info, warn};

use super::records::Rejected;
use super::state::{Call, CallerLeg, Ended, Phase, Side, Timer};
use super::{Calls, Trunk, engine_time, respond};
use crate::events::LiveEvent;

impl Calls {
    pub(super) fn new_call(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        txn: ServerTxnKey,
        req: Request,
        src: Peer,
    ) {
        if self.shutting_down {
            let tag = ep.new_tag();
            let mut resp = Response::from_request(&req, 503, "Shutting Down", Some(&tag));
            resp.headers.push(HeaderName::RetryAfter, "30");
            let _ = ep.respond(now, txn, resp);
            return;
        }
        let caller = caller_number(&req);
        let dialed = req.uri.user.clone().unwrap_or_default();
        let sip_call_id = req.call_id().unwrap_or_default().to_owned();
        let Some(trunk) = self.trunk_for(src.addr.ip()).cloned() else {
            info!(peer = %src.addr, call_id = %sip_call_id, "INVITE from an address of no trunk refused");
            self.reject(ep, now, txn, &req, 403, "Forbidden", None, &caller);
            return;
        };
        let client_number = self.numbers.normalize(&caller);
        let client = self.directory.lookup(&client_number);
        let did_purpose = trunk.dids.get(&dialed).copied();
        let purpose = did_purpose.unwrap_or(Purpose::Order);
        let class = self.engine.classify(client.as_ref(), purpose);

        let media = match self.media.open(&sip_call_id, &req.body) {
            Ok(m) => m,
            Err(e) => {
                warn!(call_id = %sip_call_id, "cannot set up media: {e}");
                let (status, reason) = if e.is_offer_problem() {
                    (488, "Not Acceptable Here")
                } else {
                    (503, "Service Unavailable")
                };
                self.reject(ep, now, txn, &req, status, reason, Some(&trunk), &caller);
                return;
            }
        };
        // The purpose comes from the DID, else from the voice menu when one is configured.
        let menu = did_purpose.is_none() && self.ivr.as_ref().is_some_and(|m| m.enabled);
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
                    let tag = ep.new_tag();
                    respond(ep, now, txn, &req, 480, "No Agent Available", Some(&tag));
                    self.write_unrouted_cdr(
                        now,
                        super::records::Unrouted {
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
        let ringing = Response::from_request(&req, 180, "Ringing", Some(&tag));
        if let Err(e) = ep.respond(now, txn, ringing) {
            warn!(call_id = %sip_call_id, "180 not sent: {e}");
        }
        let mut ok = Response::from_request(&req, 200, "OK", Some(&tag));
        ok.headers.push(
            HeaderName::Contact,
            format!("<{}>", ep.local_uri(Some("switchboard"), src.transport)),
        );
        ok.headers.push(HeaderName::Allow, switchboard_sip::ALLOW);
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
            caller_leg: CallerLeg {
                invite_txn: txn,
                dialog,
                peer: src,
                sip_call_id: sip_call_id.clone(),
                held: false,
            },
            phase: if menu {
                Phase::Menu
            } else {
                Phase::Queued(Default::default())
            },
            route: String::new(),
            queue: None,
            started_at: now,
            queued_at: now,
            answered_at: None,
            media,
            rtp_since: now,
        };
        if let Some(ec) = engine_call {
            self.by_engine.insert(ec, key);
        }
        self.by_invite.insert(txn, key);
        self.by_sip_call_id.insert(sip_call_id, (key, Side::Caller));
        self.calls.insert(key, call);
        if !menu {
            self.schedule_announcement(now, key);
        }
        if let Some(timeout) = self.rtp_timeout {
            self.timers.insert((now + timeout, Timer::RtpCheck { key }));
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
        status: u16,
        reason: &str,
        trunk: Option<&Trunk>,
        caller: &str,
    ) {
        let tag = ep.new_tag();
        respond(ep, now, txn, req, status, reason, Some(&tag));
        self.write_rejected(
            now,
            Rejected {
                trunk: trunk.map(|t| t.name.as_str()),
                caller,
                client_number: &self.numbers.normalize(caller),
                dialed: req.uri.user.as_deref().unwrap_or_default(),
                sip_call_id: req.call_id().unwrap_or_default(),
                why: format!("{status} {reason}"),
            },
        );
    }

    fn trunk_for(&self, ip: IpAddr) -> Option<&Trunk> {
        self.trunks
            .iter()
            .find(|t| t.allow.iter().any(|net| net.contains(&ip)))
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

    /// The ACK for a 2xx of ours arrived.
    pub(super) fn on_ack(
        &mut self,
        _ep: &mut Endpoint,
        _now: Instant,
        invite_txn: Option<ServerTxnKey>,
        _ack: &Request,
    ) {
        let _ = invite_txn;
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

/// The calling number: P-Asserted-Identity's user when present, else From's.
pub(super) fn caller_number(req: &Request) -> String {
    let pai = req
        .headers
        .get(&HeaderName::PAssertedIdentity)
        .and_then(|v| NameAddr::parse(v).ok())
        .and_then(|n| n.uri.user);
    pai.or_else(|| req.from_hdr().ok().and_then(|f| f.uri.user))
        .unwrap_or_else(|| "anonymous".to_owned())
}
