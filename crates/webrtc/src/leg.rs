//! The sans-IO WebRTC leg: one `rtc` peer connection that offers a browser G.711 audio over
//! ICE-lite and DTLS-SRTP, takes its answer, and turns SRTP into plain payloads and back.
//! Time is an argument everywhere; no socket is touched here.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_PCMA, MIME_TYPE_PCMU, MediaEngine,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCDtlsRole, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use crate::error::{Result, WebRtcError};

/// G.711 µ-law and A-law, known to the media engine. The audio track sends µ-law, so the
/// offer names PCMU alone (every browser has it); an A-law trunk is converted by the relay.
const CODECS: [(&str, u8); 2] = [(MIME_TYPE_PCMU, 0), (MIME_TYPE_PCMA, 8)];

/// What the leg reports to its driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegEvent {
    /// ICE and DTLS are up: SRTP flows.
    Connected,
    /// ICE or DTLS failed or the browser closed the connection.
    Failed,
}

/// One audio payload received from the browser (decrypted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audio {
    pub payload_type: u8,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: Bytes,
}

/// A WebRTC audio leg towards one browser.
pub struct WebRtcLeg {
    pc: RTCPeerConnection,
    local: SocketAddr,
    sender: RTCRtpSenderId,
    ssrc: u32,
    sequence: u16,
    payload_type: Option<u8>,
    /// When the browser's first answer was applied (the handshake is timed from it).
    answered_at: Option<Instant>,
}

impl std::fmt::Debug for WebRtcLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcLeg")
            .field("local", &self.local)
            .field("ssrc", &self.ssrc)
            .field("payload_type", &self.payload_type)
            .finish_non_exhaustive()
    }
}

fn codec(mime: &str, payload_type: u8) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: mime.to_owned(),
            clock_rate: 8000,
            channels: 1,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        },
        payload_type,
    }
}

