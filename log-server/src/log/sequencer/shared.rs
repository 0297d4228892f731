//! The sequencer on a store shared by several frontends (issue 18; spec
//! `spec/storage-postgres.md` §5; [`crate::storage::shared`]).
//!
//! Every process stages its own batches at the end of staging
//! ([`crate::storage::shared::SharedLog::stage_at_end`]) and acknowledges each entry with its
//! index once that is durable, as a single server does. Then:
//! - **the integrator** (the process holding the store's integrator lock) integrates everything
//!   staged, by any frontend, in index order, and signs and publishes checkpoints exactly as a
//!   single server does (same code, same checkpoint-lock checks, same compare-and-swap, which
//!   fences an integrator that lost the lock without noticing: its expected state is stale);
//!   it is woken by the other frontends' announcements and polls staging every `poll_interval`;
//! - **a frontend** integrates nothing: it follows the published state ([`Sequencer::reload`],
//!   which verifies the checkpoint's signature and refuses a state that lost entries or
//!   checkpoints), woken by announcements and polling every `poll_interval`, and its clients
//!   build their inclusion proofs from stored tiles ([`crate::log::Sequenced::integrated`]);
//!   every `takeover_interval` it tries to take the integrator lock, and when it gets it, it
//!   first recovers exactly as a server does at open: reload, checkpoint-lock check, integrate
//!   whatever is staged.
//!
//! **Entry times across frontends** (spec `storage-postgres.md` §5.6, `receipt.md` §9). Each
//! batch is staged with its entry times; the store refuses it under its row lock when its first
//! time is older than the last staged one ([`StorageError::StaleTime`]). The sequencer then
//! raises the entry clock to the stored time, re-stamps (re-signs, through each entry's
//! [`crate::log::Restamp`]) every entry of the batch older than it, and stages again at once, up
//! to [`STALE_TIME_RETRIES`] times; an entry that cannot be re-stamped fails the batch closed
//! (503, nothing acknowledged). Every follow also raises the entry clock to the stored last
//! time, so that a frontend whose clock is behind stamps at least the others' times.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use verdict_core::merkle::LeafIndex;

use super::super::clock::{raise, Restamped};
use super::super::LogError;
use super::{Sequencer, Timed};
use crate::storage::shared::BatchTimes;
use crate::storage::{StagedEntry, StorageError};

/// Times a batch refused for a stale entry time is re-stamped and staged again.
pub(super) const STALE_TIME_RETRIES: u32 = 8;

impl Sequencer {
    /// Whether this process integrates: always on a store of its own; on a shared store, while
    /// it holds the integrator lock.
    pub(super) fn integrating(&self) -> bool {
        self.shared
            .storage
            .shared()
            .is_none_or(|shared| shared.is_integrator())
    }

    /// Stage `entries` durably and return the index of the first: at the staged size on a store
    /// of its own, at the end of staging on a shared one, re-stamping the batch while the store
    /// refuses its entry times (module docs).
    pub(super) fn stage_batch(
        &self,
        entries: &mut [StagedEntry],
        timed: &mut [Timed],
    ) -> Result<u64, StorageError> {
        let storage = &self.shared.storage;
        let Some(shared) = storage.shared() else {
            return storage
                .stage(LeafIndex(self.staged_size), entries)
                .map(|()| self.staged_size);
        };
        let mut attempt = 0;
        loop {
            match shared.stage_at_end(entries, batch_times(timed)) {
                Err(StorageError::StaleTime { last_ms }) if attempt < STALE_TIME_RETRIES => {
                    attempt += 1;
                    raise(&self.shared.clock, last_ms);
                    let moved = restamp(entries, timed, last_ms)?;
                    tracing::debug!(
                        entry.time_ms = last_ms,
                        "re-stamped {moved} entries at {last_ms} (another frontend staged later \
                         times; attempt {attempt})"
                    );
                }
                other => return other.map(|start| start.0),
            }
        }
    }

    /// A frontend's next wake-up: the poll interval (or the takeover interval if shorter).
    pub(super) fn frontend_wakeup(&self) -> Option<Duration> {
        let shared = self.shared.storage.shared()?;
        if shared.is_integrator() {
            return None;
        }
        Some(
            shared
                .poll_interval()
                .min(shared.takeover_interval())
                .max(Duration::from_millis(1)),
        )
    }

    /// On a shared store, the longest an idle integrator waits before looking at staging again.
    pub(super) fn poll_interval(&self) -> Duration {
        self.shared
            .storage
            .shared()
            .map_or(Duration::MAX, |shared| shared.poll_interval())
    }

