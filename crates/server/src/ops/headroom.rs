//! Admission control for new calls: a call is refused (503, recorded `rejected`) while the
//! RTP port range or the open-files limit has no room for it, before any port is taken or any
//! agent is rung. Without it, a burst of calls runs the range or the descriptors out, and the
//! calls past that point fail half-way (an agent rung, then the media cannot open; HTTP and
//! SQLite failing with "Too many open files").
//!
//! Ports are counted exactly (the pool's free pairs). Descriptors are sampled from
//! `/proc/self/fd` at most every [`FD_SAMPLE_EVERY`] (a directory of 20,000 entries is too
//! dear to read per INVITE) and carried forward between samples by the port pairs taken or
//! freed since, which is where nearly every descriptor of a call goes.

use std::fmt;
use std::time::Duration;

use switchboard_sip::Instant;
use tracing::warn;

/// Port pairs one inbound call holds (the caller's leg and the agent's leg).
pub const PAIRS_PER_CALL: usize = 2;

/// Descriptors a port pair holds (an RTP and an RTCP socket).
const FDS_PER_PAIR: u64 = 2;

/// Calls may fill this share of `RLIMIT_NOFILE`; the rest stays for what is not a call's:
/// HTTP clients, database connections, SIP over TCP/TLS/WS, recordings, logs.
const FD_HIGH_WATER_PERCENT: u64 = 90;

/// How often the open descriptors are counted at most. Reading `/proc/self/fd` costs in
/// proportion to the descriptors open: every 250 ms it took 3.6 % of the server's CPU with
/// 18,000 open (2,000 calls/s of 2 s, `docs/perf/`); between counts the port pairs carry
/// the estimate.
const FD_SAMPLE_EVERY: Duration = Duration::from_secs(2);

/// How often a refusal is logged at most (the count since the last line goes with it).
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Why a new call does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortage {
    /// Fewer free port pairs than a call takes plus the reserve kept for WebRTC legs.
    RtpPorts { free: usize, needed: usize },
    /// The open descriptors (estimated) plus a call's would pass the high-water mark.
    OpenFiles { open: u64, high_water: u64 },
}

impl Shortage {
    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Shortage::RtpPorts { .. } => "rtp_ports",
            Shortage::OpenFiles { .. } => "open_files",
        }
    }
}

impl fmt::Display for Shortage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shortage::RtpPorts { free, needed } => write!(
                f,
                "{free} free RTP port pairs, a call needs {needed} with the reserve (media.rtp_ports)"
            ),
            Shortage::OpenFiles { open, high_water } => write!(
                f,
                "about {open} open descriptors, calls stop at {high_water} ({FD_HIGH_WATER_PERCENT} % of the open files limit)"
            ),
        }
    }
}

/// The last count of open descriptors.
#[derive(Debug, Clone, Copy)]
struct FdSample {
    at: Instant,
    open: u64,
    /// Port pairs in use when counted.
    pairs: usize,
    high_water: u64,
}

/// The admission state of the endpoint task.
#[derive(Debug)]
pub struct Headroom {
    /// Port pairs kept free for legs that are not a call's first two (WebRTC agent legs,
    /// forks to several browsers): 1 % of the range, at least one.
    reserve_pairs: usize,
    fds: Option<FdSample>,
    /// When a refusal was last logged, and the refusals since.
    logged: Option<Instant>,
    unlogged: u64,
}

impl Headroom {
    /// For an RTP range of `port_pairs` pairs.
    pub fn new(port_pairs: usize) -> Headroom {
        Headroom {
            reserve_pairs: (port_pairs / 100).max(1),
            fds: None,
            logged: None,
            unlogged: 0,
        }
    }

    /// Whether a new call fits, given the pool's `(free, in use)` port pairs now.
    pub fn admit(&mut self, now: Instant, (free, in_use): (usize, usize)) -> Result<(), Shortage> {
        let fds = self.open_fds(now, in_use);
        judge(free, self.reserve_pairs, fds)
    }

