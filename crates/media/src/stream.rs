//! Pure timing and stream-continuity logic of the relay: the paced sender's deadlines, the
//! outgoing stream's sequence/timestamp rewriting, and inbound loss estimation. Time is
//! passed in as an offset from the session's start; nothing here reads a clock or does I/O.

use std::time::Duration;

use crate::rtp::seq_newer;

/// Samples per millisecond at the 8 kHz clock every G.711 stream and telephone-event uses.
pub const SAMPLES_PER_MS: u32 = 8;
/// Packetisation interval of everything Switchboard generates.
pub const FRAME: Duration = Duration::from_millis(20);
/// Samples in one 20 ms frame.
pub const FRAME_SAMPLES: usize = 160;

/// Absolute-deadline pacing: packet `n` of a run is due at `start + n * interval`, so
/// scheduling jitter never accumulates into drift.
#[derive(Debug, Clone)]
pub struct Pacer {
    start: Duration,
    sent: u64,
    interval: Duration,
}

impl Pacer {
    /// A run whose first packet is due at `start`.
    pub fn new(start: Duration, interval: Duration) -> Self {
        Pacer {
            start,
            sent: 0,
            interval,
        }
    }

    /// When the next packet is due.
    pub fn next_due(&self) -> Duration {
        let n = u32::try_from(self.sent).unwrap_or(u32::MAX);
        self.start.saturating_add(self.interval.saturating_mul(n))
    }

    /// Records that the due packet was sent.
    pub fn sent_one(&mut self) {
        self.sent = self.sent.saturating_add(1);
    }

    /// Packets sent in this run.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// If the sender has fallen more than `max_late` behind (a stalled task, a suspended
    /// machine), starts a new run at `now` instead of bursting the backlog; returns whether
    /// it did. Short lateness is caught up so the long-run rate stays exact.
    pub fn resync_if_late(&mut self, now: Duration, max_late: Duration) -> bool {
        if now.saturating_sub(self.next_due()) > max_late {
            *self = Pacer::new(now, self.interval);
            true
        } else {
            false
        }
    }
}

/// Sequence number, timestamp, SSRC and marker for one outgoing packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Outgoing sequence number.
    pub sequence: u16,
    /// Outgoing timestamp.
    pub timestamp: u32,
    /// Outgoing SSRC (constant for the stream).
    pub ssrc: u32,
    /// Marker bit.
    pub marker: bool,
}

#[derive(Debug, Clone, Copy)]
struct SourceMap {
    ssrc: u32,
    seq_offset: u16,
    ts_offset: u32,
}

/// One outgoing RTP stream with a single SSRC whose sequence numbers and timestamps stay
/// continuous while its content switches between generated audio (music, prompts) and
/// relayed packets from any number of upstream sources.
///
/// Relayed packets are mapped with a per-source offset fixed at the switch, so the
/// upstream's own gaps, reordering and telephone-event timestamp sharing survive. At every
/// switch the sequence continues at `last + 1` and the timestamp advances by the wall-clock
/// time since the last packet (at least one frame), and the marker bit is set.
#[derive(Debug, Clone)]
pub struct OutStream {
    ssrc: u32,
    next_seq: u16,
    last_ts: u32,
    last_at: Option<Duration>,
    source: Option<SourceMap>,
    /// The next generated packet starts a new run (after relayed packets or a switch).
    fresh: bool,
}

impl OutStream {
    /// A stream with the given SSRC, first sequence number and first timestamp.
    pub fn new(ssrc: u32, first_seq: u16, first_ts: u32) -> Self {
        OutStream {
            ssrc,
            next_seq: first_seq,
            last_ts: first_ts,
            last_at: None,
            source: None,
            fresh: true,
        }
    }

    /// The stream's SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Forgets the current upstream mapping: the next relayed packet re-anchors even if it
    /// comes from the same SSRC (call on every mode switch).
    pub fn switch_source(&mut self) {
        self.source = None;
        self.fresh = true;
    }

