//! `GET /api/v1/events`: the live event stream as Server-Sent Events.
//!
//! Each event's `event:` field is its name and `data:` one JSON object:
//! - `call_enqueued`, `call_offered`, `call_answered`, `call_ended`, `agent_state`: the live
//!   events of call control, in the order they happened (`LiveEvent::name()`; the JSON has a
//!   `type` field with the same name);
//! - `queue_figures`: one queue's figures (the `GET /api/v1/queues` item), sent for every
//!   queue when the stream opens and then whenever a queue's figures change (checked every
//!   second);
//! - `escalation`, `escalation_acked`: an agent asked a supervisor for help on a call, and a
//!   supervisor acknowledged it (`LiveEvent`);
//! - `lagged`: `{"missed": n}` when this subscriber read too slowly and `n` events were
//!   dropped for it (calls are never slowed down by a slow reader).
//!
//! An agent token sees only its own state, the calls offered to it (from the offer to the
//! end) and its own escalations; no queue figures.
//!
//! The stream ends when the HTTP server stops, after the events already published.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

use super::engine_now;
use super::error::ErrorBody;
use super::queues::{self, QueueView};
use super::scope::Scope;
use crate::http::AppState;
use crate::http::events::LiveEvent;

/// How often queue figures are compared with what the subscriber last got.
const FIGURES_EVERY: Duration = Duration::from_secs(1);

/// Comment lines sent on an idle stream so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The live event stream.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    operation_id = "streamEvents",
    tag = "events",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A `text/event-stream`. Event names: `call_enqueued`, `call_offered`, `call_answered`, `call_ended`, `agent_state`, `escalation`, `escalation_acked` (data: the event as JSON with a `type` field), `queue_figures` (data: a QueueView), `lagged` (data: `{\"missed\": n}`).", content_type = "text/event-stream", body = String),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
    )
)]
pub async fn stream(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let subscriber = Subscriber {
        agent: scope.agent().map(str::to_owned),
        own_calls: HashSet::new(),
        events: state.events.subscribe(),
        state,
        figures: Vec::new(),
        pending: VecDeque::new(),
        ticker: None,
        closing: false,
    };
    Sse::new(futures_util::stream::unfold(subscriber, Subscriber::next))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

struct Subscriber {
    /// An agent token's agent: only its own events, no queue figures.
    agent: Option<String>,
    /// Calls offered to that agent, whose further events it sees.
    own_calls: HashSet<u64>,
    events: broadcast::Receiver<LiveEvent>,
    state: AppState,
    /// The figures this subscriber was last sent, per queue.
    figures: Vec<QueueView>,
    pending: VecDeque<Event>,
    ticker: Option<tokio::time::Interval>,
    /// The server is stopping: send what is queued, then end.
    closing: bool,
}

impl Subscriber {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Subscriber)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some((Ok(event), self));
            }
            if self.closing {
                return None;
            }
            let stop: CancellationToken = self.state.stop.clone();
            let ticker = self.ticker.get_or_insert_with(|| {
                let mut t = tokio::time::interval(FIGURES_EVERY);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            tokio::select! {
                biased;
                received = self.events.recv() => match received {
                    Ok(event) => {
                        if self.sees(&event) {
                            self.pending.push_back(live_event(&event));
                        }
                    }
                    Err(RecvError::Lagged(missed)) => self.pending.push_back(
                        Event::default()
                            .event("lagged")
                            .data(serde_json::json!({ "missed": missed }).to_string()),
                    ),
                    Err(RecvError::Closed) => self.closing = true,
                },
                _ = ticker.tick() => self.queue_figures(),
                () = stop.cancelled() => {
                    // Whatever was published before the stop still goes out.
                    while let Ok(event) = self.events.try_recv() {
                        if self.sees(&event) {
                            self.pending.push_back(live_event(&event));
                        }
                    }
                    self.closing = true;
                }
            }
        }
    }

    fn sees(&mut self, event: &LiveEvent) -> bool {
        match &self.agent {
            None => true,
            Some(agent) => event.visible_to(agent, &mut self.own_calls),
        }
    }

    /// Queues the figures of every queue that changed since this subscriber last saw them.
    fn queue_figures(&mut self) {
        if self.agent.is_some() {
            return;
        }
        let now = queues::snapshot(
            &self.state.engine,
            engine_now(),
            self.state.config.routing.service_level_threshold_s,
        );
        for (i, figures) in now.iter().enumerate() {
            if self.figures.get(i) != Some(figures) {
                self.pending.push_back(
                    Event::default()
                        .event("queue_figures")
                        .data(serde_json::to_string(figures).unwrap_or_default()),
                );
            }
        }
        self.figures = now;
    }
}

fn live_event(event: &LiveEvent) -> Event {
    Event::default()
        .event(event.name())
        .data(serde_json::to_string(event).unwrap_or_default())
}
