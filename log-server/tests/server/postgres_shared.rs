//! The shared-store additions of PostgreSQL (spec `storage-postgres.md` §5.4, §5.6) on a real
//! throwaway cluster ([`Postgres`]): the last staged entry time refuses an older batch with
//! nothing staged; the shared checkpoint lock is written by compare-and-swap, only by the
//! integrator, and only to a checkpoint that equals or extends it; and two real [`Log`]s on one
//! database, one clock ahead of the other, stage entries whose times never decrease (the other
//! frontend's entries are re-stamped), while an entry that cannot be re-stamped fails closed.

use std::sync::Arc;
use std::time::Duration;

use verdict_core::checkpoint::Checkpoint;
use verdict_core::merkle::{Hash, LeafIndex, TreeSize};
use verdict_core::note::Signer;
use verdict_log_server::log::clock::Queued;
use verdict_log_server::log::{Log, LogConfig, LogError, Restamp};
use verdict_log_server::storage::postgres::{PostgresConfig, PostgresStorage};
use verdict_log_server::storage::shared::{BatchTimes, SharedLog};
use verdict_log_server::storage::{StagedEntry, Storage, StorageError};

use crate::storage_conformance::Postgres;

const ORIGIN: &str = "verdict.test/shared";

fn entry(n: u8) -> StagedEntry {
    StagedEntry {
        entry: vec![n],
        private: Some(vec![n, n]),
    }
}

fn times(first_ms: u64, last_ms: u64) -> Option<BatchTimes> {
    Some(BatchTimes { first_ms, last_ms })
}

fn note(signer: &Signer, size: u64, root: u8) -> Vec<u8> {
    Checkpoint {
        origin: ORIGIN.to_owned(),
        size: TreeSize(size),
        root: Hash([root; 32]),
        extensions: Vec::new(),
    }
    .sign(signer)
    .unwrap()
}

fn refused(result: Result<(), StorageError>, reason: &str) {
    match result {
        Err(StorageError::LockRefused { reason: r, .. }) if r.contains(reason) => {}
        other => panic!("expected a lock write refused ({reason}), got {other:?}"),
    }
}

