//! `verdict verify`: offline verification of a proof bundle. This module has no network code.
//!
//! Checks, in order (each failure names its [`Check`]):
//! 1. the bundle parses (`c2sp.org/tlog-proof@v1`, size-bounded, no trailing data);
//! 2. the checkpoint is signed by the trusted log key (signed-note rules: unknown signatures
//!    ignored, a failing known one rejects);
//! 3. the receipt (the bundle's `extra`) is included at `index` in the checkpoint's tree;
//! 4. the receipt's COSE_Sign1 signature verifies with a trusted checker key;
//! 5. with `--policy-commitment` (repeatable), the receipt's policy commitment is one of them;
//! 6. optionally, `commit(Action, salt, action)` equals the receipt's action commitment;
//! 7. with a policy file, the checkpoint carries valid cosignatures meeting the witness quorum
//!    (C2SP tlog-cosignature, `spec/witness.md` §8): a quorum not met fails with
//!    `witness_quorum` and names the witnesses that did sign.
//!
//! Spec: `spec/proof-bundle.md`, `spec/receipt.md`, `spec/policy-statement.md`, `spec/witness.md`.

use verdict_core::bundle::{BundleError, ProofBundle};
use verdict_core::checkpoint::CheckpointError;
use verdict_core::receipt::{
    commit, published_request_id, CommitmentTag, Receipt, ReceiptError, Salt, Statement,
};

use crate::error::{Check, CliError};
use crate::names::{decision_name, kind_name};
use crate::policy::QuorumReport;
use crate::trust::Trust;

/// The raw action and salt a customer holds, to match against the receipt.
#[derive(Clone, Debug)]
pub struct ActionClaim {
    /// The exact canonical action bytes, as returned by the private store or check response.
    pub canonical: Vec<u8>,
    /// The 32-byte salt.
    pub salt: Salt,
    /// The caller's request id, checked against the receipt's published one (spec `receipt.md`
    /// §7.1) when given.
    pub request_id: Option<String>,
}

/// What `verdict verify` established.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    /// Always `"valid"`.
    pub result: &'static str,
    /// The log origin (checkpoint origin line).
    pub origin: String,
    /// The log key that verified the checkpoint.
    pub log_key: String,
    /// Tree size of the checkpoint.
    pub tree_size: u64,
    /// Root hash (base64) of the checkpoint.
    pub root: String,
    /// Leaf index of the receipt.
    pub index: u64,
    /// Key id (hex) of the checker key that signed the receipt.
    pub checker_key_id: String,
    /// Name of that checker key.
    pub checker_key: String,
    /// Decision: `allow`, `deny`, `escalate` or `not-applicable`.
    pub decision: &'static str,
    /// `screen` or `check`.
    pub kind: &'static str,
    /// Policy commitment (hex).
    pub policy_commitment: String,
    /// Policy version string.
    pub policy_version: String,
    /// Decision time, ms since the Unix epoch.
    pub time_ms: u64,
    /// Request id.
    pub request_id: String,
    /// Whether an action and salt were matched against the action commitment.
    pub action_matched: bool,
    /// The witness quorum the checkpoint met, with the witnesses that cosigned, when a policy
    /// file was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorum: Option<QuorumReport>,
    /// The same as one line for humans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witnesses: Option<String>,
}

impl VerifyReport {
    /// The one-line human summary.
    pub fn human(&self) -> String {
        let action = if self.action_matched {
            "; action and salt match its commitment"
        } else {
            ""
        };
        format!(
            "OK: receipt {} ({} {}, policy {} {}) is included at index {} of {} size {} \
             (log key {}) and signed by checker key {} ({}){action}",
            self.request_id,
            self.kind,
            self.decision,
            self.policy_version,
            short(&self.policy_commitment),
            self.index,
            self.origin,
            self.tree_size,
            self.log_key,
            self.checker_key,
            self.checker_key_id,
        )
    }
}

fn short(hex: &str) -> &str {
    hex.get(..16).unwrap_or(hex)
}

