//! Sans-IO SIP protocol for Switchboard: transactions (RFC 3261 §17 with RFC 6026),
//! digest authentication (RFC 7616/2617), the agent registrar, and the [`Endpoint`] that
//! ties them together for a driver.
//!
//! Contains no networking code, spawns nothing and never reads the OS clock: bytes and time
//! go in through `Endpoint::handle_*`, bytes to send and events for the transaction user come
//! out through `Endpoint::poll_*` (the quinn-proto pattern). Message syntax lives in
//! `switchboard-sipmsg`; call control lives in the server.

pub mod digest;
pub mod time;
pub mod transaction;

pub use time::{Instant, Timer, TimerConfig};

/// Errors of the SIP protocol layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An `Authorization`/`WWW-Authenticate` value could not be parsed.
    #[error("bad authentication header: {0}")]
    BadAuthHeader(&'static str),
}
