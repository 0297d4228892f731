//! The sequencer: one thread that batches submissions and runs, per batch, in order:
//!
//! 1. **stage** the entries and private records at the next indices ([`Storage::stage`], durable)
//!    and acknowledge each submitter with its index;
//! 2. **integrate**: extend the right edge, write hash tiles and entry bundles;
//! 3. **sign** the new checkpoint and **publish** it with the right edge (compare-and-swap);
//! 4. **wake** everyone waiting for integration (a `watch` channel), and hand each submitter
//!    that asked for it ([`crate::log::Log::submit_for_proof`]) its inclusion proof with the
//!    checkpoint, computed from the batch in memory ([`crate::log::batch_proofs`]).
//!
//! A batch closes at `batch_max_entries` entries or `batch_max_age` after its first entry.
//!
//! **Failures.** A failed stage acknowledges nobody. After any failed write the sequencer
//! re-reads the published state and staged size from storage ("reload") before writing again,
//! and integrates whatever is staged. Every checkpoint is computed from staged entries, which
//! never change once staged, so all signed checkpoints are consistent by construction (RFC 9162
//! §2.1.4; spec `spec/merkle.md`). Reload refuses state that lost an acknowledged entry or a
//! published checkpoint.
//!
//! **Recovery** on open is the same reload and integration: entries staged but not yet
//! published (acknowledged before a crash) are integrated before the log serves.
//!
//! **Checkpoint lock** (spec `spec/checkpoint-lock.md`). Step 3 first writes the new checkpoint
//! durably to the lock file ([`CheckpointLock`]), then publishes it in the store. A checkpoint is
//! signed only if it equals or extends the locked one: by construction when the tree grows from
//! the locked checkpoint, otherwise by a consistency proof built from the store's tiles and
//! verified against both roots (RFC 9162 §2.1.4.2). At open the store must hold the locked tree
//! or stage enough entries to reach it; anything else is [`LogError::LockMismatch`].

mod lock_check;
mod reload;
mod shared;
mod shared_lock;

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};
use verdict_core::checkpoint::Checkpoint;
use verdict_core::merkle::{LeafIndex, RightEdge, TreeSize};
use verdict_core::note::{Signer, Verifier};
use verdict_core::tile::TILE_WIDTH;

use super::batch_proofs::BatchHashes;
use super::clock::{Restamp, Restamped};
use super::lock::CheckpointLock;
use super::tiles::extend;
use super::{Integrated, LogError, Shared, SignedCheckpoint};
use crate::storage::{LogState, StagedEntry};

/// Largest number of staged entries integrated into one checkpoint during recovery.
const RECOVERY_CHUNK: u64 = 1 << 14;
/// Attempts to integrate after a failure before leaving it to the next tick.
const RETRIES: u32 = 3;
/// Pause between integration retries after a storage failure, doubled up to one second.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(5);

/// A message to the sequencer thread.
pub(crate) enum Msg {
    /// Sequence an entry.
    Submit(Submission),
    /// Drain, integrate and stop.
    Shutdown(oneshot::Sender<Result<(), LogError>>),
    /// Another frontend announced staged entries or a checkpoint (shared store, [`shared`]).
    Wake,
}

/// One submitted entry and where to send its index.
pub(crate) struct Submission {
    pub(crate) entry: Vec<u8>,
    pub(crate) private: Option<Vec<u8>>,
    pub(crate) reply: oneshot::Sender<Result<Acked, LogError>>,
    /// Where to send the entry's proof once integrated, if the submitter waits for it.
    pub(crate) proof: Option<oneshot::Sender<Integrated>>,
    pub(crate) queued_at: Instant,
    /// The entry time it was stamped with ([`crate::log::clock`]), if it went through the clock.
    pub(crate) time_ms: Option<u64>,
    /// How to rebuild it at a later time, if a shared store refuses its time.
    pub(crate) restamp: Option<Restamp>,
}

/// The answer to a submitter once its entry is durably staged.
pub(crate) struct Acked {
    pub(crate) index: LeafIndex,
    /// Set when the entry was re-stamped before staging ([`crate::log::clock`]).
    pub(crate) restamped: Option<Restamped>,
}

/// The entry time of one entry of a batch being staged, and how to move it (module `shared`).
pub(super) struct Timed {
    pub(super) time_ms: Option<u64>,
    pub(super) restamp: Option<Restamp>,
    pub(super) restamped: Option<Restamped>,
}

