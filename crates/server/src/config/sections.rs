//! The sections of the configuration file, one struct per table, with their defaults.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use switchboard_engine::default_chain;
pub use switchboard_engine::{Class, Purpose, Step, Strategy};

use super::DEMO_API_TOKEN;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    /// `udp:IP:PORT`, `tcp:IP:PORT`, `tls:IP:PORT` (needs `[tls]`), `ws:IP:PORT` and
    /// `wss:IP:PORT` (SIP over WebSocket for browser agents; `wss:` needs `[tls]`).
    pub listen: Vec<String>,
    /// Registrar domain and digest realm.
    pub domain: String,
    /// Written into Via / Contact / SDP (an IP address, or a host name resolved at start).
    pub advertised_address: String,
    /// The IP address SDP and ICE carry, once `Config::resolve_advertised_address` ran.
    #[serde(skip)]
    pub advertised_ip: Option<std::net::IpAddr>,
    /// RFC 3261 timer T1 (round-trip estimate), milliseconds.
    #[serde(default = "default_t1_ms")]
    pub t1_ms: u64,
    /// RFC 3261 timer T2 (maximum retransmit interval), milliseconds.
    #[serde(default = "default_t2_ms")]
    pub t2_ms: u64,
    /// RFC 3261 timer T4 (maximum message lifetime), milliseconds.
    #[serde(default = "default_t4_ms")]
    pub t4_ms: u64,
    /// Largest SIP message accepted on any transport, bytes.
    #[serde(default = "default_max_message_size")]
    pub max_message_size: usize,
    /// Most live SIP server transactions; beyond it new requests get `503` with
    /// `Retry-After`, while in-dialog requests (BYE, re-INVITE, REFER…) and CANCEL have a
    /// reserve of as many again and ACK needs none. A finished UDP transaction stays 64·T1
    /// (32 s at the default T1), two per call.
    #[serde(default = "default_max_transactions")]
    pub max_transactions: usize,
    /// The share of `max_transactions` one source address may hold with requests outside a
    /// dialog (0 < share ≤ 1); past it that source's new requests get `503` with
    /// `Retry-After`. 1 where a single SBC in front carries all traffic.
    #[serde(default = "default_source_share")]
    pub max_transactions_source_share: f64,
    /// Most messages waiting in each lane (priority, normal) between the sockets and the
    /// endpoint task; a full lane drops UDP datagrams (the peer retransmits) and holds back
    /// stream connections.
    #[serde(default = "default_queue_messages")]
    pub inbound_queue_messages: usize,
    /// Most bytes waiting in each lane, as above.
    #[serde(default = "default_queue_bytes")]
    pub inbound_queue_bytes: usize,
    /// Shortest registration accepted (`423 Interval Too Brief` below it).
    #[serde(default = "default_min_expires")]
    pub min_expires_s: u32,
    /// Longest registration granted (longer requests are shortened).
    #[serde(default = "default_max_expires")]
    pub max_expires_s: u32,
    /// How long a digest nonce stays valid before `stale=true`.
    #[serde(default = "default_nonce_lifetime")]
    pub nonce_lifetime_s: u32,
    /// Digest challenges offered to registering agents, in preference order (`MD5`,
    /// `SHA-256`). The default is MD5 alone: deployed softphones answer only the first
    /// challenge (SIPp) or reject a 401 that names an algorithm they do not know (baresip 1.0
    /// / libre). Add "SHA-256" for fleets that support RFC 8760.
    #[serde(default = "default_digest_algorithms")]
    pub digest_algorithms: Vec<String>,
    /// Most simultaneous TCP connections.
    #[serde(default = "default_max_connections")]
    pub max_tcp_connections: usize,
    /// Idle TCP connections are closed after this long without traffic.
    #[serde(default = "default_tcp_idle")]
    pub tcp_idle_timeout_s: u64,
    /// Receive and send buffer asked of the kernel for each UDP SIP socket, KiB. Linux's
    /// default (208 KiB) overflows at about 2,000 calls a second and the kernel drops the
    /// excess silently; the grant is capped by `net.core.rmem_max`/`wmem_max` (logged).
    #[serde(default = "default_udp_buffer_kb")]
    pub udp_buffer_kb: usize,
}

