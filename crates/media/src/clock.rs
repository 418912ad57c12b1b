//! The one place this crate reads the OS clock (the relay's pacing and arrival times).

/// Current monotonic time.
#[allow(clippy::disallowed_methods)]
pub(crate) fn now() -> std::time::Instant {
    std::time::Instant::now()
}

/// A seed that differs per call: the process-random hasher keys plus the clock.
#[allow(clippy::disallowed_methods)]
pub(crate) fn seed(label: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(label.as_bytes());
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.finish()
}
