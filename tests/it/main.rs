//! Integration tests: the real `switchboard` binary over real loopback sockets, with real
//! peers (SIPp) where the behaviour concerns other SIP software. One binary, so the
//! workspace links once. The harness is in `harness/`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod agent_page;
mod api;
mod callback_nodes;
mod callbacks;
mod calls;
mod campaigns;
mod cli;
mod crash;
mod deploy;
mod docs;
mod harness;
mod inqueue_callback;
mod listeners;
mod midnight;
mod outbound;
mod overload;
mod overload_admission;
mod per_call_state;
mod records;
mod register;
mod reports;
mod rtp_source;
mod rtp_timeout;
mod scale_out;
mod security;
mod service;
mod sip_basics;
mod soak;
mod tls;
mod trunks;
mod waiting;
mod wallboard;
mod webrtc;
mod websocket;
