//! Which tiles a package holds and how the root of the checkpoint is recomputed from them
//! (spec `evidence-package.md` §4).

use crate::merkle::{fold_right_edge, node_hash, Hash, TreeSize};
use crate::proof::complete_subtrees;
use crate::tile::{tiles_for_hashes, Tile, TileKind, TILE_WIDTH};

const WIDTH: u64 = TILE_WIDTH as u64;

/// The entry range `[a, b)` of a package for the period `[start, end)` in a tree of size `n`
/// (spec §4.1): whole entry bundles covering the period, entry `start - 1` and entry `end`.
/// `None` unless `start <= end <= n`.
pub fn entry_range(start: u64, end: u64, n: u64) -> Option<(u64, u64)> {
    if start > end || end > n {
        return None;
    }
    if n == 0 {
        return Some((0, 0));
    }
    let lo = start.saturating_sub(1);
    let hi = end.saturating_add(1).min(n);
    let a = lo - lo % WIDTH;
    let b = hi.div_ceil(WIDTH).saturating_mul(WIDTH).min(n);
    Some((a, b))
}

/// Complete subtrees `(level, index)`, in index order.
pub type Subtrees = Vec<(u8, u64)>;

/// The complete subtrees `(level, index)` whose hashes the package's hash tiles serve (spec
/// §4.1): those of `[0, a)`, then those of `[b, n)`.
pub fn outside_subtrees(a: u64, b: u64, n: u64) -> (Subtrees, Subtrees) {
    (complete_subtrees(0, a), complete_subtrees(b, n))
}

/// Every tile the package holds for the period `[start, end)` in a tree of size `n` (spec
/// §4.1): the entry bundles of the entry range, a contiguous run held as its bounds, and the
/// hash tiles of the complete subtrees outside it (a few per tree level). Its memory does not
/// grow with the period (issue 16, "Scale").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageTiles {
    size: TreeSize,
    bundles: std::ops::Range<u64>,
    hash: Vec<Tile>,
}

impl PackageTiles {
    /// The tiles of the period `[start, end)` in a tree of size `n`; `None` unless `start <=
    /// end <= n`.
    pub fn new(start: u64, end: u64, n: u64) -> Option<Self> {
        let (a, b) = entry_range(start, end, n)?;
        let size = TreeSize(n);
        let (left, right) = outside_subtrees(a, b, n);
        let wanted: Vec<(u8, u64)> = left.into_iter().chain(right).collect();
        let mut hash = tiles_for_hashes(&wanted, size)?;
        hash.sort_unstable();
        hash.dedup();
        Some(PackageTiles {
            size,
            bundles: a / WIDTH..b.div_ceil(WIDTH),
            hash,
        })
    }

    /// Every tile: the entry bundles in index order, then the hash tiles.
    pub fn iter(&self) -> impl Iterator<Item = Tile> + '_ {
        self.bundles
            .clone()
            .filter_map(|k| Tile::in_tree(TileKind::Entries, k, self.size))
            .chain(self.hash.iter().copied())
    }

    /// The hash tiles.
    pub fn hash_tiles(&self) -> &[Tile] {
        &self.hash
    }

    /// Whether `tile` (kind, level, index and width) is one of them.
    pub fn contains(&self, tile: &Tile) -> bool {
        if tile.kind == TileKind::Entries {
            self.bundles.contains(&tile.index)
                && Tile::in_tree(TileKind::Entries, tile.index, self.size).as_ref() == Some(tile)
        } else {
            self.hash.binary_search(tile).is_ok()
        }
    }
}

/// A compact range growing to the right (spec §4.2): complete subtrees with strictly
/// decreasing levels. Pushing a subtree merges it with equal-level neighbours.
#[derive(Clone, Debug, Default)]
pub struct CompactRange {
    stack: Vec<(u8, Hash)>,
}

