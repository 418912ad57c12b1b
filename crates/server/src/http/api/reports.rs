//! `GET /api/v1/reports/{agents,queues,abandoned}`: shift, queue and abandoned-call reports
//! from the stored records, as JSON or CSV (RFC 4180, header row, CRLF).
//!
//! The figures are defined once, here (docs/reports.md says the same in words):
//! - service level = calls answered within `[routing] service_level_threshold_s` / (offered −
//!   short abandons), the Asterisk/Genesys convention: a caller who hangs up within
//!   [`SHORT_ABANDON_MS`] never had a chance to be served and counts neither way;
//! - ASA = average wait of the answered calls; AHT = average talk time of the answered calls
//!   (holds included; an agent's wrap-up time is reported apart as `wrap_up_s`);
//! - an agent's `offered` = `answered` + `no_answers`; times in a state are clipped to the
//!   period, the state before the period counting from its start.
//!
//! Periods are half-open `[from, to)` in RFC 3339; both default to today (midnight to
//! midnight in `[routing] timezone`, the day of "calls today"); intervals (hour, day) are cut
//! at the UTC offset of `from`.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use switchboard_store::chrono::{DateTime, Duration, FixedOffset, SecondsFormat, Utc};
use switchboard_store::reports::{AgentFigures, Period, QueueFigures, QueueReportQuery};
use utoipa::{IntoParams, IntoResponses, ToSchema};

use super::error::{ApiError, ApiQuery, ErrorBody};
use crate::http::AppState;

/// A caller who abandons before this wait is a short abandon (5 s).
pub const SHORT_ABANDON_MS: i64 = 5_000;

/// Longest report period.
const MAX_PERIOD_DAYS: i64 = 366;

/// Output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Csv,
}

/// Interval of the queue report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    Hour,
    #[default]
    Day,
}

impl Interval {
    fn millis(self) -> i64 {
        match self {
            Interval::Hour => 3_600_000,
            Interval::Day => 86_400_000,
        }
    }
}

/// Query of every report.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// First instant (RFC 3339, e.g. `2026-03-02T00:00:00+01:00`); default: today's local
    /// midnight, or `to` minus a day.
    pub from: Option<String>,
    /// First instant after the period; default: `from` plus a day.
    pub to: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<Format>,
    /// Queue report only: `hour` or `day` (default).
    pub interval: Option<Interval>,
}

/// The period of a query, and the UTC offset its days are cut at; `zone` is the call
/// center's (`[routing] timezone`), whose today is the default.
fn period(q: &ReportQuery, zone: chrono_tz::Tz) -> Result<(Period, FixedOffset), ApiError> {
    let parse =
        |name: &str, v: &Option<String>| -> Result<Option<DateTime<FixedOffset>>, ApiError> {
            match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => DateTime::parse_from_rfc3339(s).map(Some).map_err(|e| {
                ApiError::unprocessable(format!(
                    "{name}: {s:?} is not an RFC 3339 time such as 2026-03-02T00:00:00+01:00 ({e})"
                ))
            }),
        }
        };
    let day = Duration::days(1);
    let (from, to) = match (parse("from", &q.from)?, parse("to", &q.to)?) {
        (Some(f), Some(t)) => (f, t),
        (Some(f), None) => (f, f + day),
        (None, Some(t)) => (t - day, t),
        (None, None) => crate::routing::daily::today(switchboard_store::now_utc(), zone)
            .ok_or_else(|| ApiError::unprocessable("cannot find today's local midnight"))?,
    };
    if from >= to {
        return Err(ApiError::unprocessable("from: must be before to"));
    }
    if to - from > Duration::days(MAX_PERIOD_DAYS) {
        return Err(ApiError::unprocessable(format!(
            "to: a report covers at most {MAX_PERIOD_DAYS} days"
        )));
    }
    Ok((
        Period {
            from: from.with_timezone(&Utc),
            to: to.with_timezone(&Utc),
        },
        *from.offset(),
    ))
}

/// The period of `q` in the configured `[routing] timezone`.
fn configured_period(state: &AppState, q: &ReportQuery) -> Result<(Period, FixedOffset), ApiError> {
    period(
        q,
        crate::routing::daily::zone(&state.config.routing.timezone),
    )
}

/// The answers every report shares besides its own 200 and 422.
#[derive(Debug, IntoResponses)]
#[allow(dead_code)] // Only its OpenAPI description is used.
enum ReportRefusals {
    #[response(status = 401, description = "Missing or wrong token")]
    Unauthorized(ErrorBody),
    #[response(status = 403, description = "An agent token")]
    Forbidden(ErrorBody),
    #[response(status = 503, description = "The database is unreachable")]
    Unavailable(ErrorBody),
}

