//! Inclusion and consistency proofs: generation from stored hashes, and verification exactly as
//! RFC 9162 §2.1.3.2 and §2.1.4.2. Spec: `spec/merkle.md` §5–§8.
//!
//! Generation only ever asks a [`HashSource`] for hashes of *complete* subtrees; a proof node that
//! covers an incomplete subtree at the right edge is computed from its complete pieces
//! (spec `merkle.md` §5). Verification checks ranges and the proof length before hashing anything,
//! and uses checked arithmetic only (spec `merkle.md` §6–§7).

use crate::merkle::{fold_right_edge, node_hash, Hash, LeafIndex, TreeSize};

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

/// Inclusion proof for `index` in a tree of `size` (RFC 9162 §2.1.3.1, spec `merkle.md` §5).
///
/// # Errors
/// [`ProveError::InvalidRange`] when `index >= size`; [`ProveError::Source`] on store failure.
pub fn inclusion_proof<S: HashSource>(
    source: &S,
    index: LeafIndex,
    size: TreeSize,
) -> Result<Vec<Hash>, ProveError<S::Error>> {
    range_hashes(source, &inclusion_ranges(index, size)?)
}

/// The stored hashes `(level, index)` that [`inclusion_proof`] asks its source for, in the
/// order asked. A client that fetches tiles can fetch the ones holding these first
/// ([`crate::tile::tiles_for_hashes`]) and then prove from memory.
///
/// # Errors
/// [`ProveError::InvalidRange`] when `index >= size`.
pub fn inclusion_subtrees(
    index: LeafIndex,
    size: TreeSize,
) -> Result<Vec<(u8, u64)>, ProveError<std::convert::Infallible>> {
    Ok(subtrees_of(&inclusion_ranges(index, size)?))
}

/// The leaf ranges whose hashes make up the inclusion proof, leaf side first.
fn inclusion_ranges<E: std::error::Error>(
    index: LeafIndex,
    size: TreeSize,
) -> Result<Vec<(u64, u64)>, ProveError<E>> {
    if index.0 >= size.0 {
        return Err(ProveError::InvalidRange {
            what: "leaf index not below tree size",
        });
    }
    let m = index.0;
    let (mut lo, mut hi) = (0u64, size.0);
    let mut ranges = Vec::new();
    // Top-down walk of PATH(m, D[lo:hi]); each step records the sibling subtree.
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if m < lo + k {
            ranges.push((lo + k, hi));
            hi = lo + k;
        } else {
            ranges.push((lo, lo + k));
            lo += k;
        }
    }
    ranges.reverse();
    Ok(ranges)
}

/// Consistency proof from `old` to `new` (RFC 9162 §2.1.4.1, spec `merkle.md` §5).
///
/// # Errors
/// [`ProveError::InvalidRange`] when `old > new` or `old == 0`; [`ProveError::Source`] on store failure.
pub fn consistency_proof<S: HashSource>(
    source: &S,
    old: TreeSize,
    new: TreeSize,
) -> Result<Vec<Hash>, ProveError<S::Error>> {
    range_hashes(source, &consistency_ranges(old, new)?)
}

/// The stored hashes `(level, index)` that [`consistency_proof`] asks its source for, in the
/// order asked (see [`inclusion_subtrees`]).
///
/// # Errors
/// [`ProveError::InvalidRange`] when `old > new` or `old == 0`.
pub fn consistency_subtrees(
    old: TreeSize,
    new: TreeSize,
) -> Result<Vec<(u8, u64)>, ProveError<std::convert::Infallible>> {
    Ok(subtrees_of(&consistency_ranges(old, new)?))
}

/// The leaf ranges whose hashes make up the consistency proof, in proof order.
fn consistency_ranges<E: std::error::Error>(
    old: TreeSize,
    new: TreeSize,
) -> Result<Vec<(u64, u64)>, ProveError<E>> {
    if old.0 == 0 {
        return Err(ProveError::InvalidRange {
            what: "consistency from size 0",
        });
    }
    if old.0 > new.0 {
        return Err(ProveError::InvalidRange {
            what: "old size above new size",
        });
    }
    let m = old.0;
    let (mut lo, mut hi) = (0u64, new.0);
    let mut complete_old = true;
    let mut ranges = Vec::new();
    // Top-down walk of SUBPROOF(m, D[lo:hi], b).
    loop {
        if m == hi {
            if !complete_old {
                ranges.push((lo, hi));
            }
            break;
        }
        let k = split_point(hi - lo);
        if m <= lo + k {
            ranges.push((lo + k, hi));
            hi = lo + k;
        } else {
            ranges.push((lo, lo + k));
            lo += k;
            complete_old = false;
        }
    }
    ranges.reverse();
    Ok(ranges)
}

