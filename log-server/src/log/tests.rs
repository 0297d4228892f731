//! Unit tests of the log: submission, proofs (from the batch and from tiles), pushback,
//! recovery and re-signing, on the in-memory store.

use super::*;
use crate::storage::mem::MemStorage;
use crate::storage::StagedEntry;
use verdict_core::merkle::leaf_hash;
use verdict_core::merkle::TreeSize;
use verdict_core::proof::{verify_consistency, verify_inclusion};
use verdict_core::tile::{Tile, TileKind};

const ORIGIN: &str = "example.com/log-test";

fn cfg() -> LogConfig {
    LogConfig {
        batch_max_age: Duration::from_millis(2),
        ..LogConfig::new(ORIGIN)
    }
}

fn signer() -> Signer {
    Signer::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[7; 32])).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submits_integrates_and_serves_proofs() {
    let storage = Arc::new(MemStorage::new());
    let log = Log::open(storage.clone(), signer(), cfg()).await.unwrap();
    assert_eq!(
        log.latest_checkpoint().unwrap().checkpoint.size,
        TreeSize(0)
    );
    let tasks: Vec<_> = (0..300u32)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move {
                let entry = format!("entry {i}").into_bytes();
                let index = log.submit(entry.clone(), Some(vec![1, 2])).await.unwrap();
                (index, entry)
            })
        })
        .collect();
    let mut entries = vec![Vec::new(); 300];
    for task in tasks {
        let (index, entry) = task.await.unwrap();
        entries[index.0 as usize] = entry;
    }
    let cp = log.wait_integrated(LeafIndex(299)).await.unwrap();
    assert!(cp.checkpoint.size.0 >= 300);
    let root = cp.checkpoint.root;
    for (i, entry) in entries.iter().enumerate() {
        let index = LeafIndex(i as u64);
        assert_eq!(log.entry(index).unwrap().as_ref(), Some(entry));
        let proof = log.inclusion_proof(index, TreeSize(300)).unwrap();
        verify_inclusion(&leaf_hash(entry), index, TreeSize(300), &proof, &root).unwrap();
    }
    assert_eq!(log.entry(LeafIndex(300)).unwrap(), None);
    assert_eq!(log.private_record(LeafIndex(5)).unwrap(), Some(vec![1, 2]));
    let old_root = verdict_core::merkle::root_of(
        &entries[..37]
            .iter()
            .map(|e| leaf_hash(e))
            .collect::<Vec<_>>(),
    );
    let proof = log.consistency_proof(TreeSize(37), TreeSize(300)).unwrap();
    verify_consistency(TreeSize(37), TreeSize(300), &proof, &old_root, &root).unwrap();
    assert!(matches!(
        log.inclusion_proof(LeafIndex(0), TreeSize(301)),
        Err(LogError::OutOfRange { .. })
    ));
    let bundle = log.bundle(LeafIndex(42)).unwrap();
    let verified = bundle.verify(&signer().verifier()).unwrap();
    assert_eq!(verified.entry(), entries[42].as_slice());
    // Tiles: exact widths, nothing beyond the checkpoint.
    let tile = |kind, index, width| Tile { kind, index, width };
    let level0 = TileKind::Hashes { level: 0 };
    assert_eq!(
        log.read_tile(tile(level0, 1, 44)).unwrap().unwrap().len(),
        44 * 32
    );
    assert_eq!(
        log.read_tile(tile(level0, 1, 10)).unwrap().unwrap().len(),
        10 * 32
    );
    assert_eq!(log.read_tile(tile(level0, 1, 45)).unwrap(), None);
    assert_eq!(
        log.read_tile(tile(level0, 0, 256)).unwrap().unwrap().len(),
        256 * 32
    );
    assert_eq!(
        log.read_tile(tile(TileKind::Hashes { level: 1 }, 0, 1))
            .unwrap()
            .unwrap()
            .len(),
        32
    );
    let bundle1 = log
        .read_tile(tile(TileKind::Entries, 1, 44))
        .unwrap()
        .unwrap();
    assert_eq!(
        verdict_core::tile::decode_entry_bundle(&bundle1).unwrap()[0],
        entries[256]
    );
    assert!(log.submit(vec![0; MAX_ENTRY_LEN + 1], None).await.is_err());
    log.shutdown().await.unwrap();
    assert!(matches!(
        log.submit(vec![1], None).await,
        Err(LogError::ShuttingDown)
    ));
    let stats = log.stats();
    assert_eq!(
        (stats.tree_size, stats.staged_size, stats.pending),
        (300, 300, 0)
    );
}