    /// Logs a refusal, at most one line every [`LOG_EVERY`] with the refusals since.
    pub fn refused(&mut self, now: Instant, why: Shortage) {
        self.unlogged += 1;
        if self.logged.is_some_and(|at| now < at + LOG_EVERY) {
            return;
        }
        warn!(
            refused = self.unlogged,
            reason = why.as_str(),
            "new calls refused with 503 before resources run out: {why}"
        );
        self.logged = Some(now);
        self.unlogged = 0;
    }

    /// The open descriptors (the last count carried forward by the port pairs taken since)
    /// and the high-water mark; `None` where they cannot be counted.
    fn open_fds(&mut self, now: Instant, pairs: usize) -> Option<(u64, u64)> {
        let fresh = self.fds.is_some_and(|s| now < s.at + FD_SAMPLE_EVERY);
        if !fresh {
            self.fds = count_open_fds().map(|(open, limit)| FdSample {
                at: now,
                open,
                pairs,
                high_water: limit / 100 * FD_HIGH_WATER_PERCENT,
            });
        }
        let s = self.fds?;
        let taken = pairs as i64 - s.pairs as i64;
        let open = s.open.saturating_add_signed(taken * FDS_PER_PAIR as i64);
        Some((open, s.high_water))
    }
}

/// The decision: `free` pairs against a call's plus `reserve`; `fds` (open, high water).
fn judge(free: usize, reserve: usize, fds: Option<(u64, u64)>) -> Result<(), Shortage> {
    let needed = PAIRS_PER_CALL + reserve;
    if free < needed {
        return Err(Shortage::RtpPorts { free, needed });
    }
    if let Some((open, high_water)) = fds {
        let call = PAIRS_PER_CALL as u64 * FDS_PER_PAIR;
        if open.saturating_add(call) > high_water {
            return Err(Shortage::OpenFiles { open, high_water });
        }
    }
    Ok(())
}

/// Open descriptors of this process and its soft `RLIMIT_NOFILE` (Linux: `/proc/self/fd`).
fn count_open_fds() -> Option<(u64, u64)> {
    let (soft, _) = rlimit::Resource::NOFILE.get().ok()?;
    // The directory's own descriptor is one of the entries.
    let open = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some((open.saturating_sub(1), soft))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_keep_a_reserve_and_descriptors_a_high_water_mark() {
        // Six pairs, reserve one: two calls fit (6 then 4 free), the third (2 free) does not.
        assert_eq!(judge(6, 1, None), Ok(()));
        assert_eq!(judge(4, 1, None), Ok(()));
        assert_eq!(
            judge(2, 1, None),
            Err(Shortage::RtpPorts { free: 2, needed: 3 })
        );
        assert_eq!(judge(100, 1, Some((900, 1000))), Ok(()));
        assert_eq!(judge(100, 1, Some((996, 1000))), Ok(()));
        assert_eq!(
            judge(100, 1, Some((997, 1000))),
            Err(Shortage::OpenFiles {
                open: 997,
                high_water: 1000
            })
        );
    }

    #[test]
    fn descriptors_are_counted_and_carried_forward_by_port_pairs() {
        let mut h = Headroom::new(5_000);
        assert_eq!(h.reserve_pairs, 50);
        assert_eq!(Headroom::new(6).reserve_pairs, 1);
        let t0 = Instant::from_micros(1_000_000);
        let Some((open, high_water)) = h.open_fds(t0, 10) else {
            return; // not Linux: nothing to count
        };
        assert!(open > 0 && open < high_water, "{open} of {high_water}");
        // Within the sampling period, 100 more pairs read as 200 more descriptors.
        let later = t0 + Duration::from_millis(100);
        assert_eq!(h.open_fds(later, 110), Some((open + 200, high_water)));
        assert_eq!(h.admit(later, (4_000, 110)), Ok(()));
    }
}
