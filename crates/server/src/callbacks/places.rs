//! In-queue call-backs on the dialer's side. Call control books them when a waiting caller
//! presses `[callbacks] in_queue_digit` ([`PlaceNote::Held`]): the call-back is stored as
//! `pending` (linked to the caller's record by its id) while the engine holds the caller's
//! place, and the schedule leaves it alone. When the engine offers the held place
//! ([`PlaceNote::Reached`]) it is taken (`pending` → `dialing`, so a cancel and the dial never
//! both win) and handed back to call control to be dialed with the offered agent; from there
//! its attempts follow the rules of every call-back (retries, `failed`). A place not dialed now
//! (cancelled, on the do-not-call list, outside the calling window, the database unreachable)
//! is given up and its agents are free again; the stored call-back, if still pending, is then
//! dialed as a scheduled one. So is one whose server stopped before its place was served: its
//! `next_at` is when the caller would have left the queue at the latest.

use switchboard_engine::{CallId, Offer};
use switchboard_store::{Callback, now_utc};
use tracing::{info, warn};

use super::plan::Due;
use super::{CallbackWork, DncCheck};
use crate::calls::{CallInput, DialRequest, OutboundKind};
use crate::dialer;

/// What call control tells the dialer about held places.
#[derive(Debug)]
pub enum PlaceNote {
    /// A caller asked to be called back keeping their place: store the call-back.
    Held(Box<Callback>),
    /// The engine offered the held place of call-back `callback_id`: take it and hand it
    /// back for dialing with the offer's agent, or give the place up.
    Reached {
        callback_id: String,
        number: String,
        queue: Option<String>,
        offer: Offer,
    },
}

impl CallbackWork {
    pub(super) async fn on_place(&mut self, note: PlaceNote) {
        match note {
            PlaceNote::Held(cb) => {
                info!(id = %cb.id, number = %cb.number, "in-queue call-back booked; the caller keeps their place");
                self.held.insert(cb.id.clone());
                self.unstored.push(*cb);
                self.store_held().await;
                self.publish_counts().await;
            }
            PlaceNote::Reached {
                callback_id,
                number,
                queue,
                offer,
            } => {
                self.place_reached(callback_id, number, queue, offer).await;
                self.publish_counts().await;
            }
        }
    }

    /// Stores the in-queue call-backs not stored yet.
    pub(super) async fn store_held(&mut self) {
        let mut left = Vec::new();
        for cb in std::mem::take(&mut self.unstored) {
            if let Err(e) = self.core.store.insert_callback(&cb).await {
                warn!(id = %cb.id, "in-queue call-back not stored yet (retried): {e}");
                left.push(cb);
            }
        }
        self.unstored = left;
    }

    async fn place_reached(
        &mut self,
        id: String,
        number: String,
        queue: Option<String>,
        offer: Offer,
    ) {
        let now = now_utc();
        let call = offer.call;
        self.held.remove(&id);
        self.store_held().await;
        if self.unstored.iter().any(|c| c.id == id) {
            warn!(%id, "held place reached before its call-back could be stored: it waits as a scheduled call-back");
            return self.give_up_place(call);
        }
        // Just booked: its validity counts from now.
        if self.policy.due(now, Some(now), now) != Due::Now {
            info!(%id, "held place reached outside the calling window: the call-back waits for the opening");
            return self.give_up_place(call);
        }
        let check = DncCheck {
            id: &id,
            number: &number,
            attempts: 0,
        };
        if self.on_dnc_list(check, now).await {
            return self.give_up_place(call);
        }
        match self
            .core
            .store
            .claim_callback(&id, &self.core.node, now, now + self.lease)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                info!(%id, "held place reached, but its call-back is no longer pending (cancelled): not dialed");
                return self.give_up_place(call);
            }
            Err(e) => {
                warn!(%id, "held place reached, but its call-back was not taken ({e}): it waits as a scheduled call-back");
                return self.give_up_place(call);
            }
        }
        let Some(agent) = offer
            .agents
            .first()
            .and_then(|&a| self.core.engine.agent_id(a))
            .map(str::to_owned)
        else {
            return self.give_up_place(call);
        };
        info!(%id, %number, %agent, "held place reached: dialing the call-back");
        self.in_flight.insert(id.clone(), 0);
        let label = self.label(&number);
        let queue = queue.or_else(|| self.default_queue());
        let req = DialRequest {
            callback_id: Some(id),
            report: Some(self.core.reports.clone()),
            place: Some(offer),
            ..dialer::request(OutboundKind::Callback, agent, number, queue, label)
        };
        // Unless call control has stopped: the row is then put back to `pending` at the next
        // start.
        self.core.place(req);
    }

    /// Tells call control to free the agents offered the held place of `call`.
    fn give_up_place(&self, call: CallId) {
        if !self.core.tell(CallInput::DropPlace { call }) {
            warn!("held place not given up: call control has stopped");
        }
    }
}
