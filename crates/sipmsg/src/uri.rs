//! URIs (RFC 3261 §19.1, RFC 3966 `tel:`), hosts and parameters.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::ParseError;
use crate::scan::{find_param, fmt_params, take_while};

/// A host: domain name, IPv4 or IPv6 address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A domain name as received (case preserved). Also holds the opaque part of a URI
    /// with an unknown scheme and the number of a `tel:` URI (see [`Uri`]).
    Domain(String),
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address (printed in `[brackets]`).
    V6(Ipv6Addr),
}

impl Host {
    /// Parses `example.com`, `192.0.2.1` or `[2001:db8::1]`.
    pub fn parse(s: &str) -> Result<Host, ParseError> {
        if let Some(inner) = s.strip_prefix('[') {
            let v6 = inner.strip_suffix(']').ok_or(ParseError::BadUri)?;
            return v6.parse().map(Host::V6).map_err(|_| ParseError::BadUri);
        }
        if let Ok(v4) = s.parse::<Ipv4Addr>() {
            return Ok(Host::V4(v4));
        }
        if !s.is_empty() && s.bytes().all(is_domain_byte) {
            Ok(Host::Domain(s.to_owned()))
        } else {
            Err(ParseError::BadUri)
        }
    }
}

pub(crate) fn is_domain_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

impl From<Ipv4Addr> for Host {
    fn from(a: Ipv4Addr) -> Self {
        Host::V4(a)
    }
}

impl From<Ipv6Addr> for Host {
    fn from(a: Ipv6Addr) -> Self {
        Host::V6(a)
    }
}

impl From<std::net::IpAddr> for Host {
    fn from(a: std::net::IpAddr) -> Self {
        match a {
            std::net::IpAddr::V4(a) => Host::V4(a),
            std::net::IpAddr::V6(a) => Host::V6(a),
        }
    }
}

/// A `;name[=value]` parameter, kept verbatim (quoted values keep their quotes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Param {
    /// Parameter name as received.
    pub name: String,
    /// Value as received, `None` for a flag parameter such as `;lr`.
    pub value: Option<String>,
}

impl Param {
    /// A parameter with a value.
    pub fn new(name: impl Into<String>, value: Option<&str>) -> Param {
        Param {
            name: name.into(),
            value: value.map(str::to_owned),
        }
    }
}

/// A URI scheme. `sip`/`sips`/`tel` are matched case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
    /// `tel:` (RFC 3966)
    Tel,
    /// Any other scheme, as received (e.g. `isbn`, `urn`).
    Other(String),
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
            Scheme::Other(s) => s,
        })
    }
}

/// A URI.
///
/// * `sip:`/`sips:` URIs are split into user, password, host, port, parameters and
///   headers, each kept verbatim (no %-unescaping; see [`Uri::user_unescaped`]).
/// * `tel:` URIs keep the number in `host` (as [`Host::Domain`]) and split parameters.
/// * Any other scheme keeps its whole opaque part in `host` (as [`Host::Domain`]), so
///   `isbn:2983792873` round-trips; the caller decides whether to answer 416.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Uri {
    /// The scheme.
    pub scheme: Scheme,
    /// User part, verbatim (may contain `%` escapes, `;`, `?`, `/` …).
    pub user: Option<String>,
    /// Password part of the userinfo, verbatim.
    pub password: Option<String>,
    /// Host (see the type documentation for non-SIP schemes).
    pub host: Host,
    /// Port, when given.
    pub port: Option<u16>,
    /// URI parameters in order.
    pub params: Vec<Param>,
    /// URI headers (`?name=value&…`) in order, verbatim.
    pub headers: Vec<(String, String)>,
}

