//! HTTP interface of the witness (c2sp tlog-witness). Spec: `spec/witness.md` §5, §7.
//!
//! - `POST /add-checkpoint`: `200` with the cosignature line(s); `409` with the witness's size
//!   (`text/x.tlog.size`) when `old` is not its size, or when `old` equals the checkpoint's size
//!   but the root differs from the one it cosigned; `400`, `403`, `404`, `422` with a JSON `{"error": "..."}` body; `500`
//!   with a generic message when the state cannot be read or written.
//! - `GET /<origin hash>/checkpoint`: the latest checkpoint the witness cosigned for that log,
//!   with the log's signature and the witness's cosignature; `404` if none.
//! - `GET /`: the witness's verifier key, one line.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::protocol::{cosignature_body, size_body, MAX_REQUEST_BODY, SIZE_CONTENT_TYPE};
use crate::witness::{AddError, Witness};

/// Build the router over a shared witness.
pub fn app(witness: Arc<Witness>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .route("/{origin_hash}/checkpoint", get(checkpoint))
        .route("/", get(vkey))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY))
        .with_state(witness)
}

/// Seconds since the Unix epoch (at least 1).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_secs().max(1))
}

/// The one place that turns errors into responses.
#[derive(Debug)]
enum ApiError {
    Add(AddError),
    Internal(String),
    NotFound,
}

fn json_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Add(AddError::Conflict { witness, .. }) => (
                StatusCode::CONFLICT,
                [(header::CONTENT_TYPE, SIZE_CONTENT_TYPE)],
                size_body(witness),
            )
                .into_response(),
            // Same size, other root: 409 too (c2sp tlog-witness), stating the witness's size.
            ApiError::Add(AddError::RootMismatch {
                size,
                cosigned,
                root,
            }) => {
                tracing::warn!(
                    tree.size = size.0,
                    "add-checkpoint refused: fork at size {size}: cosigned root {cosigned}, \
                     submitted root {root}"
                );
                (
                    StatusCode::CONFLICT,
                    [(header::CONTENT_TYPE, SIZE_CONTENT_TYPE)],
                    size_body(size),
                )
                    .into_response()
            }
            ApiError::Add(AddError::State(e)) => {
                tracing::error!("state error: {e}");
                json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
            ApiError::Add(e) => {
                let status =
                    StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                tracing::info!(status = status.as_u16(), "add-checkpoint refused: {e}");
                json_error(status, &e.to_string())
            }
            ApiError::Internal(e) => {
                tracing::error!("internal error: {e}");
                json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
            ApiError::NotFound => json_error(StatusCode::NOT_FOUND, "no checkpoint for this log"),
        }
    }
}

async fn add_checkpoint(
    State(witness): State<Arc<Witness>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let cosigned = tokio::task::spawn_blocking(move || witness.add_checkpoint(&body, now()))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(ApiError::Add)?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        cosignature_body(&cosigned.cosignatures),
    )
        .into_response())
}

async fn checkpoint(
    State(witness): State<Arc<Witness>>,
    Path(origin_hash): Path<String>,
) -> Result<Response, ApiError> {
    let note = tokio::task::spawn_blocking(move || witness.store().note_by_hash(&origin_hash))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or(ApiError::NotFound)?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        note,
    )
        .into_response())
}

async fn vkey(State(witness): State<Arc<Witness>>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", witness.cosigner().verifier()),
    )
        .into_response()
}
