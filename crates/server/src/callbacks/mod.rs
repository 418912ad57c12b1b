//! The call-back dialer: works through the stored call-backs (table `callbacks`) and carries
//! out the schedule's decisions ([`plan`]): when one is due and an agent of its queue is free,
//! it is taken (`dialing`) and handed to call control as an agent-first outbound call; the
//! attempt's result comes back on a channel and the schedule decides what follows (done, a
//! retry, failed). A pending call-back whose validity ended is `expired`, never dialed.
//!
//! A node holds the call-backs it is dialing under a lease (`[callbacks] lease_s`) that it
//! renews every third of the lease; every node takes back to `pending` other nodes' ones
//! whose lease ran out (their node died), and a server puts back its own `dialing` rows at
//! start, so nothing is lost over a crash or a dead node. The interrupted attempt is not
//! counted: the customer's phone may not have rung at all.
//!
//! In-queue call-backs, whose callers keep their place in the queue, are stored and taken
//! here too ([`places`]). The task itself, results and the start-up put-back are the shared
//! dialer core's ([`crate::dialer`]); this is its [`CallbackWork`].

mod places;
pub mod plan;

pub use places::PlaceNote;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use switchboard_store::{AttemptEnd, Callback, CallbackStatus, StoreError, Timestamp};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::calls::{DialRequest, OutboundKind};
use crate::dialer::{self, Core, Parts, Work};
use crate::ops::metrics::Metrics;
use plan::{AttemptResult, Due, Policy};

/// How many due call-backs one look takes at most.
const BATCH: u32 = 50;

/// What the do-not-call check of a call-back needs.
#[derive(Debug, Clone, Copy)]
struct DncCheck<'a> {
    id: &'a str,
    number: &'a str,
    attempts: u32,
}

impl<'a> DncCheck<'a> {
    fn of(cb: &'a Callback) -> Self {
        DncCheck {
            id: &cb.id,
            number: &cb.number,
            attempts: cb.attempts,
        }
    }
}

/// The result of one call-back attempt, reported by call control.
#[derive(Debug, Clone)]
pub struct AttemptReport {
    pub callback_id: String,
    pub result: AttemptResult,
}

/// The call-back dialer task.
pub type Dialer = dialer::Dialer<CallbackWork>;

impl Dialer {
    pub fn new(
        parts: Parts,
        metrics: Metrics,
        places: mpsc::UnboundedReceiver<PlaceNote>,
    ) -> Dialer {
        let (core, reports) = Core::new(parts);
        let work = CallbackWork {
            policy: core.config.callbacks.policy(&core.config.routing.timezone),
            lease: core.config.callbacks.lease(),
            core,
            metrics,
            in_flight: HashMap::new(),
            renewed_at: None,
            held: HashSet::new(),
            unstored: Vec::new(),
        };
        Dialer::with(work, reports, Some(places))
    }
}

/// What the call-back dialer does on its own: the schedule, leases, held places.
#[derive(Debug)]
pub struct CallbackWork {
    core: Core<AttemptReport>,
    policy: Policy,
    metrics: Metrics,
    /// Attempts made before the one in flight, by call-back id.
    in_flight: HashMap<String, u32>,
    /// How long a claim lasts unless renewed, and when this node last renewed its claims.
    lease: Duration,
    renewed_at: Option<Timestamp>,
    /// Call-backs whose caller's place the engine holds: the engine decides when they are
    /// dialed, so the schedule leaves them alone.
    held: HashSet<String>,
    /// In-queue call-backs not yet stored (the database was unreachable); retried every tick.
    unstored: Vec<Callback>,
}

impl Work for CallbackWork {
    type Report = AttemptReport;
    type Status = CallbackStatus;
    type Note = PlaceNote;
    const ONE: &'static str = "call-back";
    const NOT_OURS: &'static str =
        "the call-back is no longer this node's (its lease ran out, or it was taken back)";

    async fn requeue(&self, now: Timestamp) -> Result<u64, StoreError> {
        let store = &self.core.store;
        store.requeue_dialing_callbacks(&self.core.node, now).await
    }

