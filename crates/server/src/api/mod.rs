//! The operations API under `/api/v1` (PRODUCT §4): agents, queues, the client directory,
//! call history and calls in progress, call-back requests and the live event stream.
//!
//! Every route needs `Authorization: Bearer <api_token>`, compared in constant time, except
//! `/api/v1/openapi.json` (the machine-readable description of this API, generated from the
//! handlers below by `utoipa`, so it cannot drift from them). Errors are JSON
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
mod clients;
mod error;
mod events;
mod openapi;
mod queues;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sha2::{Digest, Sha256};

use crate::http::AppState;

pub use error::ApiError;
pub use openapi::ApiDoc;
pub use queues::QueueView;

/// Largest request body accepted (the largest real body, a client record, is well under 1 KiB).
pub const MAX_BODY: usize = 64 * 1024;

/// How long one API request may take before it is answered 503 (the event stream excepted).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The `/api/v1` routes, authenticated, limited and timed out.
pub fn routes(state: AppState) -> Router<AppState> {
    let timed = Router::new()
        .route("/agents", get(agents::list))
        .route("/agents/{id}/state", post(agents::set_state))
        .route("/queues", get(queues::list))
        .route("/clients", get(clients::list))
        .route(
            "/clients/{number}",
            get(clients::get).put(clients::put).delete(clients::delete),
        )
        .route("/calls", get(calls::history))
        .route("/calls/active", get(calls::active))
        .route("/callbacks", post(callbacks::create))
        .layer(middleware::from_fn(timeout));
    let authenticated = timed
        .route("/events", get(events::stream))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state, authenticate));
    Router::new()
        .route("/openapi.json", get(openapi::document))
        .merge(authenticated)
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such API endpoint")
}

/// Answers 401 unless the request carries the API token.
async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match bearer_token(req.headers()) {
        None => unauthorized("missing Authorization: Bearer <api token>"),
        Some(given) if token_matches(given, &state.api_token) => next.run(req).await,
        Some(_) => unauthorized("invalid API token"),
    }
}

fn unauthorized(message: &str) -> Response {
    let mut resp = ApiError::unauthorized(message).into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"switchboard\""),
    );
    resp
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Compares the SHA-256 digests of the two tokens with an XOR fold over all 32 bytes: the
/// time taken depends on neither the tokens' lengths nor where they first differ, and even a
/// leak would only tell how much of a digest matched, which says nothing about the token.
/// (Two fixed-size digests need no constant-time crate.)
fn token_matches(given: &str, expected: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
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
    fn bearer_tokens_are_parsed_and_compared() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert_eq!(bearer_token(&h), Some("s3cret"));
        h.insert(header::AUTHORIZATION, "bearer  s3cret ".parse().unwrap());
        assert_eq!(bearer_token(&h), Some("s3cret"));
        h.insert(header::AUTHORIZATION, "Basic czNjcmV0".parse().unwrap());
        assert_eq!(bearer_token(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer_token(&h), None);

        assert!(token_matches("s3cret", "s3cret"));
        assert!(!token_matches("s3cre", "s3cret"));
        assert!(!token_matches("s3cret ", "s3cret"));
        assert!(!token_matches("", "s3cret"));
    }

    #[test]
    fn engine_times_print_as_rfc3339() {
        assert_eq!(
            rfc3339(switchboard_engine::Time::from_millis(1_700_000_000_123)),
            "2023-11-14T22:13:20.123Z"
        );
    }
}
