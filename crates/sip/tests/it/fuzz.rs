//! Mutation fuzzing of `Endpoint::handle_datagram`: thousands of corrupted real messages
//! (fixed-seed LCG, so failures reproduce) must never panic, and everything the endpoint
//! sends in reply must itself be valid SIP.

use std::time::Duration;

use switchboard_sip::{ConnId, Peer, Transport};
use switchboard_sipmsg::Message;

use crate::registrar::Ua;
use crate::util::check_indexes;

const CORPUS: &[&str] = &[
    "INVITE sip:100@callcenter.local SIP/2.0\r\n\
     Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK776asdhds;rport\r\n\
     Max-Forwards: 70\r\n\
     To: <sip:100@callcenter.local>\r\n\
     From: \"PBX \\\"main\\\"\" <sip:+38512345678@pbx.example.com>;tag=1928301774\r\n\
     Call-ID: a84b4c76e66710@pc33.example.com\r\n\
     CSeq: 314159 INVITE\r\n\
     Contact: <sip:pbx@198.51.100.7:5060>\r\n\
     Content-Type: application/sdp\r\n\
     Content-Length: 129\r\n\r\n\
     v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
     m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n",
    "REGISTER sip:callcenter.local SIP/2.0\r\n\
     v: SIP/2.0/TCP 10.0.0.5:5060;branch=z9hG4bKreg1;rport\r\n\
     f: <sip:ana@callcenter.local>;tag=abc\r\n\
     t: <sip:ana@callcenter.local>\r\n\
     i: reg-fuzz-1\r\n\
     CSeq: 2 REGISTER\r\n\
     m: <sip:ana@10.0.0.5:5060;transport=tcp>;expires=300;+sip.instance=\"<urn:uuid:1>\"\r\n\
     Authorization: Digest username=\"ana\", realm=\"callcenter.local\", nonce=\"0000000000000000aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", uri=\"sip:callcenter.local\", response=\"00112233445566778899aabbccddeeff\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"x,y\"\r\n\
     Expires: 300\r\n\
     l: 0\r\n\r\n",
    "CANCEL sip:100@callcenter.local SIP/2.0\r\n\
     Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK776asdhds\r\n\
     Max-Forwards: 70\r\n\
     To: <sip:100@callcenter.local>\r\n\
     From: <sip:+38512345678@pbx.example.com>;tag=1928301774\r\n\
     Call-ID: a84b4c76e66710@pc33.example.com\r\n\
     CSeq: 314159 CANCEL\r\n\
     Content-Length: 0\r\n\r\n",
    "ACK sip:100@callcenter.local SIP/2.0\r\n\
     Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK776asdhds\r\n\
     To: <sip:100@callcenter.local>;tag=zz\r\n\
     From: <sip:+38512345678@pbx.example.com>;tag=1928301774\r\n\
     Call-ID: a84b4c76e66710@pc33.example.com\r\n\
     CSeq: 314159 ACK\r\n\
     Content-Length: 0\r\n\r\n",
    "SIP/2.0 180 Ringing\r\n\
     Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKdeadbeef;received=1.2.3.4\r\n\
     To: <sip:ana@198.51.100.7>;tag=r1\r\n\
     From: <sip:callcenter.local>;tag=s1\r\n\
     Call-ID: out-1@192.0.2.10\r\n\
     CSeq: 1 INVITE\r\n\
     Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
     Contact: <sip:ana@198.51.100.7:5062>\r\n\
     Content-Length: 0\r\n\r\n",
    "OPTIONS sip:callcenter.local SIP/2.0\r\n\
     Via: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKopt\r\n\
     Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp2, SIP/2.0/UDP 10.1.1.1\r\n\
     Max-Forwards: 1\r\n\
     To: sip:callcenter.local\r\n\
     From: sip:monitor@example.com;tag=m\r\n\
     Call-ID: opt-1\r\n\
     CSeq: 1 OPTIONS\r\n\
     Require: foo\r\n\
     Content-Length: 0\r\n\r\n",
    "BYE sip:agent@10.0.0.5 SIP/2.0\r\n\
     Via: SIP/2.0/WS abc.invalid;branch=z9hG4bKbye\r\n\
     Max-Forwards: 0\r\n\
     To: <sip:agent@10.0.0.5>;tag=a\r\n\
     From: <sip:callcenter.local>;tag=b\r\n\
     Call-ID: bye-1\r\n\
     CSeq: 5 BYE\r\n\
     Content-Length: 0\r\n\r\n",
];