impl CompactRange {
    /// The empty range.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append the complete subtree of `level` with hash `hash` (spec §4.2 step 5). The caller
    /// pushes subtrees in index order, each aligned to its size.
    pub fn push(&mut self, level: u8, hash: Hash) {
        let (mut level, mut hash) = (level, hash);
        while let Some(&(top_level, top)) = self.stack.last() {
            if top_level != level {
                break;
            }
            self.stack.pop();
            hash = node_hash(&top, &hash);
            level = level.saturating_add(1);
        }
        self.stack.push((level, hash));
    }

    /// The root: right-to-left fold of the subtrees (the empty root when empty).
    pub fn root(&self) -> Hash {
        let hashes: Vec<Hash> = self.stack.iter().map(|&(_, h)| h).collect();
        fold_right_edge(&hashes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{leaf_hash, root_of};
    use crate::proof::{HashSource, MemoryHashSource};

    #[test]
    fn ranges_cover_the_period_and_its_neighbours() {
        assert_eq!(entry_range(0, 0, 0), Some((0, 0)));
        assert_eq!(entry_range(0, 0, 10), Some((0, 10)));
        assert_eq!(entry_range(256, 512, 1000), Some((0, 768)));
        assert_eq!(entry_range(257, 511, 1000), Some((256, 512)));
        assert_eq!(entry_range(300, 1000, 1000), Some((256, 1000)));
        assert_eq!(entry_range(5, 4, 10), None);
        assert_eq!(entry_range(5, 11, 10), None);
    }

    #[test]
    fn root_from_outside_subtrees_and_leaves() {
        for n in [1u64, 2, 255, 256, 257, 700, 1030] {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect();
            let source = MemoryHashSource::new(leaves.clone());
            let expected = root_of(&leaves);
            for (start, end) in [(0, 0), (0, n), (n / 2, n / 2 + 1), (n, n), (1, n / 3 + 1)] {
                if start > end || end > n {
                    continue;
                }
                let (a, b) = entry_range(start, end, n).unwrap();
                let (left, right) = outside_subtrees(a, b, n);
                let mut range = CompactRange::new();
                for (sub, h) in left.iter().zip(source.hashes(&left).unwrap()) {
                    range.push(sub.0, h);
                }
                for leaf in &leaves[a as usize..b as usize] {
                    range.push(0, *leaf);
                }
                for (sub, h) in right.iter().zip(source.hashes(&right).unwrap()) {
                    range.push(sub.0, h);
                }
                assert_eq!(range.root(), expected, "n {n} period {start}..{end}");
                assert!(PackageTiles::new(start, end, n).is_some());
            }
        }
    }

    /// `PackageTiles` is the tile list the package layout names (spec §4.1), held as a range:
    /// `iter` yields each tile once, `contains` accepts exactly those, and not a neighbouring
    /// bundle, the same bundle at another width, or a hash tile of another index.
    #[test]
    fn package_tiles_contain_exactly_what_they_list() {
        for n in [1u64, 255, 256, 257, 700, 1030, 70_000] {
            for (start, end) in [(0, 0), (0, n), (n / 2, n / 2 + 1), (n, n), (1, n / 3 + 1)] {
                let Some(tiles) = PackageTiles::new(start, end, n) else {
                    continue;
                };
                let listed: Vec<Tile> = tiles.iter().collect();
                let mut unique = listed.clone();
                unique.sort_unstable();
                unique.dedup();
                assert_eq!(unique.len(), listed.len(), "n {n} period {start}..{end}");
                let (a, b) = entry_range(start, end, n).unwrap();
                let bundles = listed
                    .iter()
                    .filter(|t| t.kind == TileKind::Entries)
                    .count() as u64;
                assert_eq!(bundles, b.div_ceil(WIDTH) - a / WIDTH);
                for t in &listed {
                    assert!(tiles.contains(t), "{}", t.path());
                    let others = [
                        Tile {
                            index: t.index + 1,
                            ..*t
                        },
                        Tile {
                            index: t.index.wrapping_sub(1),
                            ..*t
                        },
                        Tile {
                            width: if t.width == 256 { 255 } else { 256 },
                            ..*t
                        },
                    ];
                    for o in others {
                        assert_eq!(tiles.contains(&o), listed.contains(&o), "{}", o.path());
                    }
                }
            }
        }
    }
}
