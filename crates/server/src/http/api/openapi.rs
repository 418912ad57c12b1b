//! The OpenAPI 3.1 description of the HTTP surface, generated at compile time from the
//! handlers' `#[utoipa::path]` annotations and the request/response types, served at
//! `/api/v1/openapi.json` without authentication.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::{Modify, OpenApi};

use super::{
    agents, callbacks, calls, campaigns, clients, dial, dispositions, dnc, error, escalations,
    events, quality, queues, recordings, reports, sessions,
};

/// The whole API.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Switchboard",
        description = "Operations API of the Switchboard SIP ACD server: health, metrics, agents, queues, the client directory, call history, call-back requests, campaigns and live events. Every /api/v1 operation except this document and POST /api/v1/sessions needs `Authorization: Bearer <token>`: the operations token, or an agent token (from POST /api/v1/sessions) that reaches only that agent's own state, calls, escalations and events (403 elsewhere). Errors are `{\"error\": \"...\"}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        crate::http::healthz,
        crate::http::readyz,
        crate::http::metrics,
        crate::http::web::wallboard,
        crate::http::web::agent,
        crate::http::web::jssip,
        agents::list,
        agents::get,
        agents::set_state,
        queues::list,
        clients::list,
        clients::get,
        clients::put,
        clients::delete,
        calls::history,
        calls::active,
        dial::create,
        quality::put,
        recordings::get,
        escalations::escalate,
        escalations::list,
        escalations::ack,
        reports::agents,
        reports::queues,
        reports::abandoned,
        sessions::create,
        sessions::delete,
        callbacks::create,
        callbacks::list,
        callbacks::get,
        callbacks::cancel,
        dispositions::post,
        campaigns::create,
        campaigns::list,
        campaigns::get,
        campaigns::start,
        campaigns::pause,
        dnc::list,
        dnc::put,
        dnc::delete,
        events::stream,
        document,
    ),
    components(schemas(
        error::ErrorBody,
        queues::AgentsByState,
        reports::Format,
        reports::Interval
    )),
    modifiers(&BearerAuth, &Tags)
)]
pub struct ApiDoc;

/// The tags the operations are grouped by, in the document's order, with their descriptions.
const TAGS: [(&str, &str); 13] = [
    ("health", "Liveness, readiness and Prometheus metrics"),
    ("agents", "Agents and their states"),
    ("queues", "Live queue figures"),
    ("clients", "The client directory used for routing"),
    ("calls", "Call history and calls in progress"),
    (
        "callbacks",
        "Scheduled call-backs: dialed at their time, agent first, with retries",
    ),
    (
        "campaigns",
        "Proactive calling lists worked through by the progressive dialer",
    ),
    ("dnc", "The do-not-call list: numbers never dialed"),
    ("events", "Live events (Server-Sent Events)"),
    (
        "reports",
        "Agent, queue and abandoned-call reports (JSON or CSV)",
    ),
    (
        "escalations",
        "Agents asking a supervisor for help on a call",
    ),
    ("sessions", "Tokens scoped to one agent"),
    (
        "pages",
        "Web pages (HTML, no token in the URL: they ask for it)",
    ),
];

/// Lists [`TAGS`].
#[derive(Debug)]
struct Tags;

impl Modify for Tags {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let tags = TAGS.iter().map(|(name, description)| {
            TagBuilder::new()
                .name(*name)
                .description(Some(*description))
                .build()
        });
        openapi.tags.get_or_insert_with(Vec::new).extend(tags);
    }
}

/// Declares the `bearer` security scheme the /api/v1 operations refer to.
#[derive(Debug)]
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The API token: `[http] api_token` or SWITCHBOARD_API_TOKEN",
                    ))
                    .build(),
            ),
        );
    }
}

plain_get! {
    "/api/v1/openapi.json", "getOpenApi", "health",
    "The OpenAPI document", "application/json", Object;
    /// This document.
    pub async fn document() -> Json<utoipa::openapi::OpenApi> {
        Json(ApiDoc::openapi())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_lists_every_product_path() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for (path, method) in [
            ("/healthz", "get"),
            ("/readyz", "get"),
            ("/metrics", "get"),
            ("/api/v1/agents", "get"),
            ("/api/v1/agents/{id}/state", "post"),
            ("/api/v1/queues", "get"),
            ("/api/v1/clients/{number}", "put"),
            ("/api/v1/clients/{number}", "get"),
            ("/api/v1/clients/{number}", "delete"),
            ("/api/v1/calls", "get"),
            ("/api/v1/calls/active", "get"),
            ("/api/v1/calls", "post"),
            ("/api/v1/callbacks", "post"),
            ("/api/v1/callbacks", "get"),
            ("/api/v1/callbacks/{id}", "get"),
            ("/api/v1/callbacks/{id}", "delete"),
            ("/api/v1/calls/{id}/disposition", "post"),
            ("/api/v1/campaigns", "post"),
            ("/api/v1/campaigns", "get"),
            ("/api/v1/campaigns/{id}", "get"),
            ("/api/v1/campaigns/{id}/start", "post"),
            ("/api/v1/campaigns/{id}/pause", "post"),
            ("/api/v1/dnc", "get"),
            ("/api/v1/dnc/{number}", "put"),
            ("/api/v1/dnc/{number}", "delete"),
            ("/api/v1/events", "get"),
        ] {
            assert!(
                paths.get(path).and_then(|p| p.get(method)).is_some(),
                "{method} {path} missing from the OpenAPI document"
            );
        }
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    }
}
