//! The auditor's export endpoints (auditor token only; spec `evidence-package.md` §3, §5):
//! - `GET /v1/private/period?from=RFC3339&to=RFC3339`: the log indices `[start, end)` of a time
//!   range;
//! - `GET /v1/private/records?start=a&end=b`: the `records.jsonl` lines of `[a, b)`, streamed
//!   (`application/x-ndjson`), at most 100,000 per request.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use tokio::io::AsyncWriteExt as _;

use crate::auth::AuditorAuth;
use crate::error::{ApiError, ApiQuery};
use crate::service::period::{self as service, PeriodAnswer, MAX_RECORDS_PER_REQUEST};
use crate::AppState;

/// Query of `GET /v1/private/period`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodQuery {
    /// Start of the range (RFC 3339, inclusive).
    pub from: String,
    /// End of the range (RFC 3339, exclusive).
    pub to: String,
}

/// Query of `GET /v1/private/records`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsQuery {
    /// First index.
    pub start: u64,
    /// End index (exclusive).
    pub end: u64,
}

fn parse_time(name: &str, text: &str) -> Result<i64, ApiError> {
    let ts: jiff::Timestamp = text.parse().map_err(|_| ApiError::BadRequest {
        detail: format!(
            "{name} must be an RFC 3339 time with an offset, e.g. 2026-11-01T00:00:00Z"
        ),
    })?;
    Ok(ts.as_millisecond())
}

/// `GET /v1/private/period`.
pub async fn period(
    _auth: AuditorAuth,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PeriodQuery>,
) -> Result<Json<PeriodAnswer>, ApiError> {
    let from = parse_time("from", &query.from)?;
    let to = parse_time("to", &query.to)?;
    let log_state = state.clone();
    let answer = tokio::task::spawn_blocking(move || service::period(&log_state.log, from, to))
        .await
        .map_err(ApiError::internal)??;
    Ok(Json(answer))
}

/// `GET /v1/private/records`: the lines are produced by a blocking task into a 64 KiB pipe and
/// streamed from it, so memory stays bounded whatever the range. A store error mid-stream ends
/// the body early; the exporter counts lines and fails closed.
pub async fn records(
    _auth: AuditorAuth,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<RecordsQuery>,
) -> Result<Response, ApiError> {
    let size = service::published_size(&state.log);
    if query.start > query.end || query.end > size {
        return Err(ApiError::BadRequest {
            detail: format!("need start <= end <= tree size {size}"),
        });
    }
    if query.end - query.start > MAX_RECORDS_PER_REQUEST {
        return Err(ApiError::BadRequest {
            detail: format!("at most {MAX_RECORDS_PER_REQUEST} records per request"),
        });
    }
    // The first line is produced before answering, so that a broken store is a 500, not an
    // empty 200.
    let first = if query.start < query.end {
        let s = state.clone();
        let start = query.start;
        Some(
            tokio::task::spawn_blocking(move || service::record_line(&s.log, &s.policies, start))
                .await
                .map_err(ApiError::internal)??,
        )
    } else {
        None
    };
    let (mut writer, reader) = tokio::io::duplex(64 * 1024);
    let (start, end) = (query.start, query.end);
    tokio::spawn(async move {
        if let Some(line) = first {
            if writer.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
        // The rest in chunks of `RECORDS_CHUNK` lines per blocking task: one task per line
        // cost more than the lines themselves (issue 16, 1M-entry export).
        let mut from = start.saturating_add(1);
        while from < end {
            let to = end.min(from.saturating_add(service::RECORDS_CHUNK));
            let s = state.clone();
            let chunk = tokio::task::spawn_blocking(move || {
                service::record_lines(&s.log, &s.policies, from, to)
            })
            .await;
            match chunk {
                Ok((lines, failed)) => {
                    if writer.write_all(lines.as_bytes()).await.is_err() {
                        return;
                    }
                    if let Some((index, e)) = failed {
                        tracing::error!(leaf.index = index, error = ?e, "records stream stopped at {index}");
                        return;
                    }
                }
                Err(e) => {
                    tracing::error!(leaf.index = from, error = %e, "records stream task failed at {from}");
                    return;
                }
            }
            from = to;
        }
        let _ = writer.shutdown().await;
    });
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(reader));
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        )],
        body,
    )
        .into_response())
}

/// OpenAPI paths of the export endpoints (merged into `openapi.rs`).
pub fn openapi_paths() -> serde_json::Value {
    let err = |d: &str| serde_json::json!({ "description": d, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    let u64s = serde_json::json!({ "type": "integer", "format": "uint64", "minimum": 0, "maximum": u64::MAX });
    let common = |bad: &str| {
        serde_json::json!({
            "400": err(bad),
            "401": err("Missing, invalid or expired token (error `unauthorized` or `token_expired`)."),
            "403": err("Not the auditor token.")
        })
    };
    let mut period_responses = common(
        "A time that is not RFC 3339 with an offset, from after to, or another query parameter.",
    );
    if let Some(o) = period_responses.as_object_mut() {
        o.insert("200".to_owned(), serde_json::json!({
            "description": "The indices [start, end) of the entries whose time is in [from, to), in the latest published checkpoint of size tree_size.",
            "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false,
                "required": ["start", "end", "tree_size"],
                "properties": { "start": u64s, "end": u64s, "tree_size": u64s } } } }
        }));
    }
    let mut records_responses = common(
        "Not start <= end <= tree size, more than 100000 records, or another query parameter.",
    );
    if let Some(o) = records_responses.as_object_mut() {
        o.insert("200".to_owned(), serde_json::json!({
            "description": "One line per index of [start, end): {\"index\":i,\"record\":R} in canonical JSON (spec evidence-package.md section 5), R the private record or null for a policy statement.",
            "content": { "application/x-ndjson": { "schema": { "type": "string" } } }
        }));
    }
    let time = |name: &str, d: &str| serde_json::json!({ "name": name, "in": "query", "required": true, "description": d, "schema": { "type": "string", "format": "date-time" } });
    serde_json::json!({
        "/v1/private/period": { "get": {
            "summary": "Map a time range to log indices (auditor token; spec evidence-package.md section 3).",
            "security": [{ "auditorToken": [] }],
            "parameters": [
                time("from", "Start (inclusive), RFC 3339 with an offset."),
                time("to", "End (exclusive), RFC 3339 with an offset.")
            ],
            "responses": period_responses
        }},
        "/v1/private/records": { "get": {
            "summary": "Stream the private records of [start, end) as records.jsonl lines (auditor token; spec evidence-package.md section 5).",
            "security": [{ "auditorToken": [] }],
            "parameters": [
                { "name": "start", "in": "query", "required": true, "description": "First index.", "schema": u64s },
                { "name": "end", "in": "query", "required": true, "description": "End index (exclusive), at most start + 100000 and the tree size.", "schema": u64s }
            ],
            "responses": records_responses
        }}
    })
}