fn secs(ms: i64) -> i64 {
    (ms + 500).div_euclid(1000)
}

/// `num / den` rounded to `places` decimals; `None` when `den` is 0.
#[allow(clippy::cast_precision_loss)] // report figures are far below 2^53
fn ratio(num: i64, den: i64, places: i32) -> Option<f64> {
    (den > 0).then(|| {
        let scale = 10f64.powi(places);
        (num as f64 / den as f64 * scale).round() / scale
    })
}

fn time(t: DateTime<Utc>, offset: FixedOffset) -> String {
    t.with_timezone(&offset)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// One agent's shift figures.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AgentRow {
    #[schema(example = "ana")]
    pub agent: String,
    pub name: String,
    /// Seconds logged in (every state but `logged_out` and `absent`).
    pub login_s: i64,
    pub available_s: i64,
    /// Seconds `on_call`.
    pub talk_s: i64,
    pub wrap_up_s: i64,
    pub break_s: i64,
    pub not_ready_s: i64,
    /// `answered` + `no_answers`.
    pub offered: i64,
    /// Inbound calls answered.
    pub answered: i64,
    /// Offers not answered (ring timeout, busy, decline).
    pub no_answers: i64,
    /// Outbound calls made.
    pub outbound: i64,
    /// Average talk time of the answered calls, seconds (one decimal).
    pub aht_s: Option<f64>,
    /// Average quality score of the evaluated calls (one decimal).
    pub quality_avg: Option<f64>,
    /// Calls evaluated.
    pub quality_count: i64,
    /// Escalations raised.
    pub escalations: i64,
    #[schema(format = DateTime)]
    pub first_login: Option<String>,
    #[schema(format = DateTime)]
    pub last_logout: Option<String>,
}

const AGENT_HEADER: &[&str] = &[
    "agent",
    "name",
    "login_s",
    "available_s",
    "talk_s",
    "wrap_up_s",
    "break_s",
    "not_ready_s",
    "offered",
    "answered",
    "no_answers",
    "outbound",
    "aht_s",
    "quality_avg",
    "quality_count",
    "escalations",
    "first_login",
    "last_logout",
];

fn agent_row(f: AgentFigures, name: String, offset: FixedOffset) -> AgentRow {
    AgentRow {
        agent: f.agent_id,
        name,
        login_s: secs(f.login_ms),
        available_s: secs(f.available_ms),
        talk_s: secs(f.talk_ms),
        wrap_up_s: secs(f.wrap_up_ms),
        break_s: secs(f.break_ms),
        not_ready_s: secs(f.not_ready_ms),
        offered: f.answered + f.no_answers,
        answered: f.answered,
        no_answers: f.no_answers,
        outbound: f.outbound,
        aht_s: ratio(f.answered_talk_ms, f.answered * 1000, 1),
        quality_avg: ratio(f.quality_sum, f.quality_count, 1),
        quality_count: f.quality_count,
        escalations: f.escalations,
        first_login: f.first_login.map(|t| time(t, offset)),
        last_logout: f.last_logout.map(|t| time(t, offset)),
    }
}

/// Per-agent shift figures: every configured agent (in configuration order), then any other
/// agent id found in the records.
#[utoipa::path(
    get,
    path = "/api/v1/reports/agents",
    operation_id = "reportAgents",
    tag = "reports",
    security(("bearer" = [])),
    params(ReportQuery),
    responses(
        (status = 200, description = "One row per agent (JSON array, or CSV with a header row)", body = [AgentRow]),
        (status = 422, description = "Bad from/to/format", body = ErrorBody),
        ReportRefusals,
    )
)]
pub async fn agents(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    let (period, offset) = configured_period(&state, &q)?;
    let mut figures = state
        .store
        .agent_report(period, switchboard_store::now_utc())
        .await
        .map_err(ApiError::from_store)?;
    let mut rows = Vec::with_capacity(state.config.agents.len());
    for a in &state.config.agents {
        let f = match figures.iter().position(|f| f.agent_id == a.id) {
            Some(i) => figures.swap_remove(i),
            None => AgentFigures {
                agent_id: a.id.clone(),
                ..AgentFigures::default()
            },
        };
        let name = a.name.clone().unwrap_or_else(|| a.id.clone());
        rows.push(agent_row(f, name, offset));
    }
    figures.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
    for f in figures {
        let name = f.agent_id.clone();
        rows.push(agent_row(f, name, offset));
    }
    respond(q.format, "agents", &period, AGENT_HEADER, &rows)
}

