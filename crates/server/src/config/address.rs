//! `[sip] advertised_address` as media needs it. Via and Contact may carry a host name, but
//! SDP connection lines and ICE candidates need an IP address: a name is resolved once,
//! when the configuration is loaded (before anything is bound), and a name that does not
//! resolve is a configuration error of that key — SDP never carries an address nobody chose.

use std::net::{IpAddr, ToSocketAddrs as _};

use super::{Config, ConfigError, err};

impl Config {
    /// Resolves `sip.advertised_address` into `sip.advertised_ip`. An IP address is taken as
    /// it is; a host name is looked up (the system resolver: `/etc/hosts`, then DNS), and of
    /// its addresses the first of the first SIP listener's family is kept.
    pub fn resolve_advertised_address(&mut self) -> Result<(), Vec<ConfigError>> {
        let name = self.sip.advertised_address.clone();
        if let Ok(ip) = name.parse::<IpAddr>() {
            self.sip.advertised_ip = Some(ip);
            return Ok(());
        }
        let key = "sip.advertised_address";
        let found: Vec<IpAddr> = match (name.as_str(), 0).to_socket_addrs() {
            Ok(addrs) => addrs.map(|a| a.ip()).collect(),
            Err(e) => {
                return Err(vec![err(
                    key,
                    format!(
                        "host name {name:?} does not resolve ({e}); give an IP address or a name this host can resolve"
                    ),
                )]);
            }
        };
        let prefer_v6 = self
            .listen_addrs()
            .first()
            .is_some_and(|l| l.addr.is_ipv6());
        match choose(&found, prefer_v6) {
            Some(ip) => {
                self.sip.advertised_ip = Some(ip);
                Ok(())
            }
            None => Err(vec![err(
                key,
                format!("host name {name:?} resolves to no usable address"),
            )]),
        }
    }

    /// The address written into SDP and ICE candidates: the resolved `advertised_ip`, else
    /// `advertised_address` itself when it is an IP address; `None` for a host name not
    /// resolved yet (see [`Config::resolve_advertised_address`]).
    pub fn advertised_ip(&self) -> Option<IpAddr> {
        self.sip
            .advertised_ip
            .or_else(|| self.sip.advertised_address.parse().ok())
    }

    /// Whether `advertised_address` is a host name (resolved to [`Config::advertised_ip`]).
    pub fn advertised_is_name(&self) -> bool {
        self.sip.advertised_address.parse::<IpAddr>().is_err()
    }
}

/// Of a name's addresses, the first of the preferred family, else the first; never the
/// unspecified address (`0.0.0.0` in SDP means "on hold" to some phones).
fn choose(found: &[IpAddr], prefer_v6: bool) -> Option<IpAddr> {
    let usable = || found.iter().filter(|ip| !ip.is_unspecified());
    usable()
        .find(|ip| ip.is_ipv6() == prefer_v6)
        .or_else(|| usable().next())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::minimal;

    fn config(advertised: &str) -> Config {
        let text = minimal().replace(
            "advertised_address = \"127.0.0.1\"",
            &format!("advertised_address = \"{advertised}\""),
        );
        Config::from_toml(&text).expect("valid")
    }

    #[test]
    fn an_ip_address_is_taken_as_it_is() {
        let mut c = config("192.0.2.10");
        assert_eq!(c.advertised_ip(), Some("192.0.2.10".parse().unwrap()));
        c.resolve_advertised_address().unwrap();
        assert_eq!(c.sip.advertised_ip, Some("192.0.2.10".parse().unwrap()));
        assert!(!c.advertised_is_name());
    }

    #[test]
    fn a_host_name_is_resolved_once_and_kept() {
        let mut c = config("localhost");
        assert_eq!(c.advertised_ip(), None, "no address before the lookup");
        c.resolve_advertised_address().unwrap();
        let ip = c.advertised_ip().unwrap();
        assert!(ip.is_loopback(), "{ip}");
        assert!(ip.is_ipv4(), "the listener is IPv4: {ip}");
        assert!(c.advertised_is_name());
    }

    #[test]
    fn a_name_that_does_not_resolve_is_an_error_of_its_key() {
        // `.invalid` never resolves (RFC 6761 §6.4).
        let mut c = config("pbx.example.invalid");
        let errors = c.resolve_advertised_address().unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "sip.advertised_address");
        assert!(errors[0].message.contains("does not resolve"), "{errors:?}");
        assert_eq!(c.advertised_ip(), None);
    }

    #[test]
    fn the_listener_family_wins_and_unspecified_never_does() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        assert_eq!(choose(&[v6, v4], false), Some(v4));
        assert_eq!(choose(&[v4, v6], true), Some(v6));
        assert_eq!(choose(&[v6], false), Some(v6));
        assert_eq!(choose(&[any, v4], false), Some(v4));
        assert_eq!(choose(&[any], false), None);
    }
}
