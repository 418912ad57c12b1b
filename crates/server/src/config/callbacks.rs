//! `[callbacks]`: how scheduled call-backs are dialed (queue, attempts, retry delay, calling
//! window and its time zone, validity, the lease of a node's claim) and the in-queue offer
//! (digit, when it is announced).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, err};
use crate::callbacks::plan::{Policy, parse_hhmm};

/// `[callbacks]` (all keys optional).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CallbacksConfig {
    /// The queue whose agents make call-backs that name none; absent: the first queue.
    pub queue: Option<String>,
    /// Calls to the number before a call-back is `failed`.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// After busy, no answer or a failure, the next attempt waits this long.
    #[serde(default = "default_retry_after")]
    pub retry_after_s: u32,
    /// `["08:00", "21:00"]`: local opening and closing time; nobody is dialed outside it.
    /// Absent: any time.
    pub window: Option<Vec<String>>,
    /// The time zone of `window` (IANA name); absent: `[routing] timezone`.
    pub timezone: Option<String>,
    /// A call-back not dialed this long after the time asked for is `expired`; 0: never.
    #[serde(default = "default_expire_after")]
    pub expire_after_s: u32,
    /// A node renews its claim on the call-backs it is dialing; a claim not renewed for this
    /// long (its node died) goes back to `pending` for any node to dial.
    #[serde(default = "default_lease")]
    pub lease_s: u32,
    /// The DTMF digit a queued caller presses to be called back, keeping their place.
    #[serde(default = "default_digit")]
    pub in_queue_digit: String,
    /// Seconds of waiting after which the in-queue offer is announced; absent: no offer.
    pub offer_after_s: Option<u32>,
}

fn default_digit() -> String {
    "1".to_owned()
}

fn default_max_attempts() -> u32 {
    3
}
fn default_retry_after() -> u32 {
    300
}
fn default_expire_after() -> u32 {
    86_400
}
fn default_lease() -> u32 {
    30
}

/// The shortest lease: renewals come every third of it, on the dialer's 1 s look.
const MIN_LEASE_S: u32 = 3;

impl Default for CallbacksConfig {
    fn default() -> Self {
        CallbacksConfig {
            queue: None,
            max_attempts: default_max_attempts(),
            retry_after_s: default_retry_after(),
            window: None,
            timezone: None,
            expire_after_s: default_expire_after(),
            lease_s: default_lease(),
            in_queue_digit: default_digit(),
            offer_after_s: None,
        }
    }
}

impl CallbacksConfig {
    /// Checks every key; `queues` are the configured queue names.
    pub fn validate(&self, queues: &[&str], errors: &mut Vec<ConfigError>) {
        if let Some(q) = &self.queue
            && !queues.contains(&q.as_str())
        {
            errors.push(err(
                "callbacks.queue",
                format!("no queue {q:?} (configured: {})", queues.join(", ")),
            ));
        }
        if self.max_attempts == 0 {
            errors.push(err("callbacks.max_attempts", "must be at least 1"));
        }
        if self.retry_after_s == 0 {
            errors.push(err("callbacks.retry_after_s", "must be positive"));
        }
        if self.lease_s < MIN_LEASE_S {
            errors.push(err(
                "callbacks.lease_s",
                format!("must be at least {MIN_LEASE_S}"),
            ));
        }
        if let Some(w) = &self.window {
            let ok = w.len() == 2 && w.iter().all(|t| parse_hhmm(t).is_some()) && w[0] != w[1];
            if !ok {
                errors.push(err(
                    "callbacks.window",
                    format!(
                        "{w:?} is not an opening and a closing time such as [\"08:00\", \"21:00\"]"
                    ),
                ));
            }
        }
        if self.in_queue_digit_char().is_none() {
            errors.push(err(
                "callbacks.in_queue_digit",
                format!("{:?} is not one digit \"0\" to \"9\"", self.in_queue_digit),
            ));
        }
        if self.offer_after_s.is_some_and(|s| s > 86_400) {
            errors.push(err("callbacks.offer_after_s", "at most a day (86400)"));
        }
        if let Some(tz) = &self.timezone
            && tz.parse::<chrono_tz::Tz>().is_err()
        {
            errors.push(err(
                "callbacks.timezone",
                format!("{tz:?} is not an IANA time zone (e.g. \"Europe/Zagreb\")"),
            ));
        }
    }

    /// `in_queue_digit` as a DTMF digit (`None` when it is not one digit 0–9: the prompts say
    /// digits only).
    pub fn in_queue_digit_char(&self) -> Option<char> {
        let mut chars = self.in_queue_digit.chars();
        match (chars.next(), chars.next()) {
            (Some(c @ '0'..='9'), None) => Some(c),
            _ => None,
        }
    }

    /// The schedule's policy (the configuration is validated; `routing_tz` is the fallback).
    pub fn policy(&self, routing_tz: &str) -> Policy {
        let zone = self
            .timezone
            .as_deref()
            .unwrap_or(routing_tz)
            .parse()
            .unwrap_or(chrono_tz::UTC);
        let window = self.window.as_ref().and_then(|w| match w.as_slice() {
            [a, b] => Some((parse_hhmm(a)?, parse_hhmm(b)?)),
            _ => None,
        });
        Policy {
            max_attempts: self.max_attempts.max(1),
            retry_after: Duration::from_secs(u64::from(self.retry_after_s.max(1))),
            window,
            zone,
            expire_after: (self.expire_after_s > 0)
                .then(|| Duration::from_secs(u64::from(self.expire_after_s))),
        }
    }

    /// How long a node's claim on a call-back it is dialing lasts unless renewed.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(u64::from(self.lease_s.max(MIN_LEASE_S)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_keys_are_named_and_good_ones_make_a_policy() {
        let bad = CallbacksConfig {
            queue: Some("nowhere".into()),
            max_attempts: 0,
            retry_after_s: 0,
            window: Some(vec!["8am".into(), "21:00".into()]),
            timezone: Some("Mars/Olympus".into()),
            expire_after_s: 0,
            lease_s: 1,
            in_queue_digit: "#1".into(),
            offer_after_s: Some(100_000),
        };
        let mut errors = Vec::new();
        bad.validate(&["orders"], &mut errors);
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "callbacks.queue",
                "callbacks.max_attempts",
                "callbacks.retry_after_s",
                "callbacks.lease_s",
                "callbacks.window",
                "callbacks.in_queue_digit",
                "callbacks.offer_after_s",
                "callbacks.timezone"
            ]
        );
        let good = CallbacksConfig {
            queue: Some("orders".into()),
            window: Some(vec!["08:00".into(), "21:00".into()]),
            ..CallbacksConfig::default()
        };
        let mut errors = Vec::new();
        good.validate(&["orders"], &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let p = good.policy("Europe/Zagreb");
        assert_eq!(p.zone, chrono_tz::Europe::Zagreb);
        assert_eq!((p.max_attempts, p.retry_after.as_secs()), (3, 300));
        assert!(p.window.is_some());
        assert_eq!(p.expire_after, Some(Duration::from_secs(86_400)));
        assert_eq!(good.lease(), Duration::from_secs(30));
        assert_eq!(bad.policy("UTC").expire_after, None);
        assert_eq!(good.in_queue_digit_char(), Some('1'));
    }
}
