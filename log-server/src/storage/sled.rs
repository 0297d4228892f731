//! The default [`Storage`]: one sled 0.34 `Db` with separate trees, plus full tiles as files.
//!
//! Trees: `state` (the published [`LogState`] and the staged size), `staged` (entries by index),
//! `private` (private records by index), `tiles` (hash tile records by level and index), `entries`
//! (entry bundle records by index), `policies` (policy-registry records, [`Storage::put_policy_record`]),
//! `escalations` (escalation records by id, [`Storage::swap_escalation`]).
//! (Stores of earlier versions also hold an unused `aux` tree.)
//! Multi-tree writes use sled transactions; every write ends with `flush()`, sled's durability
//! point, before it returns.
//!
//! Tile records in sled are partial tiles only (width (u16 big-endian) then the bytes). A full
//! tile (width 256) is a file ([`TileFiles`]) and has no record: the transaction that makes a
//! tile full deletes its partial record. Full tiles are immutable, so keeping them out of sled
//! keeps sled small (its tile trees hold about one partial tile per level), and its memory with
//! it: reading a full tile allocates only the returned bytes, whatever the size of the log.
//!
//! A full tile file counts only if the committed tree covers it, which is checked on every read
//! from the Merkle tree itself (RFC 9162 §2.1.1, spec `tiles.md` §2, §4):
//! - a full hash tile at level `L`, index `N`: the root of its 256 hashes must be hash `N % 256`
//!   of the level `L + 1` tile `N / 256` (read the same way, up to a partial tile in sled);
//! - a full entry bundle `N`: the leaf hashes of its 256 entries must be the level-0 tile `N`.
//!
//! If the parent does not reach that far, the file is a leftover of a write that did not commit
//! (it is ignored: the tile reads as its sled record, or as absent). If the parent covers it and
//! the bytes differ, the read is [`StorageError::Corrupt`]: a damaged file is never served.
//! [`Storage::write_tiles`] writes and fsyncs the files before the sled transaction that commits
//! their parents, so `write_tiles` stays atomic as seen by readers, and a retry after a crash finds
//! the leftover files byte-identical (see [`crate::storage::files`]). Stores written before tile
//! files (full tiles as sled records) are still read.

mod trees;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use sled::transaction::ConflictableTransactionError;
use sled::Transactional as _;
use verdict_core::merkle::{leaf_hash, root_of, Hash, LeafIndex, TreeSize};
use verdict_core::tile::{bundle_entries, EntrySlot, TileKind, TILE_WIDTH};

use crate::storage::cache::TileCache;
use crate::storage::files::{FullTile, TileFiles};
use crate::storage::{
    check_tile_write, decode_tile, encode_tile, merge_tile, LogState, StagedEntry, Storage,
    StorageError, StoredTile, TileWrite,
};

/// Key of the published state in the `state` tree.
const KEY_PUBLISHED: &[u8] = b"published";
/// Key of the staged size (u64 big-endian) in the `state` tree.
const KEY_STAGED_SIZE: &[u8] = b"staged_size";

/// Default size of sled's page cache: 64 MiB. With full tiles in files, sled holds only partial
/// tiles (about one per level), staged entries until their bundle is full, private records and
/// the state, so the cache mostly serves the write path. (8 MiB was measured: no lower server
/// RSS, a third slower writes at 256-entry batches.)
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

/// Highest hash tile level (tree levels are 0..=63, tile levels 0..=7).
const MAX_TILE_LEVEL: u8 = 7;

/// Bytes of verified full hash tiles of level 1 and up kept in memory (512 tiles): the upper
/// part of every check chain, so that a level-0 tile or bundle read does not re-read and
/// re-hash its ancestors. At 10M entries there are 152 such tiles; above ~33M entries the cache
/// holds the most recently read ones.
const PARENT_CACHE_BYTES: usize = 4 << 20;

/// Why a full tile file does not count.
fn corrupt(reason: &'static str) -> StorageError {
    StorageError::Corrupt {
        what: "tile file",
        reason,
    }
}

