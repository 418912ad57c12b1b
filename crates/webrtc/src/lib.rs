//! Switchboard's WebRTC agent leg: what stands between a browser agent and the call's RTP
//! relay. [`WebRtcLeg`] (sans-IO, on the `rtc` crate) offers the browser G.711 over ICE-lite
//! with one host candidate and DTLS-SRTP (AEAD_AES_128_GCM or AES_CM_128_HMAC_SHA1_80,
//! rtcp-mux, bundle) and turns SRTP into plain payloads and back; [`Gateway`] is its tokio
//! driver, which feeds the relay's agent leg plain RTP over loopback from a port pair of the
//! media pool, so the relay (and its transcoding, recording and counters) is the same for
//! every agent. SSRC and sequence numbers are rewritten in both directions.
//!
//! It is not SIP signalling (call control carries the SDP), not a jitter buffer or
//! transcoder (Opus is not offered), and it reads the clock only in its driver.

mod error;
mod gateway;
mod leg;
#[cfg(test)]
mod tests_peer;

pub use error::{Result, WebRtcError};
pub use gateway::{Gateway, GatewayStats};
pub use leg::{Audio, LegEvent, WebRtcLeg};
