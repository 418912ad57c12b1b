//! Data-driven tests over `tests/data/sip` (see the README there).
//!
//! * `valid/*.sip` must parse, pass `validate()` (unless the sidecar says otherwise),
//!   print, and re-parse to an equal message; the printed form must be a fixed point and
//!   must frame as exactly one message on a stream. A sibling `.expect` file lists facts
//!   (`key: value`) checked against the parsed message.
//! * `invalid/<case>.<Kind>.sip` must fail `Message::parse`, or `validate()` when parsing
//!   succeeds, with the `ParseError` whose `kind()` is `<Kind>`.
//! * Every file, valid or invalid, is also mutated deterministically (bit flips, byte
//!   insertions, truncations): parsing must never panic, and whatever parses must
//!   round-trip. This is the in-crate stand-in for the `parse_roundtrip` fuzz target.

// Test helpers outside `#[test]` functions: panicking on a broken corpus is the point.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::fs;
use std::path::{Path, PathBuf};

use switchboard_sipmsg::{
    CSeq, ContactValue, Frame, HeaderName, Message, ParseError, StreamFramer, Uri, Via,
};

fn corpus_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/sip")
        .join(kind)
}

fn files(kind: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(corpus_dir(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sip"))
        .collect();
    v.sort();
    v
}

/// parse → print → parse must agree, and printing must be a fixed point.
fn assert_round_trip(m: &Message, what: &str) {
    let printed = m.to_bytes();
    let again = Message::parse(&printed)
        .unwrap_or_else(|e| panic!("{what}: printed form does not parse: {e}"));
    assert_eq!(&again, m, "{what}: round trip changed the message");
    assert_eq!(
        again.to_bytes(),
        printed,
        "{what}: printing is not a fixed point"
    );
}

fn top_via(m: &Message) -> Via {
    let first = m.headers().list(&HeaderName::Via)[0].to_owned();
    Via::parse(&first).unwrap()
}

fn uri(m: &Message) -> &Uri {
    match m {
        Message::Request(r) => &r.uri,
        Message::Response(_) => panic!("not a request"),
    }
}

fn contacts(m: &Message) -> Vec<ContactValue> {
    match m {
        Message::Request(r) => r.contacts().unwrap(),
        Message::Response(r) => r.contacts().unwrap(),
    }
}

fn opt(v: Option<Option<&str>>) -> String {
    match v {
        None => "<absent>".to_owned(),
        Some(None) => String::new(),
        Some(Some(v)) => v.to_owned(),
    }
}

/// The value of one `.expect` key, computed from the parsed message.
fn fact(m: &Message, key: &str) -> String {
    let (req, resp) = match m {
        Message::Request(r) => (Some(r), None),
        Message::Response(r) => (None, Some(r)),
    };
    match key {
        "kind" => if req.is_some() { "request" } else { "response" }.to_owned(),
        "method" => req.unwrap().method.to_string(),
        "status" => resp.unwrap().status.to_string(),
        "reason" => resp.unwrap().reason.clone(),
        "call-id" => m.call_id().unwrap().to_owned(),
        "vias" => m.headers().list(&HeaderName::Via).len().to_string(),
        "contacts" => {
            let c = contacts(m);
            if c == [ContactValue::Star] {
                "*".to_owned()
            } else {
                c.len().to_string()
            }
        }
        "contact-instance" | "contact-expires" => match &contacts(m)[0] {
            ContactValue::Addr(a) => opt(a.param(match key {
                "contact-instance" => "+sip.instance",
                _ => "expires",
            })),
            ContactValue::Star => panic!("star contact"),
        },
        "cseq" => match m {
            Message::Request(r) => r.cseq().unwrap().to_string(),
            Message::Response(r) => r.cseq().unwrap().to_string(),
        },
        "from-tag" | "from-display" | "to-tag" => {
            let (from, to) = match m {
                Message::Request(r) => (r.from_hdr().unwrap(), r.to_hdr().unwrap()),
                Message::Response(r) => (r.from_hdr().unwrap(), r.to_hdr().unwrap()),
            };
            match key {
                "from-tag" => from.tag().unwrap_or("<absent>").to_owned(),
                "from-display" => from.display_name.unwrap_or_default(),
                _ => to.tag().unwrap_or("<absent>").to_owned(),
            }
        }
        "top-branch" => top_via(m).branch().unwrap().to_owned(),
        "top-transport" => top_via(m).transport,
        "top-host" => top_via(m).host.to_string(),
        "top-port" => top_via(m).port.unwrap().to_string(),
        "top-rport" => opt(top_via(m).param("rport")),
        "body-len" => m.body().len().to_string(),
        "max-forwards" => match req.unwrap().max_forwards().unwrap() {
            Some(n) => n.to_string(),
            None => "<absent>".to_owned(),
        },
        "expires" => match m {
            Message::Request(r) => r.expires().unwrap().to_string(),
            Message::Response(r) => r.expires().unwrap().to_string(),
        },
        "uri" => uri(m).to_string(),
        "uri-scheme" => uri(m).scheme.to_string(),
        "uri-user" => uri(m).user.clone().unwrap(),
        "uri-user-unescaped" => uri(m).user_unescaped().unwrap(),
        "uri-host" => uri(m).host.to_string(),
        "uri-port" => uri(m).port.unwrap().to_string(),
        "validate" => match m.validate() {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.kind().to_owned(),
        },
        _ => match key.strip_prefix("list-") {
            Some(name) => m.headers().list(&HeaderName::parse(name)).len().to_string(),
            None => m
                .headers()
                .get(&HeaderName::parse(key))
                .unwrap_or("<absent>")
                .to_owned(),
        },
    }
}

/// Every typed view that parses prints to something that parses back equal.
fn assert_typed_round_trips(m: &Message) {
    for v in m.headers().list(&HeaderName::Via) {
        if let Ok(via) = Via::parse(v) {
            assert_eq!(Via::parse(&via.to_string()), Ok(via.clone()), "{v:?}");
        }
    }
    for name in [
        HeaderName::From,
        HeaderName::To,
        HeaderName::Contact,
        HeaderName::Route,
        HeaderName::RecordRoute,
    ] {
        for v in m.headers().list(&name) {
            if let Ok(c) = ContactValue::parse(v) {
                assert_eq!(ContactValue::parse(&c.to_string()), Ok(c.clone()), "{v:?}");
            }
        }
    }
    if let Some(Ok(cseq)) = m.headers().get(&HeaderName::CSeq).map(CSeq::parse) {
        assert_eq!(CSeq::parse(&cseq.to_string()), Ok(cseq.clone()));
    }
    if let Message::Request(r) = m {
        assert_eq!(r.uri.to_string().parse::<Uri>(), Ok(r.uri.clone()));
    }
}

#[test]
fn valid_corpus_parses_validates_and_round_trips() {
    let files = files("valid");
    assert!(files.len() >= 40, "only {} valid files", files.len());
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = fs::read(path).unwrap();
        let m = Message::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_round_trip(&m, &name);
        assert_typed_round_trips(&m);

        // The printed form frames as exactly one message on a stream.
        let printed = m.to_bytes();
        let mut framer = StreamFramer::new(1 << 20);
        framer.push(&printed);
        assert_eq!(
            framer.next_frame().unwrap(),
            Some(Frame::Message(printed.clone())),
            "{name}"
        );
        assert_eq!(framer.next_frame().unwrap(), None, "{name}");

        let expect_path = path.with_extension("expect");
        let expected = fs::read_to_string(&expect_path).unwrap_or_default();
        let mut wants_validate = "ok".to_owned();
        for line in expected.lines().filter(|l| !l.trim().is_empty()) {
            let (key, value) = line.split_once(':').unwrap();
            let value = value.strip_prefix(' ').unwrap_or(value);
            if key == "validate" {
                wants_validate = value.to_owned();
                continue;
            }
            assert_eq!(fact(&m, key), value, "{name}: {key}");
        }
        assert_eq!(fact(&m, "validate"), wants_validate, "{name}: validate()");
    }
}

#[test]
fn invalid_corpus_fails_with_the_named_error() {
    let files = files("invalid");
    assert!(files.len() >= 25, "only {} invalid files", files.len());
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let expected_kind = name.trim_end_matches(".sip").rsplit('.').next().unwrap();
        let bytes = fs::read(path).unwrap();
        let err: ParseError = match Message::parse(&bytes) {
            Err(e) => e,
            Ok(m) => {
                // Whatever parses must still round-trip, even if it then fails validation.
                assert_round_trip(&m, &name);
                m.validate()
                    .err()
                    .unwrap_or_else(|| panic!("{name}: parsed and validated"))
            }
        };
        assert_eq!(err.kind(), expected_kind, "{name}: {err:?}");
        assert!(!err.reason_phrase().is_empty());
    }
}