/// Submit `count` entries concurrently with `submit_for_proof`; every answer's proof must
/// verify against its checkpoint (signed by the log key) and name the right entry.
async fn prove_all(log: &Log, count: u32, tag: &str) -> Vec<(LeafIndex, Vec<u8>)> {
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let log = log.clone();
            let entry = format!("{tag} {i}").into_bytes();
            tokio::spawn(async move {
                let sequenced = log.submit_for_proof(entry.clone(), None).await?;
                let index = sequenced.index;
                Ok::<_, LogError>((index, entry, sequenced.integrated().await?))
            })
        })
        .collect();
    let verifier = signer().verifier();
    let mut out = Vec::new();
    for task in tasks {
        let Ok((index, entry, integrated)) = task.await.unwrap() else {
            continue;
        };
        let opened = Checkpoint::open(&integrated.checkpoint.note, &verifier, &[]).unwrap();
        let cp = opened.checkpoint();
        assert_eq!(cp, &integrated.checkpoint.checkpoint);
        assert!(index.0 < cp.size.0);
        verify_inclusion(
            &leaf_hash(&entry),
            index,
            cp.size,
            &integrated.proof,
            &cp.root,
        )
        .unwrap();
        out.push((index, entry));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hands_each_waiter_its_proof_from_the_batch() {
    let storage = Arc::new(MemStorage::new());
    let cfg = LogConfig {
        batch_max_entries: 64,
        ..cfg()
    };
    let log = Log::open(storage, signer(), cfg).await.unwrap();
    let mut proved = prove_all(&log, 500, "a").await;
    assert_eq!(proved.len(), 500);
    proved.sort();
    for (i, (index, entry)) in proved.iter().enumerate() {
        assert_eq!(index.0, i as u64);
        assert_eq!(log.entry(*index).unwrap().as_ref(), Some(entry));
    }
    log.shutdown().await.unwrap();
}

/// With random write faults, every acknowledged entry still gets a valid proof: from the
/// batch when its integration went through, else from stored tiles after the retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_survive_storage_faults() {
    use crate::storage::mem::FaultPlan;
    let storage = Arc::new(MemStorage::new());
    let log = Log::open(storage.clone(), signer(), cfg()).await.unwrap();
    storage.set_plan(FaultPlan::Random {
        seed: 11,
        one_in: 5,
    });
    let proved = prove_all(&log, 300, "b").await;
    storage.set_plan(FaultPlan::Never);
    assert!(storage.injected() > 0);
    assert!(!proved.is_empty());
    for (index, entry) in &proved {
        assert_eq!(log.entry(*index).unwrap().as_ref(), Some(entry));
    }
    log.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_back_when_too_much_is_pending_and_flushes_on_shutdown() {
    let storage = Arc::new(MemStorage::new());
    let cfg = LogConfig {
        batch_max_age: Duration::from_secs(30),
        max_pending: 2,
        ..LogConfig::new(ORIGIN)
    };
    let log = Log::open(storage, signer(), cfg).await.unwrap();
    let waiting: Vec<_> = (0..2u8)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.submit(vec![i], None).await })
        })
        .collect();
    while log.pending() < 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let refused = log.submit(vec![9], None).await;
    assert!(
        matches!(refused, Err(LogError::Backpressure { pending: 2, .. })),
        "{refused:?}"
    );
    assert_eq!(log.stats().pushbacks, 1);
    log.shutdown().await.unwrap();
    for task in waiting {
        task.await.unwrap().unwrap();
    }
    assert_eq!(
        log.latest_checkpoint().unwrap().checkpoint.size,
        TreeSize(2)
    );
}

#[tokio::test]
async fn recovers_staged_entries_and_refuses_a_foreign_key() {
    let storage = Arc::new(MemStorage::new());
    let log = Log::open(storage.clone(), signer(), cfg()).await.unwrap();
    log.shutdown().await.unwrap();
    drop(log);
    // A crash after staging, before integration.
    let staged = [StagedEntry {
        entry: b"a".to_vec(),
        private: None,
    }];
    storage.stage(LeafIndex(0), &staged).unwrap();
    let log = Log::open(storage.clone(), signer(), cfg()).await.unwrap();
    assert_eq!(
        log.latest_checkpoint().unwrap().checkpoint.size,
        TreeSize(1)
    );
    assert_eq!(log.entry(LeafIndex(0)).unwrap(), Some(b"a".to_vec()));
    log.shutdown().await.unwrap();
    let other = Signer::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[8; 32])).unwrap();
    assert!(matches!(
        Log::open(storage.clone(), other, cfg()).await,
        Err(LogError::Checkpoint(_))
    ));
    let misnamed = Signer::generate("another.example/log").unwrap();
    assert!(Log::open(storage, misnamed, cfg()).await.is_err());
}

#[tokio::test]
async fn re_signs_an_unchanged_checkpoint() {
    let storage = Arc::new(MemStorage::new());
    let cfg = LogConfig {
        checkpoint_interval: Duration::from_millis(20),
        ..cfg()
    };
    let log = Log::open(storage, signer(), cfg).await.unwrap();
    let first = log.latest_checkpoint().unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    let later = log.latest_checkpoint().unwrap();
    assert_eq!(later.note, first.note);
    assert!(later.signed_at > first.signed_at);
    log.shutdown().await.unwrap();
}

/// The entry clock (spec `evidence-package.md` §3.1): stamps never go back, not when the wall
/// clock does, nor below a raised floor; and entries queued under stamps land in stamp order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_entry_clock_orders_entries_by_time() {
    let log = Log::open(Arc::new(MemStorage::new()), signer(), cfg())
        .await
        .unwrap();
    log.raise_clock(5_000);
    let stamp = log.stamp(1_000);
    assert_eq!(
        stamp.time_ms(),
        5_000,
        "raised floor beats a wall clock that went back"
    );
    drop(stamp);
    let tasks: Vec<_> = (0..200u64)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move {
                // Wall clocks that disagree (as several threads or a clock step would).
                let queued = {
                    let stamp = log.stamp(6_000 + (i * 7919) % 500);
                    let t = stamp.time_ms();
                    stamp.submit(t.to_be_bytes().to_vec(), None, false).unwrap()
                };
                queued.sequenced().await.unwrap().0
            })
        })
        .collect();
    let mut last = 0;
    for t in tasks {
        t.await.unwrap();
    }
    let size = log.stats().staged_size;
    assert_eq!(size, 200);
    log.wait_integrated(LeafIndex(size - 1)).await.unwrap();
    for i in 0..size {
        let entry = log.entry(LeafIndex(i)).unwrap().unwrap();
        let t = u64::from_be_bytes(entry.try_into().unwrap());
        assert!(t >= last, "entry {i}: time {t} after {last}");
        last = t;
    }
    assert!(last >= 6_000);
}
