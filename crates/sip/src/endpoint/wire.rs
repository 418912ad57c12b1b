//! Message-level helpers of the endpoint: Via stamping (RFC 3581), where replies go,
//! transaction matching keys, and the raw 400 for what does not parse.

use super::*;

/// RFC 3261 §18.2.1 and RFC 3581: note the source in the top Via (`received` when the
/// sent-by host differs from the source IP or `rport` is present; `rport` filled in).
pub(super) fn stamp_via(req: &mut Request, src: &Peer) -> Result<Via, ParseError> {
    let mut via = req.top_via()?;
    let src_ip = src.addr.ip().to_canonical();
    let host_is_src = match &via.host {
        Host::V4(a) => IpAddr::V4(*a) == src_ip,
        Host::V6(a) => IpAddr::V6(*a).to_canonical() == src_ip,
        Host::Domain(_) => false,
    };
    let rport = via.param("rport").is_some();
    if rport {
        via.set_param("rport", Some(&src.addr.port().to_string()));
    }
    if rport || !host_is_src {
        via.set_param("received", Some(&src_ip.to_string()));
    }
    if rport || !host_is_src {
        replace_top_via(&mut req.headers, &via.to_string());
    }
    Ok(via)
}

/// Where responses to a request with top Via `via` from `src` go: the same connection for
/// streams; for UDP the source IP (it is the `received` address) and, with `rport`, the
/// source port, else the sent-by port (§18.2.2, RFC 3581 §4).
pub(super) fn reply_target(src: &Peer, via: &Via) -> Peer {
    if src.transport.is_reliable() {
        return src.clone();
    }
    let port = if via.param("rport").is_some() {
        src.addr.port()
    } else {
        via.port.unwrap_or(Transport::Udp.default_port())
    };
    Peer {
        local: src.local,
        ..Peer::udp(SocketAddr::new(src.addr.ip(), port))
    }
}

/// The UDP listener a new request to `dest` leaves from: the first of `dest`'s address
/// family that can reach it (a listener bound to a loopback address reaches only loopback
/// destinations; a wildcard one reaches all), else the first of that family, else the first.
pub(super) fn pick_udp_listener(listeners: &[SocketAddr], dest: SocketAddr) -> Option<SocketAddr> {
    let family = |l: &&SocketAddr| l.is_ipv4() == dest.is_ipv4();
    let reaches = |l: &&SocketAddr| {
        l.ip().is_unspecified() || l.ip().is_loopback() == dest.ip().is_loopback()
    };
    listeners
        .iter()
        .filter(family)
        .find(reaches)
        .or_else(|| listeners.iter().find(family))
        .or_else(|| listeners.first())
        .copied()
}

/// Replaces the first Via element (the first comma-separated value of the first Via line).
pub(super) fn replace_top_via(headers: &mut switchboard_sipmsg::Headers, new_top: &str) {
    if let Some(h) = headers.iter_mut().find(|h| h.name == HeaderName::Via) {
        let rest = split_first_element(&h.value).1.map(str::to_string);
        h.value = match rest {
            Some(rest) => format!("{new_top}, {rest}"),
            None => new_top.to_string(),
        };
    }
}

/// Splits `value` at the first comma outside a quoted string.
pub(super) fn split_first_element(value: &str) -> (&str, Option<&str>) {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                let rest = value.get(i + 1..).map(str::trim).filter(|r| !r.is_empty());
                return (value.get(..i).unwrap_or(value), rest);
            }
            _ => {}
        }
    }
    (value, None)
}

pub(super) fn server_match(req: &Request, via: &Via, method: &str) -> ServerMatch {
    let sent_by = format!(
        "{}:{}",
        via.host.to_string().to_ascii_lowercase(),
        via.port.unwrap_or(0)
    );
    let branch = match via.branch() {
        Some(b) if b.starts_with(BRANCH_MAGIC) => b.to_string(),
        // RFC 2543 peers: identify by the dialog and CSeq instead (§17.2.3, simplified).
        other => format!(
            "2543|{}|{}|{}|{}",
            other.unwrap_or(""),
            req.call_id().unwrap_or(""),
            req.cseq().map(|c| c.seq).unwrap_or(0),
            req.from_hdr()
                .ok()
                .and_then(|f| f.tag().map(str::to_string))
                .unwrap_or_default()
        ),
    };
    ServerMatch {
        branch,
        sent_by,
        method: method.to_string(),
    }
}

pub(super) fn max_forwards(req: &Request) -> Option<u8> {
    req.max_forwards().ok().flatten()
}

pub(super) fn ensure_to_tag(resp: &mut Response, tag: &str) {
    let has_tag = resp.to_hdr().ok().is_some_and(|to| to.tag().is_some());
    if !has_tag && let Some(to) = resp.headers.get(&HeaderName::To).map(str::to_string) {
        resp.headers.set(HeaderName::To, format!("{to};tag={tag}"));
    }
}

/// Builds a 400 (or the status the error calls for) from the raw lines of an unparseable
/// request when Via, From, To, Call-ID and CSeq can be found; returns the bytes and the top
/// Via value. `None` for responses, ACKs and hopeless input.
pub(super) fn raw_error_response(
    bytes: &[u8],
    err: &ParseError,
    tag: &str,
    server: &str,
) -> Option<(Vec<u8>, Option<String>)> {
    let head_end = find_subslice(bytes, b"\r\n\r\n").unwrap_or(bytes.len());
    let head = String::from_utf8_lossy(bytes.get(..head_end)?);
    let mut lines = head.split('\n').map(|l| l.trim_end_matches('\r'));
    let start = lines.next()?;
    let mut parts = start.split(' ');
    let method = parts.next()?;
    if method.is_empty() || method.starts_with("SIP/") || method == "ACK" {
        return None;
    }
    let (mut via, mut from, mut to, mut call_id, mut cseq) = (Vec::new(), None, None, None, None);
    for line in lines {
        if line.contains(|c: char| c.is_control() && c != '\t') {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim().to_string();
        match name.trim().to_ascii_lowercase().as_str() {
            "via" | "v" => via.push(value),
            "from" | "f" => from = from.or(Some(value)),
            "to" | "t" => to = to.or(Some(value)),
            "call-id" | "i" => call_id = call_id.or(Some(value)),
            "cseq" => cseq = cseq.or(Some(value)),
            _ => {}
        }
    }
    let (from, to, call_id, cseq) = (from?, to?, call_id?, cseq?);
    if via.is_empty() || cseq.split_whitespace().nth(1) == Some("ACK") {
        return None;
    }
    let to = if to.contains(";tag=") {
        to
    } else {
        format!("{to};tag={tag}")
    };
    let status = err.status();
    let mut out = format!("SIP/2.0 {status} {}\r\n", err.reason_phrase());
    for v in &via {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    out.push_str(&format!(
        "From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\nServer: {server}\r\nContent-Length: 0\r\n\r\n"
    ));
    let top = via.first().map(|v| split_first_element(v).0.to_string());
    // Copied lines may themselves be malformed: never send what a parser would reject.
    let out = out.into_bytes();
    Message::parse(&out).ok()?;
    Some((out, top))
}

pub(super) fn find_subslice(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