/// The sequencer's state; lives on its own thread.
pub(crate) struct Sequencer {
    shared: Arc<Shared>,
    signer: Signer,
    verifier: Verifier,
    rx: mpsc::Receiver<Msg>,
    checkpoints: watch::Sender<Option<SignedCheckpoint>>,
    edge: RightEdge,
    published: Option<LogState>,
    staged_size: u64,
    /// A write failed since the last reload.
    dirty: bool,
    retry_delay: Duration,
    signed_at: Instant,
    /// Acknowledged entries whose submitters wait for their proofs, by index (ascending).
    waiters: Vec<(u64, oneshot::Sender<Integrated>)>,
    /// The checkpoint lock, if the log has one.
    lock: Option<CheckpointLock>,
    /// The checkpoint in the lock (the last one signed): every new one must extend it.
    locked: Option<Checkpoint>,
    /// Shared store: when this frontend last tried to take the integrator role.
    takeover_tried: Instant,
    /// Shared store: the shared checkpoint lock as last read or written (the compare-and-swap's
    /// expected value); `None` when unknown (module `shared_lock`).
    shared_lock: Option<Option<Vec<u8>>>,
}

impl Sequencer {
    /// Load the state from storage and integrate whatever is staged but not published.
    pub(crate) fn recover(
        shared: Arc<Shared>,
        signer: Signer,
        rx: mpsc::Receiver<Msg>,
        checkpoints: watch::Sender<Option<SignedCheckpoint>>,
    ) -> Result<Self, LogError> {
        let verifier = signer.verifier();
        let mut sequencer = Sequencer {
            shared,
            signer,
            verifier,
            rx,
            checkpoints,
            edge: RightEdge::new(),
            published: None,
            staged_size: 0,
            dirty: false,
            retry_delay: FIRST_RETRY_DELAY,
            signed_at: Instant::now(),
            waiters: Vec::new(),
            lock: None,
            locked: None,
            takeover_tried: Instant::now(),
            shared_lock: None,
        };
        sequencer.lock = sequencer
            .shared
            .cfg
            .checkpoint_lock
            .as_ref()
            .map(CheckpointLock::new);
        sequencer.reload()?;
        if !sequencer.integrating() {
            // A frontend of a shared store: another server integrates (module `shared`). Its
            // lock file is checked as a single server's is: a database older than what this
            // frontend saw is refused (module `shared_lock`).
            sequencer.check_lock_at_open()?;
            tracing::info!(
                tree.size = sequencer.edge.size().0,
                "log opened as a frontend at tree size {}; another server integrates",
                sequencer.edge.size().0
            );
            return Ok(sequencer);
        }
        sequencer.check_lock_at_open()?;
        sequencer.check_shared_lock()?;
        sequencer.integrate_staged(None)?;
        if sequencer.published.is_none() {
            sequencer.publish(sequencer.edge.clone())?;
        }
        sequencer.resign()?;
        tracing::info!(
            tree.size = sequencer.edge.size().0,
            "log recovered at tree size {}",
            sequencer.edge.size().0
        );
        Ok(sequencer)
    }

    /// Serve messages until shutdown or until every handle is gone.
    pub(crate) fn run(mut self) {
        let mut stop: Vec<oneshot::Sender<Result<(), LogError>>> = Vec::new();
        loop {
            let wait = self.next_wakeup();
            let first = match self.rx.recv_timeout(wait) {
                Ok(Msg::Submit(submission)) => submission,
                Ok(Msg::Shutdown(reply)) => {
                    stop.push(reply);
                    break;
                }
                Ok(Msg::Wake) => {
                    self.wake();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.tick();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let deadline = Instant::now() + self.shared.cfg.batch_max_age;
            let mut batch = vec![first];
            let mut woken = false;
            while batch.len() < self.shared.cfg.batch_max_entries.max(1) {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.rx.recv_timeout(left) {
                    Ok(Msg::Submit(submission)) => batch.push(submission),
                    Ok(Msg::Shutdown(reply)) => {
                        stop.push(reply);
                        break;
                    }
                    Ok(Msg::Wake) => woken = true,
                    Err(_) => break,
                }
            }
            self.process(batch);
            if woken {
                self.wake();
            }
            if !stop.is_empty() {
                break;
            }
        }
        let result = self.finish(&mut stop);
        // Release storage and the checkpoint channel before answering, so that a caller of
        // `shutdown` may reopen the store at once.
        drop(self);
        let mut result = Some(result);
        for reply in stop {
            let answer = result.take().unwrap_or(Ok(()));
            let _ = reply.send(answer);
        }
    }

    /// Sequence what is still queued, then make sure everything staged is integrated.
    fn finish(
        &mut self,
        stop: &mut Vec<oneshot::Sender<Result<(), LogError>>>,
    ) -> Result<(), LogError> {
        let mut batch = Vec::new();
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                Msg::Submit(submission) => batch.push(submission),
                Msg::Shutdown(reply) => stop.push(reply),
                Msg::Wake => {}
            }
            if batch.len() >= self.shared.cfg.batch_max_entries.max(1) {
                self.process(std::mem::take(&mut batch));
            }
        }
        if !batch.is_empty() {
            self.process(batch);
        }
        let mut last = Ok(());
        if !self.integrating() {
            // A frontend leaves integration to the integrator (module `shared`).
            self.shared.closed.store(true, Ordering::Release);
            return last;
        }
        for _ in 0..RETRIES {
            last = self
                .reload_if_dirty()
                .and_then(|()| self.integrate_staged(None));
            if last.is_ok() {
                break;
            }
            self.failed("shutdown integration", last.as_ref().err());
        }
        self.shared.closed.store(true, Ordering::Release);
        last
    }

