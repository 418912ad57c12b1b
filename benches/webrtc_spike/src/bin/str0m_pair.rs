//! Spike (see Cargo.toml): N WebRTC audio calls between a str0m ICE-lite offerer (the server role) and a str0m
//! full-ICE answerer (the browser role) over loopback UDP, 50 PCMU packets/s each way.
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use str0m::media::{Direction, MediaKind, MediaTime, Mid, Frequency};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

fn cpu() -> Duration {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
    let t: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    Duration::from_millis(t * 10)
}

struct Peer { rtc: Rtc, sock: UdpSocket, addr: SocketAddr, connected: Option<Instant>, media_in: u64, mid: Option<Mid>, next: Instant }

fn drive(p: &mut Peer, now: Instant) {
    let mut buf = [0u8; 2000];
    loop {
        match p.sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                let r = Receive::new(Protocol::Udp, from, p.addr, &buf[..n]).unwrap();
                p.rtc.handle_input(Input::Receive(now, r)).unwrap();
            }
            Err(_) => break,
        }
    }
    if now >= p.next { p.rtc.handle_input(Input::Timeout(now)).unwrap(); }
    loop {
        match p.rtc.poll_output().unwrap() {
            Output::Timeout(t) => { p.next = t; break }
            Output::Transmit(t) => { let _ = p.sock.send_to(&t.contents, t.destination); }
            Output::Event(Event::Connected) => { p.connected.get_or_insert(now); }
            Output::Event(Event::MediaData(_)) => p.media_in += 1,
            Output::Event(Event::MediaAdded(m)) => p.mid = Some(m.mid),
            Output::Event(_) => {}
        }
    }
}

fn peer(lite: bool, now: Instant) -> Peer {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_nonblocking(true).unwrap();
    let addr = sock.local_addr().unwrap();
    let mut rtc = Rtc::builder().set_ice_lite(lite).clear_codecs().enable_pcmu(true, false).enable_pcma(true, false).build(now);
    rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
    Peer { rtc, sock, addr, connected: None, media_in: 0, mid: None, next: now }
}

fn main() {
    str0m::crypto::from_feature_flags().install_process_default();
    let calls: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(1);
    let secs: u64 = std::env::args().nth(2).map(|s| s.parse().unwrap()).unwrap_or(10);
    let start = Instant::now();
    let mut pairs = Vec::new();
    for _ in 0..calls {
        let mut s = peer(true, start);
        let mut b = peer(false, start);
        let mut api = s.rtc.sdp_api();
        let mid = api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        if pairs.is_empty() { eprintln!("{}", offer.to_sdp_string()); }
        let answer = b.rtc.sdp_api().accept_offer(offer).unwrap();
        s.rtc.sdp_api().accept_answer(pending, answer).unwrap();
        s.mid = Some(mid);
        pairs.push((s, b));
    }
    let cpu0 = cpu();
    let mut tick = start;
    let mut sent = 0u64;
    let mut rtp_time = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        let now = Instant::now();
        for (s, b) in pairs.iter_mut() { drive(s, now); drive(b, now); }
        if now >= tick {
            tick += Duration::from_millis(20);
            rtp_time += 160;
            for (s, b) in pairs.iter_mut() {
                for p in [s, b] {
                    if p.connected.is_none() { continue; }
                    let Some(mid) = p.mid else { continue };
                    let pt = p.rtc.codec_config().iter().find(|c| c.spec().codec == str0m::format::Codec::PCMU).unwrap().pt();
                    if let Some(w) = p.rtc.writer(mid) {
                        if w.write(pt, now, MediaTime::new(rtp_time, Frequency::EIGHT_KHZ), vec![0xffu8; 160]).is_ok() { sent += 1; }
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let used = cpu() - cpu0;
    let hs: Vec<f64> = pairs.iter().filter_map(|(s, b)| Some(s.connected?.max(b.connected?).duration_since(start).as_secs_f64() * 1000.0)).collect();
    let media: u64 = pairs.iter().map(|(s, b)| s.media_in + b.media_in).sum();
    println!("str0m: calls={calls} secs={secs} connected={} handshake_ms_max={:.1} sent={sent} media_in={media} cpu_s={:.2} cpu_per_call_pct={:.3}",
        hs.len(), hs.iter().cloned().fold(0.0, f64::max), used.as_secs_f64(), used.as_secs_f64() / secs as f64 / calls as f64 * 100.0 / 2.0);
}
