//! Policies (issue 11, spec `spec/policy-statement.md`):
//! - `POST /v1/policies[?force=true]` (admin token): register a policy version; each
//!   registration is a signed policy statement appended to the log before the answer (201), the
//!   same name, version and text again is 200 with nothing appended, the same version with other
//!   text or a version not greater than the current one is 409 `policy_conflict`, error-level
//!   analysis findings are 422 `policy_has_errors` unless `force=true`;
//! - `GET /v1/policies` (public): the current version of every name, with commitments and log
//!   indices;
//! - `GET /v1/policies/{name}/versions` (public): every version of a name, without text.
//!
//! The body of `POST` is either JSON `{"source": "<policy TOML>"}` (`Content-Type:
//! application/json`) or the policy TOML itself (`Content-Type: application/toml` or
//! `text/plain`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::auth::AdminAuth;
use crate::error::{ApiError, ApiQuery};
use crate::service::policies::{
    analysis_findings, Outcome, RegisterContext, RegistryError, VersionInfo,
};
use crate::AppState;

/// JSON form of the body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    /// The policy TOML text.
    pub source: String,
}

/// Query of `POST /v1/policies`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterQuery {
    /// Register despite error-level analysis findings (recorded in the statement).
    #[serde(default)]
    pub force: bool,
}

/// Answer of `POST /v1/policies`.
#[derive(Debug, Serialize)]
pub struct RegisterResponse {
    /// The registered version.
    pub policy: VersionInfo,
    /// True when this call appended the statement (201); false when the same name, version and
    /// text was registered before (200).
    pub created: bool,
    /// The policy statement (COSE_Sign1, base64): the log entry at `policy.index`.
    pub statement: String,
    /// Analysis findings (contradictions, never-firing, redundant or unbounded rules), as the
    /// checker's analysis reports them.
    pub findings: Vec<serde_json::Value>,
}

/// Answer of `GET /v1/policies/{name}/versions`.
#[derive(Debug, Serialize)]
pub struct VersionsResponse {
    /// Policy name.
    pub name: String,
    /// Every version in registration order (ascending versions).
    pub versions: Vec<VersionInfo>,
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

/// Map a registry error to the HTTP boundary.
fn registry_error(state: &AppState, e: RegistryError) -> ApiError {
    match e {
        RegistryError::Compile(e) => ApiError::InvalidPolicy {
            detail: e.kind().to_string(),
            line: Some(e.line()),
            column: Some(e.column()),
        },
        e @ RegistryError::BadVersion { .. } => ApiError::InvalidPolicy {
            detail: e.to_string(),
            line: None,
            column: None,
        },
        e @ (RegistryError::VersionExists { .. } | RegistryError::NotNewer { .. }) => {
            ApiError::PolicyConflict {
                detail: e.to_string(),
            }
        }
        e @ RegistryError::AnalysisErrors { .. } => ApiError::PolicyHasErrors {
            detail: e.to_string(),
        },
        RegistryError::Log(e) => crate::service::log_error(&state.metrics, e).into(),
        // The store failing to answer (e.g. the registration lock of several frontends not
        // taken in time): 503, nothing registered; damaged data stays internal.
        RegistryError::Store(e) if !e.is_integrity() => {
            crate::service::ServiceError::StorageUnavailable.into()
        }
        other => ApiError::internal(other),
    }
}

/// `POST /v1/policies`.
pub async fn register(
    AdminAuth(admin): AdminAuth,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<RegisterQuery>,
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
    let ctx = RegisterContext {
        log: &state.log,
        checker_key: &state.checker_key,
        analysis_timeout: state.config.analysis_timeout(),
    };
    let outcome = state
        .policies
        .register(ctx, &source, &admin, query.force)
        .await
        .map_err(|e| registry_error(&state, e))?;
    let (status, created, registered, findings) = match outcome {
        Outcome::Created(r, findings) => (StatusCode::CREATED, true, r, findings),
        Outcome::Existing(r) => {
            let findings = analysis_findings(&r.policy, state.config.analysis_timeout()).await;
            (StatusCode::OK, false, r, findings)
        }
    };
    Ok((
        status,
        Json(RegisterResponse {
            policy: registered.info.clone(),
            created,
            statement: base64::engine::general_purpose::STANDARD.encode(&registered.statement),
            findings,
        }),
    )
        .into_response())
}

/// `GET /v1/policies`.
pub async fn list(State(state): State<AppState>) -> Json<Vec<VersionInfo>> {
    Json(state.policies.list())
}

/// `GET /v1/policies/{name}/versions`.
pub async fn versions(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<VersionsResponse>, ApiError> {
    let versions = state
        .policies
        .versions(&name)
        .ok_or_else(|| ApiError::UnknownPolicy {
            policy: name.chars().take(80).collect(),
        })?;
    Ok(Json(VersionsResponse { name, versions }))
}
