//! Sans-IO SIP protocol for Switchboard: transactions (RFC 3261 §17 with RFC 6026),
//! digest authentication (RFC 7616/2617), the agent registrar, and the [`Endpoint`] that
//! ties them together for a driver.
//!
//! Contains no networking code, spawns nothing and never reads the OS clock: bytes and time
//! go in through `Endpoint::handle_*`, bytes to send and events for the transaction user come
//! out through `Endpoint::poll_*` (the quinn-proto pattern). Message syntax lives in
//! `switchboard-sipmsg`; call control lives in the server.

pub mod dialog;
pub mod digest;
pub mod endpoint;
pub mod extensions;
pub mod guard;
pub mod registrar;
pub mod time;
pub mod transaction;

pub use dialog::Dialog;
pub use endpoint::{
    ALLOW, ClientTxnKey, ConnId, Endpoint, EndpointConfig, EndpointStats, Event, Peer,
    ServerTxnKey, Transmit, Transport, TxnKey,
};
pub use guard::{AuthNotice, GuardConfig, GuardStats, RateLimiter};
pub use registrar::{AgentCredentials, Binding, Registrar, RegistrarConfig};
pub use time::{Instant, Timer, TimerConfig};

/// Errors of the SIP protocol layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An `Authorization`/`WWW-Authenticate` value could not be parsed.
    #[error("bad authentication header: {0}")]
    BadAuthHeader(&'static str),
    /// The transaction key names no live transaction.
    #[error("no such transaction")]
    UnknownTransaction,
    /// The transaction already has a final response.
    #[error("the transaction already has a final response")]
    AlreadyFinal,
    /// A response status outside 100–699.
    #[error("invalid response status {0}")]
    BadStatus(u16),
    /// CANCEL was asked for a non-INVITE transaction.
    #[error("only INVITE transactions can be cancelled")]
    NotInvite,
    /// A header needed to build a message is missing.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// A From/To tag needed to form a dialog is missing.
    #[error("missing {0} tag")]
    MissingTag(&'static str),
    /// A header of a message could not be parsed.
    #[error("malformed message: {0}")]
    Message(#[from] switchboard_sipmsg::ParseError),
}
