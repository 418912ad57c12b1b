//! `POST /api/v1/calls`: click-to-call. The head of sales orders a call; the agent's phone
//! rings first and, once the agent answers, the number is dialed through the trunk.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use switchboard_engine::AgentStateKind;
use switchboard_store::new_record_id;
use tracing::info;
use utoipa::ToSchema;

use super::error::{ApiError, ApiJson, ErrorBody};
use crate::calls::{CallInput, DialRequest, OutboundKind};
use crate::http::AppState;

/// Body of `POST /api/v1/calls`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DialBody {
    /// The agent who makes the call (their phone rings first).
    #[schema(example = "ana")]
    pub agent: String,
    /// The number to call (spaces, dashes and parentheses are ignored).
    #[schema(example = "+385 91 555 0100")]
    pub number: String,
    /// The queue the call counts for (a configured queue name).
    #[schema(example = "orders")]
    pub queue: Option<String>,
}

/// A click-to-call order accepted.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DialView {
    /// The id of the call's record (`GET /api/v1/calls` once it ended).
    pub id: String,
    pub agent: String,
    /// Normalised number.
    pub number: String,
    pub queue: Option<String>,
    /// `ringing_agent`: the agent's phone rings; the number is dialed on answer.
    #[schema(example = "ringing_agent")]
    pub status: String,
}

/// Orders a call: ring the agent, then dial the number through the trunk.
#[utoipa::path(
    post,
    path = "/api/v1/calls",
    operation_id = "createCall",
    tag = "calls",
    security(("bearer" = [])),
    request_body = DialBody,
    responses(
        (status = 202, description = "The agent's phone rings; the number is dialed when they answer", body = DialView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
        (status = 404, description = "No such agent", body = ErrorBody),
        (status = 409, description = "The agent is not available", body = ErrorBody),
        (status = 422, description = "Bad number or queue, the number is on the do-not-call list, or no trunk has an outbound URI", body = ErrorBody),
        (status = 503, description = "The server is shutting down", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<DialBody>,
) -> Result<(StatusCode, Json<DialView>), ApiError> {
    let number = super::number_field(&state, &body.number)?;
    let agent = state
        .engine
        .agent_idx(&body.agent)
        .ok_or_else(|| ApiError::not_found(format!("no agent {:?}", body.agent)))?;
    let queue = super::optional_queue(&state, body.queue)?;
    super::dnc::refuse_listed(&state, &number).await?;
    if !state.config.trunks.iter().any(|t| t.outbound.is_some()) {
        return Err(ApiError::unprocessable(
            "no trunk has an outbound URI ([[trunks]] outbound): nowhere to dial",
        ));
    }
    let agent_state = state.engine.agent_state(agent).map(|s| s.kind());
    if agent_state != Some(AgentStateKind::Available) {
        let name = agent_state.map_or("unknown", AgentStateKind::as_str);
        return Err(ApiError::conflict(format!(
            "agent {:?} is {name}, not available",
            body.agent
        )));
    }
    let id = new_record_id();
    let req = DialRequest {
        record_id: id.clone(),
        agent: body.agent.clone(),
        number: number.clone(),
        queue: queue.clone(),
        kind: OutboundKind::Click,
        callback_id: None,
        label: None,
        report: None,
        campaign: None,
        place: None,
    };
    state
        .call_inputs
        .send(CallInput::Dial(Box::new(req)))
        .map_err(|_| ApiError::unavailable("call control has stopped"))?;
    info!(%id, agent = %body.agent, %number, "click-to-call ordered");
    Ok((
        StatusCode::ACCEPTED,
        Json(DialView {
            id,
            agent: body.agent,
            number,
            queue,
            status: "ringing_agent".to_owned(),
        }),
    ))
}
