//! Tests of [`crate::storage::sled`]: sled records, full tile files, crash leftovers, damage.

use super::*;
use crate::storage::files::FullTile;
use verdict_core::merkle::RightEdge;

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
        let store = open_retrying(dir.path());
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
    let store = open_retrying(dir.path());
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
    let store = open_retrying(dir.path());
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
    let store = open_retrying(dir.path());
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

/// Stage `count` entries after `edge` and compute (but do not write) their tiles.
fn stage_and_extend(
    store: &SledStorage,
    edge: &RightEdge,
    count: u64,
) -> crate::log::tiles::Extension {
    let start = edge.size().0;
    let entries: Vec<Vec<u8>> = (start..start + count)
        .map(|i| format!("entry {i}").into_bytes())
        .collect();
    let staged: Vec<_> = entries
        .iter()
        .map(|e| StagedEntry {
            entry: e.clone(),
            private: None,
        })
        .collect();
    store.stage(LeafIndex(start), &staged).unwrap();
    crate::log::tiles::extend(store, edge, &entries).unwrap()
}

/// Grow the tree by `count` entries, writing the tiles.
fn grow(store: &SledStorage, edge: RightEdge, count: u64) -> RightEdge {
    let extension = stage_and_extend(store, &edge, count);
    store.write_tiles(&extension.writes).unwrap();
    extension.edge
}

fn full_files(ext: &crate::log::tiles::Extension) -> Vec<FullTile<'_>> {
    ext.writes
        .iter()
        .filter(|w| w.tile.width == TILE_WIDTH)
        .map(|w| FullTile {
            kind: w.kind,
            index: w.index,
            bytes: &w.tile.bytes,
        })
        .collect()
}

const H0: TileKind = TileKind::Hashes { level: 0 };

#[test]
fn full_tiles_live_in_files_and_partial_ones_in_sled() {
    let dir = tempfile::tempdir().unwrap();
    let expected;
    {
        let store = open_retrying(dir.path());
        let edge = grow(&store, RightEdge::new(), 100);
        assert!(store
            .trees()
            .unwrap()
            .tiles
            .get(tile_key(H0, 0))
            .unwrap()
            .is_some());
        let edge = grow(&store, edge, 500);
        // Full tiles: files at their C2SP paths, no sled record; partial ones in sled.
        assert!(store
            .trees()
            .unwrap()
            .tiles
            .get(tile_key(H0, 0))
            .unwrap()
            .is_none());
        assert!(store
            .trees()
            .unwrap()
            .entries
            .get(tile_key(TileKind::Entries, 1))
            .unwrap()
            .is_none());
        assert!(store
            .trees()
            .unwrap()
            .tiles
            .get(tile_key(H0, 2))
            .unwrap()
            .is_some());
        assert_eq!(
            std::fs::read(dir.path().join("tile/0/001")).unwrap().len(),
            8192
        );
        assert!(dir.path().join("tile/entries/000").is_file());
        assert!(!dir.path().join("tile/0/002").exists());
        assert_eq!(
            store.trees().unwrap().tiles.len(),
            2,
            "one partial tile per level"
        );
        let tile = store.read_tile(H0, 1).unwrap().unwrap();
        assert_eq!(tile.width, 256);
        let bundle = store.read_tile(TileKind::Entries, 1).unwrap().unwrap();
        assert_eq!(tile.bytes, bundle_leaf_hashes(&bundle.bytes).unwrap());
        expected = (tile, edge.root());
        // Rewriting a full tile: a prefix is a no-op, other bytes are refused.
        let mut prefix = TileWrite {
            kind: H0,
            index: 1,
            tile: StoredTile {
                width: 3,
                bytes: expected.0.bytes[..96].to_vec(),
            },
        };
        store.write_tiles(std::slice::from_ref(&prefix)).unwrap();
        prefix.tile.bytes[0] ^= 1;
        assert!(matches!(
            store.write_tiles(&[prefix]),
            Err(StorageError::TileConflict { index: 1, .. })
        ));
    }
    let store = open_retrying(dir.path());
    assert_eq!(store.read_tile(H0, 1).unwrap(), Some(expected.0));
    assert_eq!(
        store
            .read_tile(TileKind::Hashes { level: 1 }, 0)
            .unwrap()
            .unwrap()
            .width,
        2
    );
}

