//! `POST /v1/policies` (admin token): compile and register a policy version; `GET /v1/policies`
//! (public): the current version of every policy.
//!
//! The body is either JSON `{"source": "<policy TOML>"}` (`Content-Type: application/json`) or
//! the policy TOML itself (`Content-Type: application/toml` or `text/plain`).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::auth::AdminAuth;
use crate::error::ApiError;
use crate::service::policies::{analysis_findings, PolicyInfo, RegistryError};
use crate::AppState;

/// JSON form of the body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    /// The policy TOML text.
    pub source: String,
}

/// Answer of `POST /v1/policies`.
#[derive(Debug, Serialize)]
pub struct RegisterResponse {
    /// The registered policy.
    pub policy: PolicyInfo,
    /// Analysis findings (contradictions, never-firing, redundant or unbounded rules), as the
    /// checker's analysis reports them.
    pub findings: Vec<serde_json::Value>,
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        ct.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    )
}

/// `POST /v1/policies`.
pub async fn register(
    _auth: AdminAuth,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let source = match media_type(&headers).as_deref() {
        Some("application/json") => {
            let body: RegisterBody =
                serde_json::from_slice(&body).map_err(|e| ApiError::BadJson {
                    detail: e.to_string(),
                })?;
            body.source
        }
        Some("application/toml" | "text/plain") => {
            String::from_utf8(body.to_vec()).map_err(|_| ApiError::BadRequest {
                detail: "policy text is not UTF-8".to_owned(),
            })?
        }
        _ => return Err(ApiError::UnsupportedMediaType),
    };
    let policy = state.policies.register(&source).map_err(|e| match e {
        RegistryError::Compile(e) => ApiError::InvalidPolicy {
            detail: e.kind().to_string(),
            line: Some(e.line()),
            column: Some(e.column()),
        },
        other => ApiError::internal(other),
    })?;
    tracing::info!(policy.name = policy.name(), policy.commitment = %policy.commitment().to_hex(), "registered policy {}", policy.name());
    let findings = analysis_findings(&policy, state.config.check_timeout()).await;
    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse {
            policy: PolicyInfo::of(&policy),
            findings,
        }),
    )
        .into_response())
}

/// `GET /v1/policies`.
pub async fn list(State(state): State<AppState>) -> Json<Vec<PolicyInfo>> {
    Json(state.policies.list())
}