    async fn tick(&mut self, now: Timestamp) {
        self.store_held().await;
        self.keep_leases(now).await;
        // Without a trunk that has `outbound` nothing is dialed: call-backs stay pending
        // (stored, listed, cancellable) until they expire.
        let can_dial = self.core.can_dial();
        match self.core.store.due_callbacks(now, BATCH).await {
            Ok(due) => self.dial_due(now, due, can_dial).await,
            Err(e) => debug!("call-backs not read: {e}"),
        }
        self.publish_counts().await;
    }

    async fn ended(&mut self, report: AttemptReport, now: Timestamp) -> (String, AttemptEnd) {
        let stored = match self.core.store.callback(&report.callback_id).await {
            Ok(cb) => cb,
            Err(e) => {
                warn!(id = %report.callback_id, "call-back not read for its result: {e}");
                None
            }
        };
        let before = match self.in_flight.remove(&report.callback_id) {
            Some(n) => n,
            None => stored.as_ref().map_or(0, |cb| cb.attempts),
        };
        // Unknown when the row cannot be read: the attempt's time stands for it.
        let asked = stored.map_or(now, |cb| plan::due_from(cb.at, cb.created_at));
        let next = self.policy.after(before, report.result, asked, now);
        let end = AttemptEnd {
            status: next.status,
            attempts: next.attempts,
            next_at: next.next_at,
            last_result: report.result.as_str().to_owned(),
        };
        (report.callback_id, end)
    }

    async fn store_end(
        &self,
        id: &str,
        end: &AttemptEnd,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let store = &self.core.store;
        store
            .end_callback_attempt(id, &self.core.node, end, now)
            .await
    }

    async fn settled(&mut self) {
        self.publish_counts().await;
    }

    async fn on_note(&mut self, note: PlaceNote) {
        self.on_place(note).await;
    }
}

impl CallbackWork {
    /// Renews this node's claims every third of the lease, and takes back to `pending` the
    /// claims of any other node whose lease ran out.
    async fn keep_leases(&mut self, now: Timestamp) {
        let (store, node) = (&self.core.store, self.core.node.as_str());
        let third = chrono::Duration::from_std(self.lease / 3).unwrap_or_default();
        let due = self.renewed_at.is_none_or(|at| now >= at + third);
        if !self.in_flight.is_empty() && due {
            let until = now + self.lease;
            match store.renew_callback_claims(node, until).await {
                Ok(held) => {
                    self.renewed_at = Some(now);
                    let expected = self.in_flight.len() as u64;
                    if held < expected {
                        warn!(
                            held,
                            expected,
                            "some call-backs being dialed were taken back by another node (this node's lease ran out)"
                        );
                    }
                }
                Err(e) => warn!("call-back leases not renewed (retried): {e}"),
            }
        }
        match store.reclaim_lapsed_callbacks(node, now).await {
            Ok(taken) => {
                for (id, lapsed) in taken {
                    info!(%id, node = lapsed.as_deref().unwrap_or("?"), "call-back dialing on a node whose lease ran out is pending again");
                }
            }
            Err(e) => debug!("lapsed call-back leases not checked: {e}"),
        }
    }

    async fn dial_due(&mut self, now: Timestamp, due: Vec<Callback>, can_dial: bool) {
        let mut reserved = HashSet::new();
        for cb in due {
            match self
                .policy
                .due(plan::due_from(cb.at, cb.created_at), cb.next_at, now)
            {
                Due::Now if can_dial => {}
                // Not yet, outside the calling window, or no trunk to dial: stays pending.
                Due::Now | Due::Later(_) => continue,
                Due::Expired => {
                    self.expire(&cb, now).await;
                    continue;
                }
            }
            if self.held.contains(&cb.id) {
                continue; // Its caller's place comes first in the queue: the engine decides.
            }
            if self.on_dnc_list(DncCheck::of(&cb), now).await {
                continue;
            }
            let Some(queue) = self.queue_of(&cb) else {
                continue;
            };
            let Some(agent) = self.free_agent(&queue, &reserved) else {
                continue; // Nobody free: it waits for the next look.
            };
            let (store, node) = (&self.core.store, self.core.node.as_str());
            match store
                .claim_callback(&cb.id, node, now, now + self.lease)
                .await
            {
                Ok(true) => {}
                Ok(false) => continue, // Cancelled meanwhile.
                Err(e) => {
                    warn!(id = %cb.id, "call-back not taken for dialing: {e}");
                    continue;
                }
            }
            let label = self.label(&cb.number);
            info!(id = %cb.id, number = %cb.number, %agent, %queue, attempt = cb.attempts + 1, "call-back due: offering it to the agent");
            reserved.insert(agent.clone());
            if self.in_flight.is_empty() {
                self.renewed_at = Some(now);
            }
            self.in_flight.insert(cb.id.clone(), cb.attempts);
            let req = DialRequest {
                callback_id: Some(cb.id.clone()),
                report: Some(self.core.reports.clone()),
                ..dialer::request(OutboundKind::Callback, agent, cb.number, Some(queue), label)
            };
            if !self.core.place(req) {
                return; // Call control has stopped (shutdown).
            }
        }
    }

