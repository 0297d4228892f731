//! C2SP tlog-proof offline proof files ("proof bundles"), carrying a receipt in the `extra` line.
//! Spec: `spec/proof-bundle.md`.
//!
//! SKELETON: signatures are the contract; bodies are being filled in.

use crate::checkpoint::{CheckpointError, VerifiedCheckpoint};
use crate::merkle::{Hash, LeafIndex};
use crate::note::Verifier;
use crate::proof::VerifyError;

/// Maximum size of an encoded bundle.
pub const MAX_BUNDLE_SIZE: usize = 1 << 20;

/// A parsed, unverified tlog-proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofBundle {
    /// The `extra` data: for Verdict, the receipt (the log entry itself).
    pub extra: Option<Vec<u8>>,
    /// Leaf index.
    pub index: LeafIndex,
    /// Inclusion proof hashes.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, verbatim.
    pub checkpoint: Vec<u8>,
}

/// Errors of proof bundles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// The file is malformed.
    #[error("malformed proof bundle: {reason}")]
    Malformed {
        /// What was wrong.
        reason: &'static str,
    },
    /// The file is over the size limit.
    #[error("proof bundle over {MAX_BUNDLE_SIZE} bytes")]
    TooLarge,
    /// The bundle carries no entry to prove.
    #[error("proof bundle has no extra (receipt) line")]
    MissingEntry,
    /// The checkpoint did not verify.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The inclusion proof did not verify.
    #[error("inclusion: {0}")]
    Inclusion(#[from] VerifyError),
}

/// A bundle whose checkpoint was signed by the log key and whose entry is included in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedBundle {
    entry: Vec<u8>,
    index: LeafIndex,
    checkpoint: VerifiedCheckpoint,
}

impl VerifiedBundle {
    /// The included entry (the receipt bytes).
    pub fn entry(&self) -> &[u8] {
        &self.entry
    }
    /// Its leaf index.
    pub fn index(&self) -> LeafIndex {
        self.index
    }
    /// The verified checkpoint it is included in.
    pub fn checkpoint(&self) -> &VerifiedCheckpoint {
        &self.checkpoint
    }
}

impl ProofBundle {
    /// Encode as `c2sp.org/tlog-proof@v1` text.
    pub fn encode(&self) -> Vec<u8> {
        todo_skeleton()
    }

    /// Parse, enforcing the size limit and rejecting trailing data.
    ///
    /// # Errors
    /// [`BundleError::Malformed`] or [`BundleError::TooLarge`].
    pub fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        let _ = bytes;
        todo_skeleton()
    }

    /// Verify the checkpoint with the log key, then the inclusion of `extra` as the leaf.
    ///
    /// # Errors
    /// [`BundleError`] naming the failed check.
    pub fn verify(&self, log_key: &Verifier) -> Result<VerifiedBundle, BundleError> {
        let _ = log_key;
        todo_skeleton()
    }
}

#[expect(clippy::panic, reason = "skeleton placeholder, replaced before merge")]
fn todo_skeleton<T>() -> T {
    panic!("skeleton")
}
