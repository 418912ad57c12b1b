//! Typed views of header values, parsed on demand: Via, name-addr, Contact, CSeq.

use std::fmt;
use std::str::FromStr;

use crate::ParseError;
use crate::method::Method;
use crate::scan::{
    find_param, fmt_params, is_token, is_token_byte, is_wsp, parse_params, take_quoted, take_while,
    trim_wsp,
};
use crate::uri::{Host, Param, Uri, is_domain_byte, parse_port};

/// One Via value (RFC 3261 §20.42): `SIP/2.0/<transport> <host>[:<port>] *(;param)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport token as received (`UDP`, `TCP`, `TLS`, `WS`, `WSS`, `SCTP` …).
    pub transport: String,
    /// The sent-by host.
    pub host: Host,
    /// The sent-by port.
    pub port: Option<u16>,
    /// Parameters (branch, received, rport …) verbatim, in order.
    pub params: Vec<Param>,
}

impl Via {
    /// Parses one via-parm; LWS is allowed around `/`, `:`, `;` and `=`.
    pub fn parse(s: &str) -> Result<Via, ParseError> {
        let bad = |_| ParseError::BadVia;
        let s = trim_wsp(s);
        let (proto, s) = take_while(s, is_token_byte);
        let s = trim_wsp(s).strip_prefix('/').ok_or(ParseError::BadVia)?;
        let (version, s) = take_while(trim_wsp(s), |b| b.is_ascii_digit() || b == b'.');
        let s = trim_wsp(s).strip_prefix('/').ok_or(ParseError::BadVia)?;
        let (transport, s) = take_while(trim_wsp(s), is_token_byte);
        if !proto.eq_ignore_ascii_case("SIP") || version != "2.0" || transport.is_empty() {
            return Err(ParseError::BadVia);
        }
        let host_start = s.trim_start_matches(is_wsp);
        if host_start.len() == s.len() {
            return Err(ParseError::BadVia);
        }
        let (host, s) = if host_start.starts_with('[') {
            let (inner, rest) = host_start.split_once(']').ok_or(ParseError::BadVia)?;
            let len = inner.len().checked_add(1).ok_or(ParseError::BadVia)?;
            (host_start.get(..len).ok_or(ParseError::BadVia)?, rest)
        } else {
            take_while(host_start, is_domain_byte)
        };
        let host = Host::parse(host).map_err(bad)?;
        let s = trim_wsp(s);
        let (port, s) = match s.strip_prefix(':') {
            Some(p) => {
                let (digits, rest) = take_while(trim_wsp(p), |b| b.is_ascii_digit());
                (Some(parse_port(digits).map_err(bad)?), rest)
            }
            None => (None, s),
        };
        let params = parse_params(s).ok_or(ParseError::BadVia)?;
        Ok(Via {
            transport: transport.to_owned(),
            host,
            port,
            params,
        })
    }

    /// The `branch` parameter value.
    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }

    /// A parameter by case-insensitive name: `None` if absent, `Some(None)` for a flag
    /// such as `;rport`.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// Sets (replaces or appends) a parameter, e.g. `received` and `rport` (RFC 3581).
    pub fn set_param(&mut self, name: &str, value: Option<&str>) {
        crate::scan::set_param(&mut self.params, name, value);
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        fmt_params(f, &self.params)
    }
}

impl FromStr for Via {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Via::parse(s)
    }
}

/// A name-addr or addr-spec with header parameters (From, To, Contact, Route, Refer-To …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name, unquoted and unescaped; token display names have their LWS
    /// collapsed to single spaces.
    pub display_name: Option<String>,
    /// The URI.
    pub uri: Uri,
    /// Header parameters (tag, expires, q, +sip.instance …) verbatim, in order.
    pub params: Vec<Param>,
}

impl NameAddr {
    /// A bare `<uri>`.
    pub fn new(uri: Uri) -> NameAddr {
        NameAddr {
            display_name: None,
            uri,
            params: Vec::new(),
        }
    }

