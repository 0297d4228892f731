//! PostgreSQL's own checks, on a real throwaway cluster ([`Postgres`]): escalation
//! compare-and-swap, versioned migrations, and fault injection under a real [`Log`]:
//! connections terminated (`pg_terminate_backend`) and the server crashed and restarted in the
//! middle of the load. Asserted: every failure is a clean error (`SequencingFailed` to the
//! submitter, never a panic or a wrong acknowledgement), the log recovers without a restart of
//! its own, and no acknowledged entry is lost or moved (whole-log check after reopening).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use verdict_core::merkle::{LeafIndex, TreeSize};
use verdict_core::note::Signer;
use verdict_core::tile::{decode_entry_bundle, TileKind};
use verdict_log_server::log::check::check_whole_log;
use verdict_log_server::log::{Log, LogConfig, LogError};
use verdict_log_server::storage::postgres::{PostgresConfig, PostgresStorage, SCHEMA_VERSION};
use verdict_log_server::storage::shared::SharedLog;
use verdict_log_server::storage::{LogState, StagedEntry, Storage, StorageError};

use crate::storage_conformance::Postgres;

#[test]
fn escalation_cas_schema_versions_and_a_dropped_connection() {
    let pg = Postgres::start();
    let (db, url) = pg.database();
    let store = PostgresStorage::open(&PostgresConfig::new(url.clone())).unwrap();

    // Escalations: compare-and-swap, absent = None.
    assert!(store.swap_escalation(b"e1", None, b"open").unwrap());
    assert!(!store.swap_escalation(b"e1", None, b"other").unwrap());
    assert!(!store
        .swap_escalation(b"e1", Some(b"stale"), b"approved")
        .unwrap());
    assert!(store
        .swap_escalation(b"e1", Some(b"open"), b"approved")
        .unwrap());
    assert!(store.swap_escalation(b"e0", None, b"open").unwrap());
    assert!(!store
        .swap_escalation(b"missing", Some(b"open"), b"x")
        .unwrap());
    assert_eq!(store.escalation(b"e1").unwrap(), Some(b"approved".to_vec()));
    assert_eq!(store.escalation(b"missing").unwrap(), None);
    // Several servers per database (spec §5): a second store opens as a frontend; its
    // integrator writes are refused while the first holds the integrator lock, and it takes the
    // lock once the first is gone.
    let second = PostgresStorage::open(&PostgresConfig::new(url.clone())).unwrap();
    assert!(store.is_integrator());
    assert!(!second.is_integrator());
    assert!(!second.try_integrator().unwrap());
    let refused = second.prune_staged(LeafIndex(0)).unwrap_err();
    assert!(refused.to_string().contains("integrator"), "{refused}");
    assert_eq!(
        second.escalation(b"e1").unwrap(),
        Some(b"approved".to_vec())
    );
    drop(store);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !second.try_integrator().unwrap() {
        assert!(Instant::now() < deadline, "lock not freed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(second.is_integrator());
    second.prune_staged(LeafIndex(0)).unwrap();
    drop(second);
    let store = PostgresStorage::open(&PostgresConfig::new(url.clone())).unwrap();
    assert_eq!(
        store.escalations().unwrap(),
        vec![
            (b"e0".to_vec(), b"open".to_vec()),
            (b"e1".to_vec(), b"approved".to_vec())
        ]
    );

    // Migrations: applied once, recorded; a newer schema is refused.
    let latest = pg
        .cluster
        .psql(&db, "SELECT max(version)::text FROM verdict_schema_version")
        .unwrap();
    assert_eq!(latest, SCHEMA_VERSION.to_string());
    let applied = pg
        .cluster
        .psql(&db, "SELECT count(*) FROM verdict_schema_version")
        .unwrap();
    // Three servers starting together on a fresh database: migrated once, one writer.
    let (fresh_db, fresh_url) = pg.database();
    let barrier = Arc::new(std::sync::Barrier::new(3));
    let opened: Vec<_> = (0..3)
        .map(|_| {
            let (url, barrier) = (fresh_url.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                PostgresStorage::open(&PostgresConfig {
                    connect_timeout: Duration::from_millis(500),
                    ..PostgresConfig::new(url)
                })
            })
        })
        .collect();
    let opened: Vec<_> = opened.into_iter().map(|t| t.join().unwrap()).collect();
    let opened: Vec<_> = opened.into_iter().map(Result::unwrap).collect();
    let writers = opened.iter().filter(|o| o.is_integrator()).count();
    assert_eq!(
        writers, 1,
        "exactly one of three servers may hold the integrator lock"
    );
    drop(opened);
    assert_eq!(
        pg.cluster
            .psql(&fresh_db, "SELECT count(*) FROM verdict_schema_version")
            .unwrap(),
        applied,
        "each migration applied once"
    );

    // A dropped connection: clean backend errors (at most one per pooled connection), then the
    // pool reconnects.
    store
        .stage(
            LeafIndex(0),
            &[StagedEntry {
                entry: b"before".to_vec(),
                private: None,
            }],
        )
        .unwrap();
    let terminated = pg.cluster.terminate_connections(&db).unwrap();
    assert!(terminated >= 1, "no connection to terminate");
    let mut errors = 0;
    let size = loop {
        match store.staged_size() {
            Ok(size) => break size,
            // Each pooled connection that died fails at most one call (then the pool drops it).
            Err(StorageError::Backend { .. }) if errors < PostgresConfig::new("").pool_size => {
                errors += 1
            }
            Err(other) => panic!("after a dropped connection: {other}"),
        }
    };
    assert_eq!(size.0, 1);
    println!(
        "dropped connection: {terminated} terminated, {errors} failed call(s), then recovered"
    );

    drop(store);
    pg.cluster
        .psql(
            &db,
            "INSERT INTO verdict_schema_version (version, description) VALUES (99, 'future')",
        )
        .unwrap();
    let refused = PostgresStorage::open(&PostgresConfig::new(url)).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("newer than this verdict-server"),
        "{refused}"
    );
}

