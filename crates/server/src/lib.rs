//! The Switchboard server: tokio transports driving the sans-IO SIP endpoint, the HTTP
//! surface (health, metrics, API), records to the store, and the command line.
//!
//! This crate is the edge: it owns sockets, the clock, signals and the Prometheus registry.
//! Protocol decisions live in `switchboard-sip`, routing decisions in `switchboard-engine`,
//! SQL in `switchboard-store`.

pub mod api;
pub mod callbacks;
pub mod callmedia;
pub mod calls;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daily;
pub mod events;
pub mod http;
pub mod inqueue;
pub mod journal;
pub mod logging;
pub mod metrics;
pub mod routing;
pub mod security;
pub mod server;
pub mod service;
pub mod shared;
pub mod tls;
pub mod transport;
pub mod web;
pub mod ws;