/// The complete pieces of every range, in order: what [`range_hashes`] asks its source for.
fn subtrees_of(ranges: &[(u64, u64)]) -> Vec<(u8, u64)> {
    ranges
        .iter()
        .flat_map(|&(lo, hi)| complete_subtrees(lo, hi))
        .collect()
}

/// Largest power of two strictly below `n` (RFC 9162 §2.1.1 `k`); `n` must be at least 2.
fn split_point(n: u64) -> u64 {
    let bits = 63u32.saturating_sub(n.saturating_sub(1).leading_zeros());
    1u64 << bits
}

/// The complete subtrees `(level, index)` that make up `[lo, hi)`, largest first. For the ranges
/// the RFC recursion produces (`lo` a multiple of a power of two at least `hi - lo`), these are
/// the maximal complete subtrees of the range, and their right-to-left fold is `MTH(D[lo:hi])`.
pub fn complete_subtrees(lo: u64, hi: u64) -> Vec<(u8, u64)> {
    let mut out = Vec::new();
    let mut lo = lo;
    while lo < hi {
        let align = if lo == 0 { 63 } else { lo.trailing_zeros() };
        let fits = 63u32.saturating_sub((hi - lo).leading_zeros());
        let level = align.min(fits);
        out.push((u8::try_from(level).unwrap_or(63), lo >> level));
        lo = lo.saturating_add(1u64 << level);
    }
    out
}

/// Hash of each range: one batched source call for all complete pieces, then a fold per range.
fn range_hashes<S: HashSource>(
    source: &S,
    ranges: &[(u64, u64)],
) -> Result<Vec<Hash>, ProveError<S::Error>> {
    let pieces: Vec<Vec<(u8, u64)>> = ranges
        .iter()
        .map(|&(lo, hi)| complete_subtrees(lo, hi))
        .collect();
    let wanted: Vec<(u8, u64)> = pieces.iter().flatten().copied().collect();
    let got = source.hashes(&wanted).map_err(ProveError::Source)?;
    if got.len() != wanted.len() {
        return Err(ProveError::InvalidRange {
            what: "hash source returned a different number of hashes",
        });
    }
    let mut rest = got.as_slice();
    let mut out = Vec::with_capacity(pieces.len());
    for p in &pieces {
        let (these, tail) = rest.split_at(p.len().min(rest.len()));
        out.push(fold_right_edge(these));
        rest = tail;
    }
    Ok(out)
}

/// Proof length RFC 9162 requires for an inclusion proof of `index` in `size` (index < size):
/// the inner part (where the paths to `index` and `size - 1` differ) plus the border part.
fn inclusion_len(index: u64, size_minus_one: u64) -> (u32, u32) {
    let inner = 64 - (index ^ size_minus_one).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner, border)
}

