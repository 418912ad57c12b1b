//! `POST /api/v1/callbacks`: "call me back" requests from the web site or the CRM.
//!
//! The request is validated and stored (table `callbacks`, status `pending`). This version
//! does not dial call-backs yet; the answer says so, and the stored requests are what the
//! dialer will work through.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use switchboard_store::chrono::{DateTime, SecondsFormat, Utc};
use switchboard_store::{Callback, CallbackStatus, new_record_id, normalize_number, now_utc};
use tracing::info;
use utoipa::ToSchema;

use super::error::{ApiError, ApiJson, ErrorBody};
use crate::http::AppState;

/// What the answer says about dialing.
pub const NOT_DIALED_YET: &str = "stored; this version of Switchboard does not dial call-backs yet (dialing comes in a later release)";

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

/// A stored call-back request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallbackView {
    pub id: String,
    /// Normalised number.
    pub number: String,
    #[schema(format = DateTime)]
    pub at: Option<String>,
    pub queue: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// `pending` for a new request.
    #[schema(example = "pending")]
    pub status: String,
    /// Whether this server dials call-backs (false in this version).
    pub dialing: bool,
    #[schema(
        example = "stored; this version of Switchboard does not dial call-backs yet (dialing comes in a later release)"
    )]
    pub note: String,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Stores a call-back request (202: accepted, not dialed by this version).
#[utoipa::path(
    post,
    path = "/api/v1/callbacks",
    operation_id = "createCallback",
    tag = "callbacks",
    security(("bearer" = [])),
    request_body = CallbackRequest,
    responses(
        (status = 202, description = "Stored as pending; not dialed by this version", body = CallbackView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
        (status = 422, description = "Bad number, time or queue", body = ErrorBody),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CallbackRequest>,
) -> Result<(StatusCode, Json<CallbackView>), ApiError> {
    let number = normalize_number(&body.number)
        .map_err(|e| ApiError::unprocessable(format!("number: {e}")))?;
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
    let queue = body
        .queue
        .map(|q| q.trim().to_owned())
        .filter(|q| !q.is_empty());
    if let Some(q) = &queue
        && state.engine.queue_idx(q).is_none()
    {
        let known: Vec<&str> = state
            .config
            .queues
            .iter()
            .map(|q| q.name.as_str())
            .collect();
        return Err(ApiError::unprocessable(format!(
            "queue: no queue {q:?} (configured: {})",
            known.join(", ")
        )));
    }
    let callback = Callback {
        id: new_record_id(),
        number,
        at,
        queue,
        created_at: now_utc(),
        status: CallbackStatus::Pending,
    };
    state
        .store
        .insert_callback(&callback)
        .await
        .map_err(ApiError::from_store)?;
    info!(id = %callback.id, number = %callback.number, "call-back request stored");
    Ok((
        StatusCode::ACCEPTED,
        Json(CallbackView {
            id: callback.id,
            number: callback.number,
            at: callback.at.map(time),
            queue: callback.queue,
            created_at: time(callback.created_at),
            status: callback.status.as_str().to_owned(),
            dialing: false,
            note: NOT_DIALED_YET.to_owned(),
        }),
    ))
}
