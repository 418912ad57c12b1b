//! Agent legs: every [`Offer`] of the engine becomes INVITEs to the offered agents'
//! registered contacts; the first 2xx is bridged, the rest are cancelled; a refusal (486,
//! 603, 480) or a ring timeout goes back to the engine at once, so the call moves on and the
//! agent is freed. Legs given up on are orphans until their INVITE ends.

use std::time::Duration;

use switchboard_engine::{AgentIdx, Offer, Outcome};
use switchboard_sip::dialog::{self, Dialog};
use switchboard_sip::{ClientTxnKey, Endpoint, Instant, Peer};
use switchboard_sipmsg::{HeaderName, Method, Request, Response};
use tracing::{debug, info, warn};

use super::state::{AgentLeg, Bridged, LegState, Phase, RingingLeg, Side, Timer};
use super::{Calls, FORGET_LEG_AFTER_T1, engine_time, take, timestamp};
use crate::http::events::LiveEvent;

impl Calls {
    pub(super) fn ring(&mut self, ep: &mut Endpoint, now: Instant, offer: Offer) {
        if let Some(place) = self.places.remove(&offer.call) {
            return self.place_reached(now, offer, place);
        }
        if let Some(&key) = self.by_engine.get(&offer.call)
            && self.outbound.contains_key(&key)
        {
            return self.ring_outbound(ep, now, key, offer);
        }
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
        let mut ring_timers = Vec::new();
        {
            let Some(call) = self.calls.get_mut(&key) else {
                return;
            };
            call.route.clone_from(&offer.route);
            if queue.is_some() {
                call.queue.clone_from(&queue);
            }
            let caller = call.caller.clone();
            let client_card = call.client_card.clone();
            let Phase::Queued(ringing) = &mut call.phase else {
                // Offered while no longer queued (cannot happen: the engine offers only
                // waiting calls); give the agents back.
                gone.extend(offer.agents.iter().copied());
                return self.give_back(now, offer.call, gone);
            };
            for &agent in &offer.agents {
                let Some(agent_id) = self.engine.agent_id(agent).map(str::to_owned) else {
                    continue;
                };
                let bindings = ep.registrar().contacts_for(&agent_id, now);
                if bindings.is_empty() {
                    gone.push(agent);
                    continue;
                }
                ringing.offered.push(agent);
                for binding in bindings {
                    let (mut invite, sip_call_id) = agent_invite(
                        ep,
                        &self.domain,
                        &binding,
                        (&caller, &caller),
                        &agent_id,
                        &offer.route,
                    );
                    // Each contact gets its own offer: a browser its own WebRTC leg.
                    let dest = agent_dest(&binding);
                    invite.body = call.media.agent_offer_for(dest.transport, &sip_call_id);
                    invite.headers.push(
                        HeaderName::Other("X-Switchboard-Client".into()),
                        client_card.clone(),
                    );
                    let txn = ep.send_request(now, dest.clone(), invite);
                    debug!(call = key, agent = %agent_id, contact = %binding.contact, "ringing agent");
                    new_legs.push((txn, sip_call_id.clone()));
                    ringing.legs.push(RingingLeg {
                        leg: AgentLeg {
                            agent,
                            txn,
                            dest,
                            sip_call_id,
                        },
                        state: LegState::Calling,
                    });
                }
                ring_timers.push((
                    now + Duration::from_millis(offer.ring_timeout_ms),
                    Timer::RingTimeout { key, agent },
                ));
            }
            info!(call = key, route = %offer.route, attempt = offer.attempt, "offered");
        }
        self.timers.extend(ring_timers);
        for (txn, sip_call_id) in new_legs {
            self.by_client_txn.insert(txn, key);
            self.by_sip_call_id.insert(sip_call_id, (key, Side::Agent));
        }
        for &agent in &gone {
            info!(call = key, agent = ?self.engine.agent_id(agent), "offered agent has no registered contact");
        }
        self.give_back(now, offer.call, gone);
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

    /// Offered agents who cannot be rung (no registered contact) go back to the engine.
    fn give_back(&self, now: Instant, call: switchboard_engine::CallId, agents: Vec<AgentIdx>) {
        for agent in agents {
            let _ = self
                .engine
                .report(engine_time(now), call, Outcome::AgentGone(agent));
        }
    }

    /// A response on one of our client transactions.
    pub(super) fn on_response(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        txn: ClientTxnKey,
        resp: Response,
    ) {
        if let Some(key) = self.outbound_txn(txn)
            && !self.orphans.contains_key(&txn)
        {
            let r = CallResponse {
                key,
                txn,
                resp: &resp,
            };
            return self.outbound_response(ep, now, r);
        }
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
            return; // BYE, CANCEL, NOTIFY: nothing to do.
        };
        let Some(call) = self.calls.get_mut(&key) else {
            self.by_client_txn.remove(&txn);
            return;
        };
        let leg = call
            .phase
            .ringing_mut()
            .and_then(|r| r.legs.iter().position(|l| l.leg.txn == txn).map(|p| (r, p)));
        let Some((ringing, pos)) = leg else {
            if let Phase::Talking(b) = &call.phase
                && b.invite_txn == txn
            {
                // Another 2xx to the answered INVITE: a fork of it answered too (RFC 3261
                // §13.2.2.4). Its dialog is not ours to keep: ACK and BYE it. The answered
                // dialog's own retransmissions are re-ACKed by the endpoint.
                if (200..300).contains(&status) && !b.dialog.matches_response(&resp) {
                    info!(
                        call = key,
                        "second 2xx from a fork of the agent's INVITE: ACKed and ended"
                    );
                    let dest = b.dest.clone();
                    ack_and_bye(ep, now, txn, dest, &resp);
                }
                return;
            }
            // Not an agent leg: a request of ours inside the caller's dialog.
            let r = CallResponse {
                key,
                txn,
                resp: &resp,
            };
            self.on_other_response(ep, now, r);
            return;
        };
        let RingingLeg { leg, state } = ringing.legs.remove(pos);
        if (200..300).contains(&status) {
            match confirm_answer(ep, now, &leg, &resp) {
                // The answered INVITE stays mapped while the call talks: a forked 2xx finds it.
                Ok(dialog) => self.answered(ep, now, key, leg, dialog, &resp),
                Err(Unconfirmed::InviteGone) => {
                    warn!(call = key, "answered INVITE no longer known");
                }
                Err(Unconfirmed::NoDialog) => {
                    warn!(
                        call = key,
                        "agent 2xx without a usable dialog; treating as a failure"
                    );
                    self.by_client_txn.remove(&txn);
                }
            }
            return;
        }
        self.by_client_txn.remove(&txn);
        // A failure: the agent is done when no other contact of theirs is still ringing.
        self.by_sip_call_id.remove(&leg.sip_call_id);
        call.media.drop_fork(&leg.sip_call_id);
        let still_ringing = ringing.legs.iter().any(|l| l.leg.agent == leg.agent);
        if still_ringing || state == LegState::Cancelling {
            return;
        }
        if !take(&mut ringing.offered, leg.agent) {
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
    pub(super) fn on_client_failure(&mut self, ep: &mut Endpoint, now: Instant, txn: ClientTxnKey) {
        let Some(invite) = ep.client_request(txn).cloned() else {
            self.unorphan(txn);
            self.by_client_txn.remove(&txn);
            return;
        };
        let resp = Response::from_request(&invite, 408, "Request Timeout", None);
        self.on_response(ep, now, txn, resp);
    }

    /// Agent leg `leg` answered call `key` and its 2xx confirmed `dialog`: the call is
    /// bridged to it, every other leg is cancelled.
    fn answered(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: u64,
        leg: AgentLeg,
        dialog: Dialog,
        resp: &Response,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let bridged = Bridged {
            invite_txn: leg.txn,
            agent: leg.agent,
            dialog,
            dest: leg.dest,
            sip_call_id: leg.sip_call_id.clone(),
            held: false,
        };
        let Phase::Queued(ringing) =
            std::mem::replace(&mut call.phase, Phase::Talking(Box::new(bridged)))
        else {
            return;
        };
        let record = call
            .queue
            .as_ref()
            .and_then(|q| self.queue_settings.get(q))
            .is_some_and(|q| q.record);
        let record_as =
            record.then(|| format!("{}/{}", timestamp(now).format("%Y-%m-%d"), call.record_id));
        if let Err(e) = call
            .media
            .bridge_agent(&leg.sip_call_id, &resp.body, record_as.as_deref())
        {
            warn!(
                call = key,
                "agent SDP unusable ({e}); bridging to the address we know"
            );
        }
        call.answered_at = Some(now);
        call.rtp_since = now;
        let engine_call = call.engine_call;
        let agent_id = self
            .engine
            .agent_id(leg.agent)
            .unwrap_or_default()
            .to_owned();
        info!(call = key, agent = %agent_id, route = %call.route, "answered");
        // Everyone else stops ringing.
        for other in ringing.legs {
            if other.state == LegState::Calling {
                let _ = ep.cancel(now, other.leg.txn);
            }
            self.by_sip_call_id.remove(&other.leg.sip_call_id);
            self.orphan(ep, now, other.leg.txn, other.leg.dest);
        }
        self.cancel_timers(key, |t| matches!(t, Timer::RingTimeout { .. }));
        let Some(engine_call) = engine_call else {
            return;
        };
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

    pub(super) fn ring_timeout(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: u64,
        agent: AgentIdx,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let engine_call = call.engine_call;
        let Some(ringing) = call.phase.ringing_mut() else {
            return;
        };
        if !take(&mut ringing.offered, agent) {
            return;
        }
        cancel_legs_of(ep, now, &mut ringing.legs, agent);
        info!(call = key, agent = ?self.engine.agent_id(agent), "no answer");
        if let Some(engine_call) = engine_call {
            let _ = self
                .engine
                .report(engine_time(now), engine_call, Outcome::NoAnswer(agent));
        }
    }

    /// The engine took an offer back (the agent went on a break or logged out while their
    /// phone rang): stop ringing them now. Offers that ended otherwise are no longer listed.
    ///
    /// Events arrive after the operation that caused them, and offers are carried out
    /// before them: an agent freed by a refusal or a no-answer and offered the next call
    /// (or the same one again) at once is ringing again by the time the old
    /// `Ringing → Available` event is read. Only the engine's current state tells; stopping
    /// that new ring would leave the agent "ringing" in the engine for good.
    pub(super) fn stop_ringing(&mut self, ep: &mut Endpoint, now: Instant, agent: AgentIdx) {
        if self
            .engine
            .agent_state(agent)
            .is_some_and(|s| s.kind() == switchboard_engine::AgentStateKind::Ringing)
        {
            return;
        }
        let Some((key, ringing)) = self.calls.iter_mut().find_map(|(k, c)| {
            c.phase
                .ringing_mut()
                .filter(|r| r.offered.contains(&agent))
                .map(|r| (*k, r))
        }) else {
            return;
        };
        take(&mut ringing.offered, agent);
        cancel_legs_of(ep, now, &mut ringing.legs, agent);
        info!(call = key, agent = ?self.engine.agent_id(agent), "offer withdrawn: ringing stopped");
        self.remove_ring_timer(key, agent);
    }

    /// An agent leg no call wants any more: a late 2xx for it is ACKed and BYEd, and it is
    /// forgotten [`FORGET_LEG_AFTER_T1`]·T1 from now if its INVITE never ends.
    pub(super) fn orphan(&mut self, ep: &Endpoint, now: Instant, txn: ClientTxnKey, dest: Peer) {
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
    pub(super) fn forget_leg(&mut self, txn: ClientTxnKey) {
        if self.unorphan(txn).is_some() {
            info!(
                txn = ?txn,
                "agent leg without a final response long after it was given up: forgotten"
            );
        }
    }

    fn remove_ring_timer(&mut self, key: u64, agent: AgentIdx) {
        self.timers
            .cancel(key, |t| *t == Timer::RingTimeout { key, agent });
    }
}

/// An INVITE ringing one registered contact of an agent: From shows `(display, user)`
/// (the caller, or the number an outbound call will dial), the route is in
/// `X-Switchboard-Route`. Returns it with its Call-ID; the caller puts the SDP offer made
/// for that Call-ID in the body.
pub(super) fn agent_invite(
    ep: &mut Endpoint,
    domain: &str,
    binding: &switchboard_sip::registrar::Binding,
    (display, user): (&str, &str),
    agent_id: &str,
    route: &str,
) -> (Request, String) {
    let sip_call_id = ep.new_call_id();
    let mut invite = Request::new(Method::Invite, binding.contact.clone());
    let display = display.replace('"', "");
    invite.headers.push(
        HeaderName::From,
        format!("\"{display}\" <sip:{user}@{domain}>;tag={}", ep.new_tag()),
    );
    invite
        .headers
        .push(HeaderName::To, format!("<sip:{agent_id}@{domain}>"));
    invite.headers.push(HeaderName::CallId, sip_call_id.clone());
    invite.headers.push(HeaderName::CSeq, "1 INVITE");
    invite.headers.push(
        HeaderName::Contact,
        format!(
            "<{}>",
            ep.local_uri_for(Some("switchboard"), &agent_dest(binding))
        ),
    );
    invite
        .headers
        .push(HeaderName::Allow, switchboard_sip::ALLOW);
    invite.headers.push(
        HeaderName::Other("X-Switchboard-Route".into()),
        route.replace(['\r', '\n'], " "),
    );
    invite
        .headers
        .push(HeaderName::ContentType, "application/sdp");
    (invite, sip_call_id)
}

/// CANCELs every leg of `agent` still calling.
fn cancel_legs_of(ep: &mut Endpoint, now: Instant, legs: &mut [RingingLeg], agent: AgentIdx) {
    for l in legs.iter_mut().filter(|l| l.leg.agent == agent) {
        if l.state == LegState::Calling {
            l.state = LegState::Cancelling;
            let _ = ep.cancel(now, l.leg.txn);
        }
    }
}

/// A response to a request of ours in call `key`, on client transaction `txn`.
#[derive(Clone, Copy)]
pub(super) struct CallResponse<'a> {
    pub key: u64,
    pub txn: ClientTxnKey,
    pub resp: &'a Response,
}

/// Why a 2xx to an agent leg's INVITE confirmed no dialog.
pub(super) enum Unconfirmed {
    /// The endpoint no longer knows the INVITE: nothing was ACKed.
    InviteGone,
    /// The 2xx cannot be ACKed or makes no usable dialog.
    NoDialog,
}

/// ACKs the 2xx that answered agent leg `leg` (RFC 3261 §13.2.2.4), where its INVITE went,
/// and returns the dialog the 2xx confirms.
pub(super) fn confirm_answer(
    ep: &mut Endpoint,
    now: Instant,
    leg: &AgentLeg,
    resp: &Response,
) -> Result<Dialog, Unconfirmed> {
    let invite = ep
        .client_request(leg.txn)
        .cloned()
        .ok_or(Unconfirmed::InviteGone)?;
    let ack = dialog::ack_for_2xx(&invite, resp).map_err(|_| Unconfirmed::NoDialog)?;
    ep.send_ack(now, leg.dest.clone(), ack);
    Dialog::from_uac(&invite, resp).map_err(|_| Unconfirmed::NoDialog)
}

/// A 2xx we do not want (another leg won, or the call is over): ACK it, then BYE it.
pub(super) fn ack_and_bye(
    ep: &mut Endpoint,
    now: Instant,
    txn: ClientTxnKey,
    dest: Peer,
    resp: &Response,
) {
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

/// Where an agent's INVITE goes: the flow its REGISTER came on (RFC 5626: the connection of
/// a TCP, TLS or WebSocket registration, the source address of a UDP one, which is what
/// reaches a phone behind NAT) — except for a phone that registered over UDP with a Contact
/// asking for TCP (`;transport=tcp`) at the very address it registered from (so no NAT is in
/// between): RFC 3263 sends that one its requests over TCP, on a connection the server opens
/// for the call when none is open, and reuses for the dialog.
pub(super) fn agent_dest(binding: &switchboard_sip::Binding) -> Peer {
    contact_dest(&binding.contact, &binding.source)
}

/// [`agent_dest`] of a binding of `contact` registered from `source`.
fn contact_dest(contact: &switchboard_sipmsg::Uri, source: &Peer) -> Peer {
    use switchboard_sip::Transport;
    use switchboard_sipmsg::Host;
    let wants_tcp = contact
        .param("transport")
        .flatten()
        .is_some_and(|t| t.eq_ignore_ascii_case("tcp"));
    let ip = match contact.host {
        Host::V4(ip) => std::net::IpAddr::V4(ip),
        Host::V6(ip) => std::net::IpAddr::V6(ip),
        Host::Domain(_) => return source.clone(),
    };
    if source.transport != Transport::Udp || !wants_tcp || ip != source.addr.ip() {
        return source.clone();
    }
    let port = contact.port.unwrap_or(Transport::Tcp.default_port());
    Peer {
        transport: Transport::Tcp,
        addr: std::net::SocketAddr::new(ip, port),
        conn: None,
        local: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sip::Transport;

    fn dest(contact: &str, transport: Transport, from: &str) -> Peer {
        let source = Peer {
            transport,
            addr: from.parse().unwrap(),
            conn: None,
            local: None,
        };
        contact_dest(&contact.parse().unwrap(), &source)
    }

    #[test]
    fn only_a_udp_binding_asking_for_tcp_at_its_own_address_is_called_over_tcp() {
        let tcp = dest(
            "sip:ana@192.0.2.5:5070;transport=tcp",
            Transport::Udp,
            "192.0.2.5:40000",
        );
        assert_eq!(tcp.transport, Transport::Tcp);
        assert_eq!(tcp.addr.to_string(), "192.0.2.5:5070");
        assert_eq!(tcp.conn, None);
        let default_port = dest(
            "sip:ana@192.0.2.5;transport=TCP",
            Transport::Udp,
            "192.0.2.5:5060",
        );
        assert_eq!(default_port.addr.port(), 5060);
        // Behind NAT (the Contact names a private address), a host name, no transport
        // parameter, or a stream registration: the flow the REGISTER came on.
        for (contact, transport) in [
            ("sip:ana@10.0.0.7:5070;transport=tcp", Transport::Udp),
            ("sip:ana@phone.example;transport=tcp", Transport::Udp),
            ("sip:ana@192.0.2.5:5070", Transport::Udp),
            ("sip:ana@192.0.2.5:5070;transport=tcp", Transport::Tcp),
        ] {
            let d = dest(contact, transport, "192.0.2.5:40000");
            assert_eq!(
                (d.transport, d.addr.to_string()),
                (transport, "192.0.2.5:40000".into()),
                "{contact}"
            );
        }
    }
}
