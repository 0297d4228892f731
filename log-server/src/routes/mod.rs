//! HTTP routes: thin adapters that extract the request, call the log ([`crate::log`]) or a use
//! case ([`crate::service`]), and map errors to [`ApiError`], the one HTTP error boundary.
//!
//! Public (no token): the C2SP tlog-tiles read API ([`public`]), keys, proofs and bundles
//! ([`proofs`]), health, metrics and the OpenAPI document. Write token: policies ([`policies`]),
//! screen and check ([`check`]). Escalations ([`escalations`]): agent, admin, auditor or an
//! approver's signature. Auditor token: the private store ([`private`]).

pub mod check;
pub mod escalations;
pub mod period;
pub mod policies;
pub mod private;
pub mod proofs;
pub mod public;

use axum::routing::{get, post};
use axum::Router;

use crate::error::ApiError;
use crate::service::ServiceError;
use crate::AppState;

/// Every route, without middleware (see [`crate::app`]).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/checkpoint", get(public::checkpoint))
        .route("/tile/{*path}", get(public::tile))
        .route("/health", get(public::health))
        .route("/metrics", get(public::metrics))
        .route("/openapi.json", get(public::openapi))
        .route("/v1/keys", get(public::keys))
        .route("/v1/proof/inclusion", get(proofs::inclusion))
        .route("/v1/proof/consistency", get(proofs::consistency))
        .route("/v1/bundle/{index}", get(proofs::bundle))
        .route("/v1/policies", post(policies::register).get(policies::list))
        .route("/v1/policies/{name}/versions", get(policies::versions))
        .route("/v1/screen", post(check::screen))
        .route("/v1/check", post(check::check))
        .route("/v1/escalations", get(escalations::list))
        .route("/v1/escalations/{id}", get(escalations::get))
        .route("/v1/escalations/{id}/approvals", post(escalations::approve))
        .route("/v1/escalations/{id}/rejections", post(escalations::reject))
        .route("/v1/private/actions/{index}", get(private::action))
        .route("/v1/private/policies/{commitment}", get(private::policy))
        .route("/v1/private/disclosure/{index}", get(private::disclosure))
        .route("/v1/private/period", get(period::period))
        .route("/v1/private/records", get(period::records))
}

/// Fallback for unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::NotFound {
        what: "route".to_owned(),
    }
}

/// Parse a decimal `u64` path segment (leaf index) strictly: digits only, no sign, no leading
/// `+`, at most 20 digits.
///
/// # Errors
/// [`ApiError::BadRequest`].
pub fn parse_index(text: &str) -> Result<u64, ApiError> {
    let bad = || ApiError::BadRequest {
        detail: "index must be a non-negative decimal integer".to_owned(),
    };
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse::<u64>().map_err(|_| bad())
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::BadJson { detail } => ApiError::BadJson { detail },
            ServiceError::BadRequest { detail } => ApiError::BadRequest { detail },
            ServiceError::UnknownPolicy { policy } => ApiError::UnknownPolicy { policy },
            ServiceError::InvalidAction { detail } => ApiError::InvalidAction { detail },
            ServiceError::RequestIdConflict { request_id } => {
                ApiError::RequestIdConflict { request_id }
            }
            ServiceError::NotFound { what } => ApiError::NotFound { what },
            ServiceError::ApprovalRefused { detail } => ApiError::ApprovalRefused { detail },
            ServiceError::Backpressure { retry_after_secs } => {
                ApiError::Backpressure { retry_after_secs }
            }
            ServiceError::Unavailable { reason } => ApiError::Unavailable { reason },
            ServiceError::StorageUnavailable => ApiError::StorageUnavailable {
                retry_after_secs: crate::error::STORAGE_RETRY_AFTER_SECS,
            },
            ServiceError::PolicyConflict { detail } => ApiError::PolicyConflict { detail },
            ServiceError::Internal { detail } => ApiError::Internal { detail },
        }
    }
}