impl Uri {
    /// A `sip:` URI with no parameters.
    pub fn sip(user: Option<&str>, host: Host, port: Option<u16>) -> Uri {
        Uri {
            scheme: Scheme::Sip,
            user: user.map(str::to_owned),
            password: None,
            host,
            port,
            params: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// The value of a URI parameter by case-insensitive name: `None` if absent,
    /// `Some(None)` for a flag such as `;lr`.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// Sets (replaces or appends) a URI parameter.
    pub fn set_param(&mut self, name: &str, value: Option<&str>) {
        crate::scan::set_param(&mut self.params, name, value);
    }

    /// The user part with `%HH` escapes decoded (RFC 3261 §19.1.4 compares URIs this
    /// way). Invalid escapes are kept literally; invalid UTF-8 is replaced.
    pub fn user_unescaped(&self) -> Option<String> {
        self.user.as_deref().map(percent_decode)
    }
}

/// `%HH` decoding, by hand: a dozen lines instead of a dependency (the crate depends on
/// `thiserror` only), and it must accept malformed escapes as literal text.
fn percent_decode(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let mut look = bytes.clone();
            let hi = look.next().and_then(|c| char::from(c).to_digit(16));
            let lo = look.next().and_then(|c| char::from(c).to_digit(16));
            if let (Some(hi), Some(lo)) = (hi, lo) {
                // hi, lo < 16, so this fits in a u8.
                out.push(u8::try_from((hi << 4) | lo).unwrap_or(b'%'));
                bytes = look;
                continue;
            }
        }
        out.push(b);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Characters never allowed unescaped anywhere in a URI on the wire.
fn is_forbidden_in_uri(b: u8) -> bool {
    b <= b' ' || b == 0x7f || matches!(b, b'<' | b'>' | b'"')
}

impl FromStr for Uri {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Uri, ParseError> {
        if s.bytes().any(is_forbidden_in_uri) {
            return Err(ParseError::BadUri);
        }
        let (scheme, rest) = s.split_once(':').ok_or(ParseError::BadUri)?;
        let valid_scheme = scheme
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !valid_scheme || rest.is_empty() {
            return Err(ParseError::BadUri);
        }
        if scheme.eq_ignore_ascii_case("sip") {
            parse_sip(Scheme::Sip, rest)
        } else if scheme.eq_ignore_ascii_case("sips") {
            parse_sip(Scheme::Sips, rest)
        } else if scheme.eq_ignore_ascii_case("tel") {
            let (number, params) = match rest.split_once(';') {
                Some((n, p)) => (n, parse_uri_params(p)?),
                None => (rest, Vec::new()),
            };
            if number.is_empty() {
                return Err(ParseError::BadUri);
            }
            Ok(Uri {
                scheme: Scheme::Tel,
                user: None,
                password: None,
                host: Host::Domain(number.to_owned()),
                port: None,
                params,
                headers: Vec::new(),
            })
        } else {
            Ok(Uri {
                scheme: Scheme::Other(scheme.to_owned()),
                user: None,
                password: None,
                host: Host::Domain(rest.to_owned()),
                port: None,
                params: Vec::new(),
                headers: Vec::new(),
            })
        }
    }
}

fn parse_sip(scheme: Scheme, rest: &str) -> Result<Uri, ParseError> {
    // The userinfo ends at the first '@': it may itself contain ';', '?', '/' and ':'
    // (RFC 4475 semiuri, intmeth), but never an unescaped '@'.
    let (userinfo, rest) = match rest.split_once('@') {
        Some((u, r)) => (Some(u), r),
        None => (None, rest),
    };
    let (user, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((u, p)) => (Some(u.to_owned()), Some(p.to_owned())),
            None => (Some(u.to_owned()), None),
        },
        None => (None, None),
    };
    let (rest, headers) = match rest.split_once('?') {
        Some((r, h)) => (r, parse_uri_headers(h)?),
        None => (rest, Vec::new()),
    };
    let (hostport, params) = match rest.split_once(';') {
        Some((hp, p)) => (hp, parse_uri_params(p)?),
        None => (rest, Vec::new()),
    };
    let (host, port) = split_hostport(hostport)?;
    Ok(Uri {
        scheme,
        user,
        password,
        host,
        port,
        params,
        headers,
    })
}

/// Splits `host[:port]`, with IPv6 in brackets.
pub(crate) fn split_hostport(s: &str) -> Result<(Host, Option<u16>), ParseError> {
    let (host, port) = if s.starts_with('[') {
        match s.split_once(']') {
            Some((h, p)) => (
                s.get(..h.len().checked_add(1).ok_or(ParseError::BadUri)?)
                    .ok_or(ParseError::BadUri)?,
                p,
            ),
            None => return Err(ParseError::BadUri),
        }
    } else {
        let (h, p) = take_while(s, |b| b != b':');
        (h, p)
    };
    let port = if port.is_empty() {
        None
    } else {
        let digits = port.strip_prefix(':').ok_or(ParseError::BadUri)?;
        Some(parse_port(digits)?)
    };
    Ok((Host::parse(host)?, port))
}

pub(crate) fn parse_port(digits: &str) -> Result<u16, ParseError> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::BadUri);
    }
    digits.parse().map_err(|_| ParseError::BadUri)
}

