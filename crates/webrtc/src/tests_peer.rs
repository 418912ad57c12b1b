//! A full-ICE `rtc` peer that stands in for a browser in unit tests (no sockets).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::RTCOfferOptions;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_PCMU, MediaEngine};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::RTCRtpTransceiverDirection;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use rtc::sansio::Protocol;

pub(crate) struct Browser {
    pc: RTCPeerConnection,
    local: SocketAddr,
    sender: RTCRtpSenderId,
    /// (SSRC, sequence) of every RTP packet heard.
    pub heard: Vec<(u32, u16)>,
    /// Sequence number of the last packet sent.
    sequence: u16,
}

impl Browser {
    pub fn new(now: Instant, local: SocketAddr) -> Browser {
        let pcmu = RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_PCMU.to_owned(),
                clock_rate: 8000,
                channels: 1,
                sdp_fmtp_line: String::new(),
                rtcp_feedback: vec![],
            },
            payload_type: 0,
        };
        let mut media = MediaEngine::default();
        media
            .register_codec(pcmu.clone(), RtpCodecKind::Audio)
            .unwrap();
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media)
            .build(now)
            .unwrap();
        pc.add_local_candidate(crate::leg::host_candidate(local).unwrap())
            .unwrap();
        let track = MediaStreamTrack::new(
            "browser".to_owned(),
            "mic".to_owned(),
            "mic".to_owned(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(99),
                    ..Default::default()
                },
                codec: pcmu.rtp_codec,
                ..Default::default()
            }],
        );
        let sender = pc.add_track(track).unwrap();
        Browser {
            pc,
            local,
            sender,
            heard: Vec::new(),
            sequence: 0,
        }
    }

    pub fn answer(&mut self, now: Instant, offer: &str) -> String {
        self.pc
            .set_remote_description(now, RTCSessionDescription::offer(offer.to_owned()).unwrap())
            .unwrap();
        let answer = self.pc.create_answer(None).unwrap();
        let sdp = answer.sdp.clone();
        self.pc.set_local_description(now, answer).unwrap();
        sdp
    }

    /// A re-offer as a browser makes it: on hold (`sendonly`) or back (`sendrecv`), with
    /// fresh ICE credentials when `ice_restart`.
    pub fn reoffer(&mut self, now: Instant, hold: bool, ice_restart: bool) -> String {
        let direction = if hold {
            RTCRtpTransceiverDirection::Sendonly
        } else {
            RTCRtpTransceiverDirection::Sendrecv
        };
        let ids: Vec<_> = self.pc.get_transceivers().collect();
        for id in ids {
            if let Some(mut t) = self.pc.rtp_transceiver(id) {
                t.set_direction(direction);
            }
        }
        let options = ice_restart.then_some(RTCOfferOptions { ice_restart: true });
        let offer = self.pc.create_offer(options).unwrap();
        let sdp = offer.sdp.clone();
        self.pc.set_local_description(now, offer).unwrap();
        sdp
    }

    /// Our answer to the browser's re-offer.
    pub fn accept_answer(&mut self, now: Instant, answer: &str) {
        self.pc
            .set_remote_description(
                now,
                RTCSessionDescription::answer(answer.to_owned()).unwrap(),
            )
            .unwrap();
    }

    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let _ = self
            .pc
            .handle_read(crate::leg::udp_datagram(now, self.local, from, bytes));
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            if let RTCMessage::RtpPacket(_, p) = message {
                self.heard.push((p.header.ssrc, p.header.sequence_number));
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = self.pc.handle_timeout(now);
        while self.pc.poll_event().is_some() {}
    }

    pub fn poll_transmit(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        while let Some(m) = self.pc.poll_write() {
            out.push(m.message.freeze());
        }
        out
    }

    pub fn send_audio(&mut self, now: Instant, step: u32) {
        self.sequence = self.sequence.wrapping_add(1);
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                payload_type: 0,
                sequence_number: self.sequence,
                timestamp: step * 160,
                ssrc: 99,
                ..Default::default()
            },
            payload: Bytes::from(vec![0xff; 160]),
        };
        if let Some(mut sender) = self.pc.rtp_sender(self.sender) {
            let _ = sender.write_rtp(now, packet);
        }
    }
}
