//! The storage conformance suite (feature `testing`): the [`Storage`] contract, checked the
//! same way on every backend (sled, memory, PostgreSQL; spec `spec/storage-postgres.md` §4).
//!
//! A backend is given as a [`Backend`]: each case asks it for a fresh empty store and gets an
//! *opener*, a function that opens that same store again (a new handle on the same data: a
//! reopened sled directory, a new pool on the same database). Cases:
//! - [`durable_on_return`]: every write is read back through a reopened store;
//! - [`staging`]: contiguous staging, `NotContiguous`, `Missing`, pruning;
//! - [`publish_cas`]: compare-and-swap of the published state, a stale `expected` refused;
//! - [`tiles_immutable`]: partial tiles extend, prefixes are no-ops, changed bytes are
//!   `TileConflict` and a conflicting call writes nothing; full tiles (from a real tree of 600
//!   entries) never change;
//! - [`records`]: private records and policy-registry records, apart from tiles and entries;
//! - [`log_round_trip`]: a real [`Log`] on the store, shut down, reopened on a reopened store
//!   and checked whole with [`check_whole_log`].
//!
//! A case returns a [`Failure`] naming what did not hold, never panics.

use std::sync::Arc;
use std::time::Duration;

use verdict_core::merkle::{LeafIndex, RightEdge, TreeSize};
use verdict_core::note::Signer;
use verdict_core::tile::{TileKind, TILE_WIDTH};

use crate::log::check::check_whole_log;
use crate::log::{Log, LogConfig};
use crate::storage::{LogState, StagedEntry, Storage, StorageError, StoredTile, TileWrite};

/// Opens one store (again).
pub type Opener = Box<dyn Fn() -> Result<Arc<dyn Storage>, StorageError> + Send + Sync>;

/// A backend under test.
pub trait Backend {
    /// Name, for reports.
    fn name(&self) -> &'static str;
    /// A fresh empty store, as an opener of it.
    ///
    /// # Errors
    /// When the store cannot be created.
    fn fresh(&self) -> Result<Opener, StorageError>;
    /// Whether a reopened store is a new handle on the same data (false for the memory
    /// backend, whose opener returns the same store).
    fn reopens(&self) -> bool {
        true
    }
}

/// A case that did not hold.
#[derive(Debug, thiserror::Error)]
#[error("{backend}: {case}: {detail}")]
pub struct Failure {
    /// Backend name.
    pub backend: &'static str,
    /// Case name.
    pub case: &'static str,
    /// What did not hold.
    pub detail: String,
}

/// Context of one case, to make [`Failure`]s.
struct Case {
    backend: &'static str,
    case: &'static str,
}

impl Case {
    fn fail(&self, detail: impl Into<String>) -> Failure {
        Failure {
            backend: self.backend,
            case: self.case,
            detail: detail.into(),
        }
    }

    fn ensure(&self, ok: bool, detail: impl FnOnce() -> String) -> Result<(), Failure> {
        if ok {
            Ok(())
        } else {
            Err(self.fail(detail()))
        }
    }

    fn ok<T, E: std::fmt::Display>(&self, what: &str, result: Result<T, E>) -> Result<T, Failure> {
        result.map_err(|e| self.fail(format!("{what}: {e}")))
    }
}

fn entry(n: u64) -> StagedEntry {
    StagedEntry {
        entry: format!("entry {n}").into_bytes(),
        private: n
            .is_multiple_of(2)
            .then(|| format!("private {n}").into_bytes()),
    }
}

fn state(size: u64, note: &str) -> LogState {
    LogState {
        size: TreeSize(size),
        right_edge: (0..size.count_ones())
            .map(|i| verdict_core::merkle::Hash([u8::try_from(i).unwrap_or(0); 32]))
            .collect(),
        checkpoint: note.as_bytes().to_vec(),
    }
}

/// Run every case on `backend`; returns the names of the cases that passed.
///
/// # Errors
/// The first [`Failure`].
pub async fn run_all(backend: &dyn Backend) -> Result<Vec<&'static str>, Failure> {
    let mut passed = Vec::new();
    type CaseFn = fn(&dyn Backend, Opener) -> Result<(), Failure>;
    let cases: [(&'static str, CaseFn); 5] = [
        ("durable_on_return", durable_on_return),
        ("staging", staging),
        ("publish_cas", publish_cas),
        ("tiles_immutable", tiles_immutable),
        ("records", records),
    ];
    for (name, case) in cases {
        let opener = fresh(backend, name)?;
        case(backend, opener)?;
        passed.push(name);
    }
    log_round_trip(backend, fresh(backend, "log_round_trip")?).await?;
    passed.push("log_round_trip");
    Ok(passed)
}