/// Conformance of the shared-store additions: a stale batch refused with nothing staged, the
/// last time only moving forward, and the shared lock's compare-and-swap and extension rule.
/// Each case fails on a store without them (before migration 0002 there is no such column).
#[test]
fn stale_times_and_non_extending_locks_are_refused() {
    let pg = Postgres::start();
    let (db, url) = pg.database();
    let a = PostgresStorage::open(&PostgresConfig::new(url.clone())).unwrap();
    let b = PostgresStorage::open(&PostgresConfig::new(url)).unwrap();
    assert!(a.is_integrator() && !b.is_integrator());
    let version: i32 = pg
        .cluster
        .psql(&db, "SELECT max(version) FROM verdict_schema_version")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        version >= 2,
        "migration 0002 applied (schema version {version})"
    );

    // Entry times.
    assert_eq!(b.last_time_ms().unwrap(), 0);
    let start = a
        .stage_at_end(&[entry(0), entry(1)], times(100, 200))
        .unwrap();
    assert_eq!(start, LeafIndex(0));
    assert_eq!(b.last_time_ms().unwrap(), 200);
    match b.stage_at_end(&[entry(2)], times(150, 300)) {
        Err(StorageError::StaleTime { last_ms: 200 }) => {}
        other => panic!("an older batch was not refused: {other:?}"),
    }
    assert_eq!(
        a.staged_size().unwrap(),
        TreeSize(2),
        "a refused batch staged"
    );
    assert_eq!(a.private_record(LeafIndex(2)).unwrap(), None);
    assert_eq!(
        b.last_time_ms().unwrap(),
        200,
        "a refused batch moved the time"
    );
    // Equal to the last time is in order; an untimed batch is not checked and moves nothing.
    assert_eq!(
        b.stage_at_end(&[entry(2)], times(200, 250)).unwrap(),
        LeafIndex(2)
    );
    assert_eq!(b.stage_at_end(&[entry(3)], None).unwrap(), LeafIndex(3));
    assert_eq!(a.last_time_ms().unwrap(), 250);
    assert_eq!(
        a.staged(LeafIndex(0), LeafIndex(4)).unwrap(),
        vec![vec![0], vec![1], vec![2], vec![3]]
    );

    // The shared checkpoint lock.
    let signer = Signer::generate(ORIGIN).unwrap();
    let (cp3, cp5, cp5x, cp7) = (
        note(&signer, 3, 1),
        note(&signer, 5, 2),
        note(&signer, 5, 3),
        note(&signer, 7, 4),
    );
    assert_eq!(a.lock().unwrap(), None);
    a.swap_lock(None, &cp5).unwrap();
    assert_eq!(b.lock().unwrap(), Some(cp5.clone()));
    // The note already stored: a no-op, whatever the expected value.
    a.swap_lock(Some(&cp5), &cp5).unwrap();
    a.swap_lock(None, &cp5).unwrap();
    refused(a.swap_lock(Some(&cp5), &cp3), "smaller");
    refused(a.swap_lock(Some(&cp5), &cp5x), "another root");
    // A stale compare-and-swap (the writer believes there is no lock yet).
    refused(a.swap_lock(None, &cp7), "expected");
    refused(a.swap_lock(Some(&cp3), &cp7), "expected");
    // Only the integrator writes it.
    let not_integrator = b.swap_lock(Some(&cp5), &cp7).unwrap_err();
    assert!(
        not_integrator.to_string().contains("integrator"),
        "{not_integrator}"
    );
    match a.swap_lock(Some(&cp5), b"not a note") {
        Err(StorageError::Corrupt { .. }) => {}
        other => panic!("a malformed lock was not refused: {other:?}"),
    }
    assert_eq!(
        a.lock().unwrap(),
        Some(cp5.clone()),
        "a refused write wrote"
    );
    a.swap_lock(Some(&cp5), &cp7).unwrap();
    assert_eq!(b.lock().unwrap(), Some(cp7));
}

/// An entry whose bytes are its time (8 bytes, big endian) and a tag.
fn timed(time_ms: u64, tag: u8) -> Vec<u8> {
    let mut bytes = time_ms.to_be_bytes().to_vec();
    bytes.push(tag);
    bytes
}

fn time_of(entry: &[u8]) -> u64 {
    u64::from_be_bytes(entry[..8].try_into().unwrap())
}

fn restamp(tag: u8) -> Restamp {
    Box::new(move |time_ms| Some(timed(time_ms, tag)))
}

async fn open_log(url: &str, signer: &Signer) -> Log {
    let config = PostgresConfig {
        // Following is what raises a frontend's clock besides a refusal: keep it out of the way,
        // so that the refusals below are deterministic.
        poll_interval: Duration::from_secs(600),
        ..PostgresConfig::new(url.to_owned())
    };
    let store = Arc::new(PostgresStorage::open(&config).unwrap());
    Log::open(store, signer.clone(), LogConfig::new(ORIGIN))
        .await
        .unwrap()
}

/// Submit one entry stamped at `now_ms` through `log`'s entry clock; with a re-stamp.
async fn submit(log: &Log, now_ms: u64, tag: u8, with_restamp: bool) -> Result<u64, LogError> {
    let queued = {
        let stamp = log.stamp(now_ms);
        let time_ms = stamp.time_ms();
        let restamp = with_restamp.then(|| restamp(tag));
        stamp.submit_restampable(timed(time_ms, tag), None, false, restamp)?
    };
    staged_time(queued, tag).await
}

/// Wait until `queued` is staged; its re-stamped time, or 0.
async fn staged_time(queued: Queued, tag: u8) -> Result<u64, LogError> {
    let staged = queued.staged().await?;
    if let Some(restamped) = &staged.restamped {
        assert_eq!(restamped.entry, timed(restamped.time_ms, tag));
    }
    Ok(staged.restamped.map_or(0, |r| r.time_ms))
}

