//! Header names and the ordered header list.

use std::fmt;
use std::hash::{Hash, Hasher};

use crate::scan::{split_outside, trim_wsp};

/// A header name. Parsing ([`HeaderName::parse`]) maps compact forms and any letter case
/// to the known variants; [`fmt::Display`] gives the canonical full name.
///
/// `Other` keeps the name as received; two `Other` names are equal when they match
/// case-insensitively.
#[derive(Debug, Clone)]
pub enum HeaderName {
    /// `Via` / `v`
    Via,
    /// `From` / `f`
    From,
    /// `To` / `t`
    To,
    /// `Call-ID` / `i`
    CallId,
    /// `CSeq`
    CSeq,
    /// `Contact` / `m`
    Contact,
    /// `Max-Forwards`
    MaxForwards,
    /// `Expires`
    Expires,
    /// `Min-Expires`
    MinExpires,
    /// `Content-Length` / `l`
    ContentLength,
    /// `Content-Type` / `c`
    ContentType,
    /// `Route`
    Route,
    /// `Record-Route`
    RecordRoute,
    /// `Authorization`
    Authorization,
    /// `WWW-Authenticate`
    WwwAuthenticate,
    /// `Proxy-Authorization`
    ProxyAuthorization,
    /// `Proxy-Authenticate`
    ProxyAuthenticate,
    /// `Allow`
    Allow,
    /// `Supported` / `k`
    Supported,
    /// `Require`
    Require,
    /// `User-Agent`
    UserAgent,
    /// `Server`
    Server,
    /// `Event` / `o`
    Event,
    /// `Refer-To` / `r`
    ReferTo,
    /// `Referred-By` / `b`
    ReferredBy,
    /// `P-Asserted-Identity`
    PAssertedIdentity,
    /// `Retry-After`
    RetryAfter,
    /// `Date`
    Date,
    /// `Accept`
    Accept,
    /// `Subject` / `s`
    Subject,
    /// Any other name, as received (compact forms of names without a variant here are
    /// expanded: `e` → `Content-Encoding`, `u` → `Allow-Events`, `x` → `Session-Expires` …).
    Other(String),
}

/// Known full names and their variants: the reference list `KNOWN_BY_LEN` is checked
/// against.
#[cfg(test)]
const KNOWN: &[(&str, HeaderName)] = &[
    ("Via", HeaderName::Via),
    ("From", HeaderName::From),
    ("To", HeaderName::To),
    ("Call-ID", HeaderName::CallId),
    ("CSeq", HeaderName::CSeq),
    ("Contact", HeaderName::Contact),
    ("Max-Forwards", HeaderName::MaxForwards),
    ("Content-Length", HeaderName::ContentLength),
    ("Content-Type", HeaderName::ContentType),
    ("Expires", HeaderName::Expires),
    ("Min-Expires", HeaderName::MinExpires),
    ("Route", HeaderName::Route),
    ("Record-Route", HeaderName::RecordRoute),
    ("Authorization", HeaderName::Authorization),
    ("WWW-Authenticate", HeaderName::WwwAuthenticate),
    ("Proxy-Authorization", HeaderName::ProxyAuthorization),
    ("Proxy-Authenticate", HeaderName::ProxyAuthenticate),
    ("Allow", HeaderName::Allow),
    ("Supported", HeaderName::Supported),
    ("Require", HeaderName::Require),
    ("User-Agent", HeaderName::UserAgent),
    ("Server", HeaderName::Server),
    ("Event", HeaderName::Event),
    ("Refer-To", HeaderName::ReferTo),
    ("Referred-By", HeaderName::ReferredBy),
    ("P-Asserted-Identity", HeaderName::PAssertedIdentity),
    ("Retry-After", HeaderName::RetryAfter),
    ("Date", HeaderName::Date),
    ("Accept", HeaderName::Accept),
    ("Subject", HeaderName::Subject),
];

