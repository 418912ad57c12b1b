//! Requests, responses, the message parser and the canonical printer.

use std::fmt::{self, Write as _};

use crate::ParseError;
use crate::headers::{Header, HeaderName, Headers};
use crate::method::Method;
use crate::scan::{check_controls, is_token, trim_wsp};
use crate::typed::{CSeq, ContactValue, NameAddr, Via};
use crate::uri::Uri;

/// Default size limit of [`Message::parse`]: the largest UDP payload.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 65_535;

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Request-URI.
    pub uri: Uri,
    /// Headers in order.
    pub headers: Headers,
    /// Body (exactly Content-Length bytes when parsed).
    pub body: Vec<u8>,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, 100..=699 when parsed.
    pub status: u16,
    /// Reason phrase as received (may be empty, may be UTF-8).
    pub reason: String,
    /// Headers in order.
    pub headers: Headers,
    /// Body.
    pub body: Vec<u8>,
}

/// A SIP request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

impl Message {
    /// Parses one whole message (a UDP datagram or a frame from
    /// [`crate::StreamFramer`]) of at most [`DEFAULT_MAX_MESSAGE_SIZE`] bytes.
    ///
    /// Leading CRLFs are skipped (RFC 3261 §7.5). The body is Content-Length bytes
    /// ([`ParseError::BodyTooShort`] if fewer are present; extra bytes are ignored), or
    /// the rest of the input when Content-Length is absent. Only the start line and the
    /// header framing are checked here; see [`Request::validate`].
    ///
    /// After parsing, the headers always hold exactly one `Content-Length` whose value is
    /// the body length in plain decimal, so parse → print → parse is the identity.
    pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
        Message::parse_with_limit(bytes, DEFAULT_MAX_MESSAGE_SIZE)
    }

    /// [`Message::parse`] with another size limit (e.g. a stream transport's).
    pub fn parse_with_limit(bytes: &[u8], limit: usize) -> Result<Message, ParseError> {
        if bytes.len() > limit {
            return Err(ParseError::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        parse_message(bytes)
    }

    /// The canonical wire form (see [`Request::to_bytes`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }

    /// The headers.
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    /// The headers, mutably.
    pub fn headers_mut(&mut self) -> &mut Headers {
        match self {
            Message::Request(r) => &mut r.headers,
            Message::Response(r) => &mut r.headers,
        }
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        match self {
            Message::Request(r) => &r.body,
            Message::Response(r) => &r.body,
        }
    }

    /// The Call-ID value.
    pub fn call_id(&self) -> Option<&str> {
        self.headers().get(&HeaderName::CallId)
    }

    /// Required-header validation (see [`Request::validate`], [`Response::validate`]).
    pub fn validate(&self) -> Result<(), ParseError> {
        match self {
            Message::Request(r) => r.validate(),
            Message::Response(r) => r.validate(),
        }
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Request(r) => r.fmt(f),
            Message::Response(r) => r.fmt(f),
        }
    }
}

impl From<Request> for Message {
    fn from(r: Request) -> Self {
        Message::Request(r)
    }
}

impl From<Response> for Message {
    fn from(r: Response) -> Self {
        Message::Response(r)
    }
}

enum StartLine {
    Request(Method, Uri),
    Response(u16, String),
}