/// `b` stamps an entry at `now_ms` while `a` stages a later one (`b`'s clock is held, so that
/// following `a`'s announcement cannot raise it first); then `b` submits it.
async fn overtaken(
    a: &Log,
    b: &Log,
    now_ms: u64,
    later_ms: u64,
    with_restamp: bool,
) -> Result<u64, LogError> {
    let stamp = b.stamp(now_ms);
    let time_ms = stamp.time_ms();
    assert!(time_ms < later_ms);
    // `a`'s sequencer is another thread: this only waits for it (b's clock stays held).
    let a_staged = {
        let a = a.clone();
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(submit(&a, later_ms, 1, true))
        })
        .join()
        .unwrap()
    };
    assert_eq!(a_staged.unwrap(), 0);
    let restamp = with_restamp.then(|| restamp(2));
    let queued = stamp.submit_restampable(timed(time_ms, 2), None, false, restamp)?;
    staged_time(queued, 2).await
}

/// Two logs on one database (two frontends), `a`'s clock ahead of `b`'s: `b`'s entries older
/// than what `a` staged are refused by the store and re-stamped by `b`'s sequencer, so every
/// entry's time is at least its predecessor's; an entry without a re-stamp fails closed.
/// Before the stored last time, `b`'s entries were staged with their older times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_logs_on_one_database_keep_entry_times_in_order() {
    let pg = Postgres::start();
    let (_db, url) = pg.database();
    let signer = Signer::generate(ORIGIN).unwrap();
    let a = open_log(&url, &signer).await;
    let b = open_log(&url, &signer).await;
    let now = 1_800_000_000_000u64;

    // `b`'s entry at `now`, overtaken by `a`'s at now + 60 s, cannot be re-stamped: refused,
    // not staged.
    let before = a.storage().staged_size().unwrap().0;
    match overtaken(&a, &b, now, now + 60_000, false).await {
        Err(LogError::SequencingFailed { op: "stage" }) => {}
        other => panic!("an entry older than the log was not refused: {other:?}"),
    }
    assert_eq!(
        a.storage().staged_size().unwrap().0,
        before + 1,
        "only a's entry"
    );

    // With a re-stamp: staged after `a`'s, at `a`'s time.
    assert_eq!(
        overtaken(&a, &b, now + 1, now + 120_000, true)
            .await
            .unwrap(),
        now + 120_000,
        "not re-stamped"
    );

    // Concurrent load on both, `a` 5 s ahead.
    let mut tasks = Vec::new();
    for i in 0..120u8 {
        let log = if i % 2 == 0 { a.clone() } else { b.clone() };
        let skew = if i % 2 == 0 { 5_000 } else { 0 };
        tasks.push(tokio::spawn(async move {
            let wall = now + 200_000 + u64::from(i) * 3;
            submit(&log, wall + skew, i, true).await.unwrap()
        }));
        if i % 8 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let mut restamped = 0;
    for task in tasks {
        if task.await.unwrap() != 0 {
            restamped += 1;
        }
    }
    let size = a.storage().staged_size().unwrap().0;
    let entries = a.storage().staged(LeafIndex(0), LeafIndex(size)).unwrap();
    let timed: Vec<u64> = entries
        .iter()
        .filter(|e| e.len() == 9)
        .map(|e| time_of(e))
        .collect();
    assert_eq!(timed.len(), 123, "entries staged: {size}");
    let inversions = timed.windows(2).filter(|w| w[1] < w[0]).count();
    assert_eq!(inversions, 0, "entry times out of order: {timed:?}");
    println!(
        "two logs on one database: {} timed entries in order; an overtaken entry refused \
         without a re-stamp and re-stamped with one; {restamped} of 120 concurrent entries \
         re-stamped",
        timed.len()
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
