//! SIP extensions Switchboard speaks, and the headers that negotiate them: `100rel` (RFC
//! 3262 reliable provisional responses and PRACK) and `timer` (RFC 4028 session timers).
//! Pure helpers: the endpoint answers `420` for anything else a request requires outside a
//! new INVITE, call control does it (and records it) for new INVITEs.

use switchboard_sipmsg::{HeaderName, Request};

/// Option tags Switchboard supports (the `Supported` header value).
pub const SUPPORTED: &str = "100rel, timer";

/// The smallest session interval Switchboard accepts (RFC 4028 `Min-SE`, at least 90 s).
pub const MIN_SE_S: u32 = 90;

const KNOWN: [&str; 2] = ["100rel", "timer"];

fn header(name: &str) -> HeaderName {
    HeaderName::Other(name.into())
}

/// The option tags of `Require` that Switchboard does not support (empty: fine). A REGISTER
/// may also require `outbound` (RFC 5626), which the registrar speaks.
pub fn unsupported(req: &Request) -> Vec<String> {
    let register = req.method == switchboard_sipmsg::Method::Register;
    req.headers
        .list(&HeaderName::Require)
        .into_iter()
        .filter(|tag| !KNOWN.iter().any(|k| k.eq_ignore_ascii_case(tag)))
        .filter(|tag| !(register && tag.eq_ignore_ascii_case("outbound")))
        .map(str::to_owned)
        .collect()
}

/// Whether the request lists `tag` in `Require` or `Supported`, and whether it requires it.
pub fn offers(req: &Request, tag: &str) -> (bool, bool) {
    let has = |name: &HeaderName| {
        req.headers
            .list(name)
            .iter()
            .any(|t| t.eq_ignore_ascii_case(tag))
    };
    let required = has(&HeaderName::Require);
    (required || has(&HeaderName::Supported), required)
}

/// Who refreshes a session (RFC 4028 `refresher`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    Uac,
    Uas,
}

/// A `Session-Expires` header (compact form `x`): the interval and, when given, the
/// refresher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    pub interval_s: u32,
    pub refresher: Option<Refresher>,
}

impl SessionExpires {
    /// The header of `req`, if present and well-formed.
    pub fn of(req: &Request) -> Option<SessionExpires> {
        let value = req
            .headers
            .get(&header("Session-Expires"))
            .or_else(|| req.headers.get(&header("x")))?;
        let mut parts = value.split(';').map(str::trim);
        let interval_s = parts.next()?.parse().ok()?;
        let refresher = parts.find_map(|p| {
            let (k, v) = p.split_once('=')?;
            if !k.trim().eq_ignore_ascii_case("refresher") {
                return None;
            }
            match v.trim().to_ascii_lowercase().as_str() {
                "uac" => Some(Refresher::Uac),
                "uas" => Some(Refresher::Uas),
                _ => None,
            }
        });
        Some(SessionExpires {
            interval_s,
            refresher,
        })
    }

    /// The header value.
    pub fn value(&self) -> String {
        match self.refresher {
            Some(Refresher::Uac) => format!("{};refresher=uac", self.interval_s),
            Some(Refresher::Uas) => format!("{};refresher=uas", self.interval_s),
            None => self.interval_s.to_string(),
        }
    }
}

/// The `Session-Expires` header name.
pub fn session_expires_header() -> HeaderName {
    header("Session-Expires")
}

/// The `Min-SE` header name.
pub fn min_se_header() -> HeaderName {
    header("Min-SE")
}

/// The `RSeq` header name.
pub fn rseq_header() -> HeaderName {
    header("RSeq")
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sipmsg::Message;

    fn req(extra: &str) -> Request {
        let text = format!(
            "INVITE sip:100@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:100@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        match Message::parse(text.as_bytes()) {
            Ok(Message::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn known_tags_pass_and_others_are_named() {
        assert!(unsupported(&req("Require: 100rel, timer\r\n")).is_empty());
        assert_eq!(
            unsupported(&req("Require: timer, precondition\r\n")),
            ["precondition"]
        );
        assert_eq!(offers(&req("Supported: timer\r\n"), "timer"), (true, false));
        assert_eq!(offers(&req("Require: 100rel\r\n"), "100rel"), (true, true));
        assert_eq!(offers(&req(""), "100rel"), (false, false));
    }

    #[test]
    fn session_expires_parses_both_forms() {
        let se = SessionExpires::of(&req("Session-Expires: 1800;refresher=uac\r\n"));
        assert_eq!(
            se,
            Some(SessionExpires {
                interval_s: 1800,
                refresher: Some(Refresher::Uac)
            })
        );
        let x = SessionExpires::of(&req("x: 90\r\n")).expect("compact");
        assert_eq!(x.interval_s, 90);
        assert_eq!(x.refresher, None);
        assert_eq!(SessionExpires::of(&req("Session-Expires: soon\r\n")), None);
        assert_eq!(se.map(|s| s.value()).as_deref(), Some("1800;refresher=uac"));
    }
}
