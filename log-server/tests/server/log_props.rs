//! Property test of the log on real sled in a tempdir, against a model: a `Vec` of entries
//! with a naive, recursive RFC 9162 §2.1.1 root.
//!
//! Random operations: appends (concurrent bursts), clean restarts (shutdown and reopen), crash
//! restarts (entries staged by a "crashed" sequencer, then recovered on open; or staged and
//! their full tile files written, or all their tiles written, without the checkpoint), and
//! reads of entries, tiles and proofs. After every operation: the checkpoint matches the model's size and
//! naive root, every pair of checkpoints seen is consistent, and every leaf is provably included.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use verdict_core::merkle::{leaf_hash, node_hash, Hash, LeafIndex, RightEdge, TreeSize};
use verdict_core::note::Signer;
use verdict_core::proof::{verify_consistency, verify_inclusion};
use verdict_core::tile::{encode_entry_bundle, Tile, TileKind};
use verdict_log_server::log::check::check_whole_log;
use verdict_log_server::log::tiles::extend;
use verdict_log_server::log::{Log, LogConfig};
use verdict_log_server::storage::files::{FullTile, TileFiles};
use verdict_log_server::storage::sled::SledStorage;
use verdict_log_server::storage::{StagedEntry, Storage};

const ORIGIN: &str = "example.com/prop-log";

fn signer() -> Signer {
    Signer::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[42; 32])).unwrap()
}

/// RFC 9162 §2.1.1 MTH, recursively, straight from the definition.
fn naive_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Hash(sha2_empty()),
        1 => leaves[0],
        n => {
            // The largest power of two smaller than n.
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
        }
    }
}

fn sha2_empty() -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest([]).into()
}

#[derive(Clone, Debug)]
enum Op {
    /// Submit this many entries (of these lengths) concurrently and wait for integration.
    Append(Vec<usize>),
    /// Shut down and reopen.
    Restart,
    /// Stop, stage entries directly (a sequencer that crashed after staging), reopen.
    CrashAfterStaging(usize),
    /// Stop, stage entries and write their tiles as a crashed sequencer would have: only the
    /// full tile files (`false`: crash before the sled records) or all tiles (`true`: crash
    /// before the checkpoint); then reopen.
    CrashAfterTiles(usize, bool),
    /// Read tile `index` (modulo the tiles present) of level 0, level 1 or the entry bundles.
    ReadTile(u8, u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec(0usize..120, 1..90).prop_map(Op::Append),
        1 => Just(Op::Restart),
        1 => (1usize..40).prop_map(Op::CrashAfterStaging),
        1 => (1usize..600, any::<bool>()).prop_map(|(n, all)| Op::CrashAfterTiles(n, all)),
        2 => (0u8..3, any::<u64>()).prop_map(|(k, i)| Op::ReadTile(k, i)),
    ]
}

fn config() -> LogConfig {
    LogConfig {
        batch_max_entries: 32,
        batch_max_age: Duration::from_millis(2),
        ..LogConfig::new(ORIGIN)
    }
}

