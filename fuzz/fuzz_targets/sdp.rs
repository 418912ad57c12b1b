//! Session descriptions from the network: any bytes parse to a description or an error, never
//! a panic; a description that parses negotiates or refuses cleanly; the answer Switchboard
//! would send for it renders to text that parses back with the same codec, port, direction
//! and RTCP multiplexing.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_media::sdp::LocalSdp;
use switchboard_media::{Codec, OFFERED_CODECS, Sdp, TELEPHONE_EVENT_PT};

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = Sdp::parse_bytes(data) else {
        return;
    };
    let _ = (
        sdp.direction(),
        sdp.audio_ip(),
        sdp.audio_addr(),
        sdp.is_hold(),
    );
    let Ok(negotiated) = sdp.negotiate(&OFFERED_CODECS) else {
        return;
    };
    let answer = LocalSdp {
        session_id: 1,
        session_version: 2,
        address: "192.0.2.1".parse().unwrap(),
        port: 40000,
        codecs: vec![negotiated.codec],
        telephone_event: negotiated.telephone_event.map(|_| TELEPHONE_EVENT_PT),
        direction: negotiated.direction.answer(),
        ptime: 20,
        rtcp_mux: negotiated.rtcp_mux,
    };
    let text = answer.render();
    let back = Sdp::parse(&text).expect("our own answer must parse");
    let again = back
        .negotiate(&[Codec::Pcmu, Codec::Pcma])
        .expect("our own answer must negotiate");
    assert_eq!(again.codec, negotiated.codec);
    assert_eq!(again.rtcp_mux, negotiated.rtcp_mux);
    assert_eq!(back.audio_addr().map(|a| a.port()), Some(40000));
    assert_eq!(back.direction(), negotiated.direction.answer());
});
