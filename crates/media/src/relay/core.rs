//! One call's relay state ([`Core`]): what each leg receives and sends, pacing, DTMF
//! detection, recording, and who holds whom. The relay thread ([`super::reactor`]) feeds it
//! datagrams, commands and deadlines; it answers by sending on the session's sockets. All
//! decisions are delegated to the pure modules ([`crate::stream`], [`crate::dtmf`],
//! [`crate::g711`], [`crate::recording`]). The per-packet path copies the payload once (into
//! the outgoing datagram) and allocates nothing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::{Command, LegKind, ModeCmd, Sockets};
use crate::clock;
use crate::dtmf::{DtmfDetector, TelephoneEvent};
use crate::error::Result;
use crate::g711::Codec;
use crate::recording::{Channel, RecordingWriter, StereoAligner};
use crate::rtp::{RtpView, looks_like_rtcp};
use crate::session::PromptEnd;
use crate::sounds::{Player, Samples};
use crate::source::{SourceLatch, Verdict};
use crate::stats::{LegCounters, SessionCounters, Tally, bump};
use crate::stream::{FRAME, FRAME_SAMPLES, LossTracker, OutStream, Pacer};

/// Paced packets sent per deadline at most (catching up after a short stall).
const MAX_CATCH_UP: usize = 10;
/// A paced stream further behind than this restarts its schedule instead of bursting.
const MAX_LATE: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Silent,
    Music,
    Prompt,
    Bridged,
}

struct Leg {
    source: SourceLatch,
    codec: Codec,
    telephone_event: Option<u8>,
    out: OutStream,
    loss: LossTracker,
    reported_lost: u64,
    /// The party multiplexes RTCP on the RTP port (RFC 5761).
    rtcp_mux: bool,
}

impl Leg {
    fn new(seed: u64) -> Self {
        Leg {
            source: SourceLatch::default(),
            codec: Codec::Pcmu,
            telephone_event: None,
            out: OutStream::new(seed as u32, (seed >> 32) as u16, (seed >> 16) as u32),
            loss: LossTracker::default(),
            reported_lost: 0,
            rtcp_mux: false,
        }
    }
}

struct Recording {
    writer: RecordingWriter,
    started: Instant,
    aligner: StereoAligner,
}

/// One call's relay state; see the module documentation.
pub(crate) struct Core {
    epoch: Instant,
    mode: Mode,
    /// The caller put the call on hold (re-INVITE `sendonly`/`inactive`/`c=0.0.0.0`):
    /// nothing is sent to the caller until they resume.
    caller_holds: bool,
    /// The agent put the caller on hold: nothing is sent to the agent until they resume.
    agent_holds: bool,
    caller: Leg,
    agent: Leg,
    music: Player,
    prompts: Vec<Player>,
    prompt_done: Option<oneshot::Sender<PromptEnd>>,
    pacer: Pacer,
    dtmf: DtmfDetector,
    dtmf_tx: mpsc::Sender<char>,
    recording: Option<Recording>,
    counters: Arc<SessionCounters>,
    /// Process-wide counts not yet added to the shared totals (the relay thread flushes
    /// them once per wake-up, so threads do not contend on the totals per packet).
    pub(super) tally: Tally,
    frame: [i16; FRAME_SAMPLES],
    payload: Vec<u8>,
    pcm: Vec<i16>,
    wire: Vec<u8>,
}

impl Core {
    pub(crate) fn new(
        epoch: Instant,
        seed: u64,
        music: Samples,
        counters: Arc<SessionCounters>,
        dtmf_tx: mpsc::Sender<char>,
    ) -> Self {
        Core {
            epoch,
            mode: Mode::Silent,
            caller_holds: false,
            agent_holds: false,
            caller: Leg::new(seed),
            agent: Leg::new(seed.rotate_left(17) ^ 0x5bd1_e995),
            music: Player::new(music),
            prompts: Vec::new(),
            prompt_done: None,
            pacer: Pacer::new(Duration::ZERO, FRAME),
            dtmf: DtmfDetector::new(),
            dtmf_tx,
            recording: None,
            counters,
            tally: Tally::default(),
            frame: [0; FRAME_SAMPLES],
            payload: Vec::with_capacity(512),
            pcm: Vec::with_capacity(512),
            wire: Vec::with_capacity(1500),
        }
    }

