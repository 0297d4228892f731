//! RFC 9162 §2.1 Merkle tree hashing. Spec: `spec/merkle.md` §1–§4.
//!
//! The tree is the left-balanced binary tree of RFC 9162 §2.1.1: leaves are hashed with a `0x00`
//! prefix, interior nodes with `0x01`, and the empty tree hashes to SHA-256 of the empty string.
//! [`RightEdge`] keeps only the maximal complete subtrees of a growing tree (spec `merkle.md` §4)
//! and reports each complete subtree hash it creates, which is what a tile writer stores.

use std::fmt;

use sha2::{Digest as _, Sha256};

/// A SHA-256 hash of a leaf or an interior node (RFC 9162 §2.1.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// Length of every hash in bytes.
    pub const LEN: usize = 32;

    /// Parse from a slice; any length other than 32 is an error (spec `merkle.md` §3).
    ///
    /// # Errors
    /// [`HashLengthError`] when `bytes.len() != 32`.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, HashLengthError> {
        <[u8; 32]>::try_from(bytes)
            .map(Hash)
            .map_err(|_| HashLengthError { len: bytes.len() })
    }

    /// Standard base64 (with padding), as in checkpoints and tlog-proof.
    pub fn to_base64(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    /// Parse standard base64 of exactly 32 bytes.
    ///
    /// # Errors
    /// [`HashLengthError`] when the text is not base64 or does not decode to 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, HashLengthError> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| HashLengthError { len: 0 })?;
        Self::from_slice(&bytes)
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

/// A hash was not exactly 32 bytes long (or not valid base64).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hash must be 32 bytes, got {len}")]
pub struct HashLengthError {
    /// The length that was given (0 for undecodable text).
    pub len: usize,
}

/// Zero-based index of a leaf in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct LeafIndex(pub u64);

/// Number of leaves in a tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TreeSize(pub u64);

impl fmt::Display for LeafIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for TreeSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// SHA-256 of the empty string: the root of the empty tree (RFC 9162 §2.1.1, spec `merkle.md` §2).
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}

/// Leaf hash: SHA-256(0x00 ‖ entry) (RFC 9162 §2.1.1, spec `merkle.md` §2).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(entry);
    Hash(h.finalize().into())
}

/// Interior node hash: SHA-256(0x01 ‖ left ‖ right) (RFC 9162 §2.1.1, spec `merkle.md` §2).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// Root of a list of leaf hashes (MTH of RFC 9162 §2.1.1), computed in O(n) time and O(log n) space.
///
/// The leaves are folded into a [`RightEdge`] (at most 64 hashes), whose root is the MTH
/// (spec `merkle.md` §4). The empty list gives [`empty_root`].
pub fn root_of(leaf_hashes: &[Hash]) -> Hash {
    let mut edge = RightEdge::new();
    for leaf in leaf_hashes {
        // A slice holds far fewer than u64::MAX elements, so the tree cannot be full.
        if edge.append(*leaf, &mut |_| {}).is_err() {
            break;
        }
    }
    edge.root()
}

/// Root of a list of complete-subtree hashes, largest (leftmost) first: the right-to-left fold
/// `H(h0, H(h1, … H(hk-1, hk)))` of RFC 9162 §2.1.1 applied to a right edge (spec `merkle.md` §4).
/// The empty list gives [`empty_root`].
pub fn fold_right_edge(hashes: &[Hash]) -> Hash {
    let mut iter = hashes.iter().rev();
    let Some(last) = iter.next() else {
        return empty_root();
    };
    iter.fold(*last, |acc, left| node_hash(left, &acc))
}

/// The right edge ("compact range") of a tree: the hashes of the maximal complete subtrees,
/// at most 64 of them. Appending a leaf reports every complete subtree hash it creates, which is
/// exactly what a tile writer stores. The tree itself is never held in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RightEdge {
    size: u64,
    /// Hashes of the complete subtrees, largest (leftmost) first.
    hashes: Vec<Hash>,
}

/// A stored hash created by an append: the complete subtree at `level` with index `index`
/// covers leaves `[index << level, (index + 1) << level)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredHash {
    /// Height of the subtree (0 for a leaf).
    pub level: u8,
    /// Index of the subtree among those of its level.
    pub index: u64,
    /// The subtree's hash.
    pub hash: Hash,
}

