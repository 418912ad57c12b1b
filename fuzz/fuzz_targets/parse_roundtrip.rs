//! parse → to_bytes → parse must succeed and agree; printing must be a fixed point;
//! typed views and the stream framer must never panic on any input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_sipmsg::{Frame, Message, StreamFramer};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data) {
        let printed = m.to_bytes();
        let again = Message::parse(&printed).expect("printed message must parse");
        assert_eq!(again, m, "round trip changed the message");
        assert_eq!(again.to_bytes(), printed, "printing is not a fixed point");
        let _ = m.validate();
        if let Message::Request(r) = &m {
            let _ = (r.contacts(), r.vias(), r.from_hdr(), r.to_hdr(), r.cseq(), r.expires());
            let _ = r.max_forwards();
        }
    }
    let mut framer = StreamFramer::new(8192);
    framer.push(data);
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
