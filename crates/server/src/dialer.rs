//! The core both outbound dialers drive (call-backs, [`crate::callbacks`]; campaign contacts,
//! [`crate::campaigns`]): one task that looks every [`TICK`] for work, hears each attempt's
//! result from call control on a channel, and stores it; a [`Work`] says what differs (what is
//! claimed and how it is placed, what an ended attempt means, other notes it hears).
//!
//! At start the rows this node left `dialing` when it last stopped are put back to `pending`
//! before anything is dialed; a result the database did not take is kept and stored again every
//! tick, so nothing is lost while the database is away.

use std::collections::HashSet;
use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use switchboard_engine::{AgentStateKind, Engine};
use switchboard_store::{AttemptEnd, Store, StoreError, Timestamp, new_record_id, now_utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::calls::{CallInput, DialRequest, OutboundKind};
use crate::config::Config;

/// How often a dialer looks for due work.
pub const TICK: Duration = Duration::from_secs(1);

/// What one dialer does on its own; the [`Dialer`] runs it. The methods say their futures
/// are `Send` (an implementation writes them `async fn`), so that a dialer can be spawned.
pub trait Work: Send {
    /// An attempt's result, as call control reports it.
    type Report: Send;
    /// The status an ended attempt leaves its row in.
    type Status: Display + Send + Sync;
    /// Anything else the dialer hears (the held places of in-queue call-backs).
    type Note: Send;
    /// What a row is called in logs ("call-back"; with an "s", several).
    const ONE: &'static str;
    /// Why a result the database refused (no row matched) is dropped.
    const NOT_OURS: &'static str;

    /// Puts back to `pending` the rows this node left `dialing` when it last stopped.
    fn requeue(&self, now: Timestamp) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// One look for due work (the requeue is done and the kept results are stored).
    fn tick(&mut self, now: Timestamp) -> impl Future<Output = ()> + Send;

    /// What follows the attempt `report` tells of: the row's id and how it ends.
    fn ended(
        &mut self,
        report: Self::Report,
        now: Timestamp,
    ) -> impl Future<Output = (String, AttemptEnd<Self::Status>)> + Send;

    /// Stores how the attempt on row `id` ended; false when the row is no longer this
    /// node's to end.
    fn store_end(
        &self,
        id: &str,
        end: &AttemptEnd<Self::Status>,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// After a result was handled (stored, or kept to be stored again).
    fn settled(&mut self) -> impl Future<Output = ()> + Send;

    /// Another note heard.
    fn on_note(&mut self, note: Self::Note) -> impl Future<Output = ()> + Send;
}

/// What a dialer is built from: one set for both, cloned.
#[derive(Debug, Clone)]
pub struct Parts {
    pub store: Store,
    pub engine: Arc<Engine>,
    pub config: Arc<Config>,
    /// Call control's input.
    pub inputs: mpsc::UnboundedSender<CallInput>,
}

/// What every dialer holds: where it stores, whom it asks about agents, how it places calls.
#[derive(Debug)]
pub struct Core<R> {
    pub store: Store,
    pub engine: Arc<Engine>,
    pub config: Arc<Config>,
    inputs: mpsc::UnboundedSender<CallInput>,
    /// Where call control sends the results of this dialer's attempts.
    pub reports: mpsc::UnboundedSender<R>,
    /// This server's name: the rows it takes carry it, so that a restart puts back only its
    /// own attempts (nodes sharing one database).
    pub node: String,
}

impl<R> Core<R> {
    /// The core, and the receiving end of its reports (for [`Dialer::new`]).
    pub fn new(parts: Parts) -> (Core<R>, mpsc::UnboundedReceiver<R>) {
        let (reports, reports_rx) = mpsc::unbounded_channel();
        let core = Core {
            node: crate::ops::journal::node_name(&parts.config),
            store: parts.store,
            engine: parts.engine,
            config: parts.config,
            inputs: parts.inputs,
            reports,
        };
        (core, reports_rx)
    }

    /// Whether any trunk has `outbound`: without one nothing is dialed.
    pub fn can_dial(&self) -> bool {
        self.config.trunks.iter().any(|t| t.outbound.is_some())
    }

    /// The free agents of `queue` (with the queue's skill, `available`), idle longest first.
    pub fn free_agents(&self, queue: &str) -> Vec<String> {
        let Some(skill) = self
            .config
            .queues
            .iter()
            .find(|q| q.name == queue)
            .map(|q| &q.skill)
        else {
            return Vec::new();
        };
        let skilled: HashSet<&str> = self
            .config
            .agents
            .iter()
            .filter(|a| a.skills.contains_key(skill))
            .map(|a| a.id.as_str())
            .collect();
        let mut free: Vec<_> = self
            .engine
            .agents()
            .into_iter()
            .filter(|a| a.state.kind() == AgentStateKind::Available)
            .filter(|a| skilled.contains(a.id.as_str()))
            .collect();
        free.sort_by_key(|a| a.state_since);
        free.into_iter().map(|a| a.id).collect()
    }

    /// What the agent's phone shows: `head`, and the client's name when the directory knows
    /// `number`.
    pub fn label(&self, head: String, number: &str) -> String {
        match self.store.clients().get(number) {
            Some(client) => format!("{head}, client {}", client.name),
            None => head,
        }
    }

    /// Hands `req` to call control; false when call control has stopped (shutdown): the row
    /// stays `dialing` and is put back to `pending` at the next start.
    pub fn place(&self, req: DialRequest) -> bool {
        self.inputs.send(CallInput::Dial(Box::new(req))).is_ok()
    }

    /// Tells call control something other than a dial; false when it has stopped.
    pub fn tell(&self, input: CallInput) -> bool {
        self.inputs.send(input).is_ok()
    }
}

/// A dialer task: the [`Work`] and what it hears.
#[derive(Debug)]
pub struct Dialer<W: Work> {
    work: W,
    reports: mpsc::UnboundedReceiver<W::Report>,
    notes: Option<mpsc::UnboundedReceiver<W::Note>>,
    /// Results not yet stored (the database was unreachable); stored again every tick.
    unsaved: Vec<(String, AttemptEnd<W::Status>)>,
    /// Whether the rows left `dialing` by the last run are back to `pending`: nothing is
    /// dialed before, and the put-back is tried every tick until the database answers once.
    requeued: bool,
}

impl<W: Work> Dialer<W> {
    /// A dialer of `work`, hearing results on `reports` and other notes on `notes`.
    pub fn with(
        work: W,
        reports: mpsc::UnboundedReceiver<W::Report>,
        notes: Option<mpsc::UnboundedReceiver<W::Note>>,
    ) -> Dialer<W> {
        Dialer {
            work,
            reports,
            notes,
            unsaved: Vec::new(),
            requeued: false,
        }
    }

    /// Runs until `stop`.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                Some(report) = self.reports.recv() => self.on_report(report).await,
                Some(note) = next_note(&mut self.notes) => self.work.on_note(note).await,
                _ = tick.tick() => self.tick().await,
            }
        }
    }

    async fn tick(&mut self) {
        let now = now_utc();
        if !self.requeue(now).await {
            return;
        }
        self.save_unsaved(now).await;
        self.work.tick(now).await;
    }

    /// Puts back the rows this node left `dialing` unless done already; true once done.
    async fn requeue(&mut self, now: Timestamp) -> bool {
        if self.requeued {
            return true;
        }
        match self.work.requeue(now).await {
            Ok(n) => {
                self.requeued = true;
                if n > 0 {
                    info!(
                        count = n,
                        "{}s left dialing by the last run are pending again",
                        W::ONE
                    );
                }
                true
            }
            Err(e) => {
                debug!("{}s not picked up yet: {e}", W::ONE);
                false
            }
        }
    }

    async fn on_report(&mut self, report: W::Report) {
        let now = now_utc();
        let (id, end) = self.work.ended(report, now).await;
        info!(
            %id,
            result = %end.last_result,
            status = %end.status,
            attempts = end.attempts,
            next_at = ?end.next_at,
            "{} attempt ended",
            W::ONE
        );
        self.unsaved.push((id, end));
        self.save_unsaved(now).await;
        self.work.settled().await;
    }

    async fn save_unsaved(&mut self, now: Timestamp) {
        let mut left = Vec::new();
        for (id, end) in std::mem::take(&mut self.unsaved) {
            match self.work.store_end(&id, &end, now).await {
                Ok(true) => {}
                Ok(false) => {
                    warn!(%id, status = %end.status, "{} result not stored: {}", W::ONE, W::NOT_OURS);
                }
                Err(e) => {
                    warn!(%id, "{} result not stored yet (retried): {e}", W::ONE);
                    left.push((id, end));
                }
            }
        }
        self.unsaved = left;
    }
}

