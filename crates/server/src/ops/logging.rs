//! Structured logs on stderr through `tracing`. `RUST_LOG` filters (default `info`, the DTLS
//! library's notices only from `error`);
//! `SWITCHBOARD_LOG_FORMAT=json` is not offered yet: the text format carries the fields.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls are no-ops.
pub fn init() {
    // The DTLS library warns about every TLS extension a browser's ClientHello carries that it
    // does not use (key_share, supported_versions...): noise, not something to look at.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rtc_dtls=error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(true)
        .try_init();
}
