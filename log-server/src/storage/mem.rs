//! An in-memory [`Storage`] that can fail any write, for the fault-injection suite.
//!
//! Every write method (`stage`, `prune_staged`, `write_tiles`, `publish`) is one
//! numbered *write call* (0-based, counted across the store's life). A [`FaultPlan`] decides,
//! per call, whether it succeeds or fails in one of two [`FaultMode`]s:
//! - [`FaultMode::FailNotPersisted`]: return an error and change nothing;
//! - [`FaultMode::FailButPersisted`]: make the change, then return an error.
//!
//! Either way the caller sees [`StorageError::Injected`]. Reads never fail. The store obeys the
//! contract of [`Storage`] otherwise (atomic writes, compare-and-swap, immutable tiles), so a log
//! on top of it must survive any plan.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use rand::rngs::StdRng;
use rand::{RngCore as _, SeedableRng as _};

use verdict_core::merkle::{LeafIndex, TreeSize};
use verdict_core::tile::TileKind;

use crate::storage::{
    check_tile_write, merge_tile, LogState, StagedEntry, Storage, StorageError, StoredTile,
    TileWrite,
};

/// How an injected fault behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultMode {
    /// Return an error; the write did not happen.
    FailNotPersisted,
    /// Perform the write, then return an error.
    FailButPersisted,
}

/// Which write calls fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FaultPlan {
    /// No faults.
    #[default]
    Never,
    /// Exactly write call number `call` fails, in `mode`.
    AtCall {
        /// The 0-based write call number.
        call: u64,
        /// How it fails.
        mode: FaultMode,
    },
    /// Each write call fails with probability `1 / one_in`, in a random mode, from a seeded
    /// generator (deterministic for a given seed and call sequence).
    Random {
        /// Generator seed.
        seed: u64,
        /// Inverse failure probability (0 or 1: every call fails).
        one_in: u32,
    },
}

#[derive(Debug, Default)]
struct Data {
    staged: BTreeMap<u64, Vec<u8>>,
    staged_size: u64,
    private: BTreeMap<u64, Vec<u8>>,
    policies: BTreeMap<Vec<u8>, Vec<u8>>,
    escalations: BTreeMap<Vec<u8>, Vec<u8>>,
    tiles: BTreeMap<(TileKind, u64), StoredTile>,
    state: Option<LogState>,
}

#[derive(Debug, Default)]
struct Faults {
    plan: FaultPlan,
    calls: u64,
    injected: u64,
    /// Seeded by [`FaultPlan::Random`].
    rng: Option<StdRng>,
}

