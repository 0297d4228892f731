//! `GET /v1/private/actions/{index}`: the raw action, salt and request id of a logged decision,
//! for auditors (auditor token only). Only this endpoint reads the private store.

use axum::extract::{Path, State};
use axum::Json;
use verdict_core::LeafIndex;

use crate::auth::AuditorAuth;
use crate::error::ApiError;
use crate::routes::parse_index;
use crate::service::private;
use crate::AppState;

/// `GET /v1/private/actions/{index}`: `{index, record}` where `record` is the private record
/// stored with the entry: `{action, salt, request_id, policy}`.
pub async fn action(
    _auth: AuditorAuth,
    State(state): State<AppState>,
    Path(index): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let index = parse_index(&index)?;
    let record = private::record(&state.log, LeafIndex(index))?;
    Ok(Json(
        serde_json::json!({ "index": index, "record": record }),
    ))
}