    /// Parses `"Display" <uri>;params`, `Display Tokens <uri>;params`, `<uri>;params` or an
    /// addr-spec `uri;params`. In the addr-spec form the URI ends at the first `;` and
    /// may not contain `?` (RFC 3261 §20: such URIs must be enclosed in `<>`).
    pub fn parse(s: &str) -> Result<NameAddr, ParseError> {
        let bad = |_| ParseError::BadNameAddr;
        let s = trim_wsp(s);
        let (display_name, rest) = if s.starts_with('"') {
            let (name, rest) = take_quoted(s).ok_or(ParseError::BadNameAddr)?;
            let rest = trim_wsp(rest);
            if !rest.starts_with('<') {
                return Err(ParseError::BadNameAddr);
            }
            (Some(name), rest)
        } else if let Some((display, _)) = s.split_once('<') {
            let rest = s.get(display.len()..).ok_or(ParseError::BadNameAddr)?;
            let display = trim_wsp(display);
            if display.is_empty() {
                (None, rest)
            } else {
                let mut words = display.split([' ', '\t']).filter(|w| !w.is_empty());
                if !words.clone().all(is_token) {
                    return Err(ParseError::BadNameAddr);
                }
                let mut joined = String::with_capacity(display.len());
                if let Some(first) = words.next() {
                    joined.push_str(first);
                }
                for w in words {
                    joined.push(' ');
                    joined.push_str(w);
                }
                (Some(joined), rest)
            }
        } else {
            let (uri, params) = match s.split_once(';') {
                Some((u, _)) => (u, s.get(u.len()..).unwrap_or_default()),
                None => (s, ""),
            };
            let uri = trim_wsp(uri);
            if uri.contains(['?', ',']) {
                return Err(ParseError::BadNameAddr);
            }
            let uri = Uri::from_str(uri).map_err(bad)?;
            let params = parse_params(params).ok_or(ParseError::BadNameAddr)?;
            return Ok(NameAddr {
                display_name: None,
                uri,
                params,
            });
        };
        let inner = rest.strip_prefix('<').ok_or(ParseError::BadNameAddr)?;
        let (uri, params) = inner.split_once('>').ok_or(ParseError::BadNameAddr)?;
        let uri = Uri::from_str(uri).map_err(bad)?;
        let params = parse_params(params).ok_or(ParseError::BadNameAddr)?;
        Ok(NameAddr {
            display_name,
            uri,
            params,
        })
    }

    /// The `tag` parameter value.
    pub fn tag(&self) -> Option<&str> {
        self.param("tag").flatten()
    }

    /// A parameter by case-insensitive name: `None` if absent, `Some(None)` for a flag.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// Sets (replaces or appends) a parameter.
    pub fn set_param(&mut self, name: &str, value: Option<&str>) {
        crate::scan::set_param(&mut self.params, name, value);
    }
}

impl fmt::Display for NameAddr {
    /// Always prints the name-addr form: `"Display" <uri>;params`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = &self.display_name {
            f.write_str("\"")?;
            for c in name.chars() {
                match c {
                    '"' | '\\' => write!(f, "\\{c}")?,
                    // CR and LF cannot be escaped (RFC 3261 quoted-pair): print a space.
                    '\r' | '\n' => f.write_str(" ")?,
                    c if c.is_ascii_control() && c != '\t' => write!(f, "\\{c}")?,
                    c => write!(f, "{c}")?,
                }
            }
            f.write_str("\" ")?;
        }
        write!(f, "<{}>", self.uri)?;
        fmt_params(f, &self.params)
    }
}

impl FromStr for NameAddr {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NameAddr::parse(s)
    }
}

/// One Contact value: `*` (only valid alone, in a REGISTER removing all bindings) or an
/// address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactValue {
    /// `Contact: *`
    Star,
    /// An address with its parameters (expires, q, +sip.instance, reg-id …).
    Addr(NameAddr),
}

impl ContactValue {
    /// Parses one Contact element (`*` or a name-addr/addr-spec).
    pub fn parse(s: &str) -> Result<ContactValue, ParseError> {
        if trim_wsp(s) == "*" {
            Ok(ContactValue::Star)
        } else {
            NameAddr::parse(s)
                .map(ContactValue::Addr)
                .map_err(|_| ParseError::BadContact)
        }
    }
}

impl fmt::Display for ContactValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContactValue::Star => f.write_str("*"),
            ContactValue::Addr(a) => write!(f, "{a}"),
        }
    }
}

/// A CSeq value: sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number (leading zeros accepted; must fit 32 bits).
    pub seq: u32,
    /// Method.
    pub method: Method,
}

