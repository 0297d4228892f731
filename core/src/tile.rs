//! C2SP tlog-tiles: tile coordinates, paths, the tiles a tree size implies, tile contents and
//! entry bundles. Spec: `spec/tiles.md`.
//!
//! SKELETON: signatures are the contract; bodies are being filled in.

use crate::merkle::{Hash, TreeSize};
use crate::proof::HashSource;

/// Tile height (levels of the tree per tile level).
pub const TILE_HEIGHT: u8 = 8;
/// Full tile width (hashes or entries per full tile).
pub const TILE_WIDTH: u16 = 256;

/// What a tile holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TileKind {
    /// Hashes of tile level `L`: the stored hashes of tree level `8 L`.
    Hashes {
        /// Tile level `L` (0..=63).
        level: u8,
    },
    /// An entry bundle (`tile/entries/...`).
    Entries,
}

/// One tile: kind, index `N` and width `W` (1..=256; 256 is a full tile, no `.p/` suffix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tile {
    /// Hash tile or entry bundle.
    pub kind: TileKind,
    /// Tile index `N`.
    pub index: u64,
    /// Width `W`, 1..=256.
    pub width: u16,
}

/// A tile path did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tile path: {reason}")]
pub struct TilePathError {
    /// What was wrong.
    pub reason: &'static str,
}

/// An entry bundle did not parse or an entry did not fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// An entry is longer than 65,535 bytes.
    #[error("entry of {len} bytes exceeds the 65535-byte limit")]
    EntryTooLong {
        /// Length of the entry.
        len: usize,
    },
    /// The bundle ends inside a length prefix or an entry.
    #[error("entry bundle truncated")]
    Truncated,
    /// The bundle holds more than 256 entries or a different number than expected.
    #[error("entry bundle has {got} entries, expected {expected}")]
    WrongCount {
        /// Entries expected.
        expected: usize,
        /// Entries found.
        got: usize,
    },
}

impl Tile {
    /// Path relative to the log prefix, e.g. `tile/0/x001/234.p/5` or `tile/entries/000`.
    pub fn path(&self) -> String {
        todo_skeleton()
    }

    /// Parse a path relative to the log prefix (no leading `/`).
    ///
    /// # Errors
    /// [`TilePathError`] for anything that is not a canonical tile path.
    pub fn parse_path(path: &str) -> Result<Self, TilePathError> {
        let _ = path;
        todo_skeleton()
    }
}

/// Every hash tile of a tree of `size` (all levels, partial tiles at the right edge).
pub fn hash_tiles(size: TreeSize) -> Vec<Tile> {
    let _ = size;
    todo_skeleton()
}

/// Hash tiles that exist in a tree of `new` but not, with the same width, in one of `old`.
pub fn new_hash_tiles(old: TreeSize, new: TreeSize) -> Vec<Tile> {
    let _ = (old, new);
    todo_skeleton()
}

/// Entry bundles that exist in a tree of `new` but not, with the same width, in one of `old`.
pub fn new_entry_bundles(old: TreeSize, new: TreeSize) -> Vec<Tile> {
    let _ = (old, new);
    todo_skeleton()
}

/// Encode entries as a bundle: each is a big-endian uint16 length and the bytes.
///
/// # Errors
/// [`BundleError::EntryTooLong`] for an entry over 65,535 bytes.
pub fn encode_entry_bundle<E: AsRef<[u8]>>(entries: &[E]) -> Result<Vec<u8>, BundleError> {
    let _ = entries;
    todo_skeleton()
}

/// Decode a bundle into its entries, rejecting truncation and more than 256 entries.
///
/// # Errors
/// [`BundleError`].
pub fn decode_entry_bundle(bytes: &[u8]) -> Result<Vec<Vec<u8>>, BundleError> {
    let _ = bytes;
    todo_skeleton()
}

/// Read access to stored tiles, as a server or a verifier fetching over HTTP has.
pub trait TileReader {
    /// Error of the underlying store or transport.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The bytes of `tile` (a hash tile: `width * 32` bytes). Missing is an error.
    ///
    /// # Errors
    /// Whatever the store reports.
    fn read_tile(&self, tile: Tile) -> Result<Vec<u8>, Self::Error>;
}

/// A [`HashSource`] over hash tiles of a tree of a given size: proofs built from tiles alone.
pub struct TileHashSource<'a, R: TileReader> {
    reader: &'a R,
    size: TreeSize,
}

/// Error of [`TileHashSource`].
#[derive(Debug, thiserror::Error)]
pub enum TileSourceError<E: std::error::Error + 'static> {
    /// The reader failed.
    #[error("tile read: {0}")]
    Read(#[source] E),
    /// A tile had the wrong length or the hash asked for is not complete in this tree size.
    #[error("tile {path}: {reason}")]
    Malformed {
        /// Tile path.
        path: String,
        /// What was wrong.
        reason: &'static str,
    },
}

impl<'a, R: TileReader> TileHashSource<'a, R> {
    /// Read hashes of a tree of `size` through `reader`.
    pub fn new(reader: &'a R, size: TreeSize) -> Self {
        Self { reader, size }
    }
}

impl<R: TileReader> HashSource for TileHashSource<'_, R> {
    type Error = TileSourceError<R::Error>;

    fn hashes(&self, wanted: &[(u8, u64)]) -> Result<Vec<Hash>, Self::Error> {
        let _ = (wanted, self.reader, self.size);
        todo_skeleton()
    }
}

#[expect(clippy::panic, reason = "skeleton placeholder, replaced before merge")]
fn todo_skeleton<T>() -> T {
    panic!("skeleton")
}
