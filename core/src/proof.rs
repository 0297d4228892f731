//! Inclusion and consistency proofs: generation from stored hashes, and verification exactly as
//! RFC 9162 §2.1.3.2 and §2.1.4.2. Spec: `spec/merkle.md`.
//!
//! SKELETON: signatures are the contract; bodies are being filled in.

use crate::merkle::{Hash, LeafIndex, TreeSize};

/// A source of stored hashes of *complete* subtrees. The hash at `(level, index)` covers leaves
/// `[index << level, (index + 1) << level)`. The log server implements it over its tiles
/// ([`crate::tile::TileHashSource`]); tests implement it over a `Vec` of leaves.
pub trait HashSource {
    /// Error of the underlying store.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Hashes of the requested complete subtrees, in the order asked. Callers only ask for
    /// subtrees that are complete in the tree size they are proving against.
    ///
    /// # Errors
    /// Whatever the store reports; a missing hash must be an error, never a made-up value.
    fn hashes(&self, wanted: &[(u8, u64)]) -> Result<Vec<Hash>, Self::Error>;
}

/// Why a proof could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum ProveError<E: std::error::Error + 'static> {
    /// The leaf index is not below the tree size, or the sizes are out of order.
    #[error("invalid range: {what}")]
    InvalidRange {
        /// What was out of range.
        what: &'static str,
    },
    /// The hash source failed.
    #[error("hash source: {0}")]
    Source(#[source] E),
}

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The index is not below the size, or sizes are out of order, or a size-0 proof was asked
    /// for (see spec `merkle.md` for the size-0 rule).
    #[error("invalid range: {what}")]
    InvalidRange {
        /// What was out of range.
        what: &'static str,
    },
    /// The proof has the wrong number of hashes for the sizes given.
    #[error("proof has {got} hashes, expected {expected}")]
    WrongProofLength {
        /// Hashes required.
        expected: usize,
        /// Hashes given.
        got: usize,
    },
    /// A hash in the input was not 32 bytes.
    #[error("hash must be 32 bytes, got {len}")]
    BadHashLength {
        /// The length given.
        len: usize,
    },
    /// The recomputed root does not match.
    #[error("root mismatch: computed {computed}, expected {expected}")]
    RootMismatch {
        /// Root computed from the proof.
        computed: Hash,
        /// Root expected.
        expected: Hash,
    },
}

/// Inclusion proof for `index` in a tree of `size` (RFC 9162 §2.1.3.1).
///
/// # Errors
/// [`ProveError::InvalidRange`] when `index >= size`; [`ProveError::Source`] on store failure.
pub fn inclusion_proof<S: HashSource>(
    source: &S,
    index: LeafIndex,
    size: TreeSize,
) -> Result<Vec<Hash>, ProveError<S::Error>> {
    let _ = (source, index, size);
    todo_skeleton()
}

/// Consistency proof from `old` to `new` (RFC 9162 §2.1.4.1).
///
/// # Errors
/// [`ProveError::InvalidRange`] when `old > new` or `old == 0`; [`ProveError::Source`] on store failure.
pub fn consistency_proof<S: HashSource>(
    source: &S,
    old: TreeSize,
    new: TreeSize,
) -> Result<Vec<Hash>, ProveError<S::Error>> {
    let _ = (source, old, new);
    todo_skeleton()
}

/// Verify an inclusion proof (RFC 9162 §2.1.3.2).
///
/// # Errors
/// [`VerifyError`] naming the failed check.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: LeafIndex,
    size: TreeSize,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), VerifyError> {
    let _ = (leaf_hash, index, size, proof, root);
    todo_skeleton()
}

/// Verify a consistency proof (RFC 9162 §2.1.4.2).
///
/// # Errors
/// [`VerifyError`] naming the failed check.
pub fn verify_consistency(
    old: TreeSize,
    new: TreeSize,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), VerifyError> {
    let _ = (old, new, proof, old_root, new_root);
    todo_skeleton()
}

#[expect(clippy::panic, reason = "skeleton placeholder, replaced before merge")]
fn todo_skeleton<T>() -> T {
    panic!("skeleton")
}
