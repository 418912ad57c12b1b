//! Plain counters, readable at any time (the binary turns them into Prometheus metrics).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters of one leg (updated by the media task).
#[derive(Debug, Default)]
pub(crate) struct LegCounters {
    pub packets_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub packets_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub lost: AtomicU64,
    pub invalid: AtomicU64,
    pub foreign: AtomicU64,
    pub rtcp_in: AtomicU64,
    pub send_errors: AtomicU64,
    /// When the last RTP packet was accepted: microseconds since the session opened, plus
    /// one (0: none yet).
    pub last_in_us: AtomicU64,
}

pub(crate) fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Relaxed);
}

impl LegCounters {
    pub fn snapshot(&self) -> LegStats {
        LegStats {
            packets_in: self.packets_in.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            packets_out: self.packets_out.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            lost: self.lost.load(Relaxed),
            invalid: self.invalid.load(Relaxed),
            foreign_source: self.foreign.load(Relaxed),
            rtcp_in: self.rtcp_in.load(Relaxed),
            send_errors: self.send_errors.load(Relaxed),
            last_packet_in: match self.last_in_us.load(Relaxed) {
                0 => None,
                us => Some(std::time::Duration::from_micros(us.saturating_sub(1))),
            },
        }
    }
}

/// Live counters of one session.
#[derive(Debug, Default)]
pub(crate) struct SessionCounters {
    pub caller: LegCounters,
    pub agent: LegCounters,
    pub dtmf_digits: AtomicU64,
}

/// Counters of one leg at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LegStats {
    /// RTP packets accepted from the far end (valid, from the latched address).
    pub packets_in: u64,
    /// Bytes of those packets.
    pub bytes_in: u64,
    /// RTP packets sent to the far end.
    pub packets_out: u64,
    /// Bytes of those packets.
    pub bytes_out: u64,
    /// Inbound packets presumed lost (sequence gaps).
    pub lost: u64,
    /// Datagrams on the RTP port that were not RTP.
    pub invalid: u64,
    /// Valid RTP from a source other than the leg's (the SDP address, or the source latched
    /// while it is silent): dropped.
    pub foreign_source: u64,
    /// RTCP datagrams received (drained, not relayed).
    pub rtcp_in: u64,
    /// Sends that failed (socket buffer full, unreachable).
    pub send_errors: u64,
    /// When the last of `packets_in` arrived, counted from the session's opening
    /// ([`crate::Session::opened_at`]); `None` before the first. RTCP does not count.
    pub last_packet_in: Option<std::time::Duration>,
}

/// Counters of one session at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// The customer (trunk) leg.
    pub caller: LegStats,
    /// The agent leg.
    pub agent: LegStats,
    /// DTMF digits detected from the caller.
    pub dtmf_digits: u64,
    /// The recording file, once one was started (after `close`, it is complete).
    pub recording: Option<PathBuf>,
}

/// Process-wide totals across every session (for `switchboard_rtp_packets_total`).
#[derive(Debug, Default)]
pub(crate) struct TotalCounters {
    pub packets_in: AtomicU64,
    pub packets_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub lost: AtomicU64,
    pub invalid: AtomicU64,
    pub rejected: AtomicU64,
    pub sessions_opened: AtomicU64,
}

/// Process-wide counts gathered by one relay thread, added to [`TotalCounters`] in one go
/// (plain numbers: only that thread touches them).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tally {
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub lost: u64,
    pub invalid: u64,
    pub rejected: u64,
}

impl Tally {
    /// Moves `other`'s counts into this one.
    pub fn absorb(&mut self, other: &mut Tally) {
        let o = std::mem::take(other);
        self.packets_in += o.packets_in;
        self.packets_out += o.packets_out;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.lost += o.lost;
        self.invalid += o.invalid;
        self.rejected += o.rejected;
    }

    /// Adds the counts to the shared totals and starts again from zero.
    pub fn flush(&mut self, to: &TotalCounters) {
        let t = std::mem::take(self);
        for (counter, n) in [
            (&to.packets_in, t.packets_in),
            (&to.packets_out, t.packets_out),
            (&to.bytes_in, t.bytes_in),
            (&to.bytes_out, t.bytes_out),
            (&to.lost, t.lost),
            (&to.invalid, t.invalid),
            (&to.rejected, t.rejected),
        ] {
            if n > 0 {
                bump(counter, n);
            }
        }
    }
}

/// Process-wide media totals at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaTotals {
    /// RTP packets received on all legs (`direction="in"`).
    pub packets_in: u64,
    /// RTP packets sent on all legs (`direction="out"`).
    pub packets_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Inbound packets presumed lost, summed over closed and open sessions.
    pub lost: u64,
    /// Non-RTP datagrams received on RTP ports.
    pub invalid: u64,
    /// Valid RTP dropped for coming from a source other than the leg's (PRODUCT §5; for
    /// `switchboard_rtp_rejected_packets_total`).
    pub rejected: u64,
    /// Sessions opened since start.
    pub sessions_opened: u64,
    /// Port pairs currently allocated.
    pub ports_in_use: u64,
}

impl TotalCounters {
    pub fn snapshot(&self, ports_in_use: usize) -> MediaTotals {
        MediaTotals {
            packets_in: self.packets_in.load(Relaxed),
            packets_out: self.packets_out.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            lost: self.lost.load(Relaxed),
            invalid: self.invalid.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            sessions_opened: self.sessions_opened.load(Relaxed),
            ports_in_use: ports_in_use as u64,
        }
    }
}
