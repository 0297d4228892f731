//! Tiles on top of [`Storage`]: extending the tree by a batch (new hash tiles and entry bundles
//! from the core [`RightEdge`]), and reading tiles back through the bounded
//! [`TileCache`] of the storage layer.
//!
//! Layout per C2SP tlog-tiles (spec `spec/tiles.md` §2, §4): the hash tile at level `L`, index
//! `N` holds the hashes of tree level `8 L` with indices `256 N ..`; entry bundle `N` holds
//! entries `256 N ..`. Tiles are extended with core's `tile_updates` (§6). A tile is stored as its
//! widest version; a narrower (older) version, still valid for older checkpoints, is its prefix.

use std::sync::{Arc, Mutex};

use verdict_core::merkle::{leaf_hash, Hash, LeafIndex, RightEdge, StoredHash, TreeSize};
use verdict_core::tile::{
    self, encode_entry_bundle, tile_updates, width_in, EntrySlot, Tile, TileKind, TileReader,
    TILE_HEIGHT, TILE_WIDTH,
};

use super::LogError;
use crate::storage::cache::TileCache;
use crate::storage::{Storage, StorageError, StoredTile, TileWrite};

/// The first `width` items of a stored tile: `width * 32` bytes of a hash tile, or the first
/// `width` length-prefixed entries of a bundle.
///
/// # Errors
/// [`StorageError::Corrupt`] when the stored tile is narrower or malformed.
pub fn tile_prefix(kind: TileKind, stored: &StoredTile, width: u16) -> Result<&[u8], StorageError> {
    let narrow = StorageError::Corrupt {
        what: "stored tile",
        reason: "narrower than needed",
    };
    if stored.width < width {
        return Err(narrow);
    }
    match kind {
        TileKind::Hashes { .. } => stored
            .bytes
            .get(..usize::from(width) * Hash::LEN)
            .ok_or(narrow),
        TileKind::Entries => {
            tile::bundle_prefix(&stored.bytes, usize::from(width)).map_err(corrupt_bundle)
        }
    }
}

/// Entry `position` of a bundle, with core's codec (spec `tiles.md` §4).
///
/// # Errors
/// [`StorageError::Corrupt`] when the bundle is shorter or malformed.
pub fn bundle_entry(bytes: &[u8], position: usize) -> Result<Vec<u8>, StorageError> {
    Ok(tile::bundle_entry(bytes, position)
        .map_err(corrupt_bundle)?
        .to_vec())
}

/// A stored entry bundle that core's codec rejects is corrupt storage.
fn corrupt_bundle(_: tile::BundleError) -> StorageError {
    StorageError::Corrupt {
        what: "entry bundle",
        reason: "truncated",
    }
}

/// The result of extending the tree by a batch.
#[derive(Debug)]
pub struct Extension {
    /// The right edge after the batch.
    pub edge: RightEdge,
    /// Hash tiles and entry bundles to write (whole tiles from their start).
    pub writes: Vec<TileWrite>,
}

/// Extend the tree of `edge` by `entries` (which get indices `edge.size()..`): compute the new
/// right edge and every hash tile and entry bundle that changes. Reads the stored prefix of
/// partial tiles and, for the partial entry bundle, the staged entries before `edge.size()`.
/// Writes nothing.
///
/// # Errors
/// [`LogError`] when storage fails, a stored tile is too narrow, or an entry is too long.
pub fn extend(
    storage: &dyn Storage,
    edge: &RightEdge,
    entries: &[Vec<u8>],
) -> Result<Extension, LogError> {
    let old = edge.size();
    let mut new_edge = edge.clone();
    let mut created = Vec::new();
    let mut sink = |stored: StoredHash| {
        if stored.level.is_multiple_of(TILE_HEIGHT) {
            created.push(stored);
        }
    };
    for entry in entries {
        new_edge.append(leaf_hash(entry), &mut sink)?;
    }
    let new = new_edge.size();
    // spec `tiles.md` §6: extend partial tiles with the hashes the append created.
    let read_old = |tile: Tile| -> Result<Option<Vec<u8>>, StorageError> {
        match storage.read_tile(tile.kind, tile.index)? {
            None => Ok(None),
            Some(stored) => tile_prefix(tile.kind, &stored, tile.width).map(|b| Some(b.to_vec())),
        }
    };
    let mut writes = Vec::new();
    for (tile, bytes) in tile_updates(old, new, &created, read_old)? {
        writes.push(TileWrite {
            kind: tile.kind,
            index: tile.index,
            tile: StoredTile {
                width: tile.width,
                bytes,
            },
        });
    }
    if new.0 > old.0 {
        let first = EntrySlot::of(LeafIndex(old.0)).bundle;
        let last = EntrySlot::of(LeafIndex(new.0 - 1)).bundle;
        for index in first..=last {
            writes.push(entry_bundle(storage, index, old, new, entries)?);
        }
    }
    Ok(Extension {
        edge: new_edge,
        writes,
    })
}

