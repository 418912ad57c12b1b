//! Admission of a new call against the server's resources (see `ops::headroom`): an INVITE
//! that would take the last RTP ports or descriptors is refused with `503` and `Retry-After`
//! before any port is taken or any agent rung, counted in
//! `switchboard_sip_refused_total{reason="overload"}` and recorded `rejected` like the
//! endpoint's other overload refusals.

use switchboard_sip::{Endpoint, Instant, Peer, ServerTxnKey};
use switchboard_sipmsg::{HeaderName, Request};

use super::Calls;
use crate::sip_edge::security::Arrival;

/// What a refused caller is told to wait before trying again, in seconds.
const RETRY_AFTER_S: &str = "5";

impl Calls {
    /// `true` when the call was refused here for want of resources and must go no further.
    pub(super) fn refuse_without_headroom(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        txn: ServerTxnKey,
        req: &Request,
        src: &Peer,
    ) -> bool {
        let Err(short) = self.headroom.admit(now, self.media.port_pairs()) else {
            return false;
        };
        self.headroom.refused(now, short);
        self.metrics
            .sip_refused_total
            .with_label_values(&["overload"])
            .inc();
        Arrival { txn, req, src }.refuse(
            ep,
            now,
            (503, "Service Unavailable"),
            Some((HeaderName::RetryAfter, RETRY_AFTER_S.to_owned())),
        );
        self.write_overload_refusal(now, req, src.addr.ip());
        true
    }
}
