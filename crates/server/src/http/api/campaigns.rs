//! Campaigns (PRODUCT §2 rule 10, proactive calls): `POST`/`GET /api/v1/campaigns`,
//! `GET /api/v1/campaigns/{id}`, `POST /api/v1/campaigns/{id}/start` and `.../pause`.
//!
//! A campaign is a calling list made once, when it is created: clients of the directory with
//! no answered call in `dormant_days` (never called: dormant too), of the given client
//! `types`, plus explicit `numbers`. Numbers on the do-not-call list become contacts with
//! status `dnc` and are never dialed. It is created paused; the progressive dialer
//! (`crate::campaigns`) calls its contacts while it runs.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use switchboard_store::{
    Campaign, CampaignCounts, CampaignStatus, ClientType, Contact, ContactStatus, new_record_id,
    now_utc,
};
use tracing::info;
use utoipa::ToSchema;

use super::error::{ApiError, ApiJson, ErrorBody};
use super::time_text;
use crate::callbacks::plan::parse_hhmm;
use crate::http::AppState;

/// Most explicit numbers in one campaign.
pub const MAX_NUMBERS: usize = 10_000;

/// Whom a campaign calls; at least one key. Directory clients must match both `dormant_days`
/// and `types` when both are given; `numbers` are added to them.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetBody {
    /// Clients with no answered call in this many days (clients never called count too).
    #[schema(example = 30)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dormant_days: Option<u32>,
    /// Client types of the directory (`key`, `regional`, `retail`, `marketer`,
    /// `own_outlet`, `new`, `wholesale`).
    #[schema(example = json!(["retail", "wholesale"]))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<String>>,
    /// Explicit numbers (normalised like every number).
    #[schema(example = json!(["+385 91 555 0100"]))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub numbers: Option<Vec<String>>,
}

/// Body of `POST /api/v1/campaigns`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignRequest {
    #[schema(example = "Dormant retail clients, March")]
    pub name: String,
    /// The queue whose free agents make the calls.
    #[schema(example = "orders")]
    pub queue: String,
    pub target: TargetBody,
    /// Local opening and closing time (`[callbacks] timezone`); absent: `[callbacks] window`.
    #[schema(example = json!(["09:00", "17:00"]))]
    pub window: Option<Vec<String>>,
    /// Calls to a number before its contact is `failed`; absent: `[callbacks] max_attempts`.
    pub max_attempts: Option<u32>,
    /// Delay before a busy or unanswered number is called again; absent:
    /// `[callbacks] retry_after_s`.
    pub retry_after_s: Option<u32>,
}

/// Contacts by status.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct StatusCounts {
    pub pending: i64,
    pub dialing: i64,
    pub done: i64,
    pub failed: i64,
    pub dnc: i64,
}

/// One number of a campaign.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ContactView {
    pub number: String,
    /// `pending`, `dialing`, `done`, `failed` or `dnc`.
    #[schema(value_type = String, example = "pending")]
    pub status: ContactStatus,
    pub attempts: u32,
    /// When the next attempt is due (pending only; null: as soon as possible).
    #[schema(format = DateTime)]
    pub next_at: Option<String>,
    /// `answered`, `busy`, `no_answer`, `failed`, `agent_no_answer` or `dnc`.
    pub last_result: Option<String>,
}

/// A campaign and where it stands.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignView {
    pub id: String,
    pub name: String,
    pub queue: String,
    /// `paused` (also when new), `running` or `finished`.
    #[schema(example = "paused")]
    pub status: String,
    pub target: TargetBody,
    /// The campaign's own window, if it has one.
    pub window: Option<Vec<String>>,
    pub max_attempts: u32,
    pub retry_after_s: u32,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Contacts by status.
    pub counts: StatusCounts,
    /// The campaign's calls by the agents' disposition code.
    #[schema(example = json!({"sale": 3, "no_interest": 1}))]
    pub dispositions: BTreeMap<String, i64>,
    /// Every contact (one campaign only; absent from the list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contacts: Option<Vec<ContactView>>,
}

fn view(c: Campaign, counts: CampaignCounts, contacts: Option<Vec<Contact>>) -> CampaignView {
    let mut by_status = StatusCounts::default();
    for (status, n) in counts.by_status {
        match status.parse::<ContactStatus>() {
            Ok(ContactStatus::Pending) => by_status.pending = n,
            Ok(ContactStatus::Dialing) => by_status.dialing = n,
            Ok(ContactStatus::Done) => by_status.done = n,
            Ok(ContactStatus::Failed) => by_status.failed = n,
            Ok(ContactStatus::Dnc) => by_status.dnc = n,
            Err(_) => {}
        }
    }
    CampaignView {
        target: serde_json::from_str(&c.target).unwrap_or_default(),
        id: c.id,
        name: c.name,
        queue: c.queue,
        status: c.status.as_str().to_owned(),
        window: c.window.map(|(a, b)| vec![a, b]),
        max_attempts: c.max_attempts,
        retry_after_s: c.retry_after_s,
        created_at: time_text(c.created_at),
        updated_at: time_text(c.updated_at),
        counts: by_status,
        dispositions: counts.by_disposition.into_iter().collect(),
        contacts: contacts.map(|list| {
            list.into_iter()
                .map(|k| ContactView {
                    next_at: k
                        .next_at
                        .filter(|_| k.status == ContactStatus::Pending)
                        .map(time_text),
                    number: k.number,
                    status: k.status,
                    attempts: k.attempts,
                    last_result: k.last_result,
                })
                .collect()
        }),
    }
}

