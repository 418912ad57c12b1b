//! The tokio driver of one [`WebRtcLeg`]: a port pair of the media pool, its RTP port facing
//! the browser (the ICE host candidate), its RTCP port carrying plain RTP to and from the
//! relay's agent leg on the bind address. The call's `Session` treats that second port as
//! an ordinary phone.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use switchboard_media::ports::PortPair;
use switchboard_media::rtp::RtpPacket;
use tokio::net::UdpSocket;
use tokio::sync::Notify;
use tracing::{Instrument, debug, info};

use crate::error::{Result, WebRtcError};
use crate::leg::{Audio, LegEvent, WebRtcLeg};

/// What a gateway counted; read by call control and the metrics.
#[derive(Debug, Default)]
pub struct GatewayStats {
    /// ICE and DTLS completed.
    pub connected: AtomicBool,
    /// Audio packets received from the browser (decrypted) and passed to the relay.
    pub from_browser: AtomicU64,
    /// Audio packets from the relay sent to the browser (encrypted).
    pub to_browser: AtomicU64,
}

/// Counts live gateways for `switchboard_webrtc_sessions`; decremented when the task ends.
#[derive(Debug)]
struct LiveGuard(Arc<AtomicUsize>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The one place this crate reads the OS clock.
#[allow(clippy::disallowed_methods)]
fn now() -> std::time::Instant {
    std::time::Instant::now()
}

/// What the call-control side and the leg's task share: the leg itself (each side locks it
/// for one step, never across an await), the counters, and the wake-up of the task.
#[derive(Debug)]
struct Shared {
    leg: Mutex<WebRtcLeg>,
    stats: GatewayStats,
    /// Call control changed the leg (an answer, a re-offer) or dropped the gateway.
    wake: Notify,
    closed: AtomicBool,
}

impl Shared {
    fn leg(&self) -> MutexGuard<'_, WebRtcLeg> {
        // A panic while holding the lock leaves a leg whose state is still consistent
        // enough to close; never propagate the poison.
        self.leg.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running WebRTC leg. Dropping it closes the connection and frees its ports.
#[derive(Debug)]
pub struct Gateway {
    offer: String,
    relay_side: SocketAddr,
    shared: Arc<Shared>,
}

impl Gateway {
    /// Starts a leg on `pair` (bound on the media bind address): the browser is offered a
    /// host candidate at `advertised:pair.port()`; plain RTP goes to and comes from
    /// `relay_agent`, the relay's agent port. `live` counts running gateways. Must be called
    /// inside a tokio runtime.
    pub fn spawn(
        pair: PortPair,
        advertised: IpAddr,
        relay_agent: SocketAddr,
        live: Arc<AtomicUsize>,
        seed: u64,
    ) -> Result<Gateway> {
        let browser_port = pair.port();
        let browser_local = pair.rtp.local_addr()?;
        let relay_side = pair.rtcp.local_addr()?;
        let mut leg = WebRtcLeg::new(now(), SocketAddr::new(advertised, browser_port), seed)?;
        let offer = leg.offer(now())?;
        let PortPair { rtp, rtcp, lease } = pair;
        let browser = UdpSocket::from_std(rtp)?;
        let relay = UdpSocket::from_std(rtcp)?;
        let shared = Arc::new(Shared {
            leg: Mutex::new(leg),
            stats: GatewayStats::default(),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
        });
        live.fetch_add(1, Ordering::Relaxed);
        let guard = LiveGuard(live);
        let task = Task {
            shared: Arc::clone(&shared),
            browser,
            relay,
            relay_agent,
            relay_ssrc: u32::try_from(seed >> 32).unwrap_or(1).max(1),
            relay_sequence: 0,
        };
        let span = tracing::debug_span!("webrtc", port = browser_port);
        tokio::spawn(
            async move {
                let _lease = lease;
                let _guard = guard;
                task.run().await;
            }
            .instrument(span),
        );
        debug!(%browser_local, %relay_side, "WebRTC leg offered");
        Ok(Gateway {
            offer,
            relay_side,
            shared,
        })
    }

    /// Our SDP offer for the browser.
    pub fn offer(&self) -> &str {
        &self.offer
    }

    /// Takes the browser's answer; returns the plain RTP/AVP description of the relay-facing
    /// side (with the G.711 payload type the browser chose) for the relay's agent leg.
    pub fn accept_answer(&self, answer: &str) -> Result<String> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(WebRtcError::Closed);
        }
        let pt = self.shared.leg().accept_answer(now(), answer)?;
        self.shared.wake.notify_one();
        Ok(plain_sdp(self.relay_side, pt))
    }

    /// A new offer from the browser during the call (re-INVITE or UPDATE: hold, resume, ICE
    /// restart): our WebRTC answer. The relay-facing side does not change.
    pub fn answer_offer(&self, offer: &str) -> Result<String> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(WebRtcError::Closed);
        }
        let answer = self.shared.leg().answer_offer(now(), offer);
        self.shared.wake.notify_one();
        answer
    }

    /// A new offer of ours during the call (the browser sent a re-INVITE without SDP): the
    /// same ICE credentials and fingerprint; the browser's answer goes to
    /// [`Gateway::accept_answer`].
    pub fn new_offer(&self) -> Result<String> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(WebRtcError::Closed);
        }
        let offer = self.shared.leg().offer(now());
        self.shared.wake.notify_one();
        offer
    }

    /// What the leg counted so far.
    pub fn stats(&self) -> &GatewayStats {
        &self.shared.stats
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        self.shared.wake.notify_one();
    }
}

