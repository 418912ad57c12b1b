//! `[[trunks]] outbound`: where outbound calls (call-backs, click-to-call) are sent.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use switchboard_sip::Transport;
use switchboard_sipmsg::{Host, Scheme, Uri};

/// A trunk's outbound URI, checked: a `sip:` URI whose host is an IP address, over UDP,
/// TCP or TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundTarget {
    /// The URI as configured; the dialed number becomes its user part.
    pub uri: Uri,
    /// Where the INVITE is sent.
    pub addr: SocketAddr,
    /// How: UDP, TCP (`;transport=tcp`, over a connection the server opens and reuses for
    /// the dialog), or TLS (`;transport=tls`, the same, verified against `[tls] ca`).
    pub transport: Transport,
}

impl OutboundTarget {
    /// Parses `sip:192.0.2.7:5080;transport=udp`, `…;transport=tcp` or `…;transport=tls`.
    /// Host names are refused (no DNS lookups on the call path).
    pub fn parse(s: &str) -> Result<OutboundTarget, String> {
        let uri = Uri::from_str(s.trim())
            .map_err(|e| format!("{s:?} is not a SIP URI such as sip:192.0.2.7:5060 ({e})"))?;
        if uri.scheme != Scheme::Sip {
            return Err(format!("{s:?}: only sip: URIs are supported"));
        }
        let ip = match &uri.host {
            Host::V4(ip) => IpAddr::V4(*ip),
            Host::V6(ip) => IpAddr::V6(*ip),
            Host::Domain(d) => {
                return Err(format!(
                    "{s:?}: the host must be an IP address, not the name {d:?}"
                ));
            }
        };
        let transport = match uri.param("transport").flatten() {
            None => Transport::Udp,
            Some(t) if t.eq_ignore_ascii_case("udp") => Transport::Udp,
            Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
            Some(t) if t.eq_ignore_ascii_case("tls") => Transport::Tls,
            Some(t) => {
                return Err(format!(
                    "{s:?}: transport={t} is not supported for outbound calls (use udp, tcp or tls)"
                ));
            }
        };
        let addr = SocketAddr::new(ip, uri.port.unwrap_or(transport.default_port()));
        Ok(OutboundTarget {
            uri,
            addr,
            transport,
        })
    }

    /// The Request-URI for dialing `number` through this trunk.
    pub fn request_uri(&self, number: &str) -> Uri {
        let mut uri = self.uri.clone();
        uri.user = Some(number.to_owned());
        uri
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_udp_uris_and_refuses_the_rest() {
        let t = OutboundTarget::parse("sip:127.0.0.1:5080;transport=udp").unwrap();
        assert_eq!(
            t.addr,
            "127.0.0.1:5080".parse::<std::net::SocketAddr>().unwrap()
        );
        assert_eq!(
            t.request_uri("+385915550100").to_string(),
            "sip:+385915550100@127.0.0.1:5080;transport=udp"
        );
        assert_eq!(
            OutboundTarget::parse("sip:10.0.0.1").unwrap().addr.port(),
            5060
        );
        assert!(OutboundTarget::parse("sip:pbx.example.com").is_err());
        let tcp = OutboundTarget::parse("sip:10.0.0.1;transport=tcp").unwrap();
        assert_eq!((tcp.transport, tcp.addr.port()), (Transport::Tcp, 5060));
        assert!(OutboundTarget::parse("sip:10.0.0.1;transport=sctp").is_err());
        let tls = OutboundTarget::parse("sip:10.0.0.1;transport=TLS").unwrap();
        assert_eq!(tls.transport, Transport::Tls);
        assert_eq!(tls.addr.port(), 5061);
        assert!(OutboundTarget::parse("not a uri").is_err());
    }
}
