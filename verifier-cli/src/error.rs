//! The outcome of a command, mapped to the documented exit codes.
//!
//! | exit | meaning |
//! |------|---------|
//! | 0 | every check passed |
//! | 1 | a verification check failed ([`CliError::Failed`]); for `audit` also `incomplete`: some sampled entries could not be checked, and are listed ([`crate::audit::AuditResult::Incomplete`]) |
//! | 2 | usage, input or network error: nothing was verified ([`CliError::Usage`], [`CliError::Input`], [`CliError::Network`]) |
//!
//! A malformed bundle, receipt or checkpoint is a *verification failure* (exit 1): the evidence
//! handed to the verifier is bad. A file that cannot be read, a malformed key given on the
//! command line or an unreachable server is an *error* (exit 2): nothing could be checked.

use std::fmt;

/// Exit code: every check passed.
pub const EXIT_VALID: u8 = 0;
/// Exit code: a verification check failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: usage, input or network error.
pub const EXIT_ERROR: u8 = 2;

/// Which check failed. The `snake_case` name is stable and appears in `--json` output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// The proof bundle did not parse (truncated, trailing data, bad field, over the size limit).
    BundleFormat,
    /// The checkpoint did not parse or its signature by the log key did not verify.
    CheckpointSignature,
    /// The entry is not included in the checkpoint's tree (bad index, proof hash, size or root).
    Inclusion,
    /// The receipt did not decode (malformed COSE or statement, trailing data).
    ReceiptFormat,
    /// The receipt's COSE signature did not verify with a trusted checker key.
    ReceiptSignature,
    /// The given action and salt do not match the receipt's action commitment.
    ActionCommitment,
    /// A consistency proof between two checkpoints did not verify: the log forked.
    Consistency,
    /// The log's tree is smaller than one already verified: a rollback.
    Rollback,
    /// Two checkpoints of the same size have different roots: a fork.
    Fork,
    /// A tile or entry bundle served by the log is malformed or does not match the root.
    Tiles,
    /// A cosignature by a witness the policy lists is invalid or malformed.
    Cosignature,
    /// The checkpoint lacks the witness cosignatures the policy's quorum requires.
    WitnessQuorum,
    /// The receipt was made under a policy other than the pinned ones (`--policy-commitment`).
    PolicyCommitment,
    /// A receipt's policy commitment has no policy statement at a lower index of the log, or a
    /// policy statement does not verify (spec `policy-statement.md` §7).
    PolicyRegistration,
    /// A selective rule disclosure (`verify --disclosure`) failed one of its checks (spec
    /// `disclosure.md` §4; the reason names the sub-check).
    Disclosure,
    /// An evidence package's manifest is malformed, lists a file that is missing or of another
    /// size or SHA-256, or the package holds an unlisted file (spec `evidence-package.md` §2).
    Manifest,
    /// An evidence package's file set is not the one its period implies (spec
    /// `evidence-package.md` §1, §4.1, §6).
    Layout,
    /// Entry times decrease, or do not place the entries in the package's period (spec
    /// `evidence-package.md` §3).
    EntryTime,
    /// `records.jsonl` of a package is malformed or disagrees with the receipts (spec
    /// `evidence-package.md` §5).
    Records,
    /// An approval in a record does not verify, or the approvers differ from the receipt's
    /// (spec `approval.md` §5).
    Approval,
    /// A package's `summary.json` differs from the summary recomputed from it (spec
    /// `evidence-package.md` §7).
    Summary,
}

impl Check {
    /// The stable `snake_case` name.
    pub fn name(self) -> &'static str {
        match self {
            Check::BundleFormat => "bundle_format",
            Check::CheckpointSignature => "checkpoint_signature",
            Check::Inclusion => "inclusion",
            Check::ReceiptFormat => "receipt_format",
            Check::ReceiptSignature => "receipt_signature",
            Check::ActionCommitment => "action_commitment",
            Check::Consistency => "consistency",
            Check::Rollback => "rollback",
            Check::Fork => "fork",
            Check::Tiles => "tiles",
            Check::Cosignature => "cosignature",
            Check::WitnessQuorum => "witness_quorum",
            Check::PolicyCommitment => "policy_commitment",
            Check::PolicyRegistration => "policy_registration",
            Check::Disclosure => "disclosure",
            Check::Manifest => "manifest",
            Check::Layout => "layout",
            Check::EntryTime => "entry_time",
            Check::Records => "records",
            Check::Approval => "approval",
            Check::Summary => "summary",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a command did not end in "valid".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// A verification check failed (exit 1).
    #[error("verification failed: {check}: {reason}")]
    Failed {
        /// The check that failed.
        check: Check,
        /// What the check found, from the underlying error.
        reason: String,
    },
    /// Bad command-line usage, for example a missing trusted key (exit 2).
    #[error("usage: {message}")]
    Usage {
        /// What was wrong.
        message: String,
    },
    /// An input file could not be read or a key or policy did not parse (exit 2).
    #[error("input {what}: {reason}")]
    Input {
        /// The file or argument.
        what: String,
        /// What was wrong.
        reason: String,
    },
    /// The log could not be reached or answered with an error (exit 2).
    #[error("network {url}: {reason}")]
    Network {
        /// The URL requested.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

impl CliError {
    /// A verification failure of `check`.
    pub fn failed(check: Check, reason: impl fmt::Display) -> Self {
        CliError::Failed {
            check,
            reason: reason.to_string(),
        }
    }

    /// A usage error.
    pub fn usage(message: impl fmt::Display) -> Self {
        CliError::Usage {
            message: message.to_string(),
        }
    }

    /// An input error about `what`.
    pub fn input(what: impl fmt::Display, reason: impl fmt::Display) -> Self {
        CliError::Input {
            what: what.to_string(),
            reason: reason.to_string(),
        }
    }

    /// A network error for `url`.
    pub fn network(url: impl fmt::Display, reason: impl fmt::Display) -> Self {
        CliError::Network {
            url: url.to_string(),
            reason: reason.to_string(),
        }
    }

    /// The documented exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Failed { .. } => EXIT_FAILED,
            CliError::Usage { .. } | CliError::Input { .. } | CliError::Network { .. } => {
                EXIT_ERROR
            }
        }
    }

    /// The error as `--json` output.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            CliError::Failed { check, reason } => serde_json::json!({
                "result": "failed", "check": check, "reason": reason,
            }),
            CliError::Usage { message } => serde_json::json!({
                "result": "error", "kind": "usage", "message": message,
            }),
            CliError::Input { what, reason } => serde_json::json!({
                "result": "error", "kind": "input", "what": what, "message": reason,
            }),
            CliError::Network { url, reason } => serde_json::json!({
                "result": "error", "kind": "network", "url": url, "message": reason,
            }),
        }
    }

    /// One human-readable line.
    pub fn human(&self) -> String {
        match self {
            CliError::Failed { check, reason } => {
                format!("FAILED: check {check} failed: {reason}")
            }
            other => format!("ERROR: {other} (nothing was verified)"),
        }
    }
}
