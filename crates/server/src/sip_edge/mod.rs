//! The SIP edge: the sockets of `[sip] listen` and what guards them before call control.
//!
//! `transport` moves bytes between UDP, TCP, TLS and WebSocket connections and the endpoint
//! task through `inqueue` (two bounded lanes, priority traffic first); `tls` holds the certificate and the TLS handshakes (both directions); `ws` is SIP
//! over WebSocket (RFC 7118); `udp_batch` moves UDP datagrams in `recvmmsg`/`sendmmsg` batches; `security` applies the `[security]` limits in the endpoint task.

pub mod inqueue;
pub mod security;
pub mod tls;
pub mod transport;
pub mod udp_batch;
pub mod ws;