    fn next_wakeup(&self) -> Duration {
        if let Some(wait) = self.frontend_wakeup() {
            return wait;
        }
        if self.dirty || self.staged_size > self.published_size() {
            return self.retry_delay;
        }
        let since = self.signed_at.elapsed();
        self.shared
            .cfg
            .checkpoint_interval
            .saturating_sub(since)
            .min(self.poll_interval())
            .max(Duration::from_millis(1))
    }

    /// Idle wake-up: retry a failed integration, or re-sign a checkpoint that is getting old.
    fn tick(&mut self) {
        // Witness alarm (spec/witness.md §9.3): sign nothing, not even staged entries.
        if self.shared.halted.load(Ordering::Acquire) {
            return;
        }
        if self.follow_shared() {
            return;
        }
        if self.dirty || self.staged_size > self.published_size() {
            let result = self.reload_if_dirty().and_then(|()| {
                let pending = self.staged_size > self.published_size();
                self.integrate_staged(None).map(|()| pending)
            });
            match result {
                Ok(wrote) => {
                    self.retry_delay = FIRST_RETRY_DELAY;
                    // A reload proves that reads work, not writes: a storage problem stays
                    // reported (`/health` 503 `storage_unavailable`) until a write succeeds
                    // (an integration here, the next batch, or the next re-sign), so a full
                    // disk is not reported healthy by an idle tick that had nothing to write.
                    if wrote {
                        self.set_failing(None);
                    }
                }
                Err(error) => {
                    self.failed("integration retry", Some(&error));
                    self.retry_delay = (self.retry_delay * 2).min(Duration::from_secs(1));
                }
            }
        } else if self.signed_at.elapsed() >= self.shared.cfg.checkpoint_interval {
            match self.resign() {
                Ok(()) => self.set_failing(None),
                Err(error) => self.failed("re-sign", Some(&error)),
            }
        }
    }

