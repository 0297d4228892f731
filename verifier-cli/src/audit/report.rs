//! What `verdict audit` established: the report printed as one human summary or as `--json`,
//! and its exit code (`docs/verifying.md` "Exit codes").

use std::collections::BTreeMap;

use crate::error::{Check, EXIT_FAILED, EXIT_VALID};
use crate::names::{decision_name, kind_name};

/// At most this many failures are listed in a report (all are counted).
pub const MAX_LISTED_FAILURES: usize = 100;

/// The overall result of an audit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditResult {
    /// Every sampled entry verified (exit 0).
    Valid,
    /// At least one entry failed a check: the log served bad evidence (exit 1).
    Failed,
    /// No entry failed, but some could not be checked because a tile or entry bundle could not
    /// be fetched (exit 1). The unchecked indices are listed.
    Incomplete,
}

impl AuditResult {
    /// `valid`, `failed` or `incomplete`.
    pub fn name(self) -> &'static str {
        match self {
            AuditResult::Valid => "valid",
            AuditResult::Failed => "failed",
            AuditResult::Incomplete => "incomplete",
        }
    }
}

/// One failed entry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SampleFailure {
    /// Leaf index.
    pub index: u64,
    /// The failed check.
    pub check: Check,
    /// What it found.
    pub reason: String,
}

/// One sampled entry that could not be checked.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Unchecked {
    /// Leaf index.
    pub index: u64,
    /// Why: the tile or bundle that could not be fetched, and the error.
    pub reason: String,
}

/// Decision counts of the verified receipts.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// By decision (`allow`, `deny`, `escalate`, `not-applicable`).
    pub by_decision: BTreeMap<String, u64>,
    /// By kind (`check`, `screen`).
    pub by_kind: BTreeMap<String, u64>,
    /// By policy commitment (hex) and version.
    pub by_policy: BTreeMap<String, u64>,
}

impl Counts {
    /// Count one verified receipt.
    pub fn add(&mut self, receipt: &verdict_core::receipt::VerifiedReceipt) {
        let s = receipt.statement();
        *self
            .by_decision
            .entry(decision_name(s.decision).to_owned())
            .or_default() += 1;
        *self
            .by_kind
            .entry(kind_name(s.kind).to_owned())
            .or_default() += 1;
        *self
            .by_policy
            .entry(format!(
                "{} ({})",
                s.policy_commitment.to_hex(),
                s.policy_version
            ))
            .or_default() += 1;
    }
}

/// What `verdict audit` established.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AuditReport {
    /// `valid`, `failed` or `incomplete`.
    pub result: AuditResult,
    /// Log URL.
    pub log: String,
    /// Log origin.
    pub origin: String,
    /// The log key that verified the checkpoint.
    pub log_key: String,
    /// Tree size audited: the `--until` checkpoint's, or the live one's.
    pub tree_size: u64,
    /// Root (base64) of the audited checkpoint.
    pub root: String,
    /// Size of the live checkpoint (equal to `tree_size` unless `--until` pinned an older end).
    pub live_size: u64,
    /// Size of the previously verified checkpoint from `--state`, if any.
    pub previous_size: Option<u64>,
    /// Size of the `--since` checkpoint, if any.
    pub since_size: Option<u64>,
    /// Size of the `--until` checkpoint, if any.
    pub until_size: Option<u64>,
    /// `"sample"` or `"full"`.
    pub mode: &'static str,
    /// The audited range of leaf indices `[start, end)`.
    pub range: [u64; 2],
    /// The seed used (reuse it to reproduce the sample).
    pub seed: Option<String>,
    /// The sampled leaf indices, ascending (sample mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampled: Option<Vec<u64>>,
    /// Entries checked: verified plus failed.
    pub checked: u64,
    /// Entries whose inclusion and receipt signature verified.
    pub verified: u64,
    /// Failures (at most [`MAX_LISTED_FAILURES`] listed).
    pub failures: Vec<SampleFailure>,
    /// Total number of failures.
    pub failure_count: u64,
    /// Sampled entries that could not be checked, all listed.
    pub unchecked: Vec<Unchecked>,
    /// Counts of verified receipts.
    pub counts: Counts,
    /// Policy versions registered in the log (full mode): `<index>: <name> <version> <commitment>`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policy_versions: Vec<String>,
    /// A note about witnesses, when the policy lists any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witnesses: Option<String>,
}