fn parse_uri_params(s: &str) -> Result<Vec<Param>, ParseError> {
    s.split(';')
        .map(|p| {
            let (name, value) = match p.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (p, None),
            };
            if name.is_empty() {
                return Err(ParseError::BadUri);
            }
            Ok(Param::new(name, value))
        })
        .collect()
}

fn parse_uri_headers(s: &str) -> Result<Vec<(String, String)>, ParseError> {
    s.split('&')
        .map(|h| {
            let (name, value) = h.split_once('=').unwrap_or((h, ""));
            if name.is_empty() {
                return Err(ParseError::BadUri);
            }
            Ok((name.to_owned(), value.to_owned()))
        })
        .collect()
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme)?;
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if let Some(pw) = &self.password {
                write!(f, ":{pw}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        fmt_params(f, &self.params)?;
        for (i, (name, value)) in self.headers.iter().enumerate() {
            f.write_str(if i == 0 { "?" } else { "&" })?;
            write!(f, "{name}={value}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(s: &str) -> Uri {
        let u: Uri = s.parse().unwrap();
        let printed = u.to_string();
        assert_eq!(printed.parse::<Uri>().unwrap(), u, "{s} -> {printed}");
        u
    }

    #[test]
    fn sip_uri_parts() {
        let u = rt("sip:alice:pw@example.com:5070;transport=tcp;lr?Subject=hi&X=1");
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("pw"));
        assert_eq!(u.host, Host::Domain("example.com".into()));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.param("TRANSPORT"), Some(Some("tcp")));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(u.param("maddr"), None);
        assert_eq!(u.headers.len(), 2);
    }

    #[test]
    fn ipv6_and_ipv4_hosts() {
        let u = rt("sip:[2001:db8::10]:5070");
        assert_eq!(u.host, Host::V6("2001:db8::10".parse().unwrap()));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.to_string(), "sip:[2001:db8::10]:5070");
        let u = rt("SIP:bob@192.0.2.4");
        assert_eq!(u.host, Host::V4(Ipv4Addr::new(192, 0, 2, 4)));
        assert_eq!(u.to_string(), "sip:bob@192.0.2.4");
        assert!("sip:[2001:db8::10".parse::<Uri>().is_err());
        assert!("sip:[zz]".parse::<Uri>().is_err());
    }

    #[test]
    fn torture_user_parts() {
        let u = rt("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
        assert!(u.params.is_empty());
        let u = rt(
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
        );
        assert_eq!(u.host, Host::Domain("example.com".into()));
        assert_eq!(
            u.password.as_deref(),
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
        let u = rt("sip:null-%00-null@example.com");
        assert_eq!(u.user_unescaped().unwrap(), "null-\0-null");
        let u = rt("sip:%75se%72@example.com");
        assert_eq!(u.user_unescaped().unwrap(), "user");
    }

    #[test]
    fn other_schemes_round_trip() {
        let u = rt("isbn:2983792873");
        assert_eq!(u.scheme, Scheme::Other("isbn".into()));
        assert_eq!(u.to_string(), "isbn:2983792873");
        let u = rt("tel:+1-201-555-0123;phone-context=example.com");
        assert_eq!(u.scheme, Scheme::Tel);
        assert_eq!(u.param("phone-context"), Some(Some("example.com")));
        rt("soap.beep://192.0.2.103:3002");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "sip:",
            "nocolon",
            "<sip:a@b>",
            "sip:a b@c",
            "sip:a@",
            "sip:a@b:port",
            "sip:a@b:99999",
            "sip:a@b;;lr",
            "1sip:a@b",
            "sip:a@b\r\n",
        ] {
            assert!(bad.parse::<Uri>().is_err(), "{bad:?}");
        }
    }
}
