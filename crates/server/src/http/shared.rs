//! State the endpoint task publishes for the HTTP API to read, and the way the API wakes the
//! endpoint task after it changed something the engine must act on (an agent became
//! available: waiting calls must be offered now, not at the next SIP packet).
//!
//! These are snapshots behind short `std::sync::RwLock`s: written by one task, read by HTTP
//! handlers; never held across an await, and not on any engine path.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use tokio::sync::Notify;

/// A call in progress, as `GET /api/v1/calls/active` shows it (schema `ActiveCallView`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = ActiveCallView)]
pub struct ActiveCall {
    /// Switchboard's call number (as in logs and the live events).
    pub call: u64,
    /// The id its call-detail record will have.
    pub id: String,
    pub sip_call_id: String,
    pub trunk: String,
    pub caller: String,
    pub dialed: String,
    pub client_class: String,
    pub purpose: String,
    /// `queued`, `ringing` or `talking` (outbound calls: `ringing`, `dialing`, `talking`).
    #[schema(example = "talking")]
    pub state: String,
    pub queue: Option<String>,
    /// Agents being rung now.
    pub ringing: Vec<String>,
    /// The agent talking to the caller.
    pub agent: Option<String>,
    /// The route so far: chain steps tried and why.
    pub route: String,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub started_at: String,
    #[schema(format = DateTime)]
    pub answered_at: Option<String>,
    /// The agent or the caller holds the call.
    /// The agent or the caller (their PBX) holds the call.
    pub on_hold: bool,
    /// While talking: `webrtc` when the agent is a browser (SIP over WebSocket, DTLS-SRTP
    /// through the call's WebRTC leg), `rtp` for a SIP phone.
    #[schema(example = "webrtc")]
    pub agent_media: Option<String>,
    /// `inbound` (from a trunk) or `outbound` (agent first: `ringing` the agent, `dialing`
    /// the number, `talking`).
    #[schema(example = "inbound")]
    pub direction: String,
    /// Outbound calls: `click`, `callback` or `campaign`.
    pub kind: Option<String>,
    /// The campaign an outbound call is made for.
    pub campaign: Option<String>,
}

/// Everything the endpoint task publishes.
#[derive(Debug, Default)]
pub struct Shared {
    /// Agent id → registered contact URIs.
    pub registrations: RwLock<BTreeMap<String, Vec<String>>>,
    /// Calls in progress, in arrival order.
    pub active_calls: RwLock<Vec<ActiveCall>>,
    /// Wakes the endpoint task to carry out engine decisions made outside it.
    pub wake: Notify,
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared::default())
    }

    pub fn registrations(&self) -> BTreeMap<String, Vec<String>> {
        self.registrations
            .read()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    pub fn set_registration(&self, agent: &str, contacts: Vec<String>) {
        if let Ok(mut r) = self.registrations.write() {
            if contacts.is_empty() {
                r.remove(agent);
            } else {
                r.insert(agent.to_owned(), contacts);
            }
        }
    }

    pub fn active_calls(&self) -> Vec<ActiveCall> {
        self.active_calls
            .read()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    pub fn set_active_calls(&self, calls: Vec<ActiveCall>) {
        if let Ok(mut r) = self.active_calls.write() {
            *r = calls;
        }
    }
}
