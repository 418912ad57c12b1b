//! The per-call media session: a handle ([`Session`]) and the tokio task that owns the two
//! legs' sockets and does the relaying, pacing, DTMF detection and recording.
//!
//! The task is a single `select!` loop over: control commands, readiness of the four
//! sockets (caller RTP/RTCP, agent RTP/RTCP), and the next paced-send deadline. Sockets are
//! drained with `try_recv_from` and written with `try_send_to`, so the loop never awaits in
//! the middle of a packet. All decisions are delegated to the pure modules
//! ([`crate::stream`], [`crate::dtmf`], [`crate::g711`], [`crate::recording`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::clock;
use crate::dtmf::{DtmfDetector, TelephoneEvent};
use crate::error::{MediaError, Result};
use crate::g711::Codec;
use crate::ports::{PortLease, PortPair};
use crate::recording::{Channel, RecordingWriter, StereoAligner};
use crate::rtp::RtpPacket;
use crate::sdp::{Direction, LocalSdp, Negotiated, Sdp};
use crate::sounds::{Player, Samples};
use crate::source::{SourceLatch, Verdict};
use crate::stats::{LegCounters, SessionCounters, SessionStats, TotalCounters, bump};
use crate::stream::{FRAME, FRAME_SAMPLES, LossTracker, OutStream, Pacer};

/// Telephone-event payload type Switchboard offers.
pub const TELEPHONE_EVENT_PT: u8 = 101;
/// Codecs Switchboard offers, in preference order.
pub const OFFERED_CODECS: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];
/// Datagrams drained per socket wake-up before the loop looks at its other inputs.
const DRAIN_BATCH: usize = 64;
/// Paced packets sent per deadline at most (catching up after a short stall).
const MAX_CATCH_UP: usize = 10;
/// A paced stream further behind than this restarts its schedule instead of bursting.
const MAX_LATE: Duration = Duration::from_millis(200);

/// How a [`Session::play_prompts`] run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptEnd {
    /// Every file was played; the caller is back on music.
    Finished,
    /// Another mode was requested before the end.
    Interrupted,
}

/// Which leg of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegKind {
    Caller,
    Agent,
}

#[derive(Debug, Clone, Copy)]
struct LegParams {
    remote: Option<SocketAddr>,
    codec: Codec,
    telephone_event: Option<u8>,
}

enum ModeCmd {
    Music,
    Prompts(Vec<Samples>, oneshot::Sender<PromptEnd>),
    Bridge,
    Hold(bool),
}

enum Command {
    SetLeg(LegKind, LegParams),
    Mode(ModeCmd),
    StartRecording(RecordingWriter),
    StopRecording(oneshot::Sender<Result<Option<PathBuf>>>),
    Close(oneshot::Sender<()>),
}

/// Shared pieces a session needs from [`crate::Media`].
#[derive(Debug)]
pub(crate) struct SessionContext {
    pub advertised_ip: std::net::IpAddr,
    pub music: Samples,
    pub totals: Arc<TotalCounters>,
    pub sounds: Arc<crate::sounds::SoundCache>,
    pub sounds_dir: PathBuf,
}

/// One call's media: a caller leg and an agent leg, each with its own RTP/RTCP port pair.
///
/// Create with [`crate::Media::open_session`]. A new session is silent; the call controller
/// moves it between music, prompts, bridged and held. Dropping it stops the task and frees
/// both port pairs (a recording in progress is still finalised); [`Session::close`] does the
/// same and waits for it.
#[derive(Debug)]
pub struct Session {
    call_id: String,
    caller_port: u16,
    agent_port: u16,
    advertised_ip: std::net::IpAddr,
    sounds: Arc<crate::sounds::SoundCache>,
    sounds_dir: PathBuf,
    cmd: mpsc::Sender<Command>,
    counters: Arc<SessionCounters>,
    dtmf: Option<mpsc::Receiver<char>>,
    task: Option<JoinHandle<()>>,
    sdp_session_id: u64,
    caller_sdp_version: u64,
    agent_sdp_version: u64,
    caller_sdp_remote: Option<SocketAddr>,
    agent_sdp_remote: Option<SocketAddr>,
    recording: Option<PathBuf>,
    opened_at: tokio::time::Instant,
}