fn fresh(backend: &dyn Backend, case: &'static str) -> Result<Opener, Failure> {
    backend.fresh().map_err(|e| Failure {
        backend: backend.name(),
        case,
        detail: format!("creating the store: {e}"),
    })
}

/// Writes of every kind, then a reopened store reads them all back.
///
/// # Errors
/// [`Failure`].
pub fn durable_on_return(backend: &dyn Backend, open: Opener) -> Result<(), Failure> {
    let c = Case {
        backend: backend.name(),
        case: "durable_on_return",
    };
    let batch: Vec<StagedEntry> = (0..5).map(entry).collect();
    let published = state(3, "checkpoint 3\n");
    let tile = TileWrite {
        kind: TileKind::Hashes { level: 0 },
        index: 0,
        tile: StoredTile {
            width: 3,
            bytes: vec![7; 96],
        },
    };
    {
        let store = c.ok("open", open())?;
        c.ok("stage", store.stage(LeafIndex(0), &batch))?;
        c.ok(
            "write tiles",
            store.write_tiles(std::slice::from_ref(&tile)),
        )?;
        c.ok("publish", store.publish(None, &published))?;
        c.ok(
            "put policy record",
            store.put_policy_record(b"policy/a", Some(b"text a")),
        )?;
    }
    let store = c.ok("reopen", open())?;
    c.ensure(store.staged_size().ok() == Some(TreeSize(5)), || {
        format!("staged size after reopen: {:?}", store.staged_size())
    })?;
    let staged = c.ok("read staged", store.staged(LeafIndex(0), LeafIndex(5)))?;
    c.ensure(
        staged == batch.iter().map(|e| e.entry.clone()).collect::<Vec<_>>(),
        || "staged entries differ after reopen".into(),
    )?;
    for (i, item) in batch.iter().enumerate() {
        let index = LeafIndex(u64::try_from(i).unwrap_or(u64::MAX));
        let record = c.ok("read private", store.private_record(index))?;
        c.ensure(record == item.private, || {
            format!("private record {i} differs after reopen")
        })?;
    }
    let read = c.ok("read tile", store.read_tile(tile.kind, 0))?;
    c.ensure(read.as_ref() == Some(&tile.tile), || {
        format!("tile after reopen: {read:?}")
    })?;
    let read = c.ok("read state", store.state())?;
    c.ensure(read.as_ref() == Some(&published), || {
        "published state differs after reopen".into()
    })?;
    let records = c.ok("read policy records", store.policy_records())?;
    c.ensure(
        records == vec![(b"policy/a".to_vec(), b"text a".to_vec())],
        || format!("policy records after reopen: {records:?}"),
    )
}

/// Staging is contiguous and append-only; pruning drops only what is below.
///
/// # Errors
/// [`Failure`].
pub fn staging(backend: &dyn Backend, open: Opener) -> Result<(), Failure> {
    let c = Case {
        backend: backend.name(),
        case: "staging",
    };
    let store = c.ok("open", open())?;
    c.ensure(store.staged_size().ok() == Some(TreeSize(0)), || {
        "a fresh store has staged entries".into()
    })?;
    c.ok("stage", store.stage(LeafIndex(0), &[entry(0), entry(1)]))?;
    for start in [0, 1, 3] {
        let refused = store.stage(LeafIndex(start), &[entry(start)]);
        c.ensure(
            matches!(
                refused,
                Err(StorageError::NotContiguous { staged_size: 2, start: s }) if s == start
            ),
            || format!("staging at {start} after 2 entries: {refused:?}"),
        )?;
    }
    c.ok("stage", store.stage(LeafIndex(2), &[entry(2), entry(3)]))?;
    c.ok("stage empty batch", store.stage(LeafIndex(4), &[]))?;
    c.ensure(store.staged_size().ok() == Some(TreeSize(4)), || {
        "staged size is not 4".into()
    })?;
    let missing = store.staged(LeafIndex(3), LeafIndex(5));
    c.ensure(
        matches!(missing, Err(StorageError::Missing { index: 4, .. })),
        || format!("reading past the staged size: {missing:?}"),
    )?;
    c.ok("prune", store.prune_staged(LeafIndex(2)))?;
    let pruned = store.staged(LeafIndex(1), LeafIndex(3));
    c.ensure(
        matches!(pruned, Err(StorageError::Missing { index: 1, .. })),
        || format!("reading a pruned entry: {pruned:?}"),
    )?;
    let kept = c.ok("read kept", store.staged(LeafIndex(2), LeafIndex(4)))?;
    c.ensure(kept == vec![entry(2).entry, entry(3).entry], || {
        "entries above the prune point changed".into()
    })?;
    c.ensure(store.staged_size().ok() == Some(TreeSize(4)), || {
        "pruning changed the staged size".into()
    })?;
    // Private records outlive pruning.
    let private = c.ok("read private", store.private_record(LeafIndex(0)))?;
    c.ensure(private == entry(0).private, || {
        "pruning dropped a private record".into()
    })
}

