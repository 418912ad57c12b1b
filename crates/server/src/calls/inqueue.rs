//! The in-queue call-back (`[callbacks] in_queue_digit`, `offer_after_s`): after
//! `offer_after_s` of waiting the caller hears "to be called back, keeping your place in the
//! queue, press <digit>", and again after every position announcement. The digit (RFC 4733 or
//! SIP INFO) books a call-back linked to the call, turns the call's engine entry into a held
//! place (`Engine::hold_place`) and ends the call politely: a confirmation, then BYE, outcome
//! `callback_requested`, queue event EXITWITHKEY. When the engine offers the held place, the
//! call-back dialer takes the call-back (`pending` → `dialing`) and hands it back to be dialed
//! agent first with the offered agent (`outbound.rs`).

use std::time::Duration;

use switchboard_engine::{CallId, Offer, Outcome};
use switchboard_sip::Instant;
use switchboard_store::{Callback, CallbackStatus, QueueEventKind, normalize_number};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, info, warn};

use super::menu::forward_digits;
use super::state::{Call, Timer};
use super::{Calls, engine_time, timestamp};
use crate::callbacks::PlaceNote;
use crate::config::Config;

/// How long the confirmation plays before the BYE (`callback_confirm.wav` lasts 4.3 s).
pub(super) const CONFIRMATION_LEN: Duration = Duration::from_millis(4_800);

/// The in-queue offer as configured.
#[derive(Debug, Clone)]
pub(super) struct InQueueOffer {
    digit: char,
    after: Duration,
    /// The call-back dialer, which stores the call-backs and takes them for dialing.
    notes: UnboundedSender<PlaceNote>,
}

impl InQueueOffer {
    /// The offer when `[callbacks] offer_after_s` is set and some trunk can dial out.
    pub(super) fn new(config: &Config, notes: Option<UnboundedSender<PlaceNote>>) -> Option<Self> {
        let cb = &config.callbacks;
        let dials_out = config.trunks.iter().any(|t| t.outbound.is_some());
        if cb.offer_after_s.is_some() && !dials_out {
            warn!(
                "[callbacks] offer_after_s is set, but no trunk has an outbound URI: callers are not offered call-backs"
            );
        }
        Some(InQueueOffer {
            digit: cb.in_queue_digit_char()?,
            after: Duration::from_secs(u64::from(cb.offer_after_s?)),
            notes: notes.filter(|_| dials_out)?,
        })
    }
}

/// A caller's place, held in the engine for their call-back.
#[derive(Debug, Clone)]
pub(super) struct HeldPlace {
    pub callback_id: String,
    pub number: String,
    pub queue: Option<String>,
    pub queued_at: Instant,
}

impl Calls {
    /// Call `key` was queued: the offer is due `offer_after_s` later.
    pub(super) fn schedule_callback_offer(&mut self, now: Instant, key: u64) {
        if let Some(offer) = &self.callback_offer {
            self.timers
                .insert((now + offer.after, Timer::CallbackOffer { key }));
        }
    }

    /// The offer's prompts ("… press", the digit) once the caller has heard it; else none.
    pub(super) fn callback_offer_prompts(&self, call: &Call) -> Vec<String> {
        match &self.callback_offer {
            Some(o) if call.callback_offered && call.callback_id.is_none() => {
                vec!["callback_offer.wav".to_owned(), format!("{}.wav", o.digit)]
            }
            _ => Vec::new(),
        }
    }

    /// Call `key` has waited `offer_after_s`: the caller hears the offer (a caller whose
    /// number cannot be dialed back hears nothing).
    pub(super) fn offer_callback(&mut self, key: u64) {
        let Some(digit) = self.callback_offer.as_ref().map(|o| o.digit) else {
            return;
        };
        let inputs = self.inputs.clone();
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if !call.phase.is_queued() || call.callback_id.is_some() || call.engine_call.is_none() {
            return;
        }
        if normalize_number(&call.client_number).is_err() {
            info!(call = key, number = %call.client_number, "no call-back offer: the caller's number cannot be dialed");
            return;
        }
        call.callback_offered = true;
        let digit_file = format!("{digit}.wav");
        call.media
            .play_prompts(&["callback_offer.wav", digit_file.as_str()]);
        forward_digits(&inputs, key, &mut call.media);
        info!(call = key, %digit, "call-back offered to the waiting caller");
    }

