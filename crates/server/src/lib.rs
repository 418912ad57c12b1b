//! The Switchboard server: tokio transports driving the sans-IO SIP endpoint, the HTTP
//! surface (health, metrics, API), records to the store, and the command line.
//!
//! This crate is the edge: it owns sockets, the clock, signals and the Prometheus registry.
//! Protocol decisions live in `switchboard-sip`, routing decisions in `switchboard-engine`,
//! SQL in `switchboard-store`.

pub mod callbacks;
pub mod calls;
pub mod campaigns;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dialer;
pub mod http;
pub mod ops;
pub mod routing;
pub mod server;
pub mod sip_edge;
