//! The call-back schedule as pure decisions: when a call-back is due (its time, the calling
//! window in the call center's time zone), when it expires (not dialed within
//! `expire_after_s` of the time the client asked for) and what follows an attempt (done, a
//! retry after `retry_after_s`, `failed` after `max_attempts`). No I/O and no clock: `now` is
//! passed in, so the tests below run in virtual time.

use std::time::Duration;

use chrono::{DateTime, Days, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use switchboard_store::CallbackStatus;

/// After an agent did not take a call-back, it is offered again this much later (the
/// customer was not dialed, so no attempt is counted).
pub const AGENT_RETRY: Duration = Duration::from_secs(10);

/// The `[callbacks]` keys the schedule follows.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub max_attempts: u32,
    pub retry_after: Duration,
    /// Local opening and closing time; `None`: any time.
    pub window: Option<(NaiveTime, NaiveTime)>,
    pub zone: Tz,
    /// How long after the time asked for a call-back may still be dialed; `None`: forever.
    pub expire_after: Option<Duration>,
}

/// Parses a window bound such as `"08:00"` (`"24:00"` is the end of the day).
pub fn parse_hhmm(s: &str) -> Option<NaiveTime> {
    if s == "24:00" {
        return NaiveTime::from_hms_opt(23, 59, 59);
    }
    NaiveTime::parse_from_str(s, "%H:%M").ok()
}

/// The time a call-back's validity counts from: the time asked for (`at`), or when it was
/// requested if that is later (as soon as possible, or a time already past), so a request
/// always has its whole validity to be dialed in.
pub fn due_from(at: Option<DateTime<Utc>>, created_at: DateTime<Utc>) -> DateTime<Utc> {
    at.map_or(created_at, |at| at.max(created_at))
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    Answered,
    Busy,
    NoAnswer,
    Failed,
    /// The agent did not take the call; the number was not dialed.
    AgentNoAnswer,
}

impl AttemptResult {
    pub const fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Answered => "answered",
            AttemptResult::Busy => "busy",
            AttemptResult::NoAnswer => "no_answer",
            AttemptResult::Failed => "failed",
            AttemptResult::AgentNoAnswer => "agent_no_answer",
        }
    }
}

/// What a due check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Dial now (when an agent of the queue is free).
    Now,
    /// Not before this time (its time, or the window's next opening).
    Later(DateTime<Utc>),
    /// Its validity ended before it could be dialed: `expired`, never dialed again.
    Expired,
}

/// The state after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Next {
    pub status: CallbackStatus,
    pub attempts: u32,
    pub next_at: Option<DateTime<Utc>>,
}

impl Policy {
    /// Whether `now` is inside the calling window.
    pub fn in_window(&self, now: DateTime<Utc>) -> bool {
        let Some((open, close)) = self.window else {
            return true;
        };
        let t = now.with_timezone(&self.zone).time();
        if open <= close {
            open <= t && t < close
        } else {
            t >= open || t < close
        }
    }

    /// The window's next opening after `now` (`now` itself when inside it).
    pub fn window_opens(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let Some((open, _)) = self.window else {
            return now;
        };
        if self.in_window(now) {
            return now;
        }
        let local = now.with_timezone(&self.zone);
        let mut day = local.date_naive();
        for _ in 0..3 {
            let candidate = self
                .zone
                .from_local_datetime(&day.and_time(open))
                .earliest()
                // A daylight-saving gap swallowed the opening: an hour later exists.
                .or_else(|| {
                    self.zone
                        .from_local_datetime(&(day.and_time(open) + chrono::Duration::hours(1)))
                        .earliest()
                });
            if let Some(c) = candidate
                && c > local
            {
                return c.with_timezone(&Utc);
            }
            day = day.checked_add_days(Days::new(1)).unwrap_or(day);
        }
        now
    }

    /// When a call-back due from `asked` (see [`due_from`]) expires; `None`: never.
    pub fn expires_at(&self, asked: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let after = chrono::Duration::from_std(self.expire_after?).ok()?;
        asked.checked_add_signed(after)
    }