    /// Stage a batch, acknowledge it, integrate and publish it.
    fn process(&mut self, batch: Vec<Submission>) {
        let started = Instant::now();
        let count = batch.len();
        // Witness alarm (spec/witness.md §9.3): sign nothing new.
        if self.shared.halted.load(Ordering::Acquire) {
            self.refuse(batch, "halted");
            return;
        }
        if let Err(error) = self.reload_if_dirty() {
            self.failed("reload", Some(&error));
            self.refuse(batch, "reload");
            return;
        }
        let mut entries = Vec::with_capacity(count);
        let mut replies = Vec::with_capacity(count);
        let mut proofs = Vec::with_capacity(count);
        let mut timed = Vec::with_capacity(count);
        let mut oldest = started;
        for submission in batch {
            oldest = oldest.min(submission.queued_at);
            entries.push(StagedEntry {
                entry: submission.entry,
                private: submission.private,
            });
            replies.push(submission.reply);
            proofs.push(submission.proof);
            timed.push(Timed {
                time_ms: submission.time_ms,
                restamp: submission.restamp,
                restamped: None,
            });
        }
        let start = match self.stage_batch(&mut entries, &mut timed) {
            Ok(start) => start,
            Err(error @ crate::storage::StorageError::StaleTime { .. }) => {
                // Not a storage failure: nothing staged, the store is fine (module `shared`).
                tracing::warn!(error = %error, "batch of {count} refused: {error}");
                self.shared.queued.fetch_sub(count, Ordering::AcqRel);
                for reply in replies {
                    let _ = reply.send(Err(LogError::SequencingFailed { op: "stage" }));
                }
                return;
            }
            Err(error) => {
                self.failed("stage", Some(&LogError::Storage(error)));
                let _ = self.reload();
                self.shared.queued.fetch_sub(count, Ordering::AcqRel);
                for reply in replies {
                    let _ = reply.send(Err(LogError::SequencingFailed { op: "stage" }));
                }
                return;
            }
        };
        let end = start.saturating_add(u64::try_from(count).unwrap_or(u64::MAX));
        self.staged_size = self.staged_size.max(end);
        self.shared
            .staged
            .store(self.staged_size, Ordering::Release);
        self.shared.queued.fetch_sub(count, Ordering::AcqRel);
        // A frontend that does not integrate keeps no waiters: they build their proofs from
        // stored tiles once the integrator's checkpoint covers them (module `shared`).
        let integrating = self.integrating();
        for (((index, reply), proof), timed) in (start..).zip(replies).zip(proofs).zip(timed) {
            let acked = Acked {
                index: LeafIndex(index),
                restamped: timed.restamped,
            };
            if reply.send(Ok(acked)).is_ok() && integrating {
                if let Some(proof) = proof {
                    self.waiters.push((index, proof));
                }
            }
        }
        if !integrating {
            self.shared.batches.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let batch: Vec<Vec<u8>> = entries.into_iter().map(|e| e.entry).collect();
        let mut result = self.integrate_staged(Some((start, batch)));
        for _ in 1..RETRIES {
            if result.is_ok() {
                break;
            }
            self.failed("integration", result.as_ref().err());
            std::thread::sleep(self.retry_delay);
            result = self
                .reload_if_dirty()
                .and_then(|()| self.integrate_staged(None));
        }
        match result {
            Ok(()) => {
                self.retry_delay = FIRST_RETRY_DELAY;
                self.set_failing(None);
                self.shared.batches.fetch_add(1, Ordering::Relaxed);
                let micros = u64::try_from(oldest.elapsed().as_micros()).unwrap_or(u64::MAX);
                self.shared
                    .last_batch_micros
                    .store(micros, Ordering::Relaxed);
            }
            // Left dirty: the next tick retries.
            Err(error) => self.failed("integration", Some(&error)),
        }
    }

    fn refuse(&self, batch: Vec<Submission>, op: &'static str) {
        self.shared.queued.fetch_sub(batch.len(), Ordering::AcqRel);
        for submission in batch {
            let _ = submission
                .reply
                .send(Err(LogError::SequencingFailed { op }));
        }
    }

    fn failed(&mut self, op: &'static str, error: Option<&LogError>) {
        self.dirty = true;
        self.shared.storage_errors.fetch_add(1, Ordering::Relaxed);
        if let Some(error) = error {
            self.set_failing(Some(format!("{op}: {error}")));
            if error.is_integrity() {
                tracing::error!(op, error = %error, tree.size = self.published_size(), "log integrity error during {op}: {error}");
                return;
            }
            tracing::warn!(op, error = %error, tree.size = self.published_size(), "log write failed during {op}: {error}");
        }
    }

    fn set_failing(&self, problem: Option<String>) {
        *self
            .shared
            .failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = problem;
    }

    fn published_size(&self) -> u64 {
        self.published.as_ref().map_or(0, |s| s.size.0)
    }

    fn reload_if_dirty(&mut self) -> Result<(), LogError> {
        if self.dirty {
            self.reload()?;
        }
        Ok(())
    }
    /// Integrate everything staged beyond the published tree. `batch` optionally holds the
    /// entries staged at `batch.0`, to save reading them back.
    fn integrate_staged(&mut self, batch: Option<(u64, Vec<Vec<u8>>)>) -> Result<(), LogError> {
        let mut batch = batch;
        loop {
            let from = self.published_size();
            let to = self.staged_size;
            if from >= to {
                return Ok(());
            }
            let entries = match batch.take() {
                Some((start, entries))
                    if start == from && u64::try_from(entries.len()).ok() == Some(to - from) =>
                {
                    entries
                }
                _ => {
                    // Never stop below the locked size: no checkpoint smaller than the locked one
                    // is signed.
                    let floor = self.locked.as_ref().map_or(0, |l| l.size.0).min(to);
                    let end = to.min(from.saturating_add(RECOVERY_CHUNK)).max(floor);
                    self.shared
                        .storage
                        .staged(LeafIndex(from), LeafIndex(end))?
                }
            };
            let extension = extend(self.shared.storage.as_ref(), &self.edge, &entries)?;
            if let Err(error) = self.shared.storage.write_tiles(&extension.writes) {
                self.dirty = true;
                return Err(error.into());
            }
            let old_edge = self.edge.clone();
            self.publish(extension.edge)?;
            self.serve_waiters(&old_edge, &entries);
        }
    }

    /// Send each waiter whose entry the published tree now covers its proof and checkpoint,
    /// computed from the batch just integrated (`entries`, appended to `old_edge`). Waiters of
    /// entries integrated without that data (after a failure or a reload) are dropped, so that
    /// they build their proofs from stored tiles ([`crate::log::Sequenced::integrated`]).
    fn serve_waiters(&mut self, old_edge: &RightEdge, entries: &[Vec<u8>]) {
        let size = self.published_size();
        let covered = self.waiters.partition_point(|(index, _)| *index < size);
        if covered == 0 {
            return;
        }
        let ready: Vec<_> = self.waiters.drain(..covered).collect();
        let Some(checkpoint) = self.checkpoints.borrow().clone() else {
            return;
        };
        let batch = match BatchHashes::new(old_edge, entries) {
            Ok(batch) if batch.size().0 == size => batch,
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(error = %error, "batch proofs failed: {error}");
                return;
            }
        };
        for (index, waiter) in ready {
            if let Ok(proof) = batch.proof(LeafIndex(index)) {
                let _ = waiter.send(Integrated {
                    checkpoint: checkpoint.clone(),
                    proof,
                });
            }
        }
    }