    /// A call-back whose number went on the do-not-call list after it was scheduled is
    /// cancelled (`last_result` `dnc`), never dialed. True when it is listed (or the list
    /// cannot be read: nothing is dialed unchecked).
    async fn on_dnc_list(&mut self, cb: DncCheck<'_>, now: Timestamp) -> bool {
        match self.core.store.dnc(cb.number).await {
            Ok(None) => false,
            Ok(Some(_)) => {
                let end = AttemptEnd {
                    status: CallbackStatus::Cancelled,
                    attempts: cb.attempts,
                    next_at: None,
                    last_result: "dnc".to_owned(),
                };
                let (store, node) = (&self.core.store, self.core.node.as_str());
                match store.claim_callback(cb.id, node, now, now).await {
                    Ok(true) => match store.end_callback_attempt(cb.id, node, &end, now).await {
                        Ok(_) => {
                            info!(id = %cb.id, number = %cb.number, "call-back cancelled: the number is on the do-not-call list");
                        }
                        Err(e) => {
                            warn!(id = %cb.id, "call-back on the do-not-call list not cancelled yet: {e}")
                        }
                    },
                    Ok(false) => {}
                    Err(e) => {
                        warn!(id = %cb.id, "call-back on the do-not-call list not taken: {e}")
                    }
                }
                true
            }
            Err(e) => {
                warn!(id = %cb.id, "do-not-call list not read; the call-back waits: {e}");
                true
            }
        }
    }

    /// A pending call-back not dialed within its validity (`[callbacks] expire_after_s`).
    async fn expire(&self, cb: &Callback, now: Timestamp) {
        match self.core.store.expire_callback(&cb.id, now).await {
            Ok(true) => {
                info!(id = %cb.id, number = %cb.number, attempts = cb.attempts, "call-back expired: not dialed within its validity");
            }
            Ok(false) => {} // Cancelled or taken meanwhile.
            Err(e) => warn!(id = %cb.id, "call-back not expired yet (retried): {e}"),
        }
    }

    /// What the agent's phone shows: "call-back to +385…, client X".
    fn label(&self, number: &str) -> String {
        self.core.label(format!("call-back to {number}"), number)
    }

    /// The call-back's queue, the `[callbacks] queue`, or the first queue.
    fn queue_of(&self, cb: &Callback) -> Option<String> {
        cb.queue.clone().or_else(|| self.default_queue())
    }

    /// The `[callbacks] queue`, or the first queue.
    fn default_queue(&self) -> Option<String> {
        self.core
            .config
            .callbacks
            .queue
            .clone()
            .or_else(|| self.core.config.queues.first().map(|q| q.name.clone()))
    }

    /// The free agent of `queue` idle longest (with the queue's skill, `available`).
    fn free_agent(&self, queue: &str, reserved: &HashSet<String>) -> Option<String> {
        self.core
            .free_agents(queue)
            .into_iter()
            .find(|a| !reserved.contains(a))
    }

    /// `switchboard_callbacks{status}` from the table.
    async fn publish_counts(&self) {
        let Ok(counts) = self.core.store.callback_counts().await else {
            return;
        };
        for status in [
            CallbackStatus::Pending,
            CallbackStatus::Dialing,
            CallbackStatus::Done,
            CallbackStatus::Failed,
            CallbackStatus::Cancelled,
            CallbackStatus::Expired,
        ] {
            let n = counts
                .iter()
                .find(|(s, _)| s == status.as_str())
                .map_or(0, |(_, n)| *n);
            self.metrics
                .callbacks
                .with_label_values(&[status.as_str()])
                .set(n);
        }
    }
}
