//! Stream (TCP/TLS) framing by Content-Length (RFC 3261 §18.3) with RFC 5626 keep-alives.

use crate::ParseError;
use crate::scan::trim_wsp_bytes;

/// One unit popped from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One whole message (head and exactly Content-Length body bytes), ready for
    /// [`crate::Message::parse_with_limit`].
    Message(Vec<u8>),
    /// A `CRLFCRLF` keep-alive ping: answer with `"\r\n"` (RFC 5626 §4.4.1).
    KeepAlivePing,
    /// A lone `CRLF`: a keep-alive pong (or stray line end between messages).
    KeepAlivePong,
}

/// Accumulates stream bytes and pops whole messages.
///
/// After any error the stream is out of sync and the connection must be closed; the
/// framer keeps returning the same error.
#[derive(Debug, Clone)]
pub struct StreamFramer {
    buf: Vec<u8>,
    max_message_size: usize,
    failed: Option<ParseError>,
    /// Where the search for the end of the current head resumes (bytes before it hold
    /// no terminator), so a head trickling in byte by byte is scanned once.
    scanned: usize,
    /// Total length (head + body) of the current message once its head is complete.
    pending: Option<usize>,
}

impl StreamFramer {
    /// A framer refusing messages (head + body) larger than `max_message_size`.
    pub fn new(max_message_size: usize) -> Self {
        StreamFramer {
            buf: Vec::new(),
            max_message_size,
            failed: None,
            scanned: 0,
            pending: None,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Pops the next frame: `Ok(None)` when more bytes are needed. The work is linear in
    /// the bytes received, however they are split.
    ///
    /// A buffer holding exactly `"\r\n"` is reported as [`Frame::KeepAlivePong`]; a ping
    /// split after its first CRLF is therefore seen as two pongs — harmless, as a pong
    /// needs no answer.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ParseError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.pop();
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    fn pop(&mut self) -> Result<Option<Frame>, ParseError> {
        let total = match self.pending {
            Some(total) => total,
            None => {
                if let Some(keep_alive) = self.pop_keep_alive() {
                    return Ok(keep_alive);
                }
                let Some(head_len) = head_length(&self.buf, self.scanned) else {
                    self.scanned = self.buf.len().saturating_sub(2);
                    if self.buf.len() > self.max_message_size {
                        return Err(ParseError::TooLarge {
                            size: self.buf.len(),
                            limit: self.max_message_size,
                        });
                    }
                    return Ok(None);
                };
                let head = self.buf.get(..head_len).unwrap_or_default();
                let total = head_len
                    .checked_add(content_length(head)?)
                    .ok_or(ParseError::BadContentLength)?;
                if total > self.max_message_size {
                    return Err(ParseError::TooLarge {
                        size: total,
                        limit: self.max_message_size,
                    });
                }
                self.pending = Some(total);
                total
            }
        };
        if self.buf.len() < total {
            return Ok(None);
        }
        let rest = self.buf.split_off(total);
        let frame = std::mem::replace(&mut self.buf, rest);
        self.pending = None;
        self.scanned = 0;
        Ok(Some(Frame::Message(frame)))
    }

    /// At a message boundary: `Some(Some(frame))` for a keep-alive, `Some(None)` when the
    /// bytes so far could still become one, `None` when a message starts here.
    fn pop_keep_alive(&mut self) -> Option<Option<Frame>> {
        if self.buf.starts_with(b"\r\n\r\n") {
            self.buf.drain(..4);
            return Some(Some(Frame::KeepAlivePing));
        }
        if self.buf.starts_with(b"\r\n") && !self.buf.starts_with(b"\r\n\r") {
            self.buf.drain(..2);
            return Some(Some(Frame::KeepAlivePong));
        }
        if self.buf == b"\r\n\r" || self.buf == b"\r" || self.buf.is_empty() {
            return Some(None);
        }
        None
    }
}

/// Length of the head including the terminating empty line (`\r\n\r\n` or `\n\n`),
/// searching for the LF that starts the terminator from `from` on.
fn head_length(buf: &[u8], from: usize) -> Option<usize> {
    let mut offset = from;
    let mut rest = buf.get(from..)?;
    loop {
        let nl = rest.iter().position(|b| *b == b'\n')?;
        let after = nl.checked_add(1)?;
        offset = offset.checked_add(after)?;
        rest = rest.get(after..)?;
        match rest {
            [b'\n', ..] => return offset.checked_add(1),
            [b'\r', b'\n', ..] => return offset.checked_add(2),
            _ => {}
        }
    }
}

/// The Content-Length of a head (full or compact name, any case). Folded Content-Length
/// values are not supported on streams.
fn content_length(head: &[u8]) -> Result<usize, ParseError> {
    let mut found = None;
    for line in head.split(|b| *b == b'\n').skip(1) {
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            // A continuation line belongs to the header before it, as in the parser.
            continue;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = line.split_at_checked(colon).unwrap_or_default();
        let name = trim_wsp_bytes(name);
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = value.get(1..).unwrap_or_default();
        let value = trim_wsp_bytes(value.strip_suffix(b"\r").unwrap_or(value));
        if found.is_some() || value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
            return Err(ParseError::BadContentLength);
        }
        let n = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .ok_or(ParseError::BadContentLength)?;
        found = Some(n);
    }
    found.ok_or(ParseError::MissingContentLength)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    const MSG: &[u8] = b"MESSAGE sip:a@b SIP/2.0\r\nl: 5\r\n\r\nhello";

    #[test]
    fn frames_split_and_coalesced_messages() {
        let mut f = StreamFramer::new(4096);
        f.push(b"\r\n\r\n");
        let mut frames = vec![f.next_frame().unwrap().unwrap()];
        let mut stream = Vec::new();
        stream.extend_from_slice(MSG);
        stream.extend_from_slice(MSG);
        stream.extend_from_slice(b"\r\n");
        // Feed one byte at a time: every split point must work.
        for b in &stream {
            f.push(std::slice::from_ref(b));
            while let Some(frame) = f.next_frame().unwrap() {
                frames.push(frame);
            }
        }
        assert_eq!(
            frames,
            vec![
                Frame::KeepAlivePing,
                Frame::Message(MSG.to_vec()),
                Frame::Message(MSG.to_vec()),
                Frame::KeepAlivePong,
            ]
        );
        assert_eq!(f.buffered(), 0);
        let Frame::Message(bytes) = &frames[1] else {
            panic!()
        };
        assert!(Message::parse(bytes).is_ok());
    }

    #[test]
    fn trickled_long_head_and_body() {
        let mut msg = b"MESSAGE sip:a@b SIP/2.0\r\n".to_vec();
        for i in 0..200 {
            msg.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        msg.extend_from_slice(b"Content-Length: 300\r\n\r\n");
        msg.extend(std::iter::repeat_n(b'z', 300));
        let mut f = StreamFramer::new(1 << 16);
        for (i, b) in msg.iter().enumerate() {
            f.push(std::slice::from_ref(b));
            let frame = f.next_frame().unwrap();
            if i + 1 < msg.len() {
                assert_eq!(frame, None, "early frame at byte {i}");
            } else {
                assert_eq!(frame, Some(Frame::Message(msg.clone())));
            }
        }
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn continuation_lines_are_not_headers() {
        let msg = b"MESSAGE sip:a@b SIP/2.0\r\nX-Foo: a\r\n l: 99\r\nl: 2\r\n\r\nhi";
        let mut f = StreamFramer::new(4096);
        f.push(msg);
        assert_eq!(f.next_frame(), Ok(Some(Frame::Message(msg.to_vec()))));
        let m = Message::parse(msg).unwrap();
        assert_eq!(m.body(), b"hi");
    }

    #[test]
    fn split_ping_is_two_pongs() {
        let mut f = StreamFramer::new(4096);
        f.push(b"\r\n");
        assert_eq!(f.next_frame(), Ok(Some(Frame::KeepAlivePong)));
        f.push(b"\r\n");
        assert_eq!(f.next_frame(), Ok(Some(Frame::KeepAlivePong)));
        f.push(b"\r\n\r");
        assert_eq!(f.next_frame(), Ok(None));
        f.push(b"\n");
        assert_eq!(f.next_frame(), Ok(Some(Frame::KeepAlivePing)));
        assert_eq!(f.next_frame(), Ok(None));
    }

    #[test]
    fn errors_are_sticky() {
        let mut f = StreamFramer::new(4096);
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n");
        assert_eq!(f.next_frame(), Err(ParseError::MissingContentLength));
        f.push(MSG);
        assert_eq!(f.next_frame(), Err(ParseError::MissingContentLength));
        let mut f = StreamFramer::new(4096);
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n");
        assert_eq!(f.next_frame(), Err(ParseError::BadContentLength));
    }

    #[test]
    fn size_limits() {
        let mut f = StreamFramer::new(30);
        f.push(MSG);
        assert!(matches!(f.next_frame(), Err(ParseError::TooLarge { .. })));
        let mut f = StreamFramer::new(16);
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nX: a");
        assert!(matches!(f.next_frame(), Err(ParseError::TooLarge { .. })));
        let mut f = StreamFramer::new(100);
        f.push(b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 99999999999999999999\r\n\r\n");
        assert_eq!(f.next_frame(), Err(ParseError::BadContentLength));
    }
}
