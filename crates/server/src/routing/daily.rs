//! The call center's day: "calls today" and talk time today reset at local midnight in
//! `[routing] timezone`. The engine runs the reset on its own clock
//! ([`Engine::schedule_daily_reset`]); this module only finds the next midnight.

use chrono::{DateTime, Days, NaiveTime, TimeZone as _};
use chrono_tz::Tz;
use switchboard_engine::{Engine, Time};
use tracing::info;

/// The first local midnight in `zone` strictly after `after` (engine time: milliseconds since
/// the Unix epoch). A midnight that a DST change skips becomes the first instant of that day.
pub fn next_local_midnight(after: Time, zone: Tz) -> Time {
    let ms = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
    let Some(utc) = DateTime::from_timestamp_millis(ms) else {
        return after.plus_millis(86_400_000);
    };
    let local_day = utc.with_timezone(&zone).date_naive();
    let Some(next_day) = local_day.checked_add_days(Days::new(1)) else {
        return after.plus_millis(86_400_000);
    };
    let midnight = next_day.and_time(NaiveTime::MIN);
    // A skipped midnight: take the first hour of the day that exists.
    let start = (0..3)
        .filter_map(|h| {
            zone.from_local_datetime(&(midnight + chrono::Duration::hours(h)))
                .earliest()
        })
        .next();
    start
        .and_then(|s| u64::try_from(s.timestamp_millis()).ok())
        .map_or(after.plus_millis(86_400_000), Time::from_millis)
}

/// Schedules the engine's next daily reset after `now`.
pub fn schedule_next_reset(engine: &Engine, now: Time, zone: Tz) {
    let at = next_local_midnight(now, zone);
    engine.schedule_daily_reset(at);
    info!(zone = %zone, at_ms = at.as_millis(), "daily counters reset scheduled at local midnight");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> Time {
        let t = DateTime::parse_from_rfc3339(rfc3339).unwrap();
        Time::from_millis(u64::try_from(t.timestamp_millis()).unwrap())
    }

    #[test]
    fn midnight_is_local() {
        let zagreb: Tz = "Europe/Zagreb".parse().unwrap();
        // 22:30 UTC on 10 January is 23:30 in Zagreb (UTC+1): midnight is 23:00 UTC.
        assert_eq!(
            next_local_midnight(at("2025-01-10T22:30:00Z"), zagreb),
            at("2025-01-10T23:00:00Z")
        );
        // In summer (UTC+2) midnight is 22:00 UTC; exactly at midnight, the next one.
        assert_eq!(
            next_local_midnight(at("2025-07-10T22:00:00Z"), zagreb),
            at("2025-07-11T22:00:00Z")
        );
        assert_eq!(
            next_local_midnight(at("2025-07-10T12:00:00Z"), Tz::UTC),
            at("2025-07-11T00:00:00Z")
        );
    }

    #[test]
    fn a_midnight_skipped_by_dst_is_the_first_hour_of_the_day() {
        // Santiago skipped 2022-09-11 00:00 (clocks went to 01:00, UTC-3).
        let santiago: Tz = "America/Santiago".parse().unwrap();
        assert_eq!(
            next_local_midnight(at("2022-09-10T12:00:00-04:00"), santiago),
            at("2022-09-11T01:00:00-03:00")
        );
    }
}