fn parse_message(bytes: &[u8]) -> Result<Message, ParseError> {
    let start = bytes
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .ok_or(ParseError::Empty)?;
    let data = bytes.get(start..).unwrap_or_default();
    let mut lines = LineReader::new(data);

    let first = lines.next_line()?;
    if has_controls(first) {
        return Err(ParseError::ControlCharacter);
    }
    let start_line = parse_start_line(first)?;

    let mut headers: Vec<Header> = Vec::with_capacity(16);
    let mut controls_seen = false;
    loop {
        let line = lines.next_line()?;
        if line.is_empty() {
            break;
        }
        controls_seen |= has_controls(line);
        if line.starts_with([' ', '\t']) {
            // Continuation line (RFC 3261 §7.3.1): the fold is one SP.
            let last = headers.last_mut().ok_or(ParseError::BadHeaderName)?;
            let more = trim_wsp(line);
            let kept = last.value.trim_end_matches([' ', '\t']).len();
            last.value.truncate(kept);
            if !last.value.is_empty() && !more.is_empty() {
                last.value.push(' ');
            }
            last.value.push_str(more);
        } else {
            headers.push(parse_header_line(line)?);
        }
    }
    if controls_seen {
        // Rare: allowed only as a quoted-pair inside a quoted string.
        for h in &headers {
            check_controls(h.value.as_bytes())?;
        }
    }
    let body_start = data.get(lines.offset..).unwrap_or_default();

    let mut content_length = None;
    for h in headers
        .iter_mut()
        .filter(|h| h.name == HeaderName::ContentLength)
    {
        if content_length.is_some() {
            return Err(ParseError::BadContentLength);
        }
        let v = h.value.as_str();
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::BadContentLength);
        }
        let n: usize = v.parse().map_err(|_| ParseError::BadContentLength)?;
        content_length = Some(n);
        if v.len() > 1 && v.starts_with('0') {
            h.value = n.to_string();
        }
    }
    let body = match content_length {
        Some(n) => body_start.get(..n).ok_or(ParseError::BodyTooShort {
            declared: n,
            available: body_start.len(),
        })?,
        None => {
            headers.push(Header {
                name: HeaderName::ContentLength,
                value: body_start.len().to_string(),
            });
            body_start
        }
    };
    let headers = Headers::from(headers);
    Ok(match start_line {
        StartLine::Request(method, uri) => Message::Request(Request {
            method,
            uri,
            headers,
            body: body.to_vec(),
        }),
        StartLine::Response(status, reason) => Message::Response(Response {
            status,
            reason,
            headers,
            body: body.to_vec(),
        }),
    })
}

/// Reads the head line by line over the longest UTF-8 prefix of the input (validated in
/// one pass; the body may be binary), tracking the byte offset of the next line.
struct LineReader<'a> {
    segments: std::str::SplitInclusive<'a, char>,
    offset: usize,
    /// What running out of lines means: `Incomplete`, or `InvalidUtf8` when the valid
    /// prefix ended before the input did.
    end: ParseError,
}

impl<'a> LineReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        let (text, end) = match std::str::from_utf8(data) {
            Ok(text) => (text, ParseError::Incomplete),
            Err(e) => (
                data.get(..e.valid_up_to())
                    .and_then(|valid| std::str::from_utf8(valid).ok())
                    .unwrap_or_default(),
                ParseError::InvalidUtf8,
            ),
        };
        LineReader {
            segments: text.split_inclusive('\n'),
            offset: 0,
            end,
        }
    }

    /// The next line without its LF and the CR before it (a bare LF also ends a line).
    fn next_line(&mut self) -> Result<&'a str, ParseError> {
        let segment = self.segments.next().ok_or_else(|| self.end.clone())?;
        let line = segment.strip_suffix('\n').ok_or_else(|| self.end.clone())?;
        self.offset = self.offset.saturating_add(segment.len());
        Ok(line.strip_suffix('\r').unwrap_or(line))
    }
}

/// Whether a line (its line end removed) holds a control character other than HTAB —
/// including a bare CR. A branch-free fold, so it vectorises.
fn has_controls(line: &str) -> bool {
    line.bytes().fold(0u8, |acc, b| {
        acc | u8::from(b < 0x20 && b != b'\t') | u8::from(b == 0x7f)
    }) != 0
}

fn parse_header_line(line: &str) -> Result<Header, ParseError> {
    let (name, value) = line.split_once(':').ok_or(ParseError::MissingColon)?;
    let name = name.trim_end_matches([' ', '\t']);
    if !is_token(name) {
        return Err(ParseError::BadHeaderName);
    }
    Ok(Header {
        name: HeaderName::parse(name),
        value: trim_wsp(value).to_owned(),
    })
}

fn parse_version(v: &str) -> Result<(), ParseError> {
    if v.eq_ignore_ascii_case("SIP/2.0") {
        Ok(())
    } else if v.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("SIP/")) {
        Err(ParseError::BadVersion)
    } else {
        Err(ParseError::BadStartLine)
    }
}