impl WebRtcLeg {
    /// A leg whose one ICE host candidate is `candidate` (the advertised address and the
    /// port the driver's socket is bound on). `seed` makes the SSRC differ per call.
    pub fn new(now: Instant, candidate: SocketAddr, seed: u64) -> Result<WebRtcLeg> {
        let mut media = MediaEngine::default();
        for (mime, pt) in CODECS {
            media
                .register_codec(codec(mime, pt), RtpCodecKind::Audio)
                .map_err(WebRtcError::rtc("codec"))?;
        }
        let settings = SettingEngineBuilder::new()
            .with_lite(true)
            // When a browser offers (a re-INVITE from it), answer as the DTLS server:
            // `a=setup:passive`, whatever the stack's default answering role.
            .with_answering_dtls_role(RTCDtlsRole::Server)
            .with_srtp_protection_profiles(vec![
                SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
                SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
            ])
            .build();
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_setting_engine(settings)
            .with_media_engine(media)
            .build(now)
            .map_err(WebRtcError::rtc("peer connection"))?;
        pc.add_local_candidate(host_candidate(candidate)?)
            .map_err(WebRtcError::rtc("host candidate"))?;
        // The low 32 bits of the seed, never 0.
        let ssrc = u32::try_from(seed & 0xffff_ffff).unwrap_or(1).max(1);
        let track = MediaStreamTrack::new(
            "switchboard".to_owned(),
            "audio".to_owned(),
            "audio".to_owned(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: codec(MIME_TYPE_PCMU, 0).rtp_codec,
                ..Default::default()
            }],
        );
        let sender = pc
            .add_track(track)
            .map_err(WebRtcError::rtc("audio track"))?;
        Ok(WebRtcLeg {
            pc,
            local: candidate,
            sender,
            ssrc,
            sequence: u16::try_from((seed >> 32) & 0xffff).unwrap_or(0),
            payload_type: None,
            answered_at: None,
        })
    }

    /// Our SDP offer: `UDP/TLS/RTP/SAVPF`, PCMU, `a=ice-lite`, ice-ufrag/pwd, a
    /// sha-256 fingerprint, `a=setup:actpass`, `a=mid`, `a=group:BUNDLE`, `a=rtcp-mux` and the
    /// host candidate: what browsers accept.
    pub fn offer(&mut self, now: Instant) -> Result<String> {
        let offer = self
            .pc
            .create_offer(None)
            .map_err(WebRtcError::rtc("offer"))?;
        let sdp = offer.sdp.clone();
        self.pc
            .set_local_description(now, offer)
            .map_err(WebRtcError::rtc("offer"))?;
        Ok(sdp)
    }

    /// Applies the browser's answer (to our first offer, or to a later one of
    /// [`WebRtcLeg::offer`]); returns the G.711 payload type it chose.
    pub fn accept_answer(&mut self, now: Instant, sdp: &str) -> Result<u8> {
        let chosen = answered_payload_type(sdp).ok_or(WebRtcError::NoCommonCodec)?;
        let answer =
            RTCSessionDescription::answer(sdp.to_owned()).map_err(WebRtcError::rtc("answer"))?;
        self.pc
            .set_remote_description(now, answer)
            .map_err(WebRtcError::rtc("answer"))?;
        self.payload_type = Some(chosen);
        self.answered_at.get_or_insert(now);
        Ok(chosen)
    }

    /// A new offer from the browser once the call is up (a re-INVITE or UPDATE: hold,
    /// resume, ICE restart with a new ufrag/pwd): applied, and our answer returned, with
    /// `a=setup:passive` and, after an ICE restart, fresh ICE credentials of ours. The DTLS
    /// association and the SRTP keys stay; a G.711 payload type must still be offered.
    pub fn answer_offer(&mut self, now: Instant, sdp: &str) -> Result<String> {
        if answered_payload_type(sdp).is_none() {
            return Err(WebRtcError::NoCommonCodec);
        }
        let offer =
            RTCSessionDescription::offer(sdp.to_owned()).map_err(WebRtcError::rtc("re-offer"))?;
        self.pc
            .set_remote_description(now, offer)
            .map_err(WebRtcError::rtc("re-offer"))?;
        // The answer's direction mirrors the offer's (RFC 3264 §6.1: sendonly is answered
        // recvonly, inactive inactive); the stack would answer with the track's own.
        let direction = match offered_direction(sdp) {
            "sendonly" => RTCRtpTransceiverDirection::Recvonly,
            "recvonly" => RTCRtpTransceiverDirection::Sendonly,
            "inactive" => RTCRtpTransceiverDirection::Inactive,
            _ => RTCRtpTransceiverDirection::Sendrecv,
        };
        let transceivers: Vec<_> = self.pc.get_transceivers().collect();
        for id in transceivers {
            if let Some(mut t) = self.pc.rtp_transceiver(id) {
                t.set_direction(direction);
            }
        }
        let answer = self
            .pc
            .create_answer(None)
            .map_err(WebRtcError::rtc("answer to a re-offer"))?;
        let sdp = answer.sdp.clone();
        self.pc
            .set_local_description(now, answer)
            .map_err(WebRtcError::rtc("answer to a re-offer"))?;
        Ok(sdp)
    }

    /// When the browser's first answer was applied.
    pub fn answered_at(&self) -> Option<Instant> {
        self.answered_at
    }

    /// The payload type agreed with the browser, once it answered.
    pub fn payload_type(&self) -> Option<u8> {
        self.payload_type
    }

    /// A datagram arrived on the leg's socket from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        if let Err(e) = self
            .pc
            .handle_read(udp_datagram(now, self.local, from, datagram))
        {
            tracing::debug!(%from, "WebRTC datagram not taken: {e}");
        }
    }

    /// The deadline of [`WebRtcLeg::poll_timeout`] passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Err(e) = self.pc.handle_timeout(now) {
            tracing::debug!("WebRTC timeout handling: {e}");
        }
    }

    /// When the leg wants [`WebRtcLeg::handle_timeout`] next.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.pc.poll_timeout()
    }

    /// The next datagram to send, and where to.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Bytes)> {
        self.pc
            .poll_write()
            .map(|m| (m.transport.peer_addr, m.message.freeze()))
    }

    /// The next state change worth reporting.
    pub fn poll_event(&mut self) -> Option<LegEvent> {
        while let Some(event) = self.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) = event {
                match state {
                    RTCPeerConnectionState::Connected => return Some(LegEvent::Connected),
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        return Some(LegEvent::Failed);
                    }
                    _ => {}
                }
            }
        }
        None
    }

    /// The next audio payload received from the browser.
    pub fn poll_audio(&mut self) -> Option<Audio> {
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            if let RTCMessage::RtpPacket(_, packet) = message {
                return Some(Audio {
                    payload_type: packet.header.payload_type,
                    timestamp: packet.header.timestamp,
                    marker: packet.header.marker,
                    payload: packet.payload,
                });
            }
        }
        None
    }

    /// Sends one audio payload to the browser under the leg's own SSRC and sequence numbers
    /// (whatever the relay's stream used), keeping its timestamp and marker.
    pub fn send_audio(&mut self, now: Instant, audio: Audio) -> Result<()> {
        self.sequence = self.sequence.wrapping_add(1);
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                marker: audio.marker,
                payload_type: audio.payload_type,
                sequence_number: self.sequence,
                timestamp: audio.timestamp,
                ssrc: self.ssrc,
                ..Default::default()
            },
            payload: audio.payload,
        };
        let Some(mut sender) = self.pc.rtp_sender(self.sender) else {
            return Err(WebRtcError::Closed);
        };
        sender
            .write_rtp(now, packet)
            .map_err(WebRtcError::rtc("send"))
    }

    /// Closes the connection (a DTLS close alert goes out on the next transmits).
    pub fn close(&mut self) {
        let _ = self.pc.close();
    }
}