/// Verify an inclusion proof (RFC 9162 §2.1.3.2, spec `merkle.md` §6).
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
    if index.0 >= size.0 {
        return Err(VerifyError::InvalidRange {
            what: "leaf index not below tree size",
        });
    }
    let mut fn_ = index.0;
    let mut sn = size.0 - 1;
    let (inner, border) = inclusion_len(fn_, sn);
    let expected = (inner + border) as usize;
    if proof.len() != expected {
        return Err(VerifyError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    let mut r = *leaf_hash;
    for p in proof {
        if sn == 0 {
            return Err(VerifyError::WrongProofLength {
                expected,
                got: proof.len(),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(VerifyError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    if r != *root {
        return Err(VerifyError::RootMismatch {
            computed: r,
            expected: *root,
        });
    }
    Ok(())
}

/// [`verify_inclusion`] over raw byte slices, as they arrive from JSON or other external
/// encodings: every slice must be exactly 32 bytes (spec `merkle.md` §3), checked after the
/// range and before any hashing.
///
/// # Errors
/// [`VerifyError::BadHashLength`] for a slice that is not 32 bytes, otherwise as
/// [`verify_inclusion`].
pub fn verify_inclusion_slices(
    leaf_hash: &[u8],
    index: LeafIndex,
    size: TreeSize,
    proof: &[&[u8]],
    root: &[u8],
) -> Result<(), VerifyError> {
    if index.0 >= size.0 {
        return Err(VerifyError::InvalidRange {
            what: "leaf index not below tree size",
        });
    }
    let leaf = to_hash(leaf_hash)?;
    let root = to_hash(root)?;
    let proof = proof
        .iter()
        .map(|p| to_hash(p))
        .collect::<Result<Vec<_>, _>>()?;
    verify_inclusion(&leaf, index, size, &proof, &root)
}

/// Verify a consistency proof (RFC 9162 §2.1.4.2, spec `merkle.md` §7). A proof from size 0 is
/// an error at this layer (spec `merkle.md` §7.1).
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
    if old.0 == 0 {
        return Err(VerifyError::InvalidRange {
            what: "consistency from size 0",
        });
    }
    if old.0 > new.0 {
        return Err(VerifyError::InvalidRange {
            what: "old size above new size",
        });
    }
    if old.0 == new.0 {
        if !proof.is_empty() {
            return Err(VerifyError::WrongProofLength {
                expected: 0,
                got: proof.len(),
            });
        }
        if old_root != new_root {
            return Err(VerifyError::RootMismatch {
                computed: *old_root,
                expected: *new_root,
            });
        }
        return Ok(());
    }
    // Expected length (RFC 9162 §2.1.4.2 run symbolically): the inclusion path of leaf old-1 in
    // new, minus the levels below the largest complete subtree ending at old, plus a seed hash
    // unless old is a power of two.
    let shift = old.0.trailing_zeros();
    let (inner, border) = inclusion_len(old.0 - 1, new.0 - 1);
    let inner = inner.saturating_sub(shift);
    let seeded = old.0 == 1u64 << shift;
    let start = usize::from(!seeded);
    let expected = start + (inner + border) as usize;
    if proof.len() != expected {
        return Err(VerifyError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    // Step 2: if old is a power of two, the old root is the first element.
    let (first, rest) = if seeded {
        (*old_root, proof)
    } else {
        match proof.split_first() {
            Some((f, r)) => (*f, r),
            None => {
                return Err(VerifyError::WrongProofLength {
                    expected,
                    got: proof.len(),
                })
            }
        }
    };
    let mut fn_ = old.0 - 1;
    let mut sn = new.0 - 1;
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let mut fr = first;
    let mut sr = first;
    for c in rest {
        if sn == 0 {
            return Err(VerifyError::WrongProofLength {
                expected,
                got: proof.len(),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(VerifyError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    if fr != *old_root {
        return Err(VerifyError::RootMismatch {
            computed: fr,
            expected: *old_root,
        });
    }
    if sr != *new_root {
        return Err(VerifyError::RootMismatch {
            computed: sr,
            expected: *new_root,
        });
    }
    Ok(())
}

/// [`verify_consistency`] over raw byte slices: ranges are checked first, then every slice must
/// be exactly 32 bytes (spec `merkle.md` §3), then the proof is verified.
///
/// # Errors
/// [`VerifyError::BadHashLength`] for a slice that is not 32 bytes, otherwise as
/// [`verify_consistency`].
pub fn verify_consistency_slices(
    old: TreeSize,
    new: TreeSize,
    proof: &[&[u8]],
    old_root: &[u8],
    new_root: &[u8],
) -> Result<(), VerifyError> {
    if old.0 == 0 || old.0 > new.0 {
        return verify_consistency(old, new, &[], &Hash::default(), &Hash::default());
    }
    let old_root = to_hash(old_root)?;
    let new_root = to_hash(new_root)?;
    let proof = proof
        .iter()
        .map(|p| to_hash(p))
        .collect::<Result<Vec<_>, _>>()?;
    verify_consistency(old, new, &proof, &old_root, &new_root)
}

fn to_hash(bytes: &[u8]) -> Result<Hash, VerifyError> {
    Hash::from_slice(bytes).map_err(|e| VerifyError::BadHashLength { len: e.len })
}

/// A [`HashSource`] over all leaf hashes held in memory, for tests, benches and small trees.
/// Subtree hashes are computed on demand, so asking for a high level costs O(2^level).
#[derive(Clone, Debug, Default)]
pub struct MemoryHashSource {
    leaves: Vec<Hash>,
}

/// A [`MemoryHashSource`] was asked for a subtree it does not fully hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no complete subtree at level {level} index {index}")]
pub struct MissingSubtree {
    /// Level asked for.
    pub level: u8,
    /// Index asked for.
    pub index: u64,
}

impl MemoryHashSource {
    /// Serve subtrees of these leaf hashes.
    pub fn new(leaves: Vec<Hash>) -> Self {
        Self { leaves }
    }

    /// The leaf hashes held.
    pub fn leaves(&self) -> &[Hash] {
        &self.leaves
    }
}

impl HashSource for MemoryHashSource {
    type Error = MissingSubtree;

    fn hashes(&self, wanted: &[(u8, u64)]) -> Result<Vec<Hash>, Self::Error> {
        wanted
            .iter()
            .map(|&(level, index)| {
                let missing = MissingSubtree { level, index };
                let width = 1u64.checked_shl(u32::from(level)).ok_or(missing.clone())?;
                let lo = index.checked_mul(width).ok_or(missing.clone())?;
                let hi = lo.checked_add(width).ok_or(missing.clone())?;
                let lo = usize::try_from(lo).map_err(|_| missing.clone())?;
                let hi = usize::try_from(hi).map_err(|_| missing.clone())?;
                let leaves = self.leaves.get(lo..hi).ok_or(missing)?;
                Ok(crate::merkle::root_of(leaves))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{leaf_hash, root_of};

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn all_small_trees() {
        for n in 1..=40u64 {
            let l = leaves(n);
            let src = MemoryHashSource::new(l.clone());
            let root = root_of(&l);
            for i in 0..n {
                let p = inclusion_proof(&src, LeafIndex(i), TreeSize(n)).unwrap();
                verify_inclusion(&l[i as usize], LeafIndex(i), TreeSize(n), &p, &root).unwrap();
                if let Some(first) = p.first() {
                    let mut bad = p.clone();
                    bad[0] = node_hash(first, first);
                    assert!(verify_inclusion(
                        &l[i as usize],
                        LeafIndex(i),
                        TreeSize(n),
                        &bad,
                        &root
                    )
                    .is_err());
                }
            }
            for m in 1..=n {
                let p = consistency_proof(&src, TreeSize(m), TreeSize(n)).unwrap();
                let old_root = root_of(&l[..m as usize]);
                verify_consistency(TreeSize(m), TreeSize(n), &p, &old_root, &root).unwrap();
            }
        }
    }

    #[test]
    fn range_errors() {
        let src = MemoryHashSource::new(leaves(4));
        assert!(matches!(
            inclusion_proof(&src, LeafIndex(4), TreeSize(4)),
            Err(ProveError::InvalidRange { .. })
        ));
        assert!(matches!(
            consistency_proof(&src, TreeSize(0), TreeSize(4)),
            Err(ProveError::InvalidRange { .. })
        ));
        assert!(matches!(
            consistency_proof(&src, TreeSize(5), TreeSize(4)),
            Err(ProveError::InvalidRange { .. })
        ));
        assert!(matches!(
            inclusion_proof(&src, LeafIndex(0), TreeSize(5)),
            Err(ProveError::Source(_))
        ));
        let h = Hash::default();
        assert!(matches!(
            verify_inclusion(&h, LeafIndex(0), TreeSize(0), &[], &h),
            Err(VerifyError::InvalidRange { .. })
        ));
        assert!(matches!(
            verify_inclusion(&h, LeafIndex(u64::MAX - 1), TreeSize(u64::MAX), &[h; 3], &h),
            Err(VerifyError::WrongProofLength { .. })
        ));
        assert!(matches!(
            verify_consistency(TreeSize(u64::MAX - 1), TreeSize(u64::MAX), &[h; 70], &h, &h),
            Err(VerifyError::WrongProofLength { .. })
        ));
    }
}