/// The known header names that have `len` bytes (a cheap first filter: most
/// messages carry a dozen headers and this runs for each).
fn known_with_len(len: usize) -> &'static [(&'static str, HeaderName)] {
    KNOWN_BY_LEN
        .iter()
        .find(|(l, _)| *l == len)
        .map_or(&[], |(_, entries)| *entries)
}

/// Known full names (matched case-insensitively) grouped by length; a unit test checks
/// this table against the flat list.
const KNOWN_BY_LEN: &[(usize, &[(&str, HeaderName)])] = &[
    (2, &[("To", HeaderName::To)]),
    (3, &[("Via", HeaderName::Via)]),
    (
        4,
        &[
            ("From", HeaderName::From),
            ("CSeq", HeaderName::CSeq),
            ("Date", HeaderName::Date),
        ],
    ),
    (
        5,
        &[
            ("Route", HeaderName::Route),
            ("Allow", HeaderName::Allow),
            ("Event", HeaderName::Event),
        ],
    ),
    (
        6,
        &[
            ("Server", HeaderName::Server),
            ("Accept", HeaderName::Accept),
        ],
    ),
    (
        7,
        &[
            ("Call-ID", HeaderName::CallId),
            ("Contact", HeaderName::Contact),
            ("Expires", HeaderName::Expires),
            ("Require", HeaderName::Require),
            ("Subject", HeaderName::Subject),
        ],
    ),
    (8, &[("Refer-To", HeaderName::ReferTo)]),
    (9, &[("Supported", HeaderName::Supported)]),
    (10, &[("User-Agent", HeaderName::UserAgent)]),
    (
        11,
        &[
            ("Min-Expires", HeaderName::MinExpires),
            ("Referred-By", HeaderName::ReferredBy),
            ("Retry-After", HeaderName::RetryAfter),
        ],
    ),
    (
        12,
        &[
            ("Max-Forwards", HeaderName::MaxForwards),
            ("Content-Type", HeaderName::ContentType),
            ("Record-Route", HeaderName::RecordRoute),
        ],
    ),
    (13, &[("Authorization", HeaderName::Authorization)]),
    (14, &[("Content-Length", HeaderName::ContentLength)]),
    (16, &[("WWW-Authenticate", HeaderName::WwwAuthenticate)]),
    (18, &[("Proxy-Authenticate", HeaderName::ProxyAuthenticate)]),
    (
        19,
        &[
            ("Proxy-Authorization", HeaderName::ProxyAuthorization),
            ("P-Asserted-Identity", HeaderName::PAssertedIdentity),
        ],
    ),
];

impl HeaderName {
    /// Maps a received name (full or compact form, any case) to a `HeaderName`.
    /// Does not check that `name` is a token; the message parser does.
    pub fn parse(name: &str) -> HeaderName {
        if let [c] = name.as_bytes() {
            return match c.to_ascii_lowercase() {
                b'v' => HeaderName::Via,
                b'f' => HeaderName::From,
                b't' => HeaderName::To,
                b'i' => HeaderName::CallId,
                b'm' => HeaderName::Contact,
                b'l' => HeaderName::ContentLength,
                b'c' => HeaderName::ContentType,
                b'k' => HeaderName::Supported,
                b's' => HeaderName::Subject,
                b'o' => HeaderName::Event,
                b'r' => HeaderName::ReferTo,
                b'b' => HeaderName::ReferredBy,
                b'e' => HeaderName::Other("Content-Encoding".to_owned()),
                b'u' => HeaderName::Other("Allow-Events".to_owned()),
                b'x' => HeaderName::Other("Session-Expires".to_owned()),
                b'a' => HeaderName::Other("Accept-Contact".to_owned()),
                b'j' => HeaderName::Other("Reject-Contact".to_owned()),
                b'd' => HeaderName::Other("Request-Disposition".to_owned()),
                b'y' => HeaderName::Other("Identity".to_owned()),
                b'n' => HeaderName::Other("Identity-Info".to_owned()),
                _ => HeaderName::Other(name.to_owned()),
            };
        }
        known_with_len(name.len())
            .iter()
            .find(|(full, _)| full.eq_ignore_ascii_case(name))
            .map_or_else(|| HeaderName::Other(name.to_owned()), |(_, h)| h.clone())
    }

