//! C2SP tlog-tiles: tile coordinates, paths, the tiles a tree size implies, tile contents and
//! entry bundles. Spec: `spec/tiles.md`.
//!
//! A hash tile at tile level `L` holds the stored hashes of tree level `8 L`: tile `N` of width `W`
//! holds the hashes with indices `256 N .. 256 N + W` (spec `tiles.md` §2). A partial tile has
//! `W < 256` and exists only at the right edge of a tree. Entry bundles follow the same indexing
//! for level-0 entries (spec `tiles.md` §4).

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use crate::merkle::{root_of, Hash, TreeSize};
use crate::proof::HashSource;

mod entries;
mod width;
mod write;

pub use entries::{
    bundle_entries, bundle_entry, bundle_prefix, decode_entry_bundle, decode_entry_bundle_for,
    encode_entry_bundle, BundleEntries,
};
pub use width::{items_in, tiles_for_hashes, width_in, EntrySlot};
pub use write::{tile_updates, TileUpdateError};

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

/// Longest canonical tile path: `tile/entries/` plus seven index groups plus `.p/255`.
const MAX_PATH_LEN: usize = 64;
/// Highest tile level a path may name (spec `tiles.md` §3).
const MAX_LEVEL: u8 = 63;
/// Largest entry a bundle can carry (uint16 length prefix).
pub const MAX_ENTRY_LEN: usize = 65_535;

impl Tile {
    /// Path relative to the log prefix, e.g. `tile/0/x001/234.p/5` or `tile/entries/000`
    /// (spec `tiles.md` §3).
    pub fn path(&self) -> String {
        let mut out = String::from("tile/");
        match self.kind {
            TileKind::Hashes { level } => out.push_str(&level.to_string()),
            TileKind::Entries => out.push_str("entries"),
        }
        out.push('/');
        out.push_str(&encode_index(self.index));
        if self.width < TILE_WIDTH {
            out.push_str(".p/");
            out.push_str(&self.width.to_string());
        }
        out
    }

    /// Parse a path relative to the log prefix (no leading `/`). Only the canonical form that
    /// [`Tile::path`] writes is accepted (spec `tiles.md` §3).
    ///
    /// # Errors
    /// [`TilePathError`] for anything that is not a canonical tile path.
    pub fn parse_path(path: &str) -> Result<Self, TilePathError> {
        let err = |reason| TilePathError { reason };
        if path.len() > MAX_PATH_LEN {
            return Err(err("path too long"));
        }
        let rest = path
            .strip_prefix("tile/")
            .ok_or(err("missing tile/ prefix"))?;
        let (kind_seg, rest) = rest.split_once('/').ok_or(err("missing index"))?;
        let kind = if kind_seg == "entries" {
            TileKind::Entries
        } else {
            let level = parse_decimal(kind_seg, u64::from(MAX_LEVEL)).ok_or(err("bad level"))?;
            TileKind::Hashes {
                level: u8::try_from(level).map_err(|_| err("bad level"))?,
            }
        };
        let (index_part, width) = match rest.split_once(".p/") {
            Some((index_part, w)) => {
                let w = parse_decimal(w, u64::from(TILE_WIDTH) - 1).ok_or(err("bad width"))?;
                let w = u16::try_from(w).map_err(|_| err("bad width"))?;
                if w == 0 {
                    return Err(err("bad width"));
                }
                (index_part, w)
            }
            None => (rest, TILE_WIDTH),
        };
        let index = decode_index(index_part).ok_or(err("bad index"))?;
        Ok(Tile { kind, index, width })
    }

    /// Number of bytes of the tile: `width * 32` for a hash tile; unknown (None) for a bundle.
    pub fn hash_tile_len(&self) -> Option<usize> {
        match self.kind {
            TileKind::Hashes { .. } => Some(usize::from(self.width) * Hash::LEN),
            TileKind::Entries => None,
        }
    }
}

