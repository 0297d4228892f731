//! The small test log the suite's bundle proves: [`LOG_SIZE`] real receipts with the target at
//! [`TARGET_INDEX`], and the bundle for the target.

use anyhow::{anyhow, Result};
use verdict_core::bundle::ProofBundle;
use verdict_core::checkpoint::Checkpoint;
use verdict_core::merkle::{leaf_hash, root_of};
use verdict_core::note::{KeyId, Signer};
use verdict_core::proof::{inclusion_proof, HashSource};
use verdict_core::receipt::{
    commit, CommitmentTag, Decision, Kind, Receipt, Salt, Statement, STATEMENT_VERSION,
};
use verdict_core::{Hash, LeafIndex, TreeSize};

use super::{ACTION, LOG_SIZE, SALT, TARGET_INDEX};

/// Subtree hashes over an in-memory list of leaf hashes.
struct Leaves(Vec<Hash>);

impl HashSource for Leaves {
    type Error = std::io::Error;
    fn hashes(&self, wanted: &[(u8, u64)]) -> Result<Vec<Hash>, std::io::Error> {
        wanted
            .iter()
            .map(|&(level, index)| {
                let lo = usize::try_from(index << level).map_err(std::io::Error::other)?;
                let hi = usize::try_from((index + 1) << level).map_err(std::io::Error::other)?;
                self.0
                    .get(lo..hi)
                    .map(root_of)
                    .ok_or_else(|| std::io::Error::other("subtree out of range"))
            })
            .collect()
    }
}

/// The statement of the receipt at leaf `i` of the test log (all but the target).
pub(super) fn statement(checker: KeyId, i: u64) -> Statement {
    Statement {
        version: STATEMENT_VERSION,
        checker_key_id: checker,
        policy_commitment: Hash([0x11; 32]),
        policy_version: "2026.11".into(),
        action_commitment: commit(CommitmentTag::Action, &Salt(SALT), ACTION),
        decision: if i.is_multiple_of(3) {
            Decision::Allow
        } else {
            Decision::Deny
        },
        kind: Kind::Check,
        fail_closed: false,
        violated_rules: vec![1, 3],
        matched_variables: vec!["amount".into(), "vendor".into()],
        undetermined_variables: vec![],
        approvers: vec![],
        time_ms: 1_795_000_000_000 + i,
        request_id: format!("tamper-req-{i}"),
        checker_version: "0.1.0".into(),
        solver_version: "z3 4.8.12".into(),
    }
}

/// A log of [`LOG_SIZE`] real receipts with `target` at [`TARGET_INDEX`], and its bundle for
/// the target signed by `log`.
pub(super) fn bundle_with(
    log: &Signer,
    checker: &Signer,
    target: &[u8],
    size: u64,
) -> Result<ProofBundle> {
    let mut entries = Vec::new();
    for i in 0..LOG_SIZE {
        if i == TARGET_INDEX {
            entries.push(target.to_vec());
        } else {
            entries.push(Receipt::sign(&statement(checker.key_id(), i), checker)?);
        }
    }
    let leaves = Leaves(entries.iter().map(|e| leaf_hash(e)).collect());
    let root = root_of(&leaves.0);
    let proof = inclusion_proof(&leaves, LeafIndex(TARGET_INDEX), TreeSize(LOG_SIZE))
        .map_err(|e| anyhow!("{e}"))?;
    let checkpoint = Checkpoint {
        origin: log.name().to_owned(),
        size: TreeSize(size),
        root,
        extensions: vec![],
    }
    .sign(log)?;
    Ok(ProofBundle {
        extra: Some(target.to_vec()),
        index: LeafIndex(TARGET_INDEX),
        proof,
        checkpoint,
    })
}
