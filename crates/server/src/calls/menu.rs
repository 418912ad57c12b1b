//! The voice menu (`[ivr]`): the caller picks the purpose of the call by DTMF (RFC 4733 from
//! the media plane, or SIP INFO) before the call is classified and queued.

use std::str::FromStr;
use std::time::Duration;

use switchboard_engine::{CallRequest, Purpose};
use switchboard_sip::{Endpoint, Instant};
use tracing::{debug, info};

use super::state::{Ended, Phase, Ringing, Timer};
use super::{CallInput, Calls, engine_time};
use crate::calls::media::CallMedia;
use crate::http::events::LiveEvent;
use switchboard_engine::ClientDirectory as _;

impl Calls {
    /// Plays the menu prompt and forwards the caller's first digits to the endpoint task.
    pub(super) fn start_menu(&mut self, now: Instant, key: u64, media: &mut CallMedia) {
        let Some(menu) = self.ivr.clone() else { return };
        let prompt = menu.prompt.unwrap_or_else(|| "ivr_menu.wav".to_owned());
        media.play_prompt_then_music(&prompt);
        forward_digits(&self.inputs, key, media);
        self.timers.insert((
            now + Duration::from_secs(u64::from(menu.timeout_s)),
            Timer::MenuTimeout { key },
        ));
    }

    pub(super) fn on_digit(&mut self, ep: &mut Endpoint, now: Instant, key: u64, digit: char) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        if call.phase.is_queued() {
            return self.in_queue_digit(now, key, digit);
        }
        if !matches!(call.phase, Phase::Menu) {
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
    pub(super) fn leave_menu(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: u64,
        purpose: Purpose,
    ) {
        self.cancel_timers(key, |t| matches!(t, Timer::MenuTimeout { .. }));
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if !matches!(call.phase, Phase::Menu) {
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
                call.phase = Phase::Queued(Ringing::default());
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
                self.schedule_callback_offer(now, key);
            }
            Err(e) => {
                info!(call = key, "call refused after the menu: {e}");
                call.route = "no route: no step of the chain has an agent".to_owned();
                self.end_call(ep, now, key, Ended::NoAgent);
            }
        }
    }

    /// The caller chose nothing in time: the call is routed as an order.
    pub(super) fn menu_timeout(&mut self, ep: &mut Endpoint, now: Instant, key: u64) {
        info!(call = key, "no menu choice: routing as an order");
        self.leave_menu(ep, now, key, Purpose::Order);
    }
}

/// Forwards the caller's RFC 4733 digits to the endpoint task (the first call starts it; later
/// calls find them forwarded already).
pub(super) fn forward_digits(
    inputs: &tokio::sync::mpsc::UnboundedSender<CallInput>,
    key: u64,
    media: &mut CallMedia,
) {
    if let Some(mut digits) = media.take_dtmf() {
        let inputs = inputs.clone();
        tokio::spawn(async move {
            while let Some(digit) = digits.recv().await {
                if inputs.send(CallInput::Digit { key, digit }).is_err() {
                    break;
                }
            }
        });
    }
}