    /// The canonical full name (or the received name for `Other`).
    pub fn as_str(&self) -> &str {
        match self {
            HeaderName::Via => "Via",
            HeaderName::From => "From",
            HeaderName::To => "To",
            HeaderName::CallId => "Call-ID",
            HeaderName::CSeq => "CSeq",
            HeaderName::Contact => "Contact",
            HeaderName::MaxForwards => "Max-Forwards",
            HeaderName::Expires => "Expires",
            HeaderName::MinExpires => "Min-Expires",
            HeaderName::ContentLength => "Content-Length",
            HeaderName::ContentType => "Content-Type",
            HeaderName::Route => "Route",
            HeaderName::RecordRoute => "Record-Route",
            HeaderName::Authorization => "Authorization",
            HeaderName::WwwAuthenticate => "WWW-Authenticate",
            HeaderName::ProxyAuthorization => "Proxy-Authorization",
            HeaderName::ProxyAuthenticate => "Proxy-Authenticate",
            HeaderName::Allow => "Allow",
            HeaderName::Supported => "Supported",
            HeaderName::Require => "Require",
            HeaderName::UserAgent => "User-Agent",
            HeaderName::Server => "Server",
            HeaderName::Event => "Event",
            HeaderName::ReferTo => "Refer-To",
            HeaderName::ReferredBy => "Referred-By",
            HeaderName::PAssertedIdentity => "P-Asserted-Identity",
            HeaderName::RetryAfter => "Retry-After",
            HeaderName::Date => "Date",
            HeaderName::Accept => "Accept",
            HeaderName::Subject => "Subject",
            HeaderName::Other(s) => s,
        }
    }
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

impl Eq for HeaderName {}

impl Hash for HeaderName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        if let HeaderName::Other(s) = self {
            for b in s.bytes() {
                state.write_u8(b.to_ascii_lowercase());
            }
        }
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for HeaderName {
    fn from(s: &str) -> Self {
        HeaderName::parse(s)
    }
}

/// One header field: value unfolded (each line fold becomes one SP), trimmed, otherwise
/// verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The name.
    pub name: HeaderName,
    /// The value.
    pub value: String,
}

/// The header fields of a message, in received order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers(Vec<Header>);

impl Headers {
    /// An empty list.
    pub fn new() -> Headers {
        Headers(Vec::new())
    }

