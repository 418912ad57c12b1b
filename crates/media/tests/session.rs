//! Media sessions over real UDP sockets on 127.0.0.1: a "caller" and an "agent" far end
//! exchange RTP with a session. Each test uses its own port range; every wait is bounded.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use switchboard_media::dtmf::TelephoneEvent;
use switchboard_media::g711::{linear_to_alaw, linear_to_ulaw};
use switchboard_media::rtp::RtpPacket;
use switchboard_media::{Codec, Media, MediaConfig, MediaError, PromptEnd, Sdp, Session};
use tokio::net::UdpSocket;
use tokio::time::{sleep, timeout};

fn sounds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sounds")
}

fn media(first: u16, last: u16) -> Media {
    Media::new(MediaConfig {
        ports: (first, last),
        bind_ip: "127.0.0.1".parse().unwrap(),
        advertised_ip: "127.0.0.1".parse().unwrap(),
        sounds_dir: sounds_dir(),
    })
    .unwrap()
}

/// A far end: a socket plus its own stream numbering.
struct Peer {
    sock: UdpSocket,
    ssrc: u32,
    seq: u16,
    ts: u32,
}

impl Peer {
    async fn new(ssrc: u32, seq: u16, ts: u32) -> Peer {
        Peer {
            sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            ssrc,
            seq,
            ts,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// An SDP offer/answer from this peer.
    fn sdp(&self, fmts: &str, extra: &str) -> Sdp {
        Sdp::parse(&sdp_text(self.addr(), fmts, extra)).unwrap()
    }

    async fn send(&mut self, to: u16, pt: u8, marker: bool, payload: &[u8], ts_step: u32) {
        let p = RtpPacket {
            marker,
            payload_type: pt,
            sequence: self.seq,
            timestamp: self.ts,
            ssrc: self.ssrc,
            payload: Bytes::copy_from_slice(payload),
        };
        self.sock
            .send_to(&p.to_vec().unwrap(), ("127.0.0.1", to))
            .await
            .unwrap();
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(ts_step);
    }

    /// Receives RTP until `n` packets arrived or `within` passed.
    async fn recv(&self, n: usize, within: Duration) -> Vec<RtpPacket> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        let _ = timeout(within, async {
            while out.len() < n {
                let (len, _) = self.sock.recv_from(&mut buf).await.unwrap();
                out.push(RtpPacket::parse(&buf[..len]).unwrap());
            }
        })
        .await;
        out
    }

    /// Receives everything for `d`.
    async fn recv_for(&self, d: Duration) -> Vec<RtpPacket> {
        self.recv(usize::MAX, d).await
    }
}

fn sdp_text(addr: SocketAddr, fmts: &str, extra: &str) -> String {
    format!(
        "v=0\r\no=peer 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {fmts}\r\n{extra}",
        ip = addr.ip(),
        port = addr.port()
    )
}

/// Lets the media task apply a control command before the test sends media.
async fn settle() {
    sleep(Duration::from_millis(60)).await;
}

/// A session bridged between a PCMU caller and an agent speaking `agent_fmts`.
async fn bridged(m: &Media, agent_fmts: &str, agent_extra: &str) -> (Session, Peer, Peer) {
    let mut s = m.open_session("test").unwrap();
    let caller = Peer::new(0x1111, 100, 1000).await;
    let agent = Peer::new(0x2222, 50_000, 9_000_000).await;
    let answer = s
        .caller_answer(&caller.sdp("0 101", "a=rtpmap:101 telephone-event/8000\r\n"))
        .unwrap();
    assert!(answer.contains(&format!("m=audio {} RTP/AVP 0 101", s.caller_port())));
    let offer = s.agent_offer();
    assert!(offer.contains("RTP/AVP 0 8 101"));
    s.set_agent_remote(&agent.sdp(agent_fmts, agent_extra))
        .unwrap();
    s.bridge().unwrap();
    settle().await;
    (s, caller, agent)
}

#[tokio::test]
async fn relays_both_ways_with_counts() {
    let m = media(28_000, 28_009);
    let (s, mut caller, mut agent) = bridged(&m, "0", "").await;
    let (cp, ap) = (s.caller_port(), s.agent_port());
    for _ in 0..50 {
        caller.send(cp, 0, false, &[0x11; 160], 160).await;
        agent.send(ap, 0, false, &[0x22; 160], 160).await;
        sleep(Duration::from_millis(2)).await;
    }
    let at_agent = agent.recv(50, Duration::from_secs(2)).await;
    let at_caller = caller.recv(50, Duration::from_secs(2)).await;
    assert_eq!(at_agent.len(), 50);
    assert_eq!(at_caller.len(), 50);
    assert!(
        at_agent
            .iter()
            .all(|p| p.payload.as_ref() == [0x11; 160] && p.payload_type == 0)
    );
    assert!(at_caller.iter().all(|p| p.payload.as_ref() == [0x22; 160]));
    let st = s.close().await;
    assert_eq!((st.caller.packets_in, st.caller.packets_out), (50, 50));
    assert_eq!((st.agent.packets_in, st.agent.packets_out), (50, 50));
    assert_eq!(st.caller.lost, 0);
    assert_eq!(st.caller.bytes_in, 50 * 172);
    let t = m.totals();
    assert_eq!((t.packets_in, t.packets_out, t.ports_in_use), (100, 100, 0));
}

#[tokio::test]
#[allow(clippy::disallowed_methods)] // the test reads the clock to bound the timestamp
async fn last_packet_times_are_kept_per_leg() {
    let m = media(28_110, 28_119);
    let (s, mut caller, _agent) = bridged(&m, "0", "").await;
    let st = s.stats();
    assert_eq!(
        (st.caller.last_packet_in, st.agent.last_packet_in),
        (None, None)
    );
    let before = std::time::Instant::now().saturating_duration_since(s.opened_at());
    caller
        .send(s.caller_port(), 0, false, &[0x11; 160], 160)
        .await;
    // RTCP on the agent leg is no sign of life: it does not count.
    caller
        .sock
        .send_to(
            &[0x80, 200, 0, 1, 0, 0, 0, 1],
            ("127.0.0.1", s.agent_port() + 1),
        )
        .await
        .unwrap();
    sleep(Duration::from_millis(100)).await;
    let after = std::time::Instant::now().saturating_duration_since(s.opened_at());
    let st = s.stats();
    let at = st.caller.last_packet_in.expect("a caller packet arrived");
    assert!(
        before <= at && at <= after,
        "{before:?} <= {at:?} <= {after:?}"
    );
    assert_eq!(st.agent.last_packet_in, None);
    assert_eq!(st.agent.rtcp_in, 1);
    s.close().await;
}

/// PRODUCT §5 against a sprayer: a stranger who reaches both relay ports before the
/// parties speak is latched only until their SDP addresses send; from then on nothing of
/// it reaches either party and nothing of theirs reaches it, and every packet of it is
/// counted as rejected.
#[tokio::test]
async fn the_sdp_address_wins_back_from_a_sprayer() {
    let m = media(28_120, 28_129);
    let (s, mut caller, mut agent) = bridged(&m, "0", "").await;
    let (cp, ap) = (s.caller_port(), s.agent_port());
    let mut stranger = Peer::new(0x6666, 1, 1).await;
    // The stranger is first on both ports: nothing came from the SDP addresses yet.
    stranger.send(cp, 0, false, &[0x66; 160], 160).await;
    stranger.send(ap, 0, false, &[0x66; 160], 160).await;
    settle().await;
    // The parties speak: their SDP addresses win back at once.
    caller.send(cp, 0, false, &[0x11; 160], 160).await;
    agent.send(ap, 0, false, &[0x22; 160], 160).await;
    settle().await;
    let _ = stranger.recv_for(Duration::from_millis(50)).await; // the latched moment
    let _ = caller.recv_for(Duration::from_millis(50)).await;
    let _ = agent.recv_for(Duration::from_millis(50)).await;
    for _ in 0..30 {
        stranger.send(cp, 0, false, &[0x66; 160], 160).await;
        stranger.send(ap, 0, false, &[0x66; 160], 160).await;
        caller.send(cp, 0, false, &[0x11; 160], 160).await;
        agent.send(ap, 0, false, &[0x22; 160], 160).await;
        sleep(Duration::from_millis(2)).await;
    }
    let at_agent = agent.recv(30, Duration::from_secs(2)).await;
    let at_caller = caller.recv(30, Duration::from_secs(2)).await;
    assert_eq!(at_agent.len(), 30);
    assert_eq!(at_caller.len(), 30);
    assert!(at_agent.iter().all(|p| p.payload.as_ref() == [0x11; 160]));
    assert!(at_caller.iter().all(|p| p.payload.as_ref() == [0x22; 160]));
    assert!(
        stranger
            .recv_for(Duration::from_millis(100))
            .await
            .is_empty(),
        "the stranger still receives call audio"
    );
    let st = s.close().await;
    assert_eq!(st.caller.foreign_source, 30);
    assert_eq!(st.agent.foreign_source, 30);
    assert_eq!(m.totals().rejected, 60);
}

#[tokio::test]
async fn latches_to_the_real_source_and_ignores_others() {
    let m = media(28_010, 28_019);
    let mut s = m.open_session("latch").unwrap();
    // The SDP names a port nobody listens on; the caller really sends from `caller`.
    let decoy = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sdp = Sdp::parse(&sdp_text(decoy.local_addr().unwrap(), "0", "")).unwrap();
    drop(decoy);
    s.caller_answer(&sdp).unwrap();
    s.play_music().unwrap();
    let mut caller = Peer::new(7, 1, 1).await;
    assert!(caller.recv_for(Duration::from_millis(150)).await.is_empty());
    caller
        .send(s.caller_port(), 0, false, &[0xFF; 160], 160)
        .await;
    let music = caller.recv(10, Duration::from_secs(2)).await;
    assert_eq!(music.len(), 10, "music follows the latched address");
    // Another source is not accepted once latched.
    let mut intruder = Peer::new(8, 1, 1).await;
    intruder
        .send(s.caller_port(), 0, false, &[0xFF; 160], 160)
        .await;
    sleep(Duration::from_millis(100)).await;
    let st = s.stats();
    assert_eq!(st.caller.foreign_source, 1);
    assert_eq!(st.caller.packets_in, 1);
    assert!(
        intruder
            .recv_for(Duration::from_millis(100))
            .await
            .is_empty()
    );
    s.close().await;
}

#[tokio::test]
async fn transcodes_pcmu_and_pcma_end_to_end() {
    let m = media(28_020, 28_029);
    let (s, mut caller, mut agent) = bridged(&m, "8", "a=rtpmap:8 PCMA/8000\r\n").await;
    let pcm: Vec<i16> = (0..160)
        .map(|i| ((i * 397) % 20_000 - 10_000) as i16)
        .collect();
    let ulaw: Vec<u8> = pcm.iter().map(|&x| linear_to_ulaw(x)).collect();
    let alaw: Vec<u8> = pcm.iter().map(|&x| linear_to_alaw(x)).collect();
    for _ in 0..5 {
        caller.send(s.caller_port(), 0, false, &ulaw, 160).await;
        agent.send(s.agent_port(), 8, false, &alaw, 160).await;
    }
    let at_agent = agent.recv(5, Duration::from_secs(2)).await;
    let at_caller = caller.recv(5, Duration::from_secs(2)).await;
    assert_eq!((at_agent.len(), at_caller.len()), (5, 5));
    for p in &at_agent {
        assert_eq!(p.payload_type, 8);
        // µ-law in, A-law out: the decoded audio is the original within two quantisations.
        assert_close(Codec::Pcma, &p.payload, &pcm);
    }
    for p in &at_caller {
        assert_eq!(p.payload_type, 0);
        assert_close(Codec::Pcmu, &p.payload, &pcm);
    }
    s.close().await;
}

fn assert_close(codec: Codec, payload: &[u8], original: &[i16]) {
    let mut decoded = Vec::new();
    codec.decode(payload, &mut decoded);
    assert_eq!(decoded.len(), original.len());
    for (d, o) in decoded.iter().zip(original) {
        let err = (i32::from(*d) - i32::from(*o)).abs();
        assert!(
            err <= i32::from(*o).abs() / 6 + 64,
            "{codec:?}: {o} came out as {d}"
        );
    }
}

async fn press(peer: &mut Peer, port: u16, pt: u8, digit: u8) {
    let start_ts = peer.ts;
    for (i, end) in [false, false, false, true, true, true]
        .into_iter()
        .enumerate()
    {
        let ev = TelephoneEvent {
            event: digit,
            end,
            volume: 10,
            duration: 160 * (i.min(3) as u16 + 1),
        };
        peer.ts = start_ts;
        peer.send(port, pt, i == 0, &ev.encode(), 0).await;
    }
    peer.ts = start_ts.wrapping_add(960);
}

#[tokio::test]
async fn telephone_events_pass_through_and_are_detected() {
    let m = media(28_030, 28_039);
    let mut s = m.open_session("dtmf").unwrap();
    let mut caller = Peer::new(1, 10, 0).await;
    let agent = Peer::new(2, 20, 0).await;
    let mut digits = s.dtmf_events().unwrap();
    assert!(s.dtmf_events().is_none());
    // The trunk uses payload type 96 for events; the agent answers our 101.
    s.caller_answer(&caller.sdp("8 96", "a=rtpmap:96 telephone-event/8000\r\n"))
        .unwrap();
    s.agent_offer();
    s.set_agent_remote(&agent.sdp("8 101", "a=rtpmap:101 telephone-event/8000\r\n"))
        .unwrap();
    // In the voice menu (music/prompts) digits are detected, not relayed.
    s.play_music().unwrap();
    settle().await;
    press(&mut caller, s.caller_port(), 96, 1).await;
    assert_eq!(
        timeout(Duration::from_secs(2), digits.recv())
            .await
            .unwrap(),
        Some('1')
    );
    s.bridge().unwrap();
    settle().await;
    press(&mut caller, s.caller_port(), 96, 11).await;
    assert_eq!(
        timeout(Duration::from_secs(2), digits.recv())
            .await
            .unwrap(),
        Some('#')
    );
    let at_agent = agent.recv(6, Duration::from_secs(2)).await;
    assert_eq!(at_agent.len(), 6, "all six event packets relayed");
    assert!(at_agent.iter().all(|p| p.payload_type == 101));
    assert!(
        at_agent
            .iter()
            .all(|p| p.timestamp == at_agent[0].timestamp)
    );
    assert!(at_agent[0].marker);
    let evs: Vec<TelephoneEvent> = at_agent
        .iter()
        .map(|p| TelephoneEvent::parse(&p.payload).unwrap())
        .collect();
    assert!(evs.iter().all(|e| e.event == 11));
    assert_eq!(evs.iter().filter(|e| e.end).count(), 3);
    // Exactly one digit per press despite the retransmitted ends.
    sleep(Duration::from_millis(100)).await;
    assert!(digits.try_recv().is_err());
    assert_eq!(s.stats().dtmf_digits, 2);
    s.close().await;
}

#[tokio::test]
async fn music_to_agent_switch_keeps_one_continuous_stream() {
    let m = media(28_040, 28_049);
    let mut s = m.open_session("continuity").unwrap();
    let caller = Peer::new(1, 0, 0).await;
    let mut agent = Peer::new(0xABCD, 60_000, 123_456).await;
    s.caller_answer(&caller.sdp("0", "")).unwrap();
    s.agent_offer();
    s.set_agent_remote(&agent.sdp("0", "")).unwrap();
    s.play_music().unwrap();
    let music = caller.recv(15, Duration::from_secs(2)).await;
    assert_eq!(music.len(), 15);
    s.bridge().unwrap();
    settle().await;
    for _ in 0..20 {
        agent
            .send(s.agent_port(), 0, false, &[0x33; 160], 160)
            .await;
        sleep(Duration::from_millis(5)).await;
    }
    let mut all = music;
    // Music packets still in flight before the switch, then the 20 relayed ones.
    let rest = caller.recv_for(Duration::from_millis(300)).await;
    let relayed: Vec<&RtpPacket> = rest
        .iter()
        .filter(|p| p.payload.as_ref() == [0x33; 160])
        .collect();
    assert_eq!(relayed.len(), 20);
    assert!(relayed[0].marker, "marker on the first relayed packet");
    all.extend(rest.iter().cloned());
    let ssrc = all[0].ssrc;
    for w in all.windows(2) {
        assert_eq!(w[1].ssrc, ssrc);
        assert_eq!(
            w[1].sequence,
            w[0].sequence.wrapping_add(1),
            "sequence continuous"
        );
        let step = w[1].timestamp.wrapping_sub(w[0].timestamp);
        assert!((160..=160 * 20).contains(&step), "timestamp step {step}");
    }
    s.close().await;
}

#[tokio::test]
async fn hold_plays_music_and_drops_agent_audio_until_resume() {
    let m = media(28_050, 28_059);
    let (s, mut caller, mut agent) = bridged(&m, "0", "").await;
    let (cp, ap) = (s.caller_port(), s.agent_port());
    s.hold(true).unwrap();
    settle().await;
    for _ in 0..10 {
        agent.send(ap, 0, false, &[0x44; 160], 160).await;
        caller.send(cp, 0, false, &[0x55; 160], 160).await;
    }
    let held = caller.recv_for(Duration::from_millis(400)).await;
    assert!(
        held.len() >= 10,
        "music while held ({} packets)",
        held.len()
    );
    assert!(
        held.iter().all(|p| p.payload.as_ref() != [0x44; 160]),
        "agent audio leaked"
    );
    assert!(
        agent.recv_for(Duration::from_millis(50)).await.is_empty(),
        "caller audio leaked"
    );
    s.hold(false).unwrap();
    settle().await;
    let _ = caller.recv_for(Duration::from_millis(50)).await; // music still in flight
    for _ in 0..10 {
        agent.send(ap, 0, false, &[0x44; 160], 160).await;
        caller.send(cp, 0, false, &[0x55; 160], 160).await;
    }
    let resumed = caller.recv(10, Duration::from_secs(2)).await;
    assert_eq!(
        resumed
            .iter()
            .filter(|p| p.payload.as_ref() == [0x44; 160])
            .count(),
        10
    );
    assert_eq!(agent.recv(10, Duration::from_secs(2)).await.len(), 10);
    s.close().await;
}

/// The caller holds (PRODUCT §5, re-INVITE `sendonly`): nothing at all is sent to the
/// caller, the agent hears our music (never the caller's audio), and the resume restores
/// relaying both ways. Queued callers who hold get no music either until they resume.
#[tokio::test]
async fn caller_hold_sends_nothing_to_the_caller_and_music_to_the_agent() {
    let m = media(28_130, 28_139);
    let (s, mut caller, mut agent) = bridged(&m, "0", "").await;
    let (cp, ap) = (s.caller_port(), s.agent_port());
    s.caller_hold(true).unwrap();
    settle().await;
    for _ in 0..10 {
        agent.send(ap, 0, false, &[0x44; 160], 160).await;
        caller.send(cp, 0, false, &[0x55; 160], 160).await;
    }
    let at_agent = agent.recv_for(Duration::from_millis(400)).await;
    assert!(
        at_agent.len() >= 10,
        "music to the agent while the caller holds ({} packets)",
        at_agent.len()
    );
    assert!(
        at_agent.iter().all(|p| p.payload.as_ref() != [0x55; 160]),
        "caller audio leaked to the agent"
    );
    assert!(
        caller.recv_for(Duration::from_millis(100)).await.is_empty(),
        "nothing may reach a caller who holds"
    );
    // Both hold: nobody gets anything.
    s.hold(true).unwrap();
    settle().await;
    let _ = agent.recv_for(Duration::from_millis(50)).await; // in flight
    assert!(agent.recv_for(Duration::from_millis(200)).await.is_empty());
    assert!(caller.recv_for(Duration::from_millis(50)).await.is_empty());
    s.hold(false).unwrap();
    s.caller_hold(false).unwrap();
    settle().await;
    let _ = agent.recv_for(Duration::from_millis(50)).await;
    for _ in 0..10 {
        agent.send(ap, 0, false, &[0x44; 160], 160).await;
        caller.send(cp, 0, false, &[0x55; 160], 160).await;
    }
    let back = caller.recv(10, Duration::from_secs(2)).await;
    assert_eq!(
        back.iter()
            .filter(|p| p.payload.as_ref() == [0x44; 160])
            .count(),
        10
    );
    let back = agent.recv(10, Duration::from_secs(2)).await;
    assert_eq!(
        back.iter()
            .filter(|p| p.payload.as_ref() == [0x55; 160])
            .count(),
        10
    );

    // In the queue: a caller who holds gets no music until they resume.
    s.play_music().unwrap();
    settle().await;
    assert!(caller.recv(5, Duration::from_secs(1)).await.len() == 5);
    s.caller_hold(true).unwrap();
    settle().await;
    let _ = caller.recv_for(Duration::from_millis(50)).await;
    assert!(caller.recv_for(Duration::from_millis(200)).await.is_empty());
    assert!(agent.recv_for(Duration::from_millis(50)).await.is_empty());
    s.caller_hold(false).unwrap();
    assert_eq!(caller.recv(5, Duration::from_secs(1)).await.len(), 5);
    s.close().await;
}

fn write_wav(path: &Path, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

#[tokio::test]
async fn prompts_are_paced_at_20ms_then_music_resumes() {
    let m = media(28_060, 28_069);
    let dir = tempfile::tempdir().unwrap();
    let one_second = dir.path().join("tone.wav");
    write_wav(&one_second, &[4000; 8000]);
    let mut s = m.open_session("pacing").unwrap();
    let caller = Peer::new(1, 0, 0).await;
    s.caller_answer(&caller.sdp("0", "")).unwrap();
    assert!(matches!(
        s.play_prompts(vec!["missing.wav".into()]),
        Err(MediaError::Sound { .. })
    ));
    let done = s.play_prompts(vec![one_second.clone()]).unwrap();
    let tone = linear_to_ulaw(4000);
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    let started = tokio::time::Instant::now();
    let mut first_at = None;
    let mut last_at = started;
    let mut after = 0;
    timeout(Duration::from_secs(3), async {
        while after < 5 {
            let (n, _) = caller.sock.recv_from(&mut buf).await.unwrap();
            let p = RtpPacket::parse(&buf[..n]).unwrap();
            if p.payload.iter().all(|&b| b == tone) {
                let now = tokio::time::Instant::now();
                first_at.get_or_insert(now);
                last_at = now;
                got.push(p);
            } else if !got.is_empty() {
                after += 1; // music after the prompt
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(got.len(), 50, "1 s of audio is 50 packets");
    let span = last_at - first_at.unwrap();
    // 49 intervals of 20 ms = 980 ms; generous bounds for a loaded 2-core machine.
    assert!(
        span >= Duration::from_millis(900) && span <= Duration::from_millis(1300),
        "{span:?}"
    );
    for w in got.windows(2) {
        assert_eq!(w[1].timestamp.wrapping_sub(w[0].timestamp), 160);
    }
    assert_eq!(
        timeout(Duration::from_secs(1), done)
            .await
            .unwrap()
            .unwrap(),
        PromptEnd::Finished
    );
    // A new run of prompts interrupts the previous one.
    let first = s.play_prompts(vec![one_second.clone()]).unwrap();
    let _second = s.play_prompts(m.announce_position(3, 2)).unwrap();
    assert_eq!(
        timeout(Duration::from_secs(1), first)
            .await
            .unwrap()
            .unwrap(),
        PromptEnd::Interrupted
    );
    s.close().await;
}

#[tokio::test]
async fn records_a_stereo_wav_with_both_parties() {
    let m = media(28_070, 28_079);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec/call.wav");
    let (mut s, mut caller, mut agent) = bridged(&m, "0", "").await;
    s.start_recording(&path).unwrap();
    let (cp, ap) = (s.caller_port(), s.agent_port());
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for _ in 0..50 {
        tick.tick().await;
        caller
            .send(cp, 0, false, &[linear_to_ulaw(6000); 160], 160)
            .await;
        agent
            .send(ap, 0, false, &[linear_to_ulaw(-3000); 160], 160)
            .await;
    }
    let st = s.close().await;
    assert_eq!(st.recording.as_deref(), Some(path.as_path()));
    let r = hound::WavReader::open(&path).unwrap();
    let spec = r.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 8000, 16)
    );
    let samples: Vec<i16> = r.into_samples::<i16>().map(|s| s.unwrap()).collect();
    let frames = samples.len() / 2;
    assert!(
        (7_000..=12_000).contains(&frames),
        "{frames} frames for ~1 s"
    );
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    let energy =
        |ch: &[i16]| ch.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / ch.len() as f64;
    assert!(
        energy(&left).sqrt() > 3000.0,
        "caller channel rms {}",
        energy(&left).sqrt()
    );
    assert!(
        energy(&right).sqrt() > 1500.0,
        "agent channel rms {}",
        energy(&right).sqrt()
    );
    assert!(
        left.iter().filter(|&&x| x > 5000).count() >= 7_000,
        "caller on the left"
    );
    assert!(
        right.iter().filter(|&&x| x < -2500).count() >= 7_000,
        "agent on the right"
    );
}

#[tokio::test]
async fn port_exhaustion_is_an_error_and_ports_come_back() {
    let m = media(28_080, 28_083); // two pairs: one session
    let s = m.open_session("a").unwrap();
    assert!(matches!(
        m.open_session("b"),
        Err(MediaError::PortsExhausted { .. })
    ));
    s.close().await;
    let again = m.open_session("c").unwrap();
    drop(again);
    // Drop frees the ports as soon as the runtime cancels the task.
    let mut ok = false;
    for _ in 0..50 {
        sleep(Duration::from_millis(10)).await;
        if let Ok(s) = m.open_session("d") {
            ok = true;
            s.close().await;
            break;
        }
    }
    assert!(ok, "ports not released after drop");
}

#[tokio::test]
async fn garbage_and_rtcp_are_counted_and_ignored() {
    let m = media(28_090, 28_099);
    let (s, mut caller, agent) = bridged(&m, "0", "").await;
    let cp = s.caller_port();
    let junk: [&[u8]; 6] = [
        b"",
        b"\x00",
        b"hello, this is not RTP",
        &[0x80, 0x00, 0x00],
        &[0xBF, 0x00, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1], // CSRC count beyond the datagram
        &[0x80, 200, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0],  // RTCP SR on the RTP port
    ];
    for j in junk {
        caller.sock.send_to(j, ("127.0.0.1", cp)).await.unwrap();
    }
    for j in junk {
        caller.sock.send_to(j, ("127.0.0.1", cp + 1)).await.unwrap();
    }
    caller.send(cp, 0, false, &[0x66; 160], 160).await;
    let got = agent.recv(1, Duration::from_secs(2)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload.as_ref(), [0x66; 160]);
    sleep(Duration::from_millis(50)).await;
    let st = s.close().await;
    assert_eq!(st.caller.invalid, 6);
    assert_eq!(st.caller.rtcp_in, 6);
    assert_eq!(st.caller.packets_in, 1);
}

/// SIPp (`sip-tester`) as the agent's far end with `-rtp_echo`: a real RTP peer that sends
/// back whatever it receives, so caller audio goes caller → relay → SIPp → relay → caller.
/// Skipped (with a note) where `sipp` is not installed.
#[tokio::test]
async fn sipp_rtp_echo_as_the_agent() {
    let Ok(mut sipp) = std::process::Command::new("timeout")
        .args([
            "20",
            "sipp",
            "-sn",
            "uas",
            "-i",
            "127.0.0.1",
            "-p",
            "28190",
            "-mi",
            "127.0.0.1",
        ])
        .args(["-mp", "28196", "-rtp_echo", "-nostdin"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    else {
        eprintln!("sipp not runnable here; skipping");
        return;
    };
    let echo: SocketAddr = "127.0.0.1:28196".parse().unwrap();
    // Wait (bounded) until SIPp's echo socket answers.
    let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut up = false;
    for _ in 0..40 {
        probe.send_to(b"probe", echo).await.unwrap();
        let mut b = [0u8; 64];
        if timeout(Duration::from_millis(100), probe.recv_from(&mut b))
            .await
            .is_ok()
        {
            up = true;
            break;
        }
    }
    if !up {
        stop_sipp(&mut sipp);
        eprintln!("sipp did not start (not installed?); skipping");
        return;
    }
    let m = media(28_100, 28_109);
    let mut s = m.open_session("sipp").unwrap();
    let mut caller = Peer::new(0x77, 1, 1).await;
    s.caller_answer(&caller.sdp("0", "")).unwrap();
    s.agent_offer();
    s.set_agent_remote(&Sdp::parse(&sdp_text(echo, "0", "")).unwrap())
        .unwrap();
    s.bridge().unwrap();
    settle().await;
    for i in 0..20u8 {
        caller.send(s.caller_port(), 0, false, &[i; 160], 160).await;
        sleep(Duration::from_millis(5)).await;
    }
    let back = caller.recv(20, Duration::from_secs(3)).await;
    stop_sipp(&mut sipp);
    assert_eq!(back.len(), 20, "echoed through SIPp");
    for (i, p) in back.iter().enumerate() {
        assert_eq!(p.payload.as_ref(), [i as u8; 160]);
    }
    let st = s.close().await;
    assert_eq!((st.agent.packets_out, st.agent.packets_in), (20, 20));
}

/// SIGTERM to the `timeout` wrapper, which passes it on to SIPp (SIGKILL would kill the
/// wrapper alone and leave SIPp running).
fn stop_sipp(child: &mut std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    for _ in 0..100 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// RFC 5761: a party that offers `a=rtcp-mux` gets it in the answer and sends its RTCP to
/// the RTP port (counted as RTCP, not as garbage); its leg's RTCP port is closed, so a muxing
/// call holds one socket per leg. Our offers carry `a=rtcp-mux`; a leg has no RTCP socket
/// before its party's SDP, an answer without mux opens it (RTCP counted there), and a later
/// answer with mux closes it again.
#[tokio::test]
async fn rtcp_mux_is_negotiated_and_frees_the_rtcp_port() {
    let m = media(28_140, 28_149);
    let mut s = m.open_session("mux").unwrap();
    let mut caller = Peer::new(0x3333, 1, 1).await;
    let agent = Peer::new(0x4444, 1, 1).await;
    let answer = s.caller_answer(&caller.sdp("0", "a=rtcp-mux\r\n")).unwrap();
    assert!(answer.contains("a=rtcp-mux\r\n"), "{answer}");
    let offer = s.agent_offer();
    assert!(offer.contains("a=rtcp-mux\r\n"), "{offer}");
    settle().await;
    // No agent yet: the agent leg has no RTCP socket (RTCP on demand).
    assert!(std::net::UdpSocket::bind(("127.0.0.1", s.agent_port() + 1)).is_ok());
    // The agent does not multiplex: its RTCP port is bound for it.
    s.set_agent_remote(&agent.sdp("0", "")).unwrap();
    s.bridge().unwrap();
    settle().await;
    let (cp, ap) = (s.caller_port(), s.agent_port());
    // The caller's RTCP port is free again (the relay closed it); the agent's is held.
    assert!(std::net::UdpSocket::bind(("127.0.0.1", cp + 1)).is_ok());
    assert!(std::net::UdpSocket::bind(("127.0.0.1", ap + 1)).is_err());
    let rr = [0x80, 201, 0, 1, 0, 0, 0, 1];
    caller.sock.send_to(&rr, ("127.0.0.1", cp)).await.unwrap();
    agent
        .sock
        .send_to(&rr, ("127.0.0.1", ap + 1))
        .await
        .unwrap();
    agent.sock.send_to(&rr, ("127.0.0.1", ap)).await.unwrap(); // not muxed: garbage
    caller.send(cp, 0, false, &[0x55; 160], 160).await;
    assert_eq!(agent.recv(1, Duration::from_secs(2)).await.len(), 1);
    // The agent's re-INVITE answer now multiplexes: its RTCP port closes too.
    s.set_agent_remote(&agent.sdp("0", "a=rtcp-mux\r\n"))
        .unwrap();
    settle().await;
    assert!(std::net::UdpSocket::bind(("127.0.0.1", ap + 1)).is_ok());
    sleep(Duration::from_millis(50)).await;
    let st = s.close().await;
    assert_eq!((st.caller.rtcp_in, st.caller.invalid), (1, 0));
    assert_eq!((st.agent.rtcp_in, st.agent.invalid), (1, 1));
    assert_eq!(st.caller.packets_in, 1);
}