/// One queue's figures in one interval.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct QueueRow {
    #[schema(example = "orders")]
    pub queue: String,
    #[schema(format = DateTime)]
    pub interval_start: String,
    #[schema(format = DateTime)]
    pub interval_end: String,
    /// Calls that entered the queue.
    pub offered: i64,
    pub answered: i64,
    /// All abandons, short ones included.
    pub abandoned: i64,
    /// Abandons within 5 s of entering.
    pub short_abandoned: i64,
    /// Calls that left after the queue's maximum wait.
    pub timeout: i64,
    /// Callers who left asking to be called back.
    pub callbacks: i64,
    /// Answered within the service-level threshold.
    pub answered_within_threshold: i64,
    /// answered_within_threshold / (offered − short_abandoned), 4 decimals.
    pub service_level: Option<f64>,
    pub service_level_threshold_s: u32,
    /// Average wait of the answered calls, seconds (one decimal).
    pub asa_s: Option<f64>,
    /// Average talk time of the answered calls, seconds (one decimal).
    pub aht_s: Option<f64>,
    /// Longest wait of any call, seconds (one decimal).
    pub max_wait_s: f64,
}

const QUEUE_HEADER: &[&str] = &[
    "queue",
    "interval_start",
    "interval_end",
    "offered",
    "answered",
    "abandoned",
    "short_abandoned",
    "timeout",
    "callbacks",
    "answered_within_threshold",
    "service_level",
    "service_level_threshold_s",
    "asa_s",
    "aht_s",
    "max_wait_s",
];

/// Most rows a queue report may have (queues × intervals).
const MAX_QUEUE_ROWS: i64 = 100_000;

/// Per-queue figures in hourly or daily intervals: every configured queue and interval of
/// the period, with zeros where no call came.
#[utoipa::path(
    get,
    path = "/api/v1/reports/queues",
    operation_id = "reportQueues",
    tag = "reports",
    security(("bearer" = [])),
    params(ReportQuery),
    responses(
        (status = 200, description = "One row per queue and interval (JSON array, or CSV with a header row)", body = [QueueRow]),
        (status = 422, description = "Bad from/to/interval/format", body = ErrorBody),
        ReportRefusals,
    )
)]
pub async fn queues(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    let (period, offset) = configured_period(&state, &q)?;
    let interval_ms = q.interval.unwrap_or_default().millis();
    let offset_ms = i64::from(offset.local_minus_utc()) * 1000;
    let threshold_s = state.config.routing.service_level_threshold_s;
    let first = (period.from.timestamp_millis() + offset_ms).div_euclid(interval_ms) * interval_ms
        - offset_ms;
    let end = period.to.timestamp_millis();
    let intervals = (end - first + interval_ms - 1) / interval_ms;
    let queue_count = i64::try_from(state.config.queues.len()).unwrap_or(i64::MAX);
    if intervals.saturating_mul(queue_count.max(1)) > MAX_QUEUE_ROWS {
        return Err(ApiError::unprocessable(format!(
            "interval: {intervals} intervals × {queue_count} queues exceed {MAX_QUEUE_ROWS} rows; use interval=day or a shorter period"
        )));
    }
    let figures = state
        .store
        .queue_report(QueueReportQuery {
            period,
            interval_ms,
            offset_ms,
            service_level_ms: i64::from(threshold_s) * 1000,
            short_abandon_ms: SHORT_ABANDON_MS,
        })
        .await
        .map_err(ApiError::from_store)?;
    let mut names: Vec<String> = state.config.queues.iter().map(|q| q.name.clone()).collect();
    for f in &figures {
        if !names.contains(&f.queue) {
            names.push(f.queue.clone());
        }
    }
    let mut rows = Vec::new();
    for name in &names {
        let mut start = first;
        while start < end {
            let f = figures
                .iter()
                .find(|f| &f.queue == name && f.interval_start_ms == start)
                .cloned()
                .unwrap_or_else(|| QueueFigures {
                    queue: name.clone(),
                    interval_start_ms: start,
                    ..QueueFigures::default()
                });
            rows.push(queue_row(f, interval_ms, threshold_s, offset));
            start += interval_ms;
        }
    }
    respond(q.format, "queues", &period, QUEUE_HEADER, &rows)
}

