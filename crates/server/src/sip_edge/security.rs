//! The `[security]` limits as the endpoint task applies them: the per-source INVITE rate
//! (`503` + `Retry-After` before call control sees the request) and the registrar's failed-
//! authentication guard, whose notices become log lines (one per failure with source and user,
//! the shape fail2ban matches) and whose counters become metrics.

use prometheus::IntCounter;
use switchboard_sip::{AuthNotice, Endpoint, GuardConfig, Peer, RateLimiter, ServerTxnKey};
use switchboard_sipmsg::{HeaderName, Method, Request, Response};
use tracing::{debug, warn};

use crate::config::SecurityConfig;
use crate::ops::metrics::Metrics;

/// The registrar's guard limits from `[security]`.
pub fn guard_config(cfg: &SecurityConfig) -> GuardConfig {
    GuardConfig {
        failures_per_minute: cfg.auth_failures_per_minute,
        ban: std::time::Duration::from_secs(u64::from(cfg.auth_ban_s)),
    }
}

/// Per-source limits and their counters, owned by the endpoint task.
#[derive(Debug)]
pub struct Security {
    invites: RateLimiter,
    register_failures: IntCounter,
    refused_banned: IntCounter,
    refused_rate_limit: IntCounter,
    refused_overload: IntCounter,
}

impl Security {
    pub fn new(cfg: &SecurityConfig, metrics: &Metrics) -> Security {
        Security {
            invites: RateLimiter::new(cfg.invite_rate_per_source),
            register_failures: metrics.auth_failures_total.with_label_values(&["register"]),
            refused_banned: metrics.sip_refused_total.with_label_values(&["banned"]),
            refused_rate_limit: metrics.sip_refused_total.with_label_values(&["rate_limit"]),
            refused_overload: metrics.sip_refused_total.with_label_values(&["overload"]),
        }
    }

    /// Applies the INVITE rate to a new request; `true` when it was refused here (with `503`
    /// and `Retry-After`) and must go no further. In-dialog requests (re-INVITEs) always pass:
    /// the limit guards new calls, never the ones already up.
    pub fn refuse_over_rate(
        &mut self,
        ep: &mut Endpoint,
        now: switchboard_sip::Instant,
        txn: ServerTxnKey,
        req: &Request,
        src: &Peer,
    ) -> bool {
        let in_dialog = req.to_hdr().ok().is_some_and(|to| to.tag().is_some());
        if req.method != Method::Invite || in_dialog {
            return false;
        }
        let Err(retry_after) = self.invites.admit(src.addr.ip(), now) else {
            return false;
        };
        self.refused_rate_limit.inc();
        debug!(peer = %src.addr, "INVITE over invite_rate_per_source: 503");
        let tag = ep.new_tag();
        let mut resp = Response::from_request(req, 503, "Service Unavailable", Some(&tag));
        resp.headers
            .push(HeaderName::RetryAfter, retry_after.to_string());
        if let Err(e) = ep.respond(now, txn, resp) {
            debug!("503 not sent: {e}");
        }
        true
    }

    /// After each batch of work: logs the registrar's notices and brings the counters up to
    /// the endpoint's totals.
    pub fn after_batch(&mut self, ep: &mut Endpoint) {
        while let Some(notice) = ep.registrar_mut().poll_auth_notice() {
            match notice {
                AuthNotice::Failed {
                    source,
                    user,
                    reason,
                } => warn!(%source, user = %user, reason, "authentication failed"),
                AuthNotice::Banned {
                    source,
                    failures,
                    ban,
                } => warn!(
                    %source,
                    failures,
                    ban_s = ban.as_secs(),
                    "source banned after repeated authentication failures"
                ),
            }
        }
        let guard = ep.registrar().guard_stats();
        Metrics::advance_to(&self.register_failures, guard.failures);
        Metrics::advance_to(&self.refused_banned, guard.refused_banned);
        Metrics::advance_to(&self.refused_overload, ep.stats().overload_rejections);
    }
}