#[test]
fn real_captures_are_present() {
    let names: Vec<String> = files("valid")
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for peer in ["real-sipp-", "real-baresip-", "real-linphone-", "jssip-"] {
        assert!(
            names.iter().any(|n| n.starts_with(peer)),
            "no capture from {peer}"
        );
    }
}

/// A small deterministic PRNG (xorshift64*), so mutations are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"\t",
    b":",
    b";",
    b",",
    b"\"",
    b"\\",
    b"<",
    b">",
    b"[",
    b"]",
    b"@",
    b"=",
    b"?",
    b"%",
    b"\x00",
    b"\xff",
    b"\r\n ",
    b"0",
    b"-1",
    b"99999999999999999999",
    b"Content-Length: 5\r\n",
    b"l: 0",
    b"SIP/2.0",
    b"sip:",
    b"[::1]",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(5) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << rng.below(8);
            }
            1 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                out.splice(at..at, piece.iter().copied());
            }
            2 => {
                let end = (at + rng.below(16)).min(out.len());
                out.drain(at..end);
            }
            3 => out.truncate(at),
            _ => {
                let end = (at + rng.below(32)).min(out.len());
                let chunk = out[at..end].to_vec();
                out.splice(at..at, chunk);
            }
        }
    }
    out
}

#[test]
fn mutated_corpus_never_panics_and_round_trips() {
    let mut rng = Rng(0x005e_ed0f_5177_c4b0);
    let mut parsed = 0usize;
    let mut total = 0usize;
    for path in files("valid").into_iter().chain(files("invalid")) {
        let bytes = fs::read(&path).unwrap();
        for _ in 0..300 {
            let input = mutate(&mut rng, &bytes);
            total += 1;
            if let Ok(m) = Message::parse(&input) {
                parsed += 1;
                assert_round_trip(&m, &format!("{} mutated: {:?}", path.display(), input));
                let _ = m.validate();
                if let Message::Request(r) = &m {
                    let _ = (
                        r.contacts(),
                        r.top_via(),
                        r.from_hdr(),
                        r.to_hdr(),
                        r.cseq(),
                    );
                }
            }
            let mut framer = StreamFramer::new(4096);
            framer.push(&input);
            for _ in 0..8 {
                match framer.next_frame() {
                    Ok(Some(Frame::Message(frame))) => {
                        let _ = Message::parse_with_limit(&frame, 4096);
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
    // Sanity: the mutations neither all fail nor all pass.
    assert!(
        parsed > total / 10 && parsed < total,
        "{parsed}/{total} parsed"
    );
}
