//! `GET /api/v1/agents` and `POST /api/v1/agents/{id}/state`.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use switchboard_engine::{
    AgentSnapshot, AgentState, AgentStateChange, AgentStateKind, EngineError, Time,
};
use tracing::info;
use utoipa::ToSchema;

use super::error::{ApiError, ApiJson, ErrorBody};
use super::scope::Scope;
use super::{engine_now, rfc3339};
use crate::http::AppState;

/// Longest break reason kept.
const MAX_REASON_CHARS: usize = 200;

/// An agent state, spelled as in PRODUCT §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStateName {
    LoggedOut,
    Available,
    Ringing,
    OnCall,
    WrapUp,
    Break,
    Absent,
    NotReady,
}

impl From<AgentStateKind> for AgentStateName {
    fn from(k: AgentStateKind) -> Self {
        match k {
            AgentStateKind::LoggedOut => AgentStateName::LoggedOut,
            AgentStateKind::Available => AgentStateName::Available,
            AgentStateKind::Ringing => AgentStateName::Ringing,
            AgentStateKind::OnCall => AgentStateName::OnCall,
            AgentStateKind::WrapUp => AgentStateName::WrapUp,
            AgentStateKind::Break => AgentStateName::Break,
            AgentStateKind::Absent => AgentStateName::Absent,
            AgentStateKind::NotReady => AgentStateName::NotReady,
        }
    }
}

/// One agent as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentView {
    /// Agent id (the SIP user name it registers with).
    #[schema(example = "ana")]
    pub id: String,
    #[schema(example = "Ana")]
    pub name: String,
    /// Roles (`operator`, `key_account_manager`, `department_head`, ...).
    pub roles: Vec<String>,
    pub state: AgentStateName,
    /// When the agent entered its current state (RFC 3339); `null` when the agent has been
    /// in it since the server started.
    #[schema(format = DateTime, example = "2026-03-02T09:15:00.000Z")]
    pub state_since: Option<String>,
    /// Break reason, while on `break`.
    pub reason: Option<String>,
    /// The agent covering for this one, while `absent`.
    pub substitute: Option<String>,
    /// Registered contact URIs of the agent's softphones.
    pub contacts: Vec<String>,
    /// Calls answered since the server started today.
    pub calls_today: u64,
    /// Talk time since the server started today, in seconds.
    pub talk_s_today: u64,
    /// A remark about the state just set (only in answers to a state change).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl AgentView {
    fn new(a: AgentSnapshot, contacts: Vec<String>) -> AgentView {
        let (reason, substitute) = match &a.state {
            AgentState::Break { reason } => (reason.clone().filter(|r| !r.is_empty()), None),
            AgentState::Absent { substitute } => (None, substitute.clone()),
            _ => (None, None),
        };
        AgentView {
            state: a.state.kind().into(),
            state_since: (a.state_since != Time::ZERO).then(|| rfc3339(a.state_since)),
            reason,
            substitute,
            contacts,
            calls_today: a.calls_today,
            talk_s_today: a.talk_ms_today / 1000,
            id: a.id,
            name: a.name,
            roles: a.roles,
            warning: None,
        }
    }
}

/// Every configured agent with its live state and registered contacts.
#[utoipa::path(
    get,
    path = "/api/v1/agents",
    operation_id = "listAgents",
    tag = "agents",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Agents in configuration order", body = [AgentView]),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>) -> Json<Vec<AgentView>> {
    let mut registrations = state.shared.registrations();
    let agents = state
        .engine
        .agents()
        .into_iter()
        .map(|a| {
            let contacts = registrations.remove(&a.id).unwrap_or_default();
            AgentView::new(a, contacts)
        })
        .collect();
    Json(agents)
}

/// One agent, as in the list; an agent token only its own.
#[utoipa::path(
    get,
    path = "/api/v1/agents/{id}",
    operation_id = "getAgent",
    tag = "agents",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Agent id")),
    responses(
        (status = 200, description = "The agent", body = AgentView),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 403, description = "An agent token of another agent", body = ErrorBody),
        (status = 404, description = "No such agent", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    scope.require_agent(&id)?;
    let snapshot = state
        .engine
        .agents()
        .into_iter()
        .find(|a| a.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no agent {id:?}")))?;
    let contacts = state.shared.registrations().remove(&id).unwrap_or_default();
    Ok(Json(AgentView::new(snapshot, contacts)))
}

/// A state an agent can be switched to through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestedState {
    Available,
    Break,
    LoggedOut,
    Absent,
}