/// Entry bundle `index` of a tree of `new`, from staged entries before `old` and `batch` after.
fn entry_bundle(
    storage: &dyn Storage,
    index: u64,
    old: TreeSize,
    new: TreeSize,
    batch: &[Vec<u8>],
) -> Result<TileWrite, LogError> {
    let width = width_in(TileKind::Entries, index, new);
    let start = index.saturating_mul(u64::from(TILE_WIDTH));
    let end = start.saturating_add(u64::from(width));
    let mut items = if old.0 > start {
        storage.staged(LeafIndex(start), LeafIndex(old.0))?
    } else {
        Vec::new()
    };
    let from = usize::try_from(start.max(old.0) - old.0).unwrap_or(usize::MAX);
    let to = usize::try_from(end - old.0).unwrap_or(usize::MAX);
    let new_items = batch.get(from..to).ok_or(LogError::Integrity {
        what: "batch shorter than the tree extension",
    })?;
    items.extend(new_items.iter().cloned());
    if items.len() != usize::from(width) {
        return Err(LogError::Integrity {
            what: "entry bundle width does not match tree size",
        });
    }
    let bytes = encode_entry_bundle(&items).map_err(|_| LogError::EntryTooLarge {
        len: items.iter().map(Vec::len).max().unwrap_or(0),
        max: usize::from(u16::MAX),
    })?;
    Ok(TileWrite {
        kind: TileKind::Entries,
        index,
        tile: StoredTile { width, bytes },
    })
}

/// Reads tiles from storage through a [`TileCache`]; a [`TileReader`] for core proofs.
pub struct CachedTiles<'a> {
    storage: &'a dyn Storage,
    cache: &'a Mutex<TileCache>,
}

impl<'a> CachedTiles<'a> {
    /// Read `storage` through `cache`.
    pub fn new(storage: &'a dyn Storage, cache: &'a Mutex<TileCache>) -> Self {
        Self { storage, cache }
    }

    /// The stored tile, if it holds at least `width` items.
    ///
    /// # Errors
    /// Storage errors.
    pub fn stored(
        &self,
        kind: TileKind,
        index: u64,
        width: u16,
    ) -> Result<Option<Arc<StoredTile>>, StorageError> {
        let lock = || {
            self.cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(tile) = lock().get(kind, index, width) {
            return Ok(Some(tile));
        }
        let Some(tile) = self.storage.read_tile(kind, index)? else {
            return Ok(None);
        };
        if tile.width < width {
            return Ok(None);
        }
        let tile = Arc::new(tile);
        lock().insert(kind, index, Arc::clone(&tile));
        Ok(Some(tile))
    }
}

impl TileReader for CachedTiles<'_> {
    type Error = StorageError;