impl Session {
    pub(crate) fn spawn(
        call_id: &str,
        ctx: SessionContext,
        caller: PortPair,
        agent: PortPair,
    ) -> Result<Session> {
        let handle = tokio::runtime::Handle::try_current().map_err(|e| {
            MediaError::io(
                "media session needs a tokio runtime",
                std::io::Error::other(e),
            )
        })?;
        let _guard = handle.enter();
        let caller_port = caller.port();
        let agent_port = agent.port();
        let sockets = Sockets::new(caller, agent)?;
        let counters = Arc::new(SessionCounters::default());
        let (cmd_tx, cmd_rx) = mpsc::channel(32);
        let (dtmf_tx, dtmf_rx) = mpsc::channel(64);
        let seed = clock::seed(call_id);
        let opened_at = clock::now();
        let core = Core::new(
            opened_at,
            seed,
            ctx.music,
            Arc::clone(&counters),
            Arc::clone(&ctx.totals),
            dtmf_tx,
        );
        let span = tracing::debug_span!("media", call_id, caller_port, agent_port);
        let task = handle.spawn(tracing::Instrument::instrument(
            run(core, sockets, cmd_rx),
            span,
        ));
        Ok(Session {
            call_id: call_id.to_string(),
            caller_port,
            agent_port,
            advertised_ip: ctx.advertised_ip,
            sounds: ctx.sounds,
            sounds_dir: ctx.sounds_dir,
            cmd: cmd_tx,
            counters,
            dtmf: Some(dtmf_rx),
            task: Some(task),
            sdp_session_id: seed >> 12,
            caller_sdp_version: 0,
            agent_sdp_version: 0,
            caller_sdp_remote: None,
            agent_sdp_remote: None,
            recording: None,
            opened_at,
        })
    }

    /// The call this session belongs to.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// When the session opened: the origin of [`crate::LegStats::last_packet_in`].
    pub fn opened_at(&self) -> std::time::Instant {
        self.opened_at.into_std()
    }

    /// Local RTP port of the caller leg (RTCP is +1).
    pub fn caller_port(&self) -> u16 {
        self.caller_port
    }

    /// Local RTP port of the agent leg (RTCP is +1).
    pub fn agent_port(&self) -> u16 {
        self.agent_port
    }

