//! Per-source limits on failed digest authentication (PRODUCT §4 `[security]`).
//!
//! A source address that fails `auth_failures_per_minute` times within a minute is refused
//! for `auth_ban_s`: `403` with no challenge, so guessing costs the guesser a round trip and
//! gains nothing. Only the **source address** is banned, never the user: the real agent
//! registering from another address is not locked out by someone guessing its password, and
//! the answer never depends on whether the user exists.
//!
//! The table is bounded: past [`MAX_SOURCES`] tracked addresses, the entries that have no
//! ban running and the oldest failure windows are dropped first.
//!
//! [`RateLimiter`] is the per-source INVITE rate (`invite_rate_per_source`): a token bucket
//! per address, so one flooding source meets `503` + `Retry-After` while every other source
//! (the other trunks, the agents) is served as before.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use crate::time::Instant;

/// Most source addresses tracked at once.
pub const MAX_SOURCES: usize = 65_536;

/// The window failures are counted over.
const WINDOW: Duration = Duration::from_secs(60);

/// Limits; `failures_per_minute == 0` turns the guard off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardConfig {
    /// Failures a source may have within a minute; one more starts a ban.
    pub failures_per_minute: u32,
    /// How long a ban lasts.
    pub ban: Duration,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            failures_per_minute: 10,
            ban: Duration::from_secs(300),
        }
    }
}

/// What the driver should log (the sans-IO crate logs nothing itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthNotice {
    /// Credentials from `source` for `user` were wrong (bad response, unknown user,
    /// replayed nonce count, wrong `uri`, missing `qop`, unoffered algorithm).
    Failed {
        source: IpAddr,
        user: String,
        reason: &'static str,
    },
    /// `source` is refused for `ban` after `failures` failures within a minute.
    Banned {
        source: IpAddr,
        failures: u32,
        ban: Duration,
    },
}

#[derive(Debug, Clone, Copy)]
struct Source {
    window_start: Instant,
    failures: u32,
    banned_until: Option<Instant>,
}

/// Counters for metrics (monotonic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardStats {
    /// Authentication failures seen.
    pub failures: u64,
    /// Requests refused because their source was banned.
    pub refused_banned: u64,
    /// Bans started.
    pub bans: u64,
}

/// Failure counting and bans per source address.
#[derive(Debug)]
pub struct AuthGuard {
    cfg: GuardConfig,
    sources: HashMap<IpAddr, Source>,
    notices: VecDeque<AuthNotice>,
    stats: GuardStats,
}

impl AuthGuard {
    /// A guard with these limits.
    pub fn new(cfg: GuardConfig) -> AuthGuard {
        AuthGuard {
            cfg,
            sources: HashMap::new(),
            notices: VecDeque::new(),
            stats: GuardStats::default(),
        }
    }

    /// Replaces the limits (configuration reload); running bans keep their end.
    pub fn set_config(&mut self, cfg: GuardConfig) {
        self.cfg = cfg;
    }

    /// Whether requests from `source` are refused now; counts the refusal when they are.
    pub fn refuse(&mut self, source: IpAddr, now: Instant) -> bool {
        let banned = self
            .sources
            .get(&source)
            .and_then(|s| s.banned_until)
            .is_some_and(|until| now < until);
        if banned {
            self.stats.refused_banned += 1;
        }
        banned
    }

    /// Records a failure from `source` for `user`; starts a ban past the limit.
    pub fn failed(&mut self, source: IpAddr, user: &str, reason: &'static str, now: Instant) {
        self.stats.failures += 1;
        self.notices.push_back(AuthNotice::Failed {
            source,
            user: user.to_owned(),
            reason,
        });
        if self.cfg.failures_per_minute == 0 {
            return;
        }
        if !self.sources.contains_key(&source) && self.sources.len() >= MAX_SOURCES {
            self.make_room(now);
        }
        let entry = self.sources.entry(source).or_insert(Source {
            window_start: now,
            failures: 0,
            banned_until: None,
        });
        if now.saturating_duration_since(entry.window_start) >= WINDOW {
            entry.window_start = now;
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        let running = entry.banned_until.is_some_and(|until| now < until);
        if entry.failures > self.cfg.failures_per_minute && !running {
            entry.banned_until = Some(now + self.cfg.ban);
            self.stats.bans += 1;
            self.notices.push_back(AuthNotice::Banned {
                source,
                failures: entry.failures,
                ban: self.cfg.ban,
            });
        }
    }

    /// The next notice for the driver to log.
    pub fn poll_notice(&mut self) -> Option<AuthNotice> {
        self.notices.pop_front()
    }

    /// Monotonic counters.
    pub fn stats(&self) -> GuardStats {
        self.stats
    }

    /// Sources tracked now (bounded by [`MAX_SOURCES`]).
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }

    /// Forgets sources whose window and ban are both over.
    pub fn prune(&mut self, now: Instant) {
        self.sources.retain(|_, s| {
            let ban_running = s.banned_until.is_some_and(|until| now < until);
            ban_running || now.saturating_duration_since(s.window_start) < WINDOW
        });
    }

    fn make_room(&mut self, now: Instant) {
        self.prune(now);
        if self.sources.len() < MAX_SOURCES {
            return;
        }
        // Still full of live entries: drop the oldest windows without a running ban.
        let mut unbanned: Vec<(Instant, IpAddr)> = self
            .sources
            .iter()
            .filter(|(_, s)| s.banned_until.is_none_or(|until| now >= until))
            .map(|(ip, s)| (s.window_start, *ip))
            .collect();
        unbanned.sort_unstable();
        for (_, ip) in unbanned.iter().take(MAX_SOURCES / 8) {
            self.sources.remove(ip);
        }
    }
}

/// A token bucket per source address: `rate` requests per second, bursts up to `rate`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: u32,
    buckets: HashMap<IpAddr, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens (in millionths, so refills need no floating point).
    micro_tokens: u64,
    at: Instant,
}

impl RateLimiter {
    /// `rate` requests per second per source; 0 turns the limit off.
    pub fn new(rate: u32) -> RateLimiter {
        RateLimiter {
            rate,
            buckets: HashMap::new(),
        }
    }