    fn anchor_ts(&self, now: Duration, min_step: u32) -> u32 {
        match self.last_at {
            None => self.last_ts,
            Some(at) => {
                let elapsed_ms =
                    u32::try_from(now.saturating_sub(at).as_millis()).unwrap_or(u32::MAX);
                let frame = FRAME_SAMPLES as u32;
                // Whole frames elapsed, rounded to the nearest frame, never less than one step.
                let frames = elapsed_ms.saturating_add(10) / 20;
                let step = frames.saturating_mul(frame).max(min_step);
                self.last_ts.wrapping_add(step)
            }
        }
    }

    /// Stamps the next generated packet carrying `samples` samples.
    pub fn next_generated(&mut self, now: Duration, samples: u32) -> Stamp {
        let switching = self.fresh;
        let ts = if self.last_at.is_none() {
            self.last_ts
        } else if self.fresh {
            self.anchor_ts(now, samples)
        } else {
            self.last_ts.wrapping_add(samples)
        };
        self.source = None;
        self.fresh = false;
        let stamp = Stamp {
            sequence: self.next_seq,
            timestamp: ts,
            ssrc: self.ssrc,
            marker: switching,
        };
        self.next_seq = self.next_seq.wrapping_add(1);
        self.last_ts = ts;
        self.last_at = Some(now);
        stamp
    }

    /// Stamps a relayed packet from upstream `(ssrc, sequence, timestamp, marker)`.
    pub fn relay(
        &mut self,
        now: Duration,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        marker: bool,
    ) -> Stamp {
        let (map, switched) = match self.source {
            Some(m) if m.ssrc == ssrc => (m, false),
            _ => {
                let out_seq = self.next_seq;
                let out_ts = self.anchor_ts(now, FRAME_SAMPLES as u32);
                let m = SourceMap {
                    ssrc,
                    seq_offset: out_seq.wrapping_sub(sequence),
                    ts_offset: out_ts.wrapping_sub(timestamp),
                };
                self.source = Some(m);
                (m, true)
            }
        };
        self.fresh = true;
        let seq = sequence.wrapping_add(map.seq_offset);
        let ts = timestamp.wrapping_add(map.ts_offset);
        let next = seq.wrapping_add(1);
        if switched || seq_newer(next, self.next_seq) {
            self.next_seq = next;
            self.last_ts = ts;
            self.last_at = Some(now);
        }
        Stamp {
            sequence: seq,
            timestamp: ts,
            ssrc: self.ssrc,
            marker: marker || switched,
        }
    }
}

/// Inbound loss estimate from sequence-number gaps (RFC 3550 A.3 style: expected minus
/// received, per source, restarted on SSRC change or a jump beyond `MAX_DROPOUT`).
#[derive(Debug, Clone, Default)]
pub struct LossTracker {
    ssrc: Option<u32>,
    base: i64,
    highest: i64,
    received: u64,
    lost_before: u64,
}

const MAX_DROPOUT: i64 = 3000;

impl LossTracker {
    /// Records one received packet.
    pub fn on_packet(&mut self, ssrc: u32, sequence: u16) {
        if self.ssrc != Some(ssrc) {
            self.restart(ssrc, sequence);
            return;
        }
        let delta = i64::from(sequence.wrapping_sub(self.highest as u16) as i16);
        let ext = self.highest + delta;
        if delta.abs() > MAX_DROPOUT {
            self.restart(ssrc, sequence);
            return;
        }
        if ext > self.highest {
            self.highest = ext;
        }
        self.received = self.received.saturating_add(1);
    }

    fn restart(&mut self, ssrc: u32, sequence: u16) {
        self.lost_before = self.lost_before.saturating_add(self.current_lost());
        self.ssrc = Some(ssrc);
        self.base = i64::from(sequence);
        self.highest = i64::from(sequence);
        self.received = 1;
    }

    fn current_lost(&self) -> u64 {
        if self.ssrc.is_none() {
            return 0;
        }
        let expected = u64::try_from(self.highest - self.base + 1).unwrap_or(0);
        expected.saturating_sub(self.received)
    }