    /// An announcement arrived (or the `LISTEN` connection was re-established): catch up now.
    pub(super) fn wake(&mut self) {
        self.shared.wake_pending.store(false, Ordering::Release);
        if self.shared.storage.shared().is_none() || self.shared.halted.load(Ordering::Acquire) {
            return;
        }
        self.tick();
    }

    /// On a shared store, the periodic work of [`Sequencer::tick`] that differs from a store of
    /// its own: a frontend tries to take over, else follows the published state (`true`: the
    /// tick is done); the integrator first learns what the others staged (`false`: the tick goes
    /// on and integrates it).
    pub(super) fn follow_shared(&mut self) -> bool {
        let storage = Arc::clone(&self.shared.storage);
        let Some(shared) = storage.shared() else {
            return false;
        };
        // Entry times across frontends: stamp at least what the others staged (module docs).
        match shared.last_time_ms() {
            Ok(last_ms) => raise(&self.shared.clock, last_ms),
            Err(error) => {
                tracing::debug!(error = %error, "reading the last entry time failed: {error}")
            }
        }
        if shared.is_integrator() {
            match storage.staged_size() {
                Ok(size) if size.0 > self.staged_size => {
                    self.staged_size = size.0;
                    self.shared.staged.store(size.0, Ordering::Release);
                }
                Ok(_) => {}
                Err(error) => self.failed("read staged size", Some(&error.into())),
            }
            return false;
        }
        // Waiters are served by the integrator only: from here they build proofs from tiles.
        self.waiters.clear();
        if self.takeover_tried.elapsed() >= shared.takeover_interval() {
            self.takeover_tried = Instant::now();
            match shared.try_integrator() {
                Ok(true) => {
                    tracing::warn!(
                        tree.size = self.published_size(),
                        "took over as the integrator of the shared log at tree size {}",
                        self.published_size()
                    );
                    if let Err(error) = self.take_over() {
                        self.failed("takeover", Some(&error));
                        self.alarm("takeover", &error);
                    }
                    return true;
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::debug!(error = %error, "trying the integrator lock failed: {error}");
                }
            }
        }
        // Following also advances this frontend's lock file (module `shared_lock`).
        match self.reload().and_then(|()| self.advance_file_lock()) {
            Ok(()) => self.set_failing(None),
            Err(error) => {
                self.failed("follow the published state", Some(&error));
                self.alarm("follow the published state", &error);
            }
        }
        true
    }

    /// Become the integrator: recover as at open (reload, checks of the lock file and of the
    /// shared lock, integrate whatever is staged, publish a first checkpoint if there is none).
    fn take_over(&mut self) -> Result<(), LogError> {
        self.dirty = true;
        self.reload()?;
        self.check_lock_at_open()?;
        self.check_shared_lock()?;
        self.integrate_staged(None)?;
        if self.published.is_none() {
            self.publish(self.edge.clone())?;
        }
        self.set_failing(None);
        Ok(())
    }
}

/// The entry times of a batch (`None` when no entry went through the entry clock).
fn batch_times(timed: &[Timed]) -> Option<BatchTimes> {
    let mut times = timed.iter().filter_map(|t| t.time_ms);
    let first_ms = times.next()?;
    let last_ms = times.fold(first_ms, u64::max);
    Some(BatchTimes { first_ms, last_ms })
}

/// Re-stamp every entry older than `last_ms` at `last_ms` (the batch stays non-decreasing: it
/// was, and only its oldest prefix moves). Returns how many moved.
///
/// # Errors
/// [`StorageError::StaleTime`] when an entry that must move cannot be re-stamped.
fn restamp(
    entries: &mut [StagedEntry],
    timed: &mut [Timed],
    last_ms: u64,
) -> Result<usize, StorageError> {
    let mut moved = 0;
    for (entry, timed) in entries.iter_mut().zip(timed) {
        if timed.time_ms.is_none_or(|time_ms| time_ms >= last_ms) {
            continue;
        }
        let bytes = timed
            .restamp
            .as_mut()
            .and_then(|restamp| restamp(last_ms))
            .filter(|bytes| bytes.len() <= super::super::MAX_ENTRY_LEN)
            .ok_or(StorageError::StaleTime { last_ms })?;
        entry.entry.clone_from(&bytes);
        timed.time_ms = Some(last_ms);
        timed.restamped = Some(Restamped {
            time_ms: last_ms,
            entry: bytes,
        });
        moved += 1;
    }
    Ok(moved)
}
