//! Call-backs: `POST /api/v1/callbacks` ("call me back" from the web site or the CRM),
//! `GET /api/v1/callbacks?status=`, `GET`/`DELETE /api/v1/callbacks/{id}`.
//!
//! A request is validated and stored as `pending`; the dialer (`crate::callbacks`) calls it
//! at its time, inside the calling window, agent first. `DELETE` cancels a pending one, which
//! is then never dialed.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use switchboard_store::chrono::{DateTime, Utc};
use switchboard_store::{Callback, CallbackStatus, CancelRefused, new_record_id, now_utc};
use tracing::info;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiJson, ApiQuery, ErrorBody};
use super::time_text;
use crate::http::AppState;

/// Body of `POST /api/v1/callbacks`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackRequest {
    /// The number to call back (spaces, dashes and parentheses are ignored).
    #[schema(example = "+385 91 555 0100")]
    pub number: String,
    /// When the client wants the call (RFC 3339); absent means as soon as possible.
    #[schema(format = DateTime, example = "2026-03-02T14:30:00+01:00")]
    pub at: Option<String>,
    /// The queue to connect the call to (a configured queue name); absent means the route
    /// chain of the client's class.
    #[schema(example = "orders")]
    pub queue: Option<String>,
}

/// A call-back and where it stands.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallbackView {
    pub id: String,
    /// Normalised number.
    pub number: String,
    /// The time the client asked for; null: as soon as possible.
    #[schema(format = DateTime)]
    pub at: Option<String>,
    pub queue: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// `pending`, `dialing`, `done`, `failed`, `cancelled` or `expired`.
    #[schema(value_type = String, example = "pending")]
    pub status: CallbackStatus,
    /// Calls made to the number so far.
    pub attempts: u32,
    /// When the next attempt is due (pending only; null: as soon as possible).
    #[schema(format = DateTime)]
    pub next_at: Option<String>,
    /// How the last attempt ended: `answered`, `busy`, `no_answer`, `failed`,
    /// `agent_no_answer`; `interrupted` (its node died mid-attempt), `dnc` (cancelled for the
    /// do-not-call list).
    pub last_result: Option<String>,
    /// The records of the calls it produced (`GET /api/v1/calls`).
    pub call_ids: Vec<String>,
}

impl From<Callback> for CallbackView {
    fn from(c: Callback) -> Self {
        CallbackView {
            id: c.id,
            number: c.number,
            at: c.at.map(time_text),
            queue: c.queue,
            created_at: time_text(c.created_at),
            status: c.status,
            attempts: c.attempts,
            next_at: c
                .next_at
                .filter(|_| c.status == CallbackStatus::Pending)
                .map(time_text),
            last_result: c.last_result,
            call_ids: c.call_ids,
        }
    }
}

/// Schedules a call-back.
#[utoipa::path(
    post,
    path = "/api/v1/callbacks",
    operation_id = "createCallback",
    tag = "callbacks",
    security(("bearer" = [])),
    request_body = CallbackRequest,
    responses(
        (status = 201, description = "Stored as pending; dialed at its time", body = CallbackView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
        (status = 422, description = "Bad number, time or queue, or the number is on the do-not-call list", body = ErrorBody),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CallbackRequest>,
) -> Result<(StatusCode, Json<CallbackView>), ApiError> {
    let number = super::number_field(&state, &body.number)?;
    let at = match body.at.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            DateTime::parse_from_rfc3339(s)
                .map_err(|e| {
                    ApiError::unprocessable(format!(
                        "at: {s:?} is not an RFC 3339 time such as 2026-03-02T14:30:00+01:00 ({e})"
                    ))
                })?
                .with_timezone(&Utc),
        ),
    };
    let queue = super::optional_queue(&state, body.queue)?;
    super::dnc::refuse_listed(&state, &number).await?;
    let callback = Callback {
        id: new_record_id(),
        number,
        at,
        queue,
        created_at: now_utc(),
        status: CallbackStatus::Pending,
        attempts: 0,
        next_at: at,
        last_result: None,
        updated_at: None,
        call_ids: Vec::new(),
    };
    state
        .store
        .insert_callback(&callback)
        .await
        .map_err(ApiError::from_store)?;
    info!(id = %callback.id, number = %callback.number, at = ?callback.at, "call-back scheduled");
    Ok((StatusCode::CREATED, Json(CallbackView::from(callback))))
}

/// Query of `GET /api/v1/callbacks`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only call-backs in this status.
    pub status: Option<String>,
    /// At most this many, newest first (1..=1000, default 100).
    pub limit: Option<u32>,
}

/// Lists call-backs, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/callbacks",
    operation_id = "listCallbacks",
    tag = "callbacks",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "Call-backs, newest first", body = [CallbackView]),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
        (status = 422, description = "Unknown status or bad limit", body = ErrorBody),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<CallbackView>>, ApiError> {
    let status = match q.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(s.parse::<CallbackStatus>().map_err(|_| {
            ApiError::unprocessable(format!(
                "status: {s:?} is not one of pending, dialing, done, failed, cancelled, expired"
            ))
        })?),
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::unprocessable("limit: must be between 1 and 1000"));
    }
    let list = state
        .store
        .list_callbacks(status, limit)
        .await
        .map_err(ApiError::from_store)?;
    Ok(Json(list.into_iter().map(CallbackView::from).collect()))
}

/// One call-back with its attempts and the calls it produced.
#[utoipa::path(
    get,
    path = "/api/v1/callbacks/{id}",
    operation_id = "getCallback",
    tag = "callbacks",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Call-back id")),
    responses(
        (status = 200, description = "The call-back", body = CallbackView),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
        (status = 404, description = "No such call-back", body = ErrorBody),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CallbackView>, ApiError> {
    let cb = state
        .store
        .callback(&id)
        .await
        .map_err(ApiError::from_store)?
        .ok_or_else(|| ApiError::not_found(format!("no call-back {id:?}")))?;
    Ok(Json(cb.into()))
}

/// Cancels a pending call-back: it is never dialed.
#[utoipa::path(
    delete,
    path = "/api/v1/callbacks/{id}",
    operation_id = "cancelCallback",
    tag = "callbacks",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Call-back id")),
    responses(
        (status = 200, description = "Cancelled", body = CallbackView),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
        (status = 404, description = "No such call-back", body = ErrorBody),
        (status = 409, description = "Being dialed or finished already", body = ErrorBody),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CallbackView>, ApiError> {
    match state
        .store
        .cancel_callback(&id, now_utc())
        .await
        .map_err(ApiError::from_store)?
    {
        Ok(cb) => {
            info!(%id, number = %cb.number, "call-back cancelled");
            Ok(Json(cb.into()))
        }
        Err(CancelRefused::NotFound) => Err(ApiError::not_found(format!("no call-back {id:?}"))),
        Err(CancelRefused::NotPending(status)) => Err(ApiError::conflict(format!(
            "call-back {id:?} is {}: only a pending call-back can be cancelled",
            status.as_str()
        ))),
    }
}
