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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;

    const BASE: &str = r#"
[sip]
listen = ["udp:127.0.0.1:5060", "tls:127.0.0.1:5061"]
domain = "callcenter.local"
advertised_address = "127.0.0.1"

[[queues]]
name = "orders"
skill = "orders"

[[queues]]
name = "regional"
skill = "regional"
"#;

    fn with_tls(dir: &Path, cert: &str, key: &str) -> String {
        format!(
            "{BASE}\n[tls]\ncert = {:?}\nkey = {:?}\n",
            dir.join(cert).display().to_string(),
            dir.join(key).display().to_string()
        )
    }

    fn pair(names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let c = rcgen::generate_simple_self_signed(names).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    #[test]
    fn a_tls_listener_needs_a_tls_section() {
        let errors = Config::from_toml(BASE).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "tls");
        assert!(
            errors[0].message.contains("tls:127.0.0.1:5061"),
            "{errors:?}"
        );
    }

    #[test]
    fn certificate_files_are_checked_with_their_key_path() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair(&["localhost"]);
        let (_, other_key) = pair(&["localhost"]);
        std::fs::write(dir.path().join("server.pem"), &cert).unwrap();
        std::fs::write(dir.path().join("server.key"), &key).unwrap();
        std::fs::write(dir.path().join("other.key"), &other_key).unwrap();
        std::fs::write(dir.path().join("junk.pem"), "hello\n").unwrap();

        let config = Config::from_toml(&with_tls(dir.path(), "server.pem", "server.key")).unwrap();
        assert!(config.tls.is_some());

        let errors =
            Config::from_toml(&with_tls(dir.path(), "missing.pem", "server.key")).unwrap_err();
        assert_eq!(errors[0].path, "tls.cert");
        assert!(errors[0].message.contains("missing.pem"), "{errors:?}");

        let errors =
            Config::from_toml(&with_tls(dir.path(), "junk.pem", "server.key")).unwrap_err();
        assert_eq!(errors[0].path, "tls.cert");
        assert!(
            errors[0].message.contains("no PEM certificate"),
            "{errors:?}"
        );

        let errors =
            Config::from_toml(&with_tls(dir.path(), "server.pem", "junk.pem")).unwrap_err();
        assert_eq!(errors[0].path, "tls.key");
        assert!(
            errors[0].message.contains("no PEM private key"),
            "{errors:?}"
        );

        let errors =
            Config::from_toml(&with_tls(dir.path(), "server.pem", "other.key")).unwrap_err();
        assert_eq!(errors[0].path, "tls.key");
        assert!(errors[0].message.contains("does not fit"), "{errors:?}");

        let text = format!(
            "{}ca = {:?}\n",
            with_tls(dir.path(), "server.pem", "server.key"),
            dir.path().join("junk.pem").display().to_string()
        );
        let errors = Config::from_toml(&text).unwrap_err();
        assert_eq!(errors[0].path, "tls.ca");
    }
}