/// `publish` is a compare-and-swap on the whole stored state.
///
/// # Errors
/// [`Failure`].
pub fn publish_cas(backend: &dyn Backend, open: Opener) -> Result<(), Failure> {
    let c = Case {
        backend: backend.name(),
        case: "publish_cas",
    };
    let store = c.ok("open", open())?;
    let (s0, s1, s2) = (state(0, "a\n"), state(1, "b\n"), state(2, "c\n"));
    c.ensure(store.state().ok() == Some(None), || {
        "a fresh store has a state".into()
    })?;
    let wrong = store.publish(Some(&s0), &s1);
    c.ensure(
        matches!(
            wrong,
            Err(StorageError::StateConflict {
                expected: Some(0),
                found: None
            })
        ),
        || format!("publish expecting a state on an empty store: {wrong:?}"),
    )?;
    c.ok("first publish", store.publish(None, &s0))?;
    let again = store.publish(None, &s1);
    c.ensure(
        matches!(
            again,
            Err(StorageError::StateConflict {
                expected: None,
                found: Some(0)
            })
        ),
        || format!("a second first publish: {again:?}"),
    )?;
    c.ok("publish", store.publish(Some(&s0), &s1))?;
    let stale = store.publish(Some(&s0), &s2);
    c.ensure(
        matches!(
            stale,
            Err(StorageError::StateConflict {
                expected: Some(0),
                found: Some(1)
            })
        ),
        || format!("publish with a stale expected state: {stale:?}"),
    )?;
    // Same size, other bytes: still not the expected state.
    let forged = state(1, "b but other bytes\n");
    let refused = store.publish(Some(&forged), &s2);
    c.ensure(
        matches!(refused, Err(StorageError::StateConflict { .. })),
        || format!("publish expecting a state of the same size but other bytes: {refused:?}"),
    )?;
    c.ensure(store.state().ok() == Some(Some(s1.clone())), || {
        "a refused publish changed the state".into()
    })?;
    c.ok("publish", store.publish(Some(&s1), &s2))?;
    let now = c.ok("reopen", open())?.state();
    c.ensure(now.ok() == Some(Some(s2)), || {
        "the state after reopen is not the last published".into()
    })
}

