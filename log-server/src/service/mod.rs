//! The use cases of the server, without HTTP: screen and check ([`check`], with the canonical
//! action and request fingerprint in [`action`]), logging and replaying
//! a decision ([`decision`]), escalations and their approvals ([`escalations`]), the request-id window ([`request_ids`]), private records
//! ([`private`]) and the policy registry ([`policies`]).
//!
//! Nothing here knows axum: the routes ([`crate::routes`]) extract a request, call a function of
//! this module with a [`Context`], and map its [`ServiceError`] to the HTTP error boundary. The
//! use cases sit on top of the log ([`crate::log`]), the checker pool and the metrics.

pub mod action;
pub mod check;
pub mod decision;
pub mod escalations;
pub mod period;
pub mod policies;
pub mod private;
pub mod request_ids;

use verdict_checker::CheckerPool;
use verdict_core::note::Signer;

use crate::log::{Log, LogError};
use crate::metrics::Metrics;
use crate::service::policies::PolicyRegistry;
use crate::service::request_ids::RequestIds;

/// What the use cases work with: borrowed parts of the server state.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The log.
    pub log: &'a Log,
    /// The checker threads.
    pub pool: &'a CheckerPool,
    /// The checker (receipt) key.
    pub checker_key: &'a Signer,
    /// Registered policies.
    pub policies: &'a PolicyRegistry,
    /// Metrics.
    pub metrics: &'a Metrics,
    /// Request ids seen recently (replay detection).
    pub request_ids: &'a RequestIds,
    /// Escalations: lifetime, waiters, resolutions in flight (spec `approval.md`).
    pub escalations: &'a escalations::Escalations,
}

/// Why a use case failed. Each variant maps to one error of the HTTP boundary
/// ([`crate::error::ApiError`]), with the same fields and message.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Part of the body is not acceptable JSON (the action text: syntax, nesting, a duplicate
    /// key).
    #[error("invalid JSON body: {detail}")]
    BadJson {
        /// Parser message (client-safe).
        detail: String,
    },
    /// The request is malformed (bad request id or salt).
    #[error("invalid request: {detail}")]
    BadRequest {
        /// What is wrong.
        detail: String,
    },
    /// No policy with that name or commitment is registered.
    #[error("unknown policy {policy:?}")]
    UnknownPolicy {
        /// The name or commitment asked for (at most 80 characters).
        policy: String,
    },
    /// The action cannot be checked against the policy.
    #[error("invalid action: {detail}")]
    InvalidAction {
        /// Why.
        detail: String,
    },
    /// The request id was used for a different policy or action, or is in flight.
    #[error("request id {request_id:?} was already used for a different action")]
    RequestIdConflict {
        /// The request id.
        request_id: String,
    },
    /// An escalation answer's signature is not by an eligible approver or does not verify
    /// (spec `approval.md` §3): the credential is refused.
    #[error("approval refused: {detail}")]
    ApprovalRefused {
        /// Why.
        detail: String,
    },
    /// Something asked for does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was not found.
        what: String,
    },
    /// The log is over its pending limit; retry later.
    #[error("log is busy, retry after {retry_after_secs} s")]
    Backpressure {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// A policy registration breaks a version rule (same version with other text, or not
    /// greater than the current version).
    #[error("policy conflict: {detail}")]
    PolicyConflict {
        /// What conflicts.
        detail: String,
    },
    /// The server is shutting down or the checker pool is gone.
    #[error("service unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: &'static str,
    },
    /// The log's storage failed (e.g. disk full); nothing was logged, retry later.
    #[error("the log's storage is failing")]
    StorageUnavailable,
    /// Anything else (logged in full by the boundary, answered generically).
    #[error("internal error: {detail}")]
    Internal {
        /// The real error.
        detail: String,
    },
}

impl ServiceError {
    /// An internal error from anything displayable.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal {
            detail: e.to_string(),
        }
    }
}

/// Map a log error of the write path: backpressure (counted in the metrics) and shutdown are
/// client-visible; anything else is internal.
pub(crate) fn log_error(metrics: &Metrics, e: LogError) -> ServiceError {
    match e {
        LogError::Backpressure { retry_after, .. } => {
            metrics.pushback();
            ServiceError::Backpressure {
                retry_after_secs: retry_after.as_secs().max(1),
            }
        }
        LogError::ShuttingDown => ServiceError::Unavailable {
            reason: "shutting down",
        },
        other @ (LogError::SequencingFailed { .. } | LogError::Storage(_))
            if !other.is_integrity() =>
        {
            ServiceError::StorageUnavailable
        }
        LogError::Halted => ServiceError::Unavailable {
            reason: "log halted by a witness alarm (see /health)",
        },
        other => ServiceError::internal(other),
    }
}
