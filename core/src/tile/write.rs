//! The pure half of a tile writer: the bytes of every hash tile that changes when the tree
//! grows. Spec: `spec/tiles.md` §6.

use std::collections::BTreeMap;

use super::{new_hash_tiles, width_in, Tile, TileKind, TILE_HEIGHT, TILE_WIDTH};
use crate::merkle::{Hash, StoredHash, TreeSize};

/// Why [`tile_updates`] could not build the new tiles.
#[derive(Debug, thiserror::Error)]
pub enum TileUpdateError<E: std::error::Error + 'static> {
    /// Reading the existing partial tile failed.
    #[error("tile read: {0}")]
    Read(#[source] E),
    /// The existing partial tile of the old tree is not stored.
    #[error("tile {path} of the old tree is missing")]
    MissingTile {
        /// Tile path.
        path: String,
    },
    /// The existing partial tile has the wrong length.
    #[error("tile {path} has {len} bytes, expected {expected}")]
    WrongLength {
        /// Tile path.
        path: String,
        /// Bytes found.
        len: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// A hash the new tile needs was not among the stored hashes given.
    #[error("stored hash at level {level} index {index} was not given")]
    MissingHash {
        /// Tree level.
        level: u8,
        /// Index at that level.
        index: u64,
    },
}

/// The full bytes of every hash tile that changes when the tree grows from `old` to `new`
/// (spec `tiles.md` §6), in the order of [`new_hash_tiles`].
///
/// `stored` holds the hashes [`crate::merkle::RightEdge::append`] reported while appending
/// leaves `old..new` (extra hashes are ignored; only levels that are multiples of 8 are used).
/// A tile that was partial in `old` is extended: its old bytes are read with `read_old` (asked
/// for the old width; `Ok(None)` means not stored) and the new hashes appended. Nothing is
/// written; the caller stores the returned tiles.
///
/// # Errors
/// [`TileUpdateError`] when an old tile is missing, has the wrong length or cannot be read, or a
/// needed hash is not in `stored`.
pub fn tile_updates<E: std::error::Error + 'static>(
    old: TreeSize,
    new: TreeSize,
    stored: &[StoredHash],
    read_old: impl Fn(Tile) -> Result<Option<Vec<u8>>, E>,
) -> Result<Vec<(Tile, Vec<u8>)>, TileUpdateError<E>> {
    let by_pos: BTreeMap<(u8, u64), Hash> = stored
        .iter()
        .filter(|s| s.level % TILE_HEIGHT == 0)
        .map(|s| ((s.level, s.index), s.hash))
        .collect();
    let w = u64::from(TILE_WIDTH);
    let mut out = Vec::new();
    for tile in new_hash_tiles(old, new) {
        let TileKind::Hashes { level } = tile.kind else {
            continue;
        };
        let tree_level = level.saturating_mul(TILE_HEIGHT);
        // The tiles of `new_hash_tiles` start at the old partial tile, so the old width is
        // that partial width, or 0 for a tile the old tree did not have.
        let old_width = width_in(tile.kind, tile.index, old);
        let mut bytes = Vec::with_capacity(usize::from(tile.width) * Hash::LEN);
        if old_width > 0 {
            let old_tile = Tile {
                width: old_width,
                ..tile
            };
            let path = old_tile.path();
            let old_bytes = read_old(old_tile)
                .map_err(TileUpdateError::Read)?
                .ok_or_else(|| TileUpdateError::MissingTile { path: path.clone() })?;
            let expected = old_tile.hash_tile_len().unwrap_or(0);
            if old_bytes.len() != expected {
                return Err(TileUpdateError::WrongLength {
                    path,
                    len: old_bytes.len(),
                    expected,
                });
            }
            bytes.extend_from_slice(&old_bytes);
        }
        for j in u64::from(old_width)..u64::from(tile.width) {
            let index = tile.index * w + j;
            let hash = by_pos
                .get(&(tree_level, index))
                .ok_or(TileUpdateError::MissingHash {
                    level: tree_level,
                    index,
                })?;
            bytes.extend_from_slice(&hash.0);
        }
        out.push((tile, bytes));
    }
    Ok(out)
}
