//! The task behind a [`crate::Session`]: it owns the two legs' sockets and does the
//! relaying, pacing, DTMF detection and recording, and applies who holds whom.
//!
//! The task is a single `select!` loop over: control commands, readiness of the four
//! sockets (caller RTP/RTCP, agent RTP/RTCP), and the next paced-send deadline. Sockets are
//! drained with `try_recv_from` and written with `try_send_to`, so the loop never awaits in
//! the middle of a packet. All decisions are delegated to the pure modules
//! ([`crate::stream`], [`crate::dtmf`], [`crate::g711`], [`crate::recording`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::clock;
use crate::dtmf::{DtmfDetector, TelephoneEvent};
use crate::error::{MediaError, Result};
use crate::g711::Codec;
use crate::ports::{PortLease, PortPair};
use crate::recording::{Channel, RecordingWriter, StereoAligner};
use crate::rtp::RtpPacket;
use crate::session::PromptEnd;
use crate::sounds::{Player, Samples};
use crate::source::{SourceLatch, Verdict};
use crate::stats::{LegCounters, SessionCounters, TotalCounters, bump};
use crate::stream::{FRAME, FRAME_SAMPLES, LossTracker, OutStream, Pacer};

/// Datagrams drained per socket wake-up before the loop looks at its other inputs.
const DRAIN_BATCH: usize = 64;
/// Paced packets sent per deadline at most (catching up after a short stall).
const MAX_CATCH_UP: usize = 10;
/// A paced stream further behind than this restarts its schedule instead of bursting.
const MAX_LATE: Duration = Duration::from_millis(200);

/// Which leg of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LegKind {
    Caller,
    Agent,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct LegParams {
    pub remote: Option<SocketAddr>,
    pub codec: Codec,
    pub telephone_event: Option<u8>,
}

pub(crate) enum ModeCmd {
    Music,
    Prompts(Vec<Samples>, oneshot::Sender<PromptEnd>),
    Bridge,
    /// The party of that leg put the call on hold (`true`) or resumed it.
    Hold(LegKind, bool),
}

pub(crate) enum Command {
    SetLeg(LegKind, LegParams),
    Mode(ModeCmd),
    StartRecording(RecordingWriter),
    StopRecording(oneshot::Sender<Result<Option<PathBuf>>>),
    Close(oneshot::Sender<()>),
}

pub(crate) struct Sockets {
    caller_rtp: UdpSocket,
    caller_rtcp: UdpSocket,
    agent_rtp: UdpSocket,
    agent_rtcp: UdpSocket,
    _leases: (PortLease, PortLease),
}

impl Sockets {
    pub(crate) fn new(caller: PortPair, agent: PortPair) -> Result<Self> {
        let conv = |s: std::net::UdpSocket| {
            UdpSocket::from_std(s).map_err(|e| MediaError::io("register RTP socket", e))
        };
        Ok(Sockets {
            caller_rtp: conv(caller.rtp)?,
            caller_rtcp: conv(caller.rtcp)?,
            agent_rtp: conv(agent.rtp)?,
            agent_rtcp: conv(agent.rtcp)?,
            _leases: (caller.lease, agent.lease),
        })
    }

    fn rtp(&self, leg: LegKind) -> &UdpSocket {
        match leg {
            LegKind::Caller => &self.caller_rtp,
            LegKind::Agent => &self.agent_rtp,
        }
    }
}

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
        }
    }
}

struct Recording {
    writer: RecordingWriter,
    started: tokio::time::Instant,
    aligner: StereoAligner,
}

pub(crate) struct Core {
    epoch: tokio::time::Instant,
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
    totals: Arc<TotalCounters>,
    frame: [i16; FRAME_SAMPLES],
    payload: Vec<u8>,
    pcm: Vec<i16>,
    wire: Vec<u8>,
}

