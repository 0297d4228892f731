//! Inclusion proofs for the entries of one integrated batch, from memory.
//!
//! When the sequencer integrates entries `[from, to)` it holds the right edge of the tree of size
//! `from` and the entries themselves. Every hash an inclusion proof of a leaf `m ≥ from` in the
//! tree of size `to` needs is then at hand (RFC 9162 §2.1.3.1, spec `spec/merkle.md` §4–§5):
//!
//! - a sibling subtree left of the batch is a maximal complete subtree of the old tree, i.e. one
//!   of the old right-edge hashes (its parent, the next node up the path, holds `m ≥ from`);
//! - every other complete subtree ends at or after `from` and is created by appending a batch
//!   leaf ([`RightEdge::append`] reports each one).
//!
//! So the sequencer hands each waiting request its proof with the checkpoint, and the request
//! path does not read tiles back from storage. A hash that is not at hand is an error (the
//! caller then falls back to proofs from stored tiles), never a made-up value.

use std::collections::HashMap;

use verdict_core::merkle::{leaf_hash, Hash, LeafIndex, RightEdge, RightEdgeError, TreeSize};
use verdict_core::proof::{inclusion_proof, HashSource, ProveError};

/// The hashes of the complete subtrees that inclusion proofs of a batch's leaves need.
#[derive(Debug)]
pub struct BatchHashes {
    size: TreeSize,
    from: u64,
    hashes: HashMap<(u8, u64), Hash>,
}

/// A complete subtree that is neither on the old right edge nor created by the batch.
#[derive(Debug, thiserror::Error)]
#[error("subtree at level {level}, index {index} is not in the batch or on the old right edge")]
pub struct NotInBatch {
    level: u8,
    index: u64,
}

/// Why a batch proof could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BatchProofError {
    /// The tree cannot grow by the batch.
    #[error("tree: {0}")]
    Tree(#[from] RightEdgeError),
    /// The leaf is not in the batch, or a hash was missing.
    #[error("proof: {0}")]
    Prove(#[from] ProveError<NotInBatch>),
    /// The leaf was integrated by an earlier batch.
    #[error("leaf {0} is not in the batch")]
    NotInBatch(u64),
}

impl BatchHashes {
    /// The hashes for appending `entries` to the tree whose right edge is `old`.
    pub fn new(old: &RightEdge, entries: &[Vec<u8>]) -> Result<Self, BatchProofError> {
        let from = old.size().0;
        let mut hashes = HashMap::with_capacity(entries.len().saturating_mul(2) + 64);
        // Old right edge, largest subtree first: for each one bit `l` of the size, the subtree
        // at level `l` that ends where the lower bits begin.
        let levels = (0..64u8).rev().filter(|&l| (from >> l) & 1 == 1);
        for (level, hash) in levels.zip(old.hashes()) {
            hashes.insert((level, (from >> level) - 1), *hash);
        }
        let mut edge = old.clone();
        for entry in entries {
            edge.append(leaf_hash(entry), &mut |stored| {
                hashes.insert((stored.level, stored.index), stored.hash);
            })?;
        }
        Ok(Self {
            size: edge.size(),
            from,
            hashes,
        })
    }

    /// Tree size after the batch.
    pub fn size(&self) -> TreeSize {
        self.size
    }

    /// Inclusion proof of `index` (a leaf of the batch) in the tree after the batch.
    pub fn proof(&self, index: LeafIndex) -> Result<Vec<Hash>, BatchProofError> {
        if index.0 < self.from {
            return Err(BatchProofError::NotInBatch(index.0));
        }
        Ok(inclusion_proof(self, index, self.size)?)
    }
}

impl HashSource for BatchHashes {
    type Error = NotInBatch;

    fn hashes(&self, wanted: &[(u8, u64)]) -> Result<Vec<Hash>, NotInBatch> {
        wanted
            .iter()
            .map(|&(level, index)| {
                self.hashes
                    .get(&(level, index))
                    .copied()
                    .ok_or(NotInBatch { level, index })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use verdict_core::merkle::root_of;
    use verdict_core::proof::verify_inclusion;

    fn edge_of(leaves: &[Hash]) -> RightEdge {
        let mut edge = RightEdge::new();
        for leaf in leaves {
            edge.append(*leaf, &mut |_| {}).unwrap();
        }
        edge
    }

    /// Every leaf of every batch, for many old sizes and batch lengths, gets a proof that
    /// verifies against the naive root; leaves before the batch are refused.
    #[test]
    fn proofs_of_batch_leaves_verify_against_the_naive_root() {
        let entries: Vec<Vec<u8>> = (0..300u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
        for from in [0usize, 1, 2, 3, 5, 7, 8, 13, 64, 100, 255, 256, 257] {
            for len in [1usize, 2, 3, 7, 16, 43] {
                let to = from + len;
                let batch =
                    BatchHashes::new(&edge_of(&leaves[..from]), &entries[from..to]).unwrap();
                assert_eq!(batch.size(), TreeSize(to as u64));
                let root = root_of(&leaves[..to]);
                for (m, leaf) in leaves.iter().enumerate().take(to).skip(from) {
                    let index = LeafIndex(m as u64);
                    let proof = batch.proof(index).unwrap();
                    verify_inclusion(leaf, index, TreeSize(to as u64), &proof, &root)
                        .unwrap_or_else(|e| panic!("from {from} len {len} leaf {m}: {e}"));
                }
                if from > 0 {
                    assert!(batch.proof(LeafIndex(from as u64 - 1)).is_err());
                }
            }
        }
    }
}