/// The ICE host candidate (UDP, component 1) at `addr`.
pub(crate) fn host_candidate(addr: SocketAddr) -> Result<RTCIceCandidateInit> {
    let host = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: addr.ip().to_string(),
            port: addr.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()
    .map_err(WebRtcError::rtc("host candidate"))?;
    RTCIceCandidate::from(&host)
        .to_json()
        .map_err(WebRtcError::rtc("host candidate"))
}

/// The direction attribute of an SDP (`sendrecv` when none is given).
fn offered_direction(sdp: &str) -> &'static str {
    sdp.lines()
        .find_map(|l| match l.trim_end() {
            "a=sendonly" => Some("sendonly"),
            "a=recvonly" => Some("recvonly"),
            "a=inactive" => Some("inactive"),
            "a=sendrecv" => Some("sendrecv"),
            _ => None,
        })
        .unwrap_or("sendrecv")
}

/// The first payload type of the answer's audio line when it is PCMU (0) or PCMA (8).
pub(crate) fn answered_payload_type(sdp: &str) -> Option<u8> {
    let line = sdp
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("m=audio "))?;
    let mut fields = line.split_ascii_whitespace();
    let port = fields.next()?;
    if port == "0" {
        return None;
    }
    let _proto = fields.next()?;
    fields
        .filter_map(|f| f.parse::<u8>().ok())
        .find(|pt| CODECS.iter().any(|(_, p)| p == pt))
}

