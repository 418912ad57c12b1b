//! Web pages served on the HTTP listener (PRODUCT §4 "Web pages"): self-contained HTML with
//! its script and style inline, embedded in the binary at build time — no CDN, no build
//! step, works offline.
//!
//! `/wallboard` asks for the API token once (kept in the tab's `sessionStorage`, sent as an
//! `Authorization` header, never in a URL), then reads `/api/v1` and follows the event stream.
//!
//! `/agent` is the browser softphone: the agent logs in with id and password (an agent token
//! from `POST /api/v1/sessions` for the API, digest over SIP on WebSocket for the phone), and
//! gets state buttons, the screen pop, answer, hang-up and blind transfer. Its SIP stack is
//! JsSIP, vendored as one file (`jssip.js`, bundled once with esbuild, licence kept at its
//! top) and served at `/agent/jssip.js`.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::config::WallboardConfig;
use crate::http::AppState;

const WALLBOARD: &str = include_str!("wallboard.html");
const AGENT: &str = include_str!("agent.html");
const JSSIP: &str = include_str!("jssip.js");

/// Where the agent page's configuration is written in.
const AGENT_CONFIG_MARK: &str = "/*AGENT_CONFIG*/{}";

/// Where the page's configuration is written in.
const CONFIG_MARK: &str = "/*WALLBOARD_CONFIG*/{}";

/// The pages.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/wallboard", get(wallboard))
        .route("/agent", get(agent))
        .route("/agent/jssip.js", get(jssip))
}

/// What the wallboard script is told: colour thresholds and the service-level target.
#[derive(Debug, Serialize)]
struct PageConfig<'a> {
    #[serde(flatten)]
    thresholds: &'a WallboardConfig,
    service_level_threshold_s: u32,
}

fn wallboard_page(config: &crate::config::Config) -> String {
    let page = PageConfig {
        thresholds: &config.wallboard,
        service_level_threshold_s: config.routing.service_level_threshold_s,
    };
    // JSON of numbers only: nothing in it can close the script element.
    let json = serde_json::to_string(&page).unwrap_or_else(|_| "{}".to_owned());
    WALLBOARD.replacen(CONFIG_MARK, &json, 1)
}

/// The supervisors' wallboard: queues (waiting, oldest wait, service level, ASA, abandonment,
/// today's totals), agents (state, time in state, calls today), open escalations and today's
/// service level by hour, live from the event stream. Self-contained HTML.
#[utoipa::path(
    get,
    path = "/wallboard",
    operation_id = "wallboard",
    tag = "pages",
    responses((status = 200, description = "The page", content_type = "text/html", body = String))
)]
pub async fn wallboard(State(state): State<AppState>) -> Response {
    // Everything is inline and same-origin; nothing may be loaded from elsewhere.
    html_page(
        "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
        wallboard_page(&state.config),
    )
}

/// A page: HTML, never cached, under its content security policy.
fn html_page(policy: &'static str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, policy),
        ],
        body,
    )
        .into_response()
}

/// What the agent page's script is told: the SIP domain and the ports of the first `ws:` and
/// `wss:` listeners (`null` when there is none).
fn agent_page(config: &crate::config::Config) -> String {
    let port = |transport| {
        config
            .listen_addrs()
            .iter()
            .find(|l| l.transport == transport)
            .map(|l| l.addr.port())
    };
    let json = serde_json::json!({
        "domain": config.sip.domain,
        "ws_port": port(crate::config::ListenTransport::Ws),
        "wss_port": port(crate::config::ListenTransport::Wss),
    });
    // `<` is escaped so that nothing in the domain can close the script element.
    let json = json.to_string().replace('<', "\\u003c");
    AGENT.replacen(AGENT_CONFIG_MARK, &json, 1)
}

/// The browser softphone of agents (SIP over WebSocket, WebRTC audio): log in, state
/// buttons, screen pop, answer, hang up, blind transfer. Self-contained HTML plus the
/// vendored JsSIP.
#[utoipa::path(
    get,
    path = "/agent",
    operation_id = "agent_page",
    tag = "pages",
    responses((status = 200, description = "The page", content_type = "text/html", body = String))
)]
pub async fn agent(State(state): State<AppState>) -> Response {
    // Same-origin scripts (the page and JsSIP), the API and SIP over WebSocket.
    html_page(
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; media-src 'self' blob: mediastream:; connect-src 'self' ws: wss:; frame-ancestors 'none'",
        agent_page(&state.config),
    )
}

/// JsSIP, the SIP stack of `/agent` (MIT licence at the top of the file).
#[utoipa::path(
    get,
    path = "/agent/jssip.js",
    operation_id = "agent_jssip",
    tag = "pages",
    responses((status = 200, description = "JsSIP", content_type = "text/javascript", body = String))
)]
pub async fn jssip() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        JSSIP,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_carries_the_configured_thresholds() {
        assert_eq!(WALLBOARD.matches(CONFIG_MARK).count(), 1);
        let mut config = crate::config::Config::from_toml(crate::config::DEMO_CONFIG).unwrap();
        config.wallboard.wait_red_s = 90;
        let page = wallboard_page(&config);
        assert!(!page.contains(CONFIG_MARK));
        assert!(page.contains("\"wait_red_s\":90"), "thresholds written in");
        assert!(page.contains("\"service_level_threshold_s\":20"));
        // Self-contained: no external script, style or font.
        for external in ["src=\"http", "href=\"http", "@import", "url(http"] {
            assert!(!page.contains(external), "{external}");
        }
    }
}