const ORIGIN: &str = "example.com/pg-faults";

fn signer() -> Signer {
    Signer::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[33; 32])).unwrap()
}

fn log_config() -> LogConfig {
    LogConfig {
        batch_max_entries: 16,
        batch_max_age: Duration::from_millis(2),
        ..LogConfig::new(ORIGIN)
    }
}

fn pg_config(url: &str) -> PostgresConfig {
    PostgresConfig {
        pool_size: 4,
        connect_timeout: Duration::from_secs(2),
        op_timeout: Duration::from_secs(3),
        ..PostgresConfig::new(url)
    }
}

#[derive(Default)]
struct Outcome {
    acked: BTreeMap<u64, Vec<u8>>,
    refused: usize,
}

/// Submit `count` entries, 2 ms apart, while `fault` runs on a blocking thread.
async fn burst_with(
    log: &Log,
    outcome: &mut Outcome,
    tag: &str,
    count: usize,
    fault: impl FnOnce() + Send + 'static,
) {
    let fault = tokio::task::spawn_blocking(fault);
    let mut tasks = Vec::new();
    for i in 0..count {
        let log = log.clone();
        let entry = format!("{tag}/{i}").into_bytes();
        tasks.push(tokio::spawn(async move {
            (
                log.submit(entry.clone(), Some(b"private".to_vec())).await,
                entry,
            )
        }));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for task in tasks {
        match task.await.unwrap() {
            (Ok(index), entry) => {
                let previous = outcome.acked.insert(index.0, entry);
                assert!(previous.is_none(), "index {} acknowledged twice", index.0);
            }
            (Err(LogError::SequencingFailed { .. }), _) => outcome.refused += 1,
            (Err(other), _) => panic!("{tag}: unexpected submit error: {other}"),
        }
    }
    fault.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_and_a_restart_lose_nothing_acknowledged() {
    let pg = Arc::new(Postgres::start());
    let (db, url) = pg.database();
    let store: Arc<dyn Storage> = Arc::new(PostgresStorage::open(&pg_config(&url)).unwrap());
    let log = Log::open(store, signer(), log_config()).await.unwrap();
    let mut outcome = Outcome::default();

    // 1. Connections terminated in the middle of bursts.
    let mut terminated = 0;
    for round in 0..3 {
        let (pg2, db2) = (pg.clone(), db.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        burst_with(&log, &mut outcome, &format!("kill{round}"), 40, move || {
            std::thread::sleep(Duration::from_millis(30));
            let _ = tx.send(pg2.cluster.terminate_connections(&db2).unwrap());
        })
        .await;
        terminated += rx.recv().unwrap();
    }
    // 2. The server crashes (immediate shutdown) and restarts in the middle of a burst.
    let pg2 = pg.clone();
    let restart = Instant::now();
    burst_with(&log, &mut outcome, "restart", 150, move || {
        std::thread::sleep(Duration::from_millis(40));
        pg2.cluster.stop(true).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        pg2.cluster.restart().unwrap();
    })
    .await;
    let burst_time = restart.elapsed();
    // 3. Recovery without restarting the log: new entries are acknowledged again.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = 0;
    while after < 50 {
        assert!(Instant::now() < deadline, "the log did not recover");
        let entry = format!("after/{after}").into_bytes();
        match log.submit(entry.clone(), None).await {
            Ok(index) => {
                assert!(outcome.acked.insert(index.0, entry).is_none());
                after += 1;
            }
            Err(LogError::SequencingFailed { .. }) => {
                outcome.refused += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(other) => panic!("after the restart: {other}"),
        }
    }
    let stats = log.stats();
    assert!(
        stats.storage_errors > 0,
        "the faults never reached the log: {stats:?}"
    );
    let shutdown = log.shutdown().await;
    drop(log);

    // 4. A new store on the same database: recover, check the whole log, find every
    //    acknowledged entry at its index.
    let store: Arc<dyn Storage> = Arc::new(PostgresStorage::open(&pg_config(&url)).unwrap());
    let log = Log::open(store.clone(), signer(), log_config())
        .await
        .unwrap();
    log.shutdown().await.unwrap();
    let checked = check_whole_log(store.as_ref(), &signer().verifier(), None).unwrap();
    let size = checked.checkpoint.checkpoint().size.0;
    let mut bundles: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
    for (&index, entry) in &outcome.acked {
        assert!(
            index < size,
            "acknowledged entry {index} not integrated (tree size {size})"
        );
        let bundle = bundles.entry(index / 256).or_insert_with(|| {
            let stored = store
                .read_tile(TileKind::Entries, index / 256)
                .unwrap()
                .unwrap();
            decode_entry_bundle(&stored.bytes).unwrap()
        });
        assert_eq!(
            &bundle[(index % 256) as usize],
            entry,
            "acknowledged entry {index} changed or lost"
        );
    }
    println!(
        "postgres faults: {terminated} connections terminated, 1 crash-restart (burst {burst_time:?}), \
         {} acknowledged, {} refused cleanly, {} storage errors seen by the log, \
         first shutdown {:?}, tree size {size} after recovery, 0 acknowledged lost",
        outcome.acked.len(),
        outcome.refused,
        stats.storage_errors,
        shutdown.map_err(|e| e.to_string())
    );
}

fn state(note: &[u8]) -> LogState {
    LogState {
        size: TreeSize(0),
        right_edge: Vec::new(),
        checkpoint: note.to_vec(),
    }
}

/// Two stores on one database (spec §5.3): the integrator's lock session is ended (as PostgreSQL
/// ends a silent one), the other takes over and publishes; the old one, resuming with its stale
/// view, is refused by its lock guard, and a publish over a stale expected state is refused by
/// the compare-and-swap even for the holder of the lock.
#[test]
fn an_integrator_that_lost_its_lock_cannot_publish() {
    let pg = Postgres::start();
    let (db, url) = pg.database();
    let old = PostgresStorage::open(&PostgresConfig::new(url.clone())).unwrap();
    let new = PostgresStorage::open(&PostgresConfig::new(url)).unwrap();
    assert!(old.is_integrator() && !new.is_integrator());
    let s0 = state(b"s0");
    old.publish(None, &s0).unwrap();
    let ended = pg
        .cluster
        .psql(
            &db,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks \
             WHERE locktype = 'advisory' AND granted",
        )
        .unwrap();
    assert_eq!(ended, "1");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !new.try_integrator().unwrap() {
        assert!(Instant::now() < deadline, "the lock was not freed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let s1 = state(b"s1");
    new.publish(Some(&s0), &s1).unwrap();
    let refused = old.publish(Some(&s0), &state(b"s2")).unwrap_err();
    assert!(refused.to_string().contains("integrator"), "{refused}");
    assert!(!old.is_integrator());
    match new.publish(Some(&s0), &state(b"s3")) {
        Err(StorageError::StateConflict { .. }) => {}
        other => panic!("a stale compare-and-swap was not refused: {other:?}"),
    }
    assert_eq!(old.state().unwrap(), Some(s1));
}
