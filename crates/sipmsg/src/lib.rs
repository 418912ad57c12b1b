//! SIP message syntax for Switchboard: parse, print and frame RFC 3261 messages.
//!
//! What it is: [`Message::parse`] turns a datagram (or a frame cut by [`StreamFramer`])
//! into a [`Request`] or [`Response`] holding an ordered [`Headers`] list with values
//! unfolded and otherwise verbatim; typed views ([`Via`], [`NameAddr`], [`CSeq`],
//! [`ContactValue`], [`Uri`]) are parsed on demand; `to_bytes` prints the canonical wire
//! form. [`Request::validate`] performs the RFC 3261 §8.2 header checks a UAS makes
//! before answering `400`.
//!
//! What it is not: it contains no networking code, no clock, no transaction or dialog
//! state and no SDP parser. It never panics on input: the crate denies indexing,
//! unchecked arithmetic, `panic!`, `unwrap` and `expect` outside tests.
//!
//! # Why a hand-written parser
//! Switchboard parses every byte a trunk, phone or browser sends, so the parser must
//! accept what RFC 4475 says is valid (line folding, compact names, LWS around
//! separators, escaped user parts, IPv6, unknown schemes) and reject the rest with a
//! reason usable in a `400`. The crates evaluated in `docs/sip-parser-comparison.md`
//! (`rsip`, `ezk-sip-types`, `rsipstack`) either fail many of those cases, panic-free
//! behaviour aside, or pull an async runtime into this pure crate; the measured table
//! and the decision live in that document. The parser here is a few hundred lines
//! over byte slices, with no dependency but `thiserror`.
//!
//! # Invariants
//! * `Message::parse(&m.to_bytes()) == Ok(m)` for every `m` returned by `Message::parse`
//!   (checked by the corpus test and the `parse_roundtrip` fuzz target).
//! * A parsed message holds exactly one `Content-Length` header, equal to the body length.
//! * `to_bytes` always emits one well-framed message, whatever the header values hold.

#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic,
    clippy::expect_used
)]

mod error;
mod framer;
mod headers;
mod message;
mod method;
mod scan;
mod typed;
mod uri;

pub use error::ParseError;
pub use framer::{Frame, StreamFramer};
pub use headers::{Header, HeaderName, Headers};
pub use message::{DEFAULT_MAX_MESSAGE_SIZE, Message, Request, Response, default_reason};
pub use method::Method;
pub use typed::{CSeq, ContactValue, NameAddr, Via};
pub use uri::{Host, Param, Scheme, Uri};
