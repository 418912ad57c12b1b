//! `POST /api/v1/sessions` (an agent logs in with its SIP password and gets a token scoped to
//! itself) and `DELETE /api/v1/sessions` (the token is revoked).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use switchboard_store::chrono::{Duration, SecondsFormat};
use tracing::{info, warn};
use utoipa::ToSchema;

use super::error::{ApiError, ApiJson, ErrorBody};
use super::scope::{bearer_token, token_hash, token_matches};
use crate::http::AppState;

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
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(login): ApiJson<Login>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    // Every configured password is compared (in constant time each), so neither an unknown
    // agent nor the position of a wrong character shows in the answer time.
    let mut known = false;
    for a in &state.config.agents {
        let id_ok = token_matches(&login.agent, &a.id);
        let pw_ok = token_matches(&login.password, &a.password);
        known |= id_ok & pw_ok;
    }
    if !known {
        warn!(agent = %login.agent, "agent session refused: unknown agent or wrong password");
        return Err(ApiError::unauthorized("unknown agent or wrong password"));
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| {
        warn!("no randomness for a session token: {e}");
        ApiError::unavailable("cannot issue a token now")
    })?;
    let token: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let now = switchboard_store::now_utc();
    let ttl = i64::try_from(state.config.http.session_ttl_s).unwrap_or(i64::MAX);
    let expires_at = now + Duration::seconds(ttl);
    state
        .store
        .insert_agent_token(&token_hash(&token), &login.agent, now, expires_at)
        .await
        .map_err(ApiError::from_store)?;
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
