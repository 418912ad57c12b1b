//! `GET /api/v1/calls` (call-detail records, newest first) and `GET /api/v1/calls/active`.

use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use switchboard_store::chrono::{DateTime, SecondsFormat, Utc};
use switchboard_store::{CallRecord, StoredCall};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiQuery, ErrorBody};
use super::scope::Scope;
use crate::http::AppState;
use crate::shared::ActiveCall;

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

/// One call-detail record (table `calls`, PRODUCT §4).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallView {
    pub id: String,
    pub sip_call_id: String,
    /// `inbound` or `outbound`.
    #[schema(example = "inbound")]
    pub direction: String,
    pub trunk: Option<String>,
    pub caller: String,
    pub dialed: String,
    pub client_number: Option<String>,
    /// `debt`, `key`, `new`, `regional`, `other`, `complaint` or `standard`.
    pub client_class: Option<String>,
    /// `order`, `information`, `other` or `complaint`.
    pub purpose: Option<String>,
    pub queue: Option<String>,
    pub agent_id: Option<String>,
    /// The route chain steps tried and why each was skipped.
    #[schema(example = "role:department_head(ivan)")]
    pub route: String,
    #[schema(format = DateTime)]
    pub started_at: String,
    #[schema(format = DateTime)]
    pub queued_at: Option<String>,
    #[schema(format = DateTime)]
    pub answered_at: Option<String>,
    #[schema(format = DateTime)]
    pub ended_at: String,
    pub wait_ms: i64,
    pub talk_ms: i64,
    /// `answered`, `abandoned`, `timeout`, `no_agent`, `rejected`, `transferred` or `failed`.
    #[schema(example = "answered")]
    pub outcome: String,
    /// `caller`, `agent` or `system`.
    #[schema(example = "caller")]
    pub hangup_side: String,
    pub recording: Option<String>,
    /// The call-back this outbound call was made for.
    pub callback_id: Option<String>,
    /// The agent's disposition code (`POST /api/v1/calls/{id}/disposition`) and note.
    pub disposition: Option<String>,
    pub disposition_note: Option<String>,
    /// Quality evaluation (0..100), once a supervisor gave one.
    pub quality_score: Option<i64>,
    pub quality_reviewer: Option<String>,
    pub quality_note: Option<String>,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl From<CallRecord> for CallView {
    fn from(r: CallRecord) -> Self {
        // Destructured in full: a new CDR column fails to compile here until the API shows it.
        let CallRecord {
            id,
            sip_call_id,
            direction,
            trunk,
            caller,
            dialed,
            client_number,
            client_class,
            purpose,
            queue,
            agent_id,
            route,
            started_at,
            queued_at,
            answered_at,
            ended_at,
            wait_ms,
            talk_ms,
            outcome,
            hangup_side,
            recording,
            // Internal: set only while a call is in progress (its journal row).
            journal: _,
            callback_id,
        } = r;
        CallView {
            id,
            sip_call_id,
            direction: direction.as_str().to_owned(),
            trunk,
            caller,
            dialed,
            client_number,
            client_class,
            purpose,
            queue,
            agent_id,
            route,
            started_at: time(started_at),
            queued_at: queued_at.map(time),
            answered_at: answered_at.map(time),
            ended_at: time(ended_at),
            wait_ms,
            talk_ms,
            outcome: outcome.as_str().to_owned(),
            hangup_side: hangup_side.as_str().to_owned(),
            recording,
            callback_id,
            disposition: None,
            disposition_note: None,
            quality_score: None,
            quality_reviewer: None,
            quality_note: None,
        }
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
        .ok_or_else(|| ApiError::not_found(format!("no stored call {id:?}")))
}

/// A call in progress.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActiveCallView {
    /// Switchboard's call number (as in the live events).
    pub call: u64,
    /// The id its call-detail record will have.
    pub id: String,
    pub sip_call_id: String,
    pub trunk: String,
    pub caller: String,
    pub dialed: String,
    pub client_class: String,
    pub purpose: String,
    /// `queued`, `ringing` or `talking`.
    #[schema(example = "talking")]
    pub state: String,
    pub queue: Option<String>,
    /// Agents being rung now.
    pub ringing: Vec<String>,
    /// The agent talking to the caller.
    pub agent: Option<String>,
    /// The route so far: chain steps tried and why.
    pub route: String,
    #[schema(format = DateTime)]
    pub started_at: String,
    #[schema(format = DateTime)]
    pub answered_at: Option<String>,
    /// The agent or the caller (their PBX) holds the call.
    pub on_hold: bool,
    /// While talking: `webrtc` when the agent is a browser (SIP over WebSocket, DTLS-SRTP
    /// through the call's WebRTC leg), `rtp` for a SIP phone.
    #[schema(example = "webrtc")]
    pub agent_media: Option<String>,
}

impl From<ActiveCall> for ActiveCallView {
    fn from(c: ActiveCall) -> Self {
        // Destructured in full so a new field of the snapshot is not silently left out.
        let ActiveCall {
            call,
            id,
            sip_call_id,
            trunk,
            caller,
            dialed,
            client_class,
            purpose,
            state,
            queue,
            ringing,
            agent,
            route,
            started_at,
            answered_at,
            on_hold,
            agent_media,
        } = c;
        ActiveCallView {
            call,
            id,
            sip_call_id,
            trunk,
            caller,
            dialed,
            client_class,
            purpose,
            state,
            queue,
            ringing,
            agent,
            route,
            started_at,
            answered_at,
            on_hold,
            agent_media,
        }
    }
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
        (status = 200, description = "Calls in progress", body = [ActiveCallView]),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
    )
)]
pub async fn active(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
) -> Json<Vec<ActiveCallView>> {
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
            .map(ActiveCallView::from)
            .collect(),
    )
}
