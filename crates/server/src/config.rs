//! The configuration file: typed structs parsed with `deny_unknown_fields`, then validated as a
//! whole before anything is bound. Every error names its key path (`queues[1].strategy`).
//!
//! The keys and meanings of PRODUCT.md §4 are a stable interface: rename nothing here.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;

/// The built-in demo configuration used when `switchboard` runs without `--config`.
pub const DEMO_CONFIG: &str = include_str!("../../../config/demo.toml");

/// The API token of the demo configuration; refused on a non-loopback HTTP address.
pub const DEMO_API_TOKEN: &str = "change-me";

/// A configuration problem with the key path it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path, e.g. `queues[0].strategy`; empty for file-level problems.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

fn err(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.into(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub sip: SipConfig,
    #[serde(default)]
    pub media: MediaConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub trunks: Vec<TrunkConfig>,
    #[serde(default)]
    pub agents: Vec<AgentConfig>,
    #[serde(default)]
    pub queues: Vec<QueueConfig>,
    #[serde(default)]
    pub routing: RoutingConfig,
    #[serde(default)]
    pub ivr: Option<IvrConfig>,
    #[serde(default)]
    pub recording: RecordingConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    /// `udp:IP:PORT`, `tcp:IP:PORT`; `ws:`, `wss:` and `tls:` are accepted and reported as not
    /// served yet.
    pub listen: Vec<String>,
    /// Registrar domain and digest realm.
    pub domain: String,
    /// Written into Via / Contact / SDP.
    pub advertised_address: String,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    #[default]
    LongestIdle,
    RoundRobin,
    RingAll,
    FewestCalls,
    LeastTalkTime,
    Random,
    Linear,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub name: String,
    pub skill: String,
    #[serde(default)]
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
    /// How long a call may wait for a busy assigned manager before the next step.
    #[serde(default)]
    pub busy_manager_wait_s: u32,
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
            busy_manager_wait_s: 0,
            service_level_threshold_s: default_sl_threshold(),
            seed: 0,
        }
    }
}