fn default_udp_buffer_kb() -> usize {
    4096
}

fn default_t1_ms() -> u64 {
    500
}
fn default_t2_ms() -> u64 {
    4000
}
fn default_t4_ms() -> u64 {
    5000
}
fn default_max_message_size() -> usize {
    65_535
}
fn default_max_transactions() -> usize {
    switchboard_sip::EndpointConfig::DEFAULT_MAX_TRANSACTIONS
}
fn default_source_share() -> f64 {
    0.5
}
fn default_queue_messages() -> usize {
    16_384
}
fn default_queue_bytes() -> usize {
    16 * 1024 * 1024
}
fn default_min_expires() -> u32 {
    60
}
fn default_max_expires() -> u32 {
    3600
}
fn default_nonce_lifetime() -> u32 {
    300
}
fn default_digest_algorithms() -> Vec<String> {
    vec!["MD5".to_owned()]
}
fn default_max_connections() -> usize {
    4096
}
fn default_tcp_idle() -> u64 {
    600
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    /// Inclusive RTP port range `[first, last]`.
    #[serde(default = "default_rtp_ports")]
    pub rtp_ports: [u16; 2],
    /// Prompts and hold music (8 kHz mono WAV files, see `sounds/`).
    #[serde(default = "default_sounds_dir")]
    pub sounds_dir: PathBuf,
    /// A call is ended when a leg it expects audio from has sent no RTP for this many seconds
    /// (0 disables the check).
    #[serde(default = "default_rtp_timeout_s")]
    pub rtp_timeout_s: u32,
}

/// Longest `media.rtp_timeout_s` accepted (an hour).
pub const MAX_RTP_TIMEOUT_S: u32 = 3600;

fn default_rtp_timeout_s() -> u32 {
    60
}

fn default_sounds_dir() -> PathBuf {
    PathBuf::from("sounds")
}

fn default_rtp_ports() -> [u16; 2] {
    [20000, 29999]
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            rtp_ports: default_rtp_ports(),
            sounds_dir: default_sounds_dir(),
            rtp_timeout_s: default_rtp_timeout_s(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default = "default_http_listen")]
    pub listen: String,
    /// Bearer token for `/api/v1`; `SWITCHBOARD_API_TOKEN` overrides it.
    #[serde(default = "default_api_token")]
    pub api_token: String,
    /// Lifetime of an agent token issued by `POST /api/v1/sessions`, seconds.
    #[serde(default = "default_session_ttl")]
    pub session_ttl_s: u64,
}

fn default_session_ttl() -> u64 {
    12 * 3600
}