    fn now(&self) -> Duration {
        clock::now().saturating_duration_since(self.epoch)
    }

    fn leg(&mut self, k: LegKind) -> &mut Leg {
        match k {
            LegKind::Caller => &mut self.caller,
            LegKind::Agent => &mut self.agent,
        }
    }

    fn leg_counters(&self, k: LegKind) -> &LegCounters {
        match k {
            LegKind::Caller => &self.counters.caller,
            LegKind::Agent => &self.counters.agent,
        }
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.music_target()?;
        self.epoch.checked_add(self.pacer.next_due())
    }

    /// Where generated audio (music, prompts) goes now: the caller while in the queue or
    /// held by the agent, the agent while the caller holds (each hears our music, as on a
    /// PBX), nobody when the party it would reach holds too.
    fn music_target(&self) -> Option<LegKind> {
        match self.mode {
            Mode::Silent => None,
            Mode::Music | Mode::Prompt => (!self.caller_holds).then_some(LegKind::Caller),
            Mode::Bridged => match (self.caller_holds, self.agent_holds) {
                (false, true) => Some(LegKind::Caller),
                (true, false) => Some(LegKind::Agent),
                _ => None,
            },
        }
    }

    /// Whether the parties' packets are relayed to each other: bridged and nobody holds.
    fn relays(&self) -> bool {
        self.mode == Mode::Bridged && !self.caller_holds && !self.agent_holds
    }

    fn end_prompts(&mut self, how: PromptEnd) {
        self.prompts.clear();
        if let Some(tx) = self.prompt_done.take() {
            let _ = tx.send(how);
        }
    }

    fn set_mode(&mut self, cmd: ModeCmd) {
        let now = self.now();
        let before = (self.mode, self.music_target(), self.relays());
        let mode = match cmd {
            // Back in the queue, or a new agent: no agent's hold applies any more. The
            // caller's hold is the caller's dialog and lasts until they resume.
            ModeCmd::Music => {
                self.agent_holds = false;
                Mode::Music
            }
            ModeCmd::Prompts(files, done) => {
                self.end_prompts(PromptEnd::Interrupted);
                // Stored reversed so the next file is popped from the end.
                self.prompts = files.into_iter().rev().map(Player::new).collect();
                self.prompt_done = Some(done);
                self.agent_holds = false;
                Mode::Prompt
            }
            ModeCmd::Bridge => {
                self.agent_holds = false;
                Mode::Bridged
            }
            ModeCmd::Hold(LegKind::Agent, held) => {
                self.agent_holds = held;
                Mode::Bridged
            }
            ModeCmd::Hold(LegKind::Caller, held) => {
                self.caller_holds = held;
                self.mode
            }
        };
        if mode != Mode::Prompt {
            self.end_prompts(PromptEnd::Interrupted);
        }
        self.mode = mode;
        let after = (self.mode, self.music_target(), self.relays());
        if after.1.is_some() && before.1.is_none() {
            self.pacer = Pacer::new(now, FRAME);
        }
        if after != before {
            self.caller.out.switch_source();
            self.agent.out.switch_source();
            let (caller_holds, agent_holds) = (self.caller_holds, self.agent_holds);
            tracing::debug!(?before, ?after, caller_holds, agent_holds, "media mode");
        }
    }

    pub(super) fn apply(&mut self, c: Command) {
        match c {
            Command::SetLeg(k, p) => {
                let leg = self.leg(k);
                if let Some(addr) = p.remote {
                    leg.source.set_sdp(addr);
                }
                leg.codec = p.codec;
                leg.telephone_event = p.telephone_event;
                leg.rtcp_mux = p.rtcp_mux;
            }
            Command::Mode(m) => self.set_mode(m),
            Command::StartRecording(writer) => {
                if let Some(old) = self.take_recording() {
                    finish_recording(old, |_| ());
                }
                self.recording = Some(Recording {
                    writer,
                    started: clock::now(),
                    aligner: StereoAligner::new(),
                });
            }
            // Handled by the relay thread (they end a recording or the session).
            Command::StopRecording(_) | Command::Close(_) => {}
        }
    }

