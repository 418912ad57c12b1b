//! RTP packets as the rest of Switchboard sees them, on top of `rtc-rtp`.
//!
//! `rtc-rtp` (webrtc-rs) does the wire parsing and marshalling so that the future WebRTC leg
//! shares its types; this module hides its quirks behind [`RtpPacket`]:
//! - `rtc-rtp` accepts any version field: we reject everything but version 2;
//! - it accepts a padding count of 0 (RFC 3550 says the count includes itself): we reject it;
//! - it would happily decode an RTCP packet that arrives on the RTP port: we reject those
//!   (second byte in 192..=223, RFC 5761 §4);
//! - its `Header` keeps CSRC lists and header extensions in `Vec`s: Switchboard anchors the
//!   media and re-originates the stream, so those are not forwarded (documented behaviour of
//!   the relay) and [`RtpPacket`] does not carry them.
//!
//! No networking here.

use bytes::Bytes;
use rtc_shared::marshal::{Marshal, Unmarshal};

use crate::error::{MediaError, Result};

/// Size of the fixed RTP header.
pub const RTP_HEADER_LEN: usize = 12;

/// One RTP packet: the header fields the relay uses and the payload (padding removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    /// Marker bit (start of a talk-spurt / of a telephone event).
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp (8 kHz units for everything Switchboard speaks).
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Payload without padding.
    pub payload: Bytes,
}

/// True when a datagram looks like RTCP rather than RTP (RFC 5761 §4: the second byte,
/// marker bit included, is a packet type 192..=223).
pub fn looks_like_rtcp(datagram: &[u8]) -> bool {
    matches!(datagram.get(1), Some(b) if (192..=223).contains(b))
}

/// One RTP packet borrowed from a receive buffer: the header fields the relay uses and the
/// payload without padding. Parsing copies nothing and allocates nothing (the relay's
/// per-packet path); [`RtpPacket`] is the owned form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpView<'a> {
    /// Marker bit.
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Payload without padding.
    pub payload: &'a [u8],
}

impl<'a> RtpView<'a> {
    /// Parses one datagram. Errors on anything that is not version-2 RTP.
    pub fn parse(datagram: &'a [u8]) -> Result<Self> {
        let first = *datagram
            .first()
            .ok_or_else(|| MediaError::Rtp("empty datagram".into()))?;
        if first >> 6 != 2 {
            return Err(MediaError::Rtp(format!("version {}", first >> 6)));
        }
        if looks_like_rtcp(datagram) {
            return Err(MediaError::Rtp("RTCP on the RTP port".into()));
        }
        let padded = first & 0x20 != 0;
        if padded && datagram.last() == Some(&0) {
            return Err(MediaError::Rtp("padding count 0".into()));
        }
        // `rtc-rtp` reads the header (CSRCs, extensions); what it leaves is the payload.
        let mut rest = datagram;
        let header =
            rtc_rtp::Header::unmarshal(&mut rest).map_err(|e| MediaError::Rtp(e.to_string()))?;
        let payload = if header.padding {
            let pad = rest.last().map_or(usize::MAX, |&n| usize::from(n));
            rest.len()
                .checked_sub(pad)
                .and_then(|end| rest.get(..end))
                .ok_or_else(|| MediaError::Rtp("padding longer than the payload".into()))?
        } else {
            rest
        };
        Ok(RtpView {
            marker: header.marker,
            payload_type: header.payload_type,
            sequence: header.sequence_number,
            timestamp: header.timestamp,
            ssrc: header.ssrc,
            payload,
        })
    }

    /// Serialises the packet (no CSRCs, no extensions, no padding) into `out`, replacing its
    /// contents, and returns the length. Allocates only if `out` is too small.
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<usize> {
        if self.payload_type > 127 {
            return Err(MediaError::Rtp(format!(
                "payload type {} out of range",
                self.payload_type
            )));
        }
        let header = rtc_rtp::Header {
            version: 2,
            marker: self.marker,
            payload_type: self.payload_type,
            sequence_number: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
            ..Default::default()
        };
        out.clear();
        out.resize(RTP_HEADER_LEN, 0);
        let n = header
            .marshal_to(out)
            .map_err(|e| MediaError::Rtp(e.to_string()))?;
        out.truncate(n);
        out.extend_from_slice(self.payload);
        Ok(out.len())
    }

    /// The owned form (copies the payload).
    pub fn to_packet(&self) -> RtpPacket {
        RtpPacket {
            marker: self.marker,
            payload_type: self.payload_type,
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
            payload: Bytes::copy_from_slice(self.payload),
        }
    }
}

