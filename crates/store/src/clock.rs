//! The only place in this crate that reads the OS clock.
//!
//! Records carry times chosen by the caller; the store reads the clock only to pace its own
//! retries, to stamp rows it creates itself (directory `updated_at`) and to make time-ordered ids.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use crate::model::Timestamp;

/// Monotonic now, for retry pacing.
pub(crate) fn monotonic() -> Instant {
    Instant::now()
}

/// Wall-clock now in UTC.
pub fn now_utc() -> Timestamp {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    Timestamp::from_timestamp(secs, since.subsec_nanos()).unwrap_or_default()
}

/// A UUID v7 for the current wall-clock time.
pub(crate) fn new_uuid_v7() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}
