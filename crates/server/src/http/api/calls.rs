//! `GET /api/v1/calls` (call-detail records, newest first) and `GET /api/v1/calls/active`.

use std::convert::identity;

use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use switchboard_store::chrono::{DateTime, Utc};
use switchboard_store::{CallRecord, Direction, HangupSide, Outcome, StoredCall, Timestamp};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiQuery, ErrorBody};
use super::scope::Scope;
use super::time_text;
use crate::http::AppState;
use crate::http::shared::ActiveCall;

/// Default and largest `limit` of `GET /api/v1/calls`.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// Query of `GET /api/v1/calls`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only calls that started at or after this instant (RFC 3339, e.g.
    /// `2026-03-02T08:00:00Z`).
    pub since: Option<String>,
    /// At most this many records (1..=1000, default 100).
    pub limit: Option<u32>,
}

/// Declares [`CallView`] from one list of the record's columns, each with how the API shows
/// it (`identity`: as stored, `time_text`/`opt_time`: RFC 3339), then the fields the API
/// adds, and `From<CallRecord>`, which destructures the record in full: a new CDR column
/// fails to compile here until the API shows it.
macro_rules! call_view {
    (
        $(#[$meta:meta])*
        record { $($(#[$fmeta:meta])* $field:ident: $ty:ty = $show:ident,)+ }
        added { $($(#[$ameta:meta])* $added:ident: $aty:ty,)+ }
    ) => {
        $(#[$meta])*
        pub struct CallView {
            $($(#[$fmeta])* pub $field: $ty,)+
            $($(#[$ameta])* pub $added: $aty,)+
        }

        impl From<CallRecord> for CallView {
            fn from(r: CallRecord) -> Self {
                // `journal` is internal: set only while a call is in progress.
                let CallRecord { $($field,)+ journal: _ } = r;
                CallView { $($field: $show($field),)+ $($added: None,)+ }
            }
        }
    };
}

fn opt_time(t: Option<Timestamp>) -> Option<String> {
    t.map(time_text)
}

call_view! {
    /// One call-detail record (table `calls`, PRODUCT §4).
    #[derive(Debug, Clone, Serialize, ToSchema)]
    record {
        id: String = identity,
        sip_call_id: String = identity,
        /// `inbound` or `outbound`.
        #[schema(value_type = String, example = "inbound")]
        direction: Direction = identity,
        trunk: Option<String> = identity,
        caller: String = identity,
        dialed: String = identity,
        client_number: Option<String> = identity,
        /// `debt`, `key`, `new`, `regional`, `other`, `complaint` or `standard`.
        client_class: Option<String> = identity,
        /// `order`, `information`, `other` or `complaint`.
        purpose: Option<String> = identity,
        queue: Option<String> = identity,
        agent_id: Option<String> = identity,
        /// The route chain steps tried and why each was skipped.
        #[schema(example = "role:department_head(ivan)")]
        route: String = identity,
        #[schema(format = DateTime)]
        started_at: String = time_text,
        #[schema(format = DateTime)]
        queued_at: Option<String> = opt_time,
        #[schema(format = DateTime)]
        answered_at: Option<String> = opt_time,
        #[schema(format = DateTime)]
        ended_at: String = time_text,
        wait_ms: i64 = identity,
        talk_ms: i64 = identity,
        /// `answered`, `abandoned`, `timeout`, `no_agent`, `rejected`, `transferred` or `failed`.
        #[schema(value_type = String, example = "answered")]
        outcome: Outcome = identity,
        /// `caller`, `agent` or `system`.
        #[schema(value_type = String, example = "caller")]
        hangup_side: HangupSide = identity,
        recording: Option<String> = identity,
        /// The call-back this outbound call was made for.
        callback_id: Option<String> = identity,
        /// The campaign this outbound call was made for (`GET /api/v1/campaigns/{id}`).
        campaign: Option<String> = identity,
    }
    added {
        /// The agent's disposition code (`POST /api/v1/calls/{id}/disposition`) and note.
        disposition: Option<String>,
        disposition_note: Option<String>,
        /// Quality evaluation (0..100), once a supervisor gave one.
        quality_score: Option<i64>,
        quality_reviewer: Option<String>,
        quality_note: Option<String>,
    }
}

impl From<StoredCall> for CallView {
    fn from(c: StoredCall) -> Self {
        let mut view = CallView::from(c.record);
        if let Some(q) = c.quality {
            view.quality_score = Some(q.score);
            view.quality_reviewer = Some(q.reviewer);
            view.quality_note = q.note;
        }
        if let Some(d) = c.disposition {
            view.disposition = Some(d.code);
            view.disposition_note = d.note;
        }
        view
    }
}

/// Call-detail records, newest first (an agent token: that agent's only). Records of calls
/// that ended in the last moments may still be on their way to the database.
#[utoipa::path(
    get,
    path = "/api/v1/calls",
    operation_id = "listCalls",
    tag = "calls",
    security(("bearer" = [])),
    params(HistoryQuery),
    responses(
        (status = 200, description = "Records, newest first", body = [CallView]),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
        (status = 422, description = "Bad `since` or `limit`", body = ErrorBody),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    )
)]
pub async fn history(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<Vec<CallView>>, ApiError> {
    let since = match q.since.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            DateTime::parse_from_rfc3339(s)
                .map_err(|e| {
                    ApiError::unprocessable(format!(
                        "since: {s:?} is not an RFC 3339 time such as 2026-03-02T08:00:00Z ({e})"
                    ))
                })?
                .with_timezone(&Utc),
        ),
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::unprocessable(format!(
            "limit: must be between 1 and {MAX_LIMIT}"
        )));
    }
    let records = state
        .store
        .stored_calls(since, scope.agent(), limit)
        .await
        .map_err(ApiError::from_store)?;
    Ok(Json(records.into_iter().map(CallView::from).collect()))
}

/// One stored call-detail record, or 404 (a call that ended a moment ago may still be on
/// its way to the database).
pub(super) async fn stored(state: &AppState, id: &str) -> Result<StoredCall, ApiError> {
    state
        .store
        .stored_call(id)
        .await
        .map_err(ApiError::from_store)?
        .ok_or_else(|| no_stored_call(id))
}

/// Ok when an update found call `id`'s stored record, else 404 as [`stored`].
pub(super) fn updated(found: bool, id: &str) -> Result<(), ApiError> {
    if found {
        Ok(())
    } else {
        Err(no_stored_call(id))
    }
}

fn no_stored_call(id: &str) -> ApiError {
    ApiError::not_found(format!("no stored call {id:?}"))
}

/// Calls in progress, oldest first, with their state and the route so far (an agent token:
/// the calls ringing or talking to that agent). The snapshot is at most 200 ms old.
#[utoipa::path(
    get,
    path = "/api/v1/calls/active",
    operation_id = "listActiveCalls",
    tag = "calls",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Calls in progress", body = [ActiveCall]),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
    )
)]
pub async fn active(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
) -> Json<Vec<ActiveCall>> {
    let own = |c: &ActiveCall| match scope.agent() {
        None => true,
        Some(a) => c.agent.as_deref() == Some(a) || c.ringing.iter().any(|r| r == a),
    };
    Json(
        state
            .shared
            .active_calls()
            .into_iter()
            .filter(own)
            .collect(),
    )
}