    /// A digit from a queued caller: the offer's digit books the call-back.
    pub(super) fn in_queue_digit(&mut self, now: Instant, key: u64, digit: char) {
        let Some(offer) = self.callback_offer.clone() else {
            return debug!(call = key, %digit, "DTMF while queued ignored");
        };
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        if digit != offer.digit || !call.callback_offered || call.callback_id.is_some() {
            return debug!(call = key, %digit, "DTMF while queued ignored");
        }
        let (Some(ec), Ok(number)) = (call.engine_call, normalize_number(&call.client_number))
        else {
            return;
        };
        if !call.offered().is_empty() {
            return info!(
                call = key,
                "call-back request ignored: an agent's phone rings for this call"
            );
        }
        if offer.notes.is_closed() {
            return warn!(
                call = key,
                "call-back request ignored: the dialer has stopped"
            );
        }
        if let Err(e) = self.engine.hold_place(engine_time(now), ec) {
            return info!(call = key, "call-back request not taken: {e}");
        }
        let position = self.position(call);
        let queue = call.queue.clone();
        let callback_id = switchboard_store::new_record_id();
        // Should this server stop before the place is served, the stored call-back becomes
        // due as a scheduled one when the caller would have left the queue at the latest.
        let hold_s = queue
            .as_ref()
            .and_then(|q| self.queue_settings.get(q))
            .map_or(300, |q| q.max_wait_s);
        let created_at = timestamp(now);
        let row = Callback {
            id: callback_id.clone(),
            number: number.clone(),
            at: None,
            queue: queue.clone(),
            created_at,
            status: CallbackStatus::Pending,
            attempts: 0,
            next_at: Some(created_at + chrono::Duration::seconds(i64::from(hold_s))),
            last_result: None,
            updated_at: None,
            call_ids: Vec::new(),
        };
        if offer.notes.send(PlaceNote::Held(Box::new(row))).is_err() {
            warn!(call = key, "call-back not stored: the dialer has stopped");
        }
        self.by_engine.remove(&ec);
        self.places.insert(
            ec,
            HeldPlace {
                callback_id: callback_id.clone(),
                number,
                queue: queue.clone(),
                queued_at: call.queued_at,
            },
        );
        self.cancel_timers(key, |t| {
            matches!(t, Timer::Announce { .. } | Timer::CallbackOffer { .. })
        });
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.engine_call = None;
        call.callback_id = Some(callback_id.clone());
        call.media.play_prompts(&["callback_confirm.wav"]);
        let record_id = call.record_id.clone();
        self.timers
            .insert((now + CONFIRMATION_LEN, Timer::CallbackGoodbye { key }));
        self.send_queue_event(
            now,
            record_id,
            queue,
            None,
            QueueEventKind::ExitWithKey,
            Some(format!("{digit}|{position}")),
        );
        info!(call = key, callback = %callback_id, position, "the caller asked to be called back; their place in the queue is kept");
    }

    /// The engine offers a held place: the dialer takes its call-back and hands it back to
    /// be dialed with the offered agent.
    pub(super) fn place_reached(&mut self, now: Instant, offer: Offer, place: HeldPlace) {
        info!(callback = %place.callback_id, route = %offer.route, "a held place reached the head of the queue: the call-back is due");
        let call = offer.call;
        let note = PlaceNote::Reached {
            callback_id: place.callback_id,
            number: place.number,
            queue: place.queue,
            offer,
        };
        let sent = self
            .callback_offer
            .as_ref()
            .is_some_and(|o| o.notes.send(note).is_ok());
        if !sent {
            warn!("held place given up: the call-back dialer has stopped");
            self.drop_place(now, call);
        }
    }

    /// A held place that will not be dialed now (the call-back was cancelled, the calling
    /// window is closed, the database is unreachable): the offered agents are free again.
    pub(super) fn drop_place(&mut self, now: Instant, call: CallId) {
        self.places.remove(&call);
        if let Err(e) = self
            .engine
            .report(engine_time(now), call, Outcome::CallerGone)
        {
            debug!(call = %call, "engine: held place given up: {e}");
        }
    }
}