/// sled's background threads may hold the store's file lock for a moment after the last handle
/// is dropped, so reopening in the same process retries briefly.
async fn open(dir: &Path) -> Log {
    let mut last = None;
    for _ in 0..100 {
        match Log::open_sled(dir, signer(), config()).await {
            Ok(log) => return log,
            Err(error) => {
                eprintln!("reopen attempt failed: {error}");
                last = Some(error);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("cannot reopen the log: {last:?}");
}

fn open_storage(dir: &Path) -> SledStorage {
    let mut last = None;
    for _ in 0..100 {
        match SledStorage::open(dir) {
            Ok(storage) => return storage,
            Err(error) => last = Some(error),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("cannot reopen the store: {last:?}");
}

struct State {
    entries: Vec<Vec<u8>>,
    leaves: Vec<Hash>,
    /// (size, root) of every checkpoint seen.
    checkpoints: Vec<(TreeSize, Hash)>,
    counter: usize,
}

impl State {
    fn entry(&mut self, len: usize) -> Vec<u8> {
        self.counter += 1;
        let mut entry = format!("{}:", self.counter).into_bytes();
        entry.resize(len.max(entry.len()), b'x');
        entry
    }

    fn push(&mut self, entry: Vec<u8>) {
        self.leaves.push(leaf_hash(&entry));
        self.entries.push(entry);
    }
}

/// Everything that must hold after every operation.
fn check_invariants(log: &Log, state: &mut State) {
    let size = TreeSize(state.entries.len() as u64);
    let latest = log.latest_checkpoint().unwrap().checkpoint;
    assert_eq!(latest.size, size);
    assert_eq!(latest.root, naive_root(&state.leaves));
    if state.checkpoints.last() != Some(&(size, latest.root)) {
        state.checkpoints.push((size, latest.root));
    }
    for (old_size, old_root) in &state.checkpoints {
        if old_size.0 > 0 {
            let proof = log.consistency_proof(*old_size, size).unwrap();
            verify_consistency(*old_size, size, &proof, old_root, &latest.root).unwrap();
        }
    }
    for (i, (entry, leaf)) in state.entries.iter().zip(&state.leaves).enumerate() {
        let index = LeafIndex(i as u64);
        assert_eq!(log.entry(index).unwrap().as_ref(), Some(entry));
        let proof = log.inclusion_proof(index, size).unwrap();
        verify_inclusion(leaf, index, size, &proof, &latest.root).unwrap();
    }
    assert_eq!(log.entry(LeafIndex(size.0)).unwrap(), None);
}

fn check_tile(log: &Log, state: &State, kind: u8, index: u64) {
    let size = state.entries.len() as u64;
    let (kind, items) = match kind {
        0 => (TileKind::Hashes { level: 0 }, size),
        1 => (TileKind::Hashes { level: 1 }, size / 256),
        _ => (TileKind::Entries, size),
    };
    if items == 0 {
        let tile = Tile {
            kind,
            index: 0,
            width: 1,
        };
        assert_eq!(log.read_tile(tile).unwrap(), None);
        return;
    }
    let index = index % items.div_ceil(256);
    let start = (index * 256) as usize;
    let end = (start + 256).min(items as usize);
    let width = (end - start) as u16;
    let expected: Vec<u8> = match kind {
        TileKind::Hashes { level: 0 } => {
            state.leaves[start..end].iter().flat_map(|h| h.0).collect()
        }
        TileKind::Hashes { .. } => (start..end)
            .flat_map(|i| naive_root(&state.leaves[i * 256..(i + 1) * 256]).0)
            .collect(),
        TileKind::Entries => encode_entry_bundle(&state.entries[start..end]).unwrap(),
    };
    assert_eq!(
        log.read_tile(Tile { kind, index, width }).unwrap(),
        Some(expected)
    );
    if width < 256 {
        let wider = Tile {
            kind,
            index,
            width: width + 1,
        };
        assert_eq!(
            log.read_tile(wider).unwrap(),
            None,
            "tile beyond the checkpoint"
        );
    }
}

async fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let mut state = State {
        entries: vec![],
        leaves: vec![],
        checkpoints: vec![],
        counter: 0,
    };
    let mut log = open(&path).await;
    for op in ops {
        match op {
            Op::Append(lengths) => {
                let batch: Vec<Vec<u8>> = lengths.iter().map(|&len| state.entry(len)).collect();
                let tasks: Vec<_> = batch
                    .iter()
                    .cloned()
                    .map(|entry| {
                        let log = log.clone();
                        tokio::spawn(async move { log.submit(entry, None).await.unwrap() })
                    })
                    .collect();
                let mut indexed = Vec::new();
                for (task, entry) in tasks.into_iter().zip(batch) {
                    indexed.push((task.await.unwrap().0, entry));
                }
                indexed.sort();
                let first = state.entries.len() as u64;
                for (expected, (index, entry)) in (first..).zip(indexed) {
                    assert_eq!(index, expected, "indices are dense and new");
                    state.push(entry);
                }
                let last = LeafIndex(state.entries.len() as u64 - 1);
                let cp = log.wait_integrated(last).await.unwrap();
                assert!(cp.checkpoint.size.0 > last.0);
            }
            Op::Restart => {
                let before = log.latest_checkpoint().unwrap().note;
                log.shutdown().await.unwrap();
                drop(log);
                log = open(&path).await;
                assert_eq!(log.latest_checkpoint().unwrap().note, before);
            }
            Op::CrashAfterStaging(count) => {
                log.shutdown().await.unwrap();
                drop(log);
                {
                    let storage = open_storage(&path);
                    let start = storage.staged_size().unwrap();
                    let staged: Vec<_> = (0..count)
                        .map(|i| StagedEntry {
                            entry: state.entry(i * 7),
                            private: None,
                        })
                        .collect();
                    storage.stage(LeafIndex(start.0), &staged).unwrap();
                    for item in staged {
                        state.push(item.entry);
                    }
                }
                log = open(&path).await;
            }
            Op::CrashAfterTiles(count, all) => {
                log.shutdown().await.unwrap();
                drop(log);
                {
                    let storage = open_storage(&path);
                    let published = storage.state().unwrap().unwrap();
                    let edge = RightEdge::from_parts(published.size, published.right_edge).unwrap();
                    let start = storage.staged_size().unwrap();
                    assert_eq!(start, published.size);
                    let entries: Vec<Vec<u8>> = (0..count).map(|i| state.entry(i % 300)).collect();
                    let staged: Vec<_> = entries
                        .iter()
                        .map(|entry| StagedEntry {
                            entry: entry.clone(),
                            private: None,
                        })
                        .collect();
                    storage.stage(LeafIndex(start.0), &staged).unwrap();
                    let extension = extend(&storage, &edge, &entries).unwrap();
                    if all {
                        storage.write_tiles(&extension.writes).unwrap();
                    } else {
                        let full: Vec<FullTile<'_>> = extension
                            .writes
                            .iter()
                            .filter(|w| w.tile.width == 256)
                            .map(|w| FullTile {
                                kind: w.kind,
                                index: w.index,
                                bytes: &w.tile.bytes,
                            })
                            .collect();
                        TileFiles::open(&path).unwrap().write_full(&full).unwrap();
                    }
                    for entry in entries {
                        state.push(entry);
                    }
                }
                log = open(&path).await;
            }
            Op::ReadTile(kind, index) => check_tile(&log, &state, kind, index),
        }
        check_invariants(&log, &mut state);
    }
    log.shutdown().await.unwrap();
    drop(log);
    let storage: Arc<dyn Storage> = Arc::new(open_storage(&path));
    let checked = check_whole_log(storage.as_ref(), &signer().verifier(), None).unwrap();
    assert_eq!(
        checked.checkpoint.checkpoint().size.0,
        state.entries.len() as u64
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(ops in prop::collection::vec(op(), 1..10)) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run(ops));
    }
}

#[test]
fn naive_root_matches_known_values() {
    // RFC 9162 trees of sizes 0..=3 by hand.
    let a = leaf_hash(b"a");
    let b = leaf_hash(b"b");
    let c = leaf_hash(b"c");
    assert_eq!(naive_root(&[]), Hash(sha2_empty()));
    assert_eq!(naive_root(&[a]), a);
    assert_eq!(naive_root(&[a, b, c]), node_hash(&node_hash(&a, &b), &c));
    let four = naive_root(&[a, b, c, a]);
    assert_eq!(four, node_hash(&node_hash(&a, &b), &node_hash(&c, &a)));
}

/// Flat-out throughput on sled (a figure, not a timed assertion). Run with
/// `cargo test -p verdict-log-server --test server -- --ignored throughput --nocapture`.
#[test]
#[ignore = "load figure, not a correctness test"]
fn throughput_on_sled() {
    const N: usize = 50_000;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open_sled(dir.path(), signer(), LogConfig::new(ORIGIN))
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let tasks: Vec<_> = (0..N)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move {
                    let index = log.submit(vec![b'e'; 300 + i % 7], None).await.unwrap();
                    log.wait_integrated(index).await.unwrap();
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let elapsed = started.elapsed();
        let stats = log.stats();
        eprintln!(
            "{N} entries integrated in {elapsed:?}: {:.0}/s, {} batches",
            N as f64 / elapsed.as_secs_f64(),
            stats.batches
        );
        assert_eq!(stats.tree_size, N as u64);
        log.shutdown().await.unwrap();
    });
}
