//! Ending a call: BYE to whoever is still on it, CANCEL to agent legs still ringing, the
//! engine told, the media closed and the record written. Also the RTP inactivity check,
//! which ends calls whose BYE was lost.

use std::time::Duration;

use switchboard_engine::{HangupSide, Outcome};
use switchboard_sip::{Endpoint, Instant};
use switchboard_store::{HangupSide as CdrHangup, Outcome as CdrOutcome};
use tracing::{debug, warn};

use super::state::{Call, Ended, LegState, Phase, SegmentEnd, Timer};
use super::{Calls, engine_time};

impl Calls {
    /// Ends call `key` as `how` for a reason an operator should see: `why` is logged as a
    /// warning first.
    pub(super) fn end_call_warning(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: u64,
        how: Ended,
        why: &str,
    ) {
        warn!(call = key, "{why}");
        self.end_call(ep, now, key, how);
    }

    pub(super) fn end_call(&mut self, ep: &mut Endpoint, now: Instant, key: u64, how: Ended) {
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
        self.by_invite.remove(&call.caller_leg.invite_txn);
        self.by_sip_call_id.remove(&call.caller_leg.sip_call_id);
        self.timers.cancel_all(key);
        let t = engine_time(now);
        let phase = std::mem::replace(&mut call.phase, Phase::Menu);
        // Who hangs up whom. The caller gets a BYE unless they hung up themselves.
        let bye_caller = how != Ended::CallerHungUp;
        let (outcome, side) = match (&phase, how) {
            // The caller booked a call-back keeping their place (their engine entry is the
            // held place now): whoever hangs up, the call ends as asked.
            (Phase::Queued(_), Ended::CallerHungUp) if call.callback_id.is_some() => {
                (CdrOutcome::CallbackRequested, CdrHangup::Caller)
            }
            (Phase::Queued(_), _) if call.callback_id.is_some() => {
                (CdrOutcome::CallbackRequested, CdrHangup::System)
            }
            (Phase::Talking(_), Ended::CallerHungUp) => (CdrOutcome::Answered, CdrHangup::Caller),
            (Phase::Talking(_), Ended::AgentHungUp) => (CdrOutcome::Answered, CdrHangup::Agent),
            (Phase::Talking(_), _) => (CdrOutcome::Answered, CdrHangup::System),
            (_, Ended::CallerHungUp | Ended::AgentHungUp) => {
                (CdrOutcome::Abandoned, CdrHangup::Caller)
            }
            (_, Ended::RtpTimeout) => (CdrOutcome::Abandoned, CdrHangup::System),
            (_, Ended::NoAgent) => (CdrOutcome::NoAgent, CdrHangup::System),
            (_, Ended::Timeout) => (CdrOutcome::Timeout, CdrHangup::System),
            (
                _,
                Ended::Failed | Ended::Shutdown | Ended::SessionExpired | Ended::CallbackBooked,
            ) => (CdrOutcome::Failed, CdrHangup::System),
        };
        if bye_caller {
            self.bye_caller(ep, now, &mut call);
        }
        let mut agent = None;
        match phase {
            Phase::Menu => {}
            Phase::Queued(ringing) => {
                // Stop every agent leg still ringing.
                for l in ringing.legs {
                    if l.state == LegState::Calling {
                        let _ = ep.cancel(now, l.leg.txn);
                    }
                    self.by_sip_call_id.remove(&l.leg.sip_call_id);
                    self.orphan(ep, now, l.leg.txn, l.leg.dest);
                }
                if let Some(ec) = call.engine_call {
                    // Agents still ringing are released by the engine; a caller who leaves
                    // never counts as their no-answer (PRODUCT §3).
                    drop(ringing.offered);
                    if let Err(e) = self.engine.report(t, ec, Outcome::CallerGone) {
                        debug!(call = key, "engine: caller gone: {e}");
                    }
                }
            }
            Phase::Talking(mut b) => {
                if how != Ended::AgentHungUp {
                    let bye = b.dialog.request(switchboard_sipmsg::Method::Bye);
                    let dest = super::dialogs::next_hop(&b.dialog, &b.dest);
                    let _ = ep.send_request(now, dest, bye);
                }
                self.by_sip_call_id.remove(&b.sip_call_id);
                self.by_client_txn.remove(&b.invite_txn);
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
                agent = self.engine.agent_id(b.agent).map(str::to_owned);
            }
        }
        let stats = call.media.close();
        let end = SegmentEnd {
            agent,
            outcome,
            side,
        };
        self.record_segment(now, &call, &end, &stats);
    }

    /// BYE on the caller's dialog, along its route set.
    fn bye_caller(&self, ep: &mut Endpoint, now: Instant, call: &mut Call) {
        let leg = &mut call.caller_leg;
        let bye = leg.dialog.request(switchboard_sipmsg::Method::Bye);
        let dest = super::dialogs::next_hop(&leg.dialog, &leg.peer);
        let _ = ep.send_request(now, dest, bye);
    }

    /// The RTP check of call `key` is due: a leg that sent no RTP for `media.rtp_timeout_s`
    /// ends the call; otherwise the check is due again when the quietest leg would reach the
    /// timeout. The caller leg is checked in every phase (callers hearing the menu or music
    /// send RTP too), the agent leg while talking; nothing is checked while either side
    /// holds the call, and silence counts from the answer, the bridge or the resume at the
    /// earliest. One timer entry per call, rarely due while RTP flows.
    pub(super) fn check_rtp(&mut self, ep: &mut Endpoint, now: Instant, key: u64) {
        let Some(timeout) = self.rtp_timeout else {
            return;
        };
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let held = call.held();
        if held {
            self.timers.insert((now + timeout, Timer::RtpCheck { key }));
            return;
        }
        let ages = call.media.rtp_ages(crate::clock::now());
        let since = now.saturating_duration_since(call.rtp_since);
        let silence = |age: Option<Duration>| age.map_or(since, |a| a.min(since));
        let caller = silence(ages.caller);
        let agent = matches!(call.phase, Phase::Talking(_)).then(|| silence(ages.agent));
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
            call_id = %call.caller_leg.sip_call_id,
            leg,
            silent_s = format_args!("{:.1}", silent.as_secs_f64()),
            caller_silent_s = format_args!("{:.1}", caller.as_secs_f64()),
            agent_silent_s = agent.map(|a| format!("{:.1}", a.as_secs_f64())),
            "RTP timeout: the {leg} leg sent no RTP for {:.1} s; ending the call",
            silent.as_secs_f64()
        );
        self.end_call(ep, now, key, Ended::RtpTimeout);
    }
}