fn queue_row(f: QueueFigures, interval_ms: i64, threshold_s: u32, offset: FixedOffset) -> QueueRow {
    let at = |ms: i64| {
        DateTime::from_timestamp_millis(ms)
            .map(|t| time(t, offset))
            .unwrap_or_default()
    };
    QueueRow {
        interval_start: at(f.interval_start_ms),
        interval_end: at(f.interval_start_ms + interval_ms),
        offered: f.offered,
        answered: f.answered,
        abandoned: f.abandoned,
        short_abandoned: f.short_abandoned,
        timeout: f.timeout,
        callbacks: f.callbacks,
        answered_within_threshold: f.answered_in_sl,
        service_level: ratio(f.answered_in_sl, f.offered - f.short_abandoned, 4),
        service_level_threshold_s: threshold_s,
        asa_s: ratio(f.answered_wait_ms, f.answered * 1000, 1),
        aht_s: ratio(f.answered_talk_ms, f.answered * 1000, 1),
        max_wait_s: ratio(f.max_wait_ms, 1000, 1).unwrap_or_default(),
        queue: f.queue,
    }
}

/// One abandoned call.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AbandonedRow {
    pub call_id: String,
    #[schema(format = DateTime)]
    pub started_at: String,
    #[schema(format = DateTime)]
    pub ended_at: String,
    pub caller: String,
    pub client_number: Option<String>,
    /// The client's name in the directory.
    pub client_name: Option<String>,
    pub queue: Option<String>,
    /// Seconds waited (one decimal).
    pub waited_s: f64,
    /// Hung up within 5 s.
    pub short: bool,
    /// An agent called the number back afterwards (an answered outbound call).
    pub called_back: bool,
    #[schema(format = DateTime)]
    pub called_back_at: Option<String>,
}

const ABANDONED_HEADER: &[&str] = &[
    "call_id",
    "started_at",
    "ended_at",
    "caller",
    "client_number",
    "client_name",
    "queue",
    "waited_s",
    "short",
    "called_back",
    "called_back_at",
];

/// Abandoned calls of the period, oldest first, and whether each was called back.
#[utoipa::path(
    get,
    path = "/api/v1/reports/abandoned",
    operation_id = "reportAbandoned",
    tag = "reports",
    security(("bearer" = [])),
    params(ReportQuery),
    responses(
        (status = 200, description = "One row per abandoned call (JSON array, or CSV with a header row)", body = [AbandonedRow]),
        (status = 422, description = "Bad from/to/format", body = ErrorBody),
        ReportRefusals,
    )
)]
pub async fn abandoned(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    let (period, offset) = configured_period(&state, &q)?;
    let calls = state
        .store
        .abandoned_report(period)
        .await
        .map_err(ApiError::from_store)?;
    let rows: Vec<AbandonedRow> = calls
        .into_iter()
        .map(|c| AbandonedRow {
            call_id: c.call_id,
            started_at: time(c.started_at, offset),
            ended_at: time(c.ended_at, offset),
            caller: c.caller,
            client_number: c.client_number,
            client_name: c.client_name,
            queue: c.queue,
            waited_s: ratio(c.wait_ms, 1000, 1).unwrap_or_default(),
            short: c.wait_ms < SHORT_ABANDON_MS,
            called_back: c.called_back_at.is_some(),
            called_back_at: c.called_back_at.map(|t| time(t, offset)),
        })
        .collect();
    respond(q.format, "abandoned", &period, ABANDONED_HEADER, &rows)
}

