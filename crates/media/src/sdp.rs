//! SDP (RFC 4566 / RFC 3264) for G.711 audio calls: parse an offer or answer, negotiate a
//! codec, and build Switchboard's offer or answer. No I/O.
//!
//! Hand-written rather than the `sdp` crate: Switchboard needs one audio stream, five
//! attributes and strict errors with line numbers, and the `sdp` crate comes with the older
//! webrtc-rs `util` stack. Unknown lines and attributes are accepted and ignored, as RFC 4566
//! requires; structurally broken ones are errors.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::error::{MediaError, Result};
use crate::g711::Codec;

/// Media direction attribute (RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// `a=sendrecv` (the default).
    #[default]
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    fn from_attr(name: &str) -> Option<Self> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction an answer takes for an offer in this direction (RFC 3264 §6.1).
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }
}

/// One `a=rtpmap` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub payload_type: u8,
    /// Encoding name as written (e.g. `PCMU`, `telephone-event`).
    pub encoding: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
}

/// The first audio `m=` section of a description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioMedia {
    /// RTP port (0 = stream rejected/disabled).
    pub port: u16,
    /// Transport protocol, e.g. `RTP/AVP`.
    pub proto: String,
    /// Payload types in preference order.
    pub payload_types: Vec<u8>,
    /// `a=rtpmap` lines of this section.
    pub rtpmaps: Vec<RtpMap>,
    /// Media-level `c=` address.
    pub connection: Option<IpAddr>,
    /// Media-level direction attribute.
    pub direction: Option<Direction>,
    /// `a=ptime` in milliseconds.
    pub ptime: Option<u32>,
    /// `a=rtcp-mux` (RFC 5761): RTCP shares the RTP port.
    pub rtcp_mux: bool,
}

/// A parsed session description (what Switchboard needs of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    /// `o=` session id.
    pub session_id: u64,
    /// `o=` session version.
    pub session_version: u64,
    /// Session-level `c=` address.
    pub connection: Option<IpAddr>,
    /// Session-level direction attribute.
    pub direction: Option<Direction>,
    /// The first `m=audio` section, if any.
    pub audio: Option<AudioMedia>,
}

/// The result of matching a remote description against what Switchboard speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// Chosen G.711 law.
    pub codec: Codec,
    /// The remote side's telephone-event payload type, if it offered one at 8000 Hz.
    pub telephone_event: Option<u8>,
    /// Where to send RTP (None: no address yet, `c=0.0.0.0`, or port 0).
    pub remote: Option<SocketAddr>,
    /// The remote side's effective direction.
    pub direction: Direction,
    /// The remote side multiplexes RTCP on its RTP port (`a=rtcp-mux`, RFC 5761): in an
    /// offer, it can; in an answer, it agreed to.
    pub rtcp_mux: bool,
}

fn err(line: usize, reason: impl Into<String>) -> MediaError {
    MediaError::Sdp {
        line,
        reason: reason.into(),
    }
}

fn parse_connection(line: usize, value: &str) -> Result<IpAddr> {
    let mut parts = value.split_ascii_whitespace();
    let (Some(net), Some(kind), Some(addr)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(err(line, "c= needs <nettype> <addrtype> <address>"));
    };
    if net != "IN" {
        return Err(err(line, format!("network type {net}")));
    }
    // Multicast TTL suffixes (`/127`) are not used for unicast telephony: strip them.
    let addr = addr.split('/').next().unwrap_or(addr);
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| err(line, format!("address {addr:?} is not an IP literal")))?;
    match (kind, ip) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Ok(ip),
        _ => Err(err(
            line,
            format!("address type {kind} does not match {addr}"),
        )),
    }
}