fn parse_start_line(line: &str) -> Result<StartLine, ParseError> {
    if line
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
    {
        let (version, rest) = line.split_once(' ').ok_or(ParseError::BadStartLine)?;
        parse_version(version)?;
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::BadStatusCode);
        }
        let status: u16 = code.parse().map_err(|_| ParseError::BadStatusCode)?;
        if !(100..=699).contains(&status) {
            return Err(ParseError::BadStatusCode);
        }
        return Ok(StartLine::Response(status, reason.to_owned()));
    }
    if line.contains('\t') {
        return Err(ParseError::BadStartLine);
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::BadStartLine);
    };
    if method.is_empty() || uri.is_empty() {
        return Err(ParseError::BadStartLine);
    }
    parse_version(version)?;
    let method = method.parse()?;
    let uri = uri.parse().map_err(|_| ParseError::BadRequestUri)?;
    Ok(StartLine::Request(method, uri))
}

/// Writes the header section (every header, Content-Length from `body_len`, the empty
/// line). Values holding CR or LF (possible only when set by code) are printed with
/// those replaced by spaces, so the output is always one well-framed message.
fn write_head(out: &mut String, headers: &Headers, body_len: usize) {
    let mut wrote_length = false;
    for h in headers {
        if h.name == HeaderName::ContentLength {
            if !wrote_length {
                let _ = write!(out, "Content-Length: {body_len}\r\n");
                wrote_length = true;
            }
            continue;
        }
        out.push_str(h.name.as_str());
        out.push_str(": ");
        if h.value.contains(['\r', '\n']) {
            out.push_str(&h.value.replace(['\r', '\n'], " "));
        } else {
            out.push_str(&h.value);
        }
        out.push_str("\r\n");
    }
    if !wrote_length {
        let _ = write!(out, "Content-Length: {body_len}\r\n");
    }
    out.push_str("\r\n");
}

fn head_capacity(headers: &Headers) -> usize {
    headers
        .iter()
        .map(|h| h.value.len().saturating_add(24))
        .fold(64usize, usize::saturating_add)
}

fn with_body(head: String, body: &[u8]) -> Vec<u8> {
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Convenience accessors shared by requests and responses.
macro_rules! header_accessors {
    ($t:ty) => {
        impl $t {
            /// The Call-ID value.
            pub fn call_id(&self) -> Option<&str> {
                self.headers.get(&HeaderName::CallId)
            }

            /// The parsed CSeq ([`ParseError::MissingHeader`] when absent).
            pub fn cseq(&self) -> Result<CSeq, ParseError> {
                CSeq::parse(
                    self.headers
                        .get(&HeaderName::CSeq)
                        .ok_or(ParseError::MissingHeader("CSeq"))?,
                )
            }

            /// The topmost Via value, parsed.
            pub fn top_via(&self) -> Result<Via, ParseError> {
                let first = self
                    .headers
                    .list(&HeaderName::Via)
                    .into_iter()
                    .next()
                    .ok_or(ParseError::MissingHeader("Via"))?;
                Via::parse(first)
            }

            /// Every Via value, parsed, top first.
            pub fn vias(&self) -> Result<Vec<Via>, ParseError> {
                self.headers
                    .list(&HeaderName::Via)
                    .into_iter()
                    .map(Via::parse)
                    .collect()
            }

            /// The From header, parsed.
            pub fn from_hdr(&self) -> Result<NameAddr, ParseError> {
                let v = self
                    .headers
                    .get(&HeaderName::From)
                    .ok_or(ParseError::MissingHeader("From"))?;
                NameAddr::parse(v).map_err(|_| ParseError::BadFrom)
            }

            /// The To header, parsed.
            pub fn to_hdr(&self) -> Result<NameAddr, ParseError> {
                let v = self
                    .headers
                    .get(&HeaderName::To)
                    .ok_or(ParseError::MissingHeader("To"))?;
                NameAddr::parse(v).map_err(|_| ParseError::BadTo)
            }

            /// Every Contact element, parsed (empty when there is no Contact).
            pub fn contacts(&self) -> Result<Vec<ContactValue>, ParseError> {
                self.headers
                    .list(&HeaderName::Contact)
                    .into_iter()
                    .map(ContactValue::parse)
                    .collect()
            }

            /// The Expires value in seconds; `None` when absent or not a number. Values
            /// beyond 32 bits saturate at `u32::MAX`.
            pub fn expires(&self) -> Option<u32> {
                parse_delta_seconds(self.headers.get(&HeaderName::Expires)?)
            }

            /// The header section and body as wire bytes; Content-Length is set from the
            /// body (replacing any value in `headers`, appended when absent).
            pub fn to_bytes(&self) -> Vec<u8> {
                let mut out = String::with_capacity(head_capacity(&self.headers));
                self.write_start_line(&mut out);
                write_head(&mut out, &self.headers, self.body.len());
                with_body(out, &self.body)
            }

            /// Checks single-valued headers common to requests and responses.
            fn validate_common(&self) -> Result<(), ParseError> {
                for (name, canonical) in [
                    (HeaderName::Via, "Via"),
                    (HeaderName::From, "From"),
                    (HeaderName::To, "To"),
                    (HeaderName::CallId, "Call-ID"),
                    (HeaderName::CSeq, "CSeq"),
                ] {
                    if !self.headers.contains(&name) {
                        return Err(ParseError::MissingHeader(canonical));
                    }
                }
                for (name, canonical) in [
                    (HeaderName::From, "From"),
                    (HeaderName::To, "To"),
                    (HeaderName::CallId, "Call-ID"),
                    (HeaderName::CSeq, "CSeq"),
                    (HeaderName::MaxForwards, "Max-Forwards"),
                    (HeaderName::ContentType, "Content-Type"),
                ] {
                    if self.headers.count(&name) > 1 {
                        return Err(ParseError::DuplicateHeader(canonical));
                    }
                }
                self.vias()?;
                self.from_hdr()?;
                self.to_hdr()?;
                let call_id = self.call_id().unwrap_or_default();
                if call_id.is_empty() || call_id.contains([' ', '\t']) {
                    return Err(ParseError::BadCallId);
                }
                self.cseq()?;
                let contacts = self.contacts()?;
                if contacts.len() > 1 && contacts.contains(&ContactValue::Star) {
                    // RFC 3261 §10.2.2: `*` stands alone.
                    return Err(ParseError::BadContact);
                }
                Ok(())
            }
        }

        impl fmt::Display for $t {
            /// The wire form; a non-UTF-8 body is shown lossily.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
            }
        }
    };
}