/// `N` as zero-padded 3-digit groups, all but the last prefixed with `x`.
fn encode_index(index: u64) -> String {
    let mut groups = Vec::new();
    let mut n = index;
    loop {
        groups.push(n % 1000);
        n /= 1000;
        if n == 0 {
            break;
        }
    }
    let last = groups.len().saturating_sub(1);
    groups
        .iter()
        .rev()
        .enumerate()
        .map(|(i, g)| {
            if i < last {
                format!("x{g:03}")
            } else {
                format!("{g:03}")
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Inverse of [`encode_index`], accepting only its canonical output.
fn decode_index(text: &str) -> Option<u64> {
    let segs: Vec<&str> = text.split('/').collect();
    let (last, init) = segs.split_last()?;
    let mut n: u64 = 0;
    for (i, seg) in init.iter().enumerate() {
        let digits = seg.strip_prefix('x')?;
        let g = three_digits(digits)?;
        if i == 0 && g == 0 {
            return None; // leading zero group
        }
        n = n.checked_mul(1000)?.checked_add(g)?;
    }
    n.checked_mul(1000)?.checked_add(three_digits(last)?)
}

fn three_digits(text: &str) -> Option<u64> {
    if text.len() != 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// ASCII decimal with no sign and no extra leading zeros, at most `max`.
fn parse_decimal(text: &str, max: u64) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if text.len() > 1 && text.starts_with('0') {
        return None;
    }
    let v: u64 = text.parse().ok()?;
    (v <= max).then_some(v)
}

/// Tiles of `kind` (full, then the partial one) in a tree of `size`, from tile index `from` on.
fn tiles_of(kind: TileKind, size: TreeSize, from: u64) -> impl Iterator<Item = Tile> {
    let end = items_in(kind, size).div_ceil(u64::from(TILE_WIDTH));
    (from..end).filter_map(move |index| Tile::in_tree(kind, index, size))
}

/// Every hash tile of a tree of `size` (all levels, partial tiles at the right edge), level by
/// level from 0 (spec `tiles.md` §2). The empty tree has none.
pub fn hash_tiles(size: TreeSize) -> Vec<Tile> {
    new_hash_tiles(TreeSize(0), size)
}

/// Hash tiles that exist in a tree of `new` but not, with the same width, in one of `old`
/// (spec `tiles.md` §2). Empty when `old >= new`.
pub fn new_hash_tiles(old: TreeSize, new: TreeSize) -> Vec<Tile> {
    let mut out = Vec::new();
    if old.0 >= new.0 {
        return out;
    }
    for level in 0..=MAX_LEVEL {
        let kind = TileKind::Hashes { level };
        let n_new = items_in(kind, new);
        if n_new == 0 {
            break;
        }
        let n_old = items_in(kind, old);
        if n_old == n_new {
            continue;
        }
        out.extend(tiles_of(kind, new, n_old / u64::from(TILE_WIDTH)));
    }
    out
}

/// Entry bundles that exist in a tree of `new` but not, with the same width, in one of `old`
/// (spec `tiles.md` §4). Empty when `old >= new`.
pub fn new_entry_bundles(old: TreeSize, new: TreeSize) -> Vec<Tile> {
    if old.0 >= new.0 {
        return Vec::new();
    }
    tiles_of(TileKind::Entries, new, old.0 / u64::from(TILE_WIDTH)).collect()
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

    /// Serve complete subtree hashes from hash tiles (spec `tiles.md` §5): the hash at level `l`
    /// comes from tile level `l / 8`; when `l % 8 != 0` the `2^(l % 8)` stored hashes below it
    /// in that tile are hashed together. Each tile is read once per call.
    fn hashes(&self, wanted: &[(u8, u64)]) -> Result<Vec<Hash>, Self::Error> {
        let mut cache: HashMap<Tile, Vec<u8>> = HashMap::new();
        let mut out = Vec::with_capacity(wanted.len());
        for &(level, index) in wanted {
            let (tile, offset, count) =
                width::locate(level, index, self.size).ok_or_else(|| {
                    TileSourceError::Malformed {
                        path: format!("level {level} index {index}"),
                        reason: "hash is not complete in this tree size",
                    }
                })?;
            let bytes = match cache.entry(tile) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(v) => {
                    let bytes = self.reader.read_tile(tile).map_err(TileSourceError::Read)?;
                    if Some(bytes.len()) != tile.hash_tile_len() {
                        return Err(TileSourceError::Malformed {
                            path: tile.path(),
                            reason: "hash tile has the wrong length",
                        });
                    }
                    v.insert(bytes)
                }
            };
            let malformed = || TileSourceError::Malformed {
                path: tile.path(),
                reason: "hash tile too short",
            };
            let slice = bytes
                .get(offset * Hash::LEN..(offset + count) * Hash::LEN)
                .ok_or_else(malformed)?;
            let hashes: Vec<Hash> = slice
                .chunks_exact(Hash::LEN)
                .map(Hash::from_slice)
                .collect::<Result<_, _>>()
                .map_err(|_| malformed())?;
            out.push(root_of(&hashes));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let t = |level, index, width| Tile {
            kind: TileKind::Hashes { level },
            index,
            width,
        };
        for (tile, path) in [
            (t(0, 1_234_067, 256), "tile/0/x001/x234/067"),
            (t(0, 1_234_067, 5), "tile/0/x001/x234/067.p/5"),
            (t(63, 0, 255), "tile/63/000.p/255"),
            (t(1, 999, 256), "tile/1/999"),
            (t(1, 1000, 256), "tile/1/x001/000"),
            (
                t(2, u64::MAX, 256),
                "tile/2/x018/x446/x744/x073/x709/x551/615",
            ),
            (
                Tile {
                    kind: TileKind::Entries,
                    index: 0,
                    width: 3,
                },
                "tile/entries/000.p/3",
            ),
        ] {
            assert_eq!(tile.path(), path);
            assert_eq!(Tile::parse_path(path).unwrap(), tile, "{path}");
        }
        for bad in [
            "",
            "/tile/0/000",
            "tile/0/000/",
            "tile//000",
            "tile/00/000",
            "tile/01/000",
            "tile/64/000",
            "tile/-1/000",
            "tile/+1/000",
            "tile/0/00",
            "tile/0/0000",
            "tile/0/x000/001",
            "tile/0/x001",
            "tile/0/001/002",
            "tile/0/x1/002",
            "tile/0/000.p/256",
            "tile/0/000.p/0",
            "tile/0/000.p/01",
            "tile/0/000.p/",
            "tile/0/000.p",
            "tile/0/000.p/5/",
            "tile/0/../000",
            "tile/0/x018/x446/x744/x073/x709/x551/616",
            "tile/0/x001/x018/x446/x744/x073/x709/x551/615",
            "tile/Entries/000",
            "tile/entries/000.p/1.p/2",
            "tile/0/ 000",
        ] {
            assert!(Tile::parse_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tiles_of_sizes() {
        assert!(hash_tiles(TreeSize(0)).is_empty());
        let paths = |v: Vec<Tile>| v.iter().map(Tile::path).collect::<Vec<_>>();
        assert_eq!(paths(hash_tiles(TreeSize(15))), ["tile/0/000.p/15"]);
        assert_eq!(
            paths(hash_tiles(TreeSize(256 * 256 + 513))),
            [
                paths(
                    (0..258)
                        .map(|index| Tile {
                            kind: TileKind::Hashes { level: 0 },
                            index,
                            width: if index == 258 { 1 } else { 256 },
                        })
                        .collect()
                ),
                vec![
                    "tile/0/258.p/1".into(),
                    "tile/1/000".into(),
                    "tile/1/001.p/2".into(),
                    "tile/2/000.p/1".into()
                ],
            ]
            .concat()
        );
        assert_eq!(
            paths(new_hash_tiles(TreeSize(300), TreeSize(600))),
            ["tile/0/001", "tile/0/002.p/88", "tile/1/000.p/2"]
        );
        assert_eq!(
            paths(new_hash_tiles(TreeSize(256), TreeSize(257))),
            ["tile/0/001.p/1"]
        );
        assert!(new_hash_tiles(TreeSize(5), TreeSize(5)).is_empty());
        assert_eq!(
            paths(new_entry_bundles(TreeSize(255), TreeSize(513))),
            [
                "tile/entries/000",
                "tile/entries/001",
                "tile/entries/002.p/1"
            ]
        );
    }
}
