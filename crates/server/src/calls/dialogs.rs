//! Requests inside a call's dialogs (RFC 3261 §12): BYE, re-INVITE and UPDATE (offer/answer,
//! hold), REFER, INFO; session timers (RFC 4028) and the RTP inactivity check.

use std::net::{IpAddr, SocketAddr};

use switchboard_sip::dialog::Dialog;
use switchboard_sip::{ClientTxnKey, Endpoint, Instant, Peer, ServerTxnKey, Transport};
use switchboard_sipmsg::{HeaderName, Host, Method, NameAddr, Request, Response};
use tracing::info;

use super::state::{Ended, Phase, Side};
use super::{Calls, respond};

impl Calls {
    /// A request that is not the endpoint's business. Returns false when call control has
    /// nothing to do with it (the caller answers it generically).
    pub(super) fn on_request(
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
                if !req.body.is_empty() && call.caller_leg.held != hold {
                    call.caller_leg.held = hold;
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
                if let Phase::Talking(b) = &mut call.phase
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

    /// A response to a request of ours that is not an agent leg's INVITE (BYE, NOTIFY).
    pub(super) fn on_other_response(
        &mut self,
        _ep: &mut Endpoint,
        _now: Instant,
        _txn: ClientTxnKey,
        _resp: &Response,
    ) {
    }
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
        },
        _ => fallback.clone(),
    }
}
