//! `verdict verify BUNDLE --disclosure FILE`: a selective rule disclosure (spec
//! `disclosure.md` §4) checked offline, on top of the proof bundle of the same receipt.
//!
//! The bundle proves the receipt is in the log (it is verified first, as for `verify`); the
//! disclosure must carry exactly that receipt at that index, and its own checks (statement
//! signed by a trusted checker key, same policy commitment, rule listed as violated, rule text
//! and salt opening a leaf whose path leads to the statement's `rule_tree_root`, the statement's
//! own inclusion proof verifying with a trusted log key) must pass.
//! Every failure is check `disclosure` (exit 1) with the sub-check named in the reason.

use verdict_core::bundle::ProofBundle;
use verdict_core::disclosure::{Disclosure, DisclosureError};

use crate::error::{Check, CliError};
use crate::trust::Trust;

/// What a verified disclosure shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DisclosureReport {
    /// The disclosed rule's index.
    pub rule: u32,
    /// The disclosed rule text (canonical JSON, as committed).
    pub text: String,
    /// Log index of the policy statement.
    pub statement_index: u64,
    /// Policy name and version from the statement.
    pub policy: String,
    /// The statement's rule-tree root (hex).
    pub rule_tree_root: String,
}

fn failed(sub: &str, reason: impl std::fmt::Display) -> CliError {
    CliError::failed(Check::Disclosure, format!("{sub}: {reason}"))
}

/// Check `disclosure` (the file's bytes) against the already verified `bundle` (its bytes).
///
/// # Errors
/// [`CliError::Failed`] with [`Check::Disclosure`]; [`CliError::Usage`] without a checker key.
pub fn check_disclosure(
    disclosure: &[u8],
    bundle: &[u8],
    trust: &Trust,
) -> Result<DisclosureReport, CliError> {
    trust.require_checker_key()?;
    let d = Disclosure::from_json(disclosure).map_err(|e| failed(e.check(), e))?;
    let bundle =
        ProofBundle::parse(bundle).map_err(|e| CliError::failed(Check::BundleFormat, e))?;
    if bundle.index.0 != d.decision_index || bundle.extra.as_deref() != Some(d.receipt.as_slice()) {
        return Err(failed(
            "bundle",
            "the disclosure's receipt and index are not the bundle's",
        ));
    }
    // The statement's own proof (spec §4 `statement-inclusion`) must verify with a log key we
    // trust; which one is chosen by its checkpoint's origin line, as for the bundle.
    let proof_checkpoint = d
        .statement_proof
        .as_deref()
        .and_then(|p| ProofBundle::parse(p).ok())
        .map(|b| b.checkpoint);
    let log_key = proof_checkpoint
        .as_deref()
        .and_then(|cp| trust.log_key_for(cp))
        .or_else(|| trust.log_key_for(&bundle.checkpoint))
        .ok_or_else(|| CliError::usage("no trusted log key"))?;
    let verified = d
        .verify_logged(&trust.checker_keys, log_key)
        .map_err(|e: DisclosureError| failed(e.check(), e))?;
    // The witness quorum of a given policy file holds for the statement's checkpoint too.
    if let Some(cp) = &proof_checkpoint {
        trust.check_quorum(cp)?;
    }
    Ok(DisclosureReport {
        rule: d.rule.index,
        text: d.rule.text.clone(),
        statement_index: d.statement_index,
        policy: format!(
            "{} {}",
            verified.policy.name, verified.policy.policy_version
        ),
        rule_tree_root: verified.policy.rule_tree_root.to_hex(),
    })
}
