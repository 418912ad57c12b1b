//! The operations API under `/api/v1` (PRODUCT §4): agents, queues, the client directory,
//! call history and calls in progress, quality evaluations, recordings, escalations,
//! reports, agent sessions, call-back requests, campaigns and the live event stream.
//!
//! Every route needs `Authorization: Bearer <token>` (see [`Scope`]: the operations token,
//! compared in constant time, or an agent token limited to that agent's own records), except
//! `POST /api/v1/sessions` (which issues agent tokens) and `/api/v1/openapi.json` (the
//! machine-readable description of this API, generated from the handlers below by `utoipa`,
//! so it cannot drift from them). Errors are JSON
//! `{"error": "..."}`; request bodies are limited to [`MAX_BODY`] and every request except the
//! event stream to [`REQUEST_TIMEOUT`].
//!
//! Handlers read the engine, the store and the snapshots the endpoint task publishes; they
//! never hold a lock across an await and never block the SIP endpoint task. A state change
//! made here wakes that task (`shared.wake`) so the engine's resulting offers are carried out
//! at once.

mod agents;
mod callbacks;
mod calls;
mod campaigns;
mod clients;
mod dial;
mod dispositions;
mod dnc;
mod error;
mod escalations;
mod events;
mod openapi;
mod quality;
mod queues;
mod recordings;
mod reports;
mod scope;
mod sessions;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};

use crate::http::AppState;

pub use error::ApiError;
pub use openapi::ApiDoc;
pub use queues::QueueView;
pub use scope::Scope;
pub use sessions::LoginThrottle;

/// Largest request body accepted (the largest real body, a client record, is well under 1 KiB).
pub const MAX_BODY: usize = 64 * 1024;

/// How long one API request may take before it is answered 503 (the event stream excepted).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The `/api/v1` routes, authenticated, limited and timed out.
pub fn routes(state: AppState) -> Router<AppState> {
    let timed = Router::new()
        .route("/agents", get(agents::list))
        .route("/agents/{id}", get(agents::get))
        .route("/agents/{id}/state", post(agents::set_state))
        .route("/queues", get(queues::list))
        .route("/clients", get(clients::list))
        .route(
            "/clients/{number}",
            get(clients::get).put(clients::put).delete(clients::delete),
        )
        .route("/calls", get(calls::history).post(dial::create))
        .route("/calls/active", get(calls::active))
        .route("/calls/{id}/quality", put(quality::put))
        .route("/calls/{id}/recording", get(recordings::get))
        .route("/calls/{id}/escalate", post(escalations::escalate))
        .route("/calls/{id}/disposition", post(dispositions::post))
        .route("/escalations", get(escalations::list))
        .route("/escalations/{id}/ack", post(escalations::ack))
        .route("/reports/agents", get(reports::agents))
        .route("/reports/queues", get(reports::queues))
        .route("/reports/abandoned", get(reports::abandoned))
        .route("/sessions", delete(sessions::delete))
        .route("/callbacks", post(callbacks::create).get(callbacks::list))
        .route(
            "/callbacks/{id}",
            get(callbacks::get).delete(callbacks::cancel),
        )
        .route("/campaigns", post(campaigns::create).get(campaigns::list))
        .route("/campaigns/{id}", get(campaigns::get))
        .route("/campaigns/{id}/start", post(campaigns::start))
        .route("/campaigns/{id}/pause", post(campaigns::pause))
        .route("/dnc", get(dnc::list))
        .route("/dnc/{number}", put(dnc::put).delete(dnc::delete))
        .layer(middleware::from_fn(timeout));
    let authenticated = timed
        .route("/events", get(events::stream))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state, scope::authenticate));
    // Logging in needs no token: the body carries the agent's password.
    let open = Router::new()
        .route("/sessions", post(sessions::create))
        .layer(middleware::from_fn(timeout));
    Router::new()
        .route("/openapi.json", get(openapi::document))
        .merge(open)
        .merge(authenticated)
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such API endpoint")
}

/// Answers 503 when a request takes longer than [`REQUEST_TIMEOUT`] (a database that hangs).
async fn timeout(req: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::unavailable(format!(
            "request not completed within {} s",
            REQUEST_TIMEOUT.as_secs()
        ))
        .into_response(),
    }
}

/// Engine time now (milliseconds since the UNIX epoch, like the endpoint task's clock).
fn engine_now() -> switchboard_engine::Time {
    let since_epoch = crate::clock::wall_now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    crate::calls::engine_time(switchboard_sip::Instant::from_duration(since_epoch))
}

/// RFC 3339 text (UTC, milliseconds) of a stored time.
fn time_text(t: switchboard_store::Timestamp) -> String {
    t.to_rfc3339_opts(switchboard_store::chrono::SecondsFormat::Millis, true)
}

/// The `number` field of a request, normalised as the directory keeps numbers (`[numbers]`
/// applied); 422 naming the field when it is no number.
fn number_field(state: &AppState, raw: &str) -> Result<String, ApiError> {
    state
        .config
        .numbers
        .given(raw)
        .map_err(|e| ApiError::unprocessable(format!("number: {e}")))
}

/// Longest note kept on a call (disposition, quality evaluation).
const MAX_NOTE_CHARS: usize = 2000;

/// The optional `note` field of a request, trimmed (blank is none); 422 when it is longer
/// than [`MAX_NOTE_CHARS`].
fn note_field(note: Option<String>) -> Result<Option<String>, ApiError> {
    let note = note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if note
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS)
    {
        return Err(ApiError::unprocessable(format!(
            "note: at most {MAX_NOTE_CHARS} characters"
        )));
    }
    Ok(note)
}

/// The optional `queue` field of a request, trimmed (blank is none); 422 unless it names a
/// configured queue.
fn optional_queue(
    state: &crate::http::AppState,
    queue: Option<String>,
) -> Result<Option<String>, ApiError> {
    let queue = queue.map(|q| q.trim().to_owned()).filter(|q| !q.is_empty());
    if let Some(q) = &queue {
        require_queue(state, q)?;
    }
    Ok(queue)
}

/// 422 unless `name` is a configured queue (the message lists them).
fn require_queue(state: &crate::http::AppState, name: &str) -> Result<(), ApiError> {
    if state.engine.queue_idx(name).is_some() {
        return Ok(());
    }
    let known: Vec<&str> = state
        .config
        .queues
        .iter()
        .map(|q| q.name.as_str())
        .collect();
    Err(ApiError::unprocessable(format!(
        "queue: no queue {name:?} (configured: {})",
        known.join(", ")
    )))
}

/// RFC 3339 text of an engine time.
fn rfc3339(t: switchboard_engine::Time) -> String {
    let millis = i64::try_from(t.as_millis()).unwrap_or(i64::MAX);
    switchboard_store::chrono::DateTime::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(switchboard_store::chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_times_print_as_rfc3339() {
        assert_eq!(
            rfc3339(switchboard_engine::Time::from_millis(1_700_000_000_123)),
            "2023-11-14T22:13:20.123Z"
        );
    }
}
