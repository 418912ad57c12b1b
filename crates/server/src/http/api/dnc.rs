//! The do-not-call list: `PUT`/`DELETE /api/v1/dnc/{number}`, `GET /api/v1/dnc`. Numbers on
//! it are never dialed by call-backs, campaigns or click-to-call.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use switchboard_store::chrono::SecondsFormat;
use switchboard_store::{DncEntry, now_utc};
use tracing::info;
use utoipa::ToSchema;

use super::clients::{NumberPath, Removal, delete_status, put_status};
use super::error::{ApiError, ErrorBody};
use crate::http::AppState;

/// Optional body of `PUT /api/v1/dnc/{number}`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DncBody {
    /// Why the number is not to be called.
    #[schema(example = "asked on the phone")]
    pub reason: Option<String>,
}

/// A number on the do-not-call list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DncView {
    /// Normalised number.
    pub number: String,
    pub reason: Option<String>,
    #[schema(format = DateTime)]
    pub added_at: String,
}

impl From<DncEntry> for DncView {
    fn from(e: DncEntry) -> Self {
        DncView {
            number: e.number,
            reason: e.reason,
            added_at: e.added_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        }
    }
}

/// 422 when `number` is on the do-not-call list (callers: call-backs, click-to-call).
pub async fn refuse_listed(state: &AppState, number: &str) -> Result<(), ApiError> {
    match state
        .store
        .dnc(number)
        .await
        .map_err(ApiError::from_store)?
    {
        Some(_) => Err(ApiError::unprocessable(format!(
            "number: {number} is on the do-not-call list (DELETE /api/v1/dnc/{number} to call it)"
        ))),
        None => Ok(()),
    }
}

/// The whole list, by number.
#[utoipa::path(
    get,
    path = "/api/v1/dnc",
    operation_id = "listDnc",
    tag = "dnc",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every number on the list", body = [DncView]),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<DncView>>, ApiError> {
    let list = state.store.list_dnc().await.map_err(ApiError::from_store)?;
    Ok(Json(list.into_iter().map(DncView::from).collect()))
}

/// Puts a number on the list (or replaces its reason).
#[utoipa::path(
    put,
    path = "/api/v1/dnc/{number}",
    operation_id = "putDnc",
    tag = "dnc",
    security(("bearer" = [])),
    params(NumberPath),
    request_body(content = Option<DncBody>, description = "Optional: the reason"),
    responses(
        (status = 201, description = "Added", body = DncView),
        (status = 200, description = "Was on the list; reason replaced", body = DncView),
        (status = 400, description = "Not a telephone number, or malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
        (status = 422, description = "A wrong field", body = ErrorBody),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    )
)]
pub async fn put(
    State(state): State<AppState>,
    NumberPath { number }: NumberPath,
    body: Bytes,
) -> Result<(StatusCode, Json<DncView>), ApiError> {
    let body: DncBody = if body.iter().all(u8::is_ascii_whitespace) {
        DncBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            if e.is_syntax() || e.is_eof() {
                ApiError::bad_request(format!("malformed JSON: {e}"))
            } else {
                ApiError::unprocessable(e.to_string())
            }
        })?
    };
    let entry = DncEntry {
        number: number.clone(),
        reason: body
            .reason
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty()),
        added_at: now_utc(),
    };
    let added = state
        .store
        .put_dnc(&entry)
        .await
        .map_err(ApiError::from_store)?;
    let stored = state
        .store
        .dnc(&number)
        .await
        .map_err(ApiError::from_store)?
        .unwrap_or(entry);
    info!(%number, reason = ?stored.reason, added, "do-not-call list: number listed");
    Ok((put_status(added), Json(stored.into())))
}

/// Takes a number off the list.
#[utoipa::path(
    delete,
    path = "/api/v1/dnc/{number}",
    operation_id = "deleteDnc",
    tag = "dnc",
    security(("bearer" = [])),
    params(NumberPath),
    responses(
        (status = 404, description = "Not on the list", body = ErrorBody),
        Removal,
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    NumberPath { number }: NumberPath,
) -> Result<StatusCode, ApiError> {
    let removed = state.store.delete_dnc(&number).await;
    let missing = format!("{number} is not on the do-not-call list");
    delete_status(
        removed,
        &number,
        "do-not-call list: number removed",
        missing,
    )
}
