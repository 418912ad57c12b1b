//! Escalations (PRODUCT §2 rule 11): `POST /api/v1/calls/{id}/escalate` (an agent who cannot
//! continue asks a supervisor), `GET /api/v1/escalations?open=true` and
//! `POST /api/v1/escalations/{id}/ack`. Each raise and acknowledgement is an event on the
//! live stream; the wallboard lists open ones until acknowledged.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use switchboard_store::Escalation;
use switchboard_store::chrono::SecondsFormat;
use tracing::info;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiJson, ApiQuery, ErrorBody};
use super::scope::Scope;
use crate::http::AppState;
use crate::http::events::LiveEvent;

const MAX_NOTE_CHARS: usize = 500;
const LIST_LIMIT: u32 = 500;

/// Body of `POST /api/v1/calls/{id}/escalate`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalateInput {
    /// What the supervisor should know.
    #[schema(example = "caller insists on speaking to a manager")]
    pub note: String,
}

/// Body of `POST /api/v1/escalations/{id}/ack` (optional).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckInput {
    /// Who acknowledges (default `supervisor`).
    pub by: Option<String>,
}

/// An escalation as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EscalationView {
    pub id: String,
    /// The call's record id.
    pub call_id: String,
    pub agent: Option<String>,
    pub note: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub acked_at: Option<String>,
    pub acked_by: Option<String>,
}

impl From<Escalation> for EscalationView {
    fn from(e: Escalation) -> Self {
        let t = |t: switchboard_store::Timestamp| t.to_rfc3339_opts(SecondsFormat::Millis, true);
        EscalationView {
            created_at: t(e.created_at),
            acked_at: e.acked_at.map(t),
            id: e.id,
            call_id: e.call_id,
            agent: e.agent_id,
            note: e.note,
            acked_by: e.acked_by,
        }
    }
}

/// The agent handling a call (in progress or stored), or 404.
async fn call_agent(state: &AppState, id: &str) -> Result<Option<String>, ApiError> {
    if let Some(c) = state.shared.active_calls().into_iter().find(|c| c.id == id) {
        return Ok(c.agent.or_else(|| c.ringing.into_iter().next()));
    }
    match state
        .store
        .stored_call(id)
        .await
        .map_err(ApiError::from_store)?
    {
        Some(c) => Ok(c.record.agent_id),
        None => Err(ApiError::not_found(format!("no call {id:?}"))),
    }
}

/// Raises an escalation on a call: an agent token only on its own call.
#[utoipa::path(
    post,
    path = "/api/v1/calls/{id}/escalate",
    operation_id = "escalateCall",
    tag = "escalations",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The call's record id (`id` in /calls/active)")),
    request_body = EscalateInput,
    responses(
        (status = 201, description = "Raised", body = EscalationView),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 403, description = "An agent token on another agent's call", body = ErrorBody),
        (status = 404, description = "No such call", body = ErrorBody),
        (status = 422, description = "Empty or too long note", body = ErrorBody),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    )
)]
pub async fn escalate(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<EscalateInput>,
) -> Result<(StatusCode, Json<EscalationView>), ApiError> {
    let note = input.note.trim().to_owned();
    if note.is_empty() || note.chars().count() > MAX_NOTE_CHARS {
        return Err(ApiError::unprocessable(format!(
            "note: must be 1 to {MAX_NOTE_CHARS} characters"
        )));
    }
    let agent = call_agent(&state, &id).await?;
    if let Some(own) = scope.agent()
        && agent.as_deref() != Some(own)
    {
        return Err(ApiError::forbidden(format!(
            "call {id:?} is not handled by agent {own:?}"
        )));
    }
    let e = Escalation {
        id: switchboard_store::new_record_id(),
        call_id: id,
        agent_id: agent,
        note,
        created_at: switchboard_store::now_utc(),
        acked_at: None,
        acked_by: None,
    };
    state
        .store
        .insert_escalation(&e)
        .await
        .map_err(ApiError::from_store)?;
    info!(escalation = %e.id, call_id = %e.call_id, agent = ?e.agent_id, note = %e.note, "escalation raised");
    let view = EscalationView::from(e);
    state.events.send(LiveEvent::Escalation {
        id: view.id.clone(),
        call_id: view.call_id.clone(),
        agent: view.agent.clone(),
        note: view.note.clone(),
        created_at: view.created_at.clone(),
    });
    Ok((StatusCode::CREATED, Json(view)))
}

/// Query of `GET /api/v1/escalations`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only those not yet acknowledged (default true).
    pub open: Option<bool>,
}

/// Escalations, oldest first: the open ones (default), or the last 500 of all.
#[utoipa::path(
    get,
    path = "/api/v1/escalations",
    operation_id = "listEscalations",
    tag = "escalations",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "Escalations", body = [EscalationView]),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 403, description = "An agent token", body = ErrorBody),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<EscalationView>>, ApiError> {
    let all = state
        .store
        .escalations(q.open.unwrap_or(true), LIST_LIMIT)
        .await
        .map_err(ApiError::from_store)?;
    Ok(Json(all.into_iter().map(EscalationView::from).collect()))
}

/// Acknowledges an escalation (a second acknowledgement keeps the first).
#[utoipa::path(
    post,
    path = "/api/v1/escalations/{id}/ack",
    operation_id = "ackEscalation",
    tag = "escalations",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The escalation id")),
    request_body(content = AckInput, description = "Optional: who acknowledges"),
    responses(
        (status = 200, description = "Acknowledged", body = EscalationView),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 403, description = "An agent token", body = ErrorBody),
        (status = 404, description = "No such escalation", body = ErrorBody),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    )
)]
pub async fn ack(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<EscalationView>, ApiError> {
    let input: AckInput = if body.iter().all(u8::is_ascii_whitespace) {
        AckInput::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            if e.is_data() {
                ApiError::unprocessable(format!("body: {e}"))
            } else {
                ApiError::bad_request(format!("body: {e}"))
            }
        })?
    };
    let by = input
        .by
        .map(|b| b.trim().to_owned())
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "supervisor".to_owned());
    let e = state
        .store
        .ack_escalation(&id, &by, switchboard_store::now_utc())
        .await
        .map_err(ApiError::from_store)?
        .ok_or_else(|| ApiError::not_found(format!("no escalation {id:?}")))?;
    info!(escalation = %id, by = %by, "escalation acknowledged");
    let view = EscalationView::from(e);
    state.events.send(LiveEvent::EscalationAcked {
        id: view.id.clone(),
        by: view.acked_by.clone().unwrap_or_default(),
    });
    Ok(Json(view))
}