/// Client classes in classification order, with their built-in chains (PRODUCT.md §3).
pub const DEFAULT_CHAINS: [(&str, &[&str]); 7] = [
    ("debt", &["assigned_manager", "role:finance"]),
    (
        "key",
        &[
            "assigned_manager",
            "role:key_account_manager",
            "role:head_of_wholesale",
        ],
    ),
    ("new", &["role:department_head"]),
    ("regional", &["queue:regional"]),
    ("other", &["assigned_manager", "role:head_of_sales"]),
    ("complaint", &["role:quality"]),
    ("standard", &["queue:orders"]),
];

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

    /// The effective chain of every class: the override or the built-in default.
    pub fn chains(&self) -> Vec<(&'static str, Vec<String>)> {
        DEFAULT_CHAINS
            .iter()
            .map(|(class, default)| {
                let chain = self
                    .override_for(class)
                    .cloned()
                    .unwrap_or_else(|| default.iter().map(|s| (*s).to_owned()).collect());
                (*class, chain)
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

/// One step of a route chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    AssignedManager,
    Agent(String),
    Role(String),
    Queue(String),
}

impl Step {
    pub fn parse(s: &str) -> Result<Step, String> {
        if s == "assigned_manager" {
            return Ok(Step::AssignedManager);
        }
        let (kind, name) = s.split_once(':').ok_or_else(|| {
            format!("{s:?} is not a route step (assigned_manager, agent:<id>, role:<role>, queue:<name>)")
        })?;
        if name.is_empty() {
            return Err(format!("{s:?} names no {kind}"));
        }
        match kind {
            "agent" => Ok(Step::Agent(name.to_owned())),
            "role" => Ok(Step::Role(name.to_owned())),
            "queue" => Ok(Step::Queue(name.to_owned())),
            _ => Err(format!(
                "{s:?} is not a route step (assigned_manager, agent:<id>, role:<role>, queue:<name>)"
            )),
        }
    }
}

/// Purposes a call can have (PRODUCT.md §3).
pub const PURPOSES: [&str; 4] = ["order", "information", "other", "complaint"];

/// Client classes (PRODUCT.md §3), in classification order.
pub const CLASSES: [&str; 7] = [
    "debt",
    "key",
    "new",
    "regional",
    "other",
    "complaint",
    "standard",
];

impl Config {
    /// Parses and validates a configuration file's text. All semantic errors are collected;
    /// a syntax or type error stops at the first one (the file cannot be read further).
    pub fn from_toml(text: &str) -> Result<Config, Vec<ConfigError>> {
        let de = toml::Deserializer::parse(text).map_err(|e| vec![toml_error(&e)])?;
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let mut message = inner.message().to_owned();
            if let Some(line) = inner.span().map(|span| line_of(text, span.start)) {
                message = format!("{message} (line {line})");
            }
            vec![err(if path == "." { String::new() } else { path }, message)]
        })?;
        let errors = config.validate();
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }

    /// The built-in demo configuration.
    pub fn demo() -> Config {
        match Config::from_toml(DEMO_CONFIG) {
            Ok(config) => config,
            // The demo file is compiled in and covered by a unit test.
            Err(errors) => panic!("built-in demo configuration is invalid: {errors:?}"),
        }
    }

    /// Every `[sip] listen` entry, parsed (valid after `validate`).
    pub fn listen_addrs(&self) -> Vec<ListenAddr> {
        self.sip
            .listen
            .iter()
            .filter_map(|s| ListenAddr::parse(s).ok())
            .collect()
    }

    /// The API token in force: `SWITCHBOARD_API_TOKEN` overrides the file.
    pub fn api_token(&self) -> String {
        match std::env::var("SWITCHBOARD_API_TOKEN") {
            Ok(token) if !token.is_empty() => token,
            _ => self.http.api_token.clone(),
        }
    }

    /// Semantic checks across the whole file.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        self.validate_sip(&mut errors);
        self.validate_media_http_db(&mut errors);
        self.validate_trunks(&mut errors);
        let agent_ids = self.validate_agents(&mut errors);
        let queue_names = self.validate_queues(&agent_ids, &mut errors);
        self.validate_routing(&agent_ids, &queue_names, &mut errors);
        self.validate_ivr(&mut errors);
        errors
    }

    fn validate_sip(&self, errors: &mut Vec<ConfigError>) {
        let sip = &self.sip;
        if sip.listen.is_empty() {
            errors.push(err("sip.listen", "at least one listen address is required"));
        }
        let mut seen = HashSet::new();
        for (i, entry) in sip.listen.iter().enumerate() {
            match ListenAddr::parse(entry) {
                Ok(addr) => {
                    if !seen.insert(addr) {
                        errors.push(err(
                            format!("sip.listen[{i}]"),
                            format!("{entry:?} is listed twice"),
                        ));
                    }
                }
                Err(message) => errors.push(err(format!("sip.listen[{i}]"), message)),
            }
        }
        if !is_hostname(&sip.domain) {
            errors.push(err(
                "sip.domain",
                format!("{:?} is not a domain name", sip.domain),
            ));
        }
        if sip.advertised_address.parse::<IpAddr>().is_err()
            && !is_hostname(&sip.advertised_address)
        {
            errors.push(err(
                "sip.advertised_address",
                format!(
                    "{:?} is neither an IP address nor a host name",
                    sip.advertised_address
                ),
            ));
        }
        if sip.t1_ms == 0 || sip.t1_ms > 10_000 {
            errors.push(err("sip.t1_ms", "must be between 1 and 10000"));
        }
        if sip.t2_ms < sip.t1_ms {
            errors.push(err("sip.t2_ms", "must not be smaller than sip.t1_ms"));
        }
        if sip.t4_ms == 0 {
            errors.push(err("sip.t4_ms", "must be positive"));
        }
        if !(1024..=1_048_576).contains(&sip.max_message_size) {
            errors.push(err(
                "sip.max_message_size",
                "must be between 1024 and 1048576 bytes",
            ));
        }
        if sip.max_transactions == 0 {
            errors.push(err("sip.max_transactions", "must be positive"));
        }
        if sip.min_expires_s == 0 {
            errors.push(err("sip.min_expires_s", "must be positive"));
        }
        if sip.max_expires_s < sip.min_expires_s {
            errors.push(err(
                "sip.max_expires_s",
                "must not be smaller than sip.min_expires_s",
            ));
        }
        if sip.nonce_lifetime_s < 10 {
            errors.push(err("sip.nonce_lifetime_s", "must be at least 10 seconds"));
        }
        if sip.digest_algorithms.is_empty() {
            errors.push(err(
                "sip.digest_algorithms",
                "at least one algorithm is required",
            ));
        }
        let mut seen_alg = HashSet::new();
        for (i, alg) in sip.digest_algorithms.iter().enumerate() {
            if alg != "MD5" && alg != "SHA-256" {
                errors.push(err(
                    format!("sip.digest_algorithms[{i}]"),
                    format!("{alg:?} is not a digest algorithm (expected \"MD5\" or \"SHA-256\")"),
                ));
            } else if !seen_alg.insert(alg.as_str()) {
                errors.push(err(
                    format!("sip.digest_algorithms[{i}]"),
                    format!("{alg:?} is listed twice"),
                ));
            }
        }
        if sip.max_tcp_connections == 0 {
            errors.push(err("sip.max_tcp_connections", "must be positive"));
        }
    }

    fn validate_media_http_db(&self, errors: &mut Vec<ConfigError>) {
        let [first, last] = self.media.rtp_ports;
        if first < 1024 || first >= last {
            errors.push(err(
                "media.rtp_ports",
                format!("[{first}, {last}] must be an ascending range above 1023"),
            ));
        } else if u32::from(last) - u32::from(first) < 3 {
            errors.push(err(
                "media.rtp_ports",
                "the range needs at least 4 ports (RTP and RTCP pairs)",
            ));
        }
        if self.media.rtp_timeout_s > MAX_RTP_TIMEOUT_S {
            errors.push(err(
                "media.rtp_timeout_s",
                format!(
                    "{} is more than {MAX_RTP_TIMEOUT_S} seconds (0 disables the timeout)",
                    self.media.rtp_timeout_s
                ),
            ));
        }
        if self.http.listen.parse::<SocketAddr>().is_err() {
            errors.push(err(
                "http.listen",
                format!("{:?} is not an IP address with a port", self.http.listen),
            ));
        }
        if self.http.api_token.trim().is_empty() {
            errors.push(err("http.api_token", "must not be empty"));
        }
        let url = &self.database.url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            errors.push(err(
                "database.url",
                format!("{url:?} is neither a sqlite: nor a postgres:// URL"),
            ));
        }
    }

    fn validate_trunks(&self, errors: &mut Vec<ConfigError>) {
        let mut names = HashSet::new();
        for (i, trunk) in self.trunks.iter().enumerate() {
            let at = format!("trunks[{i}]");
            if trunk.name.trim().is_empty() {
                errors.push(err(format!("{at}.name"), "must not be empty"));
            } else if !names.insert(trunk.name.as_str()) {
                errors.push(err(
                    format!("{at}.name"),
                    format!("trunk {:?} is defined twice", trunk.name),
                ));
            }
            for (j, net) in trunk.allow.iter().enumerate() {
                if parse_net(net).is_none() {
                    errors.push(err(
                        format!("{at}.allow[{j}]"),
                        format!("{net:?} is not an IP network (e.g. 192.0.2.0/24 or 192.0.2.7)"),
                    ));
                }
            }
            for (did, purpose) in &trunk.dids {
                if !PURPOSES.contains(&purpose.as_str()) {
                    errors.push(err(
                        format!("{at}.dids.{did}"),
                        format!(
                            "unknown purpose {purpose:?} (expected one of {})",
                            PURPOSES.join(", ")
                        ),
                    ));
                }
            }
            if trunk.username.is_some() != trunk.password.is_some() {
                errors.push(err(
                    at.clone(),
                    "username and password must be given together",
                ));
            }
            if trunk.allow.is_empty() && trunk.username.is_none() {
                errors.push(err(
                    at,
                    "a trunk needs allow networks or username/password, or nobody can use it",
                ));
            }
        }
    }

    fn validate_agents(&self, errors: &mut Vec<ConfigError>) -> HashSet<&str> {
        let mut ids = HashSet::new();
        for (i, agent) in self.agents.iter().enumerate() {
            let at = format!("agents[{i}]");
            if !is_sip_user(&agent.id) {
                errors.push(err(
                    format!("{at}.id"),
                    format!(
                        "{:?} is not a valid SIP user name (letters, digits, . _ - +)",
                        agent.id
                    ),
                ));
            } else if !ids.insert(agent.id.as_str()) {
                errors.push(err(
                    format!("{at}.id"),
                    format!("agent {:?} is defined twice", agent.id),
                ));
            }
            if agent.password.is_empty() {
                errors.push(err(format!("{at}.password"), "must not be empty"));
            }
            for (j, role) in agent.roles.iter().enumerate() {
                if !is_name(role) {
                    errors.push(err(
                        format!("{at}.roles[{j}]"),
                        format!("{role:?} is not a role name (lowercase letters, digits, _)"),
                    ));
                }
            }
            for skill in agent.skills.keys() {
                if !is_name(skill) {
                    errors.push(err(
                        format!("{at}.skills.{skill}"),
                        "not a skill name (lowercase letters, digits, _)",
                    ));
                }
            }
        }
        for (i, agent) in self.agents.iter().enumerate() {
            if let Some(sub) = &agent.substitute {
                if sub == &agent.id {
                    errors.push(err(
                        format!("agents[{i}].substitute"),
                        "an agent cannot substitute for themselves",
                    ));
                } else if !ids.contains(sub.as_str()) {
                    errors.push(err(
                        format!("agents[{i}].substitute"),
                        format!("unknown agent {sub:?}"),
                    ));
                }
            }
        }
        ids
    }

    fn validate_queues<'a>(
        &'a self,
        agent_ids: &HashSet<&str>,
        errors: &mut Vec<ConfigError>,
    ) -> HashSet<&'a str> {
        let mut names = HashSet::new();
        for (i, queue) in self.queues.iter().enumerate() {
            let at = format!("queues[{i}]");
            if !is_name(&queue.name) {
                errors.push(err(
                    format!("{at}.name"),
                    format!(
                        "{:?} is not a queue name (lowercase letters, digits, _)",
                        queue.name
                    ),
                ));
            } else if !names.insert(queue.name.as_str()) {
                errors.push(err(
                    format!("{at}.name"),
                    format!("queue {:?} is defined twice", queue.name),
                ));
            }
            if !is_name(&queue.skill) {
                errors.push(err(
                    format!("{at}.skill"),
                    format!("{:?} is not a skill name", queue.skill),
                ));
            }
            if queue.ring_timeout_s == 0 || queue.ring_timeout_s > 600 {
                errors.push(err(
                    format!("{at}.ring_timeout_s"),
                    "must be between 1 and 600",
                ));
            }
            if queue.max_wait_s == 0 {
                errors.push(err(format!("{at}.max_wait_s"), "must be positive"));
            }
            if queue.max_length == 0 {
                errors.push(err(format!("{at}.max_length"), "must be positive"));
            }
            for class in queue.priority.keys() {
                if !CLASSES.contains(&class.as_str()) {
                    errors.push(err(
                        format!("{at}.priority.{class}"),
                        format!(
                            "unknown client class (expected one of {})",
                            CLASSES.join(", ")
                        ),
                    ));
                }
            }
        }
        // Overflow targets may name queues defined later in the file: check after collecting.
        for (i, queue) in self.queues.iter().enumerate() {
            if let Some(step) = &queue.overflow {
                let path = format!("queues[{i}].overflow");
                match Step::parse(step) {
                    Ok(Step::Queue(name)) if name == queue.name => {
                        errors.push(err(path, "a queue cannot overflow into itself"));
                    }
                    Ok(step) => check_step(&step, &path, agent_ids, &names, errors),
                    Err(message) => errors.push(err(path, message)),
                }
            }
        }
        names
    }

    fn validate_routing(
        &self,
        agent_ids: &HashSet<&str>,
        queue_names: &HashSet<&str>,
        errors: &mut Vec<ConfigError>,
    ) {
        let routing = &self.routing;
        for (class, chain) in routing.chains() {
            let overridden = routing.override_for(class).is_some();
            if chain.is_empty() {
                errors.push(err(
                    format!("routing.{class}"),
                    "a route chain needs at least one step",
                ));
            }
            for (j, step) in chain.iter().enumerate() {
                let path = if overridden {
                    format!("routing.{class}[{j}]")
                } else {
                    format!("routing.{class}")
                };
                match Step::parse(step) {
                    Ok(Step::Queue(name)) if !queue_names.contains(name.as_str()) => {
                        let hint = if overridden {
                            String::new()
                        } else {
                            format!(
                                " (the built-in {class} chain uses it: add a [[queues]] named {name:?} or override [routing] {class})"
                            )
                        };
                        errors.push(err(path, format!("unknown queue {name:?}{hint}")));
                    }
                    Ok(parsed) => check_step(&parsed, &path, agent_ids, queue_names, errors),
                    Err(message) => errors.push(err(path, message)),
                }
            }
        }
        if routing.no_answer_limit == 0 {
            errors.push(err("routing.no_answer_limit", "must be positive"));
        }
        if routing.service_level_threshold_s == 0 {
            errors.push(err("routing.service_level_threshold_s", "must be positive"));
        }
    }

    fn validate_ivr(&self, errors: &mut Vec<ConfigError>) {
        let Some(ivr) = &self.ivr else { return };
        for (digit, purpose) in &ivr.options {
            let is_digit = digit.len() == 1
                && digit
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '*' || c == '#');
            if !is_digit {
                errors.push(err(
                    format!("ivr.options.{digit}"),
                    "the key must be one DTMF digit (0-9, * or #)",
                ));
            }
            if !PURPOSES.contains(&purpose.as_str()) {
                errors.push(err(
                    format!("ivr.options.{digit}"),
                    format!(
                        "unknown purpose {purpose:?} (expected one of {})",
                        PURPOSES.join(", ")
                    ),
                ));
            }
        }
        if ivr.enabled && ivr.options.is_empty() {
            errors.push(err(
                "ivr.options",
                "an enabled voice menu needs at least one option",
            ));
        }
        if ivr.timeout_s == 0 {
            errors.push(err("ivr.timeout_s", "must be positive"));
        }
    }
}

