//! Who is calling the API: the operations token (`[http] api_token`) may do everything; an
//! agent token from `POST /api/v1/sessions` may act only for its agent — read and set its own
//! state, read its own calls, escalate its own calls, follow the events of its own calls —
//! and gets 403 for everything else.
//!
//! The allow-list is checked here, on the matched route, before any handler runs (a route
//! added later is closed to agents until it is listed); handlers of listed routes narrow what
//! they return to the agent's own records.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::http::AppState;

/// The rights of the token a request carries (a request extension after authentication).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The operations token: supervisors, CRM, scripts.
    Operations,
    /// A session token of one agent.
    Agent(String),
}

impl Scope {
    /// The agent a token is limited to, if any.
    pub fn agent(&self) -> Option<&str> {
        match self {
            Scope::Operations => None,
            Scope::Agent(a) => Some(a),
        }
    }

    /// 403 unless the token may act for `agent`.
    pub fn require_agent(&self, agent: &str) -> Result<(), ApiError> {
        match self.agent() {
            Some(own) if own != agent => Err(ApiError::forbidden(format!(
                "this token is scoped to agent {own:?}; agent {agent:?} is not its own"
            ))),
            _ => Ok(()),
        }
    }

    /// 403 for agent tokens.
    pub fn require_operations(&self) -> Result<(), ApiError> {
        match self.agent() {
            Some(own) => Err(ApiError::forbidden(format!(
                "this token is scoped to agent {own:?} and cannot use this endpoint"
            ))),
            None => Ok(()),
        }
    }
}

/// Routes an agent token may use (method, path under `/api/v1`); each handler narrows the
/// answer to the agent's own records or refuses another agent's.
const AGENT_ROUTES: &[(Method, &str)] = &[
    (Method::GET, "/agents/{id}"),
    (Method::POST, "/agents/{id}/state"),
    (Method::GET, "/calls"),
    (Method::GET, "/calls/active"),
    (Method::POST, "/calls/{id}/escalate"),
    (Method::POST, "/calls/{id}/disposition"),
    (Method::GET, "/events"),
    (Method::DELETE, "/sessions"),
];

/// Agent tokens are 32 random bytes in lower-case hex.
fn looks_like_agent_token(token: &str) -> bool {
    token.len() == 64
        && token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The SHA-256 of a token, hex: what `agent_tokens` keeps instead of the token.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Answers 401 unless the request carries the operations token or a live agent token, and
/// 403 when an agent token asks for a route outside [`AGENT_ROUTES`].
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(given) = bearer_token(req.headers()) else {
        return unauthorized("missing Authorization: Bearer <api token>");
    };
    let scope = if token_matches(given, &state.api_token) {
        Scope::Operations
    } else if !looks_like_agent_token(given) {
        // Not the shape of a token we issue: refused without asking the database.
        return unauthorized("invalid or expired token");
    } else {
        // Looked up by its digest: the database compares digests, never the token itself.
        match state
            .store
            .agent_token(&token_hash(given), switchboard_store::now_utc())
            .await
        {
            Ok(Some((agent, _))) => Scope::Agent(agent),
            Ok(None) => return unauthorized("invalid or expired token"),
            Err(e) => return ApiError::from_store(e).into_response(),
        }
    };
    if let Scope::Agent(agent) = &scope {
        let path = req
            .extensions()
            .get::<MatchedPath>()
            .map(|p| p.as_str().trim_start_matches("/api/v1").to_owned());
        let allowed = path.as_deref().is_some_and(|p| {
            AGENT_ROUTES
                .iter()
                .any(|(m, route)| m == req.method() && *route == p)
        });
        if !allowed {
            return ApiError::forbidden(format!(
                "this token is scoped to agent {agent:?}: {} {} is not open to it",
                req.method(),
                req.uri().path()
            ))
            .into_response();
        }
    }
    req.extensions_mut().insert(scope);
    next.run(req).await
}

fn unauthorized(message: &str) -> Response {
    let mut resp = ApiError::unauthorized(message).into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"switchboard\""),
    );
    resp
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Compares the SHA-256 digests of the two secrets with an XOR fold over all 32 bytes: the
/// time taken depends on neither the secrets' lengths nor where they first differ, and even a
/// leak would only tell how much of a digest matched, which says nothing about the secret.
/// (Two fixed-size digests need no constant-time crate.)
pub fn token_matches(given: &str, expected: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    #[test]
    fn bearer_tokens_are_parsed_and_compared() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert_eq!(bearer_token(&h), Some("s3cret"));
        h.insert(header::AUTHORIZATION, "bearer  s3cret ".parse().unwrap());
        assert_eq!(bearer_token(&h), Some("s3cret"));
        h.insert(header::AUTHORIZATION, "Basic czNjcmV0".parse().unwrap());
        assert_eq!(bearer_token(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer_token(&h), None);

        assert!(token_matches("s3cret", "s3cret"));
        assert!(!token_matches("s3cre", "s3cret"));
        assert!(!token_matches("s3cret ", "s3cret"));
        assert!(!token_matches("", "s3cret"));
    }

    #[test]
    fn scopes_limit_agents_to_themselves() {
        let ana = Scope::Agent("ana".into());
        assert!(ana.require_agent("ana").is_ok());
        assert_eq!(
            ana.require_agent("marko").unwrap_err().status,
            axum::http::StatusCode::FORBIDDEN
        );
        assert!(ana.require_operations().is_err());
        assert!(Scope::Operations.require_agent("marko").is_ok());
        assert_eq!(token_hash("abc").len(), 64);
        assert!(looks_like_agent_token(&token_hash("abc")));
        assert!(!looks_like_agent_token("change-me"));
        assert!(!looks_like_agent_token(&token_hash("abc").to_uppercase()));
    }
}