    /// Packets presumed lost so far (duplicates can only lower the estimate, never below 0).
    pub fn lost(&self) -> u64 {
        self.lost_before.saturating_add(self.current_lost())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn pacer_deadlines_are_absolute() {
        let mut p = Pacer::new(ms(1000), FRAME);
        for n in 0..500u64 {
            assert_eq!(p.next_due(), ms(1000 + 20 * n));
            p.sent_one();
        }
        // Slightly late: catch up, keep the grid.
        assert!(!p.resync_if_late(ms(1000 + 20 * 500 + 50), ms(200)));
        assert_eq!(p.next_due(), ms(11_000));
        // Far behind: a new run at now.
        assert!(p.resync_if_late(ms(20_000), ms(200)));
        assert_eq!(p.next_due(), ms(20_000));
        assert_eq!(p.sent(), 0);
    }

    #[test]
    fn music_then_relay_then_music_is_continuous() {
        let mut out = OutStream::new(0xAAAA, 65530, 1000);
        let mut t = 0;
        let mut stamps = Vec::new();
        let first = out.next_generated(ms(t), 160);
        assert!(first.marker);
        assert_eq!((first.sequence, first.timestamp), (65530, 1000));
        stamps.push(first);
        for _ in 0..10 {
            t += 20;
            let s = out.next_generated(ms(t), 160);
            assert!(!s.marker);
            assert_eq!(s.timestamp, stamps.last().unwrap().timestamp + 160);
            stamps.push(s);
        }
        // Agent stream with its own random numbering; first packet 60 ms after the music.
        t += 60;
        let s = out.relay(ms(t), 0x5555, 40_000, 7_000_000, false);
        assert!(s.marker);
        assert_eq!(s.timestamp, stamps.last().unwrap().timestamp + 480);
        stamps.push(s);
        for i in 1..20u16 {
            t += 20;
            let s = out.relay(
                ms(t),
                0x5555,
                40_000 + i,
                7_000_000 + 160 * u32::from(i),
                false,
            );
            assert!(!s.marker);
            stamps.push(s);
        }
        out.switch_source();
        t += 20;
        let s = out.next_generated(ms(t), 160);
        assert!(s.marker);
        stamps.push(s);
        for w in stamps.windows(2) {
            assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
            let step = w[1].timestamp.wrapping_sub(w[0].timestamp);
            assert!((160..8000).contains(&step), "step {step}");
            assert_eq!(w[1].ssrc, 0xAAAA);
        }
    }

    #[test]
    fn relay_preserves_upstream_gaps_and_reordering() {
        let mut out = OutStream::new(1, 100, 0);
        let a = out.relay(ms(0), 9, 500, 80_000, false);
        let c = out.relay(ms(40), 9, 502, 80_320, false);
        let b = out.relay(ms(41), 9, 501, 80_160, false); // late
        assert_eq!((a.sequence, b.sequence, c.sequence), (100, 101, 102));
        assert_eq!((a.timestamp, b.timestamp, c.timestamp), (0, 160, 320));
        // The late packet did not move the stream backwards.
        let d = out.next_generated(ms(60), 160);
        assert_eq!(d.sequence, 103);
        // A new upstream SSRC (e.g. the agent's phone restarted its stream) re-anchors.
        let e = out.relay(ms(80), 10, 7, 5, false);
        assert_eq!(e.sequence, 104);
        assert!(e.marker);
        assert_eq!(e.timestamp, d.timestamp + 160);
    }

    #[test]
    fn telephone_event_packets_keep_sharing_a_timestamp() {
        let mut out = OutStream::new(1, 0, 0);
        let s1 = out.relay(ms(0), 3, 10, 1600, true);
        let s2 = out.relay(ms(20), 3, 11, 1600, false);
        let s3 = out.relay(ms(40), 3, 12, 1600, false);
        assert_eq!(s1.timestamp, s2.timestamp);
        assert_eq!(s2.timestamp, s3.timestamp);
        assert_eq!(s3.sequence, 2);
    }

    #[test]
    fn loss_tracking() {
        let mut l = LossTracker::default();
        for s in [65533u16, 65534, 0, 1, 4, 3, 3] {
            l.on_packet(7, s);
        }
        // 65533..=4 is 8 expected, 7 received (one duplicate) -> estimate 1 (65535 and 2
        // missing, one duplicate masks one).
        assert_eq!(l.lost(), 1);
        l.on_packet(8, 100); // new source keeps the old estimate
        l.on_packet(8, 105);
        assert_eq!(l.lost(), 5);
        l.on_packet(8, 30_000); // huge jump: restart rather than count 30k losses
        assert_eq!(l.lost(), 5);
    }
}