fn default_http_listen() -> String {
    "127.0.0.1:8080".to_owned()
}
fn default_api_token() -> String {
    DEMO_API_TOKEN.to_owned()
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_http_listen(),
            api_token: default_api_token(),
            session_ttl_s: default_session_ttl(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://switchboard.db` (embedded default) or `postgres://user:pass@host/db`.
    #[serde(default = "default_db_url")]
    pub url: String,
    /// Where records wait (fsync'd) while the database cannot take them.
    #[serde(default = "default_spool_dir")]
    pub spool_dir: PathBuf,
}

fn default_db_url() -> String {
    "sqlite://switchboard.db".to_owned()
}
fn default_spool_dir() -> PathBuf {
    PathBuf::from("spool")
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: default_db_url(),
            spool_dir: default_spool_dir(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    pub name: String,
    /// Source networks allowed to send INVITEs without digest authentication.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Dialed number → purpose (`order`, `information`, `other`, `complaint`).
    #[serde(default)]
    pub dids: BTreeMap<String, String>,
    /// Digest credentials for trunks that authenticate instead of (or as well as) `allow`.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Where outbound calls (call-backs, click-to-call) go: a `sip:` URI of the PBX.
    #[serde(default)]
    pub outbound: Option<String>,
    /// Credentials for the PBX's digest challenge (401/407) to our outbound INVITEs.
    #[serde(default)]
    pub outbound_username: Option<String>,
    #[serde(default)]
    pub outbound_password: Option<String>,
    /// The From number of outbound calls.
    #[serde(default)]
    pub caller_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// SIP username used to REGISTER.
    pub id: String,
    pub password: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Skill → level (higher level is offered first).
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
    /// Who takes over this agent's clients while the agent is absent.
    #[serde(default)]
    pub substitute: Option<String>,
}

/// A queue strategy in the engine's spelling (the engine defines the vocabulary).
fn strategy<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Strategy, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| {
        let names: Vec<_> = Strategy::ALL.iter().map(|s| s.as_str()).collect();
        serde::de::Error::custom(format!(
            "unknown strategy {text:?}, expected one of {}",
            names.join(", ")
        ))
    })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub name: String,
    pub skill: String,
    /// `longest_idle` (default), `round_robin`, `ring_all`, `fewest_calls`,
    /// `least_talk_time`, `random`, `linear`.
    #[serde(default, deserialize_with = "strategy")]
    pub strategy: Strategy,
    #[serde(default = "default_ring_timeout")]
    pub ring_timeout_s: u32,
    #[serde(default = "default_wrap_up")]
    pub wrap_up_s: u32,
    #[serde(default = "default_max_wait")]
    pub max_wait_s: u32,
    /// Route step taken after `max_wait_s` (the caller keeps their place).
    #[serde(default)]
    pub overflow: Option<String>,
    /// Most callers waiting at once; further callers overflow (or get busy) at once.
    #[serde(default = "default_max_length")]
    pub max_length: u32,
    /// Caller priority per client class, e.g. `{ key = 10 }`: higher waits less.
    #[serde(default)]
    pub priority: BTreeMap<String, u8>,
    #[serde(default = "default_announce_every")]
    pub announce_position_every_s: u32,
    /// Record bridged calls of this queue (stereo WAV under `[recording] dir`).
    #[serde(default)]
    pub record: bool,
}

fn default_ring_timeout() -> u32 {
    15
}
fn default_wrap_up() -> u32 {
    5
}
fn default_max_wait() -> u32 {
    300
}
fn default_max_length() -> u32 {
    1000
}
fn default_announce_every() -> u32 {
    30
}

/// Per-class route chain overrides plus routing settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    pub debt: Option<Vec<String>>,
    pub key: Option<Vec<String>>,
    pub new: Option<Vec<String>>,
    pub regional: Option<Vec<String>>,
    pub other: Option<Vec<String>>,
    pub complaint: Option<Vec<String>>,
    pub standard: Option<Vec<String>>,
    /// Consecutive no-answers after which an agent is set `not_ready`.
    #[serde(default = "default_no_answer_limit")]
    pub no_answer_limit: u32,
    /// Rule 8: how long a purpose-`other` call waits for its assigned manager while the
    /// manager is present but busy (key and debt chains skip a busy manager at once).
    #[serde(default = "default_other_manager_wait")]
    pub other_manager_wait_s: u32,
    /// The longest one step holds a call (a busy named agent, the last step of a chain).
    #[serde(default = "default_step_wait")]
    pub step_wait_s: u32,
    /// The longest a call waits in a chain without a queue, all steps together; then the call
    /// ends with outcome `timeout`.
    #[serde(default = "default_chain_max_wait")]
    pub max_wait_s: u32,
    /// Local time zone of the call center: "calls today" and similar counters reset at its
    /// midnight.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Replaced by `other_manager_wait_s` and `step_wait_s`; refused by validation with that
    /// hint (it is parsed only so that the error can name the new keys).
    pub busy_manager_wait_s: Option<u32>,
    /// Service level threshold: answered within this many seconds counts as "in service level".
    #[serde(default = "default_sl_threshold")]
    pub service_level_threshold_s: u32,
    /// Seed of the `random` strategy (deterministic runs in tests).
    #[serde(default)]
    pub seed: u64,
}

