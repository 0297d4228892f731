//! The one HTTP error boundary: [`ApiError`] is the only place that chooses status codes.
//!
//! A 4xx carries a short, client-safe JSON body `{"error": "<code>", "message": "..."}`; a 5xx
//! carries a generic message and the real error is logged with `tracing`. Extractor rejections
//! (bad JSON, wrong content type, oversized body, bad query strings) are mapped here too, through
//! [`ApiJson`] and [`ApiQuery`], and responses produced by tower-http layers or the router itself
//! (413, 408/503 timeout, 404, 405) are rewritten into the same shape by [`normalize_response`].

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Every error the API returns.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not valid JSON or does not match the request schema.
    #[error("invalid JSON body: {detail}")]
    BadJson {
        /// Parser message (client-safe).
        detail: String,
    },
    /// The request needs `Content-Type: application/json`.
    #[error("expected content type application/json")]
    UnsupportedMediaType,
    /// The body exceeds the configured limit.
    #[error("request body exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes (0 only until [`normalize_response`] fills it in).
        limit: usize,
    },
    /// A query string parameter is missing or invalid.
    #[error("invalid query: {detail}")]
    BadQuery {
        /// What is wrong.
        detail: String,
    },
    /// A field of an otherwise well-formed request is invalid.
    #[error("invalid request: {detail}")]
    BadRequest {
        /// What is wrong.
        detail: String,
    },
    /// A tile path is not a canonical C2SP tlog-tiles path.
    #[error("invalid tile path: {detail}")]
    BadTilePath {
        /// What is wrong.
        detail: String,
    },
    /// Missing or invalid bearer token.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// One of our tokens, past its expiry (`expires=` in its token file).
    #[error("the bearer token has expired; ask the operator for a new one")]
    TokenExpired,
    /// The token is valid but not for this endpoint.
    #[error("this token may not use this endpoint")]
    Forbidden,
    /// An escalation answer whose signature (its credential: the endpoints take no token) is
    /// not by an approver key of the escalation's policy, or does not verify.
    #[error("approval refused: {detail}")]
    ApprovalRefused {
        /// Why (unknown approver key, failing signature).
        detail: String,
    },
    /// No such resource.
    #[error("{what} not found")]
    NotFound {
        /// What was not found.
        what: String,
    },
    /// The HTTP method is not allowed on this path.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The named policy or commitment is not registered.
    #[error("unknown policy {policy:?}")]
    UnknownPolicy {
        /// The name or commitment given.
        policy: String,
    },
    /// The policy text did not compile.
    #[error("policy does not compile: {detail}")]
    InvalidPolicy {
        /// The located compiler message.
        detail: String,
        /// Line of the error (1-based), when known.
        line: Option<usize>,
        /// Column of the error (1-based), when known.
        column: Option<usize>,
    },
    /// The policy compiled, but its analysis found error-level findings and `force=true` was
    /// not given; nothing was registered.
    #[error("{detail}")]
    PolicyHasErrors {
        /// How many, the first one, and how to override.
        detail: String,
    },
    /// A registration breaks a version rule: the same name and version with other text, or a
    /// version not greater than the current one. Nothing was registered.
    #[error("policy conflict: {detail}")]
    PolicyConflict {
        /// What conflicts.
        detail: String,
    },
    /// The action (or an approval) is invalid for the policy; nothing was logged.
    #[error("invalid action: {detail}")]
    InvalidAction {
        /// The checker's message.
        detail: String,
    },
    /// The request id was used before with a different action or policy.
    #[error("request id {request_id:?} was already used for a different action")]
    RequestIdConflict {
        /// The request id.
        request_id: String,
    },
    /// The log is over its pending limit; retry later.
    #[error("log is busy, retry after {retry_after_secs} s")]
    Backpressure {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// The store cannot take writes right now (e.g. the disk is full); nothing was logged.
    /// The server recovers by itself once the store works again.
    #[error("the log's storage is failing; retry after {retry_after_secs} s")]
    StorageUnavailable {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Stored log data is damaged or missing (e.g. a deleted tile file): never served. Logged
    /// loudly; `/health` reports it until the store is repaired and the server restarted.
    #[error("the log's stored data failed an integrity check; the operator has been alerted")]
    Integrity {
        /// The real error (logged, never sent).
        detail: String,
    },
    /// The server is shutting down or the request timed out.
    #[error("service unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: &'static str,
    },
    /// A witness saw a larger tree than this log's: the log halted (spec `spec/witness.md` §9.3).
    #[error("witness alarm: {detail}")]
    WitnessAlarm {
        /// Which witness, and the sizes.
        detail: String,
    },
    /// No checkpoint cosigned by the witness quorum covers the entry (yet).
    #[error("not witnessed: {reason}")]
    NotWitnessed {
        /// Why.
        reason: &'static str,
    },
    /// Anything else: logged in full, answered generically.
    #[error("internal error: {detail}")]
    Internal {
        /// The real error (logged, never sent).
        detail: String,
    },
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// Machine-readable code, e.g. `bad_json`.
    pub error: String,
    /// Human-readable, client-safe message.
    pub message: String,
    /// Line of a policy compile error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Column of a policy compile error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

/// `Retry-After` of [`ApiError::StorageUnavailable`], in seconds.
pub const STORAGE_RETRY_AFTER_SECS: u64 = 2;

impl ApiError {
    /// An internal error from anything displayable.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal {
            detail: e.to_string(),
        }
    }

    /// The answer to a failed log read or write: a damaged store is
    /// [`ApiError::Integrity`] (503, logged as an error), a failing backend is
    /// [`ApiError::StorageUnavailable`] (503 with `Retry-After`), a shutdown is
    /// [`ApiError::Unavailable`]; anything else is internal.
    pub fn from_log(error: crate::log::LogError) -> Self {
        use crate::log::LogError;
        if error.is_integrity() {
            return Self::Integrity {
                detail: error.to_string(),
            };
        }
        match error {
            LogError::Storage(_) | LogError::SequencingFailed { .. } => Self::StorageUnavailable {
                retry_after_secs: STORAGE_RETRY_AFTER_SECS,
            },
            LogError::ShuttingDown => Self::Unavailable {
                reason: "shutting down",
            },
            LogError::Halted => Self::Unavailable {
                reason: "log halted by a witness alarm (see /health)",
            },
            LogError::Backpressure { retry_after, .. } => Self::Backpressure {
                retry_after_secs: retry_after.as_secs().max(1),
            },
            other => Self::internal(other),
        }
    }

    /// Status code and machine code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadJson { .. } => (StatusCode::BAD_REQUEST, "bad_json"),
            Self::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::BodyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            Self::BadQuery { .. } => (StatusCode::BAD_REQUEST, "bad_query"),
            Self::BadRequest { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::BadTilePath { .. } => (StatusCode::BAD_REQUEST, "bad_tile_path"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::TokenExpired => (StatusCode::UNAUTHORIZED, "token_expired"),
            Self::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            Self::ApprovalRefused { .. } => (StatusCode::FORBIDDEN, "approval_refused"),
            Self::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::UnknownPolicy { .. } => (StatusCode::NOT_FOUND, "unknown_policy"),
            Self::InvalidPolicy { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_policy"),
            Self::InvalidAction { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_action"),
            Self::PolicyHasErrors { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "policy_has_errors"),
            Self::PolicyConflict { .. } => (StatusCode::CONFLICT, "policy_conflict"),
            Self::RequestIdConflict { .. } => (StatusCode::CONFLICT, "request_id_conflict"),
            Self::Backpressure { .. } => (StatusCode::SERVICE_UNAVAILABLE, "backpressure"),
            Self::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::StorageUnavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
            }
            Self::Integrity { .. } => (StatusCode::SERVICE_UNAVAILABLE, "integrity"),
            Self::WitnessAlarm { .. } => (StatusCode::SERVICE_UNAVAILABLE, "witness_alarm"),
            Self::NotWitnessed { .. } => (StatusCode::SERVICE_UNAVAILABLE, "not_witnessed"),
            Self::Internal { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = if status.is_server_error() {
            match &self {
                Self::Internal { detail } => {
                    tracing::error!(error = %detail, "internal error: {detail}");
                    "internal server error".to_owned()
                }
                Self::Integrity { detail } => {
                    tracing::error!(error = %detail, "log integrity error: {detail}");
                    self.to_string()
                }
                other => other.to_string(),
            }
        } else {
            self.to_string()
        };
        let (line, column) = match &self {
            Self::InvalidPolicy { line, column, .. } => (*line, *column),
            _ => (None, None),
        };
        let body = ErrorBody {
            error: code.to_owned(),
            message,
            line,
            column,
        };
        let mut response = (status, axum::Json(body)).into_response();
        match &self {
            Self::Unauthorized => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::TokenExpired => {
                // RFC 6750 §3: the token is known but no longer valid.
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        "Bearer error=\"invalid_token\", error_description=\"the token has expired\"",
                    ),
                );
            }
            Self::Backpressure { retry_after_secs }
            | Self::StorageUnavailable { retry_after_secs } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            _ => {}
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::BodyTooLarge { limit: 0 },
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            _ => Self::BadJson {
                detail: truncate(&rejection.body_text(), 200),
            },
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::BadQuery {
            detail: truncate(&rejection.body_text(), 200),
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", text.get(..end).unwrap_or_default())
}

/// `axum::Json` whose rejections are [`ApiError`]s.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

/// `axum::extract::Query` whose rejections are [`ApiError`]s.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// Rewrite error responses not produced by [`ApiError`] (tower-http's 413 and timeout, the
/// router's 404/405) into the `{error, message}` shape. Responses that already carry JSON pass,
/// except 413, which is always rewritten so that its message names `body_limit`, the configured
/// limit in bytes (neither tower-http nor the JSON extractor knows it).
pub async fn normalize_response(response: Response, body_limit: usize) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::BodyTooLarge { limit: body_limit }.into_response();
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let error = match status {
        StatusCode::NOT_FOUND => ApiError::NotFound {
            what: "route".to_owned(),
        },
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
        StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => ApiError::Unavailable {
            reason: "request timed out",
        },
        s if s.is_client_error() => ApiError::BadRequest {
            detail: s.canonical_reason().unwrap_or("bad request").to_lowercase(),
        },
        s => ApiError::Internal {
            detail: format!("unstructured {s} response from a middleware layer"),
        },
    };
    error.into_response()
}

/// The response for a caught panic: a generic 500 (the panic message is logged).
pub fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = if let Some(s) = err.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = err.downcast_ref::<&str>() {
        (*s).to_owned()
    } else {
        "unknown panic payload".to_owned()
    };
    ApiError::Internal {
        detail: format!("handler panicked: {detail}"),
    }
    .into_response()
}
