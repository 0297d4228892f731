//! Bearer-token authentication: a write token for `/v1/policies`, `/v1/screen` and `/v1/check`,
//! and a separate auditor token for `/v1/private/...` (RFC 6750 bearer tokens).
//!
//! Tokens are compared in constant time over their SHA-256 digests (so neither content nor length
//! leaks through timing). A missing or unknown token is 401 `unauthorized`; a known token past its
//! expiry (the `expires=` line of its token file, see [`crate::keys`]) is 401 `token_expired`,
//! checked against the clock on every request; a valid token of the other kind is 403
//! `forbidden`. No answer echoes the presented token.

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
    /// A valid token of the other role: 403.
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

/// One token, stored as a digest, with its expiry.
#[derive(Clone)]
struct Entry {
    digest: [u8; 32],
    expires_at: Option<SystemTime>,
}

impl Entry {
    fn of(token: &ApiToken) -> Self {
        Self {
            digest: digest(token.secret()),
            expires_at: token
                .expires_at()
                .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s))),
        }
    }

    /// A token is expired from its expiry instant on. An expiry beyond `SystemTime`'s range is
    /// never reached.
    fn expired(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }
}

/// The two API tokens, stored as digests with their expiries.
#[derive(Clone)]
pub struct Tokens {
    write: Entry,
    auditor: Entry,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(..)")
    }
}

/// Which token a request presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The write token.
    Writer,
    /// The auditor token.
    Auditor,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// From the write and auditor tokens (with their expiries).
    pub fn new(write: &ApiToken, auditor: &ApiToken) -> Self {
        Self {
            write: Entry::of(write),
            auditor: Entry::of(auditor),
        }
    }

    /// The role of a presented token, if any, ignoring expiry. Both comparisons always run.
    pub fn role(&self, presented: &str) -> Option<Role> {
        let d = digest(presented);
        let is_write: bool = d.ct_eq(&self.write.digest).into();
        let is_auditor: bool = d.ct_eq(&self.auditor.digest).into();
        match (is_write, is_auditor) {
            (true, _) => Some(Role::Writer),
            (false, true) => Some(Role::Auditor),
            (false, false) => None,
        }
    }

    /// Authorize a presented token for `wanted` at time `now`.
    ///
    /// # Errors
    /// [`AuthError`]: unknown token, expired token (either role), or the other role's token.
    pub fn authorize(
        &self,
        presented: &str,
        wanted: Role,
        now: SystemTime,
    ) -> Result<Role, AuthError> {
        let role = self.role(presented).ok_or(AuthError::Missing)?;
        let entry = match role {
            Role::Writer => &self.write,
            Role::Auditor => &self.auditor,
        };
        if entry.expired(now) {
            return Err(AuthError::Expired);
        }
        if role != wanted {
            return Err(AuthError::WrongRole);
        }
        Ok(role)
    }

    fn require(&self, parts: &Parts, wanted: Role) -> Result<(), AuthError> {
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
            .map(|_| ())
    }
}

/// Extractor: the request carries the write token.
#[derive(Debug, Clone, Copy)]
pub struct WriteAuth;

/// Extractor: the request carries the auditor token.
#[derive(Debug, Clone, Copy)]
pub struct AuditorAuth;

impl FromRequestParts<AppState> for WriteAuth {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AuthError> {
        state.tokens.require(parts, Role::Writer).map(|()| Self)
    }
}

impl FromRequestParts<AppState> for AuditorAuth {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AuthError> {
        state.tokens.require(parts, Role::Auditor).map(|()| Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles() {
        let t = Tokens::new(&ApiToken::new("w", None), &ApiToken::new("a", None));
        assert_eq!(t.role("w"), Some(Role::Writer));
        assert_eq!(t.role("a"), Some(Role::Auditor));
        assert_eq!(t.role("x"), None);
        assert_eq!(t.role(""), None);
        assert_eq!(t.role("w "), None);
    }

    #[test]
    fn expiry_is_checked_at_each_call() {
        let t = Tokens::new(&ApiToken::new("w", Some(1000)), &ApiToken::new("a", None));
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(t.authorize("w", Role::Writer, at(999)), Ok(Role::Writer));
        assert_eq!(
            t.authorize("w", Role::Writer, at(1000)),
            Err(AuthError::Expired)
        );
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
            t.authorize("x", Role::Writer, at(10)),
            Err(AuthError::Missing)
        );
        assert_eq!(
            t.authorize("a", Role::Auditor, at(u64::MAX / 4)),
            Ok(Role::Auditor)
        );
        // An expiry beyond the clock's range never expires.
        let far = Tokens::new(
            &ApiToken::new("w", Some(u64::MAX)),
            &ApiToken::new("a", None),
        );
        assert_eq!(
            far.authorize("w", Role::Writer, SystemTime::now()),
            Ok(Role::Writer)
        );
    }
}
