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

/// A call in progress, as `GET /api/v1/calls/active` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActiveCall {
    /// Switchboard's call number (also in logs and live events).
    pub call: u64,
    /// The record id its CDR will have.
    pub id: String,
    pub sip_call_id: String,
    pub trunk: String,
    pub caller: String,
    pub dialed: String,
    pub client_class: String,
    pub purpose: String,
    /// `queued`, `ringing` or `talking`.
    pub state: String,
    pub queue: Option<String>,
    /// Agents being rung now.
    pub ringing: Vec<String>,
    pub agent: Option<String>,
    /// The route so far (chain steps tried and why).
    pub route: String,
    /// RFC 3339.
    pub started_at: String,
    pub answered_at: Option<String>,
    /// The agent or the caller holds the call.
    pub on_hold: bool,
    /// The agent's media while talking: `webrtc` (a browser, through the call's WebRTC leg)
    /// or `rtp` (a SIP phone).
    pub agent_media: Option<String>,
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