/// The leaf hashes of a full entry bundle, as the bytes of its level-0 hash tile. The bundle is
/// read with core's codec (spec `tiles.md` §4) and must hold exactly 256 entries.
fn bundle_leaf_hashes(bytes: &[u8]) -> Result<Vec<u8>, StorageError> {
    let mut out = Vec::with_capacity(usize::from(TILE_WIDTH) * Hash::LEN);
    let mut entries = bundle_entries(bytes);
    for entry in entries.by_ref().take(usize::from(TILE_WIDTH)) {
        let entry = entry.map_err(|_| corrupt("truncated entry bundle"))?;
        out.extend_from_slice(&leaf_hash(entry).0);
    }
    if out.len() < usize::from(TILE_WIDTH) * Hash::LEN {
        return Err(corrupt("truncated entry bundle"));
    }
    if entries.next().is_some() {
        return Err(corrupt("entry bundle holds more than 256 entries"));
    }
    Ok(out)
}

/// sled-backed storage. Cheap to share behind an `Arc`.
#[derive(Clone, Debug)]
pub struct SledStorage {
    path: PathBuf,
    cache_bytes: u64,
    files: Arc<TileFiles>,
    parents: Arc<Mutex<TileCache>>,
    /// The open `Db` and its trees; replaced by [`Storage::recover`] after an I/O error (`None`
    /// while it reopens, or when reopening failed).
    handle: Arc<RwLock<Option<Arc<Trees>>>>,
}

pub(crate) use trees::Trees;
use trees::{backend, decode_u64, hash_tile_key, index_key, tx_error};

impl SledStorage {
    /// Open (or create) the store in directory `path`, with a page cache of
    /// [`DEFAULT_CACHE_BYTES`].
    ///
    /// # Errors
    /// [`StorageError::Backend`] when sled cannot open it (e.g. another process holds it).
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Open (or create) the store in directory `path` with a page cache of `cache_bytes`
    /// (sled's own default is 1 GiB, which would let memory grow with the log). Full tile files
    /// live in `path/tile/` (C2SP tlog-tiles layout), temporary files in `path/tile-tmp/`.
    ///
    /// # Errors
    /// [`StorageError::Backend`] when sled cannot open it (e.g. another process holds it) or the
    /// tile directories cannot be prepared.
    pub fn open_with_cache(path: &Path, cache_bytes: u64) -> Result<Self, StorageError> {
        let trees = Trees::open(path, cache_bytes)?;
        // Only after sled's lock is held: opening the files deletes temporary files.
        Ok(Self {
            path: path.to_path_buf(),
            cache_bytes,
            files: Arc::new(TileFiles::open(path)?),
            parents: Arc::new(Mutex::new(TileCache::new(PARENT_CACHE_BYTES))),
            handle: Arc::new(RwLock::new(Some(Arc::new(trees)))),
        })
    }

    /// The open `Db` and trees.
    ///
    /// # Errors
    /// [`StorageError::Backend`] while the store is closed (reopening failed; see
    /// [`Storage::recover`]).
    pub(crate) fn trees(&self) -> Result<Arc<Trees>, StorageError> {
        self.handle
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or_else(|| StorageError::Backend {
                op: "use store",
                source: "the sled store is closed after a failed reopen".into(),
            })
    }