impl Core {
    pub(crate) fn new(
        epoch: tokio::time::Instant,
        seed: u64,
        music: Samples,
        counters: Arc<SessionCounters>,
        totals: Arc<TotalCounters>,
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
            totals,
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

    fn next_deadline(&self) -> Option<tokio::time::Instant> {
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

    fn apply(&mut self, c: Command) {
        match c {
            Command::SetLeg(k, p) => {
                let leg = self.leg(k);
                if let Some(addr) = p.remote {
                    leg.source.set_sdp(addr);
                }
                leg.codec = p.codec;
                leg.telephone_event = p.telephone_event;
            }
            Command::Mode(m) => self.set_mode(m),
            Command::StartRecording(writer) => {
                if let Some(old) = self.recording.take() {
                    finish_recording_detached(old);
                }
                self.recording = Some(Recording {
                    writer,
                    started: clock::now(),
                    aligner: StereoAligner::new(),
                });
            }
            // Handled in `run` (needs to await the writer thread).
            Command::StopRecording(_) | Command::Close(_) => {}
        }
    }

    fn transmit(&mut self, to: LegKind, sockets: &Sockets) {
        let Some(remote) = self.leg(to).source.target() else {
            return;
        };
        let n = self.wire.len() as u64;
        match sockets.rtp(to).try_send_to(&self.wire, remote) {
            Ok(_) => {
                let c = self.leg_counters(to);
                bump(&c.packets_out, 1);
                bump(&c.bytes_out, n);
                bump(&self.totals.packets_out, 1);
                bump(&self.totals.bytes_out, n);
            }
            Err(_) => bump(&self.leg_counters(to).send_errors, 1),
        }
    }

    /// Sends the paced packets that are due.
    fn tick(&mut self, sockets: &Sockets) {
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
            let packet = RtpPacket {
                marker: stamp.marker,
                payload_type: codec.payload_type(),
                sequence: stamp.sequence,
                timestamp: stamp.timestamp,
                ssrc: stamp.ssrc,
                payload: Bytes::copy_from_slice(&self.payload),
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

    fn drain_rtp(&mut self, from: LegKind, sockets: &Sockets, buf: &mut [u8]) {
        for _ in 0..DRAIN_BATCH {
            match sockets.rtp(from).try_recv_from(buf) {
                Ok((n, src)) => {
                    let data = buf.get(..n).unwrap_or_default();
                    self.on_datagram(from, src, data, sockets);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // E.g. a queued ICMP error: skip it, the next read returns data or WouldBlock.
                Err(_) => {}
            }
        }
    }

    fn on_datagram(&mut self, from: LegKind, src: SocketAddr, data: &[u8], sockets: &Sockets) {
        let Ok(pkt) = RtpPacket::parse(data) else {
            bump(&self.leg_counters(from).invalid, 1);
            bump(&self.totals.invalid, 1);
            return;
        };
        let leg = self.leg(from);
        let was = leg.source.target();
        if leg.source.on_packet(src) == Verdict::Reject {
            bump(&self.totals.rejected, 1);
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
        c.last_in_us.store(
            arrived_us.saturating_add(1),
            std::sync::atomic::Ordering::Relaxed,
        );
        bump(&c.bytes_in, data.len() as u64);
        c.lost.store(lost, std::sync::atomic::Ordering::Relaxed);
        bump(&self.totals.packets_in, 1);
        bump(&self.totals.bytes_in, data.len() as u64);
        if new_lost > 0 {
            bump(&self.totals.lost, new_lost);
        }

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
                self.forward(to, &pkt, out_pt, pkt.payload.clone(), sockets);
            }
            return;
        }
        let in_codec = match pkt.payload_type {
            0 => Codec::Pcmu,
            8 => Codec::Pcma,
            _ => return, // comfort noise or anything not negotiated: dropped
        };
        if self.recording.is_some() {
            self.record(from, in_codec, &pkt.payload);
        }
        if relay {
            let out_codec = self.leg(to).codec;
            let payload = if in_codec == out_codec {
                pkt.payload.clone()
            } else {
                self.payload.clear();
                in_codec.transcode(out_codec, &pkt.payload, &mut self.payload);
                Bytes::copy_from_slice(&self.payload)
            };
            self.forward(to, &pkt, out_codec.payload_type(), payload, sockets);
        }
    }

    fn forward(
        &mut self,
        to: LegKind,
        pkt: &RtpPacket,
        payload_type: u8,
        payload: Bytes,
        sockets: &Sockets,
    ) {
        let now = self.now();
        let stamp = self
            .leg(to)
            .out
            .relay(now, pkt.ssrc, pkt.sequence, pkt.timestamp, pkt.marker);
        let out = RtpPacket {
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

    fn detect_dtmf(&mut self, pkt: &RtpPacket) {
        let Ok(ev) = TelephoneEvent::parse(&pkt.payload) else {
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

    fn take_recording(&mut self) -> Option<(RecordingWriter, Vec<i16>)> {
        let mut rec = self.recording.take()?;
        let slot = slot_of(clock::now().saturating_duration_since(rec.started));
        let tail = rec.aligner.finish(slot);
        Some((rec.writer, tail))
    }
}

fn slot_of(d: Duration) -> u64 {
    u64::try_from(d.as_millis() / 20).unwrap_or(u64::MAX)
}

fn finish_recording_detached(mut rec: Recording) {
    let slot = slot_of(clock::now().saturating_duration_since(rec.started));
    let tail = rec.aligner.finish(slot);
    rec.writer.write(tail);
    let writer = rec.writer;
    tokio::task::spawn_blocking(move || writer.finish());
}

async fn finish_recording(core: &mut Core) -> Result<Option<PathBuf>> {
    let Some((mut writer, tail)) = core.take_recording() else {
        return Ok(None);
    };
    writer.write(tail);
    match tokio::task::spawn_blocking(move || writer.finish()).await {
        Ok(r) => r.map(Some),
        Err(_) => Err(MediaError::SessionClosed),
    }
}

fn drain_rtcp(socket: &UdpSocket, counters: &LegCounters, buf: &mut [u8]) {
    // RTCP is tolerated, counted and dropped: relaying it would expose rewritten SSRCs'
    // reports to the wrong party, and the relay is not an RTCP end point.
    for _ in 0..DRAIN_BATCH {
        match socket.try_recv_from(buf) {
            Ok(_) => bump(&counters.rtcp_in, 1),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(_) => {}
        }
    }
}

pub(crate) async fn run(mut core: Core, sockets: Sockets, mut cmd_rx: mpsc::Receiver<Command>) {
    let mut buf = vec![0u8; 2048];
    loop {
        let deadline = core.next_deadline();
        let far = core.epoch + Duration::from_secs(86_400 * 365);
        tokio::select! {
            cmd = cmd_rx.recv() => match cmd {
                None => break,
                Some(Command::Close(done)) => {
                    if let Err(e) = finish_recording(&mut core).await {
                        tracing::warn!(error = %e, "recording");
                    }
                    let _ = done.send(());
                    break;
                }
                Some(Command::StopRecording(done)) => {
                    let _ = done.send(finish_recording(&mut core).await);
                }
                Some(c) => core.apply(c),
            },
            Ok(()) = sockets.caller_rtp.readable() => core.drain_rtp(LegKind::Caller, &sockets, &mut buf),
            Ok(()) = sockets.agent_rtp.readable() => core.drain_rtp(LegKind::Agent, &sockets, &mut buf),
            Ok(()) = sockets.caller_rtcp.readable() => drain_rtcp(&sockets.caller_rtcp, &core.counters.caller, &mut buf),
            Ok(()) = sockets.agent_rtcp.readable() => drain_rtcp(&sockets.agent_rtcp, &core.counters.agent, &mut buf),
            () = tokio::time::sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => core.tick(&sockets),
        }
    }
    // The session was dropped or closed: a recording still open is finalised in the
    // background by its writer thread when the writer is dropped here.
    if let Some((mut writer, tail)) = core.take_recording() {
        writer.write(tail);
        tokio::task::spawn_blocking(move || writer.finish());
    }
}
