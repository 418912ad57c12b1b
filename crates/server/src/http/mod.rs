//! The HTTP surface on `[http] listen`: liveness, readiness, Prometheus metrics, the
//! operations API under `/api/v1` (see [`api`]) and the web pages ([`web`]).

/// Declares a GET handler that needs no token and answers one representation (200 with its
/// content type), with its `#[utoipa::path]`: the metrics text, the pages and their script,
/// the OpenAPI document. Arguments: the path, the operation id, the tag, then the 200
/// answer's description, content type and body schema; then the handler with its doc comment.
macro_rules! plain_get {
    (
        $path:tt, $operation_id:tt, $tag:tt, $description:tt, $content_type:tt, $body:tt;
        $(#[$doc:meta])*
        pub async fn $name:ident($($params:tt)*) -> $ret:ty $handler:block
    ) => {
        #[utoipa::path(
            get,
            path = $path,
            operation_id = $operation_id,
            tag = $tag,
            responses((status = 200, description = $description, content_type = $content_type, body = $body))
        )]
        $(#[$doc])*
        pub async fn $name($($params)*) -> $ret $handler
    };
}

pub mod api;
pub mod events;
pub mod shared;
pub mod web;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::ops::metrics::Metrics;

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
    pub shared: Arc<crate::http::shared::Shared>,
    /// The live event stream.
    pub events: crate::http::events::EventBus,
    /// Input for call control in the endpoint task (click-to-call).
    pub call_inputs: tokio::sync::mpsc::UnboundedSender<crate::calls::CallInput>,
    /// The bearer token of `/api/v1` (config or `SWITCHBOARD_API_TOKEN`).
    pub api_token: Arc<str>,
    /// The configuration in force.
    pub config: Arc<crate::config::Config>,
    /// Failed agent logins (`POST /api/v1/sessions`), for the lock-out.
    pub logins: Arc<crate::http::api::LoginThrottle>,
    /// Cancelled when the HTTP server stops: long-lived responses (the event stream) end.
    pub stop: CancellationToken,
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
        .nest("/api/v1", crate::http::api::routes(state.clone()))
        .merge(crate::http::web::routes())
        .with_state(state)
}

/// Body of `/healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: the process answers HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "health",
    responses((status = 200, description = "Alive", body = Health))
)]
pub async fn healthz() -> Response {
    (StatusCode::OK, axum::Json(Health { status: "ok" })).into_response()
}

/// Body of `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyState {
    /// All of: SIP listeners bound, database reachable, not shutting down.
    pub ready: bool,
    pub sip_bound: bool,
    pub database: bool,
    pub shutting_down: bool,
}

/// Readiness for new calls: 200 when SIP listeners are bound, the database is reachable and
/// the server is not shutting down; 503 otherwise.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready", body = ReadyState),
        (status = 503, description = "Not ready (starting, database down, or shutting down)", body = ReadyState),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let r = &state.readiness;
    let body = ReadyState {
        ready: r.is_ready(),
        sip_bound: r.sip_bound.load(Ordering::Acquire),
        database: r.database.load(Ordering::Acquire),
        shutting_down: r.shutting_down.load(Ordering::Acquire),
    };
    let status = if body.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

plain_get! {
    "/metrics", "metrics", "health",
    "Prometheus text format", "text/plain; version=0.0.4", String;
    /// Prometheus metrics (text exposition format 0.0.4): the names of PRODUCT §4 plus the
    /// standard `process_*` metrics.
    pub async fn metrics(State(state): State<AppState>) -> Response {
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
}

/// Most HTTP connections open at once; more are closed at accept.
pub const MAX_CONNECTIONS: usize = 1024;

/// A client must send its request headers within this time (slow-header attacks).
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `app` on `listener` until `stop`, then lets open requests finish.
///
/// Written out instead of `axum::serve` because that sets no header-read timeout and no
/// connection limit; hyper's own connection builder has both.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    stop: tokio_util::sync::CancellationToken,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt as _;

    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("HTTP accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            tracing::warn!(%peer, "HTTP connection refused: {MAX_CONNECTIONS} already open");
            continue;
        };
        let app = app.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            let _permit = permit;
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    app.clone().oneshot(req.map(axum::body::Body::new))
                });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, "HTTP connection ended: {e}");
                    }
                }
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    while connections.join_next().await.is_some() {}
}
