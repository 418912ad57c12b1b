//! The configuration file: typed structs parsed with `deny_unknown_fields`, then validated as a
//! whole before anything is bound. Every error names its key path (`queues[1].strategy`).
//!
//! The keys and meanings of PRODUCT.md §4 are a stable interface: rename nothing here.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

mod address;
mod callbacks;
mod numbers;
mod outbound;
mod paths;
mod sections;
mod security;
mod tls;
mod validate;
mod wallboard;

pub use callbacks::CallbacksConfig;
pub use numbers::NumbersConfig;
pub use outbound::OutboundTarget;
pub use paths::StateDirSource;
pub use sections::*;
pub use security::SecurityConfig;
pub use tls::TlsConfig;
pub use wallboard::WallboardConfig;

/// The built-in demo configuration used when `switchboard` runs without `--config`.
pub const DEMO_CONFIG: &str = include_str!("../../../../config/demo.toml");

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

/// `Ok` when nothing was collected, else every error collected.
pub(super) fn none_or_all(errors: Vec<ConfigError>) -> Result<(), Vec<ConfigError>> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

pub(super) fn err(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
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
    #[serde(default)]
    pub security: SecurityConfig,
    #[serde(default)]
    pub state: StateConfig,
    #[serde(default)]
    pub numbers: NumbersConfig,
    #[serde(default)]
    pub wallboard: WallboardConfig,
    #[serde(default)]
    pub callbacks: CallbacksConfig,
    pub tls: Option<TlsConfig>,
}

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
        none_or_all(errors).map(|()| config)
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

    /// The smallest valid file (also the base of other modules' tests).
    pub(super) fn minimal() -> String {
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
    fn security_defaults_and_errors_name_their_keys() {
        let config = Config::from_toml(&minimal()).unwrap();
        assert_eq!(config.security.auth_failures_per_minute, 10);
        assert_eq!(config.security.auth_ban_s, 300);
        assert_eq!(config.security.invite_rate_per_source, 50);
        let text = format!("{}\n[security]\nauth_ban_s = 0\n", minimal());
        let errors = Config::from_toml(&text).unwrap_err();
        assert_eq!(errors[0].path, "security.auth_ban_s", "{errors:?}");
        let text = format!(
            "{}\n[security]\nauth_failures_per_minute = 0\nauth_ban_s = 0\n",
            minimal()
        );
        assert!(
            Config::from_toml(&text).is_ok(),
            "no banning needs no ban time"
        );
        let text = format!("{}\n[security]\nban = 5\n", minimal());
        let errors = Config::from_toml(&text).unwrap_err();
        assert!(errors[0].to_string().contains("security"), "{errors:?}");
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
    fn socket_buffer_outside_its_range_is_refused() {
        for kb in [0, 1 << 21] {
            let text = minimal().replace("[sip]\n", &format!("[sip]\nudp_buffer_kb = {kb}\n"));
            let errors = Config::from_toml(&text).unwrap_err();
            assert_eq!(errors[0].path, "sip.udp_buffer_kb", "{errors:?}");
        }
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
            "assigned_manager".parse::<Step>().unwrap(),
            Step::AssignedManager
        );
        assert_eq!(
            "role:finance".parse::<Step>().unwrap(),
            Step::Role("finance".into())
        );
        assert!("role:".parse::<Step>().is_err());
        assert!("somebody".parse::<Step>().is_err());
    }
}
