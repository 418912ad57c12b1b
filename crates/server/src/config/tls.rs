//! `[tls]` (PRODUCT §4): the certificate of `tls:` (and `wss:`) listeners, and what the
//! server trusts when it opens TLS connections itself.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Config, ConfigError, ListenTransport, err};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first. Re-read on SIGHUP. Relative to the configuration
    /// file's directory.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the leaf certificate. Re-read on SIGHUP.
    pub key: PathBuf,
    /// PEM bundle of the authorities trusted when the server connects to a `;transport=tls`
    /// peer; without it, the system's trust store. Re-read on SIGHUP.
    #[serde(default)]
    pub ca: Option<PathBuf>,
}

impl Config {
    /// Secure listeners need `[tls]`.
    pub(super) fn validate_tls(&self, errors: &mut Vec<ConfigError>) {
        let secure = self
            .listen_addrs()
            .iter()
            .find(|l| matches!(l.transport, ListenTransport::Tls | ListenTransport::Wss))
            .map(|l| format!("{}:{}", l.transport, l.addr));
        if let (None, Some(listen)) = (&self.tls, secure) {
            errors.push(err(
                "tls",
                format!("the listener {listen} needs a [tls] section with cert and key"),
            ));
        }
    }

    /// Takes relative `[tls]` paths from the configuration file's directory (`config_dir`;
    /// the working directory for the built-in demo) and checks that the files load: readable
    /// PEM, a key that fits the certificate, a readable CA bundle. So a bad certificate stops
    /// start-up with exit 64 and `check-config` names it.
    pub fn resolve_tls_paths(&mut self, config_dir: Option<&Path>) -> Result<(), Vec<ConfigError>> {
        let Some(tls) = &mut self.tls else {
            return Ok(());
        };
        if let Some(base) = config_dir {
            for path in [&mut tls.cert, &mut tls.key]
                .into_iter()
                .chain(tls.ca.as_mut())
            {
                if path.is_relative() {
                    *path = base.join(&*path);
                }
            }
        }
        let mut errors = Vec::new();
        if let Err(e) = crate::sip_edge::tls::load_certified_key(&tls.cert, &tls.key) {
            errors.push(err(e.key_path(), e.to_string()));
        }
        if let Some(ca) = &tls.ca
            && let Err(e) = crate::sip_edge::tls::load_roots(Some(ca))
        {
            errors.push(err("tls.ca", e.to_string()));
        }
        super::none_or_all(errors)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;

    /// A minimal file with a `tls:` listener.
    fn base() -> String {
        super::super::tests::minimal().replace(
            r#"listen = ["udp:127.0.0.1:5060"]"#,
            r#"listen = ["udp:127.0.0.1:5060", "tls:127.0.0.1:5061"]"#,
        )
    }

    fn with_tls(cert: &str, key: &str) -> String {
        format!("{}\n[tls]\ncert = {cert:?}\nkey = {key:?}\n", base())
    }

    /// Parses and resolves as `load_config` does for a file in `dir`.
    fn load(text: &str, dir: &Path) -> Result<Config, Vec<super::super::ConfigError>> {
        let mut config = Config::from_toml(text)?;
        config.resolve_tls_paths(Some(dir))?;
        Ok(config)
    }

    fn pair(names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let c = rcgen::generate_simple_self_signed(names).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    #[test]
    fn a_tls_listener_needs_a_tls_section() {
        let errors = Config::from_toml(&base()).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "tls");
        assert!(
            errors[0].message.contains("tls:127.0.0.1:5061"),
            "{errors:?}"
        );
    }

    #[test]
    fn an_outbound_tls_trunk_needs_a_tls_section() {
        let text = format!(
            "{}\n[[trunks]]\nname = \"pbx\"\nallow = [\"127.0.0.1\"]\noutbound = \"sip:127.0.0.1:5081;transport=tls\"\n",
            super::super::tests::minimal()
        );
        let errors = Config::from_toml(&text).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "trunks[0].outbound");
        assert!(errors[0].message.contains("[tls]"), "{errors:?}");
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

        let config = load(&with_tls("server.pem", "server.key"), dir.path()).unwrap();
        let tls = config.tls.unwrap();
        assert_eq!(
            tls.cert,
            dir.path().join("server.pem"),
            "relative to the file's directory"
        );
        assert_eq!(tls.key, dir.path().join("server.key"));

        let errors = load(&with_tls("missing.pem", "server.key"), dir.path()).unwrap_err();
        assert_eq!(errors[0].path, "tls.cert");
        assert!(errors[0].message.contains("missing.pem"), "{errors:?}");

        let errors = load(&with_tls("junk.pem", "server.key"), dir.path()).unwrap_err();
        assert_eq!(errors[0].path, "tls.cert");
        assert!(
            errors[0].message.contains("no PEM certificate"),
            "{errors:?}"
        );

        let errors = load(&with_tls("server.pem", "junk.pem"), dir.path()).unwrap_err();
        assert_eq!(errors[0].path, "tls.key");
        assert!(
            errors[0].message.contains("no PEM private key"),
            "{errors:?}"
        );

        let errors = load(&with_tls("server.pem", "other.key"), dir.path()).unwrap_err();
        assert_eq!(errors[0].path, "tls.key");
        assert!(errors[0].message.contains("does not fit"), "{errors:?}");

        let text = format!(
            "{}ca = \"junk.pem\"\n",
            with_tls("server.pem", "server.key")
        );
        let errors = load(&text, dir.path()).unwrap_err();
        assert_eq!(errors[0].path, "tls.ca");
    }
}