/// Knuth's MMIX LCG.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    b"\r\n",
    b":",
    b";",
    b",",
    b"\"",
    b"\\",
    b"<",
    b">",
    b"@",
    b" ",
    b"\0",
    b"\xff",
    b"=",
    b"SIP/2.0",
    b"z9hG4bK",
    b"Content-Length: 99999999999999999999",
    b"CSeq: 4294967296 INVITE",
    b"Contact: *",
    b"Expires: 0",
    b"tag=",
    b"[",
    b"]",
    b"%",
    b"\t",
];

fn mutate(rng: &mut Lcg, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let pos = rng.below(out.len() + 1);
        match rng.below(7) {
            0 => {
                if let Some(b) = out.get_mut(pos) {
                    *b ^= 1 << rng.below(8);
                }
            }
            1 => {
                if pos < out.len() {
                    out.remove(pos);
                }
            }
            2 => out.insert(pos, rng.next() as u8),
            3 => out.truncate(pos),
            4 => {
                let s = INTERESTING[rng.below(INTERESTING.len())];
                for (i, b) in s.iter().enumerate() {
                    out.insert(pos + i, *b);
                }
            }
            5 => {
                let end = (pos + rng.below(40)).min(out.len());
                let chunk = out[pos.min(end)..end].to_vec();
                let at = rng.below(out.len() + 1);
                for (i, b) in chunk.into_iter().enumerate() {
                    out.insert(at + i, b);
                }
            }
            _ => {
                let end = (pos + rng.below(20)).min(out.len());
                out.drain(pos.min(end)..end);
            }
        }
    }
    out
}

#[test]
fn thousands_of_mutated_messages_never_panic() {
    let mut ua = Ua::new();
    let mut rng = Lcg(0x5eed_5eed_5eed_5eed);
    let peers = [
        Peer::udp("198.51.100.7:5060".parse().unwrap()),
        Peer::stream(
            Transport::Tcp,
            "198.51.100.8:40000".parse().unwrap(),
            ConnId(1),
        ),
        Peer::stream(
            Transport::Ws,
            "[2001:db8::9]:443".parse().unwrap(),
            ConnId(2),
        ),
    ];
    let mut sent = 0usize;
    for i in 0..20_000usize {
        let base = CORPUS[rng.below(CORPUS.len())].as_bytes();
        let input = if i % 10 == 0 {
            base.to_vec()
        } else {
            mutate(&mut rng, base)
        };
        let src = peers[rng.below(peers.len())].clone();
        ua.ep.handle_datagram(ua.now, src, &input);
        while let Some(t) = ua.ep.poll_transmit() {
            sent += 1;
            assert!(
                Message::parse(&t.bytes).is_ok(),
                "endpoint sent invalid SIP for input {:?}:\n{}",
                String::from_utf8_lossy(&input),
                String::from_utf8_lossy(&t.bytes)
            );
        }
        while ua.ep.poll_event().is_some() {}
        if i % 50 == 0 {
            check_indexes(&ua.ep);
            ua.now = ua.now + Duration::from_millis(rng.below(5000) as u64);
            ua.ep.handle_timeout(ua.now);
            check_indexes(&ua.ep);
        }
    }
    assert!(sent > 1000, "the corpus should provoke answers, got {sent}");
    assert!(ua.ep.stats().parse_errors > 1000);
    // Still healthy afterwards.
    let options = CORPUS[5]
        .replace("Require: foo\r\n", "")
        .replace("opt-1", "opt-after")
        .replace("z9hG4bKopt", "z9hG4bKopt-after");
    let resp = ua.send_one(&options);
    assert_eq!(resp.status, 200);
}