/// A UDP datagram from `from` to `local`, as the `rtc` stack reads it.
pub(crate) fn udp_datagram(
    now: Instant,
    local: SocketAddr,
    from: SocketAddr,
    datagram: &[u8],
) -> TaggedBytesMut {
    TaggedBytesMut {
        now,
        transport: TransportContext {
            local_addr: local,
            peer_addr: from,
            ecn: None,
            transport_protocol: TransportProtocol::UDP,
        },
        message: BytesMut::from(datagram),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a start instant for the virtual clock
mod tests {
    use super::*;

    #[test]
    fn the_offer_is_what_browsers_accept() {
        let now = Instant::now();
        let mut leg = WebRtcLeg::new(now, "127.0.0.1:40000".parse().unwrap(), 42).unwrap();
        let sdp = leg.offer(now).unwrap();
        for needle in [
            "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n",
            "a=rtpmap:0 PCMU/8000",
            "a=ice-lite",
            "a=ice-ufrag:",
            "a=ice-pwd:",
            "a=fingerprint:sha-256 ",
            "a=setup:actpass",
            "a=mid:0",
            "a=group:BUNDLE 0",
            "a=rtcp-mux",
            "127.0.0.1 40000 typ host",
        ] {
            assert!(sdp.contains(needle), "{needle} missing from\n{sdp}");
        }
    }

    #[test]
    fn the_answer_must_choose_g711() {
        assert_eq!(
            answered_payload_type("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 8 0\r\n"),
            Some(8)
        );
        assert_eq!(
            answered_payload_type("m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\n"),
            Some(0)
        );
        assert_eq!(
            answered_payload_type("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"),
            None
        );
        assert_eq!(
            answered_payload_type("m=audio 0 UDP/TLS/RTP/SAVPF 0\r\n"),
            None
        );
        assert_eq!(answered_payload_type("v=0\r\n"), None);
    }

    /// Runs both sides for up to `steps` × 5 ms, audio both ways once connected; returns
    /// whether the leg reported `Connected` and the payloads it heard.
    fn exchange(
        server: &mut WebRtcLeg,
        browser: &mut crate::tests_peer::Browser,
        now: &mut Instant,
        steps: u32,
    ) -> (bool, Vec<Audio>) {
        let server_addr = server.local;
        let browser_addr: SocketAddr = "127.0.0.1:40020".parse().unwrap();
        let mut connected = false;
        let mut heard = Vec::new();
        for step in 0..steps {
            *now += std::time::Duration::from_millis(5);
            while let Some((to, bytes)) = server.poll_transmit() {
                assert_eq!(to, browser_addr);
                browser.handle_datagram(*now, server_addr, &bytes);
            }
            for bytes in browser.poll_transmit() {
                server.handle_datagram(*now, browser_addr, &bytes);
            }
            server.handle_timeout(*now);
            browser.handle_timeout(*now);
            while let Some(event) = server.poll_event() {
                connected |= event == LegEvent::Connected;
            }
            if step % 4 == 0 {
                let audio = Audio {
                    payload_type: 0,
                    timestamp: step * 160,
                    marker: false,
                    payload: Bytes::from(vec![0x55; 160]),
                };
                let _ = server.send_audio(*now, audio);
                browser.send_audio(*now, step);
            }
            while let Some(audio) = server.poll_audio() {
                heard.push(audio);
            }
        }
        (connected, heard)
    }

    /// After the call is up the browser re-offers: on hold, back, then with an ICE restart.
    /// Each answer is passive DTLS with the same fingerprint; the restart's answer has new
    /// ICE credentials; audio crosses SRTP again after each.
    #[test]
    fn browser_re_offers_hold_resume_and_ice_restart_are_answered() {
        let mut now = Instant::now();
        let mut server = WebRtcLeg::new(now, "127.0.0.1:40010".parse().unwrap(), 9).unwrap();
        let mut browser = crate::tests_peer::Browser::new(now, "127.0.0.1:40020".parse().unwrap());
        let offer = server.offer(now).unwrap();
        let answer = browser.answer(now, &offer);
        server.accept_answer(now, &answer).unwrap();
        let (connected, heard) = exchange(&mut server, &mut browser, &mut now, 400);
        assert!(connected && heard.len() > 20, "first connection");
        let line = |sdp: &str, key: &str| {
            sdp.lines()
                .find_map(|l| l.strip_prefix(key).map(str::to_owned))
                .unwrap_or_default()
        };
        let ufrag = line(&offer, "a=ice-ufrag:");
        let fingerprint = line(&offer, "a=fingerprint:");

        let hold = browser.reoffer(now, true, false);
        assert!(hold.contains("a=sendonly"), "{hold}");
        let ours = server.answer_offer(now, &hold).unwrap();
        assert!(ours.contains("a=recvonly"), "{ours}");
        assert!(ours.contains("a=setup:passive"), "{ours}");
        assert_eq!(line(&ours, "a=ice-ufrag:"), ufrag);
        assert_eq!(line(&ours, "a=fingerprint:"), fingerprint);
        browser.accept_answer(now, &ours);
        let (_, heard) = exchange(&mut server, &mut browser, &mut now, 200);
        assert!(
            heard.len() > 20,
            "the held browser still sends: {}",
            heard.len()
        );

        let resume = browser.reoffer(now, false, false);
        let ours = server.answer_offer(now, &resume).unwrap();
        assert!(ours.contains("a=sendrecv"), "{ours}");
        browser.accept_answer(now, &ours);
        let before = browser.heard.len();
        let (_, heard) = exchange(&mut server, &mut browser, &mut now, 200);
        assert!(heard.len() > 20 && browser.heard.len() > before + 20);

        let restart = browser.reoffer(now, false, true);
        assert_ne!(
            line(&restart, "a=ice-ufrag:"),
            line(&answer, "a=ice-ufrag:")
        );
        let ours = server.answer_offer(now, &restart).unwrap();
        assert_ne!(line(&ours, "a=ice-ufrag:"), ufrag, "{ours}");
        assert_eq!(line(&ours, "a=fingerprint:"), fingerprint);
        assert!(ours.contains("a=setup:passive"), "{ours}");
        browser.accept_answer(now, &ours);
        let before = browser.heard.len();
        let (_, heard) = exchange(&mut server, &mut browser, &mut now, 1000);
        assert!(
            heard.len() > 20,
            "after the ICE restart the server heard {}",
            heard.len()
        );
        assert!(
            browser.heard.len() > before + 20,
            "after the ICE restart the browser heard {}",
            browser.heard.len() - before
        );
    }

    #[test]
    fn a_re_offer_without_g711_is_refused() {
        let now = Instant::now();
        let mut server = WebRtcLeg::new(now, "127.0.0.1:40030".parse().unwrap(), 3).unwrap();
        let err = server
            .answer_offer(now, "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n")
            .unwrap_err();
        assert!(matches!(err, WebRtcError::NoCommonCodec), "{err}");
    }

    /// Two legs in one process over no sockets: the server-side leg (ICE-lite offerer) and a
    /// full-ICE `rtc` answerer standing in for the browser complete ICE and DTLS, and audio
    /// crosses SRTP both ways with the SSRC rewritten.
    #[test]
    fn a_full_ice_peer_connects_and_audio_crosses_srtp() {
        let mut now = Instant::now();
        let mut server = WebRtcLeg::new(now, "127.0.0.1:40010".parse().unwrap(), 7).unwrap();
        let mut browser = crate::tests_peer::Browser::new(now, "127.0.0.1:40020".parse().unwrap());
        let offer = server.offer(now).unwrap();
        let answer = browser.answer(now, &offer);
        assert_eq!(server.accept_answer(now, &answer).unwrap(), 0);
        let (connected, heard) = exchange(&mut server, &mut browser, &mut now, 400);
        assert!(connected, "ICE + DTLS never completed");
        assert!(heard.len() > 20, "server heard {}", heard.len());
        assert!(
            browser.heard.len() > 20,
            "browser heard {}",
            browser.heard.len()
        );
        assert!(browser.heard.iter().all(|(ssrc, _)| *ssrc == server.ssrc));
        assert!(heard.iter().all(|a| a.payload.len() == 160));
    }
}
