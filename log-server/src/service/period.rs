//! Periods and record streams for evidence packages (spec `evidence-package.md` §3, §5): map a
//! time range to log indices, and give the `records.jsonl` line of an index.
//!
//! The mapping is a binary search over entry times, which is valid because entry times are
//! non-decreasing in log order (spec `evidence-package.md` §3.1). Only entries covered by the
//! latest published checkpoint are considered.

use verdict_core::package::{canonical_json, entry_time_ms};
use verdict_core::LeafIndex;

use super::policies::PolicyRegistry;
use super::ServiceError;
use crate::log::Log;

/// Most records one `GET /v1/private/records` request streams; the exporter pages.
pub const MAX_RECORDS_PER_REQUEST: u64 = 100_000;

/// Lines of `GET /v1/private/records` produced per blocking task ([`record_lines`]): about
/// 256 KiB of text, so memory stays bounded and the task overhead is spread over many lines.
pub const RECORDS_CHUNK: u64 = 512;

/// Answer of `GET /v1/private/period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PeriodAnswer {
    /// First index whose entry time is `>= from` (or `tree_size`).
    pub start: u64,
    /// First index whose entry time is `>= to` (or `tree_size`).
    pub end: u64,
    /// Size of the latest published checkpoint the search covered.
    pub tree_size: u64,
}

/// The published tree size.
pub fn published_size(log: &Log) -> u64 {
    log.latest_checkpoint().map_or(0, |cp| cp.checkpoint.size.0)
}

/// Entry time of `index` (spec `evidence-package.md` §3).
///
/// # Errors
/// [`ServiceError::Internal`] when the entry is missing or is neither a receipt nor a policy
/// statement.
fn time_at(log: &Log, index: u64) -> Result<i128, ServiceError> {
    let entry = log
        .entry(LeafIndex(index))
        .map_err(ServiceError::internal)?
        .ok_or_else(|| ServiceError::internal(format!("entry {index} missing")))?;
    entry_time_ms(&entry)
        .map(i128::from)
        .ok_or_else(|| ServiceError::internal(format!("entry {index} has no time")))
}

/// First index in `[0, size)` whose time is `>= t_ms`, or `size`.
fn first_at_or_after(log: &Log, size: u64, t_ms: i128) -> Result<u64, ServiceError> {
    let (mut lo, mut hi) = (0u64, size);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if time_at(log, mid)? < t_ms {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// Map `[from_ms, to_ms)` to `[start, end)` over the published log (spec §3).
///
/// # Errors
/// [`ServiceError::BadRequest`] when `from_ms > to_ms`; [`ServiceError::Internal`] on store
/// errors.
pub fn period(log: &Log, from_ms: i64, to_ms: i64) -> Result<PeriodAnswer, ServiceError> {
    if from_ms > to_ms {
        return Err(ServiceError::BadRequest {
            detail: "from is after to".to_owned(),
        });
    }
    let size = published_size(log);
    let start = first_at_or_after(log, size, i128::from(from_ms))?;
    let end = first_at_or_after(log, size, i128::from(to_ms))?;
    Ok(PeriodAnswer {
        start,
        end,
        tree_size: size,
    })
}

/// The `records.jsonl` lines of `[from, to)` ([`record_line`]), concatenated; on the first
/// failure, the lines before it and the failing index with its error.
pub fn record_lines(
    log: &Log,
    policies: &PolicyRegistry,
    from: u64,
    to: u64,
) -> (String, Option<(u64, ServiceError)>) {
    let mut out = String::new();
    for index in from..to {
        match record_line(log, policies, index) {
            Ok(line) => out.push_str(&line),
            Err(e) => return (out, Some((index, e))),
        }
    }
    (out, None)
}

/// The `records.jsonl` line of `index`, with its newline (spec `evidence-package.md` §5):
/// `{"index":i,"record":R}` in canonical JSON, `R` the private record as
/// `GET /v1/private/actions/{index}` serves it, or `null` for a policy statement.
///
/// # Errors
/// [`ServiceError::Internal`] when a receipt has no private record or on store errors.
pub fn record_line(
    log: &Log,
    policies: &PolicyRegistry,
    index: u64,
) -> Result<String, ServiceError> {
    let record = match super::private::record(log, policies, LeafIndex(index)) {
        Ok(r) => r,
        Err(ServiceError::NotFound { .. }) => {
            let entry = log
                .entry(LeafIndex(index))
                .map_err(ServiceError::internal)?
                .ok_or_else(|| ServiceError::internal(format!("entry {index} missing")))?;
            if verdict_core::statement::entry_type(&entry)
                != verdict_core::statement::EntryType::PolicyStatement
            {
                return Err(ServiceError::internal(format!(
                    "entry {index} is a receipt without a private record"
                )));
            }
            serde_json::Value::Null
        }
        Err(e) => return Err(e),
    };
    let mut line = canonical_json(&serde_json::json!({ "index": index, "record": record }));
    line.push('\n');
    Ok(line)
}