impl AuditReport {
    /// Whether any entry failed.
    pub fn failed(&self) -> bool {
        self.failure_count > 0
    }

    /// Set [`AuditReport::result`] from the failures and unchecked entries, and cut the failure
    /// list to [`MAX_LISTED_FAILURES`].
    pub fn conclude(&mut self) {
        self.failures.truncate(MAX_LISTED_FAILURES);
        self.result = if self.failed() {
            AuditResult::Failed
        } else if !self.unchecked.is_empty() {
            AuditResult::Incomplete
        } else {
            AuditResult::Valid
        };
    }

    /// The documented exit code: 0 valid, 1 failed or incomplete.
    pub fn exit_code(&self) -> u8 {
        match self.result {
            AuditResult::Valid => EXIT_VALID,
            AuditResult::Failed | AuditResult::Incomplete => EXIT_FAILED,
        }
    }

    /// A short human report: one summary line, then counts, then failures and unchecked entries.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let head = match self.result {
            AuditResult::Valid => "OK",
            AuditResult::Failed => "FAILED",
            AuditResult::Incomplete => "INCOMPLETE",
        };
        let prev = match self.previous_size {
            Some(p) => format!("; consistent with the previously verified size {p}"),
            None => String::new(),
        };
        let live = if self.live_size == self.tree_size {
            String::new()
        } else {
            format!(
                " (pinned by --until; live size {} extends it)",
                self.live_size
            )
        };
        let unchecked = if self.unchecked.is_empty() {
            String::new()
        } else {
            format!("; {} could not be checked", self.unchecked.len())
        };
        out.push_str(&format!(
            "{head}: audited {} size {}{live} (log key {}){prev}: {} of {} {} entries in [{}, {}) \
             verified (inclusion from tiles + receipt signature){unchecked}{}\n",
            self.origin,
            self.tree_size,
            self.log_key,
            self.verified,
            self.checked + self.unchecked.len() as u64,
            self.mode,
            self.range[0],
            self.range[1],
            self.seed
                .as_ref()
                .map(|s| format!(", seed {s}"))
                .unwrap_or_default(),
        ));
        for (title, map) in [
            ("decision", &self.counts.by_decision),
            ("kind", &self.counts.by_kind),
            ("policy", &self.counts.by_policy),
        ] {
            for (k, v) in map {
                out.push_str(&format!("  {title} {k}: {v}\n"));
            }
        }
        if let Some(w) = &self.witnesses {
            out.push_str(&format!("  note: {w}\n"));
        }
        for f in &self.failures {
            out.push_str(&format!(
                "  FAILED entry {}: check {} failed: {}\n",
                f.index, f.check, f.reason
            ));
        }
        if self.failure_count > self.failures.len() as u64 {
            out.push_str(&format!(
                "  ... and {} more failures\n",
                self.failure_count - self.failures.len() as u64
            ));
        }
        if !self.unchecked.is_empty() {
            let indices: Vec<String> = self.unchecked.iter().map(|u| u.index.to_string()).collect();
            out.push_str(&format!(
                "  NOT CHECKED ({}): entries {}\n",
                self.unchecked.len(),
                indices.join(", ")
            ));
            for u in self.unchecked.iter().take(MAX_LISTED_FAILURES) {
                out.push_str(&format!("  not checked entry {}: {}\n", u.index, u.reason));
            }
        }
        out
    }
}
