//! Bearer-token authentication: a write token for `/v1/policies`, `/v1/screen` and `/v1/check`,
//! and a separate auditor token for `/v1/private/...`.
//!
//! Tokens are compared in constant time over their SHA-256 digests (so neither content nor length
//! leaks through timing). A missing or unknown token is 401; a valid token of the other kind is 403.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::error::ApiError;
use crate::AppState;

/// The two API tokens, stored as digests.
#[derive(Clone)]
pub struct Tokens {
    write: [u8; 32],
    auditor: [u8; 32],
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
    /// From the write and auditor tokens.
    pub fn new(write: &str, auditor: &str) -> Self {
        Self {
            write: digest(write),
            auditor: digest(auditor),
        }
    }

    /// The role of a presented token, if any. Both comparisons always run.
    pub fn role(&self, presented: &str) -> Option<Role> {
        let d = digest(presented);
        let is_write: bool = d.ct_eq(&self.write).into();
        let is_auditor: bool = d.ct_eq(&self.auditor).into();
        match (is_write, is_auditor) {
            (true, _) => Some(Role::Writer),
            (false, true) => Some(Role::Auditor),
            (false, false) => None,
        }
    }

    fn require(&self, parts: &Parts, wanted: Role) -> Result<(), ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or(ApiError::Unauthorized)?
            .to_str()
            .map_err(|_| ApiError::Unauthorized)?;
        let (scheme, token) = header.split_once(' ').ok_or(ApiError::Unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::Unauthorized);
        }
        match self.role(token.trim()) {
            Some(role) if role == wanted => Ok(()),
            Some(_) => Err(ApiError::Forbidden),
            None => Err(ApiError::Unauthorized),
        }
    }
}

/// Extractor: the request carries the write token.
#[derive(Debug, Clone, Copy)]
pub struct WriteAuth;

/// Extractor: the request carries the auditor token.
#[derive(Debug, Clone, Copy)]
pub struct AuditorAuth;

impl FromRequestParts<AppState> for WriteAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        state.tokens.require(parts, Role::Writer).map(|()| Self)
    }
}

impl FromRequestParts<AppState> for AuditorAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        state.tokens.require(parts, Role::Auditor).map(|()| Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles() {
        let t = Tokens::new("w", "a");
        assert_eq!(t.role("w"), Some(Role::Writer));
        assert_eq!(t.role("a"), Some(Role::Auditor));
        assert_eq!(t.role("x"), None);
        assert_eq!(t.role(""), None);
        assert_eq!(t.role("w "), None);
    }
}
