//! `[security]` (PRODUCT §4): limits on failed authentication and on the INVITE rate, per
//! source address.

use serde::Deserialize;

use super::{Config, ConfigError, err};

/// Longest ban accepted (a week): longer is a typo, and `0` failures turns banning off.
const MAX_AUTH_BAN_S: u32 = 7 * 24 * 3600;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// Failed digest answers a source may send within a minute; past it the source is
    /// refused (403, no challenge) for `auth_ban_s`. `0` turns banning off.
    #[serde(default = "default_auth_failures_per_minute")]
    pub auth_failures_per_minute: u32,
    /// How long a banned source is refused.
    #[serde(default = "default_auth_ban_s")]
    pub auth_ban_s: u32,
    /// New INVITEs per second accepted from one source address; past it `503` with
    /// `Retry-After`. `0` turns the limit off.
    #[serde(default = "default_invite_rate_per_source")]
    pub invite_rate_per_source: u32,
}

fn default_auth_failures_per_minute() -> u32 {
    10
}
fn default_auth_ban_s() -> u32 {
    300
}
fn default_invite_rate_per_source() -> u32 {
    50
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            auth_failures_per_minute: default_auth_failures_per_minute(),
            auth_ban_s: default_auth_ban_s(),
            invite_rate_per_source: default_invite_rate_per_source(),
        }
    }
}

impl Config {
    pub(super) fn validate_security(&self, errors: &mut Vec<ConfigError>) {
        let s = &self.security;
        if s.auth_failures_per_minute > 0 && s.auth_ban_s == 0 {
            errors.push(err(
                "security.auth_ban_s",
                "must be positive while auth_failures_per_minute bans (set that to 0 to never ban)",
            ));
        }
        if s.auth_ban_s > MAX_AUTH_BAN_S {
            errors.push(err(
                "security.auth_ban_s",
                format!("{} is more than a week ({MAX_AUTH_BAN_S} s)", s.auth_ban_s),
            ));
        }
    }
}