    fn read_tile(&self, tile: Tile) -> Result<Vec<u8>, StorageError> {
        let stored =
            self.stored(tile.kind, tile.index, tile.width)?
                .ok_or(StorageError::Missing {
                    what: "tile",
                    index: tile.index,
                })?;
        tile_prefix(tile.kind, &stored, tile.width).map(<[u8]>::to_vec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::mem::MemStorage;
    use crate::storage::StagedEntry;
    use verdict_core::merkle::root_of;
    use verdict_core::tile::{decode_entry_bundle, new_entry_bundles, new_hash_tiles};

    #[test]
    fn widths_follow_the_tree_size() {
        let h0 = TileKind::Hashes { level: 0 };
        let h1 = TileKind::Hashes { level: 1 };
        assert_eq!(width_in(h0, 0, TreeSize(0)), 0);
        assert_eq!(width_in(h0, 0, TreeSize(5)), 5);
        assert_eq!(width_in(h0, 0, TreeSize(300)), 256);
        assert_eq!(width_in(h0, 1, TreeSize(300)), 44);
        assert_eq!(width_in(h1, 0, TreeSize(300)), 1);
        assert_eq!(width_in(h1, 0, TreeSize(255)), 0);
        assert_eq!(
            width_in(TileKind::Hashes { level: 63 }, 0, TreeSize(u64::MAX)),
            0
        );
        assert_eq!(width_in(TileKind::Entries, u64::MAX, TreeSize(u64::MAX)), 0);
    }

    #[test]
    fn bundle_prefix_and_entries() {
        let stored = StoredTile {
            width: 3,
            bytes: vec![0, 1, 9, 0, 0, 0, 2, 7, 8],
        };
        assert_eq!(
            tile_prefix(TileKind::Entries, &stored, 1).unwrap(),
            &[0, 1, 9]
        );
        assert_eq!(tile_prefix(TileKind::Entries, &stored, 3).unwrap().len(), 9);
        assert!(tile_prefix(TileKind::Entries, &stored, 4).is_err());
        assert_eq!(bundle_entry(&stored.bytes, 1).unwrap(), Vec::<u8>::new());
        assert_eq!(bundle_entry(&stored.bytes, 2).unwrap(), vec![7, 8]);
        assert!(bundle_entry(&stored.bytes, 3).is_err());
        assert!(bundle_entry(&[0, 5, 1], 0).is_err());
    }

    /// Extend in uneven batches and compare with core's list of new tiles and naive roots.
    #[test]
    fn extension_writes_exactly_the_new_tiles() {
        let storage = MemStorage::new();
        let mut edge = RightEdge::new();
        let mut leaves = Vec::new();
        let mut next = 0u32;
        for batch_len in [1usize, 2, 255, 1, 300, 70000 / 256, 513] {
            let batch: Vec<Vec<u8>> = (0..batch_len)
                .map(|i| (next + i as u32).to_be_bytes().to_vec())
                .collect();
            next += batch_len as u32;
            let staged: Vec<_> = batch
                .iter()
                .map(|e| StagedEntry {
                    entry: e.clone(),
                    private: None,
                })
                .collect();
            storage.stage(LeafIndex(edge.size().0), &staged).unwrap();
            let ext = extend(&storage, &edge, &batch).unwrap();
            let old = edge.size();
            let new = ext.edge.size();
            let mut expected = new_hash_tiles(old, new);
            expected.extend(new_entry_bundles(old, new));
            let mut got: Vec<Tile> = ext
                .writes
                .iter()
                .map(|w| Tile {
                    kind: w.kind,
                    index: w.index,
                    width: w.tile.width,
                })
                .collect();
            expected.sort();
            got.sort();
            assert_eq!(got, expected, "tiles from {old:?} to {new:?}");
            storage.write_tiles(&ext.writes).unwrap();
            leaves.extend(batch.iter().map(|e| leaf_hash(e)));
            assert_eq!(ext.edge.root(), root_of(&leaves));
            edge = ext.edge;
        }
        let bundle = storage.read_tile(TileKind::Entries, 1).unwrap().unwrap();
        let entries = decode_entry_bundle(&bundle.bytes).unwrap();
        assert_eq!(entries[0], 256u32.to_be_bytes().to_vec());
        let tile = storage
            .read_tile(TileKind::Hashes { level: 0 }, 0)
            .unwrap()
            .unwrap();
        assert_eq!(&tile.bytes[32..64], &leaves[1].0);
    }

    #[test]
    fn cache_is_bounded_and_serves_prefixes() {
        let storage = MemStorage::new();
        let write = |index: u64, width: u16| TileWrite {
            kind: TileKind::Hashes { level: 0 },
            index,
            tile: StoredTile {
                width,
                bytes: vec![index as u8; usize::from(width) * 32],
            },
        };
        storage
            .write_tiles(&[write(0, 2), write(1, 256), write(2, 256)])
            .unwrap();
        let cache = Mutex::new(TileCache::new(256 * 32 + 100));
        let tiles = CachedTiles::new(&storage, &cache);
        let t = |index, width| Tile {
            kind: TileKind::Hashes { level: 0 },
            index,
            width,
        };
        assert_eq!(tiles.read_tile(t(0, 1)).unwrap(), vec![0; 32]);
        assert!(tiles.read_tile(t(0, 3)).is_err());
        assert_eq!(tiles.read_tile(t(1, 256)).unwrap().len(), 256 * 32);
        assert_eq!(tiles.read_tile(t(2, 10)).unwrap(), vec![2; 320]);
        assert!(cache.lock().unwrap().bytes() <= 256 * 32 + 100);
        // Widening a cached partial tile is seen once storage has it.
        storage.write_tiles(&[write(0, 3)]).unwrap();
        assert_eq!(tiles.read_tile(t(0, 3)).unwrap().len(), 96);
    }
}