#[test]
fn a_file_left_by_a_crash_before_its_record_is_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_retrying(dir.path());
    let edge = grow(&store, RightEdge::new(), 10);
    // The crash: files of the next extension written and renamed, no sled commit.
    let ext = stage_and_extend(&store, &edge, 600);
    store.files.write_full(&full_files(&ext)).unwrap();
    assert!(dir.path().join("tile/0/001").is_file());
    // Readers still see the committed tree: the partial tile 0, and no tile 1.
    assert_eq!(store.read_tile(H0, 0).unwrap().unwrap().width, 10);
    assert_eq!(store.read_tile(H0, 1).unwrap(), None);
    assert_eq!(store.read_tile(TileKind::Entries, 1).unwrap(), None);
    // The retry writes the same bytes: accepted, and now covered.
    store.write_tiles(&ext.writes).unwrap();
    assert_eq!(store.read_tile(H0, 1).unwrap().unwrap().width, 256);
    assert_eq!(
        store
            .read_tile(TileKind::Entries, 0)
            .unwrap()
            .unwrap()
            .width,
        256
    );

    // A leftover file whose bytes differ from the retry is never replaced (fail closed),
    // and the batch commits nothing.
    let next = stage_and_extend(&store, &ext.edge, 256);
    let mut wrong: Vec<u8> = full_files(&next)
        .iter()
        .find(|t| t.kind == TileKind::Entries)
        .unwrap()
        .bytes
        .to_vec();
    *wrong.last_mut().unwrap() ^= 1;
    let index = next
        .writes
        .iter()
        .find(|w| w.kind == TileKind::Entries && w.tile.width == 256)
        .unwrap()
        .index;
    store
        .files
        .write_full(&[FullTile {
            kind: TileKind::Entries,
            index,
            bytes: &wrong,
        }])
        .unwrap();
    assert!(matches!(
        store.write_tiles(&next.writes),
        Err(StorageError::TileConflict { .. })
    ));
    assert_eq!(store.read_tile(H0, 2).unwrap().unwrap().width, 98);
    assert_eq!(
        store
            .read_tile(TileKind::Entries, index)
            .unwrap()
            .unwrap()
            .width,
        98
    );
}

#[test]
fn a_damaged_full_tile_file_is_a_store_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_retrying(dir.path());
    grow(&store, RightEdge::new(), 600);
    for path in ["tile/0/001", "tile/entries/000"] {
        let path = dir.path().join(path);
        let good = std::fs::read(&path).unwrap();
        let mut bad = good.clone();
        bad[good.len() - 5] ^= 0x80;
        std::fs::write(&path, &bad).unwrap();
        let (kind, index) = if path.ends_with("001") {
            (H0, 1)
        } else {
            (TileKind::Entries, 0)
        };
        assert!(matches!(
            store.read_tile(kind, index),
            Err(StorageError::Corrupt {
                what: "tile file",
                ..
            })
        ));
        // Rewriting the good bytes does not silently replace the damaged file.
        let rewrite = TileWrite {
            kind,
            index,
            tile: StoredTile {
                width: 256,
                bytes: good.clone(),
            },
        };
        assert!(store.write_tiles(&[rewrite]).is_err());
        std::fs::write(&path, &good).unwrap();
        assert_eq!(store.read_tile(kind, index).unwrap().unwrap().bytes, good);
    }
    // A damaged parent fails its children too.
    let path = dir.path().join("tile/0/000");
    let mut bad = std::fs::read(&path).unwrap();
    bad[0] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    assert!(store.read_tile(TileKind::Entries, 0).is_err());
    assert!(store.read_tile(TileKind::Entries, 1).is_ok());
    // A deleted file reads as absent, never as other bytes.
    std::fs::remove_file(&path).unwrap();
    assert_eq!(store.read_tile(H0, 0).unwrap(), None);
    assert_eq!(store.read_tile(TileKind::Entries, 0).unwrap(), None);
}

/// Escalation records (issue 15): compare-and-swap from absent and from a value, key order,
/// durable across a reopen; the in-memory backend obeys the same contract.
#[test]
fn escalations_are_compare_and_swap_and_durable() {
    fn contract(store: &dyn Storage) {
        assert_eq!(store.escalation(b"b").unwrap(), None);
        assert!(store.swap_escalation(b"b", None, b"one").unwrap());
        assert!(!store.swap_escalation(b"b", None, b"two").unwrap());
        assert!(!store.swap_escalation(b"b", Some(b"two"), b"three").unwrap());
        assert_eq!(store.escalation(b"b").unwrap(), Some(b"one".to_vec()));
        assert!(store.swap_escalation(b"b", Some(b"one"), b"two").unwrap());
        assert!(store.swap_escalation(b"a", None, b"x").unwrap());
        assert_eq!(
            store.escalations().unwrap(),
            vec![
                (b"a".to_vec(), b"x".to_vec()),
                (b"b".to_vec(), b"two".to_vec())
            ]
        );
        // Escalations are not private records or tiles.
        assert_eq!(store.private_record(LeafIndex(0)).unwrap(), None);
    }
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_retrying(dir.path());
        contract(&store);
    }
    let store = open_retrying(dir.path());
    assert_eq!(store.escalation(b"b").unwrap(), Some(b"two".to_vec()));
    assert_eq!(store.escalations().unwrap().len(), 2);
    contract(&crate::storage::mem::MemStorage::new());
}

/// Open the store at `dir`, retrying while the previous handle's sled threads still hold its
/// file lock (a reopen right after a drop failed once with "could not acquire lock", EAGAIN,
/// on a loaded 2-core CI machine; `log_props.rs` and `log_faults.rs` retry the same way).
fn open_retrying(dir: &std::path::Path) -> SledStorage {
    let mut last = None;
    for _ in 0..250 {
        match SledStorage::open(dir) {
            Ok(store) => return store,
            Err(e) => last = Some(e),
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("cannot reopen the store: {last:?}");
}
