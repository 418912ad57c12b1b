//! Web pages served on the HTTP listener (PRODUCT §4 "Web pages"): self-contained HTML with
//! its script and style inline, embedded in the binary at build time — no CDN, no build
//! step, works offline.
//!
//! `/wallboard` asks for the API token once (kept in the tab's `sessionStorage`, sent as an
//! `Authorization` header, never in a URL), then reads `/api/v1` and follows the event stream.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::config::WallboardConfig;
use crate::http::AppState;

const WALLBOARD: &str = include_str!("wallboard.html");

/// Where the page's configuration is written in.
const CONFIG_MARK: &str = "/*WALLBOARD_CONFIG*/{}";

/// The pages.
pub fn routes() -> Router<AppState> {
    Router::new().route("/wallboard", get(wallboard))
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
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            // Everything is inline and same-origin; nothing may be loaded from elsewhere.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
            ),
        ],
        wallboard_page(&state.config),
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
