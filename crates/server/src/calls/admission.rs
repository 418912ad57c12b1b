//! Which trunk an INVITE comes from: a source inside a trunk's `allow` networks, else a
//! trunk whose `username`/`password` answer a `407` digest challenge (RFC 3261 §22.3, the
//! proxy form a PBX expects from a carrier); else `403`. Fails closed: a source outside
//! every `allow` list is never admitted without credentials.

use std::net::IpAddr;

use switchboard_sip::Instant;
use switchboard_sip::digest::{Algorithm, Challenge, Credentials, NonceStatus};
use switchboard_sipmsg::{HeaderName, Request};

use super::{Calls, Trunk};

/// What admission decided for one INVITE.
#[derive(Debug)]
pub(super) enum Admission {
    /// The trunk the call belongs to.
    Trunk(Trunk),
    /// Answer `407` with this `Proxy-Authenticate` value.
    Challenge(String),
    /// Answer `403`; the reason is logged and recorded.
    Refused(&'static str),
}

impl Calls {
    pub(super) fn admit(&mut self, now: Instant, req: &Request, ip: IpAddr) -> Admission {
        if let Some(t) = self
            .trunks
            .iter()
            .find(|t| t.allow.iter().any(|net| net.contains(&ip)))
        {
            return Admission::Trunk(t.clone());
        }
        if !self.trunks.iter().any(|t| t.credentials.is_some()) {
            return Admission::Refused("source of no trunk");
        }
        let Some(value) = req.headers.get(&HeaderName::ProxyAuthorization) else {
            return Admission::Challenge(self.challenge(now, false));
        };
        let Ok(creds) = Credentials::parse(value) else {
            return Admission::Refused("malformed Proxy-Authorization");
        };
        let trunk = self.trunks.iter().find(|t| {
            t.credentials
                .as_ref()
                .is_some_and(|(user, _)| *user == creds.username)
        });
        let Some(trunk) = trunk else {
            return Admission::Refused("unknown trunk user");
        };
        if creds.realm != self.domain {
            return Admission::Refused("credentials for another realm");
        }
        match self.trunk_nonces.check(&creds.nonce, now) {
            NonceStatus::Valid => {}
            NonceStatus::Stale => return Admission::Challenge(self.challenge(now, true)),
            NonceStatus::Invalid => return Admission::Refused("nonce not ours"),
        }
        let password = trunk
            .credentials
            .as_ref()
            .map(|(_, p)| p.as_str())
            .unwrap_or_default();
        if creds.verify("INVITE", password) {
            Admission::Trunk(trunk.clone())
        } else {
            Admission::Refused("wrong trunk password")
        }
    }

    fn challenge(&mut self, now: Instant, stale: bool) -> String {
        Challenge {
            realm: self.domain.clone(),
            nonce: self.trunk_nonces.issue(now),
            algorithm: Algorithm::Md5,
            qop_auth: true,
            opaque: None,
            stale,
        }
        .to_header_value()
    }
}
