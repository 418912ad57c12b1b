//! A queued call: position announcements while the caller waits (agent legs are in `legs`).

use std::time::Duration;

use switchboard_sip::Instant;

use super::Calls;
use super::state::Timer;

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

    pub(super) fn announce(&mut self, now: Instant, key: u64) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        if !call.phase.is_queued() {
            return;
        }
        let position = self
            .calls
            .values()
            .filter(|c| {
                c.phase.is_queued()
                    && c.queue == call.queue
                    && (c.queued_at, c.key) < (call.queued_at, call.key)
            })
            .count()
            .saturating_add(1);
        let waited_min = now.saturating_duration_since(call.queued_at).as_secs() / 60;
        call.media
            .announce_position(position, waited_min.saturating_add(1));
        self.schedule_announcement(now, key);
    }
}
