//! parse → to_bytes → parse must succeed and agree; printing must be a fixed point;
//! every typed view that parses must print to something that parses back equal;
//! validation and the stream framer (fed in two pieces) must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_sipmsg::{CSeq, ContactValue, Frame, HeaderName, Message, StreamFramer, Uri, Via};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data) {
        let printed = m.to_bytes();
        let again = Message::parse(&printed).expect("printed message must parse");
        assert_eq!(again, m, "round trip changed the message");
        assert_eq!(again.to_bytes(), printed, "printing is not a fixed point");
        let _ = m.validate();
        typed_round_trips(&m);
    }
    let split = usize::from(data.first().copied().unwrap_or(0)).min(data.len());
    let (a, b) = data.split_at(split);
    let mut framer = StreamFramer::new(8192);
    framer.push(a);
    let _ = framer.next_frame();
    framer.push(b);
    for _ in 0..16 {
        match framer.next_frame() {
            Ok(Some(Frame::Message(frame))) => {
                let _ = Message::parse_with_limit(&frame, 8192);
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
});

fn typed_round_trips(m: &Message) {
    for v in m.headers().list(&HeaderName::Via) {
        if let Ok(via) = Via::parse(v) {
            assert_eq!(Via::parse(&via.to_string()), Ok(via));
        }
    }
    for name in [
        HeaderName::From,
        HeaderName::To,
        HeaderName::Contact,
        HeaderName::Route,
    ] {
        for v in m.headers().list(&name) {
            if let Ok(c) = ContactValue::parse(v) {
                assert_eq!(ContactValue::parse(&c.to_string()), Ok(c));
            }
        }
    }
    if let Some(Ok(cseq)) = m.headers().get(&HeaderName::CSeq).map(CSeq::parse) {
        assert_eq!(CSeq::parse(&cseq.to_string()), Ok(cseq));
    }
    if let Message::Request(r) = m {
        assert_eq!(r.uri.to_string().parse::<Uri>(), Ok(r.uri.clone()));
        let _ = (
            r.max_forwards(),
            r.expires(),
            r.vias(),
            r.from_hdr(),
            r.to_hdr(),
        );
    }
}
