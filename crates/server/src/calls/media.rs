//! Call control's view of the media plane: one [`CallMedia`] per call wraps a
//! `switchboard_media::Session` (caller leg + agent leg) with the few operations the B2BUA
//! needs, and turns media errors into SIP answers.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;
use switchboard_media::{Media, MediaConfig, MediaError, Sdp, Session};
use switchboard_webrtc::Gateway;
use tracing::{debug, warn};

use crate::config::Config;

/// Why a call's media could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The caller's SDP is missing, malformed or offers no codec we speak.
    #[error("unusable SDP offer: {0}")]
    Offer(String),
    /// No RTP ports left, or a socket could not be bound.
    #[error("media resources: {0}")]
    Resources(String),
}

impl OpenError {
    /// 488 for a bad offer, 503 otherwise.
    pub fn is_offer_problem(&self) -> bool {
        matches!(self, OpenError::Offer(_))
    }
}

/// The media plane of the server.
#[derive(Debug, Clone)]
pub struct MediaSetup {
    media: Media,
    sounds_dir: PathBuf,
    recording_dir: PathBuf,
    /// WebRTC agent legs running now (`switchboard_webrtc_sessions`).
    webrtc_live: Arc<AtomicUsize>,
}

/// Where the shipped prompts are: `[media] sounds_dir` when it exists, else the `sounds/`
/// directory of the source tree this binary was built from.
fn sounds_dir(config: &Config) -> PathBuf {
    let configured = config.media.sounds_dir.clone();
    if configured.is_dir() {
        return configured;
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sounds");
    if configured.is_relative() && built.is_dir() {
        return built;
    }
    configured
}

impl MediaSetup {
    pub fn new(config: &Config) -> anyhow::Result<MediaSetup> {
        // Never a guess: a host name must have been resolved when the file was loaded.
        let advertised_ip: IpAddr = config.advertised_ip().with_context(|| {
            format!(
                "sip.advertised_address {:?} is not resolved to an IP address",
                config.sip.advertised_address
            )
        })?;
        let bind_ip = config
            .listen_addrs()
            .first()
            .map_or(advertised_ip, |l| l.addr.ip());
        let sounds_dir = sounds_dir(config);
        let media = Media::new(MediaConfig {
            ports: (config.media.rtp_ports[0], config.media.rtp_ports[1]),
            bind_ip,
            advertised_ip,
            sounds_dir: sounds_dir.clone(),
        })
        .with_context(|| format!("media.sounds_dir {}", sounds_dir.display()))?;
        Ok(MediaSetup {
            media,
            sounds_dir,
            recording_dir: config.recording.dir.clone(),
            webrtc_live: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// WebRTC agent legs running now.
    pub fn webrtc_sessions(&self) -> usize {
        self.webrtc_live.load(Ordering::Relaxed)
    }

    /// Port pairs of the RTP range: (free, in use) now.
    pub fn port_pairs(&self) -> (usize, usize) {
        self.media.port_pairs()
    }

    /// Packet totals since start and the port pairs in use now.
    pub fn totals(&self) -> switchboard_media::MediaTotals {
        self.media.totals()
    }

    /// Opens the media of a new call and answers the caller's offer; an INVITE without SDP
    /// (late offer) gets our offer instead ([`CallMedia::awaits_answer`]), answered in the
    /// ACK.
    pub fn open(&self, call_id: &str, caller_offer: &[u8]) -> Result<CallMedia, OpenError> {
        let offer = if caller_offer.is_empty() {
            None
        } else {
            Some(Sdp::parse_bytes(caller_offer).map_err(|e| OpenError::Offer(e.to_string()))?)
        };
        let mut session = self.media.open_session(call_id).map_err(|e| match e {
            MediaError::PortsExhausted { .. } | MediaError::Io { .. } => {
                OpenError::Resources(e.to_string())
            }
            other => OpenError::Resources(other.to_string()),
        })?;
        let (sdp, awaits_answer) = match offer {
            Some(offer) => (
                session
                    .caller_answer(&offer)
                    .map_err(|e| OpenError::Offer(e.to_string()))?,
                false,
            ),
            None => (session.caller_offer(), true),
        };
        Ok(CallMedia {
            session: Some(session),
            awaits_answer,
            caller_sdp: sdp.into_bytes(),
            sounds_dir: self.sounds_dir.clone(),
            recording_dir: self.recording_dir.clone(),
            media: self.media.clone(),
            webrtc_forks: Vec::new(),
            webrtc: None,
            webrtc_live: Arc::clone(&self.webrtc_live),
            agent_webrtc: false,
            agent_awaits_answer: false,
        })
    }
}

/// Packet counts of a finished call's media.
#[derive(Debug, Clone, Default)]
pub struct CallMediaStats {
    /// RTP packets from the caller (trunk) / sent to the caller.
    pub caller_in: u64,
    pub caller_out: u64,
    /// RTP packets from the agent / sent to the agent.
    pub agent_in: u64,
    pub agent_out: u64,
    pub recording: Option<PathBuf>,
}

/// How long ago each leg of a call last sent RTP (`None`: never, or the media is closed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpAges {
    pub caller: Option<std::time::Duration>,
    pub agent: Option<std::time::Duration>,
}

/// The media of one call.
#[derive(Debug)]
pub struct CallMedia {
    session: Option<Session>,
    /// Our SDP on the caller leg is an offer still waiting for its answer.
    awaits_answer: bool,
    caller_sdp: Vec<u8>,
    sounds_dir: PathBuf,
    recording_dir: PathBuf,
    media: Media,
    /// The WebRTC legs ringing browser contacts, one per INVITE (fork), keyed by that
    /// INVITE's Call-ID: each has its own ports, ICE credentials, DTLS and SRTP.
    webrtc_forks: Vec<(String, Gateway)>,
    /// The WebRTC leg of the browser that answered.
    webrtc: Option<Gateway>,
    webrtc_live: Arc<AtomicUsize>,
    /// The bridged agent answered over WebRTC.
    agent_webrtc: bool,
    /// Our last SDP to the bridged agent was an offer (a re-INVITE of theirs without SDP)
    /// whose answer comes in the ACK.
    agent_awaits_answer: bool,
}

impl CallMedia {
    /// Our current SDP on the caller leg (an answer, or an offer when
    /// [`CallMedia::awaits_answer`]).
    pub fn caller_sdp(&self) -> Vec<u8> {
        self.caller_sdp.clone()
    }

    /// Our last SDP on the caller leg was an offer not yet answered.
    pub fn awaits_answer(&self) -> bool {
        self.awaits_answer
    }

    /// The caller's answer to our offer (in the ACK of a late-offer INVITE, or of a
    /// re-INVITE without SDP): points the caller leg at it (address, port, codec). Returns
    /// whether the answer holds the call (`sendonly`, `inactive`, `c=0.0.0.0`).
    pub fn caller_answered(&mut self, answer: &[u8]) -> Result<bool, String> {
        let Some(s) = self.session.as_mut() else {
            return Err("media already closed".into());
        };
        let sdp = Sdp::parse_bytes(answer).map_err(|e| e.to_string())?;
        s.set_caller_remote(&sdp).map_err(|e| e.to_string())?;
        self.awaits_answer = false;
        Ok(sdp.is_hold())
    }

    /// A new offer from the caller (re-INVITE or UPDATE): the caller leg is re-pointed at
    /// it (address, port, codec) and our answer returned.
    pub fn caller_reoffer(&mut self, offer: &[u8]) -> Result<Vec<u8>, String> {
        let Some(s) = self.session.as_mut() else {
            return Err("media already closed".into());
        };
        let sdp = Sdp::parse_bytes(offer).map_err(|e| e.to_string())?;
        let answer = s.caller_answer(&sdp).map_err(|e| e.to_string())?;
        self.caller_sdp = answer.into_bytes();
        self.awaits_answer = false;
        Ok(self.caller_sdp.clone())
    }

    /// A fresh offer of ours on the caller leg (a re-INVITE without SDP).
    pub fn caller_new_offer(&mut self) -> Vec<u8> {
        let Some(s) = self.session.as_mut() else {
            return Vec::new();
        };
        self.caller_sdp = s.caller_offer().into_bytes();
        self.awaits_answer = true;
        self.caller_sdp.clone()
    }

    /// Hold music for the caller.
    pub fn play_music(&self) {
        if let Some(s) = &self.session
            && let Err(e) = s.play_music()
        {
            warn!(call_id = s.call_id(), "music: {e}");
        }
    }

    /// "You are number N in the queue; expected waiting time M minutes", then the prompts
    /// `then` (files under the sounds directory), then music.
    pub fn announce_position(&self, position: usize, wait_minutes: u64, then: &[&str]) {
        let Some(s) = &self.session else { return };
        let mut files = switchboard_media::sounds::announce_position(
            &self.sounds_dir,
            u32::try_from(position).unwrap_or(u32::MAX),
            u32::try_from(wait_minutes).unwrap_or(u32::MAX),
        );
        files.extend(then.iter().map(|f| self.sounds_dir.join(f)));
        if let Err(e) = s.play_prompts(files) {
            warn!(call_id = s.call_id(), "announcement: {e}");
        }
    }

    /// A prompt (file under the sounds directory), then hold music.
    pub fn play_prompt_then_music(&self, file: &str) {
        let Some(s) = &self.session else { return };
        if let Err(e) = s.play_prompts(vec![self.sounds_dir.join(file)]) {
            warn!(call_id = s.call_id(), "prompt {file}: {e}");
        }
    }

    /// Prompts (files under the sounds directory) one after the other, then hold music.
    pub fn play_prompts(&self, files: &[&str]) {
        let Some(s) = &self.session else { return };
        let paths = files.iter().map(|f| self.sounds_dir.join(f)).collect();
        if let Err(e) = s.play_prompts(paths) {
            warn!(call_id = s.call_id(), "prompts {files:?}: {e}");
        }
    }

    /// The caller's DTMF digits (once per call).
    pub fn take_dtmf(&mut self) -> Option<tokio::sync::mpsc::Receiver<char>> {
        self.session.as_mut().and_then(Session::dtmf_events)
    }

    /// Our offer to an agent.
    pub fn agent_offer_sdp(&mut self) -> Vec<u8> {
        self.session
            .as_mut()
            .map(|s| s.agent_offer().into_bytes())
            .unwrap_or_default()
    }

    /// Our offer to an agent phone reached over `transport` by the INVITE whose Call-ID is
    /// `fork`: phones on SIP over WebSocket are browsers and get a WebRTC offer of their
    /// own, every other phone the plain one.
    pub fn agent_offer_for(
        &mut self,
        transport: switchboard_sip::Transport,
        fork: &str,
    ) -> Vec<u8> {
        use switchboard_sip::Transport;
        if matches!(transport, Transport::Ws | Transport::Wss) {
            self.webrtc_offer_sdp(fork)
        } else {
            self.agent_offer_sdp()
        }
    }

    /// Our offer to a browser agent (WebRTC: ICE-lite, DTLS-SRTP) rung by the INVITE `fork`:
    /// a WebRTC leg of its own, which feeds the relay's agent leg once that browser answers;
    /// the plain offer when no leg can start.
    fn webrtc_offer_sdp(&mut self, fork: &str) -> Vec<u8> {
        let Some(session) = self.session.as_ref() else {
            return Vec::new();
        };
        let cfg = self.media.config();
        let relay_agent = SocketAddr::new(cfg.bind_ip, session.agent_port());
        let started = self
            .media
            .allocate_ports()
            .map_err(|e| e.to_string())
            .and_then(|pair| {
                Gateway::spawn(
                    pair,
                    cfg.advertised_ip,
                    relay_agent,
                    Arc::clone(&self.webrtc_live),
                    webrtc_seed(fork),
                )
                .map_err(|e| e.to_string())
            });
        match started {
            Ok(gateway) => {
                let offer = gateway.offer().as_bytes().to_vec();
                self.webrtc_forks.push((fork.to_owned(), gateway));
                offer
            }
            Err(e) => {
                warn!(
                    call_id = session.call_id(),
                    "WebRTC leg not started ({e}); plain RTP offered"
                );
                self.agent_offer_sdp()
            }
        }
    }

    /// The INVITE `fork` failed or was cancelled: its WebRTC leg (if any) closes and its
    /// ports go back to the pool.
    pub fn drop_fork(&mut self, fork: &str) {
        self.webrtc_forks.retain(|(f, _)| f != fork);
    }

    /// Our offer for the bridged agent's re-INVITE without SDP: a browser's comes from its
    /// WebRTC leg. The answer comes in the ACK ([`CallMedia::agent_answered`]).
    pub fn agent_new_offer(&mut self) -> Result<Vec<u8>, String> {
        let offer = match &self.webrtc {
            Some(gateway) if self.agent_webrtc => gateway
                .new_offer()
                .map(String::into_bytes)
                .map_err(|e| e.to_string())?,
            _ => self.agent_offer_sdp(),
        };
        self.agent_awaits_answer = true;
        Ok(offer)
    }

    /// Our last SDP to the bridged agent was an offer not yet answered.
    pub fn agent_awaits_answer(&self) -> bool {
        self.agent_awaits_answer
    }

    /// The agent leg's kind for the API: `webrtc` once a browser answered, else `rtp`.
    pub fn agent_media(&self) -> &'static str {
        if self.agent_webrtc { "webrtc" } else { "rtp" }
    }

    /// The agent answered the INVITE `fork` with `answer`: point the agent leg at it,
    /// bridge, and start the recording when `record_as` names the call (queue with
    /// `record = true`). The WebRTC legs of the other forks close.
    pub fn bridge_agent(
        &mut self,
        fork: &str,
        answer: &[u8],
        record_as: Option<&str>,
    ) -> Result<(), String> {
        let Some(s) = self.session.as_mut() else {
            return Err("media already closed".into());
        };
        let winner = self
            .webrtc_forks
            .iter()
            .position(|(f, _)| f == fork)
            .map(|i| self.webrtc_forks.swap_remove(i).1);
        // The losing forks' legs close now (DTLS close, ports back).
        self.webrtc_forks.clear();
        // A plain answer on a browser's flow (a SIP phone on WebSocket) needs no leg.
        self.webrtc = winner.filter(|_| is_webrtc_sdp(answer));
        self.agent_webrtc = false;
        // A browser's answer goes to the WebRTC leg; the relay sees the leg as a plain phone.
        let webrtc_plain;
        let answer = match &self.webrtc {
            Some(gateway) if is_webrtc_sdp(answer) => {
                webrtc_plain = gateway
                    .accept_answer(&String::from_utf8_lossy(answer))
                    .map_err(|e| e.to_string())?;
                debug!(
                    call_id = s.call_id(),
                    "WebRTC answer taken; relay fed over the leg"
                );
                self.agent_webrtc = true;
                webrtc_plain.as_bytes()
            }
            _ => answer,
        };
        let applied = Sdp::parse_bytes(answer)
            .map_err(|e| e.to_string())
            .and_then(|sdp| {
                s.set_agent_remote(&sdp)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = s.bridge() {
            warn!(call_id = s.call_id(), "bridge: {e}");
        }
        if let Some(name) = record_as {
            let path = self.recording_dir.join(format!("{name}.wav"));
            if let Some(dir) = path.parent()
                && let Err(e) = std::fs::create_dir_all(dir)
            {
                warn!(dir = %dir.display(), "cannot create the recording directory: {e}");
            }
            match s.start_recording(&path) {
                Ok(()) => debug!(call_id = s.call_id(), path = %path.display(), "recording"),
                Err(e) => {
                    warn!(call_id = s.call_id(), path = %path.display(), "recording not started: {e}")
                }
            }
        }
        applied
    }

    /// The agent put the caller on hold (`true`) or took them back: while held, nothing is
    /// sent to the agent and the caller hears music.
    pub fn hold(&self, held: bool) {
        if let Some(s) = &self.session
            && let Err(e) = s.hold(held)
        {
            warn!(call_id = s.call_id(), "hold: {e}");
        }
    }

    /// The caller put the call on hold (`true`) or resumed it: while held, nothing is sent
    /// to the caller and a bridged agent hears music.
    pub fn caller_hold(&self, held: bool) {
        if let Some(s) = &self.session
            && let Err(e) = s.caller_hold(held)
        {
            warn!(call_id = s.call_id(), "caller hold: {e}");
        }
    }

    /// The bridged agent's answer to [`CallMedia::agent_new_offer`] (in the ACK): to the
    /// browser's WebRTC leg, or the relay's agent leg re-pointed for a plain phone (address,
    /// port, codec). Returns whether the answer holds the call.
    pub fn agent_answered(&mut self, answer: &[u8]) -> Result<bool, String> {
        self.agent_awaits_answer = false;
        if let Some(gateway) = self.webrtc.as_ref().filter(|_| self.agent_webrtc) {
            gateway
                .accept_answer(&String::from_utf8_lossy(answer))
                .map_err(|e| e.to_string())?;
            return Ok(is_hold_offer(answer));
        }
        let Some(s) = self.session.as_mut() else {
            return Err("media already closed".into());
        };
        let sdp = Sdp::parse_bytes(answer).map_err(|e| e.to_string())?;
        s.set_agent_remote(&sdp).map_err(|e| e.to_string())?;
        Ok(sdp.is_hold())
    }

    /// Our answer to an agent's re-INVITE offer (hold / resume / a new address). A browser's
    /// WebRTC offer (hold, resume, ICE restart) is answered by its WebRTC leg, which keeps
    /// feeding the relay; an error means the offer cannot be taken (488).
    pub fn agent_sdp_for_reinvite(&mut self, offer: &[u8]) -> Result<Vec<u8>, String> {
        self.agent_awaits_answer = false;
        if is_webrtc_sdp(offer) {
            let Some(gateway) = &self.webrtc else {
                return Err("a WebRTC offer from an agent who answered with plain RTP".into());
            };
            return gateway
                .answer_offer(&String::from_utf8_lossy(offer))
                .map(String::into_bytes)
                .map_err(|e| e.to_string());
        }
        let Some(s) = self.session.as_mut() else {
            return Ok(Vec::new());
        };
        match Sdp::parse_bytes(offer)
            .map_err(|e| e.to_string())
            .and_then(|sdp| s.agent_answer(&sdp).map_err(|e| e.to_string()))
        {
            Ok(answer) => Ok(answer.into_bytes()),
            Err(e) => {
                warn!(
                    call_id = s.call_id(),
                    "re-INVITE offer unusable ({e}); answering with our offer"
                );
                Ok(s.agent_offer().into_bytes())
            }
        }
    }

    /// Counters so far (the call goes on).
    pub fn stats(&self) -> CallMediaStats {
        self.session
            .as_ref()
            .map_or_else(CallMediaStats::default, |s| {
                let stats = s.stats();
                CallMediaStats {
                    caller_in: stats.caller.packets_in,
                    caller_out: stats.caller.packets_out,
                    agent_in: stats.agent.packets_in,
                    agent_out: stats.agent.packets_out,
                    recording: stats.recording.clone(),
                }
            })
    }

    /// Time since each leg's last RTP packet, as of `now` (the server clock's monotonic now).
    pub fn rtp_ages(&self, now: std::time::Instant) -> RtpAges {
        let Some(s) = &self.session else {
            return RtpAges::default();
        };
        let stats = s.stats();
        let opened = s.opened_at();
        let age = |at: Option<std::time::Duration>| {
            at.and_then(|d| opened.checked_add(d))
                .map(|t| now.saturating_duration_since(t))
        };
        RtpAges {
            caller: age(stats.caller.last_packet_in),
            agent: age(stats.agent.last_packet_in),
        }
    }

    /// Ends the media: counters now, ports freed and the recording finished in the background.
    pub fn close(&mut self) -> CallMediaStats {
        // Dropping the WebRTC legs sends the DTLS close and frees their ports.
        self.webrtc_forks.clear();
        self.webrtc = None;
        let Some(session) = self.session.take() else {
            return CallMediaStats::default();
        };
        let stats = session.stats();
        let result = CallMediaStats {
            caller_in: stats.caller.packets_in,
            caller_out: stats.caller.packets_out,
            agent_in: stats.agent.packets_in,
            agent_out: stats.agent.packets_out,
            recording: stats.recording.clone(),
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    let _ = session.close().await;
                });
            }
            // Outside the runtime (process exit): dropping the session frees its ports.
            Err(_) => drop(session),
        }
        result
    }
}

impl Drop for CallMedia {
    fn drop(&mut self) {
        if self.session.is_some() {
            self.close();
        }
    }
}

/// Whether an SDP body is a WebRTC one (DTLS-SRTP: `UDP/TLS/RTP/SAVPF`).
pub fn is_webrtc_sdp(body: &[u8]) -> bool {
    body.windows(8).any(|w| w.eq_ignore_ascii_case(b"UDP/TLS/"))
}

/// A per-call seed for the WebRTC leg's SSRCs.
fn webrtc_seed(call_id: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(call_id.as_bytes());
    h.finish()
}

/// Whether an SDP offer puts the other side on hold (sendonly, inactive or `c=0.0.0.0`).
pub fn is_hold_offer(body: &[u8]) -> bool {
    Sdp::parse_bytes(body).is_ok_and(|s| s.is_hold())
}
