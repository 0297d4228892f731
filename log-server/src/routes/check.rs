//! `POST /v1/screen` and `POST /v1/check` (agent tokens): extract the body and `?wait=`, run the
//! use case of [`crate::service::check`], and answer with the decision (200, or 202 for
//! `?wait=false`) or an [`ApiError`].

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use crate::auth::AgentAuth;
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::service::check::{self as service, Screened};
pub use crate::service::check::{ApprovalBody, CheckBody, ScreenBody, ScreenResponse};
use crate::service::decision::Logged;
pub use crate::service::decision::{DecisionResponse, PolicyRef, ProofPart};
use crate::AppState;

/// Query of the write endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// Wait for integration and return the proof bundle (default `true`).
    #[serde(default = "default_wait")]
    pub wait: bool,
}

fn default_wait() -> bool {
    true
}

/// `POST /v1/check`.
pub async fn check(
    AgentAuth(agent): AgentAuth,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<CheckBody>,
) -> Result<Response, ApiError> {
    let logged = service::check(state.service(), &agent, body, query.wait).await?;
    decision_response(&logged)
}

/// `POST /v1/screen`.
pub async fn screen(
    AgentAuth(agent): AgentAuth,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<ScreenBody>,
) -> Result<Response, ApiError> {
    match service::screen(state.service(), &agent, body, query.wait).await? {
        Screened::Applicable(answer) => Ok(Json(answer).into_response()),
        Screened::Logged(logged) => decision_response(&logged),
    }
}

/// A logged decision as JSON, serialized into one buffer sized for a decision with its proof
/// (about 3 KB), so that it is not grown and copied several times on the way. 202 when the
/// caller did not wait for the proof of a new entry, 200 otherwise.
fn decision_response(logged: &Logged) -> Result<Response, ApiError> {
    let status = if logged.accepted {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let mut bytes = Vec::with_capacity(4096);
    serde_json::to_writer(&mut bytes, &logged.body).map_err(ApiError::internal)?;
    Ok((
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response())
}
