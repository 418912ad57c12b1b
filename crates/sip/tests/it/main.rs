//! Integration tests of `switchboard-sip`: endpoints driven in virtual time.

// Test helpers outside `#[test]` functions unwrap too.
#![allow(clippy::unwrap_used)]

mod endpoint;
mod fuzz;
mod outbound;
mod registrar;
mod sips;
mod transactions;
mod util;