/// The next note, or never when the dialer hears none.
async fn next_note<N>(notes: &mut Option<mpsc::UnboundedReceiver<N>>) -> Option<N> {
    match notes {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// A request to call `number` with `agent` first, for no call-back or campaign yet (the
/// caller fills in what the call is made for).
pub fn request(
    kind: OutboundKind,
    agent: String,
    number: String,
    queue: Option<String>,
    label: String,
) -> DialRequest {
    DialRequest {
        record_id: new_record_id(),
        agent,
        number,
        queue,
        kind,
        callback_id: None,
        label: Some(label),
        report: None,
        campaign: None,
        place: None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A work that fails its first requeue and its first store, and writes down what the core
    /// asked of it, in order.
    struct Script {
        events: Arc<Mutex<Vec<String>>>,
        requeue_fails: usize,
        store_fails: usize,
    }

    impl Script {
        fn note(&self, event: String) {
            self.events.lock().unwrap().push(event);
        }

        /// How many events start with `prefix`.
        fn count(&self, prefix: &str) -> usize {
            let events = self.events.lock().unwrap();
            events.iter().filter(|e| e.starts_with(prefix)).count()
        }
    }

    impl Work for Script {
        type Report = (String, &'static str);
        type Status = &'static str;
        type Note = u8;
        const ONE: &'static str = "test row";
        const NOT_OURS: &'static str = "gone";

        async fn requeue(&self, _now: Timestamp) -> Result<u64, StoreError> {
            if self.count("requeue failed") < self.requeue_fails {
                self.note("requeue failed".to_owned());
                return Err(StoreError::Closed);
            }
            self.note("requeued".to_owned());
            Ok(1)
        }

        async fn tick(&mut self, _now: Timestamp) {
            self.note("tick".to_owned());
        }

        async fn ended(
            &mut self,
            (id, result): (String, &'static str),
            _now: Timestamp,
        ) -> (String, AttemptEnd<&'static str>) {
            let end = AttemptEnd {
                status: "done",
                attempts: 1,
                next_at: None,
                last_result: result.to_owned(),
            };
            (id, end)
        }

        async fn store_end(
            &self,
            id: &str,
            end: &AttemptEnd<&'static str>,
            _now: Timestamp,
        ) -> Result<bool, StoreError> {
            if self.count("not stored") < self.store_fails {
                self.note(format!("not stored {id}"));
                return Err(StoreError::Closed);
            }
            self.note(format!("stored {id} {}", end.last_result));
            Ok(true)
        }

        async fn settled(&mut self) {
            self.note("settled".to_owned());
        }

        async fn on_note(&mut self, note: u8) {
            self.note(format!("note {note}"));
        }
    }

    #[tokio::test]
    async fn nothing_is_looked_at_before_the_requeue_and_a_refused_result_is_stored_later() {
        let events = Arc::new(Mutex::new(Vec::new()));
        let work = Script {
            events: Arc::clone(&events),
            requeue_fails: 1,
            store_fails: 1,
        };
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let (notes_tx, notes) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let task = tokio::spawn(Dialer::with(work, reports, Some(notes)).run(stop.clone()));
        reports_tx.send(("a".to_owned(), "busy")).unwrap();
        notes_tx.send(7).unwrap();
        let seen = |what: &str| events.lock().unwrap().iter().any(|e| e == what);
        let deadline = tokio::time::Instant::now() + 3 * TICK + Duration::from_secs(2);
        while !(seen("stored a busy") && seen("tick")) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{:?}",
                events.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("the dialer stops when told")
            .unwrap();

        let events = events.lock().unwrap().clone();
        let at = |what: &str| events.iter().position(|e| e == what).unwrap();
        // The requeue is tried every tick until it succeeds, then never again; no look before.
        assert_eq!(
            events.iter().filter(|e| e.starts_with("requeue")).count(),
            2,
            "{events:?}"
        );
        assert!(at("requeue failed") < at("requeued"), "{events:?}");
        assert!(at("requeued") < at("tick"), "{events:?}");
        // The refused result is kept and stored once, by a later tick.
        assert!(at("not stored a") < at("requeued"), "{events:?}");
        assert!(at("requeued") < at("stored a busy"), "{events:?}");
        assert_eq!(events.iter().filter(|e| e.starts_with("stored")).count(), 1);
        assert!(at("not stored a") < at("settled"), "{events:?}");
        assert!(events.contains(&"note 7".to_owned()), "{events:?}");
    }
}