    /// Whether the committed tree covers the full tile file `bytes` of `kind` and `index`:
    /// `Ok(true)` when its parent tile holds it, `Ok(false)` when the parent does not reach it
    /// (a leftover of a write that did not commit). See the module docs.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] when the parent covers the tile and the bytes differ.
    fn covered(&self, kind: TileKind, index: u64, bytes: &[u8]) -> Result<bool, StorageError> {
        let (parent, slot, expected) = match kind {
            TileKind::Entries => (
                TileKind::Hashes { level: 0 },
                None,
                bundle_leaf_hashes(bytes)?,
            ),
            TileKind::Hashes { level } => {
                if level >= MAX_TILE_LEVEL {
                    return Err(corrupt("full tile at the top level"));
                }
                let hashes = bytes
                    .chunks_exact(Hash::LEN)
                    .map(Hash::from_slice)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| corrupt("hash tile length"))?;
                // The tile's root is hash `index` of the parent level: it sits in parent tile
                // `index / 256` at `index mod 256`, the same arithmetic as an entry's slot.
                (
                    TileKind::Hashes { level: level + 1 },
                    Some(EntrySlot::of(LeafIndex(index))),
                    root_of(&hashes).0.to_vec(),
                )
            }
        };
        let (parent_index, start, width_needed) = match slot {
            None => (index, 0, TILE_WIDTH),
            Some(s) => (s.bundle, s.position * Hash::LEN, s.min_width()),
        };
        let Some(parent_tile) = self.read_tile(parent, parent_index)? else {
            return Ok(false);
        };
        if parent_tile.width < width_needed {
            return Ok(false);
        }
        let held = parent_tile
            .bytes
            .get(start..start + expected.len())
            .ok_or(corrupt("parent tile too short"))?;
        if held == expected.as_slice() {
            Ok(true)
        } else {
            Err(corrupt("does not match the tree"))
        }
    }
}

/// A record change of `write_tiles`: key, plan, new record (`None`: delete, the tile is full).
type RecordWrite<'a> = (&'a Vec<u8>, &'a Planned, Option<Vec<u8>>);

/// One tile touched by a `write_tiles` call: its record before, and its merged content.
struct Planned {
    kind: TileKind,
    index: u64,
    before: Option<sled::IVec>,
    tile: Option<StoredTile>,
    changed: bool,
}

fn tile_key(kind: TileKind, index: u64) -> Vec<u8> {
    match kind {
        TileKind::Hashes { level } => hash_tile_key(level, index).to_vec(),
        TileKind::Entries => index_key(index).to_vec(),
    }
}

impl Storage for SledStorage {
    fn staged_size(&self) -> Result<TreeSize, StorageError> {
        match self
            .trees()?
            .state
            .get(KEY_STAGED_SIZE)
            .map_err(backend("staged size"))?
        {
            None => Ok(TreeSize(0)),
            Some(bytes) => decode_u64("staged size", &bytes).map(TreeSize),
        }
    }

    fn stage(&self, start: LeafIndex, batch: &[StagedEntry]) -> Result<(), StorageError> {
        let count = u64::try_from(batch.len()).map_err(|_| StorageError::Corrupt {
            what: "batch",
            reason: "too long",
        })?;
        let end = start.0.checked_add(count).ok_or(StorageError::Corrupt {
            what: "batch",
            reason: "index overflow",
        })?;
        let t = self.trees()?;
        (&t.state, &t.staged, &t.private)
            .transaction(|(state, staged, private)| {
                let current = match state.get(KEY_STAGED_SIZE)? {
                    None => 0,
                    Some(bytes) => decode_u64("staged size", &bytes)
                        .map_err(ConflictableTransactionError::Abort)?,
                };
                if current != start.0 {
                    return Err(ConflictableTransactionError::Abort(
                        StorageError::NotContiguous {
                            staged_size: current,
                            start: start.0,
                        },
                    ));
                }
                for (index, item) in (start.0..).zip(batch) {
                    staged.insert(&index_key(index), item.entry.as_slice())?;
                    if let Some(record) = &item.private {
                        private.insert(&index_key(index), record.as_slice())?;
                    }
                }
                state.insert(KEY_STAGED_SIZE, &end.to_be_bytes())?;
                Ok(())
            })
            .map_err(tx_error("stage"))?;
        t.flush("stage")
    }

    fn staged(&self, start: LeafIndex, end: LeafIndex) -> Result<Vec<Vec<u8>>, StorageError> {
        let t = self.trees()?;
        let mut out = Vec::new();
        for index in start.0..end.0 {
            let entry = t
                .staged
                .get(index_key(index))
                .map_err(backend("read staged"))?
                .ok_or(StorageError::Missing {
                    what: "staged entry",
                    index,
                })?;
            out.push(entry.to_vec());
        }
        Ok(out)
    }