    /// Whether a pending call-back asked for `asked` and due at `next_at` (`None`: as soon as
    /// possible) is to be dialed at `now`.
    pub fn due(
        &self,
        asked: DateTime<Utc>,
        next_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Due {
        if self.expires_at(asked).is_some_and(|end| now >= end) {
            return Due::Expired;
        }
        if let Some(at) = next_at
            && at > now
        {
            return Due::Later(at);
        }
        if self.in_window(now) {
            Due::Now
        } else {
            Due::Later(self.window_opens(now))
        }
    }

    /// What follows an attempt that ended with `result` at `now`, `attempts` having been
    /// made before it, for a call-back asked for `asked`. A retry is never due after the
    /// call-back expires: it is looked at again by then at the latest, and expires if still
    /// not dialed; once expired, a call-back that still has attempts left is `expired`.
    pub fn after(
        &self,
        attempts: u32,
        result: AttemptResult,
        asked: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Next {
        let mut next = self.after_attempt(attempts, result, now);
        if next.status == CallbackStatus::Pending
            && let Some(end) = self.expires_at(asked)
        {
            if now >= end {
                next.status = CallbackStatus::Expired;
                next.next_at = None;
            } else {
                next.next_at = next.next_at.map(|at| at.min(end));
            }
        }
        next
    }

    fn after_attempt(&self, attempts: u32, result: AttemptResult, now: DateTime<Utc>) -> Next {
        match result {
            AttemptResult::Answered => Next {
                status: CallbackStatus::Done,
                attempts: attempts.saturating_add(1),
                next_at: None,
            },
            AttemptResult::AgentNoAnswer => Next {
                status: CallbackStatus::Pending,
                attempts,
                next_at: Some(now + AGENT_RETRY),
            },
            AttemptResult::Busy | AttemptResult::NoAnswer | AttemptResult::Failed => {
                let attempts = attempts.saturating_add(1);
                if attempts >= self.max_attempts {
                    Next {
                        status: CallbackStatus::Failed,
                        attempts,
                        next_at: None,
                    }
                } else {
                    Next {
                        status: CallbackStatus::Pending,
                        attempts,
                        next_at: Some(now + self.retry_after),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zagreb(window: Option<(&str, &str)>) -> Policy {
        Policy {
            max_attempts: 3,
            retry_after: Duration::from_secs(300),
            window: window.map(|(a, b)| (parse_hhmm(a).unwrap(), parse_hhmm(b).unwrap())),
            zone: "Europe/Zagreb".parse().unwrap(),
            expire_after: None,
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_call_back_is_due_at_its_time_not_before() {
        let p = zagreb(None);
        let at = utc("2026-03-02T13:30:00Z");
        assert_eq!(
            p.due(at, Some(at), utc("2026-03-02T13:29:59Z")),
            Due::Later(at)
        );
        assert_eq!(p.due(at, Some(at), at), Due::Now);
        assert_eq!(p.due(at, None, at), Due::Now);
    }

    #[test]
    fn nobody_is_dialed_outside_the_window_in_local_time() {
        // Zagreb is UTC+1 in March (before the switch to summer time).
        let p = zagreb(Some(("08:00", "21:00")));
        assert!(!p.in_window(utc("2026-03-02T06:59:00Z"))); // 07:59 local
        assert!(p.in_window(utc("2026-03-02T07:00:00Z"))); // 08:00 local
        assert!(p.in_window(utc("2026-03-02T19:59:00Z"))); // 20:59 local
        assert!(!p.in_window(utc("2026-03-02T20:00:00Z"))); // 21:00 local
        // Asked for 22:30 local: due at 08:00 local the next morning.
        assert_eq!(
            p.due(
                utc("2026-03-02T21:30:00Z"),
                Some(utc("2026-03-02T21:30:00Z")),
                utc("2026-03-02T21:30:00Z")
            ),
            Due::Later(utc("2026-03-03T07:00:00Z"))
        );
        // Early in the morning: the same day's opening.
        assert_eq!(
            p.window_opens(utc("2026-03-03T04:00:00Z")),
            utc("2026-03-03T07:00:00Z")
        );
        // Summer time (UTC+2): the opening moves in UTC.
        assert_eq!(
            p.window_opens(utc("2026-07-01T03:00:00Z")),
            utc("2026-07-01T06:00:00Z")
        );
    }

    #[test]
    fn a_window_may_span_midnight() {
        let p = zagreb(Some(("22:00", "02:00")));
        assert!(p.in_window(utc("2026-03-02T22:00:00Z"))); // 23:00 local
        assert!(p.in_window(utc("2026-03-03T00:30:00Z"))); // 01:30 local
        assert!(!p.in_window(utc("2026-03-03T02:00:00Z"))); // 03:00 local
        assert_eq!(
            p.window_opens(utc("2026-03-03T02:00:00Z")),
            utc("2026-03-03T21:00:00Z")
        );
    }

    #[test]
    fn busy_is_retried_then_failed_after_max_attempts() {
        let p = zagreb(None);
        let t0 = utc("2026-03-02T10:00:00Z");
        let first = p.after(0, AttemptResult::Busy, t0, t0);
        assert_eq!(
            first,
            Next {
                status: CallbackStatus::Pending,
                attempts: 1,
                next_at: Some(t0 + Duration::from_secs(300)),
            }
        );
        // In virtual time: not due before the retry, due at it.
        let retry = first.next_at.unwrap();
        assert_eq!(
            p.due(t0, first.next_at, retry - Duration::from_secs(1)),
            Due::Later(retry)
        );
        assert_eq!(p.due(t0, first.next_at, retry), Due::Now);
        let second = p.after(1, AttemptResult::NoAnswer, t0, retry);
        assert_eq!(second.status, CallbackStatus::Pending);
        let third = p.after(2, AttemptResult::Failed, t0, second.next_at.unwrap());
        assert_eq!(
            third,
            Next {
                status: CallbackStatus::Failed,
                attempts: 3,
                next_at: None,
            }
        );
    }

    #[test]
    fn an_answer_ends_it_and_an_agent_who_did_not_take_it_costs_no_attempt() {
        let p = zagreb(None);
        let t0 = utc("2026-03-02T10:00:00Z");
        assert_eq!(
            p.after(1, AttemptResult::Answered, t0, t0).status,
            CallbackStatus::Done
        );
        let again = p.after(1, AttemptResult::AgentNoAnswer, t0, t0);
        assert_eq!(
            (again.status, again.attempts, again.next_at),
            (CallbackStatus::Pending, 1, Some(t0 + AGENT_RETRY))
        );
    }

    #[test]
    fn a_call_back_not_dialed_within_its_validity_expires() {
        let p = Policy {
            expire_after: Some(Duration::from_secs(3600)),
            ..zagreb(Some(("08:00", "21:00")))
        };
        // Asked for 20:30 local (19:30 UTC): due at once, valid until 21:30 local.
        let asked = utc("2026-03-02T19:30:00Z");
        assert_eq!(p.expires_at(asked), Some(utc("2026-03-02T20:30:00Z")));
        assert_eq!(p.due(asked, Some(asked), asked), Due::Now);
        // Nobody was free before the window closed at 21:00: it waits for the morning...
        let closed = utc("2026-03-02T20:10:00Z");
        assert!(matches!(p.due(asked, Some(asked), closed), Due::Later(_)));
        // ...until its validity ends, while the window is still closed.
        let end = utc("2026-03-02T20:30:00Z");
        assert_eq!(
            p.due(asked, Some(asked), end - Duration::from_secs(1)),
            Due::Later(utc("2026-03-03T07:00:00Z"))
        );
        assert_eq!(p.due(asked, Some(asked), end), Due::Expired);
        // Never: without `expire_after_s`, the morning's opening.
        assert_eq!(
            zagreb(Some(("08:00", "21:00"))).due(asked, Some(asked), end),
            Due::Later(utc("2026-03-03T07:00:00Z"))
        );
    }

    #[test]
    fn the_validity_counts_from_the_time_asked_for_or_the_request_if_later() {
        let created = utc("2026-03-02T10:00:00Z");
        assert_eq!(due_from(None, created), created);
        let later = utc("2026-03-02T15:00:00Z");
        assert_eq!(due_from(Some(later), created), later);
        // A time already past when requested: as soon as possible, with its whole validity.
        assert_eq!(
            due_from(Some(utc("2026-02-01T10:00:00Z")), created),
            created
        );
    }

    #[test]
    fn a_retry_is_looked_at_by_the_expiry_and_an_attempt_past_it_expires_the_call_back() {
        let p = Policy {
            expire_after: Some(Duration::from_secs(600)),
            ..zagreb(None)
        };
        let asked = utc("2026-03-02T10:00:00Z");
        let end = utc("2026-03-02T10:10:00Z");
        // Busy at 10:02: the retry (300 s) is inside the validity.
        let t = utc("2026-03-02T10:02:00Z");
        let next = p.after(0, AttemptResult::Busy, asked, t);
        assert_eq!(next.next_at, Some(t + Duration::from_secs(300)));
        // Busy at 10:08: the retry would be at 10:13, past it; looked at again at 10:10...
        let t = utc("2026-03-02T10:08:00Z");
        let next = p.after(1, AttemptResult::Busy, asked, t);
        assert_eq!(
            (next.status, next.attempts, next.next_at),
            (CallbackStatus::Pending, 2, Some(end))
        );
        // ...when it expires.
        assert_eq!(p.due(asked, next.next_at, end), Due::Expired);
        // An attempt that ends after the expiry leaves it expired with its attempts counted;
        // the last attempt allowed still fails it, and an answer is still done.
        let late = end + Duration::from_secs(5);
        let next = p.after(1, AttemptResult::NoAnswer, asked, late);
        assert_eq!(
            (next.status, next.attempts, next.next_at),
            (CallbackStatus::Expired, 2, None)
        );
        assert_eq!(
            p.after(1, AttemptResult::AgentNoAnswer, asked, late).status,
            CallbackStatus::Expired
        );
        assert_eq!(
            p.after(2, AttemptResult::Busy, asked, late).status,
            CallbackStatus::Failed
        );
        assert_eq!(
            p.after(2, AttemptResult::Answered, asked, late).status,
            CallbackStatus::Done
        );
    }

    #[test]
    fn window_bounds_parse() {
        assert_eq!(parse_hhmm("08:00"), NaiveTime::from_hms_opt(8, 0, 0));
        assert!(parse_hhmm("24:00").is_some());
        assert_eq!(parse_hhmm("8am"), None);
        assert_eq!(parse_hhmm("25:00"), None);
    }
}
