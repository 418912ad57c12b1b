//! RFC 4733 telephone-events: payload codec and digit detection. No I/O.
//!
//! A DTMF press travels as several packets sharing one RTP timestamp (the event's start):
//! updates with a growing duration, then usually three copies of the final packet with the
//! end bit. [`DtmfDetector`] reports each press exactly once, on its first end packet, ignores
//! the retransmitted ends (same timestamp), and still reports a press whose end packets were
//! all lost when the next press begins.

use crate::error::{MediaError, Result};

/// One decoded telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code: 0–9, 10 `*`, 11 `#`, 12–15 `A`–`D`, 16 flash.
    pub event: u8,
    /// End bit.
    pub end: bool,
    /// Volume in -dBm0 (0–63).
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Decodes the first event of a payload (RFC 4733 allows several; the first is the one
    /// every sender fills).
    pub fn parse(payload: &[u8]) -> Result<Self> {
        match payload {
            [event, flags, d0, d1, ..] => Ok(TelephoneEvent {
                event: *event,
                end: flags & 0x80 != 0,
                volume: flags & 0x3F,
                duration: u16::from_be_bytes([*d0, *d1]),
            }),
            _ => Err(MediaError::TelephoneEvent("shorter than 4 bytes")),
        }
    }

    /// Encodes as a 4-byte payload.
    pub fn encode(&self) -> [u8; 4] {
        let [d0, d1] = self.duration.to_be_bytes();
        let flags = if self.end { 0x80 } else { 0 } | (self.volume & 0x3F);
        [self.event, flags, d0, d1]
    }

    /// The DTMF character for this event, if it is a DTMF digit.
    pub fn digit(&self) -> Option<char> {
        event_to_digit(self.event)
    }
}

/// Maps a telephone-event code to its DTMF character (`0`–`9`, `*`, `#`, `A`–`D`).
pub fn event_to_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => char::from_digit(u32::from(event), 10),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => char::from_u32(u32::from(b'A') + u32::from(event) - 12),
        _ => None,
    }
}

/// Maps a DTMF character to its telephone-event code.
pub fn digit_to_event(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => digit.to_digit(10).and_then(|d| u8::try_from(d).ok()),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => u8::try_from(u32::from(digit) - u32::from('A') + 12).ok(),
        _ => None,
    }
}

/// Turns a stream of telephone-event packets into digits, once per press.
#[derive(Debug, Default, Clone)]
pub struct DtmfDetector {
    /// The press in progress: its RTP timestamp, code, and whether it was already reported.
    current: Option<(u32, u8, bool)>,
}

impl DtmfDetector {
    /// A detector with no press in progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one telephone-event packet (its RTP timestamp and payload); returns the digits
    /// completed by it, oldest first (at most two: a press whose end was lost, and this one).
    pub fn on_packet(&mut self, timestamp: u32, event: &TelephoneEvent) -> Vec<char> {
        let mut out = Vec::new();
        match self.current {
            Some((ts, _, _)) if ts == timestamp => {}
            Some((ts, _, _)) if !ts_newer(timestamp, ts) => return out, // late copy of an old press
            Some((_, code, reported)) => {
                if !reported {
                    out.extend(event_to_digit(code));
                }
                self.current = Some((timestamp, event.event, false));
            }
            None => self.current = Some((timestamp, event.event, false)),
        }
        if let Some((_, code, reported)) = self.current.as_mut()
            && event.end
            && !*reported
        {
            *reported = true;
            out.extend(event_to_digit(*code));
        }
        out
    }
}

fn ts_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000_0000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: u8, end: bool, duration: u16) -> TelephoneEvent {
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
    }

    #[test]
    fn payload_round_trip() {
        let e = ev(11, true, 800);
        assert_eq!(e.encode(), [11, 0x8A, 0x03, 0x20]);
        assert_eq!(TelephoneEvent::parse(&e.encode()).unwrap(), e);
        assert!(TelephoneEvent::parse(&[1, 2, 3]).is_err());
    }

    #[test]
    fn digit_mapping() {
        for (code, c) in [
            (0, '0'),
            (9, '9'),
            (10, '*'),
            (11, '#'),
            (12, 'A'),
            (15, 'D'),
        ] {
            assert_eq!(event_to_digit(code), Some(c));
            assert_eq!(digit_to_event(c), Some(code));
        }
        assert_eq!(event_to_digit(16), None);
        assert_eq!(digit_to_event('x'), None);
    }

    #[test]
    fn one_report_per_press_despite_retransmitted_ends() {
        let mut d = DtmfDetector::new();
        let mut got = Vec::new();
        for (dur, end) in [
            (160, false),
            (320, false),
            (480, false),
            (640, true),
            (640, true),
            (640, true),
        ] {
            got.extend(d.on_packet(1000, &ev(1, end, dur)));
        }
        for (dur, end) in [(160, false), (400, true), (400, true), (400, true)] {
            got.extend(d.on_packet(9000, &ev(1, end, dur)));
        }
        assert_eq!(got, vec!['1', '1']);
    }

    #[test]
    fn lost_end_is_reported_when_next_press_starts() {
        let mut d = DtmfDetector::new();
        assert!(d.on_packet(100, &ev(5, false, 160)).is_empty());
        assert_eq!(d.on_packet(5000, &ev(12, false, 160)), vec!['5']);
        assert_eq!(d.on_packet(5000, &ev(12, true, 480)), vec!['A']);
        // A stray retransmission of the older press is ignored.
        assert!(d.on_packet(100, &ev(5, true, 640)).is_empty());
    }

    #[test]
    fn timestamp_wraps() {
        let mut d = DtmfDetector::new();
        assert_eq!(d.on_packet(u32::MAX - 10, &ev(3, true, 160)), vec!['3']);
        assert_eq!(d.on_packet(200, &ev(4, true, 160)), vec!['4']);
    }
}
