//! Tile-width arithmetic: how many items a tile level holds in a tree size, the width of the tile
//! at `(kind, index)` in a tree size, where a leaf's entry sits in its bundle, and which hash
//! tiles serve a set of stored hashes. Spec: `spec/tiles.md` §2, §4, §5.
//!
//! This is the one implementation: the log server, the verifier and the tests call it instead of
//! redoing the shifts and divisions.

use std::collections::BTreeSet;

use super::{Tile, TileKind, TILE_HEIGHT, TILE_WIDTH};
use crate::merkle::{LeafIndex, TreeSize};

/// [`TILE_WIDTH`] as a `u64`, for index arithmetic.
const WIDTH: u64 = TILE_WIDTH as u64;

/// Number of complete items of `kind` in a tree of `size` (spec `tiles.md` §2, §4): the stored
/// hashes of tree level `8 L` for hash tiles of level `L`, the entries for entry bundles.
pub fn items_in(kind: TileKind, size: TreeSize) -> u64 {
    match kind {
        TileKind::Hashes { level } => size
            .0
            .checked_shr(u32::from(level) * u32::from(TILE_HEIGHT))
            .unwrap_or(0),
        TileKind::Entries => size.0,
    }
}

/// Width of tile `index` of `kind` in a tree of `size` (spec `tiles.md` §2): 256 for a full
/// tile, `c mod 256` for the partial tile at the right edge, 0 when the tile does not exist at
/// that size.
pub fn width_in(kind: TileKind, index: u64, size: TreeSize) -> u16 {
    let Some(start) = index.checked_mul(WIDTH) else {
        return 0;
    };
    let width = items_in(kind, size).saturating_sub(start).min(WIDTH);
    // `width <= 256`, so the conversion cannot fail.
    u16::try_from(width).unwrap_or(0)
}

impl Tile {
    /// Tile `index` of `kind` as it exists in a tree of `size`: full, or the partial tile at the
    /// right edge (spec `tiles.md` §2, §4). `None` when the tree has no such tile.
    pub fn in_tree(kind: TileKind, index: u64, size: TreeSize) -> Option<Tile> {
        let width = width_in(kind, index, size);
        (width > 0).then_some(Tile { kind, index, width })
    }
}

/// Where a leaf's entry sits: its entry bundle and its position in it (spec `tiles.md` §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EntrySlot {
    /// Index `N` of the entry bundle.
    pub bundle: u64,
    /// Position of the entry in the bundle, 0..=255.
    pub position: usize,
}

impl EntrySlot {
    /// The slot of leaf `index`: bundle `index / 256`, position `index mod 256`.
    pub fn of(index: LeafIndex) -> Self {
        EntrySlot {
            bundle: index.0 / WIDTH,
            // `index mod 256 < 256` fits every usize.
            position: usize::try_from(index.0 % WIDTH).unwrap_or(0),
        }
    }

    /// The narrowest bundle width that holds this entry: `position + 1`. Any version of the
    /// bundle at least this wide holds it at the same position (tiles only grow, §2).
    pub fn min_width(&self) -> u16 {
        // `position + 1 <= 256`, so the conversion cannot fail.
        u16::try_from(self.position.saturating_add(1)).unwrap_or(TILE_WIDTH)
    }

    /// The bundle holding this entry as it exists in a tree of `size`; `None` when `size` does
    /// not cover the entry.
    pub fn tile_in(&self, size: TreeSize) -> Option<Tile> {
        Tile::in_tree(TileKind::Entries, self.bundle, size)
            .filter(|t| usize::from(t.width) > self.position)
    }
}