    fn prune_staged(&self, below: LeafIndex) -> Result<(), StorageError> {
        let t = self.trees()?;
        let mut batch = sled::Batch::default();
        for item in t.staged.range(..index_key(below.0)) {
            let (key, _) = item.map_err(backend("prune staged"))?;
            batch.remove(key);
        }
        t.staged.apply_batch(batch).map_err(backend("prune staged"))
    }

    fn private_record(&self, index: LeafIndex) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .trees()?
            .private
            .get(index_key(index.0))
            .map_err(backend("read private"))?
            .map(|v| v.to_vec()))
    }

    fn put_policy_record(&self, key: &[u8], value: Option<&[u8]>) -> Result<(), StorageError> {
        let trees = self.trees()?;
        match value {
            Some(v) => trees.policies.insert(key, v).map(drop),
            None => trees.policies.remove(key).map(drop),
        }
        .map_err(backend("write policy record"))?;
        trees.flush("flush policy record")
    }

    fn policy_records(&self) -> Result<Vec<super::PolicyRecordEntry>, StorageError> {
        self.trees()?
            .policies
            .iter()
            .map(|r| {
                r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(backend("read policy records"))
            })
            .collect()
    }

    fn escalation(&self, id: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .trees()?
            .escalations
            .get(id)
            .map_err(backend("read escalation"))?
            .map(|v| v.to_vec()))
    }

    fn escalations(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StorageError> {
        self.trees()?
            .escalations
            .iter()
            .map(|r| {
                r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(backend("read escalations"))
            })
            .collect()
    }

    fn swap_escalation(
        &self,
        id: &[u8],
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, StorageError> {
        let trees = self.trees()?;
        let swapped = trees
            .escalations
            .compare_and_swap(id, expected, Some(new))
            .map_err(backend("swap escalation"))?
            .is_ok();
        if swapped {
            trees.flush("flush escalation")?;
        }
        Ok(swapped)
    }

    fn write_tiles(&self, tiles: &[TileWrite]) -> Result<(), StorageError> {
        for write in tiles {
            check_tile_write(write)?;
        }
        // 1. Merge every write with the stored tile, from its record or its (covered) file. Only
        //    the sequencer writes, so the records read here are the ones the transaction below
        //    finds, which it checks.
        let t = self.trees()?;
        let mut plan: BTreeMap<Vec<u8>, Planned> = BTreeMap::new();
        for write in tiles {
            let key = tile_key(write.kind, write.index);
            if !plan.contains_key(&key) {
                let before = t
                    .tile_tree(write.kind)
                    .get(&key)
                    .map_err(backend("read tile"))?;
                let tile = self.read_tile(write.kind, write.index)?;
                plan.insert(
                    key.clone(),
                    Planned {
                        kind: write.kind,
                        index: write.index,
                        before,
                        tile,
                        changed: false,
                    },
                );
            }
            let Some(entry) = plan.get_mut(&key) else {
                continue;
            };
            if let Some(merged) = merge_tile(entry.tile.as_ref(), write)? {
                entry.tile = Some(merged);
                entry.changed = true;
            }
        }
        // 2. Full tiles go to files, durably, before the records that make the tree cover them.
        let full: Vec<FullTile<'_>> = plan
            .values()
            .filter(|p| p.changed)
            .filter_map(|p| {
                let tile = p.tile.as_ref()?;
                (tile.width == TILE_WIDTH).then_some(FullTile {
                    kind: p.kind,
                    index: p.index,
                    bytes: &tile.bytes,
                })
            })
            .collect();
        self.files.write_full(&full)?;
        // 3. The records, atomically, then flush: a partial tile is stored, a full one's partial
        //    record is removed (its file is covered by the parent tile written alongside).
        let records: Vec<RecordWrite<'_>> = plan
            .iter()
            .filter(|(_, p)| p.changed)
            .filter_map(|(key, p)| {
                let tile = p.tile.as_ref()?;
                Some((key, p, (tile.width < TILE_WIDTH).then(|| encode_tile(tile))))
            })
            .collect();
        // Flush even when nothing changed: an earlier call may have written without flushing.
        (&t.tiles, &t.entries)
            .transaction(|(hash_tiles, bundles)| {
                for (key, planned, record) in &records {
                    let tree = match planned.kind {
                        TileKind::Hashes { .. } => hash_tiles,
                        TileKind::Entries => bundles,
                    };
                    if tree.get(key.as_slice())? != planned.before {
                        return Err(ConflictableTransactionError::Abort(
                            StorageError::TileConflict {
                                kind: planned.kind,
                                index: planned.index,
                            },
                        ));
                    }
                    match record {
                        Some(record) => tree.insert(key.as_slice(), record.as_slice())?,
                        None => tree.remove(key.as_slice())?,
                    };
                }
                Ok(())
            })
            .map_err(tx_error("write tiles"))?;
        t.flush("write tiles")
    }

    fn read_tile(&self, kind: TileKind, index: u64) -> Result<Option<StoredTile>, StorageError> {
        if let Some(raw) = self
            .trees()?
            .tile_tree(kind)
            .get(tile_key(kind, index))
            .map_err(backend("read tile"))?
        {
            return decode_tile(&raw).map(Some);
        }
        let cacheable = matches!(kind, TileKind::Hashes { level } if level >= 1);
        let lock = || {
            self.parents
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if cacheable {
            if let Some(tile) = lock().get(kind, index, TILE_WIDTH) {
                return Ok(Some(StoredTile::clone(&tile)));
            }
        }
        let Some(bytes) = self.files.read_full(kind, index)? else {
            return Ok(None);
        };
        if !self.covered(kind, index, &bytes)? {
            return Ok(None);
        }
        let tile = StoredTile {
            width: TILE_WIDTH,
            bytes,
        };
        if cacheable {
            lock().insert(kind, index, Arc::new(tile.clone()));
        }
        Ok(Some(tile))
    }

    fn state(&self) -> Result<Option<LogState>, StorageError> {
        self.trees()?
            .state
            .get(KEY_PUBLISHED)
            .map_err(backend("read state"))?
            .map(|bytes| LogState::decode(&bytes))
            .transpose()
    }

    fn publish(&self, expected: Option<&LogState>, new: &LogState) -> Result<(), StorageError> {
        let t = self.trees()?;
        let old = expected.map(LogState::encode);
        let swapped = t
            .state
            .compare_and_swap(KEY_PUBLISHED, old, Some(new.encode()))
            .map_err(backend("publish"))?;
        if let Err(error) = swapped {
            let found = error
                .current
                .and_then(|bytes| LogState::decode(&bytes).ok());
            return Err(StorageError::StateConflict {
                expected: expected.map(|s| s.size.0),
                found: found.map(|s| s.size.0),
            });
        }
        t.flush("publish")
    }

    /// Reopen the `Db`: after a failed write (e.g. disk full) sled 0.34 keeps a global error and
    /// fails every later call, so the sequencer calls this before re-reading the state. The old
    /// handle is dropped first (it holds sled's file lock); sled's recovery on open keeps every
    /// flushed write and drops the unflushed ones, as after a crash.
    fn recover(&self) -> Result<(), StorageError> {
        let mut handle = self
            .handle
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if handle.as_ref().is_some_and(|t| t.db.flush().is_ok()) {
            return Ok(());
        }
        // Drop our handle; readers that still hold a clone keep its files open for a moment.
        *handle = None;
        let mut attempt = 0u32;
        loop {
            match Trees::open(&self.path, self.cache_bytes) {
                Ok(trees) => {
                    *handle = Some(Arc::new(trees));
                    tracing::warn!(
                        path = %self.path.display(),
                        "reopened the sled store {} after a write failure",
                        self.path.display()
                    );
                    return Ok(());
                }
                Err(error) if attempt >= 10 || error.is_integrity() => return Err(error),
                Err(_) => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "sled_tests.rs"]
mod tests;