    fn transmit(&mut self, to: LegKind, sockets: &Sockets) {
        let Some(remote) = self.leg(to).source.target() else {
            return;
        };
        let n = self.wire.len() as u64;
        match sockets.rtp(to).send_to(&self.wire, remote) {
            Ok(_) => {
                let c = self.leg_counters(to);
                bump(&c.packets_out, 1);
                bump(&c.bytes_out, n);
                self.tally.packets_out += 1;
                self.tally.bytes_out += n;
            }
            Err(_) => bump(&self.leg_counters(to).send_errors, 1),
        }
    }

    /// Sends the paced packets that are due.
    pub(super) fn tick(&mut self, sockets: &Sockets) {
        let now = self.now();
        if self.pacer.resync_if_late(now, MAX_LATE) {
            tracing::debug!("paced stream restarted after a stall");
        }
        for _ in 0..MAX_CATCH_UP {
            let Some(to) = self.music_target() else { break };
            if self.pacer.next_due() > now {
                break;
            }
            self.next_frame();
            let due = self.pacer.next_due();
            let leg = self.leg(to);
            let codec = leg.codec;
            let stamp = leg.out.next_generated(due, FRAME_SAMPLES as u32);
            self.payload.clear();
            codec.encode(&self.frame, &mut self.payload);
            self.pacer.sent_one();
            let packet = RtpView {
                marker: stamp.marker,
                payload_type: codec.payload_type(),
                sequence: stamp.sequence,
                timestamp: stamp.timestamp,
                ssrc: stamp.ssrc,
                payload: &self.payload,
            };
            if packet.write_to(&mut self.wire).is_ok() {
                self.transmit(to, sockets);
            }
        }
    }

    fn next_frame(&mut self) {
        if self.mode == Mode::Prompt {
            while let Some(p) = self.prompts.last_mut() {
                if p.next_once(&mut self.frame) {
                    return;
                }
                self.prompts.pop();
            }
            self.end_prompts(PromptEnd::Finished);
            self.mode = Mode::Music;
        }
        self.music.next_looped(&mut self.frame);
    }

    /// One datagram that arrived on the RTP socket of leg `from`.
    pub(super) fn on_datagram(
        &mut self,
        from: LegKind,
        src: SocketAddr,
        data: &[u8],
        sockets: &Sockets,
    ) {
        if self.leg(from).rtcp_mux && looks_like_rtcp(data) {
            self.on_rtcp(from);
            return;
        }
        let Ok(pkt) = RtpView::parse(data) else {
            bump(&self.leg_counters(from).invalid, 1);
            self.tally.invalid += 1;
            return;
        };
        let leg = self.leg(from);
        let was = leg.source.target();
        if leg.source.on_packet(src) == Verdict::Reject {
            self.tally.rejected += 1;
            let first = self.leg_counters(from).foreign.fetch_add(1, Relaxed) == 0;
            if first {
                tracing::warn!(?from, %src, party = ?was, "RTP from another source dropped");
            }
            return;
        }
        if leg.source.target() != was {
            tracing::debug!(?from, %src, nat = leg.source.is_latched(), "RTP source in use");
        }
        leg.loss.on_packet(pkt.ssrc, pkt.sequence);
        let lost = leg.loss.lost();
        let new_lost = lost.saturating_sub(leg.reported_lost);
        leg.reported_lost = lost;
        let te = leg.telephone_event;
        let arrived_us = u64::try_from(self.now().as_micros()).unwrap_or(u64::MAX - 1);
        let c = self.leg_counters(from);
        bump(&c.packets_in, 1);
        c.last_in_us.store(arrived_us.saturating_add(1), Relaxed);
        bump(&c.bytes_in, data.len() as u64);
        c.lost.store(lost, Relaxed);
        self.tally.packets_in += 1;
        self.tally.bytes_in += data.len() as u64;
        self.tally.lost += new_lost;

        let to = match from {
            LegKind::Caller => LegKind::Agent,
            LegKind::Agent => LegKind::Caller,
        };
        let relay = self.relays();
        if te == Some(pkt.payload_type) {
            if from == LegKind::Caller {
                self.detect_dtmf(&pkt);
            }
            if let (true, Some(out_pt)) = (relay, self.leg(to).telephone_event) {
                self.forward(to, &pkt, out_pt, pkt.payload, sockets);
            }
            return;
        }
        let in_codec = match pkt.payload_type {
            0 => Codec::Pcmu,
            8 => Codec::Pcma,
            _ => return, // comfort noise or anything not negotiated: dropped
        };
        if self.recording.is_some() {
            self.record(from, in_codec, pkt.payload);
        }
        if relay {
            let out_codec = self.leg(to).codec;
            if in_codec == out_codec {
                self.forward(to, &pkt, out_codec.payload_type(), pkt.payload, sockets);
            } else {
                // The scratch buffer is moved out and back so it can be read while `self`
                // is borrowed (moving a `Vec` allocates nothing).
                let mut coded = std::mem::take(&mut self.payload);
                coded.clear();
                in_codec.transcode(out_codec, pkt.payload, &mut coded);
                self.forward(to, &pkt, out_codec.payload_type(), &coded, sockets);
                self.payload = coded;
            }
        }
    }