    fn send(&self, c: Command) -> Result<()> {
        self.cmd.try_send(c).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => MediaError::SessionBusy,
            mpsc::error::TrySendError::Closed(_) => MediaError::SessionClosed,
        })
    }

    fn local(
        &self,
        port: u16,
        version: u64,
        codecs: Vec<Codec>,
        te: Option<u8>,
        direction: Direction,
    ) -> String {
        LocalSdp {
            session_id: self.sdp_session_id,
            session_version: version,
            address: self.advertised_ip,
            port,
            codecs,
            telephone_event: te,
            direction,
            ptime: 20,
        }
        .render()
    }

    fn configure(&mut self, leg: LegKind, n: &Negotiated) -> Result<()> {
        let sdp_remote = match leg {
            LegKind::Caller => &mut self.caller_sdp_remote,
            LegKind::Agent => &mut self.agent_sdp_remote,
        };
        // A hold SDP (no address) keeps the current remote; only a new address re-latches.
        let remote = match n.remote {
            Some(addr) if Some(addr) != *sdp_remote => {
                *sdp_remote = Some(addr);
                Some(addr)
            }
            _ => None,
        };
        self.send(Command::SetLeg(
            leg,
            LegParams {
                remote,
                codec: n.codec,
                telephone_event: n.telephone_event,
            },
        ))
    }

    /// Answers the caller's (trunk's) offer: picks the first G.711 law it offered, mirrors
    /// its direction, keeps its telephone-event payload type, and points the caller leg at it.
    /// Also for re-INVITE/UPDATE offers: a new address, port or codec re-points the leg.
    pub fn caller_answer(&mut self, offer: &Sdp) -> Result<String> {
        let n = offer.negotiate(&OFFERED_CODECS)?;
        self.configure(LegKind::Caller, &n)?;
        self.caller_sdp_version += 1;
        let direction = answer_direction(offer, &n);
        let (port, version) = (self.caller_port, self.caller_sdp_version);
        Ok(self.local(port, version, vec![n.codec], n.telephone_event, direction))
    }

    /// Switchboard's offer on the caller leg (an INVITE without SDP, or an outbound call).
    pub fn caller_offer(&mut self) -> String {
        self.caller_sdp_version += 1;
        self.local(
            self.caller_port,
            self.caller_sdp_version,
            OFFERED_CODECS.to_vec(),
            Some(TELEPHONE_EVENT_PT),
            Direction::SendRecv,
        )
    }

    /// Applies the caller's answer to [`Session::caller_offer`].
    pub fn set_caller_remote(&mut self, answer: &Sdp) -> Result<Negotiated> {
        let n = answer.negotiate(&OFFERED_CODECS)?;
        self.configure(LegKind::Caller, &n)?;
        Ok(n)
    }

    /// Switchboard's offer to the agent: PCMU 0, PCMA 8, telephone-event 101, ptime 20.
    pub fn agent_offer(&mut self) -> String {
        self.agent_sdp_version += 1;
        self.local(
            self.agent_port,
            self.agent_sdp_version,
            OFFERED_CODECS.to_vec(),
            Some(TELEPHONE_EVENT_PT),
            Direction::SendRecv,
        )
    }

    /// Applies the agent's answer to [`Session::agent_offer`].
    pub fn set_agent_remote(&mut self, answer: &Sdp) -> Result<Negotiated> {
        let n = answer.negotiate(&OFFERED_CODECS)?;
        self.configure(LegKind::Agent, &n)?;
        Ok(n)
    }

    /// Answers an offer from the agent (a re-INVITE: hold or resume). The answer mirrors the
    /// offered direction; the mode is not changed here — call [`Session::hold`] with
    /// [`Sdp::is_hold`] of the offer.
    pub fn agent_answer(&mut self, offer: &Sdp) -> Result<String> {
        let n = offer.negotiate(&OFFERED_CODECS)?;
        self.configure(LegKind::Agent, &n)?;
        self.agent_sdp_version += 1;
        let direction = answer_direction(offer, &n);
        let (port, version) = (self.agent_port, self.agent_sdp_version);
        Ok(self.local(port, version, vec![n.codec], n.telephone_event, direction))
    }

    /// Caller hears the hold-music loop (resuming where it stopped); agent leg idle.
    pub fn play_music(&self) -> Result<()> {
        self.send(Command::Mode(ModeCmd::Music))
    }

    /// Caller hears `files` in order, then music. The receiver tells how the run ended.
    /// Relative paths are taken under the sounds directory. Every file is loaded (and
    /// checked) before anything changes; files are cached for the life of the [`crate::Media`].
    pub fn play_prompts(&self, files: Vec<PathBuf>) -> Result<oneshot::Receiver<PromptEnd>> {
        let samples = files
            .iter()
            .map(|f| self.sounds.get(&self.sounds_dir.join(f)))
            .collect::<Result<Vec<_>>>()?;
        let (tx, rx) = oneshot::channel();
        self.send(Command::Mode(ModeCmd::Prompts(samples, tx)))?;
        Ok(rx)
    }

    /// Relays audio both ways between caller and agent (transcoding if their laws differ,
    /// telephone-events passed through).
    pub fn bridge(&self) -> Result<()> {
        self.send(Command::Mode(ModeCmd::Bridge))
    }

    /// `true`: the agent put the caller on hold — the caller hears music and nothing is
    /// relayed either way. `false`: back to bridged.
    pub fn hold(&self, held: bool) -> Result<()> {
        self.send(Command::Mode(ModeCmd::Hold(held)))
    }

    /// Starts recording to `path` (stereo, caller left, agent right); the file is created
    /// now, so a bad path is reported here.
    pub fn start_recording(&mut self, path: &Path) -> Result<()> {
        let writer = RecordingWriter::create(path)?;
        self.send(Command::StartRecording(writer))?;
        self.recording = Some(path.to_path_buf());
        Ok(())
    }

    /// Stops the recording and waits until the file is complete; returns its path.
    pub async fn stop_recording(&mut self) -> Result<Option<PathBuf>> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::StopRecording(tx))?;
        rx.await.map_err(|_| MediaError::SessionClosed)?
    }

    /// The caller's DTMF digits (RFC 4733), once per press. Can be taken once.
    pub fn dtmf_events(&mut self) -> Option<mpsc::Receiver<char>> {
        self.dtmf.take()
    }

    /// Counters right now.
    pub fn stats(&self) -> SessionStats {
        SessionStats {
            caller: self.counters.caller.snapshot(),
            agent: self.counters.agent.snapshot(),
            dtmf_digits: self
                .counters
                .dtmf_digits
                .load(std::sync::atomic::Ordering::Relaxed),
            recording: self.recording.clone(),
        }
    }

    /// Stops the media task, finishes the recording, frees the ports; returns final counters.
    pub async fn close(mut self) -> SessionStats {
        let (tx, rx) = oneshot::channel();
        if self.send(Command::Close(tx)).is_ok() {
            let _ = rx.await;
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.stats()
    }
}