impl CSeq {
    /// Parses `<digits> LWS <method>`.
    pub fn parse(s: &str) -> Result<CSeq, ParseError> {
        let s = trim_wsp(s);
        let (digits, rest) = take_while(s, |b| b.is_ascii_digit());
        let method = rest.trim_start_matches(is_wsp);
        if digits.is_empty() || method.len() == rest.len() {
            return Err(ParseError::BadCSeq);
        }
        let seq = digits.parse().map_err(|_| ParseError::BadCSeq)?;
        let method = method.parse().map_err(|_| ParseError::BadCSeq)?;
        Ok(CSeq { seq, method })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

impl FromStr for CSeq {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CSeq::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_lws_and_ipv6() {
        let v = Via::parse("SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.branch(), Some("390skdjuw"));
        let v =
            Via::parse("SIP  / 2.0  / TCP     spindle.example.com   ; branch  =   z9hG4bK9ikj8")
                .unwrap();
        assert_eq!(v.host, Host::Domain("spindle.example.com".into()));
        assert_eq!(v.branch(), Some("z9hG4bK9ikj8"));
        let mut v = Via::parse("SIP/2.0/UDP [2001:db8::10]:5070;branch=z9hG4bK1;rport").unwrap();
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.param("rport"), Some(None));
        v.set_param("rport", Some("5070"));
        v.set_param("received", Some("2001:db8::10"));
        assert_eq!(
            v.to_string(),
            "SIP/2.0/UDP [2001:db8::10]:5070;branch=z9hG4bK1;rport=5070;received=2001:db8::10"
        );
        assert_eq!(Via::parse(&v.to_string()).unwrap(), v);
        let v = Via::parse("SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK56").unwrap();
        assert_eq!(v.transport, "WSS");
    }

    #[test]
    fn via_rejects() {
        for bad in [
            "SIP/2.0/UDP 192.0.2.15;;",
            "SIP/2.0/UDP",
            "SIP/3.0/UDP host",
            "SIP/2.0/UDPhost",
            "SIP/2.0/UDP host:",
            "SIP/2.0/UDP host:70000",
            "SIP/2.0/UDP host;branch=a b",
            "HTTP/2.0/UDP host",
            "SIP/2.0/UDP [::1",
        ] {
            assert_eq!(Via::parse(bad), Err(ParseError::BadVia), "{bad}");
        }
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(r#""J Rosenberg \\\"" <sip:jdrosen@example.com>;tag = 98asjd8"#)
            .unwrap();
        assert_eq!(n.display_name.as_deref(), Some("J Rosenberg \\\""));
        assert_eq!(n.tag(), Some("98asjd8"));
        assert_eq!(NameAddr::parse(&n.to_string()).unwrap(), n);
        let n = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display_name.as_deref(), Some("caller"));
        let n = NameAddr::parse("sip:user@example.com;tag=1").unwrap();
        assert_eq!(n.uri.params.len(), 0);
        assert_eq!(n.tag(), Some("1"));
        let n = NameAddr::parse(
            "<sip:ana@127.0.0.1:5060;transport=ws>;+sip.instance=\"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>\";expires=600",
        )
        .unwrap();
        assert_eq!(
            n.param("+sip.instance"),
            Some(Some("\"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>\""))
        );
        assert_eq!(n.uri.param("transport"), Some(Some("ws")));
        let n = NameAddr::parse("Joe  Q\tPublic <sip:j@x>").unwrap();
        assert_eq!(n.display_name.as_deref(), Some("Joe Q Public"));
        let n = NameAddr {
            display_name: Some("BEL:\u{7} NUL:\0".into()),
            uri: "sip:a@b".parse().unwrap(),
            params: vec![],
        };
        assert_eq!(NameAddr::parse(&n.to_string()).unwrap(), n);
    }

    #[test]
    fn name_addr_rejects() {
        for bad in [
            "\"Mr. J. User <sip:j.user@example.com>",
            "< sip:t.watson@example.org >",
            "Bell, Alexander <sip:a.g.bell@example.com>",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "<sip:a@b",
            "<sip:a@b>;;",
            "",
            "\"x\" sip:a@b",
        ] {
            assert_eq!(NameAddr::parse(bad), Err(ParseError::BadNameAddr), "{bad}");
        }
    }

    #[test]
    fn contact_star_and_cseq() {
        assert_eq!(ContactValue::parse(" * ").unwrap(), ContactValue::Star);
        assert!(ContactValue::parse("<sip:a@b>").is_ok());
        assert_eq!(ContactValue::parse("<a"), Err(ParseError::BadContact));
        let c = CSeq::parse("0009\t INVITE").unwrap();
        assert_eq!(c.seq, 9);
        assert_eq!(c.method, Method::Invite);
        assert_eq!(c.to_string(), "9 INVITE");
        for bad in [
            "36893488147419103232 INVITE",
            "INVITE",
            "1",
            "1INVITE",
            "-1 BYE",
            "1 BYE x",
        ] {
            assert_eq!(CSeq::parse(bad), Err(ParseError::BadCSeq), "{bad}");
        }
    }
}
