//! The checkpoint lock on a store shared by several frontends (spec `storage-postgres.md` §5.4,
//! `checkpoint-lock.md` §6).
//!
//! - **The shared lock** ([`crate::storage::shared::SharedLog::swap_lock`]): the last checkpoint
//!   an integrator signed, kept in the store. The integrator writes it by compare-and-swap
//!   *before* publishing ([`Sequencer::write_shared_lock`], after the lock file), only to a
//!   checkpoint that equals or extends it; an integrator taking over (or opening) checks it
//!   against the published state exactly as the lock file is checked at open
//!   ([`Sequencer::check_shared_lock`]).
//! - **The lock file of each frontend** stays, as a tripwire against a database rolled back
//!   (restored from an older backup, together with its shared lock): a frontend advances its
//!   file to every checkpoint it follows, after a consistency proof from the previous one
//!   ([`Sequencer::advance_file_lock`]), and checks it at open like a single server. A database
//!   older than what a frontend saw is refused at start (exit 3), and while running the frontend
//!   halts (no new entries, no new checkpoints: `/health` reports it) until an operator acts.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use verdict_core::checkpoint::Checkpoint;
use verdict_core::merkle::RightEdge;

use super::super::LogError;
use super::Sequencer;

/// How a mismatch names the shared lock (in place of a lock file's path).
const SHARED_LOCK: &str = "postgres:verdict_log.locked";

impl Sequencer {
    /// Integrator, at open and at takeover (after the lock-file check): the store's published
    /// and staged entries must reach the shared lock, and the store's tree must extend it; the
    /// larger of the file's and the shared lock's checkpoints becomes the one every new
    /// checkpoint must extend.
    ///
    /// # Errors
    /// [`LogError::LockMismatch`] naming `postgres:verdict_log.locked`; an unverifiable lock;
    /// storage errors.
    pub(super) fn check_shared_lock(&mut self) -> Result<(), LogError> {
        let storage = Arc::clone(&self.shared.storage);
        let Some(shared) = storage.shared() else {
            return Ok(());
        };
        let note = shared.lock()?;
        self.shared_lock = Some(note.clone());
        let Some(note) = note else {
            // The first checkpoint this integrator signs creates it.
            return Ok(());
        };
        let locked = self.open_lock_note(&note)?;
        let edge = self.edge.clone();
        if edge.size() < locked.size {
            if self.staged_size < locked.size.0 {
                return Err(self.mismatch_at(
                    PathBuf::from(SHARED_LOCK),
                    &locked,
                    &edge,
                    "the database holds fewer entries than its checkpoint lock (restored from an older backup, or writes were lost)",
                ));
            }
        } else {
            self.check_extends(&locked, &edge, PathBuf::from(SHARED_LOCK))?;
        }
        tracing::info!(
            lock.size = locked.size.0,
            tree.size = edge.size().0,
            "shared checkpoint lock at tree size {} checked against the store at tree size {}",
            locked.size.0,
            edge.size().0
        );
        if self.locked.as_ref().is_none_or(|l| l.size < locked.size) {
            self.locked = Some(locked);
        }
        Ok(())
    }

    /// Integrator, before publishing `note` (the signed checkpoint of `edge`): write it to the
    /// shared lock by compare-and-swap. When the stored lock is not known (first write after a
    /// refusal), it is read, verified and proven to be extended by `edge` first.
    ///
    /// # Errors
    /// [`crate::storage::StorageError::LockRefused`] (another integrator wrote meanwhile, or
    /// `note` does not extend the stored lock); [`LogError::LockMismatch`]; storage errors.
    pub(super) fn write_shared_lock(
        &mut self,
        note: &[u8],
        edge: &RightEdge,
    ) -> Result<(), LogError> {
        let storage = Arc::clone(&self.shared.storage);
        let Some(shared) = storage.shared() else {
            return Ok(());
        };
        let expected = match self.shared_lock.take() {
            Some(known) => known,
            None => {
                let stored = shared.lock()?;
                if let Some(stored) = &stored {
                    let locked = self.open_lock_note(stored)?;
                    self.check_extends(&locked, edge, PathBuf::from(SHARED_LOCK))?;
                }
                stored
            }
        };
        if expected.as_deref() == Some(note) {
            self.shared_lock = Some(expected);
            return Ok(());
        }
        match shared.swap_lock(expected.as_deref(), note) {
            Ok(()) => {
                self.shared_lock = Some(Some(note.to_vec()));
                Ok(())
            }
            Err(error) => {
                // Unknown now: re-read before the next write.
                self.dirty = true;
                Err(error.into())
            }
        }
    }

    /// Frontend, after following the published state: advance the lock file to the published
    /// checkpoint, after proving it extends the one in the file (from the stored tiles).
    ///
    /// # Errors
    /// [`LogError::LockMismatch`] when the published tree does not extend the file's checkpoint
    /// (a database rolled back below what this frontend saw); write errors of the file.
    pub(super) fn advance_file_lock(&mut self) -> Result<(), LogError> {
        let (Some(lock), Some(state)) = (self.lock.clone(), self.published.as_ref()) else {
            return Ok(());
        };
        let note = state.checkpoint.clone();
        let checkpoint = Checkpoint::open(&note, &self.verifier, &[])?
            .checkpoint()
            .clone();
        if self.locked.as_ref() == Some(&checkpoint) {
            return Ok(());
        }
        if let Some(locked) = &self.locked {
            if locked.size > checkpoint.size {
                if self.staged_size >= locked.size.0 {
                    // This process signed the file's checkpoint as the integrator and lost the
                    // role before publishing it: its entries are staged, the integrator will
                    // publish a tree that reaches it (checked then).
                    return Ok(());
                }
                let edge = self.edge.clone();
                return Err(self.mismatch_at(
                    lock.path().to_path_buf(),
                    locked,
                    &edge,
                    "the database holds fewer entries than a checkpoint this frontend saw (restored from an older backup, or writes were lost)",
                ));
            }
            self.check_extends_lock(&self.edge.clone())?;
        }
        lock.write(&note)?;
        self.locked = Some(checkpoint);
        Ok(())
    }

    /// A frontend met an integrity error (a database rolled back below its lock file, a failed
    /// check at takeover): halt, as on a witness alarm. Nothing new is accepted or signed by
    /// this process until an operator restarts it (which re-checks at open: exit 3).
    pub(super) fn alarm(&mut self, op: &'static str, error: &LogError) {
        if !error.is_integrity() {
            return;
        }
        if !self.shared.halted.swap(true, Ordering::AcqRel) {
            tracing::error!(
                op,
                error = %error,
                "ALARM: shared log integrity check failed during {op}: {error}; this frontend \
                 halts (no new entries, no new checkpoints) until restarted"
            );
        }
    }

    /// Verify a checkpoint note kept in a lock with the log key and origin.
    fn open_lock_note(&self, note: &[u8]) -> Result<Checkpoint, LogError> {
        let checkpoint = Checkpoint::open(note, &self.verifier, &[])
            .map_err(|e| LogError::LockUnreadable {
                path: PathBuf::from(SHARED_LOCK),
                reason: e.to_string(),
            })?
            .checkpoint()
            .clone();
        if checkpoint.origin != self.shared.cfg.origin {
            return Err(LogError::LockUnreadable {
                path: PathBuf::from(SHARED_LOCK),
                reason: "another origin".to_owned(),
            });
        }
        Ok(checkpoint)
    }
}
