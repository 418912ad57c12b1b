//! `[tls]` (PRODUCT §4): the certificate of `tls:` (and `wss:`) listeners, and what the
//! server trusts when it opens TLS connections itself.

use std::path::PathBuf;

use serde::Deserialize;

use super::{Config, ConfigError, ListenTransport, err};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first. Re-read on SIGHUP.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the leaf certificate. Re-read on SIGHUP.
    pub key: PathBuf,
    /// PEM bundle of the authorities trusted when the server connects to a `;transport=tls`
    /// peer; without it, the system's trust store.
    #[serde(default)]
    pub ca: Option<PathBuf>,
}

impl Config {
    /// Secure listeners need `[tls]`; the files must load (readable PEM, a key matching the
    /// certificate), so that a bad certificate stops start-up and `check-config` names it.
    pub(super) fn validate_tls(&self, errors: &mut Vec<ConfigError>) {
        let secure = self
            .listen_addrs()
            .iter()
            .find(|l| matches!(l.transport, ListenTransport::Tls | ListenTransport::Wss))
            .map(|l| format!("{}:{}", l.transport, l.addr));
        let Some(tls) = &self.tls else {
            if let Some(listen) = secure {
                errors.push(err(
                    "tls",
                    format!("the listener {listen} needs a [tls] section with cert and key"),
                ));
            }
            return;
        };
        if let Err(e) = crate::tls::load_certified_key(&tls.cert, &tls.key) {
            errors.push(err(e.key_path(), e.to_string()));
        }
        if let Some(ca) = &tls.ca
            && let Err(e) = crate::tls::load_roots(Some(ca))
        {
            errors.push(err("tls.ca", e.to_string()));
        }
    }
}