/// In-memory storage with fault injection. See the module docs.
#[derive(Debug, Default)]
pub struct MemStorage {
    data: Mutex<Data>,
    faults: Mutex<Faults>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the maps half-updated (every write validates
    // before mutating), so a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MemStorage {
    /// An empty store without faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replace the fault plan (the write call counter keeps counting).
    pub fn set_plan(&self, plan: FaultPlan) {
        let mut faults = lock(&self.faults);
        if let FaultPlan::Random { seed, .. } = plan {
            faults.rng = Some(StdRng::seed_from_u64(seed));
        }
        faults.plan = plan;
    }

    /// Number of write calls made so far.
    pub fn write_calls(&self) -> u64 {
        lock(&self.faults).calls
    }

    /// Number of faults injected so far.
    pub fn injected(&self) -> u64 {
        lock(&self.faults).injected
    }

    /// Decide the fate of the next write call.
    fn next_fault(&self) -> (u64, Option<FaultMode>) {
        let mut faults = lock(&self.faults);
        let call = faults.calls;
        faults.calls = faults.calls.saturating_add(1);
        let mode = match faults.plan {
            FaultPlan::Never => None,
            FaultPlan::AtCall { call: at, mode } => (at == call).then_some(mode),
            FaultPlan::Random { one_in, .. } => {
                let draw = faults
                    .rng
                    .get_or_insert_with(|| StdRng::seed_from_u64(0))
                    .next_u64();
                let fail = one_in <= 1 || draw.is_multiple_of(u64::from(one_in));
                let mode = if draw >> 63 == 0 {
                    FaultMode::FailNotPersisted
                } else {
                    FaultMode::FailButPersisted
                };
                fail.then_some(mode)
            }
        };
        if mode.is_some() {
            faults.injected = faults.injected.saturating_add(1);
        }
        (call, mode)
    }

    /// Run one write: `apply` validates and mutates (atomically: it must check before it
    /// changes anything), subject to the fault plan.
    fn write(
        &self,
        op: &'static str,
        apply: impl FnOnce(&mut Data) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let (call, fault) = self.next_fault();
        match fault {
            None => apply(&mut lock(&self.data)),
            Some(FaultMode::FailNotPersisted) => Err(StorageError::Injected {
                op,
                call,
                persisted: false,
            }),
            Some(FaultMode::FailButPersisted) => {
                apply(&mut lock(&self.data))?;
                Err(StorageError::Injected {
                    op,
                    call,
                    persisted: true,
                })
            }
        }
    }
}

impl Storage for MemStorage {
    fn staged_size(&self) -> Result<TreeSize, StorageError> {
        Ok(TreeSize(lock(&self.data).staged_size))
    }

    fn stage(&self, start: LeafIndex, batch: &[StagedEntry]) -> Result<(), StorageError> {
        self.write("stage", |data| {
            if data.staged_size != start.0 {
                return Err(StorageError::NotContiguous {
                    staged_size: data.staged_size,
                    start: start.0,
                });
            }
            let count = u64::try_from(batch.len()).map_err(|_| StorageError::Corrupt {
                what: "batch",
                reason: "too long",
            })?;
            let end = start.0.checked_add(count).ok_or(StorageError::Corrupt {
                what: "batch",
                reason: "index overflow",
            })?;
            for (index, item) in (start.0..).zip(batch) {
                data.staged.insert(index, item.entry.clone());
                if let Some(record) = &item.private {
                    data.private.insert(index, record.clone());
                }
            }
            data.staged_size = end;
            Ok(())
        })
    }

    fn staged(&self, start: LeafIndex, end: LeafIndex) -> Result<Vec<Vec<u8>>, StorageError> {
        let data = lock(&self.data);
        (start.0..end.0)
            .map(|index| {
                data.staged
                    .get(&index)
                    .cloned()
                    .ok_or(StorageError::Missing {
                        what: "staged entry",
                        index,
                    })
            })
            .collect()
    }

    fn prune_staged(&self, below: LeafIndex) -> Result<(), StorageError> {
        self.write("prune staged", |data| {
            data.staged = data.staged.split_off(&below.0);
            Ok(())
        })
    }

    fn private_record(&self, index: LeafIndex) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(lock(&self.data).private.get(&index.0).cloned())
    }

    fn put_policy_record(&self, key: &[u8], value: Option<&[u8]>) -> Result<(), StorageError> {
        self.write("put policy record", |data| {
            match value {
                Some(v) => data.policies.insert(key.to_vec(), v.to_vec()),
                None => data.policies.remove(key),
            };
            Ok(())
        })
    }

