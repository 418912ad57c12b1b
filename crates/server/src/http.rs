//! The HTTP surface on `[http] listen`: liveness, readiness and Prometheus metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::metrics::Metrics;

/// What `/readyz` looks at.
#[derive(Debug, Default)]
pub struct Readiness {
    /// Every SIP listener is bound.
    pub sip_bound: AtomicBool,
    /// The database answered its last probe.
    pub database: AtomicBool,
    /// SIGTERM/SIGINT received: new work is refused.
    pub shutting_down: AtomicBool,
}

impl Readiness {
    /// Ready for new calls: listeners bound, database reachable, not shutting down.
    pub fn is_ready(&self) -> bool {
        self.sip_bound.load(Ordering::Acquire)
            && self.database.load(Ordering::Acquire)
            && !self.shutting_down.load(Ordering::Acquire)
    }
}

/// State shared by the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    pub metrics: Metrics,
    pub readiness: Arc<Readiness>,
    /// Refreshes gauges that mirror other components just before a scrape.
    pub refresh: Arc<dyn Fn() + Send + Sync>,
    /// The queue engine (lock-free; agent state changes go straight to it, then
    /// `shared.wake` lets the endpoint task carry out the resulting offers).
    pub engine: Arc<switchboard_engine::Engine>,
    /// Records, client directory, call history, callbacks.
    pub store: switchboard_store::Store,
    /// Snapshots published by the endpoint task (registrations, active calls) and its wake-up.
    pub shared: Arc<crate::shared::Shared>,
    /// The live event stream.
    pub events: crate::events::EventBus,
    /// The bearer token of `/api/v1` (config or `SWITCHBOARD_API_TOKEN`).
    pub api_token: Arc<str>,
    /// The configuration in force.
    pub config: Arc<crate::config::Config>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("readiness", &self.readiness)
            .finish_non_exhaustive()
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz() -> Response {
    (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    let r = &state.readiness;
    let body = json!({
        "ready": r.is_ready(),
        "sip_bound": r.sip_bound.load(Ordering::Acquire),
        "database": r.database.load(Ordering::Acquire),
        "shutting_down": r.shutting_down.load(Ordering::Acquire),
    });
    let status = if r.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    (state.refresh)();
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