header_accessors!(Request);
header_accessors!(Response);

/// Parses delta-seconds; saturates at `u32::MAX` (RFC 3261 §20.19 allows large values).
pub(crate) fn parse_delta_seconds(v: &str) -> Option<u32> {
    let v = trim_wsp(v);
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(v.parse::<u32>().unwrap_or(u32::MAX))
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: Method, uri: Uri) -> Request {
        Request {
            method,
            uri,
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    fn write_start_line(&self, out: &mut String) {
        let _ = write!(out, "{} {} SIP/2.0\r\n", self.method, self.uri);
    }

    /// The Max-Forwards value; `Ok(None)` when absent, [`ParseError::BadMaxForwards`]
    /// when not a number in 0..=255.
    pub fn max_forwards(&self) -> Result<Option<u8>, ParseError> {
        match self.headers.get(&HeaderName::MaxForwards) {
            None => Ok(None),
            Some(v) => {
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ParseError::BadMaxForwards);
                }
                v.parse::<u8>()
                    .map(Some)
                    .map_err(|_| ParseError::BadMaxForwards)
            }
        }
    }

    /// RFC 3261 §8.1.1 / §8.2 checks a UAS makes before processing, in this order:
    /// Via, From, To, Call-ID and CSeq present; From, To, Call-ID, CSeq, Max-Forwards,
    /// Content-Type not repeated; every Via, From, To, Call-ID, CSeq and Contact
    /// well-formed (`Contact: *` only alone); CSeq method equal to the request method; Max-Forwards (optional) in
    /// 0..=255; no headers in the Request-URI (RFC 3261 §19.1.5). The error's
    /// [`ParseError::reason_phrase`] suits a `400` answer.
    pub fn validate(&self) -> Result<(), ParseError> {
        self.validate_common()?;
        if self.cseq()?.method != self.method {
            return Err(ParseError::CSeqMethodMismatch);
        }
        self.max_forwards()?;
        if !self.uri.headers.is_empty() {
            return Err(ParseError::BadRequestUri);
        }
        Ok(())
    }
}

