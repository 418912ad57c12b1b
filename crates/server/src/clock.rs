//! The one place the server reads the OS clock. Everything below the server (SIP endpoint,
//! engine) takes time as an argument; this module supplies it.

#![allow(clippy::disallowed_methods)]

use std::time::{Instant, SystemTime};

/// Monotonic now, for protocol timers.
pub fn now() -> Instant {
    Instant::now()
}

/// Wall-clock now, for records and logs.
pub fn wall_now() -> SystemTime {
    SystemTime::now()
}
