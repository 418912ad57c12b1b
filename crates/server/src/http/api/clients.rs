//! The client directory: `GET /api/v1/clients`, `PUT`/`GET`/`DELETE /api/v1/clients/{number}`.
//!
//! Changes take effect on the next call from that number: routing reads the store's
//! in-memory directory, which `upsert`/`delete` update before they answer.

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use switchboard_store::{Client, ClientType, Money, StoreError};
use tracing::info;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{IntoParams, IntoResponses, PartialSchema, ToSchema};

use super::error::{ApiError, ApiJson, ErrorBody};
use crate::config::NumbersConfig;
use crate::http::AppState;

/// The OpenAPI schema of a client type: the directory's spellings (PRODUCT §2), which
/// request and response bodies carry as `switchboard_store::ClientType` serializes them.
#[derive(Debug)]
pub struct ClientTypeName;

impl PartialSchema for ClientTypeName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("A client type (PRODUCT §2)."))
            .enum_values(Some(ClientType::ALL.iter().map(|t| t.as_str())))
            .into()
    }
}

impl ToSchema for ClientTypeName {}

/// A client of the directory.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClientView {
    /// Normalised telephone number (digits, optional leading `+`).
    #[schema(example = "+38591555001")]
    pub number: String,
    #[schema(example = "Veletrgovina d.o.o.")]
    pub name: String,
    #[serde(rename = "type")]
    #[schema(value_type = ClientTypeName)]
    pub client_type: String,
    /// Assigned manager (agent id).
    #[schema(example = "ana")]
    pub manager: Option<String>,
    pub region: Option<String>,
    /// Overdue debt in currency units (not cents), two decimals.
    #[schema(example = 1500.5)]
    pub overdue_debt: f64,
}

impl From<Client> for ClientView {
    fn from(c: Client) -> Self {
        let Client {
            number,
            name,
            client_type,
            manager,
            region,
            overdue_debt,
        } = c;
        #[allow(clippy::cast_precision_loss)] // exact below 2^53 cents
        let overdue_debt = overdue_debt.cents() as f64 / 100.0;
        ClientView {
            number,
            name,
            client_type: client_type.as_str().to_owned(),
            manager,
            region,
            overdue_debt,
        }
    }
}

/// Body of `PUT /api/v1/clients/{number}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientBody {
    /// Optional; when given it must be the number of the path.
    pub number: Option<String>,
    #[schema(example = "Veletrgovina d.o.o.")]
    pub name: String,
    #[serde(rename = "type")]
    #[schema(value_type = ClientTypeName)]
    pub client_type: ClientType,
    /// Assigned manager: a configured agent id.
    #[schema(example = "ana")]
    pub manager: Option<String>,
    #[schema(example = "north")]
    pub region: Option<String>,
    /// Overdue debt in currency units (not cents): a non-negative number with at most two
    /// decimals (a decimal string such as `"1500.50"` is accepted too). Default 0. Above
    /// zero, order calls go to the assigned manager or finance.
    #[serde(default)]
    #[schema(value_type = Option<f64>, minimum = 0, example = 1500.5)]
    pub overdue_debt: Money,
}

/// A number of a path as the directory keeps it: `[numbers]` applied, spaces and punctuation
/// gone (the form calls are looked up by); 400 when it is no telephone number.
pub(super) fn path_number(numbers: &NumbersConfig, raw: &str) -> Result<String, ApiError> {
    numbers
        .given(raw)
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

/// 201 when a PUT created the entry, 200 when it replaced one.
pub(super) fn put_status(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// The `{number}` of a path, normalised; 400 when it is no telephone number.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct NumberPath {
    /// Telephone number
    pub number: String,
}

impl FromRequestParts<AppState> for NumberPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        Ok(NumberPath {
            number: path_number(&state.config.numbers, &raw)?,
        })
    }
}

/// What a DELETE by number answers besides its 404 (see [`delete_status`]).
#[derive(Debug, IntoResponses)]
#[allow(dead_code)] // Only its OpenAPI description is used.
pub(super) enum Removal {
    #[response(status = 204, description = "Removed")]
    Removed,
    #[response(status = 400, description = "Not a telephone number")]
    NotANumber(ErrorBody),
    #[response(status = 401, description = "Missing or wrong API token")]
    Unauthorized(ErrorBody),
    #[response(status = 503, description = "The database is unreachable")]
    Unavailable(ErrorBody),
}