impl Response {
    /// A response with the default reason phrase, no headers and no body.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            reason: default_reason(status).to_owned(),
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    /// RFC 3261 §8.2.6: copies Via (all), From, To, Call-ID, CSeq; adds `tag` to To when
    /// given and To has none.
    pub fn from_request(
        req: &Request,
        status: u16,
        reason: &str,
        to_tag: Option<&str>,
    ) -> Response {
        let mut headers = Headers::new();
        for v in req.headers.get_all(&HeaderName::Via) {
            headers.push(HeaderName::Via, v);
        }
        if let Some(v) = req.headers.get(&HeaderName::From) {
            headers.push(HeaderName::From, v);
        }
        if let Some(v) = req.headers.get(&HeaderName::To) {
            let has_tag = NameAddr::parse(v).is_ok_and(|n| n.tag().is_some());
            match to_tag {
                Some(tag) if !has_tag => headers.push(HeaderName::To, format!("{v};tag={tag}")),
                _ => headers.push(HeaderName::To, v),
            }
        }
        if let Some(v) = req.headers.get(&HeaderName::CallId) {
            headers.push(HeaderName::CallId, v);
        }
        if let Some(v) = req.headers.get(&HeaderName::CSeq) {
            headers.push(HeaderName::CSeq, v);
        }
        Response {
            status,
            reason: reason.to_owned(),
            headers,
            body: Vec::new(),
        }
    }

    fn write_start_line(&self, out: &mut String) {
        let _ = write!(out, "SIP/2.0 {} {}\r\n", self.status, self.reason);
    }

    /// Checks a received response: the same header checks as [`Request::validate`]
    /// except the method comparison and Max-Forwards.
    pub fn validate(&self) -> Result<(), ParseError> {
        self.validate_common()
    }
}

/// The RFC 3261 §21 (and common extension) reason phrase for a status code.
pub fn default_reason(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        199 => "Early Dialog Terminated",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        429 => "Provide Referrer Identity",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        580 => "Precondition Failure",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => class_reason(status),
    }
}