fn default_no_answer_limit() -> u32 {
    3
}
fn default_other_manager_wait() -> u32 {
    60
}
fn default_step_wait() -> u32 {
    120
}
fn default_chain_max_wait() -> u32 {
    300
}
fn default_timezone() -> String {
    "UTC".to_owned()
}
fn default_sl_threshold() -> u32 {
    20
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            debt: None,
            key: None,
            new: None,
            regional: None,
            other: None,
            complaint: None,
            standard: None,
            no_answer_limit: default_no_answer_limit(),
            other_manager_wait_s: default_other_manager_wait(),
            step_wait_s: default_step_wait(),
            max_wait_s: default_chain_max_wait(),
            timezone: default_timezone(),
            busy_manager_wait_s: None,
            service_level_threshold_s: default_sl_threshold(),
            seed: 0,
        }
    }
}

impl RoutingConfig {
    /// The configured override for a class, if any.
    pub fn override_for(&self, class: &str) -> Option<&Vec<String>> {
        match class {
            "debt" => self.debt.as_ref(),
            "key" => self.key.as_ref(),
            "new" => self.new.as_ref(),
            "regional" => self.regional.as_ref(),
            "other" => self.other.as_ref(),
            "complaint" => self.complaint.as_ref(),
            "standard" => self.standard.as_ref(),
            _ => None,
        }
    }

    /// The effective chain of every class, in classification order: the override or the
    /// engine's built-in chain.
    pub fn chains(&self) -> Vec<(&'static str, Vec<String>)> {
        Class::ALL
            .iter()
            .map(|class| {
                let chain = self
                    .override_for(class.as_str())
                    .cloned()
                    .unwrap_or_else(|| {
                        default_chain(*class)
                            .iter()
                            .map(ToString::to_string)
                            .collect()
                    });
                (class.as_str(), chain)
            })
            .collect()
    }
}

/// The optional DTMF voice menu: digit → purpose, for calls whose DID names no purpose.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IvrConfig {
    #[serde(default)]
    pub enabled: bool,
    /// Prompt played while waiting for a digit (WAV under `sounds/`).
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default = "default_ivr_timeout")]
    pub timeout_s: u32,
    /// Digit → purpose, e.g. `{ "1" = "order", "2" = "information" }`.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

fn default_ivr_timeout() -> u32 {
    8
}

/// `[state]`: the one directory that holds what a node writes (the SQLite file, the spool,
/// recordings). See `config/paths.rs` for how it is chosen when not set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Relative paths are taken from the configuration file's directory.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// How `dir` was chosen, once `Config::resolve_state_paths` ran.
    #[serde(skip)]
    pub source: Option<super::paths::StateDirSource>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingConfig {
    #[serde(default = "default_recording_dir")]
    pub dir: PathBuf,
}

fn default_recording_dir() -> PathBuf {
    PathBuf::from("recordings")
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            dir: default_recording_dir(),
        }
    }
}

/// A SIP transport named in `[sip] listen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenTransport {
    Udp,
    Tcp,
    Ws,
    Wss,
    Tls,
}

impl fmt::Display for ListenTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListenTransport::Udp => "udp",
            ListenTransport::Tcp => "tcp",
            ListenTransport::Ws => "ws",
            ListenTransport::Wss => "wss",
            ListenTransport::Tls => "tls",
        })
    }
}

/// One parsed `[sip] listen` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenAddr {
    pub transport: ListenTransport,
    pub addr: SocketAddr,
}

impl ListenAddr {
    pub fn parse(s: &str) -> Result<ListenAddr, String> {
        let (proto, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?} is not of the form transport:address:port"))?;
        let transport = match proto.to_ascii_lowercase().as_str() {
            "udp" => ListenTransport::Udp,
            "tcp" => ListenTransport::Tcp,
            "ws" => ListenTransport::Ws,
            "wss" => ListenTransport::Wss,
            "tls" => ListenTransport::Tls,
            other => {
                return Err(format!(
                    "unknown transport {other:?} (expected udp, tcp, ws, wss or tls)"
                ));
            }
        };
        let addr: SocketAddr = rest
            .parse()
            .map_err(|_| format!("{rest:?} is not an IP address with a port"))?;
        Ok(ListenAddr { transport, addr })
    }
}
