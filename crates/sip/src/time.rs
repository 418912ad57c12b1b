//! Time as data: an [`Instant`] the caller passes in, and the RFC 3261 timer table.
//!
//! Nothing in this crate reads the OS clock. The driver converts its clock into an
//! [`Instant`] (microseconds since an epoch of its choice) and passes it to every call.
//! Digest nonces carry their issue time as an `Instant`: they stay valid across a restart
//! only if the driver keeps both its nonce secret and an epoch such as the UNIX epoch.

use std::ops::Add;
use std::time::Duration;

/// A point in time: microseconds since an arbitrary epoch chosen by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The epoch itself.
    pub const ZERO: Instant = Instant(0);

    /// An instant `micros` microseconds after the epoch.
    pub const fn from_micros(micros: u64) -> Instant {
        Instant(micros)
    }

    /// An instant `since_epoch` after the epoch (saturating at `u64::MAX` microseconds).
    pub fn from_duration(since_epoch: Duration) -> Instant {
        Instant(u64::try_from(since_epoch.as_micros()).unwrap_or(u64::MAX))
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Time since the epoch.
    pub const fn since_epoch(self) -> Duration {
        Duration::from_micros(self.0)
    }

    /// `self - earlier`, or zero when `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    /// Saturating: an instant never wraps around.
    fn add(self, rhs: Duration) -> Instant {
        let micros = u64::try_from(rhs.as_micros()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(micros))
    }
}

/// RFC 3261 timer base values. Defaults: T1 = 500 ms, T2 = 4 s, T4 = 5 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate; base of retransmission intervals and of the 64·T1 timeouts.
    pub t1: Duration,
    /// Cap on non-INVITE request and INVITE response retransmission intervals.
    pub t2: Duration,
    /// Time a message may stay in the network.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// Smallest T1 accepted: a zero T1 would make retransmission timers fire in a loop.
    pub const MIN_T1: Duration = Duration::from_millis(1);

    /// The configuration with T1 raised to [`Self::MIN_T1`] and T2 to at least T1.
    pub fn sanitized(self) -> TimerConfig {
        let t1 = self.t1.max(Self::MIN_T1);
        TimerConfig {
            t1,
            t2: self.t2.max(t1),
            t4: self.t4,
        }
    }

    /// 64·T1, the transaction timeout of Timers B, F, H, J, L and M.
    pub fn t1_x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
}

/// The RFC 3261 §17 timers (Table 4) and the RFC 6026 timers L and M.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// Client INVITE: request retransmission (T1, doubling). Unreliable transports only.
    A,
    /// Client INVITE: transaction timeout (64·T1). Armed again in Proceeding when a CANCEL
    /// is sent: no final response 64·T1 later ends the transaction (RFC 3261 §9.1).
    B,
    /// Client INVITE: wait for response retransmissions (32 s; 0 on reliable transports).
    D,
    /// Client non-INVITE: request retransmission (T1 doubling up to T2). Unreliable only.
    E,
    /// Client non-INVITE: transaction timeout (64·T1).
    F,
    /// Server INVITE: final response retransmission (T1 doubling up to T2). Unreliable only.
    G,
    /// Server INVITE: wait for ACK (64·T1).
    H,
    /// Server INVITE: wait for ACK retransmissions (T4; 0 on reliable transports).
    I,
    /// Server non-INVITE: wait for request retransmissions (64·T1; 0 on reliable transports).
    J,
    /// Client non-INVITE: wait for response retransmissions (T4; 0 on reliable transports).
    K,
    /// Server INVITE (RFC 6026 Accepted): wait for INVITE retransmissions (64·T1).
    L,
    /// Client INVITE (RFC 6026 Accepted): wait for 2xx retransmissions (64·T1).
    M,
}

impl Timer {
    /// Every timer, in table order.
    pub const ALL: [Timer; 12] = [
        Timer::A,
        Timer::B,
        Timer::D,
        Timer::E,
        Timer::F,
        Timer::G,
        Timer::H,
        Timer::I,
        Timer::J,
        Timer::K,
        Timer::L,
        Timer::M,
    ];

    /// Timer D on unreliable transports: "at least 32 seconds" (RFC 3261 §17.1.1.2).
    pub const D_UNRELIABLE: Duration = Duration::from_secs(32);

