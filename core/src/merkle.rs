//! RFC 9162 §2.1 Merkle tree hashing. Spec: `spec/merkle.md`.
//!
//! SKELETON: the signatures in this file are the contract other crates compile against.
//! Bodies are being filled in; do not change a public signature without telling the integrator.

use std::fmt;

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

/// SHA-256 of the empty string: the root of the empty tree (RFC 9162 §2.1.1).
pub fn empty_root() -> Hash {
    todo_skeleton()
}

/// Leaf hash: SHA-256(0x00 ‖ entry).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let _ = entry;
    todo_skeleton()
}

/// Interior node hash: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let _ = (left, right);
    todo_skeleton()
}

/// Root of a list of leaf hashes (MTH of RFC 9162 §2.1.1), computed in O(n) time and O(log n) space.
pub fn root_of(leaf_hashes: &[Hash]) -> Hash {
    let _ = leaf_hashes;
    todo_skeleton()
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
        let _ = (size, hashes);
        todo_skeleton()
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
    /// # Errors
    /// [`RightEdgeError`] when the tree is full (size would overflow u64).
    pub fn append(
        &mut self,
        leaf: Hash,
        sink: &mut impl FnMut(StoredHash),
    ) -> Result<LeafIndex, RightEdgeError> {
        let _ = (leaf, sink);
        todo_skeleton()
    }

    /// Root hash of the tree.
    pub fn root(&self) -> Hash {
        todo_skeleton()
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

#[expect(clippy::panic, reason = "skeleton placeholder, replaced before merge")]
fn todo_skeleton<T>() -> T {
    panic!("skeleton")
}