fn check_step(
    step: &Step,
    path: &str,
    agent_ids: &HashSet<&str>,
    queue_names: &HashSet<&str>,
    errors: &mut Vec<ConfigError>,
) {
    match step {
        Step::Agent(id) if !agent_ids.contains(id.as_str()) => {
            errors.push(err(path, format!("unknown agent {id:?}")));
        }
        Step::Queue(name) if !queue_names.contains(name.as_str()) => {
            errors.push(err(path, format!("unknown queue {name:?}")));
        }
        Step::Role(role) if !is_name(role) => {
            errors.push(err(path, format!("{role:?} is not a role name")));
        }
        _ => {}
    }
}

/// Parses `192.0.2.0/24`, `2001:db8::/32` or a single address (as a host network).
pub fn parse_net(s: &str) -> Option<IpNet> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Some(net);
    }
    s.parse::<IpAddr>().ok().map(IpNet::from)
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn is_sip_user(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn toml_error(e: &toml::de::Error) -> ConfigError {
    let mut message = e.message().to_owned();
    if let Some(span) = e.span() {
        message = format!("{message} (at byte {})", span.start);
    }
    err("", message)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |prefix| prefix.bytes().filter(|b| *b == b'\n').count())
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> String {
        r#"
[sip]
listen = ["udp:127.0.0.1:5060"]
domain = "callcenter.local"
advertised_address = "127.0.0.1"

[[queues]]
name = "orders"
skill = "orders"

[[queues]]
name = "regional"
skill = "regional"
"#
        .to_owned()
    }

    #[test]
    fn demo_config_is_valid() {
        let config = Config::from_toml(DEMO_CONFIG).unwrap();
        assert_eq!(config.http.listen, "127.0.0.1:8080");
        assert!(
            config
                .listen_addrs()
                .iter()
                .any(|l| l.transport == ListenTransport::Udp)
        );
        assert!(
            config
                .listen_addrs()
                .iter()
                .any(|l| l.transport == ListenTransport::Tcp)
        );
        assert!(config.database.url.starts_with("sqlite:"));
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let config = Config::from_toml(&minimal()).unwrap();
        assert_eq!(config.sip.t1_ms, 500);
        assert_eq!(config.sip.max_transactions, 200_000);
        assert_eq!(config.media.rtp_ports, [20000, 29999]);
        assert_eq!(config.queues[0].strategy, Strategy::LongestIdle);
        assert_eq!(config.routing.no_answer_limit, 3);
    }

    #[test]
    fn unknown_key_is_reported_with_its_path() {
        let text = minimal().replace(
            "skill = \"orders\"",
            "skill = \"orders\"\nstrategi = \"linear\"",
        );
        let errors = Config::from_toml(&text).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "queues[0].strategi");
        assert!(errors[0].message.contains("strategi"), "{}", errors[0]);
    }

    #[test]
    fn zero_transaction_cap_names_the_key() {
        let text = minimal().replace(
            "advertised_address = \"127.0.0.1\"",
            "advertised_address = \"127.0.0.1\"\nmax_transactions = 0",
        );
        let errors = Config::from_toml(&text).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "sip.max_transactions");
        assert_eq!(
            errors[0].to_string(),
            "sip.max_transactions: must be positive"
        );
        let text = minimal().replace(
            "advertised_address = \"127.0.0.1\"",
            "advertised_address = \"127.0.0.1\"\nmax_transactions = 50000",
        );
        assert_eq!(
            Config::from_toml(&text).unwrap().sip.max_transactions,
            50_000
        );
    }

    #[test]
    fn rtp_timeout_defaults_disables_and_names_the_key() {
        assert_eq!(
            Config::from_toml(&minimal()).unwrap().media.rtp_timeout_s,
            60
        );
        let with = |v: &str| format!("{}\n[media]\nrtp_timeout_s = {v}\n", minimal());
        assert_eq!(
            Config::from_toml(&with("0")).unwrap().media.rtp_timeout_s,
            0
        );
        assert_eq!(
            Config::from_toml(&with("2")).unwrap().media.rtp_timeout_s,
            2
        );
        let errors = Config::from_toml(&with("86400")).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "media.rtp_timeout_s");
        assert!(errors[0].message.contains("3600"), "{}", errors[0]);
        let errors = Config::from_toml(&with("-1")).unwrap_err();
        assert_eq!(errors[0].path, "media.rtp_timeout_s", "{errors:?}");
    }

    #[test]
    fn wrong_enum_value_names_key() {
        let text = minimal().replace(
            "skill = \"orders\"",
            "skill = \"orders\"\nstrategy = \"fastest\"",
        );
        let errors = Config::from_toml(&text).unwrap_err();
        assert_eq!(errors[0].path, "queues[0].strategy");
    }

    #[test]
    fn semantic_errors_are_all_collected() {
        let text = format!(
            "{}\n[[agents]]\nid = \"ana\"\npassword = \"\"\nsubstitute = \"zoe\"\n\n[routing]\nkey = [\"queue:nowhere\", \"boss\"]\n",
            minimal().replace("udp:127.0.0.1:5060", "sctp:127.0.0.1:5060")
        );
        let errors = Config::from_toml(&text).unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"sip.listen[0]"), "{errors:?}");
        assert!(paths.contains(&"agents[0].password"), "{errors:?}");
        assert!(paths.contains(&"agents[0].substitute"), "{errors:?}");
        assert!(paths.contains(&"routing.key[0]"), "{errors:?}");
        assert!(paths.contains(&"routing.key[1]"), "{errors:?}");
    }

    #[test]
    fn default_chain_needs_its_queue() {
        let text = minimal().replace(
            "name = \"regional\"\nskill = \"regional\"",
            "name = \"other_q\"\nskill = \"x\"",
        );
        let errors = Config::from_toml(&text).unwrap_err();
        assert_eq!(errors[0].path, "routing.regional");
        assert!(
            errors[0].message.contains("built-in regional chain"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn listen_addr_parses_ipv6() {
        let l = ListenAddr::parse("tcp:[::1]:5060").unwrap();
        assert_eq!(l.transport, ListenTransport::Tcp);
        assert!(l.addr.is_ipv6());
        assert!(ListenAddr::parse("udp:localhost").is_err());
    }

    #[test]
    fn steps_parse() {
        assert_eq!(
            Step::parse("assigned_manager").unwrap(),
            Step::AssignedManager
        );
        assert_eq!(
            Step::parse("role:finance").unwrap(),
            Step::Role("finance".into())
        );
        assert!(Step::parse("role:").is_err());
        assert!(Step::parse("somebody").is_err());
    }
}