    /// Takes a token for `source` at `now`: `Ok(())`, or `Err(retry_after)` (whole seconds,
    /// at least 1) when the source is over its rate.
    pub fn admit(&mut self, source: IpAddr, now: Instant) -> Result<(), u32> {
        if self.rate == 0 {
            return Ok(());
        }
        let full = u64::from(self.rate) * 1_000_000;
        if !self.buckets.contains_key(&source) && self.buckets.len() >= MAX_SOURCES {
            self.prune(now);
            if self.buckets.len() >= MAX_SOURCES {
                // Full of sources active within the last second: refuse newcomers rather
                // than grow without bound.
                return Err(1);
            }
        }
        let bucket = self.buckets.entry(source).or_insert(Bucket {
            micro_tokens: full,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at);
        let refill = u64::try_from(elapsed.as_micros())
            .unwrap_or(u64::MAX)
            .saturating_mul(u64::from(self.rate));
        bucket.micro_tokens = bucket.micro_tokens.saturating_add(refill).min(full);
        bucket.at = now;
        if bucket.micro_tokens >= 1_000_000 {
            bucket.micro_tokens -= 1_000_000;
            return Ok(());
        }
        let missing_micros = (1_000_000 - bucket.micro_tokens).div_ceil(u64::from(self.rate));
        Err(u32::try_from(missing_micros.div_ceil(1_000_000))
            .unwrap_or(u32::MAX)
            .max(1))
    }

    /// Forgets sources whose bucket has been full again for a while.
    pub fn prune(&mut self, now: Instant) {
        self.buckets
            .retain(|_, b| now.saturating_duration_since(b.at) < Duration::from_secs(1));
    }

    /// Sources tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> Instant {
        Instant::from_micros(s * 1_000_000)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ban_starts_past_the_limit_and_ends_after_its_time() {
        let mut g = AuthGuard::new(GuardConfig {
            failures_per_minute: 3,
            ban: Duration::from_secs(300),
        });
        let src = ip("192.0.2.7");
        for i in 0..3 {
            g.failed(src, "ana", "bad response", at(i));
            assert!(
                !g.refuse(src, at(i)),
                "within the limit after {} failures",
                i + 1
            );
        }
        g.failed(src, "ana", "bad response", at(3));
        assert!(g.refuse(src, at(3)));
        assert!(g.refuse(src, at(302)));
        assert!(!g.refuse(src, at(303)));
        assert!(
            !g.refuse(ip("192.0.2.8"), at(4)),
            "another address is not banned"
        );
        let stats = g.stats();
        assert_eq!(
            (stats.failures, stats.bans, stats.refused_banned),
            (4, 1, 2)
        );
        let notices: Vec<_> = std::iter::from_fn(|| g.poll_notice()).collect();
        assert_eq!(notices.len(), 5);
        assert_eq!(
            notices[4],
            AuthNotice::Banned {
                source: src,
                failures: 4,
                ban: Duration::from_secs(300)
            }
        );
    }

    #[test]
    fn failures_spread_over_more_than_a_minute_never_ban() {
        let mut g = AuthGuard::new(GuardConfig {
            failures_per_minute: 2,
            ban: Duration::from_secs(60),
        });
        let src = ip("2001:db8::1");
        for i in 0..10 {
            g.failed(src, "ana", "bad response", at(i * 31));
            assert!(!g.refuse(src, at(i * 31)));
        }
    }

    #[test]
    fn zero_limit_turns_the_guard_off_but_still_counts() {
        let mut g = AuthGuard::new(GuardConfig {
            failures_per_minute: 0,
            ban: Duration::from_secs(60),
        });
        for _ in 0..100 {
            g.failed(ip("192.0.2.1"), "x", "bad response", at(0));
        }
        assert!(!g.refuse(ip("192.0.2.1"), at(0)));
        assert_eq!(g.stats().failures, 100);
        assert_eq!(g.tracked(), 0);
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_running_bans() {
        let mut g = AuthGuard::new(GuardConfig {
            failures_per_minute: 1,
            ban: Duration::from_secs(600),
        });
        let banned = ip("198.51.100.1");
        g.failed(banned, "u", "bad response", at(0));
        g.failed(banned, "u", "bad response", at(0));
        assert!(g.refuse(banned, at(0)));
        for n in 0..(MAX_SOURCES as u32 + 1000) {
            let addr = IpAddr::from(std::net::Ipv6Addr::from(u128::from(n) + 1));
            g.failed(addr, "u", "bad response", at(1));
        }
        assert!(g.tracked() <= MAX_SOURCES);
        assert!(g.refuse(banned, at(2)), "a running ban survives eviction");
        g.prune(at(700));
        assert_eq!(g.tracked(), 0);
    }

    #[test]
    fn one_flooding_source_is_limited_and_the_others_are_not() {
        let mut r = RateLimiter::new(50);
        let flood = ip("192.0.2.66");
        let trunk = ip("192.0.2.10");
        let mut admitted = 0;
        // 2,000 INVITE/s from one source for 2 s, 20/s from another.
        for ms in 0..2000u64 {
            let now = Instant::from_micros(ms * 1000);
            for _ in 0..2 {
                if r.admit(flood, now).is_ok() {
                    admitted += 1;
                }
            }
            if ms % 50 == 0 {
                assert_eq!(r.admit(trunk, now), Ok(()), "the trunk at {ms} ms");
            }
        }
        // A burst of 50, then 50/s.
        assert!((140..=152).contains(&admitted), "{admitted}");
        let _ = r.admit(flood, at(2));
        assert_eq!(r.admit(flood, at(2)), Err(1));
        assert_eq!(RateLimiter::new(0).admit(flood, at(0)), Ok(()));
    }

    #[test]
    fn retry_after_covers_a_slow_rate() {
        let mut r = RateLimiter::new(1);
        let src = ip("192.0.2.1");
        assert_eq!(r.admit(src, at(0)), Ok(()));
        assert_eq!(r.admit(src, at(0)), Err(1));
        assert_eq!(r.admit(src, at(1)), Ok(()));
        r.prune(at(10));
        assert_eq!(r.tracked(), 0);
    }
}