/// The numbers `target` selects, normalised, unique, by number.
async fn select(state: &AppState, target: &TargetBody) -> Result<Vec<String>, ApiError> {
    if target.dormant_days.is_none() && target.types.is_none() && target.numbers.is_none() {
        return Err(ApiError::unprocessable(
            "target: give dormant_days, types or numbers",
        ));
    }
    let mut numbers = BTreeSet::new();
    if target.dormant_days.is_some() || target.types.is_some() {
        let since = match target.dormant_days {
            None => None,
            Some(d) if !(1..=36_500).contains(&d) => {
                return Err(ApiError::unprocessable(
                    "target.dormant_days: must be between 1 and 36500",
                ));
            }
            Some(d) => Some(now_utc() - switchboard_store::chrono::Duration::days(i64::from(d))),
        };
        let types = match &target.types {
            None => None,
            Some(list) => Some(
                list.iter()
                    .map(|t| {
                        t.trim()
                            .parse::<ClientType>()
                            .map_err(|e| ApiError::unprocessable(format!("target.types: {e}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        if types.as_ref().is_some_and(Vec::is_empty) {
            return Err(ApiError::unprocessable(
                "target.types: name at least one type",
            ));
        }
        let clients = state
            .store
            .campaign_clients(since, types.as_deref())
            .await
            .map_err(ApiError::from_store)?;
        numbers.extend(clients);
    }
    if let Some(list) = &target.numbers {
        if list.len() > MAX_NUMBERS {
            return Err(ApiError::unprocessable(format!(
                "target.numbers: at most {MAX_NUMBERS} numbers"
            )));
        }
        for (i, n) in list.iter().enumerate() {
            let number = state
                .config
                .numbers
                .given(n)
                .map_err(|e| ApiError::unprocessable(format!("target.numbers[{i}]: {e}")))?;
            numbers.insert(number);
        }
    }
    Ok(numbers.into_iter().collect())
}

/// Creates a campaign (paused) with its calling list.
#[utoipa::path(
    post,
    path = "/api/v1/campaigns",
    operation_id = "createCampaign",
    tag = "campaigns",
    security(("bearer" = [])),
    request_body = CampaignRequest,
    responses(
        (status = 201, description = "Stored, paused, with its contacts (numbers on the do-not-call list as `dnc`)", body = CampaignView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
        (status = 422, description = "Bad name, queue, target, window or limits, or the target selects nobody", body = ErrorBody),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CampaignRequest>,
) -> Result<(StatusCode, Json<CampaignView>), ApiError> {
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::unprocessable("name: 1 to 200 characters"));
    }
    let queue = body.queue.trim().to_owned();
    super::require_queue(&state, &queue)?;
    let window = match &body.window {
        None => None,
        Some(w) => match w.as_slice() {
            [a, b] if parse_hhmm(a).is_some() && parse_hhmm(b).is_some() && a != b => {
                Some((a.clone(), b.clone()))
            }
            _ => {
                return Err(ApiError::unprocessable(format!(
                    "window: {w:?} is not an opening and a closing time such as [\"09:00\", \"17:00\"]"
                )));
            }
        },
    };
    let max_attempts = body
        .max_attempts
        .unwrap_or(state.config.callbacks.max_attempts);
    if !(1..=20).contains(&max_attempts) {
        return Err(ApiError::unprocessable(
            "max_attempts: must be between 1 and 20",
        ));
    }
    let retry_after_s = body
        .retry_after_s
        .unwrap_or(state.config.callbacks.retry_after_s);
    if !(1..=604_800).contains(&retry_after_s) {
        return Err(ApiError::unprocessable(
            "retry_after_s: must be between 1 and 604800",
        ));
    }
    let numbers = select(&state, &body.target).await?;
    if numbers.is_empty() {
        return Err(ApiError::unprocessable(
            "target: selects no client (nobody is dormant, of those types or listed)",
        ));
    }
    let listed: HashSet<String> = state
        .store
        .list_dnc()
        .await
        .map_err(ApiError::from_store)?
        .into_iter()
        .map(|e| e.number)
        .collect();
    let now = now_utc();
    let campaign = Campaign {
        id: new_record_id(),
        name,
        queue,
        target: serde_json::to_string(&body.target).unwrap_or_else(|_| "{}".to_owned()),
        window,
        max_attempts,
        retry_after_s,
        status: CampaignStatus::Paused,
        created_at: now,
        updated_at: now,
    };
    let contacts: Vec<Contact> = numbers
        .into_iter()
        .map(|number| {
            let dnc = listed.contains(&number);
            Contact {
                id: new_record_id(),
                campaign_id: campaign.id.clone(),
                number,
                status: if dnc {
                    ContactStatus::Dnc
                } else {
                    ContactStatus::Pending
                },
                attempts: 0,
                next_at: None,
                last_result: dnc.then(|| "dnc".to_owned()),
                updated_at: dnc.then_some(now),
            }
        })
        .collect();
    state
        .store
        .insert_campaign(&campaign, &contacts)
        .await
        .map_err(ApiError::from_store)?;
    let dnc = contacts
        .iter()
        .filter(|c| c.status == ContactStatus::Dnc)
        .count();
    info!(id = %campaign.id, name = %campaign.name, queue = %campaign.queue, contacts = contacts.len(), dnc, "campaign created (paused)");
    let counts = state
        .store
        .campaign_counts(&campaign.id)
        .await
        .map_err(ApiError::from_store)?;
    Ok((
        StatusCode::CREATED,
        Json(view(campaign, counts, Some(contacts))),
    ))
}

/// Lists campaigns, newest first, with their counts.
#[utoipa::path(
    get,
    path = "/api/v1/campaigns",
    operation_id = "listCampaigns",
    tag = "campaigns",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Campaigns, newest first (without their contacts)", body = [CampaignView]),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<CampaignView>>, ApiError> {
    let campaigns = state
        .store
        .campaigns()
        .await
        .map_err(ApiError::from_store)?;
    let mut out = Vec::with_capacity(campaigns.len());
    for c in campaigns {
        let counts = state
            .store
            .campaign_counts(&c.id)
            .await
            .map_err(ApiError::from_store)?;
        out.push(view(c, counts, None));
    }
    Ok(Json(out))
}

async fn one(state: &AppState, id: &str) -> Result<CampaignView, ApiError> {
    let c = state
        .store
        .campaign(id)
        .await
        .map_err(ApiError::from_store)?
        .ok_or_else(|| ApiError::not_found(format!("no campaign {id:?}")))?;
    let counts = state
        .store
        .campaign_counts(id)
        .await
        .map_err(ApiError::from_store)?;
    let contacts = state
        .store
        .campaign_contacts(id)
        .await
        .map_err(ApiError::from_store)?;
    Ok(view(c, counts, Some(contacts)))
}

/// One campaign with its counts and contacts.
#[utoipa::path(
    get,
    path = "/api/v1/campaigns/{id}",
    operation_id = "getCampaign",
    tag = "campaigns",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "The campaign", body = CampaignView),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CampaignView>, ApiError> {
    Ok(Json(one(&state, &id).await?))
}

/// Moves campaign `id` to `to` from `from`; already there is fine, `finished` is final.
async fn switch(
    state: &AppState,
    id: &str,
    from: CampaignStatus,
    to: CampaignStatus,
) -> Result<Json<CampaignView>, ApiError> {
    let moved = state
        .store
        .set_campaign_status(id, &[from], to, now_utc())
        .await
        .map_err(ApiError::from_store)?;
    let current = one(state, id).await?;
    if moved {
        info!(%id, name = %current.name, status = to.as_str(), "campaign {}", if to == CampaignStatus::Running { "started" } else { "paused" });
    } else if current.status != to.as_str() {
        return Err(ApiError::conflict(format!(
            "campaign {id:?} is {}: it cannot be {}",
            current.status,
            if to == CampaignStatus::Running {
                "started"
            } else {
                "paused"
            }
        )));
    }
    Ok(Json(current))
}

/// Starts (or resumes) a campaign: the dialer calls its contacts as agents of its queue are
/// free.
#[utoipa::path(
    post,
    path = "/api/v1/campaigns/{id}/start",
    operation_id = "startCampaign",
    tag = "campaigns",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "Running", body = CampaignView),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
        (status = 409, description = "Finished already", body = ErrorBody),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    )
)]
pub async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CampaignView>, ApiError> {
    switch(&state, &id, CampaignStatus::Paused, CampaignStatus::Running).await
}

/// Pauses a campaign: no new call is made; calls in progress finish.
#[utoipa::path(
    post,
    path = "/api/v1/campaigns/{id}/pause",
    operation_id = "pauseCampaign",
    tag = "campaigns",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "Paused", body = CampaignView),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
        (status = 409, description = "Finished already", body = ErrorBody),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    )
)]
pub async fn pause(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CampaignView>, ApiError> {
    switch(&state, &id, CampaignStatus::Running, CampaignStatus::Paused).await
}
