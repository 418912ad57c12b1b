//! Blind transfer by the talking agent (REFER, RFC 3515): the caller goes back through the
//! engine to the named agent, role or queue; the first segment gets its own record.

use switchboard_engine::ClientDirectory as _;
use switchboard_engine::{CallRequest, HangupSide, Step};
use switchboard_sip::dialog::Dialog;
use switchboard_sip::{Endpoint, Instant, Peer};
use switchboard_sipmsg::{HeaderName, Method, NameAddr};
use switchboard_store::{HangupSide as CdrHangup, Outcome as CdrOutcome, QueueEventKind};
use tracing::{info, warn};

use super::dialogs::InDialog;
use super::state::{Ended, Phase, Ringing, SegmentEnd};
use super::{Calls, engine_time};

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

impl Calls {
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
    pub(super) fn refer(&mut self, ep: &mut Endpoint, now: Instant, rq: InDialog<'_>) {
        let key = rq.key;
        let target = rq
            .req
            .headers
            .get(&HeaderName::ReferTo)
            .and_then(|v| NameAddr::parse(v).ok())
            .and_then(|n| n.uri.user);
        let Some(user) = target else {
            rq.respond(ep, now, 400, "Bad Request - Missing Refer-To");
            return;
        };
        let Some(step) = self.transfer_target(&user) else {
            info!(call = key, target = %user, "transfer to an unknown target refused");
            rq.respond(ep, now, 404, "Unknown Transfer Target");
            return;
        };
        let Some(call) = self.calls.get_mut(&key) else {
            rq.respond(ep, now, 481, "Call/Transaction Does Not Exist");
            return;
        };
        let (Phase::Talking(_), Some(old_engine_call)) = (&call.phase, call.engine_call) else {
            rq.respond(ep, now, 491, "Request Pending");
            return;
        };
        let Phase::Talking(bridged) =
            std::mem::replace(&mut call.phase, Phase::Queued(Ringing::default()))
        else {
            return;
        };
        rq.respond(ep, now, 202, "Accepted");
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
            now,
            key,
            QueueEventKind::Transfer,
            Some(agent_id),
            Some(step.to_string()),
        );
        self.by_sip_call_id.remove(&bridged.sip_call_id);
        self.by_client_txn.remove(&bridged.invite_txn);
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
}
