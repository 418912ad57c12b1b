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
//! # Example
//! ```
//! use switchboard_sipmsg::{HeaderName, Message, Response};
//!
//! let bytes = b"REGISTER sip:switchboard.example SIP/2.0\r\n\
//! v: SIP/2.0/UDP [2001:db8::7]:5062;branch=z9hG4bK1;rport\r\n\
//! f: <sip:ana@switchboard.example>;tag=x1\r\nt: <sip:ana@switchboard.example>\r\n\
//! i: a84b4c76e66710\r\nCSeq: 1 REGISTER\r\n\
//! m: <sip:ana@[2001:db8::7]:5062>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"\r\n\
//! l: 0\r\n\r\n";
//! let Message::Request(req) = Message::parse(bytes)? else { unreachable!() };
//! req.validate()?;
//! assert_eq!(req.top_via()?.port, Some(5062));
//! assert_eq!(req.contacts()?.len(), 1);
//! let ok = Response::from_request(&req, 200, "OK", Some("srv1"));
//! assert_eq!(ok.to_hdr()?.tag(), Some("srv1"));
//! assert!(ok.to_bytes().starts_with(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP [2001:db8::7]:5062"));
//! assert_eq!(req.headers.get(&HeaderName::CallId), Some("a84b4c76e66710"));
//! # Ok::<(), switchboard_sipmsg::ParseError>(())
//! ```
//!
//! # Why a hand-written parser
//! Switchboard parses every byte a trunk, phone or browser sends, so the parser must
//! accept what RFC 4475 says is valid (line folding, compact names, LWS around
//! separators, escaped user parts, IPv6, unknown schemes) and reject the rest with a
//! reason usable in a `400`. The crates evaluated in `docs/sip-parser-comparison.md`
//! (`rsip`, `ezk-sip-types`, `rsipstack`) each refuse valid messages (rsip cannot read
//! the `+sip.instance` Contact of baresip, linphone and JsSIP, nor IPv6 hosts), accept
//! Content-Length errors or raw control characters, or (rsipstack) pull an async runtime,
//! TLS and a resolver into this pure crate; the measured table and the decision live in
//! that document. The parser here is a few hundred lines
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