impl RightEdge {
    /// The right edge of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuild from a size and the hashes of its maximal complete subtrees, largest first.
    ///
    /// # Errors
    /// [`RightEdgeError`] when the number of hashes differs from `size.count_ones()`.
    pub fn from_parts(size: TreeSize, hashes: Vec<Hash>) -> Result<Self, RightEdgeError> {
        let expected = size.0.count_ones();
        if usize::try_from(expected).ok() != Some(hashes.len()) {
            return Err(RightEdgeError::WrongHashCount {
                size: size.0,
                expected,
                got: hashes.len(),
            });
        }
        Ok(Self {
            size: size.0,
            hashes,
        })
    }

    /// Tree size covered.
    pub fn size(&self) -> TreeSize {
        TreeSize(self.size)
    }

    /// Hashes of the maximal complete subtrees, largest first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Append one leaf hash; `sink` receives every complete subtree hash created (level 0 first).
    ///
    /// Appending leaf `s` to a tree of size `s` creates the leaf (level 0, index `s`) and one
    /// subtree per trailing one bit of `s`: level `k`, index `s >> k` (spec `merkle.md` §4).
    ///
    /// # Errors
    /// [`RightEdgeError`] when the tree is full (size would overflow u64).
    pub fn append(
        &mut self,
        leaf: Hash,
        sink: &mut impl FnMut(StoredHash),
    ) -> Result<LeafIndex, RightEdgeError> {
        let index = self.size;
        let new_size = index.checked_add(1).ok_or(RightEdgeError::Full)?;
        sink(StoredHash {
            level: 0,
            index,
            hash: leaf,
        });
        let mut node = leaf;
        let mut level: u8 = 0;
        while (index >> level) & 1 == 1 {
            // The invariant `hashes.len() == size.count_ones()` guarantees one hash per one bit.
            let Some(left) = self.hashes.pop() else {
                break;
            };
            node = node_hash(&left, &node);
            level = level.saturating_add(1);
            sink(StoredHash {
                level,
                index: index >> level,
                hash: node,
            });
        }
        self.hashes.push(node);
        self.size = new_size;
        Ok(LeafIndex(index))
    }

    /// Root hash of the tree (spec `merkle.md` §4); [`empty_root`] for the empty tree.
    pub fn root(&self) -> Hash {
        fold_right_edge(&self.hashes)
    }
}

/// A right edge could not be built or extended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RightEdgeError {
    /// The number of hashes does not match the tree size.
    #[error("right edge of size {size} needs {expected} hashes, got {got}")]
    WrongHashCount {
        /// Tree size.
        size: u64,
        /// `size.count_ones()`.
        expected: u32,
        /// Hashes given.
        got: usize,
    },
    /// The tree cannot grow past u64::MAX leaves.
    #[error("tree is full")]
    Full,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hashes() {
        // SHA-256("") and the RFC 6962 leaf hash of the empty entry.
        assert_eq!(
            empty_root().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            leaf_hash(b"").to_hex(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    #[test]
    fn append_reports_levels_in_order() {
        let mut edge = RightEdge::new();
        let leaves: Vec<Hash> = (0u8..8).map(|i| leaf_hash(&[i])).collect();
        let mut seen = Vec::new();
        for leaf in &leaves {
            edge.append(*leaf, &mut |s| seen.push((s.level, s.index)))
                .unwrap();
        }
        assert_eq!(
            seen,
            vec![
                (0, 0),
                (0, 1),
                (1, 0),
                (0, 2),
                (0, 3),
                (1, 1),
                (2, 0),
                (0, 4),
                (0, 5),
                (1, 2),
                (0, 6),
                (0, 7),
                (1, 3),
                (2, 1),
                (3, 0)
            ]
        );
        assert_eq!(edge.hashes().len(), 1);
        assert_eq!(edge.root(), root_of(&leaves));
        assert_eq!(
            edge.root(),
            node_hash(
                &node_hash(
                    &node_hash(&leaves[0], &leaves[1]),
                    &node_hash(&leaves[2], &leaves[3])
                ),
                &node_hash(
                    &node_hash(&leaves[4], &leaves[5]),
                    &node_hash(&leaves[6], &leaves[7])
                )
            )
        );
    }

    #[test]
    fn from_parts_checks_count_and_full_tree() {
        assert!(matches!(
            RightEdge::from_parts(TreeSize(3), vec![Hash::default()]),
            Err(RightEdgeError::WrongHashCount {
                size: 3,
                expected: 2,
                got: 1
            })
        ));
        let mut full =
            RightEdge::from_parts(TreeSize(u64::MAX), vec![Hash::default(); 64]).unwrap();
        assert_eq!(
            full.append(Hash::default(), &mut |_| {}),
            Err(RightEdgeError::Full)
        );
        assert_eq!(full.size(), TreeSize(u64::MAX));
    }
}
