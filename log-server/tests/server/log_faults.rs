//! Fault injection: the log on [`MemStorage`] with one write failing at every position, in both
//! modes ("failed and not persisted", "failed but persisted"), and with random faults.
//!
//! Each step submits a burst of entries, shuts the log down, checks the whole stored log with
//! [`check_whole_log`] against the previous checkpoint, reopens (recovering whatever the fault
//! left) and checks again. Asserted throughout: no acknowledged entry is ever lost or moved, no
//! index is acknowledged twice, and every checkpoint published is consistent with every later one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use verdict_core::checkpoint::Checkpoint;
use verdict_core::merkle::LeafIndex;
use verdict_core::note::{Signer, Verifier};
use verdict_core::proof::verify_consistency;
use verdict_core::tile::{decode_entry_bundle, TileKind};
use verdict_log_server::log::check::check_whole_log;
use verdict_log_server::log::{Log, LogConfig, LogError};
use verdict_log_server::storage::mem::{FaultMode, FaultPlan, MemStorage};
use verdict_log_server::storage::Storage;

const ORIGIN: &str = "example.com/fault-log";

fn signer() -> Signer {
    Signer::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[21; 32])).unwrap()
}

fn verifier() -> Verifier {
    signer().verifier()
}

fn config() -> LogConfig {
    LogConfig {
        batch_max_entries: 16,
        batch_max_age: Duration::from_millis(1),
        ..LogConfig::new(ORIGIN)
    }
}

/// Open, retrying while injected faults make recovery fail.
async fn open(storage: &Arc<MemStorage>) -> Log {
    let mut last = None;
    for _ in 0..50 {
        let dyn_storage: Arc<dyn Storage> = storage.clone();
        match Log::open(dyn_storage, signer(), config()).await {
            Ok(log) => return log,
            Err(error) => last = Some(error),
        }
    }
    panic!("log did not open after 50 attempts: {last:?}");
}

/// What the test knows for sure.
#[derive(Default)]
struct Model {
    /// Acknowledged entries by index.
    acked: BTreeMap<u64, Vec<u8>>,
    /// Every checkpoint seen, in order.
    checkpoints: Vec<Checkpoint>,
    refused: usize,
}

impl Model {
    fn saw(&mut self, checkpoint: &Checkpoint) {
        if self.checkpoints.last() != Some(checkpoint) {
            self.checkpoints.push(checkpoint.clone());
        }
    }
}

/// Check the stored log against the last checkpoint seen and the acknowledged entries.
fn check(storage: &MemStorage, model: &mut Model, context: &str) {
    let checked = check_whole_log(storage, &verifier(), model.checkpoints.last())
        .unwrap_or_else(|e| panic!("{context}: whole-log check failed: {e}"));
    let size = checked.checkpoint.checkpoint().size.0;
    let mut bundles: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
    for (&index, entry) in &model.acked {
        let stored = if index < size {
            let bundle = bundles.entry(index / 256).or_insert_with(|| {
                let stored = storage
                    .read_tile(TileKind::Entries, index / 256)
                    .unwrap()
                    .unwrap();
                decode_entry_bundle(&stored.bytes).unwrap()
            });
            bundle[(index % 256) as usize].clone()
        } else {
            // Acknowledged but not yet integrated: it must be staged.
            storage
                .staged(LeafIndex(index), LeafIndex(index + 1))
                .unwrap()
                .remove(0)
        };
        assert_eq!(
            &stored, entry,
            "{context}: acknowledged entry {index} changed or lost"
        );
    }
    model.saw(checked.checkpoint.checkpoint());
}

/// Submit `count` entries concurrently; record acknowledgements.
async fn burst(log: &Log, model: &mut Model, tag: &str, count: usize) {
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let log = log.clone();
            let entry = format!("{tag}/{i}").into_bytes();
            tokio::spawn(
                async move { (log.submit(entry.clone(), Some(b"p".to_vec())).await, entry) },
            )
        })
        .collect();
    for task in tasks {
        match task.await.unwrap() {
            (Ok(index), entry) => {
                let previous = model.acked.insert(index.0, entry);
                assert!(previous.is_none(), "index {} acknowledged twice", index.0);
            }
            (Err(LogError::SequencingFailed { .. }), _) => model.refused += 1,
            (Err(other), _) => panic!("unexpected submit error: {other}"),
        }
    }
}