/// Tiles extend, never change; a conflicting call writes nothing.
///
/// # Errors
/// [`Failure`].
pub fn tiles_immutable(backend: &dyn Backend, open: Opener) -> Result<(), Failure> {
    let c = Case {
        backend: backend.name(),
        case: "tiles_immutable",
    };
    let store = c.ok("open", open())?;
    let hashes = |width: u16, byte: u8| TileWrite {
        kind: TileKind::Hashes { level: 2 },
        index: 9,
        tile: StoredTile {
            width,
            bytes: vec![byte; usize::from(width) * 32],
        },
    };
    let bundle = TileWrite {
        kind: TileKind::Entries,
        index: 9,
        tile: StoredTile {
            width: 1,
            bytes: vec![0, 1, 7],
        },
    };
    c.ok("write", store.write_tiles(&[hashes(1, 5), bundle.clone()]))?;
    c.ok("extend", store.write_tiles(&[hashes(3, 5)]))?;
    c.ok("rewrite a prefix", store.write_tiles(&[hashes(2, 5)]))?;
    let read = c.ok("read", store.read_tile(TileKind::Hashes { level: 2 }, 9))?;
    c.ensure(read.as_ref().map(|t| t.width) == Some(3), || {
        format!("a prefix rewrite narrowed the tile: {read:?}")
    })?;
    // One conflicting tile: the call fails and writes nothing, not even its good tiles.
    let good = TileWrite {
        index: 10,
        ..bundle.clone()
    };
    let conflict = store.write_tiles(&[good, hashes(4, 6)]);
    c.ensure(
        matches!(conflict, Err(StorageError::TileConflict { index: 9, .. })),
        || format!("changing stored tile bytes: {conflict:?}"),
    )?;
    let ghost = c.ok("read", store.read_tile(TileKind::Entries, 10))?;
    c.ensure(ghost.is_none(), || {
        "a refused write_tiles call wrote a tile".into()
    })?;
    let mut other = bundle.clone();
    other.tile.bytes = vec![0, 1, 8];
    let conflict = store.write_tiles(&[other]);
    c.ensure(
        matches!(conflict, Err(StorageError::TileConflict { .. })),
        || format!("changing a stored entry bundle: {conflict:?}"),
    )?;
    let malformed = store.write_tiles(&[TileWrite {
        index: 11,
        ..hashes(0, 1)
    }]);
    c.ensure(
        matches!(malformed, Err(StorageError::Corrupt { .. })),
        || format!("a tile of width 0: {malformed:?}"),
    )?;

    // Full tiles, from a real tree (the sled backend checks full tiles against their parents).
    let entries: Vec<Vec<u8>> = (0..600u64).map(|n| entry(n).entry).collect();
    let staged: Vec<StagedEntry> = entries
        .iter()
        .map(|e| StagedEntry {
            entry: e.clone(),
            private: None,
        })
        .collect();
    c.ok("stage 600", store.stage(LeafIndex(0), &staged))?;
    let extension = c.ok(
        "extend",
        crate::log::tiles::extend(store.as_ref(), &RightEdge::new(), &entries),
    )?;
    c.ok("write the tree", store.write_tiles(&extension.writes))?;
    let full = c.ok("read", store.read_tile(TileKind::Hashes { level: 0 }, 1))?;
    let full = full.ok_or_else(|| c.fail("full tile 0/001 missing"))?;
    c.ensure(full.width == TILE_WIDTH, || "tile 0/001 is not full".into())?;
    c.ok(
        "rewrite the same full tile",
        store.write_tiles(&[TileWrite {
            kind: TileKind::Hashes { level: 0 },
            index: 1,
            tile: full.clone(),
        }]),
    )?;
    let mut changed = full.clone();
    if let Some(byte) = changed.bytes.last_mut() {
        *byte ^= 1;
    }
    let conflict = store.write_tiles(&[TileWrite {
        kind: TileKind::Hashes { level: 0 },
        index: 1,
        tile: changed,
    }]);
    c.ensure(
        matches!(conflict, Err(StorageError::TileConflict { index: 1, .. })),
        || format!("rewriting a full tile with other bytes: {conflict:?}"),
    )?;
    let reopened = c.ok("reopen", open())?;
    let after = c.ok("read", reopened.read_tile(TileKind::Hashes { level: 0 }, 1))?;
    c.ensure(after.as_ref() == Some(&full), || {
        "a full tile changed after a refused rewrite".into()
    })
}

