//! Which source a leg's RTP is taken from and sent to (PRODUCT §5): the address in the SDP
//! wins. A different source is latched only while nothing has come from the SDP address (a
//! phone behind NAT sends from an address its SDP cannot name); the moment the SDP address
//! sends, it wins back and the latched source is dropped. Once a source is in use, packets
//! from every other source are rejected (the relay drops and counts them), so a stranger
//! spraying the relay ports never takes over a leg whose party is talking.
//!
//! Pure: no sockets, no clock.

use std::net::SocketAddr;

/// What to do with one valid RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// From the leg's source: relay, record, count.
    Accept,
    /// From anywhere else: drop and count as rejected.
    Reject,
}

/// The source rule of one leg.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceLatch {
    /// The address the leg's SDP names (`None` before any SDP, or with `c=0.0.0.0`).
    sdp: Option<SocketAddr>,
    /// Something came from `sdp` since it was set.
    sdp_heard: bool,
    /// A source other than `sdp`, latched while `sdp` is silent.
    latched: Option<SocketAddr>,
}

impl SourceLatch {
    /// A new SDP address (an answer, or a re-INVITE/UPDATE that moved the party): the rule
    /// starts over for it.
    pub fn set_sdp(&mut self, addr: SocketAddr) {
        *self = SourceLatch {
            sdp: Some(addr),
            sdp_heard: false,
            latched: None,
        };
    }

    /// Where the leg's RTP goes: the latched source while the SDP address is silent, else
    /// the SDP address.
    pub fn target(&self) -> Option<SocketAddr> {
        self.latched.or(self.sdp)
    }

    /// Whether a source other than the SDP address is in use.
    pub fn is_latched(&self) -> bool {
        self.latched.is_some()
    }

    /// Judges a valid RTP packet from `src`.
    pub fn on_packet(&mut self, src: SocketAddr) -> Verdict {
        if Some(src) == self.sdp {
            self.sdp_heard = true;
            self.latched = None;
            return Verdict::Accept;
        }
        if self.sdp_heard {
            return Verdict::Reject;
        }
        match self.latched {
            None => {
                self.latched = Some(src);
                Verdict::Accept
            }
            Some(latched) if latched == src => Verdict::Accept,
            Some(_) => Verdict::Reject,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_sdp_address_is_used_and_strangers_are_rejected() {
        let mut l = SourceLatch::default();
        l.set_sdp(addr("192.0.2.10:4000"));
        assert_eq!(l.target(), Some(addr("192.0.2.10:4000")));
        assert_eq!(l.on_packet(addr("192.0.2.10:4000")), Verdict::Accept);
        assert_eq!(l.on_packet(addr("203.0.113.66:9999")), Verdict::Reject);
        assert_eq!(l.on_packet(addr("192.0.2.10:4002")), Verdict::Reject);
        assert_eq!(l.target(), Some(addr("192.0.2.10:4000")));
        assert!(!l.is_latched());
    }

    #[test]
    fn a_phone_behind_nat_is_latched_while_its_sdp_address_is_silent() {
        let mut l = SourceLatch::default();
        l.set_sdp(addr("10.0.0.5:4000")); // private address in the SDP, never reachable
        assert_eq!(l.on_packet(addr("198.51.100.7:61000")), Verdict::Accept);
        assert_eq!(l.target(), Some(addr("198.51.100.7:61000")));
        assert!(l.is_latched());
        assert_eq!(l.on_packet(addr("198.51.100.7:61000")), Verdict::Accept);
        // Once latched, another stranger is refused.
        assert_eq!(l.on_packet(addr("203.0.113.66:9999")), Verdict::Reject);
        assert_eq!(l.target(), Some(addr("198.51.100.7:61000")));
    }

    #[test]
    fn a_sprayer_who_came_first_loses_the_moment_the_sdp_address_sends() {
        let mut l = SourceLatch::default();
        l.set_sdp(addr("192.0.2.10:4000"));
        assert_eq!(l.on_packet(addr("203.0.113.66:9999")), Verdict::Accept);
        assert_eq!(l.target(), Some(addr("203.0.113.66:9999")));
        assert_eq!(l.on_packet(addr("192.0.2.10:4000")), Verdict::Accept);
        assert_eq!(l.target(), Some(addr("192.0.2.10:4000")));
        for _ in 0..100 {
            assert_eq!(l.on_packet(addr("203.0.113.66:9999")), Verdict::Reject);
        }
        assert_eq!(l.target(), Some(addr("192.0.2.10:4000")));
    }

    #[test]
    fn a_new_sdp_address_starts_over() {
        let mut l = SourceLatch::default();
        l.set_sdp(addr("192.0.2.10:4000"));
        assert_eq!(l.on_packet(addr("192.0.2.10:4000")), Verdict::Accept);
        l.set_sdp(addr("192.0.2.10:5000")); // re-INVITE moved the party
        assert_eq!(l.target(), Some(addr("192.0.2.10:5000")));
        assert_eq!(l.on_packet(addr("192.0.2.10:4000")), Verdict::Accept); // NAT-like, silent SDP
        assert_eq!(l.on_packet(addr("192.0.2.10:5000")), Verdict::Accept);
        assert_eq!(l.on_packet(addr("192.0.2.10:4000")), Verdict::Reject);
    }

    #[test]
    fn without_sdp_the_first_source_is_latched() {
        let mut l = SourceLatch::default();
        assert_eq!(l.target(), None);
        assert_eq!(l.on_packet(addr("192.0.2.10:4000")), Verdict::Accept);
        assert_eq!(l.on_packet(addr("192.0.2.11:4000")), Verdict::Reject);
        assert_eq!(l.target(), Some(addr("192.0.2.10:4000")));
    }
}
