//! A queued call: position announcements while the caller waits (agent legs are in `legs`).

use std::time::Duration;

use switchboard_sip::Instant;

use super::Calls;
use super::state::{Call, Timer};

impl Calls {
    pub(super) fn schedule_announcement(&mut self, now: Instant, key: u64) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let every = call
            .queue
            .as_ref()
            .and_then(|q| self.queue_settings.get(q))
            .map_or(30, |q| q.announce_position_every_s);
        if every > 0 {
            self.timers.insert((
                now + Duration::from_secs(u64::from(every)),
                Timer::Announce { key },
            ));
        }
    }

    /// The call's position in its queue: callers ahead of it still on the line, and held
    /// places of callers ahead of it who asked to be called back.
    pub(super) fn position(&self, call: &Call) -> usize {
        let on_line = self
            .calls
            .values()
            .filter(|c| {
                c.phase.is_queued()
                    && c.callback_id.is_none()
                    && c.queue == call.queue
                    && (c.queued_at, c.key) < (call.queued_at, call.key)
            })
            .count();
        let held = self
            .places
            .values()
            .filter(|p| p.queue == call.queue && p.queued_at < call.queued_at)
            .count();
        on_line.saturating_add(held).saturating_add(1)
    }

    pub(super) fn announce(&mut self, now: Instant, key: u64) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        if !call.phase.is_queued() {
            return;
        }
        let position = self.position(call);
        let waited_min = now.saturating_duration_since(call.queued_at).as_secs() / 60;
        // Once offered, the call-back offer follows every announcement.
        let offer = self.callback_offer_prompts(call);
        let then: Vec<&str> = offer.iter().map(String::as_str).collect();
        call.media
            .announce_position(position, waited_min.saturating_add(1), &then);
        self.schedule_announcement(now, key);
    }
}