/// A plain RTP/AVP description of `addr` carrying G.711 payload type `pt`.
fn plain_sdp(addr: SocketAddr, pt: u8) -> String {
    let family = if addr.is_ipv4() { "IP4" } else { "IP6" };
    let name = if pt == 8 { "PCMA" } else { "PCMU" };
    format!(
        "v=0\r\no=webrtc 1 1 IN {family} {ip}\r\ns=webrtc\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {name}/8000\r\na=sendrecv\r\n",
        ip = addr.ip(),
        port = addr.port(),
    )
}

struct Task {
    shared: Arc<Shared>,
    browser: UdpSocket,
    relay: UdpSocket,
    relay_agent: SocketAddr,
    relay_ssrc: u32,
    relay_sequence: u16,
}

impl Task {
    async fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        let mut from_browser = vec![0u8; 2048];
        let mut from_relay = vec![0u8; 2048];
        loop {
            if !self.flush().await {
                break;
            }
            let deadline = shared
                .leg()
                .poll_timeout()
                .map(tokio::time::Instant::from_std);
            tokio::select! {
                () = shared.wake.notified() => {
                    if shared.closed.load(Ordering::Relaxed) {
                        break;
                    }
                }
                r = self.browser.recv_from(&mut from_browser) => {
                    if let Ok((n, from)) = r
                        && let Some(bytes) = from_browser.get(..n)
                    {
                        shared.leg().handle_datagram(now(), from, bytes);
                    }
                }
                r = self.relay.recv_from(&mut from_relay) => {
                    if let Ok((n, from)) = r
                        && from == self.relay_agent
                        && let Some(bytes) = from_relay.get(..n)
                    {
                        self.send_to_browser(bytes);
                    }
                }
                () = sleep_until(deadline) => shared.leg().handle_timeout(now()),
            }
        }
        shared.leg().close();
        let _ = self.flush().await;
        debug!("WebRTC leg closed");
    }

    /// Sends what the leg queued and passes its audio on; false when the leg failed.
    async fn flush(&mut self) -> bool {
        let mut transmits = Vec::new();
        let mut events = Vec::new();
        let mut audio = Vec::new();
        let answered_at = {
            let mut leg = self.shared.leg();
            while let Some(t) = leg.poll_transmit() {
                transmits.push(t);
            }
            while let Some(e) = leg.poll_event() {
                events.push(e);
            }
            while let Some(a) = leg.poll_audio() {
                audio.push(a);
            }
            leg.answered_at()
        };
        for (to, bytes) in transmits {
            if let Err(e) = self.browser.send_to(&bytes, to).await {
                debug!(%to, "WebRTC send failed: {e}");
            }
        }
        let stats = &self.shared.stats;
        for event in events {
            match event {
                LegEvent::Connected => {
                    // A restarted ICE reports again; count the first connection only.
                    if stats.connected.swap(true, Ordering::Relaxed) {
                        debug!("WebRTC agent leg connected again");
                        continue;
                    }
                    let ms =
                        answered_at.map_or(0, |t| now().saturating_duration_since(t).as_millis());
                    info!(
                        handshake_ms = ms,
                        "WebRTC agent leg connected (ICE, DTLS-SRTP)"
                    );
                }
                LegEvent::Failed => {
                    info!("WebRTC agent leg closed or failed");
                    return false;
                }
            }
        }
        for a in audio {
            self.relay_sequence = self.relay_sequence.wrapping_add(1);
            let packet = RtpPacket {
                marker: a.marker,
                payload_type: a.payload_type,
                sequence: self.relay_sequence,
                timestamp: a.timestamp,
                ssrc: self.relay_ssrc,
                payload: a.payload,
            };
            if let Ok(bytes) = packet.to_vec()
                && self.relay.try_send_to(&bytes, self.relay_agent).is_ok()
            {
                stats.from_browser.fetch_add(1, Ordering::Relaxed);
            }
        }
        true
    }

    fn send_to_browser(&mut self, datagram: &[u8]) {
        let Ok(packet) = RtpPacket::parse(datagram) else {
            return;
        };
        if !self.shared.stats.connected.load(Ordering::Relaxed) {
            return;
        }
        let audio = Audio {
            payload_type: packet.payload_type,
            timestamp: packet.timestamp,
            marker: packet.marker,
            payload: packet.payload,
        };
        let sent = self.shared.leg().send_audio(now(), audio);
        match sent {
            Ok(()) => {
                self.shared.stats.to_browser.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => debug!("audio not sent to the browser: {e}"),
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_sees_a_plain_g711_phone() {
        let sdp = plain_sdp("127.0.0.1:20001".parse().unwrap(), 8);
        assert!(sdp.contains("c=IN IP4 127.0.0.1\r\n"));
        assert!(sdp.contains("m=audio 20001 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"));
        let parsed = switchboard_media::Sdp::parse(&sdp).unwrap();
        assert_eq!(
            parsed.audio_addr(),
            Some("127.0.0.1:20001".parse().unwrap())
        );
    }
}
