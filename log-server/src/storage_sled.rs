//! The default [`Storage`]: one sled 0.34 `Db` with separate trees.
//!
//! Trees: `state` (the published [`LogState`] and the staged size), `staged` (entries by index),
//! `private` (private records by index), `tiles` (hash tiles by level and index), `entries`
//! (entry bundles by index) and `aux` (records of other components, such as policies).
//! Multi-tree writes use sled transactions; every write ends with `flush()`, sled's durability
//! point, before it returns.

use std::path::Path;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional as _;
use verdict_core::merkle::{LeafIndex, TreeSize};
use verdict_core::tile::TileKind;

use crate::storage::{
    check_tile_write, decode_tile, encode_tile, merge_tile, AuxRecords, LogState, StagedEntry,
    Storage, StorageError, StoredTile, TileWrite,
};

/// Key of the published state in the `state` tree.
const KEY_PUBLISHED: &[u8] = b"published";
/// Key of the staged size (u64 big-endian) in the `state` tree.
const KEY_STAGED_SIZE: &[u8] = b"staged_size";

/// Default size of sled's page cache: 64 MiB.
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

/// sled-backed storage. Cheap to share behind an `Arc`.
#[derive(Clone, Debug)]
pub struct SledStorage {
    db: sled::Db,
    state: sled::Tree,
    staged: sled::Tree,
    private: sled::Tree,
    tiles: sled::Tree,
    entries: sled::Tree,
    aux: sled::Tree,
}

fn backend(op: &'static str) -> impl Fn(sled::Error) -> StorageError {
    move |source| StorageError::Backend {
        op,
        source: Box::new(source),
    }
}