/// Run `steps` steps of `per_step` entries under `plan`; returns (write calls, faults injected).
async fn scenario(plan: FaultPlan, steps: usize, per_step: usize) -> (u64, u64, Model) {
    let storage = Arc::new(MemStorage::new());
    storage.set_plan(plan);
    let mut model = Model::default();
    let mut log = open(&storage).await;
    for step in 0..steps {
        let context = format!("{plan:?} step {step}");
        burst(&log, &mut model, &format!("{step}"), per_step).await;
        if let Some(cp) = log.latest_checkpoint() {
            model.saw(&cp.checkpoint);
        }
        let shutdown = log.shutdown().await;
        if shutdown.is_ok() {
            let cp = log.latest_checkpoint().unwrap();
            assert_eq!(
                cp.checkpoint.size.0,
                storage.staged_size().unwrap().0,
                "{context}: shutdown left staged entries unintegrated"
            );
        }
        drop(log);
        check(&storage, &mut model, &format!("{context} after shutdown"));
        log = open(&storage).await;
        // Recovery integrates everything staged, acknowledged or not.
        let recovered = log.latest_checkpoint().unwrap();
        assert_eq!(
            recovered.checkpoint.size.0,
            storage.staged_size().unwrap().0,
            "{context}"
        );
        for (&index, entry) in &model.acked {
            assert_eq!(
                log.entry(LeafIndex(index)).unwrap().as_ref(),
                Some(entry),
                "{context}"
            );
        }
        model.saw(&recovered.checkpoint);
        check(&storage, &mut model, &format!("{context} after reopen"));
    }
    storage.set_plan(FaultPlan::Never);
    // Every checkpoint seen is consistent with the final tree (and so with every later one:
    // each was also checked against its predecessor).
    let last = log.latest_checkpoint().unwrap().checkpoint;
    assert_eq!(model.checkpoints.last(), Some(&last));
    for earlier in &model.checkpoints {
        if earlier.size.0 == 0 {
            assert_eq!(earlier.root, verdict_core::merkle::empty_root());
            continue;
        }
        let proof = log.consistency_proof(earlier.size, last.size).unwrap();
        verify_consistency(earlier.size, last.size, &proof, &earlier.root, &last.root)
            .unwrap_or_else(|e| panic!("{plan:?}: {earlier:?} inconsistent with {last:?}: {e}"));
    }
    log.shutdown().await.unwrap();
    (storage.write_calls(), storage.injected(), model)
}

/// One fault at each write position, in each mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_single_write_fault_is_survived() {
    const STEPS: usize = 5;
    const PER_STEP: usize = 60;
    let t = std::time::Instant::now();
    let (calls, injected, baseline) = scenario(FaultPlan::Never, STEPS, PER_STEP).await;
    eprintln!("TIMING baseline {calls} calls in {:?}", t.elapsed());
    assert_eq!(injected, 0);
    assert_eq!(baseline.acked.len(), STEPS * PER_STEP);
    let mut steps = 0;
    let mut refused = 0;
    for mode in [FaultMode::FailNotPersisted, FaultMode::FailButPersisted] {
        // Batching varies with timing, so go a little past the fault-free call count.
        for call in 0..calls + 8 {
            let (_, injected, model) =
                scenario(FaultPlan::AtCall { call, mode }, STEPS, PER_STEP).await;
            assert!(injected <= 1);
            steps += STEPS;
            refused += model.refused;
        }
    }
    // Some faults must have hit staging, or the test exercises less than it claims.
    assert!(refused > 0, "no submission was ever refused");
    assert!(steps >= 300, "only {steps} steps");
}

/// Random faults in both modes, many per run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_faults_are_survived() {
    let mut injected_total = 0;
    for seed in 0..6 {
        let (_, injected, model) = scenario(FaultPlan::Random { seed, one_in: 5 }, 12, 40).await;
        injected_total += injected;
        assert!(!model.acked.is_empty());
    }
    assert!(injected_total > 20, "only {injected_total} faults injected");
}