    /// Drop the waiters of entries already covered by the published tree (after a reload found
    /// a newer tree): they build their proofs from stored tiles.
    fn drop_covered_waiters(&mut self) {
        let size = self.published_size();
        let covered = self.waiters.partition_point(|(index, _)| *index < size);
        self.waiters.drain(..covered);
    }

    /// Sign a checkpoint for `edge` and publish it with the edge (compare-and-swap).
    fn publish(&mut self, edge: RightEdge) -> Result<(), LogError> {
        let checkpoint = Checkpoint {
            origin: self.shared.cfg.origin.clone(),
            size: edge.size(),
            root: edge.root(),
            extensions: Vec::new(),
        };
        self.check_extends_lock(&edge)?;
        let note = checkpoint.sign(&self.signer)?;
        let state = LogState {
            size: edge.size(),
            right_edge: edge.hashes().to_vec(),
            checkpoint: note.clone(),
        };
        if let Some(lock) = &self.lock {
            if self.locked.as_ref() != Some(&checkpoint) {
                if let Err(error) = lock.write(&note) {
                    self.dirty = true;
                    return Err(error);
                }
                self.locked = Some(checkpoint.clone());
            }
        }
        // Shared store: the shared checkpoint lock too, before publishing (module `shared_lock`).
        self.write_shared_lock(&note, &edge)?;
        if let Err(error) = self.shared.storage.publish(self.published.as_ref(), &state) {
            self.dirty = true;
            return Err(error.into());
        }
        let old_bundles = self.published_size() / u64::from(TILE_WIDTH);
        self.signed_at = Instant::now();
        self.edge = edge;
        self.published = Some(state);
        self.shared
            .published
            .store(checkpoint.size.0, Ordering::Release);
        let size = checkpoint.size;
        self.checkpoints.send_replace(Some(SignedCheckpoint {
            note,
            checkpoint,
            signed_at: self.signed_at,
        }));
        tracing::debug!(
            tree.size = size.0,
            "published checkpoint at tree size {}",
            size.0
        );
        self.prune(old_bundles, size);
        Ok(())
    }

    /// Drop staged entries that now live in full published entry bundles (best effort).
    fn prune(&mut self, old_bundles: u64, size: TreeSize) {
        let full = size.0 / u64::from(TILE_WIDTH);
        if full > old_bundles {
            let below = LeafIndex(full * u64::from(TILE_WIDTH));
            if let Err(error) = self.shared.storage.prune_staged(below) {
                tracing::warn!(error = %error, "pruning staged entries failed: {error}");
            }
        }
    }
}