/// Private and policy-registry records: written, read, deleted, apart from the log.
///
/// # Errors
/// [`Failure`].
pub fn records(backend: &dyn Backend, open: Opener) -> Result<(), Failure> {
    let c = Case {
        backend: backend.name(),
        case: "records",
    };
    let store = c.ok("open", open())?;
    c.ok("stage", store.stage(LeafIndex(0), &[entry(0), entry(1)]))?;
    let private = c.ok("read private", store.private_record(LeafIndex(0)))?;
    c.ensure(private == entry(0).private, || {
        "private record 0 not stored".into()
    })?;
    let none = c.ok("read private", store.private_record(LeafIndex(1)))?;
    c.ensure(none.is_none(), || {
        "an entry without a private record has one".into()
    })?;
    let staged = c.ok("read staged", store.staged(LeafIndex(0), LeafIndex(2)))?;
    c.ensure(
        staged
            .iter()
            .all(|e| !e.windows(7).any(|w| w == b"private")),
        || "a staged entry read returned private bytes".into(),
    )?;
    c.ensure(store.policy_records().ok() == Some(Vec::new()), || {
        "a fresh store has policy records".into()
    })?;
    for key in [&b"b"[..], b"a\xff", b"a", b"\x00z"] {
        c.ok("put", store.put_policy_record(key, Some(key)))?;
    }
    c.ok("overwrite", store.put_policy_record(b"b", Some(b"B")))?;
    c.ok("delete", store.put_policy_record(b"a", None))?;
    c.ok("delete absent", store.put_policy_record(b"nothing", None))?;
    let records = c.ok("read", store.policy_records())?;
    let expected: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"\x00z".to_vec(), b"\x00z".to_vec()),
        (b"a\xff".to_vec(), b"a\xff".to_vec()),
        (b"b".to_vec(), b"B".to_vec()),
    ];
    c.ensure(records == expected, || {
        format!("policy records not sorted bytewise or not as written: {records:?}")
    })?;
    let reopened = c.ok("reopen", open())?;
    c.ensure(reopened.policy_records().ok() == Some(expected), || {
        "policy records differ after reopen".into()
    })
}

const ORIGIN: &str = "example.com/conformance";

fn signer() -> Result<Signer, Failure> {
    Signer::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[42; 32])).map_err(|e| Failure {
        backend: "",
        case: "log_round_trip",
        detail: format!("signer: {e}"),
    })
}

/// A real [`Log`] on the store: 600 entries (two full bundles and a partial one), shut down,
/// reopened on a reopened store, checked whole, then grown and checked again.
///
/// # Errors
/// [`Failure`].
pub async fn log_round_trip(backend: &dyn Backend, open: Opener) -> Result<(), Failure> {
    let c = Case {
        backend: backend.name(),
        case: "log_round_trip",
    };
    let config = LogConfig {
        batch_max_entries: 128,
        batch_max_age: Duration::from_millis(2),
        ..LogConfig::new(ORIGIN)
    };
    let verifier = signer()?.verifier();
    let submit = |log: &Log, range: std::ops::Range<u64>| {
        let tasks: Vec<_> = range
            .map(|n| {
                let log = log.clone();
                tokio::spawn(async move {
                    let sequenced = log
                        .submit_for_proof(format!("log entry {n}").into_bytes(), None)
                        .await?;
                    let index = sequenced.index;
                    sequenced.integrated().await.map(|_| index)
                })
            })
            .collect();
        async move {
            let mut indices = Vec::new();
            for task in tasks {
                indices.push(
                    task.await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())?,
                );
            }
            Ok::<_, String>(indices)
        }
    };
    let first = {
        let store = c.ok("open", open())?;
        let log = c.ok(
            "open log",
            Log::open(store, signer()?, config.clone()).await,
        )?;
        let indices = c.ok("submit", submit(&log, 0..600).await)?;
        c.ensure(indices.len() == 600, || "not every entry integrated".into())?;
        c.ok("shutdown", log.shutdown().await)?;
        log.latest_checkpoint()
            .ok_or_else(|| c.fail("no checkpoint after shutdown"))?
            .checkpoint
    };
    c.ensure(first.size == TreeSize(600), || {
        format!("tree size {} after 600 entries", first.size.0)
    })?;
    let store = c.ok("reopen", open())?;
    let checked = c.ok(
        "check the reopened log",
        check_whole_log(store.as_ref(), &verifier, None),
    )?;
    c.ensure(checked.checkpoint.checkpoint() == &first, || {
        "the reopened store does not hold the last checkpoint".into()
    })?;
    let log = c.ok(
        "reopen log",
        Log::open(store.clone(), signer()?, config).await,
    )?;
    c.ok("submit more", submit(&log, 600..700).await)?;
    c.ok("shutdown", log.shutdown().await)?;
    let checked = c.ok(
        "check the grown log",
        check_whole_log(store.as_ref(), &verifier, Some(&first)),
    )?;
    c.ensure(
        checked.checkpoint.checkpoint().size == TreeSize(700),
        || "tree size after 700 entries".into(),
    )?;
    if backend.reopens() {
        let again = c.ok("reopen", open())?;
        c.ok(
            "check after a last reopen",
            check_whole_log(again.as_ref(), &verifier, Some(&first)),
        )?;
    }
    Ok(())
}