/// Open a log on sled in `dir`, retrying while sled's threads of a dropped handle still hold
/// the directory lock.
async fn open_sled(dir: &std::path::Path) -> Log {
    let mut last = None;
    for _ in 0..100 {
        match Log::open_sled(dir, signer(), config()).await {
            Ok(log) => return log,
            Err(error) => last = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("cannot open the sled log: {last:?}");
}

/// Full tiles live in files beside sled, checked against the tree on every read: a damaged file
/// is a store error on every read path (tile, entry, proof, whole-log check), never bytes served
/// as valid; temporary files left by a crash are ignored and cleaned; a repaired file is served
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_tile_files_fail_closed() {
    use verdict_core::merkle::TreeSize;
    use verdict_core::tile::Tile;
    use verdict_log_server::storage::sled::SledStorage;

    let dir = tempfile::tempdir().unwrap();
    let log = open_sled(dir.path()).await;
    let mut model = Model::default();
    burst(&log, &mut model, "files", 600).await;
    log.shutdown().await.unwrap();
    drop(log);
    let size = TreeSize(600);
    let hash_tile = dir.path().join("tile/0/000");
    let bundle = dir.path().join("tile/entries/001");
    let good_tile = std::fs::read(&hash_tile).unwrap();
    let good_bundle = std::fs::read(&bundle).unwrap();
    assert_eq!(good_tile.len(), 256 * 32);
    assert_eq!(decode_entry_bundle(&good_bundle).unwrap().len(), 256);
    assert!(
        !dir.path().join("tile/0/002").exists(),
        "partial tiles stay in sled"
    );

    // Damage both files (one bit each) and leave a torn temporary file.
    let mut bad = good_tile.clone();
    bad[40] ^= 1;
    std::fs::write(&hash_tile, &bad).unwrap();
    let mut bad = good_bundle.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    std::fs::write(&bundle, &bad).unwrap();
    let torn = dir.path().join("tile-tmp/999-0");
    std::fs::write(&torn, b"torn").unwrap();

    let log = open_sled(dir.path()).await;
    assert!(!torn.exists(), "temporary leftovers are deleted on open");
    assert_eq!(log.latest_checkpoint().unwrap().checkpoint.size, size);
    let full = |kind, index| Tile {
        kind,
        index,
        width: 256,
    };
    assert!(log.inclusion_proof(LeafIndex(3), size).is_err());
    assert!(log.bundle(LeafIndex(3)).is_err());
    assert!(log
        .read_tile(full(TileKind::Hashes { level: 0 }, 0))
        .is_err());
    assert!(log.read_tile(full(TileKind::Entries, 1)).is_err());
    assert!(log.entry(LeafIndex(300)).is_err());
    assert!(log.consistency_proof(TreeSize(10), size).is_err());
    // Twice: an error is not cached as a success.
    assert!(log.entry(LeafIndex(300)).is_err());
    // Bundle 0 is intact but checked against the damaged hash tile 0: not served either.
    assert!(log.entry(LeafIndex(5)).is_err());
    // Tiles that do not depend on the damaged ones are still served.
    assert!(log
        .read_tile(full(TileKind::Hashes { level: 0 }, 1))
        .is_ok());
    // New appends still work: they touch only the partial tiles.
    burst(&log, &mut model, "more", 10).await;
    log.shutdown().await.unwrap();
    drop(log);
    {
        let storage = loop {
            match SledStorage::open(dir.path()) {
                Ok(storage) => break storage,
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        assert!(check_whole_log(&storage, &verifier(), None).is_err());
    }

    // Repaired files are served again, and the whole log checks.
    std::fs::write(&hash_tile, &good_tile).unwrap();
    std::fs::write(&bundle, &good_bundle).unwrap();
    let log = open_sled(dir.path()).await;
    let size = TreeSize(610);
    let proof = log.inclusion_proof(LeafIndex(3), size).unwrap();
    assert!(!proof.is_empty());
    for (&index, entry) in &model.acked {
        assert_eq!(log.entry(LeafIndex(index)).unwrap().as_ref(), Some(entry));
    }
    let storage = Arc::clone(log.storage());
    check_whole_log(storage.as_ref(), &verifier(), None).unwrap();
    log.shutdown().await.unwrap();
}