/// Verify a bundle's bytes fully offline.
///
/// # Errors
/// [`CliError::Failed`] naming the failed check; [`CliError::Usage`] when no log or checker key
/// is trusted.
pub fn verify_bundle(
    bytes: &[u8],
    trust: &Trust,
    action: Option<&ActionClaim>,
) -> Result<VerifyReport, CliError> {
    trust.require_log_key()?;
    trust.require_checker_key()?;
    let bundle = ProofBundle::parse(bytes).map_err(|e| match e {
        // The checkpoint part is not a well-formed signed checkpoint note.
        BundleError::Checkpoint(inner) => checkpoint_failure(inner),
        other => CliError::failed(Check::BundleFormat, other),
    })?;
    let log_key = trust
        .log_key_for(&bundle.checkpoint)
        .ok_or_else(|| CliError::usage("no trusted log key"))?;
    let verified = bundle.verify(log_key).map_err(|e| match e {
        BundleError::Checkpoint(inner) => checkpoint_failure(inner),
        BundleError::Inclusion(inner) => CliError::failed(Check::Inclusion, inner),
        other @ (BundleError::Malformed { .. }
        | BundleError::TooLarge
        | BundleError::MissingEntry) => CliError::failed(Check::BundleFormat, other),
    })?;
    let quorum = trust.check_quorum(&bundle.checkpoint)?;
    let receipt =
        Receipt::verify(verified.entry(), &trust.checker_keys).map_err(receipt_failure)?;
    let statement = receipt.statement();
    if !trust.policy_commitments.is_empty()
        && !trust
            .policy_commitments
            .contains(&statement.policy_commitment)
    {
        return Err(CliError::failed(
            Check::PolicyCommitment,
            format!(
                "receipt was made under policy {} version {}, which is not a pinned policy commitment",
                statement.policy_commitment.to_hex(),
                statement.policy_version
            ),
        ));
    }
    let action_matched = match action {
        Some(claim) => {
            check_action(statement, claim)?;
            true
        }
        None => false,
    };
    let checker = trust
        .checker_keys
        .iter()
        .find(|k| k.key_id() == receipt.key_id())
        .map(|k| k.name().to_owned())
        .unwrap_or_default();
    let cp = verified.checkpoint().checkpoint();
    Ok(VerifyReport {
        result: "valid",
        origin: cp.origin.clone(),
        log_key: format!("{}+{}", log_key.name(), log_key.key_id()),
        tree_size: cp.size.0,
        root: cp.root.to_base64(),
        index: verified.index().0,
        checker_key_id: receipt.key_id().to_string(),
        checker_key: checker,
        decision: decision_name(statement.decision),
        kind: kind_name(statement.kind),
        policy_commitment: statement.policy_commitment.to_hex(),
        policy_version: statement.policy_version.clone(),
        time_ms: statement.time_ms,
        request_id: statement.request_id.clone(),
        action_matched,
        witnesses: quorum.as_ref().map(QuorumReport::human),
        quorum,
    })
}

/// Map a checkpoint error to its check.
pub fn checkpoint_failure(e: CheckpointError) -> CliError {
    CliError::failed(Check::CheckpointSignature, e)
}

/// Map a receipt error to its check: decoding problems are `receipt_format`, key and
/// signature problems `receipt_signature`.
pub fn receipt_failure(e: ReceiptError) -> CliError {
    let check = match e {
        ReceiptError::TooLarge { .. }
        | ReceiptError::Malformed { .. }
        | ReceiptError::TrailingData
        | ReceiptError::UnknownCritical { .. } => Check::ReceiptFormat,
        ReceiptError::UnsupportedAlgorithm
        | ReceiptError::UntrustedKey { .. }
        | ReceiptError::BadSignature { .. }
        | ReceiptError::KeyIdMismatch => Check::ReceiptSignature,
    };
    CliError::failed(check, e)
}