    /// The initial value of this timer, or `None` when the timer is not used on this kind
    /// of transport (retransmission timers on reliable transports).
    pub fn initial(self, cfg: &TimerConfig, reliable: bool) -> Option<Duration> {
        let zero_if_reliable = |d: Duration| Some(if reliable { Duration::ZERO } else { d });
        match self {
            Timer::A | Timer::E | Timer::G => (!reliable).then_some(cfg.t1),
            Timer::B | Timer::F | Timer::H | Timer::L | Timer::M => Some(cfg.t1_x64()),
            Timer::D => zero_if_reliable(Self::D_UNRELIABLE),
            Timer::I | Timer::K => zero_if_reliable(cfg.t4),
            Timer::J => zero_if_reliable(cfg.t1_x64()),
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// Deadlines of the armed timers of one transaction (at most one deadline per timer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimerSlots([Option<Instant>; 12]);

impl TimerSlots {
    /// Arm `timer` to fire at `at` (replacing an earlier deadline).
    pub fn arm(&mut self, timer: Timer, at: Instant) {
        if let Some(slot) = self.0.get_mut(timer.slot()) {
            *slot = Some(at);
        }
    }

    /// Arm `timer` at its initial interval from `now` ([`Timer::initial`]); a timer that
    /// does not run on this transport stays disarmed.
    pub fn arm_initial(&mut self, timer: Timer, now: Instant, cfg: &TimerConfig, reliable: bool) {
        if let Some(d) = timer.initial(cfg, reliable) {
            self.arm(timer, now + d);
        }
    }

    /// Disarm `timer`.
    pub fn disarm(&mut self, timer: Timer) {
        if let Some(slot) = self.0.get_mut(timer.slot()) {
            *slot = None;
        }
    }

    /// Disarm every timer.
    pub fn clear(&mut self) {
        self.0 = [None; 12];
    }

    /// The deadline of `timer`, when armed.
    pub fn deadline(&self, timer: Timer) -> Option<Instant> {
        self.0.get(timer.slot()).copied().flatten()
    }

    /// The earliest armed deadline and its timer (the first in table order on a tie).
    pub fn next(&self) -> Option<(Instant, Timer)> {
        let mut best: Option<(Instant, Timer)> = None;
        for (slot, timer) in self.0.iter().zip(Timer::ALL) {
            if let Some(at) = *slot
                && best.is_none_or(|(earliest, _)| at < earliest)
            {
                best = Some((at, timer));
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_table_matches_rfc3261_table_4() {
        let cfg = TimerConfig::default();
        let ms = Duration::from_millis;
        assert_eq!(Timer::A.initial(&cfg, false), Some(ms(500)));
        assert_eq!(Timer::A.initial(&cfg, true), None);
        assert_eq!(Timer::B.initial(&cfg, true), Some(ms(32_000)));
        assert_eq!(Timer::D.initial(&cfg, false), Some(ms(32_000)));
        assert_eq!(Timer::D.initial(&cfg, true), Some(Duration::ZERO));
        assert_eq!(Timer::E.initial(&cfg, true), None);
        assert_eq!(Timer::F.initial(&cfg, false), Some(ms(32_000)));
        assert_eq!(Timer::G.initial(&cfg, false), Some(ms(500)));
        assert_eq!(Timer::H.initial(&cfg, false), Some(ms(32_000)));
        assert_eq!(Timer::I.initial(&cfg, false), Some(ms(5_000)));
        assert_eq!(Timer::I.initial(&cfg, true), Some(Duration::ZERO));
        assert_eq!(Timer::J.initial(&cfg, false), Some(ms(32_000)));
        assert_eq!(Timer::J.initial(&cfg, true), Some(Duration::ZERO));
        assert_eq!(Timer::K.initial(&cfg, false), Some(ms(5_000)));
        assert_eq!(Timer::K.initial(&cfg, true), Some(Duration::ZERO));
    }

    #[test]
    fn slots_report_earliest_deadline() {
        let mut s = TimerSlots::default();
        assert_eq!(s.next(), None);
        s.arm(Timer::B, Instant::from_micros(50));
        s.arm(Timer::A, Instant::from_micros(10));
        assert_eq!(s.next(), Some((Instant::from_micros(10), Timer::A)));
        s.disarm(Timer::A);
        assert_eq!(s.next(), Some((Instant::from_micros(50), Timer::B)));
        s.arm(Timer::H, Instant::from_micros(50));
        s.arm(Timer::G, Instant::from_micros(50));
        assert_eq!(s.next(), Some((Instant::from_micros(50), Timer::B)));
        s.disarm(Timer::B);
        assert_eq!(s.next(), Some((Instant::from_micros(50), Timer::G)));
    }

    #[test]
    fn instant_arithmetic_saturates() {
        let t = Instant::from_micros(u64::MAX - 1) + Duration::from_secs(5);
        assert_eq!(t.as_micros(), u64::MAX);
        assert_eq!(Instant::ZERO.saturating_duration_since(t), Duration::ZERO);
    }

    #[test]
    fn sanitized_config_never_has_zero_t1() {
        let cfg = TimerConfig {
            t1: Duration::ZERO,
            t2: Duration::ZERO,
            t4: Duration::ZERO,
        }
        .sanitized();
        assert_eq!(cfg.t1, TimerConfig::MIN_T1);
        assert!(cfg.t2 >= cfg.t1);
    }
}
