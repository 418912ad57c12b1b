//! Spike (see Cargo.toml): N WebRTC audio calls between an `rtc` 0.21 ICE-lite offerer (the server role) and an
//! `rtc` full-ICE answerer (the browser role) over loopback UDP, 50 PCMU packets/s each way.
use bytes::BytesMut;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_PCMU, MediaEngine};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RtpCodecKind, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn cpu() -> Duration {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
    let t: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    Duration::from_millis(t * 10)
}

fn pcmu() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec { mime_type: MIME_TYPE_PCMU.to_owned(), clock_rate: 8000, channels: 1, sdp_fmtp_line: String::new(), rtcp_feedback: vec![] },
        payload_type: 0,
        ..Default::default()
    }
}

struct Peer { pc: RTCPeerConnection, sock: UdpSocket, addr: SocketAddr, connected: Option<Instant>, media_in: u64, sender: RTCRtpSenderId, ssrc: u32, seq: u16 }

fn peer(lite: bool, now: Instant, ssrc: u32) -> Peer {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_nonblocking(true).unwrap();
    let addr = sock.local_addr().unwrap();
    let mut me = MediaEngine::default();
    me.register_codec(pcmu(), RtpCodecKind::Audio).unwrap();
    let se = SettingEngineBuilder::new().with_lite(lite).build();
    let mut pc = RTCPeerConnectionBuilder::new().with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(se).with_media_engine(me).build(now).unwrap();
    let cand = CandidateHostConfig { base_config: CandidateConfig { network: "udp".to_owned(), address: addr.ip().to_string(), port: addr.port(), component: 1, ..Default::default() }, ..Default::default() }.new_candidate_host().unwrap();
    pc.add_local_candidate(RTCIceCandidate::from(&cand).to_json().unwrap()).unwrap();
    let track = MediaStreamTrack::new("s".into(), format!("a{ssrc}"), format!("a{ssrc}"), RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters { rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() }, codec: pcmu().rtp_codec, ..Default::default() }]);
    let sender = pc.add_track(track).unwrap();
    Peer { pc, sock, addr, connected: None, media_in: 0, sender, ssrc, seq: 0 }
}

fn drive(p: &mut Peer, now: Instant) {
    let mut buf = [0u8; 2000];
    while let Ok((n, from)) = p.sock.recv_from(&mut buf) {
        let _ = p.pc.handle_read(TaggedBytesMut { now, transport: TransportContext { local_addr: p.addr, peer_addr: from, ecn: None, transport_protocol: TransportProtocol::UDP }, message: BytesMut::from(&buf[..n]) });
    }
    if p.pc.poll_timeout().is_some_and(|t| t <= now) { let _ = p.pc.handle_timeout(now); }
    while let Some(m) = p.pc.poll_write() { let _ = p.sock.send_to(&m.message, m.transport.peer_addr); }
    while let Some(e) = p.pc.poll_event() {
        if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(RTCPeerConnectionState::Connected) = e { p.connected.get_or_insert(now); }
    }
    while let Some(TaggedRTCMessage { message, .. }) = p.pc.poll_read() {
        if let RTCMessage::RtpPacket(..) = message { p.media_in += 1; }
    }
}

fn main() {
    let calls: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(1);
    let secs: u64 = std::env::args().nth(2).map(|s| s.parse().unwrap()).unwrap_or(10);
    let start = Instant::now();
    let mut pairs = Vec::new();
    for i in 0..calls {
        let mut s = peer(true, start, 1000 + i as u32);
        let mut b = peer(false, start, 5000 + i as u32);
        let offer = s.pc.create_offer(None).unwrap();
        if i == 0 { eprintln!("{}", offer.sdp); }
        s.pc.set_local_description(start, offer.clone()).unwrap();
        b.pc.set_remote_description(start, offer).unwrap();
        let answer = b.pc.create_answer(None).unwrap();
        b.pc.set_local_description(start, answer.clone()).unwrap();
        s.pc.set_remote_description(start, answer).unwrap();
        pairs.push((s, b));
    }
    let cpu0 = cpu();
    let mut tick = start;
    let mut sent = 0u64;
    let mut ts = 0u32;
    while start.elapsed() < Duration::from_secs(secs) {
        let now = Instant::now();
        for (s, b) in pairs.iter_mut() { drive(s, now); drive(b, now); }
        if now >= tick {
            tick += Duration::from_millis(20);
            ts = ts.wrapping_add(160);
            for (s, b) in pairs.iter_mut() {
                for p in [s, b] {
                    if p.connected.is_none() { continue; }
                    p.seq = p.seq.wrapping_add(1);
                    let (seq, ssrc) = (p.seq, p.ssrc);
                    let Some(mut tx) = p.pc.rtp_sender(p.sender) else { continue };
                    let packet = rtp::packet::Packet { header: rtp::header::Header { version: 2, payload_type: 0, sequence_number: seq, timestamp: ts, ssrc, ..Default::default() }, payload: bytes::Bytes::from(vec![0xffu8; 160]) };
                    if tx.write_rtp(now, packet).is_ok() { sent += 1; }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let used = cpu() - cpu0;
    let hs: Vec<f64> = pairs.iter().filter_map(|(s, b)| Some(s.connected?.max(b.connected?).duration_since(start).as_secs_f64() * 1000.0)).collect();
    let media: u64 = pairs.iter().map(|(s, b)| s.media_in + b.media_in).sum();
    println!("rtc: calls={calls} secs={secs} connected={} handshake_ms_max={:.1} sent={sent} media_in={media} cpu_s={:.2} cpu_per_call_pct={:.3}",
        hs.len(), hs.iter().cloned().fold(0.0, f64::max), used.as_secs_f64(), used.as_secs_f64() / secs as f64 / calls as f64 * 100.0 / 2.0);
}