/// JSON, or CSV (RFC 4180: header row, fields quoted when needed, CRLF line ends) offered as
/// a download named after the report and period.
fn respond<T: Serialize>(
    format: Option<Format>,
    report: &str,
    period: &Period,
    header: &[&str],
    rows: &[T],
) -> Result<Response, ApiError> {
    if format.unwrap_or_default() == Format::Json {
        return Ok(axum::Json(rows).into_response());
    }
    let csv_error = |e: csv::Error| {
        tracing::warn!("report {report}: CSV output failed: {e}");
        ApiError::unavailable(format!("cannot write the CSV: {e}"))
    };
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record(header).map_err(csv_error)?;
    for row in rows {
        w.serialize(row).map_err(csv_error)?;
    }
    let body = w
        .into_inner()
        .map_err(|e| csv_error(csv::Error::from(e.into_error())))?;
    let filename = format!(
        "attachment; filename=\"{report}-{}.csv\"",
        period.from.format("%Y%m%dT%H%M%SZ")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, filename),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_refusals_document_like_inline_responses() {
        use utoipa::OpenApi;
        let doc = serde_json::to_value(super::super::ApiDoc::openapi()).unwrap();
        let answer = |path: &str, method: &str, status: &str| {
            doc["paths"][path][method]["responses"][status].clone()
        };
        // Written inline on those endpoints, with the same wording.
        let unauthorized = answer("/api/v1/calls/{id}/disposition", "post", "401");
        let forbidden = answer("/api/v1/calls/{id}/quality", "put", "403");
        let unavailable = answer("/api/v1/calls/{id}/disposition", "post", "503");
        assert!(unauthorized["content"]["application/json"]["schema"]["$ref"].is_string());
        for path in [
            "/api/v1/reports/agents",
            "/api/v1/reports/queues",
            "/api/v1/reports/abandoned",
        ] {
            assert_eq!(answer(path, "get", "401"), unauthorized, "{path}");
            assert_eq!(answer(path, "get", "403"), forbidden, "{path}");
            assert_eq!(answer(path, "get", "503"), unavailable, "{path}");
            assert!(answer(path, "get", "200").is_object(), "{path}");
            assert!(answer(path, "get", "422").is_object(), "{path}");
        }
    }

    fn keys<T: Serialize>(row: &T) -> Vec<String> {
        match serde_json::to_value(row).unwrap() {
            serde_json::Value::Object(m) => m.keys().cloned().collect(),
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn csv_headers_name_every_field_in_order() {
        let offset = FixedOffset::east_opt(3600).unwrap();
        let a = agent_row(AgentFigures::default(), String::new(), offset);
        let q = queue_row(QueueFigures::default(), 3_600_000, 20, offset);
        let sorted = |h: &[&str]| {
            let mut v: Vec<String> = h.iter().map(|s| (*s).to_owned()).collect();
            v.sort();
            v
        };
        assert_eq!(keys(&a), sorted(AGENT_HEADER));
        assert_eq!(keys(&q), sorted(QUEUE_HEADER));
        // CSV columns come in struct order, which the header lists.
        let mut w = csv::WriterBuilder::new()
            .has_headers(true)
            .from_writer(Vec::new());
        w.serialize(&a).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert!(text.starts_with(&AGENT_HEADER.join(",")), "{text}");
    }

    #[test]
    fn figures_are_derived_as_documented() {
        let f = QueueFigures {
            queue: "orders".into(),
            offered: 3,
            answered: 2,
            abandoned: 1,
            short_abandoned: 1,
            answered_in_sl: 1,
            answered_wait_ms: 40_000,
            answered_talk_ms: 150_000,
            max_wait_ms: 30_000,
            ..QueueFigures::default()
        };
        let r = queue_row(f, 3_600_000, 20, FixedOffset::east_opt(0).unwrap());
        assert_eq!(r.service_level, Some(0.5));
        assert_eq!(
            (r.asa_s, r.aht_s, r.max_wait_s),
            (Some(20.0), Some(75.0), 30.0)
        );
        assert_eq!(secs(1_499), 1);
        assert_eq!(secs(1_500), 2);
        assert_eq!(ratio(1, 0, 2), None);
    }

    #[test]
    fn periods_default_and_are_checked() {
        let q = |from: Option<&str>, to: Option<&str>| ReportQuery {
            from: from.map(str::to_owned),
            to: to.map(str::to_owned),
            format: None,
            interval: None,
        };
        let period = |q: &ReportQuery| period(q, chrono_tz::Europe::Zagreb);
        let (p, off) = period(&q(Some("2026-03-02T00:00:00+01:00"), None)).unwrap();
        assert_eq!(off.local_minus_utc(), 3600);
        assert_eq!(p.to - p.from, Duration::days(1));
        assert_eq!(p.from.to_rfc3339(), "2026-03-01T23:00:00+00:00");
        let (p, off) = period(&q(None, None)).unwrap();
        assert!((23..=25).contains(&(p.to - p.from).num_hours()));
        let local = p.from.with_timezone(&off);
        assert_eq!(local.time(), switchboard_store::chrono::NaiveTime::MIN);
        assert!(period(&q(Some("yesterday"), None)).is_err());
        assert!(
            period(&q(
                Some("2026-03-02T00:00:00Z"),
                Some("2026-03-01T00:00:00Z")
            ))
            .is_err()
        );
        assert!(
            period(&q(
                Some("2024-01-01T00:00:00Z"),
                Some("2026-01-01T00:00:00Z")
            ))
            .is_err()
        );
    }
}
