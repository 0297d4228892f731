//! Bearer-token authentication (RFC 6750) with three roles (issue 11, token files in
//! [`crate::keys`]):
//!
//! | role | token file | may use |
//! |---|---|---|
//! | admin | `admin.token` | `POST /v1/policies` (policy registration) |
//! | agent | `agent.token`, `agent-<name>.token` | `POST /v1/screen`, `POST /v1/check` |
//! | auditor | `auditor.token` | `GET /v1/private/...` |
//! | metrics | `metrics.token` | `GET /metrics` (also the admin token; issue 16 item 6) |
//!
//! Each token has a name (the agent name; `admin`, `auditor`), which the use cases record: the
//! agent name in each decision's private record, the admin token's name in each policy statement.
//!
//! Tokens are compared in constant time over their SHA-256 digests, and every known token is
//! compared on every request (so neither content, length nor position leaks through timing). A
//! missing or unknown token is 401 `unauthorized`; a known token past its expiry (the `expires=`
//! line of its token file) is 401 `token_expired`, checked against the clock on every request; a
//! valid token of another role is 403 `forbidden`. No answer echoes the presented token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::error::ApiError;
use crate::keys::ApiToken;
use crate::AppState;

/// Why a request was not authorized. Converted to the API's `{error, message}` shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header, or a token that is not one of ours: 401.
    #[error("missing or invalid bearer token")]
    Missing,
    /// One of our tokens, past its expiry: 401 `token_expired`.
    #[error("the bearer token has expired; ask the operator for a new one")]
    Expired,
    /// A valid token of another role: 403.
    #[error("this token may not use this endpoint")]
    WrongRole,
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        match self {
            Self::Missing => ApiError::Unauthorized.into_response(),
            Self::WrongRole => ApiError::Forbidden.into_response(),
            Self::Expired => ApiError::TokenExpired.into_response(),
        }
    }
}

/// One token, stored as a digest, with its role, name and expiry.
#[derive(Clone)]
struct Entry {
    digest: [u8; 32],
    expires_at: Option<SystemTime>,
    role: Role,
    name: String,
}

impl Entry {
    fn of(token: &ApiToken, role: Role, name: &str) -> Self {
        Self {
            digest: digest(token.secret()),
            expires_at: token
                .expires_at()
                .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s))),
            role,
            name: name.to_owned(),
        }
    }

    /// A token is expired from its expiry instant on. An expiry beyond `SystemTime`'s range is
    /// never reached.
    fn expired(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }
}

/// The API tokens of every role, stored as digests with their names and expiries.
#[derive(Clone)]
pub struct Tokens {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(..)")
    }
}

/// The role of a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Policies and operations (`admin.token`).
    Admin,
    /// Screen and check only (`agent.token`, `agent-<name>.token`).
    Agent,
    /// Private reads (`auditor.token`).
    Auditor,
    /// `GET /metrics` only (`metrics.token`), for a Prometheus scraper.
    Metrics,
}

/// Who presented an accepted token: its role and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The role.
    pub role: Role,
    /// The token's name: the agent name, `admin` or `auditor`.
    pub name: String,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// From the admin token, the agent tokens (name and token) and the auditor token.
    pub fn new(admin: &ApiToken, agents: &[(String, ApiToken)], auditor: &ApiToken) -> Self {
        let mut entries = vec![Entry::of(admin, Role::Admin, "admin")];
        entries.extend(
            agents
                .iter()
                .map(|(name, t)| Entry::of(t, Role::Agent, name)),
        );
        entries.push(Entry::of(auditor, Role::Auditor, "auditor"));
        Self { entries }
    }

    /// These tokens plus the metrics token (role [`Role::Metrics`], name `metrics`).
    #[must_use]
    pub fn with_metrics(mut self, metrics: &ApiToken) -> Self {
        self.entries
            .push(Entry::of(metrics, Role::Metrics, "metrics"));
        self
    }

    /// The tokens of loaded [`crate::keys::Keys`].
    pub fn of_keys(keys: &crate::keys::Keys) -> Self {
        Self::new(&keys.admin_token, &keys.agent_tokens(), &keys.auditor_token)
            .with_metrics(&keys.metrics_token)
    }

    /// The entry of a presented token, ignoring expiry. Every comparison always runs; the first
    /// match wins (token files hold distinct random tokens).
    fn find(&self, presented: &str) -> Option<&Entry> {
        let d = digest(presented);
        let mut found = None;
        for entry in &self.entries {
            let hit: bool = d.ct_eq(&entry.digest).into();
            if hit && found.is_none() {
                found = Some(entry);
            }
        }
        found
    }

    /// The role of a presented token, if any, ignoring expiry.
    pub fn role(&self, presented: &str) -> Option<Role> {
        self.find(presented).map(|e| e.role)
    }

    /// Authorize a presented token for `wanted` at time `now`.
    ///
    /// # Errors
    /// [`AuthError`]: unknown token, expired token (any role), or another role's token.
    pub fn authorize(
        &self,
        presented: &str,
        wanted: Role,
        now: SystemTime,
    ) -> Result<Principal, AuthError> {
        let entry = self.find(presented).ok_or(AuthError::Missing)?;
        if entry.expired(now) {
            return Err(AuthError::Expired);
        }
        if entry.role != wanted {
            return Err(AuthError::WrongRole);
        }
        Ok(Principal {
            role: entry.role,
            name: entry.name.clone(),
        })
    }

    fn require(&self, parts: &Parts, wanted: Role) -> Result<Principal, AuthError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or(AuthError::Missing)?
            .to_str()
            .map_err(|_| AuthError::Missing)?;
        let (scheme, token) = header.split_once(' ').ok_or(AuthError::Missing)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::Missing);
        }
        self.authorize(token.trim(), wanted, SystemTime::now())
    }
}

