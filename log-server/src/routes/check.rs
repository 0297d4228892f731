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
pub use crate::service::check::{ApprovalBody, CheckBody, ScreenBody};
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

/// Query of `POST /v1/check`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckQuery {
    /// Wait for integration and return the proof bundle (default `true`).
    #[serde(default = "default_wait")]
    pub wait: bool,
    /// Wait (at most `witness_timeout_ms`) for a checkpoint cosigned by the witness quorum that
    /// covers the entry, and return the bundle against it (default `false`; implies `wait`).
    #[serde(default)]
    pub witnessed: bool,
}

/// `POST /v1/check`.
pub async fn check(
    AgentAuth(agent): AgentAuth,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<CheckQuery>,
    ApiJson(body): ApiJson<CheckBody>,
) -> Result<Response, ApiError> {
    let mut logged =
        service::check(state.service(), &agent, body, query.wait || query.witnessed).await?;
    if query.witnessed && state.witnesses.quorum() > 0 {
        witness_proof(&state, &mut logged).await?;
    }
    decision_response(&logged)
}

/// Replace the proof of `logged` by one against a checkpoint cosigned by the witness quorum
/// (spec `spec/witness.md` §9.4), waiting at most `witness_timeout_ms` for it.
async fn witness_proof(state: &AppState, logged: &mut Logged) -> Result<(), ApiError> {
    let timeout = state.witnesses.timeout();
    let cosigned = state
        .witnesses
        .wait_covering(logged.index, timeout)
        .await
        .ok_or(ApiError::NotWitnessed {
            reason: "no checkpoint cosigned by the witness quorum within witness_timeout_ms",
        })?;
    let size = cosigned.checkpoint.size.0;
    let bundle = state
        .log
        .bundle_against(logged.index, cosigned.checkpoint.size, cosigned.note)
        .map_err(ApiError::from_log)?;
    logged.body.integrated = true;
    logged.body.proof = Some(ProofPart {
        tree_size: size,
        inclusion_proof: bundle.proof.iter().map(|h| h.to_base64()).collect(),
        checkpoint: String::from_utf8_lossy(&bundle.checkpoint).into_owned(),
        bundle: String::from_utf8_lossy(&bundle.encode()).into_owned(),
    });
    Ok(())
}

/// `POST /v1/screen`.
pub async fn screen(
    AgentAuth(agent): AgentAuth,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<ScreenBody>,
) -> Result<Response, ApiError> {
    match service::screen(state.service(), &agent, body, query.wait).await? {
        Screened::InScope {
            logged,
            unknown_keys,
        } => {
            let status = if logged.accepted {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            let answer = InScopeAnswer {
                decision: &logged.body,
                applicable: true,
                unknown_keys,
            };
            Ok((status, Json(answer)).into_response())
        }
        Screened::Logged(logged) => decision_response(&logged),
    }
}

/// Answer of `POST /v1/screen` for an in-scope action: the logged `in-scope` screen (a
/// decision answer) plus `applicable: true` and the action keys that are not policy variables.
#[derive(serde::Serialize)]
struct InScopeAnswer<'a> {
    #[serde(flatten)]
    decision: &'a DecisionResponse,
    applicable: bool,
    unknown_keys: Vec<String>,
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