impl Sdp {
    /// Parses a session description (CRLF or LF line ends).
    pub fn parse(text: &str) -> Result<Sdp> {
        let mut sdp = Sdp {
            session_id: 0,
            session_version: 0,
            connection: None,
            direction: None,
            audio: None,
        };
        let mut seen_v = false;
        let mut seen_o = false;
        // Which m= section we are in: None = session level, Some(true) = first audio.
        let mut section: Option<bool> = None;
        for (idx, raw) in text.split('\n').enumerate() {
            let line_no = idx + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.is_empty() {
                continue;
            }
            let bytes = line.as_bytes();
            let (Some(&kind), Some(b'=')) = (bytes.first(), bytes.get(1)) else {
                return Err(err(line_no, "expected <type>=<value>"));
            };
            if !kind.is_ascii_lowercase() {
                return Err(err(line_no, "line type must be a lowercase letter"));
            }
            let value = line.get(2..).unwrap_or("");
            if !seen_v {
                if kind != b'v' || value != "0" {
                    return Err(err(line_no, "description must start with v=0"));
                }
                seen_v = true;
                continue;
            }
            match kind {
                b'v' => return Err(err(line_no, "repeated v=")),
                b'o' => {
                    let f: Vec<&str> = value.split_ascii_whitespace().collect();
                    let [_user, id, version, _net, _kind, _addr] = f.as_slice() else {
                        return Err(err(line_no, "o= needs six fields"));
                    };
                    sdp.session_id = id.parse().map_err(|_| err(line_no, "o= session id"))?;
                    sdp.session_version = version
                        .parse()
                        .map_err(|_| err(line_no, "o= session version"))?;
                    seen_o = true;
                }
                b'c' => {
                    let ip = parse_connection(line_no, value)?;
                    match section {
                        None => sdp.connection = Some(ip),
                        Some(true) => {
                            if let Some(a) = sdp.audio.as_mut() {
                                a.connection = Some(ip);
                            }
                        }
                        Some(false) => {}
                    }
                }
                b'm' => {
                    let f: Vec<&str> = value.split_ascii_whitespace().collect();
                    let [media, port, proto, fmts @ ..] = f.as_slice() else {
                        return Err(err(line_no, "m= needs <media> <port> <proto> <fmt>..."));
                    };
                    if fmts.is_empty() {
                        return Err(err(line_no, "m= without formats"));
                    }
                    let port_str = port.split('/').next().unwrap_or(port);
                    let port: u16 = port_str
                        .parse()
                        .map_err(|_| err(line_no, format!("m= port {port_str:?}")))?;
                    if *media == "audio" && sdp.audio.is_none() {
                        let mut payload_types = Vec::with_capacity(fmts.len());
                        if proto.starts_with("RTP/") {
                            for f in fmts {
                                let pt: u8 =
                                    f.parse().ok().filter(|pt| *pt <= 127).ok_or_else(|| {
                                        err(line_no, format!("payload type {f:?}"))
                                    })?;
                                payload_types.push(pt);
                            }
                        }
                        sdp.audio = Some(AudioMedia {
                            port,
                            proto: (*proto).to_string(),
                            payload_types,
                            rtpmaps: Vec::new(),
                            connection: None,
                            direction: None,
                            ptime: None,
                            rtcp_mux: false,
                        });
                        section = Some(true);
                    } else {
                        section = Some(false);
                    }
                }
                b'a' => {
                    let (name, arg) = match value.split_once(':') {
                        Some((n, a)) => (n, Some(a)),
                        None => (value, None),
                    };
                    if let Some(dir) = Direction::from_attr(name) {
                        match section {
                            None => sdp.direction = Some(dir),
                            Some(true) => {
                                if let Some(a) = sdp.audio.as_mut() {
                                    a.direction = Some(dir);
                                }
                            }
                            Some(false) => {}
                        }
                        continue;
                    }
                    let (Some(true), Some(audio)) = (section, sdp.audio.as_mut()) else {
                        continue;
                    };
                    match (name, arg) {
                        ("rtpmap", Some(arg)) => audio.rtpmaps.push(parse_rtpmap(line_no, arg)?),
                        ("rtpmap", None) => return Err(err(line_no, "a=rtpmap without value")),
                        ("ptime", Some(arg)) => {
                            let ms: u32 = arg
                                .trim()
                                .parse()
                                .ok()
                                .filter(|ms| (1..=1000).contains(ms))
                                .ok_or_else(|| err(line_no, format!("a=ptime {arg:?}")))?;
                            audio.ptime = Some(ms);
                        }
                        ("rtcp-mux", _) => audio.rtcp_mux = true,
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        if !seen_v {
            return Err(err(0, "empty description"));
        }
        if !seen_o {
            return Err(err(0, "missing o= line"));
        }
        if let Some(a) = &sdp.audio
            && a.port != 0
            && a.connection.or(sdp.connection).is_none()
        {
            return Err(err(0, "audio stream without a c= address"));
        }
        Ok(sdp)
    }

    /// Parses from raw bytes (a SIP body); non-UTF-8 is an error.
    pub fn parse_bytes(body: &[u8]) -> Result<Sdp> {
        let text = std::str::from_utf8(body).map_err(|_| err(0, "not UTF-8"))?;
        Sdp::parse(text)
    }

    /// The effective direction: media-level, else session-level, else sendrecv.
    pub fn direction(&self) -> Direction {
        self.audio
            .as_ref()
            .and_then(|a| a.direction)
            .or(self.direction)
            .unwrap_or_default()
    }

    /// Audio connection address (media-level `c=` over session-level).
    pub fn audio_ip(&self) -> Option<IpAddr> {
        self.audio
            .as_ref()
            .and_then(|a| a.connection)
            .or(self.connection)
    }

    /// Where the remote side wants RTP: None for no audio, port 0, or the old-style
    /// `c=0.0.0.0` hold.
    pub fn audio_addr(&self) -> Option<SocketAddr> {
        let audio = self.audio.as_ref()?;
        let ip = self.audio_ip()?;
        if audio.port == 0 || ip.is_unspecified() {
            return None;
        }
        Some(SocketAddr::new(ip, audio.port))
    }

    /// True when this description puts the stream on hold: `sendonly`, `inactive`, or the
    /// RFC 2543 `c=0.0.0.0`.
    pub fn is_hold(&self) -> bool {
        matches!(self.direction(), Direction::SendOnly | Direction::Inactive)
            || self.audio_ip() == Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    /// Picks the first codec of the remote list that Switchboard accepts (`accept` gives
    /// the allowed laws), and the remote telephone-event payload type.
    pub fn negotiate(&self, accept: &[Codec]) -> Result<Negotiated> {
        let audio = self
            .audio
            .as_ref()
            .ok_or_else(|| MediaError::NoCommonCodec("no m=audio".into()))?;
        if !matches!(audio.proto.as_str(), "RTP/AVP" | "RTP/AVPF") {
            return Err(MediaError::NoCommonCodec(format!(
                "transport {}",
                audio.proto
            )));
        }
        let mut codec = None;
        let mut telephone_event = None;
        for &pt in &audio.payload_types {
            let map = audio.rtpmaps.iter().find(|m| m.payload_type == pt);
            let name_rate = match (map, pt) {
                (Some(m), _) => Some((m.encoding.as_str(), m.clock_rate)),
                (None, 0) => Some(("PCMU", 8000)),
                (None, 8) => Some(("PCMA", 8000)),
                (None, _) => None,
            };
            let Some((name, rate)) = name_rate else {
                continue;
            };
            if rate != 8000 {
                continue;
            }
            if name.eq_ignore_ascii_case("telephone-event") {
                telephone_event.get_or_insert(pt);
            } else if let Some(c) = Codec::from_name(name)
                && accept.contains(&c)
                && pt == c.payload_type()
            {
                codec.get_or_insert(c);
            }
        }
        let codec = codec.ok_or_else(|| {
            MediaError::NoCommonCodec(format!("offered payload types {:?}", audio.payload_types))
        })?;
        Ok(Negotiated {
            codec,
            telephone_event,
            remote: self.audio_addr(),
            direction: self.direction(),
            rtcp_mux: audio.rtcp_mux,
        })
    }
}

fn parse_rtpmap(line: usize, arg: &str) -> Result<RtpMap> {
    let (pt, rest) = arg
        .split_once(' ')
        .ok_or_else(|| err(line, "a=rtpmap needs <pt> <encoding>/<rate>"))?;
    let payload_type: u8 = pt
        .parse()
        .ok()
        .filter(|pt| *pt <= 127)
        .ok_or_else(|| err(line, format!("rtpmap payload type {pt:?}")))?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next().unwrap_or("");
    if encoding.is_empty() {
        return Err(err(line, "rtpmap without encoding name"));
    }
    let clock_rate: u32 = parts
        .next()
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| err(line, "rtpmap without a numeric clock rate"))?;
    Ok(RtpMap {
        payload_type,
        encoding: encoding.to_string(),
        clock_rate,
    })
}

/// What Switchboard puts into an offer or answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSdp {
    /// `o=` session id (stable for the dialog).
    pub session_id: u64,
    /// `o=` version (incremented whenever the description changes).
    pub session_version: u64,
    /// Address advertised in `o=` and `c=`.
    pub address: IpAddr,
    /// Our RTP port.
    pub port: u16,
    /// Codecs in preference order.
    pub codecs: Vec<Codec>,
    /// Telephone-event payload type to advertise (events `0-16`).
    pub telephone_event: Option<u8>,
    /// Our direction.
    pub direction: Direction,
    /// Packetisation time in ms.
    pub ptime: u32,
    /// `a=rtcp-mux` (RFC 5761): RTCP is taken on the RTP port. Offered always; in an answer
    /// only when the offer had it. Without it RTCP goes to the RTP port + 1 (no `a=rtcp`
    /// line, RFC 3605: that is the default).
    pub rtcp_mux: bool,
}

impl LocalSdp {
    /// Renders the description with CRLF line ends.
    pub fn render(&self) -> String {
        let family = if self.address.is_ipv4() { "IP4" } else { "IP6" };
        let mut pts: Vec<u8> = self.codecs.iter().map(|c| c.payload_type()).collect();
        pts.extend(self.telephone_event);
        let fmt: Vec<String> = pts.iter().map(u8::to_string).collect();
        let mut s = String::with_capacity(320);
        // Writing to a String cannot fail.
        let _ = write!(
            s,
            "v=0\r\no=switchboard {} {} IN {family} {addr}\r\ns=switchboard\r\nc=IN {family} {addr}\r\nt=0 0\r\nm=audio {} RTP/AVP {}\r\n",
            self.session_id,
            self.session_version,
            self.port,
            fmt.join(" "),
            addr = self.address,
        );
        for c in &self.codecs {
            let _ = write!(s, "a=rtpmap:{} {}/8000\r\n", c.payload_type(), c.name());
        }
        if let Some(pt) = self.telephone_event {
            let _ = write!(
                s,
                "a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-16\r\n"
            );
        }
        let _ = write!(
            s,
            "a=ptime:{}\r\na={}\r\n",
            self.ptime,
            self.direction.as_str()
        );
        if self.rtcp_mux {
            s.push_str("a=rtcp-mux\r\n");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\n\
o=- 123 456 IN IP4 10.0.0.1\r\n\
s=-\r\n\
c=IN IP4 10.0.0.1\r\n\
t=0 0\r\n\
m=audio 40000 RTP/AVP 8 0 96 18\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:96 telephone-event/8000\r\n\
a=fmtp:96 0-15\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
m=video 0 RTP/AVP 31\r\n\
a=sendonly\r\n";

    #[test]
    fn parses_offer() {
        let sdp = Sdp::parse(OFFER).unwrap();
        assert_eq!(sdp.session_id, 123);
        assert_eq!(sdp.session_version, 456);
        assert_eq!(sdp.audio_addr(), Some("10.0.0.1:40000".parse().unwrap()));
        assert_eq!(sdp.direction(), Direction::SendRecv);
        assert!(!sdp.is_hold());
        let a = sdp.audio.as_ref().unwrap();
        assert_eq!(a.payload_types, vec![8, 0, 96, 18]);
        assert_eq!(a.ptime, Some(20));
        let n = sdp.negotiate(&[Codec::Pcmu, Codec::Pcma]).unwrap();
        assert_eq!(n.codec, Codec::Pcma); // offerer's order wins
        assert_eq!(n.telephone_event, Some(96));
        let n = sdp.negotiate(&[Codec::Pcmu]).unwrap();
        assert_eq!(n.codec, Codec::Pcmu);
    }

    #[test]
    fn hold_forms() {
        let sendonly = OFFER.replace("a=sendrecv", "a=sendonly");
        let s = Sdp::parse(&sendonly).unwrap();
        assert!(s.is_hold());
        assert_eq!(s.direction().answer(), Direction::RecvOnly);
        let old = OFFER.replace("c=IN IP4 10.0.0.1", "c=IN IP4 0.0.0.0");
        let s = Sdp::parse(&old).unwrap();
        assert!(s.is_hold());
        assert_eq!(s.audio_addr(), None);
        let inactive = "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 1.2.3.4\nt=0 0\na=inactive\nm=audio 5000 RTP/AVP 0\n";
        let s = Sdp::parse(inactive).unwrap();
        assert_eq!(s.direction(), Direction::Inactive);
        let recvonly = OFFER.replace("a=sendrecv", "a=recvonly");
        assert!(!Sdp::parse(&recvonly).unwrap().is_hold());
    }

    #[test]
    fn media_level_connection_and_ipv6() {
        let s = "v=0\no=- 1 1 IN IP6 ::1\ns=-\nt=0 0\nm=audio 5000 RTP/AVP 0\nc=IN IP6 ::1\n";
        let sdp = Sdp::parse(s).unwrap();
        assert_eq!(sdp.audio_addr(), Some("[::1]:5000".parse().unwrap()));
    }

    #[test]
    fn strict_errors() {
        let bad = [
            "",
            "o=- 1 1 IN IP4 1.1.1.1\n",
            "v=1\n",
            "v=0\nnonsense\n",
            "v=0\nX=1\n",
            "v=0\no=- 1\n",
            "v=0\no=- x 1 IN IP4 1.1.1.1\n",
            "v=0\no=- 1 1 IN IP4 1.1.1.1\nc=IN IP4 999.1.1.1\n",
            "v=0\no=- 1 1 IN IP4 1.1.1.1\nc=IN IP6 1.1.1.1\n",
            "v=0\no=- 1 1 IN IP4 1.1.1.1\nc=IN IP4\n",
            "v=0\no=- 1 1 IN IP4 1.1.1.1\nc=IN IP4 1.1.1.1\nm=audio 70000 RTP/AVP 0\n",
            "v=0\no=- 1 1 IN IP4 1.1.1.1\nc=IN IP4 1.1.1.1\nm=audio 5000 RTP/AVP\n",
            "v=0\no=- 1 1 IN IP4 1.1.1.1\nc=IN IP4 1.1.1.1\nm=audio 5000 RTP/AVP 300\n",
            "v=0\no=- 1 1 IN IP4 1.1.1.1\nc=IN IP4 1.1.1.1\nm=audio 5000 RTP/AVP 0\na=rtpmap:0\n",
            "v=0\no=- 1 1 IN IP4 1.1.1.1\nc=IN IP4 1.1.1.1\nm=audio 5000 RTP/AVP 0\na=rtpmap:0 PCMU\n",
            "v=0\no=- 1 1 IN IP4 1.1.1.1\nc=IN IP4 1.1.1.1\nm=audio 5000 RTP/AVP 0\na=ptime:0\n",
            "v=0\no=- 1 1 IN IP4 1.1.1.1\nm=audio 5000 RTP/AVP 0\n",
            "v=0\nv=0\n",
        ];
        for b in bad {
            assert!(Sdp::parse(b).is_err(), "accepted {b:?}");
        }
        assert!(Sdp::parse_bytes(&[b'v', b'=', 0xFF]).is_err());
    }

    #[test]
    fn negotiation_failures() {
        let g729 =
            "v=0\no=- 1 1 IN IP4 1.1.1.1\nc=IN IP4 1.1.1.1\nt=0 0\nm=audio 5000 RTP/AVP 18\n";
        assert!(matches!(
            Sdp::parse(g729).unwrap().negotiate(&[Codec::Pcmu]),
            Err(MediaError::NoCommonCodec(_))
        ));
        let srtp =
            "v=0\no=- 1 1 IN IP4 1.1.1.1\nc=IN IP4 1.1.1.1\nt=0 0\nm=audio 5000 RTP/SAVP 0\n";
        assert!(Sdp::parse(srtp).unwrap().negotiate(&[Codec::Pcmu]).is_err());
        let none = "v=0\no=- 1 1 IN IP4 1.1.1.1\nt=0 0\n";
        assert!(Sdp::parse(none).unwrap().negotiate(&[Codec::Pcmu]).is_err());
        // PCMU mapped to a dynamic payload type is not accepted (we send static types).
        let dynamic = "v=0\no=- 1 1 IN IP4 1.1.1.1\nc=IN IP4 1.1.1.1\nt=0 0\nm=audio 5000 RTP/AVP 97\na=rtpmap:97 PCMU/8000\n";
        assert!(
            Sdp::parse(dynamic)
                .unwrap()
                .negotiate(&[Codec::Pcmu])
                .is_err()
        );
    }

    #[test]
    fn render_parses_back() {
        let local = LocalSdp {
            session_id: 42,
            session_version: 3,
            address: "127.0.0.1".parse().unwrap(),
            port: 20000,
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            telephone_event: Some(101),
            direction: Direction::SendRecv,
            ptime: 20,
            rtcp_mux: false,
        };
        let text = local.render();
        assert!(text.contains("m=audio 20000 RTP/AVP 0 8 101\r\n"));
        assert!(text.contains("a=fmtp:101 0-16\r\n"));
        assert!(text.contains("a=ptime:20\r\n"));
        let back = Sdp::parse(&text).unwrap();
        assert_eq!(back.session_version, 3);
        let n = back.negotiate(&[Codec::Pcma, Codec::Pcmu]).unwrap();
        assert_eq!(n.codec, Codec::Pcmu);
        assert_eq!(n.telephone_event, Some(101));
        assert_eq!(n.remote, Some("127.0.0.1:20000".parse().unwrap()));
        let v6 = LocalSdp {
            address: "::1".parse().unwrap(),
            direction: Direction::RecvOnly,
            ..local
        };
        let back = Sdp::parse(&v6.render()).unwrap();
        assert_eq!(back.direction(), Direction::RecvOnly);
        assert_eq!(back.audio_ip(), Some("::1".parse().unwrap()));
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u32 = 12345;
        let alphabet = b"v=0\r\nomcat IN IP4 1.2.3.4 5000 RTP/AVP rtpmap:96 /8000 :0";
        for _ in 0..5_000 {
            let s: String = (0..60)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    alphabet[(x as usize) % alphabet.len()] as char
                })
                .collect();
            let _ = Sdp::parse(&format!("v=0\no=- 1 1 IN IP4 1.1.1.1\n{s}"));
        }
    }
}
