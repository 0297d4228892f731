//! Public read endpoints: `GET /checkpoint` and `GET /tile/...` exactly per C2SP tlog-tiles
//! (spec `spec/tiles.md`), `GET /v1/keys`, `GET /health`, `GET /openapi.json`
//! (`GET /metrics` is in [`super::metrics`]).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use verdict_core::note::Verifier;
use verdict_core::tile::Tile;

use crate::error::ApiError;
use crate::log::SignedCheckpoint;
use crate::metrics::LogGauges;
use crate::AppState;

/// `Cache-Control` of tiles and entry bundles, full and partial: they never change once written
/// (C2SP tlog-tiles).
pub const TILE_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// Tree size of a signed checkpoint.
pub(crate) fn checkpoint_size(cp: &SignedCheckpoint) -> u64 {
    cp.checkpoint.size.0
}

/// Time since a checkpoint was signed.
pub(crate) fn checkpoint_age(cp: &SignedCheckpoint) -> Duration {
    cp.signed_at.elapsed()
}

/// Gauges for `/metrics` ([`super::metrics`]).
pub(crate) fn gauges(state: &AppState) -> LogGauges {
    let latest = state.log.latest_checkpoint();
    LogGauges {
        tree_size: latest.as_ref().map_or(0, checkpoint_size),
        pending: u64::try_from(state.log.pending()).unwrap_or(u64::MAX),
        checkpoint_age_secs: latest
            .as_ref()
            .map_or(0.0, |c| checkpoint_age(c).as_secs_f64()),
    }
}

/// `GET /checkpoint`: the latest signed checkpoint note, with the cosignature lines of the
/// witnesses that cosigned exactly it (spec `spec/witness.md` §9.2), cached for at most a few
/// seconds.
pub async fn checkpoint(State(state): State<AppState>) -> Result<Response, ApiError> {
    let cp = state.log.latest_checkpoint().ok_or(ApiError::Unavailable {
        reason: "no checkpoint signed yet",
    })?;
    let cache = format!("public, max-age={}", state.config.checkpoint_max_age_secs);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_str(&cache).map_err(ApiError::internal)?,
            ),
        ],
        state.witnesses.decorate(&cp),
    )
        .into_response())
}

/// `GET /tile/<L>/<N>[.p/<W>]` and `GET /tile/entries/<N>[.p/<W>]`.
pub async fn tile(
    State(state): State<AppState>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let tile = Tile::parse_path(&format!("tile/{path}")).map_err(|e| ApiError::BadTilePath {
        detail: e.reason.to_owned(),
    })?;
    let bytes = state
        .log
        .read_tile(tile)
        .map_err(ApiError::from_log)?
        .ok_or_else(|| ApiError::NotFound {
            what: format!("tile {}", tile.path()),
        })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, TILE_CACHE_CONTROL),
        ],
        bytes,
    )
        .into_response())
}

/// One key in `GET /v1/keys`.
#[derive(Debug, Serialize)]
pub struct KeyInfo {
    /// Key name.
    pub name: String,
    /// Key id (hex).
    pub key_id: String,
    /// Signed-note verifier key string.
    pub verifier_key: String,
}

impl KeyInfo {
    fn of(v: &Verifier) -> Self {
        Self {
            name: v.name().to_owned(),
            key_id: v.key_id().to_string(),
            verifier_key: v.to_string(),
        }
    }
}

/// Body of `GET /v1/keys`.
#[derive(Debug, Serialize)]
pub struct KeysResponse {
    /// The log origin (checkpoint origin line).
    pub origin: String,
    /// The log key.
    pub log: KeyInfo,
    /// Checker keys that sign receipts.
    pub checkers: Vec<KeyInfo>,
}

/// `GET /v1/keys`: the log verifier key and the checker keys.
pub async fn keys(State(state): State<AppState>) -> Json<KeysResponse> {
    Json(KeysResponse {
        origin: state.log_verifier.name().to_owned(),
        log: KeyInfo::of(&state.log_verifier),
        checkers: vec![KeyInfo::of(&state.checker_verifier)],
    })
}

/// Body of `GET /health`.
#[derive(Debug, Serialize)]
pub struct Health {
    /// Always `ok` (otherwise the answer is a 503 error).
    pub status: &'static str,
    /// Size of the latest checkpoint.
    pub tree_size: u64,
    /// Seconds since it was signed.
    pub checkpoint_age_secs: f64,
    /// Entries sequenced but not yet integrated.
    pub pending: usize,
}

/// `GET /health`: 200 only while a checkpoint signed within `health_max_age_secs` exists, the
/// log's writes succeed (else 503 `storage_unavailable`), no read has found damaged stored
/// data since start (else 503 `integrity`) and no witness alarm was raised (else 503
/// `witness_alarm`, spec `spec/witness.md` §9.3).
pub async fn health(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    if let Some(detail) = state.witnesses.alarm() {
        return Err(ApiError::WitnessAlarm { detail });
    }
    if let Some(problem) = state.log.integrity_problem() {
        return Err(ApiError::Integrity { detail: problem });
    }
    if let Some(problem) = state.log.storage_problem() {
        tracing::warn!(problem = %problem, "health: log storage is failing: {problem}");
        return Err(ApiError::StorageUnavailable {
            retry_after_secs: crate::error::STORAGE_RETRY_AFTER_SECS,
        });
    }
    let cp = state.log.latest_checkpoint().ok_or(ApiError::Unavailable {
        reason: "no checkpoint signed yet",
    })?;
    let age = checkpoint_age(&cp);
    if age > Duration::from_secs(state.config.health_max_age_secs) {
        return Err(ApiError::Unavailable {
            reason: "latest checkpoint is stale",
        });
    }
    Ok(Json(Health {
        status: "ok",
        tree_size: checkpoint_size(&cp),
        checkpoint_age_secs: age.as_secs_f64(),
        pending: state.log.pending(),
    }))
}

/// `GET /openapi.json`.
pub async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}
