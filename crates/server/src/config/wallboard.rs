//! `[wallboard]`: the colour thresholds of the `/wallboard` page. A figure is green, amber or
//! red; the page reads these from the server, so every screen agrees.

use serde::{Deserialize, Serialize};

use super::{ConfigError, err};

/// `[wallboard]` (all keys optional).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WallboardConfig {
    /// Service level at or above this is green (0..1).
    #[serde(default = "default_sl_green")]
    pub service_level_green: f64,
    /// Service level at or above this (and below green) is amber; below it red.
    #[serde(default = "default_sl_amber")]
    pub service_level_amber: f64,
    /// Oldest wait at or above this many seconds is amber.
    #[serde(default = "default_wait_amber")]
    pub wait_amber_s: u32,
    /// Oldest wait at or above this many seconds is red.
    #[serde(default = "default_wait_red")]
    pub wait_red_s: u32,
    /// Abandonment rate at or above this is amber (0..1).
    #[serde(default = "default_abandon_amber")]
    pub abandon_amber: f64,
    /// Abandonment rate at or above this is red.
    #[serde(default = "default_abandon_red")]
    pub abandon_red: f64,
}

fn default_sl_green() -> f64 {
    0.8
}
fn default_sl_amber() -> f64 {
    0.6
}
fn default_wait_amber() -> u32 {
    30
}
fn default_wait_red() -> u32 {
    60
}
fn default_abandon_amber() -> f64 {
    0.05
}
fn default_abandon_red() -> f64 {
    0.1
}

impl Default for WallboardConfig {
    fn default() -> Self {
        WallboardConfig {
            service_level_green: default_sl_green(),
            service_level_amber: default_sl_amber(),
            wait_amber_s: default_wait_amber(),
            wait_red_s: default_wait_red(),
            abandon_amber: default_abandon_amber(),
            abandon_red: default_abandon_red(),
        }
    }
}

impl WallboardConfig {
    /// Each threshold pair must be ordered and ratios within 0..1.
    pub fn validate(&self, errors: &mut Vec<ConfigError>) {
        let ratio = |v: f64| (0.0..=1.0).contains(&v);
        for (key, v) in [
            ("service_level_green", self.service_level_green),
            ("service_level_amber", self.service_level_amber),
            ("abandon_amber", self.abandon_amber),
            ("abandon_red", self.abandon_red),
        ] {
            if !ratio(v) {
                errors.push(err(
                    format!("wallboard.{key}"),
                    "must be a ratio between 0 and 1",
                ));
            }
        }
        if self.service_level_amber > self.service_level_green {
            errors.push(err(
                "wallboard.service_level_amber",
                "must not be above wallboard.service_level_green",
            ));
        }
        if self.wait_amber_s > self.wait_red_s {
            errors.push(err(
                "wallboard.wait_amber_s",
                "must not be above wallboard.wait_red_s",
            ));
        }
        if self.abandon_amber > self.abandon_red {
            errors.push(err(
                "wallboard.abandon_amber",
                "must not be above wallboard.abandon_red",
            ));
        }
    }
}