fn tx_error(op: &'static str) -> impl Fn(TransactionError<StorageError>) -> StorageError {
    move |error| match error {
        TransactionError::Abort(error) => error,
        TransactionError::Storage(source) => StorageError::Backend {
            op,
            source: Box::new(source),
        },
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn hash_tile_key(level: u8, index: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    let (first, rest) = key.split_at_mut(1);
    first.copy_from_slice(&[level]);
    rest.copy_from_slice(&index.to_be_bytes());
    key
}

fn decode_u64(what: &'static str, bytes: &[u8]) -> Result<u64, StorageError> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| StorageError::Corrupt {
            what,
            reason: "not 8 bytes",
        })
}

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
    /// (sled's own default is 1 GiB, which would let memory grow with the log).
    ///
    /// # Errors
    /// [`StorageError::Backend`] when sled cannot open it (e.g. another process holds it).
    pub fn open_with_cache(path: &Path, cache_bytes: u64) -> Result<Self, StorageError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(backend("open"))?;
        Self::from_db(db)
    }

    /// Use an already opened sled `Db` (the trees listed in the module docs are created in it).
    ///
    /// # Errors
    /// [`StorageError::Backend`] when a tree cannot be opened.
    pub fn from_db(db: sled::Db) -> Result<Self, StorageError> {
        let tree = |name: &str| db.open_tree(name).map_err(backend("open tree"));
        Ok(Self {
            state: tree("state")?,
            staged: tree("staged")?,
            private: tree("private")?,
            tiles: tree("tiles")?,
            entries: tree("entries")?,
            aux: tree("aux")?,
            db,
        })
    }

    fn flush(&self, op: &'static str) -> Result<(), StorageError> {
        self.db.flush().map(drop).map_err(backend(op))
    }

    fn tile_tree(&self, kind: TileKind) -> &sled::Tree {
        match kind {
            TileKind::Hashes { .. } => &self.tiles,
            TileKind::Entries => &self.entries,
        }
    }
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
        (&self.state, &self.staged, &self.private)
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
        self.flush("stage")
    }

    fn staged(&self, start: LeafIndex, end: LeafIndex) -> Result<Vec<Vec<u8>>, StorageError> {
        let mut out = Vec::new();
        for index in start.0..end.0 {
            let entry = self
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
        let mut batch = sled::Batch::default();
        for item in self.staged.range(..index_key(below.0)) {
            let (key, _) = item.map_err(backend("prune staged"))?;
            batch.remove(key);
        }
        self.staged
            .apply_batch(batch)
            .map_err(backend("prune staged"))
    }

    fn private_record(&self, index: LeafIndex) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .private
            .get(index_key(index.0))
            .map_err(backend("read private"))?
            .map(|v| v.to_vec()))
    }

    fn write_tiles(&self, tiles: &[TileWrite]) -> Result<(), StorageError> {
        for write in tiles {
            check_tile_write(write)?;
        }
        (&self.tiles, &self.entries)
            .transaction(|(hash_tiles, bundles)| {
                for write in tiles {
                    let tree = match write.kind {
                        TileKind::Hashes { .. } => hash_tiles,
                        TileKind::Entries => bundles,
                    };
                    let key = tile_key(write.kind, write.index);
                    let stored = match tree.get(&key)? {
                        None => None,
                        Some(bytes) => {
                            Some(decode_tile(&bytes).map_err(ConflictableTransactionError::Abort)?)
                        }
                    };
                    let merged = merge_tile(stored.as_ref(), write)
                        .map_err(ConflictableTransactionError::Abort)?;
                    if let Some(tile) = merged {
                        tree.insert(key, encode_tile(&tile))?;
                    }
                }
                Ok(())
            })
            .map_err(tx_error("write tiles"))?;
        self.flush("write tiles")
    }

    fn read_tile(&self, kind: TileKind, index: u64) -> Result<Option<StoredTile>, StorageError> {
        self.tile_tree(kind)
            .get(tile_key(kind, index))
            .map_err(backend("read tile"))?
            .map(|bytes| decode_tile(&bytes))
            .transpose()
    }

    fn state(&self) -> Result<Option<LogState>, StorageError> {
        self.state
            .get(KEY_PUBLISHED)
            .map_err(backend("read state"))?
            .map(|bytes| LogState::decode(&bytes))
            .transpose()
    }

    fn publish(&self, expected: Option<&LogState>, new: &LogState) -> Result<(), StorageError> {
        let old = expected.map(LogState::encode);
        let swapped = self
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
        self.flush("publish")
    }

    fn put_aux(&self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.aux.insert(key, value).map_err(backend("put aux"))?;
        self.flush("put aux")
    }

    fn aux(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .aux
            .get(key)
            .map_err(backend("read aux"))?
            .map(|v| v.to_vec()))
    }

    fn aux_with_prefix(&self, prefix: &[u8]) -> Result<AuxRecords, StorageError> {
        self.aux
            .scan_prefix(prefix)
            .map(|item| {
                item.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(backend("scan aux"))
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]
mod tests {
    use super::*;
    use verdict_core::merkle::Hash;

    fn entry(n: u8) -> StagedEntry {
        StagedEntry {
            entry: vec![n; 3],
            private: Some(vec![n, n]),
        }
    }

    #[test]
    fn stages_contiguously_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStorage::open(dir.path()).unwrap();
            assert_eq!(store.staged_size().unwrap(), TreeSize(0));
            store.stage(LeafIndex(0), &[entry(1), entry(2)]).unwrap();
            let err = store.stage(LeafIndex(5), &[entry(3)]).unwrap_err();
            assert!(matches!(
                err,
                StorageError::NotContiguous {
                    staged_size: 2,
                    start: 5
                }
            ));
            store
                .stage(
                    LeafIndex(2),
                    &[StagedEntry {
                        entry: vec![9],
                        private: None,
                    }],
                )
                .unwrap();
        }
        let store = SledStorage::open(dir.path()).unwrap();
        assert_eq!(store.staged_size().unwrap(), TreeSize(3));
        assert_eq!(
            store.staged(LeafIndex(1), LeafIndex(3)).unwrap(),
            vec![vec![2; 3], vec![9]]
        );
        assert_eq!(
            store.private_record(LeafIndex(0)).unwrap(),
            Some(vec![1, 1])
        );
        assert_eq!(store.private_record(LeafIndex(2)).unwrap(), None);
        store.prune_staged(LeafIndex(2)).unwrap();
        assert!(matches!(
            store.staged(LeafIndex(0), LeafIndex(3)),
            Err(StorageError::Missing { index: 0, .. })
        ));
        assert_eq!(store.staged(LeafIndex(2), LeafIndex(3)).unwrap().len(), 1);
    }

    #[test]
    fn publish_is_compare_and_swap() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStorage::open(dir.path()).unwrap();
        let s0 = LogState {
            size: TreeSize(0),
            right_edge: vec![],
            checkpoint: b"a\n".to_vec(),
        };
        let s1 = LogState {
            size: TreeSize(1),
            right_edge: vec![Hash([3; 32])],
            checkpoint: b"b\n".to_vec(),
        };
        assert_eq!(store.state().unwrap(), None);
        store.publish(None, &s0).unwrap();
        assert!(matches!(
            store.publish(None, &s1),
            Err(StorageError::StateConflict {
                expected: None,
                found: Some(0)
            })
        ));
        store.publish(Some(&s0), &s1).unwrap();
        assert!(store.publish(Some(&s0), &s1).is_err());
        assert_eq!(store.state().unwrap(), Some(s1));
    }

    #[test]
    fn tiles_are_immutable_and_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStorage::open(dir.path()).unwrap();
        let hashes = |w: u16, b: u8| TileWrite {
            kind: TileKind::Hashes { level: 1 },
            index: 4,
            tile: StoredTile {
                width: w,
                bytes: vec![b; usize::from(w) * 32],
            },
        };
        let bundle = TileWrite {
            kind: TileKind::Entries,
            index: 4,
            tile: StoredTile {
                width: 1,
                bytes: vec![0, 1, 7],
            },
        };
        store.write_tiles(&[hashes(1, 5), bundle.clone()]).unwrap();
        store.write_tiles(&[hashes(2, 5)]).unwrap();
        // A conflicting write in a batch writes nothing, not even the good tiles before it.
        let other = TileWrite {
            index: 5,
            ..bundle.clone()
        };
        assert!(matches!(
            store.write_tiles(&[other, hashes(3, 6)]),
            Err(StorageError::TileConflict { index: 4, .. })
        ));
        assert_eq!(store.read_tile(TileKind::Entries, 5).unwrap(), None);
        assert_eq!(
            store
                .read_tile(TileKind::Hashes { level: 1 }, 4)
                .unwrap()
                .unwrap()
                .width,
            2
        );
        assert_eq!(
            store.read_tile(TileKind::Hashes { level: 0 }, 4).unwrap(),
            None
        );
        assert_eq!(
            store.read_tile(TileKind::Entries, 4).unwrap(),
            Some(bundle.tile)
        );
    }

    #[test]
    fn aux_records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStorage::open(dir.path()).unwrap();
        store.put_aux(b"policy/a", b"1").unwrap();
        store.put_aux(b"policy/b", b"2").unwrap();
        store.put_aux(b"other", b"3").unwrap();
        assert_eq!(store.aux(b"other").unwrap(), Some(b"3".to_vec()));
        let listed = store.aux_with_prefix(b"policy/").unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[1], (b"policy/b".to_vec(), b"2".to_vec()));
    }
}
