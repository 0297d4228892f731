//! Public proof endpoints: `GET /v1/proof/inclusion`, `GET /v1/proof/consistency` (RFC 9162
//! §2.1.3, §2.1.4, built from stored tiles) and `GET /v1/bundle/{index}` (C2SP tlog-proof,
//! spec `spec/proof-bundle.md`).

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use verdict_core::{LeafIndex, TreeSize};

use crate::error::{ApiError, ApiQuery};
use crate::routes::parse_index;
use crate::routes::public::checkpoint_size;
use crate::AppState;

/// Query of `GET /v1/proof/inclusion`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionQuery {
    /// Leaf index.
    pub index: u64,
    /// Tree size (at most the latest checkpoint's size).
    pub size: u64,
}

/// Query of `GET /v1/proof/consistency`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    /// Old tree size (at least 1).
    pub from: u64,
    /// New tree size (at most the latest checkpoint's size).
    pub to: u64,
}

/// A proof: hashes in base64, in RFC 9162 order.
#[derive(Debug, Serialize)]
pub struct ProofResponse {
    /// Leaf index (inclusion) or old size (consistency).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// Old size (consistency).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    /// Tree size the proof is against.
    pub size: u64,
    /// The proof hashes (standard base64).
    pub proof: Vec<String>,
}

fn latest_size(state: &AppState) -> u64 {
    state
        .log
        .latest_checkpoint()
        .as_ref()
        .map_or(0, checkpoint_size)
}

fn not_found(what: String) -> ApiError {
    ApiError::NotFound { what }
}

fn bad(detail: &str) -> ApiError {
    ApiError::BadQuery {
        detail: detail.to_owned(),
    }
}

/// `GET /v1/proof/inclusion?index=&size=`.
pub async fn inclusion(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<InclusionQuery>,
) -> Result<Json<ProofResponse>, ApiError> {
    // A well-formed request for a proof the log does not have (a tree it has not signed, a leaf
    // outside the tree) is 404, as for a tile beyond the tree: the parameters are valid, the
    // proof does not exist (yet).
    if q.size > latest_size(&state) {
        return Err(not_found(format!("a signed tree of size {}", q.size)));
    }
    if q.index >= q.size {
        return Err(not_found(format!(
            "leaf {} in a tree of size {}",
            q.index, q.size
        )));
    }
    let proof = state
        .log
        .inclusion_proof(LeafIndex(q.index), TreeSize(q.size))
        .map_err(ApiError::from_log)?;
    Ok(Json(ProofResponse {
        index: Some(q.index),
        from: None,
        size: q.size,
        proof: proof.iter().map(|h| h.to_base64()).collect(),
    }))
}

/// `GET /v1/proof/consistency?from=&to=`.
pub async fn consistency(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ConsistencyQuery>,
) -> Result<Json<ProofResponse>, ApiError> {
    if q.from == 0 {
        return Err(bad("from must be at least 1"));
    }
    if q.to > latest_size(&state) {
        return Err(not_found(format!("a signed tree of size {}", q.to)));
    }
    if q.from > q.to {
        return Err(not_found(format!(
            "a consistency proof from size {} down to {}",
            q.from, q.to
        )));
    }
    let proof = state
        .log
        .consistency_proof(TreeSize(q.from), TreeSize(q.to))
        .map_err(ApiError::from_log)?;
    Ok(Json(ProofResponse {
        index: None,
        from: Some(q.from),
        size: q.to,
        proof: proof.iter().map(|h| h.to_base64()).collect(),
    }))
}

/// `GET /v1/bundle/{index}`: the tlog-proof of a logged receipt against the latest checkpoint;
/// with a witness quorum configured, against the latest checkpoint cosigned by the quorum, with
/// its cosignature lines (spec `spec/witness.md` §9.2), or 503 `not_witnessed` while none covers
/// the entry.
pub async fn bundle(
    State(state): State<AppState>,
    Path(index): Path<String>,
) -> Result<Response, ApiError> {
    let index = parse_index(&index)?;
    if index >= latest_size(&state) {
        return Err(ApiError::NotFound {
            what: format!("entry {index}"),
        });
    }
    let bundle = if state.witnesses.quorum() == 0 {
        state
            .log
            .bundle(LeafIndex(index))
            .map_err(ApiError::from_log)?
    } else {
        let cosigned = state
            .witnesses
            .cosigned()
            .filter(|c| c.checkpoint.size.0 > index)
            .ok_or(ApiError::NotWitnessed {
                reason: "no checkpoint cosigned by the witness quorum covers this entry yet",
            })?;
        state
            .log
            .bundle_against(LeafIndex(index), cosigned.checkpoint.size, cosigned.note)
            .map_err(ApiError::from_log)?
    };
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        bundle.encode(),
    )
        .into_response())
}
