//! What the HTTP API sees of outbound calls in progress: their rows of the active-call
//! snapshot (`GET /api/v1/calls/active`), beside the inbound calls `mod.rs` publishes.

use super::outbound::Outbound;
use super::{Calls, timestamp};
use crate::http::shared::ActiveCall;

impl Calls {
    /// Outbound calls in progress for the active-call snapshot, oldest first: `ringing` while
    /// the agent's phone rings, `dialing` while the agent hears the number ring, `talking`.
    pub(super) fn outbound_snapshot(&self) -> Vec<ActiveCall> {
        let mut list: Vec<(&u64, &Outbound)> = self.outbound.iter().collect();
        list.sort_by_key(|(key, o)| (o.started_at, **key));
        list.into_iter()
            .map(|(&call, o)| {
                let state = match (&o.agent, o.answered_at) {
                    (None, _) => "ringing",
                    (Some(_), None) => "dialing",
                    (Some(_), Some(_)) => "talking",
                };
                ActiveCall {
                    call,
                    id: o.record_id.clone(),
                    sip_call_id: o
                        .customer
                        .as_ref()
                        .map(|c| c.sip_call_id.clone())
                        .unwrap_or_default(),
                    trunk: self
                        .trunks
                        .get(o.trunk)
                        .map(|t| t.name.clone())
                        .unwrap_or_default(),
                    caller: self.caller_id(Some(o.trunk)),
                    dialed: o.number.clone(),
                    client_class: String::new(),
                    purpose: String::new(),
                    state: state.to_owned(),
                    queue: o.queue.clone(),
                    ringing: if o.agent.is_none() {
                        vec![o.agent_id.clone()]
                    } else {
                        Vec::new()
                    },
                    agent: o.agent.as_ref().map(|_| o.agent_id.clone()),
                    route: o.route.clone(),
                    started_at: timestamp(o.started_at).to_rfc3339(),
                    answered_at: o.answered_at.map(|a| timestamp(a).to_rfc3339()),
                    on_hold: false,
                    agent_media: o.agent.as_ref().map(|_| o.media.agent_media().to_owned()),
                    direction: "outbound".to_owned(),
                    kind: Some(o.kind.as_str().to_owned()),
                    campaign: o.campaign.as_ref().map(|c| c.campaign_id.clone()),
                }
            })
            .collect()
    }
}
