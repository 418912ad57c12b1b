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

/// A new request as the checks in front of call control see it (the INVITE rate here, the
/// `sips:` rule in [`crate::sip_edge::tls::refuse_insecure_sips`]).
#[derive(Debug, Clone, Copy)]
pub struct Arrival<'a> {
    pub txn: ServerTxnKey,
    pub req: &'a Request,
    pub src: &'a Peer,
}

impl Arrival<'_> {
    /// Answers the request with `status` and `reason` (and one more header) on a fresh To
    /// tag; a response the endpoint cannot send is logged.
    pub fn refuse(
        self,
        ep: &mut Endpoint,
        now: switchboard_sip::Instant,
        (status, reason): (u16, &str),
        header: Option<(HeaderName, String)>,
    ) {
        let tag = ep.new_tag();
        let mut resp = Response::from_request(self.req, status, reason, Some(&tag));
        if let Some((name, value)) = header {
            resp.headers.push(name, value);
        }
        if let Err(e) = ep.respond(now, self.txn, resp) {
            debug!("{status} not sent: {e}");
        }
    }
}

/// How often the overload notices (share refusals, queue drops) may be logged.
const OVERLOAD_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Per-source limits and their counters, owned by the endpoint task.
#[derive(Debug)]
pub struct Security {
    invites: RateLimiter,
    /// Share refusals and queue drops at the last overload log line, and when it was.
    logged: (u64, (u64, u64), Option<switchboard_sip::Instant>),
    register_failures: IntCounter,
    refused_banned: IntCounter,
    refused_rate_limit: IntCounter,
    refused_overload: IntCounter,
    /// The endpoint's overload refusals already counted (call admission counts its own
    /// refusals in the same counter).
    endpoint_overload: u64,
}

impl Security {
    pub fn new(cfg: &SecurityConfig, metrics: &Metrics) -> Security {
        Security {
            invites: RateLimiter::new(cfg.invite_rate_per_source),
            logged: (0, (0, 0), None),
            register_failures: metrics.auth_failures_total.with_label_values(&["register"]),
            refused_banned: metrics.sip_refused_total.with_label_values(&["banned"]),
            refused_rate_limit: metrics.sip_refused_total.with_label_values(&["rate_limit"]),
            refused_overload: metrics.sip_refused_total.with_label_values(&["overload"]),
            endpoint_overload: 0,
        }
    }

    /// Applies the INVITE rate to a new request; `true` when it was refused here (with `503`
    /// and `Retry-After`) and must go no further. In-dialog requests (re-INVITEs) always pass:
    /// the limit guards new calls, never the ones already up.
    pub fn refuse_over_rate(
        &mut self,
        ep: &mut Endpoint,
        now: switchboard_sip::Instant,
        arrival: Arrival<'_>,
    ) -> bool {
        let Arrival { req, src, .. } = arrival;
        let in_dialog = req.to_hdr().ok().is_some_and(|to| to.tag().is_some());
        if req.method != Method::Invite || in_dialog {
            return false;
        }
        let Err(retry_after) = self.invites.admit(src.addr.ip(), now) else {
            return false;
        };
        self.refused_rate_limit.inc();
        debug!(peer = %src.addr, "INVITE over invite_rate_per_source: 503");
        let retry_after = (HeaderName::RetryAfter, retry_after.to_string());
        arrival.refuse(ep, now, (503, "Service Unavailable"), Some(retry_after));
        true
    }

    /// After each batch of work: logs the registrar's notices and, at most every 10 s, what
    /// overload shed since the last line (`dropped`: the inbound queue's drops, priority and
    /// normal); brings the counters up to the endpoint's totals.
    pub fn after_batch(
        &mut self,
        ep: &mut Endpoint,
        now: switchboard_sip::Instant,
        dropped: (u64, u64),
    ) {
        let shared = ep.stats().source_share_rejections;
        let (logged_share, logged_drops, at) = self.logged;
        let due = at.is_none_or(|at| now >= at + OVERLOAD_LOG_EVERY);
        if due && (shared > logged_share || dropped != logged_drops) {
            if shared > logged_share {
                warn!(
                    refused = shared - logged_share,
                    last_source = ?ep.stats().last_share_refused,
                    "new requests refused with 503: their source holds its share of the transaction table (sip.max_transactions_source_share)"
                );
            }
            if dropped != logged_drops {
                warn!(
                    priority = dropped.0.saturating_sub(logged_drops.0),
                    normal = dropped.1.saturating_sub(logged_drops.1),
                    "datagrams dropped: the inbound queue is full (sip.inbound_queue_messages / inbound_queue_bytes)"
                );
            }
            self.logged = (shared, dropped, Some(now));
        }
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
        let overload = ep.stats().overload_rejections;
        self.refused_overload
            .inc_by(overload.saturating_sub(self.endpoint_overload));
        self.endpoint_overload = overload;
    }
}