/// A generic phrase for a status code with no specific one.
fn class_reason(status: u16) -> &'static str {
    match status / 100 {
        1 => "Session Progress",
        2 => "OK",
        3 => "Redirection",
        4 => "Client Error",
        5 => "Server Error",
        6 => "Global Failure",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uri::Host;

    const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n\
Max-Forwards: 70\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
Call-ID: 3848276298220188511@atlanta.example.com\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@client.atlanta.example.com;transport=udp>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\r\n";

    fn request(s: &str) -> Request {
        match Message::parse(s.as_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!("not a request"),
        }
    }

    #[test]
    fn parses_and_prints_invite() {
        let r = request(INVITE);
        assert_eq!(r.method, Method::Invite);
        assert_eq!(r.body, b"v=0\r");
        assert_eq!(r.call_id(), Some("3848276298220188511@atlanta.example.com"));
        assert_eq!(r.cseq().unwrap().seq, 1);
        assert_eq!(r.top_via().unwrap().branch(), Some("z9hG4bK74bf9"));
        assert_eq!(r.from_hdr().unwrap().tag(), Some("9fxced76sl"));
        assert_eq!(r.to_hdr().unwrap().tag(), None);
        assert_eq!(r.max_forwards().unwrap(), Some(70));
        r.validate().unwrap();
        let printed = r.to_bytes();
        assert_eq!(Message::parse(&printed).unwrap(), Message::Request(r));
    }

    #[test]
    fn folding_compact_and_case() {
        let m = "OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:x@y>;tag=1\r\n\
t: <sip:a@b>\r\ni: abc\r\nCSEQ: 0009\r\n  OPTIONS\r\nX-Long:   one\r\n\ttwo  \r\n   three\r\nl: 0\r\n\r\n";
        let r = request(m);
        assert_eq!(r.headers.get(&HeaderName::CSeq), Some("0009 OPTIONS"));
        assert_eq!(
            r.headers.get(&HeaderName::Other("x-long".into())),
            Some("one two three")
        );
        r.validate().unwrap();
        let printed = String::from_utf8(r.to_bytes()).unwrap();
        assert!(printed.contains("\r\nCall-ID: abc\r\n"), "{printed}");
        assert!(printed.contains("\r\nContent-Length: 0\r\n\r\n"));
    }

    #[test]
    fn content_length_framing() {
        let base = "MESSAGE sip:a@b SIP/2.0\r\nContent-Length: ";
        let r = request(&format!("{base}0005\r\n\r\nhello extra"));
        assert_eq!(r.body, b"hello");
        assert_eq!(r.headers.get(&HeaderName::ContentLength), Some("5"));
        assert_eq!(
            Message::parse(format!("{base}6\r\n\r\nhello").as_bytes()),
            Err(ParseError::BodyTooShort {
                declared: 6,
                available: 5
            })
        );
        for bad in ["-1", "", "1 2", "0x10", "99999999999999999999999"] {
            assert_eq!(
                Message::parse(format!("{base}{bad}\r\n\r\n").as_bytes()),
                Err(ParseError::BadContentLength),
                "{bad}"
            );
        }
        let dup = format!("{base}0\r\nl: 0\r\n\r\n");
        assert_eq!(
            Message::parse(dup.as_bytes()),
            Err(ParseError::BadContentLength)
        );
        let none = request("MESSAGE sip:a@b SIP/2.0\r\n\r\nrest of it");
        assert_eq!(none.body, b"rest of it");
        assert_eq!(none.headers.get(&HeaderName::ContentLength), Some("10"));
    }

    #[test]
    fn start_line_errors() {
        let cases: &[(&str, ParseError)] = &[
            ("", ParseError::Empty),
            ("\r\n\r\n", ParseError::Empty),
            ("INVITE sip:a@b SIP/2.0\r\n", ParseError::Incomplete),
            ("INVITE sip:a@b SIP/2.0", ParseError::Incomplete),
            ("INVITE sip:a@b SIP/7.0\r\n\r\n", ParseError::BadVersion),
            ("INVITE sip:a@b HTTP/1.1\r\n\r\n", ParseError::BadStartLine),
            ("INVITE  sip:a@b SIP/2.0\r\n\r\n", ParseError::BadStartLine),
            ("INVITE sip:a@b SIP/2.0 \r\n\r\n", ParseError::BadStartLine),
            (
                "INVITE sip:a@b; lr SIP/2.0\r\n\r\n",
                ParseError::BadStartLine,
            ),
            (
                "INVITE <sip:a@b> SIP/2.0\r\n\r\n",
                ParseError::BadRequestUri,
            ),
            ("INV\"TE sip:a@b SIP/2.0\r\n\r\n", ParseError::BadMethod),
            ("SIP/2.0 4294967301 big\r\n\r\n", ParseError::BadStatusCode),
            ("SIP/2.0 099 low\r\n\r\n", ParseError::BadStatusCode),
            ("SIP/2.0 20 OK\r\n\r\n", ParseError::BadStatusCode),
            ("SIP/2.1 200 OK\r\n\r\n", ParseError::BadVersion),
            ("garbage\r\n\r\n", ParseError::BadStartLine),
            (
                "OPTIONS sip:a@b SIP/2.0\r\nNoColon\r\n\r\n",
                ParseError::MissingColon,
            ),
            (
                "OPTIONS sip:a@b SIP/2.0\r\nBad Name: x\r\n\r\n",
                ParseError::BadHeaderName,
            ),
            (
                "OPTIONS sip:a@b SIP/2.0\r\n folded: x\r\n\r\n",
                ParseError::BadHeaderName,
            ),
            (
                "OPTIONS sip:a@b SIP/2.0\r\nX: a\x01b\r\n\r\n",
                ParseError::ControlCharacter,
            ),
            (
                "OPTIONS sip:a@b SIP/2.0\r\nX: a\rb\r\n\r\n",
                ParseError::ControlCharacter,
            ),
            (
                "OPTIONS sip:a@b\x00 SIP/2.0\r\n\r\n",
                ParseError::ControlCharacter,
            ),
        ];
        for (input, err) in cases {
            assert_eq!(
                Message::parse(input.as_bytes()).as_ref(),
                Err(err),
                "{input:?}"
            );
        }
        assert_eq!(
            Message::parse(b"OPTIONS sip:a@b SIP/2.0\r\nX: \xff\r\n\r\n"),
            Err(ParseError::InvalidUtf8)
        );
        let big = vec![b'a'; DEFAULT_MAX_MESSAGE_SIZE + 1];
        assert!(matches!(
            Message::parse(&big),
            Err(ParseError::TooLarge { .. })
        ));
    }

    #[test]
    fn responses() {
        let m = Message::parse(b"\r\nSIP/2.0 100 \r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n")
            .unwrap();
        let Message::Response(r) = m else { panic!() };
        assert_eq!(r.status, 100);
        assert_eq!(r.reason, "");
        let m = Message::parse(
            "SIP/2.0 200 = 2**3 * 5**2 но сто девяносто девять - простое\r\n\r\n".as_bytes(),
        )
        .unwrap();
        let Message::Response(r) = m else { panic!() };
        assert!(r.reason.ends_with("простое"));
        let m = Message::parse(b"SIP/2.0 180\r\n\r\n").unwrap();
        let Message::Response(r) = m else { panic!() };
        assert_eq!(r.reason, "");
    }

    #[test]
    fn response_from_request() {
        let mut req = request(INVITE);
        req.headers
            .push(HeaderName::Via, "SIP/2.0/UDP second;branch=z9hG4bK2");
        let resp = Response::from_request(&req, 180, "Ringing", Some("abc"));
        assert_eq!(resp.headers.get_all(&HeaderName::Via).count(), 2);
        assert_eq!(resp.to_hdr().unwrap().tag(), Some("abc"));
        assert_eq!(resp.call_id(), req.call_id());
        resp.validate().unwrap();
        let again = Response::from_request(
            &Request {
                headers: resp.headers.clone(),
                ..req.clone()
            },
            200,
            "OK",
            Some("other"),
        );
        assert_eq!(again.to_hdr().unwrap().tag(), Some("abc"));
        let bytes = resp.to_bytes();
        assert!(bytes.starts_with(b"SIP/2.0 180 Ringing\r\nVia: "));
        assert!(bytes.ends_with(b"Content-Length: 0\r\n\r\n"));
        assert_eq!(Response::new(486).reason, "Busy Here");
        assert_eq!(default_reason(499), "Client Error");
    }

    #[test]
    fn validate_errors() {
        let ok = request(INVITE);
        let with = |f: &dyn Fn(&mut Request)| {
            let mut r = ok.clone();
            f(&mut r);
            r.validate()
        };
        assert_eq!(
            with(&|r| r.headers.remove(&HeaderName::CallId)),
            Err(ParseError::MissingHeader("Call-ID"))
        );
        assert_eq!(
            with(&|r| r.headers.push(HeaderName::To, "<sip:x@y>")),
            Err(ParseError::DuplicateHeader("To"))
        );
        assert_eq!(
            with(&|r| r.headers.set(HeaderName::CSeq, "1 OPTIONS")),
            Err(ParseError::CSeqMethodMismatch)
        );
        assert_eq!(
            with(&|r| r.headers.set(HeaderName::MaxForwards, "300")),
            Err(ParseError::BadMaxForwards)
        );
        assert_eq!(
            with(&|r| r.headers.set(HeaderName::Via, "SIP/2.0/UDP h;;,;,,")),
            Err(ParseError::BadVia)
        );
        assert_eq!(
            with(&|r| r.headers.set(HeaderName::Contact, "sip:a@b?Route=x")),
            Err(ParseError::BadContact)
        );
        assert_eq!(
            with(&|r| r.uri.headers.push(("Route".into(), "x".into()))),
            Err(ParseError::BadRequestUri)
        );
        assert_eq!(with(&|r| r.headers.set(HeaderName::Contact, "*")), Ok(()));
        assert_eq!(
            with(&|r| r.headers.push(HeaderName::Contact, "*")),
            Err(ParseError::BadContact)
        );
        assert_eq!(
            with(&|r| r.headers.remove(&HeaderName::MaxForwards)),
            Ok(())
        );
    }

    #[test]
    fn printer_never_emits_broken_lines() {
        let mut r = Request::new(
            Method::Options,
            Uri::sip(None, Host::Domain("h".into()), None),
        );
        r.headers.push(HeaderName::Subject, "a\r\nInjected: yes");
        r.headers.push(HeaderName::Expires, "3600");
        let m = Message::parse(&r.to_bytes()).unwrap();
        assert_eq!(m.headers().len(), 3);
        assert_eq!(m.headers().get(&HeaderName::Other("Injected".into())), None);
        let Message::Request(r) = m else { panic!() };
        assert_eq!(r.expires(), Some(3600));
    }
}