impl RtpPacket {
    /// Parses one datagram. Errors on anything that is not version-2 RTP.
    pub fn parse(datagram: &[u8]) -> Result<Self> {
        RtpView::parse(datagram).map(|v| v.to_packet())
    }

    /// The borrowed form.
    pub fn view(&self) -> RtpView<'_> {
        RtpView {
            marker: self.marker,
            payload_type: self.payload_type,
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
            payload: &self.payload,
        }
    }

    /// Serialises the packet (no CSRCs, no extensions, no padding) into `out`, replacing its
    /// contents, and returns the length.
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<usize> {
        self.view().write_to(out)
    }

    /// Serialises into a fresh buffer.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(RTP_HEADER_LEN + self.payload.len());
        self.write_to(&mut out)?;
        Ok(out)
    }
}

/// `a` is newer than `b` in RTP sequence-number space (RFC 1982 serial arithmetic).
pub fn seq_newer(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RtpPacket {
        RtpPacket {
            marker: true,
            payload_type: 8,
            sequence: 65535,
            timestamp: 0xDEAD_BEEF,
            ssrc: 0x0102_0304,
            payload: Bytes::from_static(&[1, 2, 3, 4, 5]),
        }
    }

    #[test]
    fn round_trip() {
        let p = sample();
        let wire = p.to_vec().unwrap();
        assert_eq!(wire.len(), 17);
        assert_eq!(&wire[..2], &[0x80, 0x88]);
        assert_eq!(RtpPacket::parse(&wire).unwrap(), p);
    }

    #[test]
    fn rejects_non_rtp() {
        assert!(RtpPacket::parse(&[]).is_err());
        assert!(RtpPacket::parse(&[0x80, 0x00, 0x00]).is_err());
        let mut wire = sample().to_vec().unwrap();
        wire[0] = 0x40; // version 1
        assert!(RtpPacket::parse(&wire).is_err());
        // RTCP receiver report on the RTP port.
        let rr = [0x80, 201, 0, 1, 0, 0, 0, 1];
        assert!(looks_like_rtcp(&rr));
        assert!(RtpPacket::parse(&rr).is_err());
        // Padding bit with a zero count, and with a count larger than the payload.
        let mut padded = sample().to_vec().unwrap();
        padded[0] |= 0x20;
        *padded.last_mut().unwrap() = 0;
        assert!(RtpPacket::parse(&padded).is_err());
        *padded.last_mut().unwrap() = 200;
        assert!(RtpPacket::parse(&padded).is_err());
        // CSRC count larger than the datagram.
        let mut cc = sample().to_vec().unwrap();
        cc[0] |= 0x0F;
        assert!(RtpPacket::parse(&cc).is_err());
    }

    #[test]
    fn padding_is_stripped() {
        let mut wire = sample().to_vec().unwrap();
        wire[0] |= 0x20;
        wire.extend_from_slice(&[0, 0, 3]);
        assert_eq!(
            RtpPacket::parse(&wire).unwrap().payload.as_ref(),
            &[1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn extensions_and_csrcs_are_dropped_on_rewrite() {
        // V=2, X=1, CC=1, PT 0; one CSRC; a one-byte-header extension of one word.
        let wire = [
            0x91, 0x00, 0, 7, 0, 0, 0, 160, 0, 0, 0, 9, // header
            0, 0, 0, 42, // CSRC
            0xBE, 0xDE, 0, 1, 0x10, 0xAA, 0, 0, // extension
            0xFF, 0xFF, // payload
        ];
        let p = RtpPacket::parse(&wire).unwrap();
        assert_eq!(p.sequence, 7);
        assert_eq!(p.payload.as_ref(), &[0xFF, 0xFF]);
        assert_eq!(p.to_vec().unwrap().len(), RTP_HEADER_LEN + 2);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small deterministic xorshift fuzz over short datagrams with a valid-looking first byte.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let mut d: Vec<u8> = (0..len)
                .map(|i| (x >> (i % 8 * 8)) as u8 ^ i as u8)
                .collect();
            if let Some(b) = d.first_mut() {
                *b = 0x80 | (*b & 0x3F);
            }
            let _ = RtpPacket::parse(&d);
        }
    }

    #[test]
    fn serial_comparison() {
        assert!(seq_newer(1, 0));
        assert!(seq_newer(0, 65535));
        assert!(!seq_newer(65535, 0));
        assert!(!seq_newer(5, 5));
    }
}
