//! A test-owned RTP end point: a UDP socket on loopback that counts what reaches it and
//! either echoes it (a phone that repeats what it hears) or talks (a phone sending 50
//! packets a second to whoever sent it audio last). Its port goes into a peer's SDP, so the
//! test sees exactly what Switchboard's relay sends to that party, phase by phase.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The relay ports of the call in progress, from the media task's log span
/// (`media{call_id=… caller_port=N agent_port=M}`).
pub fn relay_ports(log: &str) -> Option<(u16, u16)> {
    let line = log.lines().find(|l| l.contains("caller_port="))?;
    let port = |key: &str| -> Option<u16> {
        let rest = line.split(key).nth(1)?;
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some((port("caller_port=")?, port("agent_port=")?))
}

/// One RTP packet (version 2, payload type `pt`) with 160 bytes of audio.
pub fn rtp_packet(seq: u16, pt: u8) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&0x5EED_5EEDu32.to_be_bytes());
    p.extend_from_slice(&[if pt == 8 { 0xd5 } else { 0x00 }; 160]);
    p
}

/// How an [`RtpProbe`] answers.
#[derive(Debug, Clone, Copy)]
pub enum ProbeMode {
    /// Sends every packet back to its source.
    Echo,
    /// Sends a packet of this payload type every 20 ms to the address given by
    /// [`RtpProbe::talk_to`], or else to the source of the last packet that arrived.
    Talk(u8),
}

/// A counting RTP end point run by a thread until dropped.
pub struct RtpProbe {
    port: u16,
    received: Arc<AtomicU64>,
    peer: Arc<Mutex<Option<SocketAddr>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RtpProbe {
    pub fn start(mode: ProbeMode) -> RtpProbe {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind RTP probe");
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        let received = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let peer = Arc::new(Mutex::new(None));
        let (count, halt, to) = (Arc::clone(&received), Arc::clone(&stop), Arc::clone(&peer));
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut next_send = Instant::now();
            let mut seq = 0u16;
            while !halt.load(Ordering::Relaxed) {
                if let Ok((n, src)) = sock.recv_from(&mut buf) {
                    count.fetch_add(1, Ordering::Relaxed);
                    *to.lock().unwrap() = Some(src);
                    if let ProbeMode::Echo = mode {
                        let _ = sock.send_to(&buf[..n], src);
                    }
                }
                let dest = *to.lock().unwrap();
                if let (ProbeMode::Talk(pt), Some(dest)) = (mode, dest)
                    && Instant::now() >= next_send
                {
                    let _ = sock.send_to(&rtp_packet(seq, pt), dest);
                    seq = seq.wrapping_add(1);
                    next_send += Duration::from_millis(20);
                    if next_send < Instant::now() {
                        next_send = Instant::now() + Duration::from_millis(20);
                    }
                }
            }
        });
        RtpProbe {
            port,
            received,
            peer,
            stop,
            thread: Some(thread),
        }
    }

    /// The probe's RTP port (for an SDP `m=audio` line).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where a talking probe sends (until a packet from elsewhere arrives).
    pub fn talk_to(&self, addr: SocketAddr) {
        *self.peer.lock().unwrap() = Some(addr);
    }

    /// Packets received so far.
    pub fn count(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

impl Drop for RtpProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
