//! Switchboard's media plane: the RTP relay that anchors every call's audio.
//!
//! What it is: an RTP port pool ([`ports`]), the source rule of each leg ([`source`]: the
//! SDP address wins, a NAT source is latched only while it is silent, strangers are dropped)
//! and relaying between a call's customer (trunk) leg and agent leg, G.711 µ-law/A-law with transcoding
//! ([`g711`]), RFC 4733 telephone-events passed through and detected ([`dtmf`]), SDP offer /
//! answer for those codecs ([`sdp`]), music on hold and prompts from 8 kHz WAV files paced
//! at 20 ms ([`sounds`], [`stream`]), and stereo call recording ([`recording`]). A few relay
//! threads (one per core, epoll over every call's sockets) drive the calls ([`Session`] is
//! the handle of one).
//!
//! What it is not: no SIP (the call controller in `switchboard` decides when to answer,
//! bridge or hold and carries the SDP), no jitter buffer or mixing (packets are relayed as
//! they come), no SRTP/ICE/WebRTC yet, no RTCP generation (RTCP is received, counted and
//! dropped), no Prometheus (counters are plain numbers: [`Media::totals`],
//! [`Session::stats`]). Only [`relay`] (the threads behind every [`Session`]) and [`ports`] touch
//! sockets; [`rtp`], [`g711`],
//! [`dtmf`], [`sdp`], [`source`], [`stream`] and the aligner in [`recording`] are pure and
//! tokio-free.
//!
//! # Use
//! ```no_run
//! # async fn demo() -> switchboard_media::Result<()> {
//! use switchboard_media::{Media, MediaConfig, Sdp};
//! let media = Media::new(MediaConfig {
//!     ports: (20000, 29999),
//!     bind_ip: "127.0.0.1".parse().unwrap(),
//!     advertised_ip: "127.0.0.1".parse().unwrap(),
//!     sounds_dir: "sounds".into(),
//! })?;
//! let mut session = media.open_session("call-id@host")?;
//! # let invite_body = "";
//! let answer = session.caller_answer(&Sdp::parse(invite_body)?)?; // 200 OK body to the trunk
//! session.play_prompts(vec!["welcome.wav".into()])?;            // then music
//! let mut digits = session.dtmf_events().expect("taken once");
//! let offer = session.agent_offer();                             // INVITE body to the agent
//! # let agent_200_body = "";
//! session.set_agent_remote(&Sdp::parse(agent_200_body)?)?;
//! session.bridge()?;
//! session.start_recording("recordings/call.wav".as_ref())?;
//! let stats = session.close().await;                            // ports freed, WAV complete
//! # let _ = (answer, offer, digits.try_recv(), stats);
//! # Ok(()) }
//! ```

mod clock;
pub mod dtmf;
mod error;
pub mod g711;
pub mod ports;
pub mod recording;
mod relay;
pub mod rtp;
pub mod sdp;
mod session;
pub mod sounds;
pub mod source;
mod stats;
pub mod stream;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use error::{MediaError, Result};
pub use g711::Codec;
pub use sdp::{Direction, Negotiated, Sdp};
pub use session::{OFFERED_CODECS, PromptEnd, Session, TELEPHONE_EVENT_PT};
pub use stats::{LegStats, MediaTotals, SessionStats};

use ports::PortPool;
use relay::Relay;
use sounds::SoundCache;
use stats::TotalCounters;

/// Media settings (from `[media]` and `[sip] advertised_address`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// Inclusive RTP port range `[first, last]` (`[media] rtp_ports`).
    pub ports: (u16, u16),
    /// Address the RTP sockets bind to.
    pub bind_ip: IpAddr,
    /// Address written into SDP (`c=`, `o=`).
    pub advertised_ip: IpAddr,
    /// Directory of the prompt and music WAV files (8 kHz mono 16-bit).
    pub sounds_dir: PathBuf,
}

/// The media plane of one server: port pool, sound cache and totals. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Media {
    cfg: Arc<MediaConfig>,
    pool: Arc<PortPool>,
    sounds: Arc<SoundCache>,
    music: sounds::Samples,
    totals: Arc<TotalCounters>,
    relay: Arc<Relay>,
}

impl Media {
    /// Validates the port range, loads the hold music (`sounds_dir/music.wav`) and starts
    /// one relay thread per core; binds nothing yet.
    pub fn new(cfg: MediaConfig) -> Result<Media> {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Media::with_relay_threads(cfg, cores)
    }

    /// As [`Media::new`] with `threads` relay threads (at least one).
    pub fn with_relay_threads(cfg: MediaConfig, threads: usize) -> Result<Media> {
        let pool = PortPool::new(cfg.ports.0, cfg.ports.1, cfg.bind_ip)?;
        let sounds = Arc::new(SoundCache::default());
        let music = sounds.get(&cfg.sounds_dir.join(sounds::MUSIC))?;
        let totals = Arc::new(TotalCounters::default());
        let relay = Arc::new(Relay::new(threads, &totals)?);
        Ok(Media {
            cfg: Arc::new(cfg),
            pool,
            sounds,
            music,
            totals,
            relay,
        })
    }

    /// Allocates the caller and agent port pairs and hands the call to a relay thread.
    /// Fails with [`MediaError::PortsExhausted`] when the range is used up.
    pub fn open_session(&self, call_id: &str) -> Result<Session> {
        let caller = self.pool.allocate()?;
        let agent = self.pool.allocate()?;
        let ctx = session::SessionContext {
            advertised_ip: self.cfg.advertised_ip,
            music: self.music.clone(),
            relay: Arc::clone(&self.relay),
            sounds: Arc::clone(&self.sounds),
            sounds_dir: self.cfg.sounds_dir.clone(),
        };
        let s = Session::spawn(call_id, ctx, caller, agent)?;
        stats::bump(&self.totals.sessions_opened, 1);
        Ok(s)
    }

    /// A port pair of the RTP range for a leg that is not a session's (the WebRTC leg of
    /// `switchboard-webrtc`); its ports return to the pool when the pair is dropped.
    pub fn allocate_ports(&self) -> Result<ports::PortPair> {
        self.pool.allocate()
    }

    /// Port pairs of the RTP range: (free, in use) now. A session takes two; a port another
    /// process holds counts as free here (allocation skips it).
    pub fn port_pairs(&self) -> (usize, usize) {
        let in_use = self.pool.in_use();
        (self.pool.capacity().saturating_sub(in_use), in_use)
    }

    /// Totals across all sessions since start.
    pub fn totals(&self) -> MediaTotals {
        self.totals.snapshot(self.pool.in_use())
    }

    /// The configuration in force.
    pub fn config(&self) -> &MediaConfig {
        &self.cfg
    }

    /// Path of a shipped sound, e.g. `media.sound("welcome.wav")`.
    pub fn sound(&self, name: &str) -> PathBuf {
        self.cfg.sounds_dir.join(name)
    }

    /// Prompt list announcing a queue position and expected wait (see
    /// [`sounds::announce_position`]).
    pub fn announce_position(&self, position: u32, wait_minutes: u32) -> Vec<PathBuf> {
        sounds::announce_position(&self.cfg.sounds_dir, position, wait_minutes)
    }

    /// Loads (or fetches from cache) and checks one sound file.
    pub fn preload(&self, path: &Path) -> Result<()> {
        self.sounds.get(&self.cfg.sounds_dir.join(path)).map(|_| ())
    }
}
