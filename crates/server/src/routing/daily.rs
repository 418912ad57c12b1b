//! The call center's day: "calls today" and talk time today reset at local midnight in
//! `[routing] timezone`, and the reports' "today" (the wallboard's totals) is the same day.
//! The engine runs the reset on its own clock ([`Engine::schedule_daily_reset`]); this
//! module only finds the midnights.

use chrono::{DateTime, Days, FixedOffset, NaiveDate, NaiveTime, TimeZone as _, Utc};
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

/// The call center's time zone, `[routing] timezone` (validated; UTC if it were not).
pub fn zone(name: &str) -> Tz {
    name.parse().unwrap_or(Tz::UTC)
}

/// The first instant of local day `day` in `zone` (midnight, or the first hour that exists
/// when a DST change skips it).
fn day_start(day: NaiveDate, zone: Tz) -> Option<DateTime<FixedOffset>> {
    let midnight = day.and_time(NaiveTime::MIN);
    (0..3)
        .filter_map(|h| {
            zone.from_local_datetime(&(midnight + chrono::Duration::hours(h)))
                .earliest()
        })
        .next()
        .map(|t| t.fixed_offset())
}

/// Today in `zone` at `now`: its local midnight and the next one, each in its own offset
/// (a DST day is 23 or 25 hours long).
pub fn today(
    now: DateTime<Utc>,
    zone: Tz,
) -> Option<(DateTime<FixedOffset>, DateTime<FixedOffset>)> {
    let day = now.with_timezone(&zone).date_naive();
    let start = day_start(day, zone)?;
    let end = day_start(day.checked_add_days(Days::new(1))?, zone)?;
    Some((start, end))
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
    fn today_runs_from_local_midnight_to_the_next() {
        let zagreb: Tz = "Europe/Zagreb".parse().unwrap();
        let utc = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        // 23:30 UTC on 2 March is 00:30 on 3 March in Zagreb.
        let (from, to) = today(utc("2026-03-02T23:30:00Z"), zagreb).unwrap();
        assert_eq!(from.to_rfc3339(), "2026-03-03T00:00:00+01:00");
        assert_eq!(to.to_rfc3339(), "2026-03-04T00:00:00+01:00");
        // The day summer time starts has 23 hours.
        let (from, to) = today(utc("2026-03-29T12:00:00Z"), zagreb).unwrap();
        assert_eq!(from.to_rfc3339(), "2026-03-29T00:00:00+01:00");
        assert_eq!(to.to_rfc3339(), "2026-03-30T00:00:00+02:00");
        assert_eq!((to - from).num_hours(), 23);
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