/// Body of `POST /api/v1/agents/{id}/state`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateChange {
    pub state: RequestedState,
    /// Why (break reason, "vacation", ...); at most 200 characters. Kept with `break`, logged
    /// with the others.
    #[schema(example = "lunch")]
    pub reason: Option<String>,
    /// Only with `absent`: the agent who takes over this agent's clients meanwhile (defaults
    /// to the configured substitute).
    #[schema(example = "marko")]
    pub substitute: Option<String>,
}

/// Switches an agent to available, break (with a reason), logged out or absent (with a
/// substitute). An agent being rung loses the offer (the call goes back to its place); an
/// agent on a call cannot be switched (409).
#[utoipa::path(
    post,
    path = "/api/v1/agents/{id}/state",
    operation_id = "setAgentState",
    tag = "agents",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Agent id")),
    request_body = StateChange,
    responses(
        (status = 200, description = "The agent after the change", body = AgentView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
        (status = 403, description = "An agent token of another agent", body = ErrorBody),
        (status = 404, description = "No such agent", body = ErrorBody),
        (status = 409, description = "The agent is on a call", body = ErrorBody),
        (status = 422, description = "Invalid state, reason or substitute", body = ErrorBody),
    )
)]
pub async fn set_state(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StateChange>,
) -> Result<Json<AgentView>, ApiError> {
    scope.require_agent(&id)?;
    let engine = &state.engine;
    let agent = engine
        .agent_idx(&id)
        .ok_or_else(|| ApiError::not_found(format!("no agent {id:?}")))?;
    let reason = body
        .reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    if reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS)
    {
        return Err(ApiError::unprocessable(format!(
            "reason: at most {MAX_REASON_CHARS} characters"
        )));
    }
    if let Some(sub) = &body.substitute {
        if body.state != RequestedState::Absent {
            return Err(ApiError::unprocessable(
                "substitute: only meaningful with state \"absent\"",
            ));
        }
        if engine.agent_idx(sub).is_none() {
            return Err(ApiError::unprocessable(format!(
                "substitute: no agent {sub:?}"
            )));
        }
        if *sub == id {
            return Err(ApiError::unprocessable(
                "substitute: an agent cannot substitute for themselves",
            ));
        }
    }
    let change = match body.state {
        RequestedState::Available => AgentStateChange::Available,
        RequestedState::Break => AgentStateChange::Break {
            reason: reason.clone(),
        },
        RequestedState::LoggedOut => AgentStateChange::LoggedOut,
        RequestedState::Absent => AgentStateChange::Absent {
            substitute: body.substitute.clone(),
        },
    };
    match engine.set_agent_state(engine_now(), agent, change) {
        Ok(()) => {}
        Err(EngineError::AgentOnCall(_)) => {
            return Err(ApiError::conflict(format!(
                "agent {id:?} is on a call; the state can change when the call ends"
            )));
        }
        Err(EngineError::UnknownAgent(sub)) => {
            return Err(ApiError::unprocessable(format!(
                "substitute: no agent {sub:?}"
            )));
        }
        Err(e) => return Err(ApiError::conflict(e.to_string())),
    }
    // The endpoint task carries out what the engine decided (offers to a newly available
    // agent, a withdrawn offer) and records the state change.
    state.shared.wake.notify_one();
    info!(agent = %id, state = ?body.state, reason = reason.as_deref().unwrap_or("-"), "agent state set through the API");

    let snapshot = engine
        .agents()
        .into_iter()
        .find(|a| a.idx == agent)
        .ok_or_else(|| ApiError::not_found(format!("no agent {id:?}")))?;
    let contacts = state.shared.registrations().remove(&id).unwrap_or_default();
    let mut view = AgentView::new(snapshot, contacts);
    if body.state == RequestedState::Available && view.contacts.is_empty() {
        view.warning = Some(
            "the agent has no registered softphone: the first call offered will log them out again"
                .to_owned(),
        );
    }
    Ok(Json(view))
}