/// 204 when a DELETE removed the entry of `number` (logged as `removed_log`), else 404 with
/// `missing`.
pub(super) fn delete_status(
    removed: Result<bool, StoreError>,
    number: &str,
    removed_log: &str,
    missing: String,
) -> Result<StatusCode, ApiError> {
    if removed.map_err(ApiError::from_store)? {
        info!(%number, "{removed_log}");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(missing))
    }
}

/// The whole client directory, sorted by number.
#[utoipa::path(
    get,
    path = "/api/v1/clients",
    operation_id = "listClients",
    tag = "clients",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every client", body = [ClientView]),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>) -> Json<Vec<ClientView>> {
    Json(
        state
            .store
            .clients()
            .all()
            .into_iter()
            .map(ClientView::from)
            .collect(),
    )
}

/// One client.
#[utoipa::path(
    get,
    path = "/api/v1/clients/{number}",
    operation_id = "getClient",
    tag = "clients",
    security(("bearer" = [])),
    params(("number" = String, Path, description = "Telephone number (spaces, dashes and parentheses are ignored)")),
    responses(
        (status = 200, description = "The client", body = ClientView),
        (status = 400, description = "Not a telephone number", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
        (status = 404, description = "No client with this number", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Path(number): Path<String>,
) -> Result<Json<ClientView>, ApiError> {
    let number = path_number(&state.config.numbers, &number)?;
    state
        .store
        .clients()
        .get(&number)
        .map(|c| Json(c.into()))
        .ok_or_else(|| ApiError::not_found(format!("no client {number}")))
}

/// Creates or replaces a client (201 when created, 200 when replaced). The next call from
/// this number is routed with the new record.
#[utoipa::path(
    put,
    path = "/api/v1/clients/{number}",
    operation_id = "putClient",
    tag = "clients",
    security(("bearer" = [])),
    params(("number" = String, Path, description = "Telephone number (spaces, dashes and parentheses are ignored)")),
    request_body = ClientBody,
    responses(
        (status = 200, description = "Replaced", body = ClientView),
        (status = 201, description = "Created", body = ClientView),
        (status = 400, description = "Not a telephone number, or malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
        (status = 422, description = "A field is missing or invalid", body = ErrorBody),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    )
)]
pub async fn put(
    State(state): State<AppState>,
    Path(number): Path<String>,
    ApiJson(body): ApiJson<ClientBody>,
) -> Result<Response, ApiError> {
    let number = path_number(&state.config.numbers, &number)?;
    if let Some(given) = &body.number {
        let given = super::number_field(&state, given)?;
        if given != number {
            return Err(ApiError::unprocessable(format!(
                "number: {given} differs from the number of the path, {number}"
            )));
        }
    }
    if body.name.trim().is_empty() {
        return Err(ApiError::unprocessable("name: must not be empty"));
    }
    let manager = body
        .manager
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty());
    if let Some(m) = &manager
        && state.engine.agent_idx(m).is_none()
    {
        return Err(ApiError::unprocessable(format!(
            "manager: no agent {m:?} is configured"
        )));
    }
    let directory = state.store.clients();
    let existed = directory.get(&number).is_some();
    let stored = directory
        .upsert(Client {
            number,
            name: body.name,
            client_type: body.client_type,
            manager,
            region: body.region,
            overdue_debt: body.overdue_debt,
        })
        .await
        .map_err(ApiError::from_store)?;
    info!(number = %stored.number, created = !existed, "client stored through the API");
    Ok((put_status(!existed), Json(ClientView::from(stored))).into_response())
}

/// Removes a client; its next call is treated as a new client's.
#[utoipa::path(
    delete,
    path = "/api/v1/clients/{number}",
    operation_id = "deleteClient",
    tag = "clients",
    security(("bearer" = [])),
    params(NumberPath),
    responses(
        (status = 404, description = "No client with this number", body = ErrorBody),
        Removal,
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    NumberPath { number }: NumberPath,
) -> Result<StatusCode, ApiError> {
    let removed = state.store.clients().delete(&number).await;
    let missing = format!("no client {number}");
    delete_status(removed, &number, "client removed through the API", missing)
}
