//! `PUT /api/v1/calls/{id}/quality`: a supervisor's evaluation of an answered call, stored on
//! its record and averaged per agent in the agent report.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use switchboard_store::Quality;
use switchboard_store::chrono::SecondsFormat;
use tracing::info;
use utoipa::ToSchema;

use super::error::{ApiError, ApiJson, ErrorBody};
use crate::http::AppState;

/// Longest reviewer name kept.
const MAX_REVIEWER_CHARS: usize = 100;

/// Body of `PUT /api/v1/calls/{id}/quality`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QualityInput {
    /// 0..=100.
    #[schema(example = 85)]
    pub score: i64,
    #[schema(example = "quinn")]
    pub reviewer: String,
    pub note: Option<String>,
}

/// A stored evaluation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QualityView {
    pub call_id: String,
    pub score: i64,
    pub reviewer: String,
    pub note: Option<String>,
    #[schema(format = DateTime)]
    pub evaluated_at: String,
}

/// Evaluates an answered call (a new evaluation replaces the previous one).
#[utoipa::path(
    put,
    path = "/api/v1/calls/{id}/quality",
    operation_id = "putCallQuality",
    tag = "calls",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The call's record id")),
    request_body = QualityInput,
    responses(
        (status = 200, description = "Stored", body = QualityView),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 403, description = "An agent token", body = ErrorBody),
        (status = 404, description = "No such call stored (a call that just ended may still be on its way)", body = ErrorBody),
        (status = 409, description = "The call was never answered", body = ErrorBody),
        (status = 422, description = "Score outside 0..100, empty reviewer, or a mistyped field", body = ErrorBody),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    )
)]
pub async fn put(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<QualityInput>,
) -> Result<Json<QualityView>, ApiError> {
    if !(0..=100).contains(&input.score) {
        return Err(ApiError::unprocessable("score: must be from 0 to 100"));
    }
    let reviewer = input.reviewer.trim().to_owned();
    if reviewer.is_empty() || reviewer.chars().count() > MAX_REVIEWER_CHARS {
        return Err(ApiError::unprocessable(format!(
            "reviewer: must be 1 to {MAX_REVIEWER_CHARS} characters"
        )));
    }
    let note = super::note_field(input.note)?;
    let call = super::calls::stored(&state, &id).await?;
    if call.record.answered_at.is_none() {
        return Err(ApiError::conflict(format!(
            "call {id:?} was not answered ({}): there is nothing to evaluate",
            call.record.outcome.as_str()
        )));
    }
    let q = Quality {
        score: input.score,
        reviewer,
        note,
        at: switchboard_store::now_utc(),
    };
    let found = state
        .store
        .set_quality(&id, &q)
        .await
        .map_err(ApiError::from_store)?;
    super::calls::updated(found, &id)?;
    info!(call_id = %id, score = q.score, reviewer = %q.reviewer, agent = ?call.record.agent_id, "call evaluated");
    Ok(Json(QualityView {
        call_id: id,
        score: q.score,
        reviewer: q.reviewer,
        note: q.note,
        evaluated_at: q.at.to_rfc3339_opts(SecondsFormat::Millis, true),
    }))
}
