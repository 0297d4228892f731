//! `verdict audit export` and `verdict audit verify-package`: the auditor's evidence package
//! (spec `spec/evidence-package.md`), read with `verdict_core::package`.
//!
//! - [`verify`]: the offline checks of spec §9, with no policy engine;
//! - [`export`]: fetch a period from a live log (auditor token), check what was fetched, and
//!   write the package (directory or tar) atomically; `records`: its records stream.

pub mod export;
mod records;
pub mod verify;

/// Paths of the fixed files (spec §1).
pub mod paths {
    /// The end checkpoint.
    pub const CHECKPOINT: &str = "checkpoint";
    /// The optional start checkpoint.
    pub const START_CHECKPOINT: &str = "start-checkpoint";
    /// Consistency proof start → end.
    pub const CONSISTENCY: &str = "consistency";
    /// Private records.
    pub const RECORDS: &str = "records.jsonl";
    /// The verification summary.
    pub const SUMMARY: &str = "summary.json";
    /// A policy file.
    pub fn policy(hex: &str) -> String {
        format!("policies/{hex}.json")
    }
    /// A policy statement's proof bundle.
    pub fn policy_bundle(hex: &str) -> String {
        format!("policies/{hex}.bundle")
    }
}