    fn policy_records(&self) -> Result<Vec<super::PolicyRecordEntry>, StorageError> {
        Ok(lock(&self.data)
            .policies
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn escalation(&self, id: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(lock(&self.data).escalations.get(id).cloned())
    }

    fn escalations(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StorageError> {
        Ok(lock(&self.data)
            .escalations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn swap_escalation(
        &self,
        id: &[u8],
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, StorageError> {
        let mut swapped = false;
        self.write("swap escalation", |data| {
            if data.escalations.get(id).map(Vec::as_slice) == expected {
                data.escalations.insert(id.to_vec(), new.to_vec());
                swapped = true;
            }
            Ok(())
        })?;
        Ok(swapped)
    }

    fn write_tiles(&self, tiles: &[TileWrite]) -> Result<(), StorageError> {
        self.write("write tiles", |data| {
            // Validate every tile first so that a conflict writes nothing.
            let mut merged = Vec::new();
            for write in tiles {
                check_tile_write(write)?;
                let key = (write.kind, write.index);
                if let Some(tile) = merge_tile(data.tiles.get(&key), write)? {
                    merged.push((key, tile));
                }
            }
            data.tiles.extend(merged);
            Ok(())
        })
    }

    fn read_tile(&self, kind: TileKind, index: u64) -> Result<Option<StoredTile>, StorageError> {
        Ok(lock(&self.data).tiles.get(&(kind, index)).cloned())
    }

    fn state(&self) -> Result<Option<LogState>, StorageError> {
        Ok(lock(&self.data).state.clone())
    }

    fn publish(&self, expected: Option<&LogState>, new: &LogState) -> Result<(), StorageError> {
        self.write("publish", |data| {
            if data.state.as_ref() != expected {
                return Err(StorageError::StateConflict {
                    expected: expected.map(|s| s.size.0),
                    found: data.state.as_ref().map(|s| s.size.0),
                });
            }
            data.state = Some(new.clone());
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8) -> StagedEntry {
        StagedEntry {
            entry: vec![n],
            private: Some(vec![n; 2]),
        }
    }

    #[test]
    fn fail_not_persisted_changes_nothing() {
        let store = MemStorage::new();
        store.set_plan(FaultPlan::AtCall {
            call: 1,
            mode: FaultMode::FailNotPersisted,
        });
        store.stage(LeafIndex(0), &[entry(1)]).unwrap();
        let err = store.stage(LeafIndex(1), &[entry(2)]).unwrap_err();
        assert!(matches!(
            err,
            StorageError::Injected {
                call: 1,
                persisted: false,
                ..
            }
        ));
        assert_eq!(store.staged_size().unwrap(), TreeSize(1));
        assert_eq!(store.private_record(LeafIndex(1)).unwrap(), None);
        store.stage(LeafIndex(1), &[entry(3)]).unwrap();
        assert_eq!(
            store.staged(LeafIndex(0), LeafIndex(2)).unwrap(),
            vec![vec![1], vec![3]]
        );
        assert_eq!(store.write_calls(), 3);
        assert_eq!(store.injected(), 1);
    }

    #[test]
    fn fail_but_persisted_changes_and_errs() {
        let store = MemStorage::new();
        store.set_plan(FaultPlan::AtCall {
            call: 0,
            mode: FaultMode::FailButPersisted,
        });
        let state = LogState {
            size: TreeSize(0),
            right_edge: vec![],
            checkpoint: b"x\n".to_vec(),
        };
        let err = store.publish(None, &state).unwrap_err();
        assert!(matches!(
            err,
            StorageError::Injected {
                persisted: true,
                ..
            }
        ));
        assert_eq!(store.state().unwrap(), Some(state.clone()));
        assert!(matches!(
            store.publish(None, &state),
            Err(StorageError::StateConflict { .. })
        ));
    }

    #[test]
    fn random_plan_is_deterministic_and_uses_both_modes() {
        let outcomes = |seed| {
            let store = MemStorage::new();
            store.set_plan(FaultPlan::Random { seed, one_in: 3 });
            (0..200u64)
                .map(|i| match store.prune_staged(LeafIndex(i)) {
                    Ok(()) => 0,
                    Err(StorageError::Injected {
                        persisted: false, ..
                    }) => 1,
                    Err(_) => 2,
                })
                .collect::<Vec<u8>>()
        };
        let a = outcomes(7);
        assert_eq!(a, outcomes(7));
        assert!(a.contains(&0) && a.contains(&1) && a.contains(&2));
    }
}
