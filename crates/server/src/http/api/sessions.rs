//! `POST /api/v1/sessions` (an agent logs in with its SIP password and gets a token scoped to
//! itself) and `DELETE /api/v1/sessions` (the token is revoked).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration as StdDuration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use switchboard_store::chrono::{Duration, SecondsFormat};
use tracing::{info, warn};
use utoipa::ToSchema;

use super::error::{ApiError, ApiJson, ErrorBody};
use super::scope::{bearer_token, token_hash, token_matches};
use crate::http::AppState;

/// Failed logins an agent id may have within [`LOGIN_WINDOW`] before further attempts are
/// refused (429) until the window ends: a password cannot be guessed through this endpoint.
pub const MAX_LOGIN_FAILURES: u32 = 5;
pub const LOGIN_WINDOW: StdDuration = StdDuration::from_secs(60);

/// Failed logins per configured agent id (all unknown ids share one entry, so made-up names
/// cannot grow the table).
#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, (Instant, u32)>>,
}

impl LoginThrottle {
    /// How long `key` must still wait, if it is locked out.
    fn locked(&self, key: &str, now: Instant) -> Option<StdDuration> {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let (since, n) = map.get(key)?;
        let left = LOGIN_WINDOW.saturating_sub(now.saturating_duration_since(*since));
        (*n >= MAX_LOGIN_FAILURES && !left.is_zero()).then_some(left)
    }

    fn failed(&self, key: &str, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (since, _)| now.saturating_duration_since(*since) < LOGIN_WINDOW);
        let entry = map.entry(key.to_owned()).or_insert((now, 0));
        entry.1 = entry.1.saturating_add(1);
    }

    fn succeeded(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(key);
    }
}

/// Body of `POST /api/v1/sessions`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    #[schema(example = "ana")]
    pub agent: String,
    /// The agent's SIP password (`[[agents]] password`).
    pub password: String,
}

/// A token scoped to one agent.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionView {
    /// Send as `Authorization: Bearer <token>`; shown once, stored only as a digest.
    pub token: String,
    pub agent: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// Issues a token scoped to one agent: its own state, calls, escalations and the events of
/// its own calls; everything else answers 403. No other token is needed for this call.
#[utoipa::path(
    post,
    path = "/api/v1/sessions",
    operation_id = "createSession",
    tag = "sessions",
    request_body = Login,
    responses(
        (status = 201, description = "Token issued", body = SessionView),
        (status = 401, description = "Unknown agent or wrong password (the same answer for both)", body = ErrorBody),
        (status = 422, description = "Missing or mistyped field", body = ErrorBody),
        (status = 429, description = "Too many failed logins for this agent in the last minute (Retry-After)", body = ErrorBody),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(login): ApiJson<Login>,
) -> Result<(StatusCode, Json<SessionView>), Response> {
    let key = if state.config.agents.iter().any(|a| a.id == login.agent) {
        login.agent.as_str()
    } else {
        "?"
    };
    let now = crate::clock::now();
    if let Some(left) = state.logins.locked(key, now) {
        warn!(agent = %login.agent, "agent session refused: too many failed logins");
        let secs = left.as_secs().max(1);
        let mut resp = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many failed logins for {:?}: try again in {secs} s",
                login.agent
            ),
        )
        .into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        return Err(resp);
    }
    // Every configured password is compared (in constant time each), so neither an unknown
    // agent nor the position of a wrong character shows in the answer time.
    let mut known = false;
    for a in &state.config.agents {
        let id_ok = token_matches(&login.agent, &a.id);
        let pw_ok = token_matches(&login.password, &a.password);
        known |= id_ok & pw_ok;
    }
    if !known {
        state.logins.failed(key, now);
        warn!(agent = %login.agent, "agent session refused: unknown agent or wrong password");
        return Err(ApiError::unauthorized("unknown agent or wrong password").into_response());
    }
    state.logins.succeeded(key);
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| {
        warn!("no randomness for a session token: {e}");
        ApiError::unavailable("cannot issue a token now").into_response()
    })?;
    let token: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let issued = switchboard_store::now_utc();
    let ttl = i64::try_from(state.config.http.session_ttl_s).unwrap_or(i64::MAX);
    let expires_at = issued + Duration::seconds(ttl);
    state
        .store
        .insert_agent_token(&token_hash(&token), &login.agent, issued, expires_at)
        .await
        .map_err(|e| ApiError::from_store(e).into_response())?;
    info!(agent = %login.agent, %expires_at, "agent session opened");
    Ok((
        StatusCode::CREATED,
        Json(SessionView {
            token,
            agent: login.agent,
            expires_at: expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        }),
    ))
}

/// Revokes the agent token the request carries (log out).
#[utoipa::path(
    delete,
    path = "/api/v1/sessions",
    operation_id = "deleteSession",
    tag = "sessions",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Token revoked"),
        (status = 401, description = "Missing, wrong or expired token", body = ErrorBody),
        (status = 404, description = "The operations token is not a session", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let token = bearer_token(&headers).unwrap_or_default();
    if state
        .store
        .revoke_agent_token(&token_hash(token))
        .await
        .map_err(ApiError::from_store)?
    {
        info!("agent session closed");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("this token is not an agent session"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failures_lock_an_agent_out_for_the_window() {
        let t = LoginThrottle::default();
        let t0 = crate::clock::now();
        for _ in 0..MAX_LOGIN_FAILURES - 1 {
            t.failed("ana", t0);
        }
        assert_eq!(t.locked("ana", t0), None);
        t.failed("ana", t0);
        assert_eq!(
            t.locked("ana", t0 + StdDuration::from_secs(10)),
            Some(StdDuration::from_secs(50))
        );
        assert_eq!(t.locked("marko", t0), None, "other agents are not affected");
        assert_eq!(
            t.locked("ana", t0 + LOGIN_WINDOW),
            None,
            "the lock ends with the window"
        );
        t.succeeded("ana");
        assert_eq!(t.locked("ana", t0), None);
    }
}