/// Extractor: the request carries the admin token; holds its name.
#[derive(Debug, Clone)]
pub struct AdminAuth(pub String);

/// Extractor: the request carries an agent token; holds the agent name.
#[derive(Debug, Clone)]
pub struct AgentAuth(pub String);

/// Extractor: the request carries the auditor token.
#[derive(Debug, Clone, Copy)]
pub struct AuditorAuth;

/// Extractor: the auditor token or an agent token (the rule disclosure endpoint, spec
/// `disclosure.md` §5); holds who presented it.
#[derive(Debug, Clone)]
pub struct AuditorOrAgentAuth(pub Principal);

impl FromRequestParts<AppState> for AuditorOrAgentAuth {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AuthError> {
        match state.tokens.require(parts, Role::Auditor) {
            Err(AuthError::WrongRole) => state.tokens.require(parts, Role::Agent).map(Self),
            other => other.map(Self),
        }
    }
}

/// Extractor: the metrics token or the admin token (`GET /metrics` on the main listener).
#[derive(Debug, Clone, Copy)]
pub struct MetricsAuth;

impl FromRequestParts<AppState> for MetricsAuth {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AuthError> {
        match state.tokens.require(parts, Role::Metrics) {
            Err(AuthError::WrongRole) => state.tokens.require(parts, Role::Admin).map(|_| Self),
            other => other.map(|_| Self),
        }
    }
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AuthError> {
        state
            .tokens
            .require(parts, Role::Admin)
            .map(|p| Self(p.name))
    }
}

impl FromRequestParts<AppState> for AgentAuth {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AuthError> {
        state
            .tokens
            .require(parts, Role::Agent)
            .map(|p| Self(p.name))
    }
}

impl FromRequestParts<AppState> for AuditorAuth {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AuthError> {
        state.tokens.require(parts, Role::Auditor).map(|_| Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(admin: Option<u64>, agent: Option<u64>) -> Tokens {
        Tokens::new(
            &ApiToken::new("d", admin),
            &[
                ("default".to_owned(), ApiToken::new("w", agent)),
                ("bot".to_owned(), ApiToken::new("b", None)),
            ],
            &ApiToken::new("a", None),
        )
    }

    #[test]
    fn roles() {
        let t = tokens(None, None);
        assert_eq!(t.role("d"), Some(Role::Admin));
        assert_eq!(t.role("w"), Some(Role::Agent));
        assert_eq!(t.role("b"), Some(Role::Agent));
        assert_eq!(t.role("a"), Some(Role::Auditor));
        assert_eq!(t.role("x"), None);
        assert_eq!(t.role(""), None);
        assert_eq!(t.role("w "), None);
        let now = SystemTime::now();
        assert_eq!(
            t.authorize("b", Role::Agent, now).unwrap().name,
            "bot".to_owned()
        );
        assert_eq!(
            t.authorize("w", Role::Admin, now),
            Err(AuthError::WrongRole),
            "an agent token may not change policies"
        );
        assert_eq!(
            t.authorize("d", Role::Agent, now),
            Err(AuthError::WrongRole)
        );
        assert_eq!(
            t.authorize("a", Role::Admin, now),
            Err(AuthError::WrongRole)
        );
    }

    #[test]
    fn the_metrics_token_reads_metrics_only() {
        let t = tokens(None, None).with_metrics(&ApiToken::new("m", None));
        assert_eq!(t.role("m"), Some(Role::Metrics));
        let now = SystemTime::now();
        for other in [Role::Admin, Role::Agent, Role::Auditor] {
            assert_eq!(t.authorize("m", other, now), Err(AuthError::WrongRole));
        }
        assert_eq!(
            t.authorize("m", Role::Metrics, now).unwrap().name,
            "metrics"
        );
        assert_eq!(
            t.authorize("d", Role::Metrics, now),
            Err(AuthError::WrongRole),
            "the admin token is accepted by MetricsAuth, not as the metrics role"
        );
    }

    #[test]
    fn expiry_is_checked_at_each_call() {
        let t = tokens(None, Some(1000));
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        let agent = |s| t.authorize("w", Role::Agent, at(s)).map(|p| p.role);
        assert_eq!(agent(999), Ok(Role::Agent));
        assert_eq!(agent(1000), Err(AuthError::Expired));
        // Expired wins over the wrong role; an unknown token stays unknown.
        assert_eq!(
            t.authorize("w", Role::Auditor, at(2000)),
            Err(AuthError::Expired)
        );
        assert_eq!(
            t.authorize("w", Role::Auditor, at(10)),
            Err(AuthError::WrongRole)
        );
        assert_eq!(
            t.authorize("x", Role::Agent, at(10)),
            Err(AuthError::Missing)
        );
        assert_eq!(
            t.authorize("a", Role::Auditor, at(u64::MAX / 4))
                .map(|p| p.role),
            Ok(Role::Auditor)
        );
        // An expiry beyond the clock's range never expires.
        let far = tokens(Some(u64::MAX), None);
        assert_eq!(
            far.authorize("d", Role::Admin, SystemTime::now())
                .map(|p| p.role),
            Ok(Role::Admin)
        );
    }
}
