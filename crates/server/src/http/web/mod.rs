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

/// The start of every page, up to its `<title>`: the pages' files hold the rest.
const HEAD: &str = "<!doctype html>
<html lang=\"en\">
<head>
<meta charset=\"utf-8\">
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">
";

/// A page: the rest of its HTML after [`HEAD`], the mark its configuration (JSON) replaces,
/// and its content security policy.
struct Page {
    html: &'static str,
    config_mark: &'static str,
    policy: &'static str,
}

const WALLBOARD: Page = Page {
    html: include_str!("wallboard.html"),
    config_mark: "/*WALLBOARD_CONFIG*/{}",
    // Everything is inline and same-origin; nothing may be loaded from elsewhere.
    policy: "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
};

const AGENT: Page = Page {
    html: include_str!("agent.html"),
    config_mark: "/*AGENT_CONFIG*/{}",
    // Same-origin scripts (the page and JsSIP), the API and SIP over WebSocket.
    policy: "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; media-src 'self' blob: mediastream:; connect-src 'self' ws: wss:; frame-ancestors 'none'",
};

const JSSIP: &str = include_str!("jssip.js");

impl Page {
    /// The whole page with `config` (JSON) written in.
    fn with_config(&self, config: &str) -> String {
        let mut page = String::with_capacity(HEAD.len() + self.html.len() + config.len());
        page.push_str(HEAD);
        page.push_str(&self.html.replacen(self.config_mark, config, 1));
        page
    }

    /// Answers the page with `config` written in: HTML, never cached, under its policy.
    fn serve(&self, config: &str) -> Response {
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
                (header::CONTENT_SECURITY_POLICY, self.policy),
            ],
            self.with_config(config),
        )
            .into_response()
    }
}

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

fn wallboard_config(config: &crate::config::Config) -> String {
    let page = PageConfig {
        thresholds: &config.wallboard,
        service_level_threshold_s: config.routing.service_level_threshold_s,
    };
    // JSON of numbers only: nothing in it can close the script element.
    serde_json::to_string(&page).unwrap_or_else(|_| "{}".to_owned())
}

plain_get! {
    "/wallboard", "wallboard", "pages", "The page", "text/html", String;
    /// The supervisors' wallboard: queues (waiting, oldest wait, service level, ASA, abandonment,
    /// today's totals), agents (state, time in state, calls today), open escalations and today's
    /// service level by hour, live from the event stream. Self-contained HTML.
    pub async fn wallboard(State(state): State<AppState>) -> Response {
        WALLBOARD.serve(&wallboard_config(&state.config))
    }
}

/// What the agent page's script is told: the SIP domain and the ports of the first `ws:` and
/// `wss:` listeners (`null` when there is none).
fn agent_config(config: &crate::config::Config) -> String {
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
    json.to_string().replace('<', "\\u003c")
}

plain_get! {
    "/agent", "agent_page", "pages", "The page", "text/html", String;
    /// The browser softphone of agents (SIP over WebSocket, WebRTC audio): log in, state
    /// buttons, screen pop, answer, hang up, blind transfer. Self-contained HTML plus the
    /// vendored JsSIP.
    pub async fn agent(State(state): State<AppState>) -> Response {
        AGENT.serve(&agent_config(&state.config))
    }
}

plain_get! {
    "/agent/jssip.js", "agent_jssip", "pages", "JsSIP", "text/javascript", String;
    /// JsSIP, the SIP stack of `/agent` (MIT licence at the top of the file).
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_carries_the_configured_thresholds() {
        assert_eq!(WALLBOARD.html.matches(WALLBOARD.config_mark).count(), 1);
        let mut config = crate::config::Config::from_toml(crate::config::DEMO_CONFIG).unwrap();
        config.wallboard.wait_red_s = 90;
        let page = WALLBOARD.with_config(&wallboard_config(&config));
        assert!(!page.contains(WALLBOARD.config_mark));
        assert!(page.contains("\"wait_red_s\":90"), "thresholds written in");
        assert!(page.contains("\"service_level_threshold_s\":20"));
        // Self-contained: no external script, style or font.
        for external in ["src=\"http", "href=\"http", "@import", "url(http"] {
            assert!(!page.contains(external), "{external}");
        }
    }

    #[test]
    fn every_page_is_one_document_with_the_shared_head() {
        for page in [WALLBOARD, AGENT] {
            assert_eq!(page.html.matches(page.config_mark).count(), 1);
            let html = page.with_config("{}");
            assert!(html.starts_with("<!doctype html>\n<html lang=\"en\">\n<head>\n"));
            assert!(html.contains("<meta name=\"viewport\""));
            assert_eq!(html.matches("<head>").count(), 1, "one head");
            assert!(
                html[HEAD.len()..].starts_with("<title>"),
                "the file goes on from the title"
            );
            assert!(html.trim_end().ends_with("</html>"));
        }
    }
}