    fn forward(
        &mut self,
        to: LegKind,
        pkt: &RtpView<'_>,
        payload_type: u8,
        payload: &[u8],
        sockets: &Sockets,
    ) {
        let now = self.now();
        let stamp = self
            .leg(to)
            .out
            .relay(now, pkt.ssrc, pkt.sequence, pkt.timestamp, pkt.marker);
        let out = RtpView {
            marker: stamp.marker,
            payload_type,
            sequence: stamp.sequence,
            timestamp: stamp.timestamp,
            ssrc: stamp.ssrc,
            payload,
        };
        if out.write_to(&mut self.wire).is_ok() {
            self.transmit(to, sockets);
        }
    }

    /// A datagram on the RTCP port of leg `from`. RTCP is tolerated, counted and dropped:
    /// relaying it would expose rewritten SSRCs' reports to the wrong party, and the relay
    /// is not an RTCP end point.
    pub(super) fn on_rtcp(&self, from: LegKind) {
        bump(&self.leg_counters(from).rtcp_in, 1);
    }

    fn detect_dtmf(&mut self, pkt: &RtpView<'_>) {
        let Ok(ev) = TelephoneEvent::parse(pkt.payload) else {
            return;
        };
        for digit in self.dtmf.on_packet(pkt.timestamp, &ev) {
            bump(&self.counters.dtmf_digits, 1);
            tracing::debug!(%digit, "DTMF from caller");
            if self.dtmf_tx.try_send(digit).is_err() {
                tracing::warn!(%digit, "DTMF receiver full or gone; digit dropped");
            }
        }
    }

    fn record(&mut self, from: LegKind, codec: Codec, payload: &[u8]) {
        let Some(rec) = self.recording.as_mut() else {
            return;
        };
        let slot = slot_of(clock::now().saturating_duration_since(rec.started));
        self.pcm.clear();
        codec.decode(payload, &mut self.pcm);
        let ch = match from {
            LegKind::Caller => Channel::Caller,
            LegKind::Agent => Channel::Agent,
        };
        rec.aligner.push(ch, slot, &self.pcm);
        let ready = rec.aligner.drain(slot);
        rec.writer.write(ready);
    }

    pub(super) fn take_recording(&mut self) -> Option<(RecordingWriter, Vec<i16>)> {
        let mut rec = self.recording.take()?;
        let slot = slot_of(clock::now().saturating_duration_since(rec.started));
        let tail = rec.aligner.finish(slot);
        Some((rec.writer, tail))
    }
}

fn slot_of(d: Duration) -> u64 {
    u64::try_from(d.as_millis() / 20).unwrap_or(u64::MAX)
}

/// Finishes a recording off the relay thread (the writer joins its file thread); `done`
/// hears the outcome.
pub(super) fn finish_recording(
    (mut writer, tail): (RecordingWriter, Vec<i16>),
    done: impl FnOnce(Result<PathBuf>) + Send + 'static,
) {
    writer.write(tail);
    let spawned = std::thread::Builder::new()
        .name("sb-rec-close".into())
        .spawn(move || done(writer.finish()));
    if let Err(e) = spawned {
        // The closure (and the writer in it) is dropped: the writer's file thread still
        // completes the WAV when its queue closes.
        tracing::warn!(error = %e, "could not start the recording finisher");
    }
}
