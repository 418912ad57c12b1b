//! `POST /api/v1/calls/{id}/disposition`: the agent records how a call went (a code and a
//! note) on its record. `callback` with `callback_at` schedules a call-back to the client;
//! `dnc` puts the number on the do-not-call list. An agent token may disposition only the
//! agent's own calls.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use switchboard_store::chrono::{DateTime, SecondsFormat, Utc};
use switchboard_store::{
    Callback, CallbackStatus, Direction, Disposition, DncEntry, new_record_id, now_utc,
};
use tracing::info;
use utoipa::ToSchema;

use super::error::{ApiError, ApiJson, ErrorBody};
use super::scope::Scope;
use crate::http::AppState;

/// The disposition codes of PRODUCT §4.
pub const CODES: [&str; 10] = [
    "sale",
    "order",
    "info_given",
    "no_interest",
    "callback",
    "wrong_number",
    "dnc",
    "no_answer",
    "busy",
    "voicemail",
];

/// Body of `POST /api/v1/calls/{id}/disposition`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DispositionInput {
    /// One of `sale`, `order`, `info_given`, `no_interest`, `callback`, `wrong_number`,
    /// `dnc`, `no_answer`, `busy`, `voicemail`.
    #[schema(example = "callback")]
    pub code: String,
    pub note: Option<String>,
    /// With `callback` (required there): when to call the client back (RFC 3339).
    #[schema(format = DateTime, example = "2026-03-02T14:30:00+01:00")]
    pub callback_at: Option<String>,
}

/// A stored disposition.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DispositionView {
    pub call_id: String,
    pub code: String,
    pub note: Option<String>,
    #[schema(format = DateTime)]
    pub at: String,
    /// The call-back `callback` scheduled (`GET /api/v1/callbacks/{id}`).
    pub callback_id: Option<String>,
}

/// Records the disposition of a call (a new one replaces the previous one).
#[utoipa::path(
    post,
    path = "/api/v1/calls/{id}/disposition",
    operation_id = "postCallDisposition",
    tag = "calls",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The call's record id")),
    request_body = DispositionInput,
    responses(
        (status = 200, description = "Stored", body = DispositionView),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 403, description = "An agent token on another agent's call", body = ErrorBody),
        (status = 404, description = "No such call stored (a call that just ended may still be on its way)", body = ErrorBody),
        (status = 422, description = "Unknown code, bad or misplaced callback_at, note too long, or the number is on the do-not-call list (callback)", body = ErrorBody),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    )
)]
pub async fn post(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<DispositionInput>,
) -> Result<Json<DispositionView>, ApiError> {
    let code = input.code.trim().to_owned();
    if !CODES.contains(&code.as_str()) {
        return Err(ApiError::unprocessable(format!(
            "code: {code:?} is not one of {}",
            CODES.join(", ")
        )));
    }
    let note = super::note_field(input.note)?;
    let callback_at = parse_callback_at(&code, input.callback_at.as_deref())?;
    let call = super::calls::stored(&state, &id).await?;
    if let Some(own) = scope.agent()
        && call.record.agent_id.as_deref() != Some(own)
    {
        return Err(ApiError::forbidden(format!(
            "call {id:?} is not handled by agent {own:?}"
        )));
    }
    // The client's number: the one dialed for an outbound call, the caller's otherwise.
    let number = match call.record.direction {
        Direction::Outbound => call.record.dialed.clone(),
        Direction::Inbound => call
            .record
            .client_number
            .clone()
            .unwrap_or_else(|| call.record.caller.clone()),
    };
    let now = now_utc();
    let mut callback_id = None;
    if let Some(at) = callback_at {
        super::dnc::refuse_listed(&state, &number).await?;
        let cb = Callback {
            id: new_record_id(),
            number: number.clone(),
            at: Some(at),
            queue: call.record.queue.clone(),
            created_at: now,
            status: CallbackStatus::Pending,
            attempts: 0,
            next_at: Some(at),
            last_result: None,
            updated_at: None,
            call_ids: Vec::new(),
        };
        state
            .store
            .insert_callback(&cb)
            .await
            .map_err(ApiError::from_store)?;
        info!(call_id = %id, callback = %cb.id, %number, %at, "disposition scheduled a call-back");
        callback_id = Some(cb.id);
    }
    if code == "dnc" {
        let entry = DncEntry {
            number: number.clone(),
            reason: Some(format!("disposition of call {id}")),
            added_at: now,
        };
        state
            .store
            .put_dnc(&entry)
            .await
            .map_err(ApiError::from_store)?;
        info!(call_id = %id, %number, "disposition put the number on the do-not-call list");
    }
    let d = Disposition {
        code,
        note,
        at: now,
    };
    let found = state
        .store
        .set_disposition(&id, &d)
        .await
        .map_err(ApiError::from_store)?;
    super::calls::updated(found, &id)?;
    info!(call_id = %id, code = %d.code, agent = ?call.record.agent_id, "call dispositioned");
    Ok(Json(DispositionView {
        call_id: id,
        code: d.code,
        note: d.note,
        at: d.at.to_rfc3339_opts(SecondsFormat::Millis, true),
        callback_id,
    }))
}

/// `callback_at` belongs to `callback` (required there) and nowhere else.
fn parse_callback_at(code: &str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let raw = raw.map(str::trim).filter(|s| !s.is_empty());
    match (code, raw) {
        ("callback", None) => Err(ApiError::unprocessable(
            "callback_at: required with code callback (when to call the client back)",
        )),
        ("callback", Some(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| {
                ApiError::unprocessable(format!(
                    "callback_at: {s:?} is not an RFC 3339 time such as 2026-03-02T14:30:00+01:00 ({e})"
                ))
            }),
        (_, Some(_)) => Err(ApiError::unprocessable(
            "callback_at: only with code callback",
        )),
        (_, None) => Ok(None),
    }
}
