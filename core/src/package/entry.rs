//! The time of a log entry (spec `evidence-package.md` §3): a receipt's `time_ms` or a policy
//! statement's registration `time_ms`, read without verifying the signature (the server maps
//! times to indices with it; verifiers read it from verified entries).

use crate::receipt::Receipt;
use crate::statement::{entry_type, EntryType, PolicyStatement};

/// The entry time in milliseconds since the Unix epoch, or `None` when the entry is neither a
/// well-formed receipt nor a well-formed policy statement.
pub fn entry_time_ms(entry: &[u8]) -> Option<u64> {
    match entry_type(entry) {
        EntryType::PolicyStatement => PolicyStatement::decode(entry)
            .ok()
            .map(|s| s.record.time_ms),
        EntryType::Receipt => Receipt::decode(entry).ok().map(|r| r.statement.time_ms),
        EntryType::Unknown => None,
    }
}
