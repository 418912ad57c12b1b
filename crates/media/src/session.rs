//! The per-call media session handle ([`Session`]): SDP offers and answers for both legs,
//! and the commands that move the call's media between silence, music, prompts, bridged and
//! held. The relay thread that owns the sockets and does the relaying is in [`crate::relay`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::clock;
use crate::error::{MediaError, Result};
use crate::g711::Codec;
use crate::ports::PortPair;
use crate::recording::RecordingWriter;
use crate::relay::{Command, Core, Entry, LegKind, LegParams, ModeCmd, Relay, Shard, Sockets};
use crate::sdp::{Direction, LocalSdp, Negotiated, Sdp};
use crate::sounds::Samples;
use crate::stats::{SessionCounters, SessionStats};

/// Telephone-event payload type Switchboard offers.
pub const TELEPHONE_EVENT_PT: u8 = 101;
/// Codecs Switchboard offers, in preference order.
pub const OFFERED_CODECS: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

/// How a [`Session::play_prompts`] run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptEnd {
    /// Every file was played; the caller is back on music.
    Finished,
    /// Another mode was requested before the end.
    Interrupted,
}

/// Shared pieces a session needs from [`crate::Media`].
#[derive(Debug)]
pub(crate) struct SessionContext {
    pub advertised_ip: std::net::IpAddr,
    pub music: Samples,
    pub sounds: Arc<crate::sounds::SoundCache>,
    pub sounds_dir: PathBuf,
    pub relay: Arc<Relay>,
}

/// One call's media: a caller leg and an agent leg, each with its own RTP/RTCP port pair.
///
/// Create with [`crate::Media::open_session`]. A new session is silent; the call controller
/// moves it between music, prompts, bridged and held. Dropping it closes its sockets and
/// frees both port pairs (a recording in progress is still finalised); [`Session::close`]
/// does the same and waits for it.
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
    /// The relay thread that drives this session, and the session's id there.
    shard: Arc<Shard>,
    id: u64,
    closed: bool,
    sdp_session_id: u64,
    caller_sdp_version: u64,
    agent_sdp_version: u64,
    caller_sdp_remote: Option<SocketAddr>,
    agent_sdp_remote: Option<SocketAddr>,
    recording: Option<PathBuf>,
    opened_at: std::time::Instant,
}

impl Session {
    pub(crate) fn spawn(
        call_id: &str,
        ctx: SessionContext,
        caller: PortPair,
        agent: PortPair,
    ) -> Result<Session> {
        let caller_port = caller.port();
        let agent_port = agent.port();
        let sockets = Sockets::new(caller, agent)?;
        let counters = Arc::new(SessionCounters::default());
        let (cmd_tx, cmd_rx) = mpsc::channel(32);
        let (dtmf_tx, dtmf_rx) = mpsc::channel(64);
        let seed = clock::seed(call_id);
        let opened_at = clock::now();
        let core = Core::new(opened_at, seed, ctx.music, Arc::clone(&counters), dtmf_tx);
        let span = tracing::debug_span!("media", call_id, caller_port, agent_port);
        let (shard, id) = ctx.relay.assign();
        shard.add(Entry::new(id, core, sockets, cmd_rx, span))?;
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
            shard,
            id,
            closed: false,
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
        self.opened_at
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
        })?;
        self.shard.commands(self.id);
        Ok(())
    }

    fn local(
        &self,
        port: u16,
        version: u64,
        codecs: Vec<Codec>,
        te: Option<u8>,
        direction: Direction,
        rtcp_mux: bool,
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
            rtcp_mux,
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
                rtcp_mux: n.rtcp_mux,
            },
        ))
    }

    /// Answers the caller's (trunk's) offer: picks the first G.711 law it offered, mirrors
    /// its direction, keeps its telephone-event payload type, and points the caller leg at it.
    /// Also for re-INVITE/UPDATE offers: a new address, port or codec re-points the leg.
    pub fn caller_answer(&mut self, offer: &Sdp) -> Result<String> {
        self.answer(LegKind::Caller, offer)
    }

    /// Switchboard's offer on the caller leg (an INVITE without SDP, or an outbound call).
    pub fn caller_offer(&mut self) -> String {
        self.offer(LegKind::Caller)
    }

    /// Applies the caller's answer to [`Session::caller_offer`].
    pub fn set_caller_remote(&mut self, answer: &Sdp) -> Result<Negotiated> {
        let n = answer.negotiate(&OFFERED_CODECS)?;
        self.configure(LegKind::Caller, &n)?;
        Ok(n)
    }

    /// Switchboard's offer to the agent: PCMU 0, PCMA 8, telephone-event 101, ptime 20.
    pub fn agent_offer(&mut self) -> String {
        self.offer(LegKind::Agent)
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
        self.answer(LegKind::Agent, offer)
    }

    /// Our port on `leg` and the next version of the SDP we send there.
    fn next_version(&mut self, leg: LegKind) -> (u16, u64) {
        let (port, version) = match leg {
            LegKind::Caller => (self.caller_port, &mut self.caller_sdp_version),
            LegKind::Agent => (self.agent_port, &mut self.agent_sdp_version),
        };
        *version += 1;
        (port, *version)
    }

    /// Answers `offer` on `leg` (see [`Session::caller_answer`]).
    fn answer(&mut self, leg: LegKind, offer: &Sdp) -> Result<String> {
        let n = offer.negotiate(&OFFERED_CODECS)?;
        self.configure(leg, &n)?;
        let direction = answer_direction(offer, &n);
        let (port, version) = self.next_version(leg);
        Ok(self.local(
            port,
            version,
            vec![n.codec],
            n.telephone_event,
            direction,
            n.rtcp_mux,
        ))
    }

    /// Our offer on `leg`: PCMU, PCMA, telephone-event, RTCP multiplexing.
    fn offer(&mut self, leg: LegKind) -> String {
        let (port, version) = self.next_version(leg);
        self.local(
            port,
            version,
            OFFERED_CODECS.to_vec(),
            Some(TELEPHONE_EVENT_PT),
            Direction::SendRecv,
            true,
        )
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

    /// `true`: the agent put the caller on hold — the caller hears music, nothing is
    /// relayed either way and nothing is sent to the agent. `false`: back to bridged.
    pub fn hold(&self, held: bool) -> Result<()> {
        self.send(Command::Mode(ModeCmd::Hold(LegKind::Agent, held)))
    }

    /// `true`: the caller (trunk) put the call on hold — nothing is sent to the caller
    /// until they resume; once bridged, the agent hears music meanwhile and nothing is
    /// relayed either way. `false`: the caller resumed (back to music, or to bridged).
    pub fn caller_hold(&self, held: bool) -> Result<()> {
        self.send(Command::Mode(ModeCmd::Hold(LegKind::Caller, held)))
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

    /// Closes the sockets, frees the ports, finishes the recording; returns final counters.
    pub async fn close(mut self) -> SessionStats {
        let (tx, rx) = oneshot::channel();
        if self.send(Command::Close(tx)).is_ok() {
            let _ = rx.await;
            self.closed = true;
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
        if !self.closed {
            self.shard.remove(self.id);
        }
    }
}
