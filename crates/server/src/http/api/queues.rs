//! `GET /api/v1/queues`: live figures per queue, from the engine's statistics.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use switchboard_engine::{AgentStateKind, Engine, QueueIdx, QueueStats, Time};
use utoipa::ToSchema;

use super::engine_now;
use super::error::ErrorBody;
use crate::http::AppState;

/// Agents holding a queue's skill, by state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct AgentsByState {
    pub logged_out: usize,
    pub available: usize,
    pub ringing: usize,
    pub on_call: usize,
    pub wrap_up: usize,
    #[serde(rename = "break")]
    pub on_break: usize,
    pub absent: usize,
    pub not_ready: usize,
}

/// Live figures of one queue.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct QueueView {
    #[schema(example = "orders")]
    pub name: String,
    /// Callers in the queue not yet answered (waiting or being rung).
    pub waiting: usize,
    /// How long the longest-waiting caller has waited, in seconds (0 when nobody waits).
    pub oldest_wait_s: f64,
    pub agents: AgentsByState,
    /// Calls answered within `service_level_threshold_s` / (answered + abandoned), 0..1;
    /// `null` until a call has finished waiting in this queue.
    pub service_level: Option<f64>,
    /// The service-level threshold in seconds (`[routing] service_level_threshold_s`).
    pub service_level_threshold_s: u32,
    /// Calls that entered this queue since start.
    pub entered: u64,
    pub answered: u64,
    pub abandoned: u64,
    /// Calls that waited past the queue's max wait and overflowed.
    pub overflowed: u64,
    /// Average speed of answer in seconds; `null` before the first answer.
    pub asa_s: Option<f64>,
    /// Abandoned / (answered + abandoned); `null` until a call has finished waiting.
    pub abandonment_rate: Option<f64>,
}

impl QueueView {
    pub fn new(s: QueueStats, threshold_s: u32) -> QueueView {
        let mut agents = AgentsByState::default();
        for (kind, n) in &s.agents_by_state {
            let slot = match kind {
                AgentStateKind::LoggedOut => &mut agents.logged_out,
                AgentStateKind::Available => &mut agents.available,
                AgentStateKind::Ringing => &mut agents.ringing,
                AgentStateKind::OnCall => &mut agents.on_call,
                AgentStateKind::WrapUp => &mut agents.wrap_up,
                AgentStateKind::Break => &mut agents.on_break,
                AgentStateKind::Absent => &mut agents.absent,
                AgentStateKind::NotReady => &mut agents.not_ready,
            };
            *slot = slot.saturating_add(*n);
        }
        QueueView {
            waiting: s.waiting,
            oldest_wait_s: millis_to_secs(s.oldest_wait_ms),
            agents,
            service_level: s.service_level(),
            service_level_threshold_s: threshold_s,
            entered: s.entered,
            answered: s.answered,
            abandoned: s.abandoned,
            overflowed: s.overflowed,
            asa_s: s.asa_ms().map(|ms| ms / 1000.0),
            abandonment_rate: s.abandonment_rate(),
            name: s.name,
        }
    }
}

#[allow(clippy::cast_precision_loss)] // waits are far below 2^53 ms
fn millis_to_secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// Figures of every queue at `now`, in configuration order.
pub fn snapshot(engine: &Engine, now: Time, threshold_s: u32) -> Vec<QueueView> {
    (0..engine.queue_count())
        .filter_map(|i| u32::try_from(i).ok())
        .filter_map(|i| engine.stats(now, QueueIdx(i)))
        .map(|s| QueueView::new(s, threshold_s))
        .collect()
}

/// Every queue with its waiting callers, agents by state and service level.
#[utoipa::path(
    get,
    path = "/api/v1/queues",
    operation_id = "listQueues",
    tag = "queues",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Queues in configuration order", body = [QueueView]),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>) -> Json<Vec<QueueView>> {
    Json(snapshot(
        &state.engine,
        engine_now(),
        state.config.routing.service_level_threshold_s,
    ))
}