/// The direction answering `offer` (RFC 3264 §6.1): hold (`sendonly`) is answered
/// `recvonly`, `inactive` and the RFC 2543 `c=0.0.0.0` hold `inactive`.
fn answer_direction(offer: &Sdp, n: &Negotiated) -> Direction {
    if offer.is_hold() && n.direction == Direction::SendRecv {
        Direction::Inactive
    } else {
        n.direction.answer()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

struct Sockets {
    caller_rtp: UdpSocket,
    caller_rtcp: UdpSocket,
    agent_rtp: UdpSocket,
    agent_rtcp: UdpSocket,
    _leases: (PortLease, PortLease),
}

impl Sockets {
    fn new(caller: PortPair, agent: PortPair) -> Result<Self> {
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
    Held,
}

impl Mode {
    fn generates(self) -> bool {
        matches!(self, Mode::Music | Mode::Prompt | Mode::Held)
    }
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

struct Core {
    epoch: tokio::time::Instant,
    mode: Mode,
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
    fn new(
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
        if !self.mode.generates() {
            return None;
        }
        self.epoch.checked_add(self.pacer.next_due())
    }

    fn end_prompts(&mut self, how: PromptEnd) {
        self.prompts.clear();
        if let Some(tx) = self.prompt_done.take() {
            let _ = tx.send(how);
        }
    }

    fn set_mode(&mut self, cmd: ModeCmd) {
        let now = self.now();
        let before = self.mode;
        let after = match cmd {
            ModeCmd::Music => Mode::Music,
            ModeCmd::Prompts(files, done) => {
                self.end_prompts(PromptEnd::Interrupted);
                // Stored reversed so the next file is popped from the end.
                self.prompts = files.into_iter().rev().map(Player::new).collect();
                self.prompt_done = Some(done);
                Mode::Prompt
            }
            ModeCmd::Bridge | ModeCmd::Hold(false) => Mode::Bridged,
            ModeCmd::Hold(true) => Mode::Held,
        };
        if after != Mode::Prompt {
            self.end_prompts(PromptEnd::Interrupted);
        }
        if after.generates() && !before.generates() {
            self.pacer = Pacer::new(now, FRAME);
        }
        if after != before {
            self.caller.out.switch_source();
            self.agent.out.switch_source();
            tracing::debug!(?before, ?after, "media mode");
        }
        self.mode = after;
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
            if !self.mode.generates() || self.pacer.next_due() > now {
                break;
            }
            self.next_frame();
            let codec = self.caller.codec;
            self.payload.clear();
            codec.encode(&self.frame, &mut self.payload);
            let stamp = self
                .caller
                .out
                .next_generated(self.pacer.next_due(), FRAME_SAMPLES as u32);
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
                self.transmit(LegKind::Caller, sockets);
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
        let relay = self.mode == Mode::Bridged;
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

async fn run(mut core: Core, sockets: Sockets, mut cmd_rx: mpsc::Receiver<Command>) {
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