/// Where the stored hash `(level, index)` of a tree of `size` lives (spec `tiles.md` §5): the
/// hash tile at its width in `size`, the offset of the first tile hash to fold, and how many to
/// fold. `None` when that hash is not complete in `size`.
pub(super) fn locate(level: u8, index: u64, size: TreeSize) -> Option<(Tile, usize, usize)> {
    let below = u32::from(level % TILE_HEIGHT);
    let tile_level = level / TILE_HEIGHT;
    let first = index.checked_shl(below).filter(|f| f >> below == index)?;
    let count = 1u64 << below;
    let end = first.checked_add(count)?;
    let kind = TileKind::Hashes { level: tile_level };
    if end > items_in(kind, size) {
        return None;
    }
    let tile = Tile::in_tree(kind, first / WIDTH, size)?;
    Some((
        tile,
        usize::try_from(first % WIDTH).ok()?,
        usize::try_from(count).ok()?,
    ))
}

/// The hash tiles, each at its width in a tree of `size`, that a
/// [`super::TileHashSource`] of that size reads to serve the stored hashes `wanted` (spec
/// `tiles.md` §5), sorted and without duplicates. A client fetches these first and then builds
/// the proof from memory. `None` when a wanted hash is not complete in `size`.
///
/// Pass [`crate::proof::inclusion_subtrees`] or [`crate::proof::consistency_subtrees`].
pub fn tiles_for_hashes(wanted: &[(u8, u64)], size: TreeSize) -> Option<Vec<Tile>> {
    let mut out = BTreeSet::new();
    for &(level, index) in wanted {
        out.insert(locate(level, index, size)?.0);
    }
    Some(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths() {
        let e = TileKind::Entries;
        let h = |level| TileKind::Hashes { level };
        assert_eq!(Tile::in_tree(e, 0, TreeSize(0)), None);
        assert_eq!(width_in(e, 0, TreeSize(5)), 5);
        assert_eq!(width_in(e, 0, TreeSize(256)), 256);
        assert_eq!(width_in(e, 1, TreeSize(256)), 0);
        assert_eq!(width_in(e, 1, TreeSize(300)), 44);
        assert_eq!(width_in(h(1), 0, TreeSize(255)), 0);
        assert_eq!(width_in(h(1), 0, TreeSize(256 * 3 + 5)), 3);
        assert_eq!(width_in(h(9), 0, TreeSize(u64::MAX)), 0);
        assert_eq!(width_in(e, u64::MAX, TreeSize(u64::MAX)), 0);
        assert_eq!(items_in(h(7), TreeSize(u64::MAX)), 255);
        assert_eq!(
            Tile::in_tree(h(0), 2, TreeSize(600)),
            Some(Tile {
                kind: h(0),
                index: 2,
                width: 88
            })
        );
    }

    #[test]
    fn entry_slots() {
        let s = EntrySlot::of(LeafIndex(513));
        assert_eq!(
            s,
            EntrySlot {
                bundle: 2,
                position: 1
            }
        );
        assert_eq!(s.min_width(), 2);
        assert_eq!(s.tile_in(TreeSize(513)), None);
        assert_eq!(s.tile_in(TreeSize(514)).unwrap().width, 2);
        assert_eq!(s.tile_in(TreeSize(10_000)).unwrap().width, 256);
        assert_eq!(EntrySlot::of(LeafIndex(255)).min_width(), 256);
    }

    #[test]
    fn tiles_serving_hashes() {
        let size = TreeSize(256 * 256 + 300);
        // Leaf 65800 is in the partial level-0 tile 257 (44 wide); the level-3 hash 8000 folds
        // eight hashes of the full tile 250.
        let t = tiles_for_hashes(&[(0, 65_800), (3, 8_000), (0, 65_801)], size).unwrap();
        assert_eq!(
            t.iter().map(Tile::path).collect::<Vec<_>>(),
            ["tile/0/250", "tile/0/257.p/44"]
        );
        // Level 16 hashes are complete only from 2^16 leaves on: one here, none at index 1.
        assert_eq!(
            tiles_for_hashes(&[(16, 0)], size).unwrap(),
            [Tile {
                kind: TileKind::Hashes { level: 2 },
                index: 0,
                width: 1
            }]
        );
        assert_eq!(tiles_for_hashes(&[(16, 1)], size), None);
    }
}