    /// The first value of `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.name == *name)
            .map(|h| h.value.as_str())
    }

    /// Every value of `name`, one per header line, in order.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a str> {
        self.0
            .iter()
            .filter(move |h| h.name == *name)
            .map(|h| h.value.as_str())
    }

    /// Every element of `name`: all header lines, each split at commas outside quoted
    /// strings and `<...>`, trimmed, empty elements skipped.
    ///
    /// Only meaningful for list headers (Via, Contact, Route, Allow, Supported …): do not
    /// use it for WWW-Authenticate/Authorization or Date, whose values contain commas.
    pub fn list(&self, name: &HeaderName) -> Vec<&str> {
        self.0
            .iter()
            .filter(|h| h.name == *name)
            .flat_map(|h| split_outside(&h.value, ','))
            .map(trim_wsp)
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// Appends a header.
    pub fn push(&mut self, name: HeaderName, value: impl Into<String>) {
        self.0.push(Header {
            name,
            value: value.into(),
        });
    }

    /// Replaces all occurrences of `name` by one header (at the first occurrence's place,
    /// or appended).
    pub fn set(&mut self, name: HeaderName, value: impl Into<String>) {
        let value = value.into();
        match self.0.iter().position(|h| h.name == name) {
            Some(first) => {
                let mut index = 0usize;
                self.0.retain(|h| {
                    let keep = index == first || h.name != name;
                    index = index.saturating_add(1);
                    keep
                });
                if let Some(h) = self.0.get_mut(first) {
                    h.value = value;
                }
            }
            None => self.push(name, value),
        }
    }

    /// Removes all occurrences of `name`.
    pub fn remove(&mut self, name: &HeaderName) {
        self.0.retain(|h| h.name != *name);
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.0.iter().any(|h| h.name == *name)
    }

    /// Number of header lines with `name`.
    pub fn count(&self, name: &HeaderName) -> usize {
        self.0.iter().filter(|h| h.name == *name).count()
    }

    /// All headers in order.
    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }

    /// Mutable access to all headers in order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Header> {
        self.0.iter_mut()
    }

    /// Inserts a header at the front (e.g. a proxy's own Via).
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<String>) {
        self.0.insert(
            0,
            Header {
                name,
                value: value.into(),
            },
        );
    }

    /// Number of header lines.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<Header>> for Headers {
    fn from(v: Vec<Header>) -> Self {
        Headers(v)
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compact_and_case() {
        assert_eq!(HeaderName::parse("v"), HeaderName::Via);
        assert_eq!(HeaderName::parse("I"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("call-id"), HeaderName::CallId);
        assert_eq!(
            HeaderName::parse("www-authenticate").to_string(),
            "WWW-Authenticate"
        );
        assert_eq!(HeaderName::parse("cseq").to_string(), "CSeq");
        assert_eq!(HeaderName::parse("r"), HeaderName::ReferTo);
        assert_eq!(HeaderName::parse("x").to_string(), "Session-Expires");
        assert_eq!(
            HeaderName::parse("X-Foo"),
            HeaderName::Other("x-foo".to_owned())
        );
        assert_eq!(HeaderName::parse("X-Foo").to_string(), "X-Foo");
        assert_ne!(HeaderName::Other("Via".into()), HeaderName::Via);
    }

    #[test]
    fn every_known_name_is_found_in_any_case() {
        let grouped: usize = KNOWN_BY_LEN.iter().map(|(_, e)| e.len()).sum();
        assert_eq!(grouped, KNOWN.len(), "KNOWN_BY_LEN misses a name");
        for (full, variant) in KNOWN {
            assert_eq!(HeaderName::parse(full), *variant, "{full}");
            assert_eq!(HeaderName::parse(&full.to_lowercase()), *variant, "{full}");
            assert_eq!(HeaderName::parse(&full.to_uppercase()), *variant, "{full}");
            assert_eq!(variant.as_str(), *full);
        }
        for (len, entries) in KNOWN_BY_LEN {
            for (full, _) in *entries {
                assert_eq!(full.len(), *len, "{full}");
            }
        }
    }

    #[test]
    fn list_set_remove() {
        let mut h = Headers::new();
        h.push(HeaderName::Contact, "<sip:a@b>;q=1, \"x,y\" <sip:c@d>");
        h.push(HeaderName::Via, "SIP/2.0/UDP a");
        h.push(HeaderName::Contact, "<sip:e@f>");
        assert_eq!(h.list(&HeaderName::Contact).len(), 3);
        assert_eq!(h.get_all(&HeaderName::Contact).count(), 2);
        h.set(HeaderName::Contact, "*");
        assert_eq!(h.len(), 2);
        assert_eq!(h.iter().next().unwrap().value, "*");
        h.remove(&HeaderName::Contact);
        assert_eq!(h.len(), 1);
        h.set(HeaderName::Expires, "60");
        assert_eq!(h.get(&HeaderName::Expires), Some("60"));
        h.push_front(HeaderName::Via, "SIP/2.0/UDP z");
        assert_eq!(
            h.list(&HeaderName::Via),
            vec!["SIP/2.0/UDP z", "SIP/2.0/UDP a"]
        );
    }
}
