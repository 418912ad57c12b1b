//! Which trunk an INVITE comes from: a source inside a trunk's `allow` networks, else a
//! trunk whose `username`/`password` answer a `407` digest challenge (RFC 3261 §22.3, the
//! proxy form a PBX expects from a carrier); else `403`. Fails closed: a source outside
//! every `allow` list is never admitted without credentials. As for agents' REGISTERs, an
//! answer must use `qop=auth` with a fresh nonce count; every wrong answer is logged with its
//! source and user and counted in `switchboard_auth_failures_total{kind="invite"}`.

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
        let Some((nc, _)) = creds.qop_auth.clone() else {
            return self.auth_failed(ip, &creds.username, "qop=auth missing");
        };
        let trunk = self.trunks.iter().find(|t| {
            t.credentials
                .as_ref()
                .is_some_and(|(user, _)| *user == creds.username)
        });
        let Some(trunk) = trunk.cloned() else {
            return self.auth_failed(ip, &creds.username, "unknown trunk user");
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
        if !creds.verify("INVITE", password) {
            return self.auth_failed(ip, &creds.username, "wrong trunk password");
        }
        let issued = self.trunk_nonces.issued_at(&creds.nonce).unwrap_or(now);
        if !self.trunk_nonce_counts.accept(&creds.nonce, nc, issued) {
            return self.auth_failed(ip, &creds.username, "nonce count replayed");
        }
        Admission::Trunk(trunk)
    }

    /// A wrong digest answer from a would-be trunk: logged (a line fail2ban can match),
    /// counted, refused.
    fn auth_failed(&self, source: IpAddr, user: &str, reason: &'static str) -> Admission {
        tracing::warn!(%source, user, reason, "authentication failed (trunk INVITE)");
        self.metrics
            .auth_failures_total
            .with_label_values(&["invite"])
            .inc();
        Admission::Refused(reason)
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