fn check_action(statement: &Statement, claim: &ActionClaim) -> Result<(), CliError> {
    let computed = commit(CommitmentTag::Action, &claim.salt, &claim.canonical);
    if computed != statement.action_commitment {
        return Err(CliError::failed(
            Check::ActionCommitment,
            format!(
                "commitment of the given action and salt is {}, the receipt commits to {}",
                computed.to_hex(),
                statement.action_commitment.to_hex()
            ),
        ));
    }
    if let Some(id) = &claim.request_id {
        let published = published_request_id(&claim.salt, id);
        if published != statement.request_id {
            return Err(CliError::failed(
                Check::RequestId,
                format!(
                    "the request id commits to {published} with this salt, the receipt publishes {}",
                    statement.request_id
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suite() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/bundles")
    }

    fn trust() -> Trust {
        let key = |f: &str| {
            std::fs::read_to_string(suite().join("keys").join(f))
                .unwrap()
                .trim()
                .to_owned()
        };
        Trust::load(&[key("log.vkey")], &[key("checker.vkey")], None).unwrap()
    }

    #[test]
    fn valid_bundle_verifies_with_action() {
        let bytes = std::fs::read(suite().join("valid.proof")).unwrap();
        let report = verify_bundle(&bytes, &trust(), None).unwrap();
        assert_eq!(report.index, 5);
        assert_eq!(report.decision, "deny");
        assert!(!report.action_matched);
        let claim = ActionClaim {
            canonical: std::fs::read(suite().join("action.json")).unwrap(),
            salt: Salt([0x5a; 32]),
            request_id: None,
        };
        assert!(
            verify_bundle(&bytes, &trust(), Some(&claim))
                .unwrap()
                .action_matched
        );
        let wrong = ActionClaim {
            canonical: claim.canonical.clone(),
            salt: Salt([0; 32]),
            request_id: None,
        };
        let err = verify_bundle(&bytes, &trust(), Some(&wrong)).unwrap_err();
        assert!(matches!(
            err,
            CliError::Failed {
                check: Check::ActionCommitment,
                ..
            }
        ));
    }

    #[test]
    fn pinned_policy_commitment() {
        let bytes = std::fs::read(suite().join("valid.proof")).unwrap();
        let commitment = verify_bundle(&bytes, &trust(), None)
            .unwrap()
            .policy_commitment;
        let pinned = verdict_core::Hash::from_slice(&hex::decode(&commitment).unwrap()).unwrap();
        let mut t = trust();
        t.policy_commitments = vec![verdict_core::Hash([9; 32]), pinned];
        assert!(verify_bundle(&bytes, &t, None).is_ok(), "any pinned one");
        t.policy_commitments = vec![verdict_core::Hash([9; 32])];
        let err = verify_bundle(&bytes, &t, None).unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert!(matches!(
            err,
            CliError::Failed {
                check: Check::PolicyCommitment,
                ..
            }
        ));
        assert!(err.to_json().to_string().contains("policy_commitment"));
    }

    #[test]
    fn missing_keys_are_usage_errors() {
        let bytes = std::fs::read(suite().join("valid.proof")).unwrap();
        let mut t = trust();
        t.checker_keys.clear();
        assert_eq!(verify_bundle(&bytes, &t, None).unwrap_err().exit_code(), 2);
        let mut t = trust();
        t.log_keys.clear();
        assert_eq!(verify_bundle(&bytes, &t, None).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let valid = std::fs::read(suite().join("valid.proof")).unwrap();
        let t = trust();
        // Every single-byte flip of the valid bundle is rejected (or, for bytes no check
        // covers, still well-formed), never a panic.
        let mut accepted = 0;
        for i in 0..valid.len() {
            let mut b = valid.clone();
            b[i] ^= 0x20;
            if verify_bundle(&b, &t, None).is_ok() {
                accepted += 1;
            }
        }
        // Only flips that decode to the same data (e.g. base64 padding bits) may pass.
        assert!(accepted < valid.len() / 50, "{accepted} flips accepted");
        for len in 0..valid.len() {
            assert!(verify_bundle(&valid[..len], &t, None).is_err());
        }
    }

    /// The bundle's checkpoint re-signed by the suite's log key... is not possible (the key is
    /// not in the repository), so cosignatures are appended to the committed checkpoint: the
    /// log signature stays valid, and only the witness lines change.
    fn with_cosignatures(witnesses: &[&verdict_core::cosignature::Cosigner]) -> Vec<u8> {
        let valid = std::fs::read(suite().join("valid.proof")).unwrap();
        let mut bundle = ProofBundle::parse(&valid).unwrap();
        let mut note = verdict_core::note::Note::parse(&bundle.checkpoint).unwrap();
        for w in witnesses {
            note.signatures
                .push(w.cosign(&note.text, 1_700_000_000).unwrap());
        }
        bundle.checkpoint = note.to_bytes();
        bundle.encode()
    }

    fn policy_trust(policy: &str) -> Trust {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy");
        let key = |f: &str| {
            std::fs::read_to_string(suite().join("keys").join(f))
                .unwrap()
                .trim()
                .to_owned()
        };
        std::fs::write(
            &path,
            format!(
                "log {}\nchecker {}\n{policy}",
                key("log.vkey"),
                key("checker.vkey")
            ),
        )
        .unwrap();
        Trust::load(&[], &[], Some(&path)).unwrap()
    }

    fn witness(i: u8) -> verdict_core::cosignature::Cosigner {
        verdict_core::cosignature::Cosigner::new(
            &format!("witness.test/w{i}"),
            ed25519_dalek::SigningKey::from_bytes(&[i; 32]),
        )
        .unwrap()
    }

    #[test]
    fn quorum_without_cosignatures_fails() {
        // Before issue 14 this bundle was reported valid ("witness cosignatures are NOT
        // checked yet"): fail-open. Now the quorum is enforced.
        let t = policy_trust(&format!(
            "witness w1 {}\nquorum w1\n",
            witness(1).verifier()
        ));
        let bytes = std::fs::read(suite().join("valid.proof")).unwrap();
        let err = verify_bundle(&bytes, &t, None).unwrap_err();
        assert!(
            matches!(
                &err,
                CliError::Failed {
                    check: Check::WitnessQuorum,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.exit_code(), 1);
        assert!(err.to_string().contains("from no witness"), "{err}");
    }

    #[test]
    fn quorum_two_of_three() {
        let (w1, w2, w3) = (witness(1), witness(2), witness(3));
        let t = policy_trust(&format!(
            "witness w1 {}\nwitness w2 {}\nwitness w3 {}\ngroup g 2 w1 w2 w3\nquorum g\n",
            w1.verifier(),
            w2.verifier(),
            w3.verifier()
        ));
        let report = verify_bundle(&with_cosignatures(&[&w1, &w3]), &t, None).unwrap();
        let quorum = report.quorum.unwrap();
        assert_eq!(quorum.signed, vec!["w1", "w3"]);
        assert_eq!(
            report.witnesses.as_deref(),
            Some("witness quorum g met: cosigned by w1, w3")
        );
        // One of three: not met, and the message names who signed.
        let err = verify_bundle(&with_cosignatures(&[&w2]), &t, None).unwrap_err();
        assert!(
            err.to_string()
                .contains("witness quorum g not met: valid cosignatures from w2 (1 of 3"),
            "{err}"
        );
        // An edited cosignature (timestamp field) by a listed witness rejects the bundle.
        let mut bundle = ProofBundle::parse(&with_cosignatures(&[&w1, &w2, &w3])).unwrap();
        let mut note = verdict_core::note::Note::parse(&bundle.checkpoint).unwrap();
        let last = note.signatures.len() - 1;
        note.signatures[last].signature[7] ^= 1;
        bundle.checkpoint = note.to_bytes();
        let tampered = bundle.encode();
        let err = verify_bundle(&tampered, &t, None).unwrap_err();
        assert!(
            matches!(
                err,
                CliError::Failed {
                    check: Check::Cosignature,
                    ..
                }
            ),
            "{err}"
        );
        // A cosignature by a witness the policy does not list is ignored (does not count).
        let stranger = witness(9);
        assert!(verify_bundle(&with_cosignatures(&[&w1, &stranger]), &t, None).is_err());
    }
}
