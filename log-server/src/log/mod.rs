//! The [`Log`] handle: submit entries, wait for their integration, and read checkpoints, tiles,
//! entries and proofs.
//!
//! Writes go through the sequencer thread ([`crate::log::sequencer`]). A submitter that wants its
//! proof ([`Log::submit_for_proof`]) gets it from the sequencer with the checkpoint that first
//! covers its entry, computed from the batch in memory ([`crate::log::batch_proofs`]). Reads
//! ([`read`]: tiles, entries, proofs, bundles) go straight to [`Storage`] through a bounded tile
//! cache; the tree is never held in memory.

pub mod batch_proofs;
#[cfg(any(test, feature = "testing"))]
pub mod check;
pub mod clock;
mod error;
pub mod lock;
mod read;
pub(crate) mod sequencer;
pub mod tiles;
pub mod witness;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};
use verdict_core::checkpoint::{Checkpoint, CheckpointError};
use verdict_core::merkle::{leaf_hash, Hash, LeafIndex};
use verdict_core::note::Signer;
use verdict_core::proof::verify_inclusion;

pub use self::clock::{Restamp, Restamped, Staged};
pub use self::error::{LockMismatch, LogError};
pub use self::lock::{CheckpointLock, LockedCheckpoint};
use self::sequencer::{Acked, Msg, Sequencer, Submission};
use crate::storage::cache::TileCache;
use crate::storage::sled::SledStorage;
use crate::storage::{Storage, StorageError};

/// Largest log entry: entry bundles use a uint16 length prefix (C2SP tlog-tiles).
pub const MAX_ENTRY_LEN: usize = 65_535;
/// Largest private record (raw action and salt).
pub const MAX_PRIVATE_LEN: usize = 1 << 20;

/// Configuration of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Origin line of checkpoints; must equal the log signer's key name.
    pub origin: String,
    /// A batch is sequenced once it holds this many entries. Default 256.
    pub batch_max_entries: usize,
    /// ... or once its first entry has waited this long. Default 50 ms.
    pub batch_max_age: Duration,
    /// `submit` pushes back once this many entries are submitted but not yet integrated.
    /// Default 100,000.
    pub max_pending: usize,
    /// An unchanged checkpoint is re-signed this often, so that a fresh signature shows the
    /// sequencer is alive (C2SP checkpoints carry no timestamp: the bytes do not change).
    /// Default 5 s.
    pub checkpoint_interval: Duration,
    /// Bytes of tiles kept in the read cache. Default 32 MiB.
    pub tile_cache_bytes: usize,
    /// The checkpoint lock file ([`CheckpointLock`], spec `spec/checkpoint-lock.md`). `None`
    /// (the default of [`LogConfig::new`]) runs without one: only for tests on throwaway
    /// stores; the server always sets it.
    pub checkpoint_lock: Option<std::path::PathBuf>,
}

impl LogConfig {
    /// Defaults for a log named `origin`.
    pub fn new(origin: impl Into<String>) -> Self {
        Self {
            origin: origin.into(),
            batch_max_entries: 256,
            batch_max_age: Duration::from_millis(50),
            max_pending: 100_000,
            checkpoint_interval: Duration::from_secs(5),
            tile_cache_bytes: 32 << 20,
            checkpoint_lock: None,
        }
    }
}

/// A checkpoint signed and published by this log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The signed note, as served at `/checkpoint`.
    pub note: Vec<u8>,
    /// Its parsed body.
    pub checkpoint: Checkpoint,
    /// When it was last signed (or found to be the published one) by this process.
    pub signed_at: Instant,
}

/// An integrated entry: the checkpoint that first covered it and its inclusion proof in that
/// checkpoint's tree (RFC 9162 §2.1.3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Integrated {
    /// The checkpoint.
    pub checkpoint: SignedCheckpoint,
    /// The inclusion proof against `checkpoint`.
    pub proof: Vec<Hash>,
}

/// A durably sequenced entry whose submitter waits for its proof ([`Log::submit_for_proof`]).
#[derive(Debug)]
pub struct Sequenced {
    /// The entry's index.
    pub index: LeafIndex,
    /// RFC 9162 leaf hash of the entry, to check the proof the sequencer hands over.
    leaf: Hash,
    log: Log,
    proof: oneshot::Receiver<Integrated>,
}

impl Sequenced {
    /// Wait until the entry is covered by a published checkpoint; return that checkpoint and the
    /// entry's inclusion proof. The sequencer sends both when it integrates the entry's batch;
    /// when it cannot (the batch was integrated after a storage failure or a reload), the proof
    /// is built from stored tiles against the latest checkpoint instead.
    ///
    /// # Errors
    /// [`LogError::ShuttingDown`] when the sequencer stopped first; storage errors of the
    /// fallback.
    pub async fn integrated(self) -> Result<Integrated, LogError> {
        if let Ok(integrated) = self.proof.await {
            // Defence in depth: a proof made in memory is handed out only if it verifies against
            // the signed root (RFC 9162 §2.1.3.2); otherwise use the stored-tiles path below.
            let checkpoint = &integrated.checkpoint.checkpoint;
            match verify_inclusion(
                &self.leaf,
                self.index,
                checkpoint.size,
                &integrated.proof,
                &checkpoint.root,
            ) {
                Ok(()) => return Ok(integrated),
                Err(error) => tracing::error!(
                    leaf.index = self.index.0,
                    "in-memory inclusion proof does not verify ({error}); rebuilding it from tiles"
                ),
            }
        }
        let checkpoint = self.log.wait_integrated(self.index).await?;
        let proof = self
            .log
            .inclusion_proof(self.index, checkpoint.checkpoint.size)?;
        Ok(Integrated { checkpoint, proof })
    }
}

/// Counters for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Size of the latest published checkpoint.
    pub tree_size: u64,
    /// Entries durably sequenced.
    pub staged_size: u64,
    /// Entries submitted but not yet integrated.
    pub pending: usize,
    /// Submissions refused with [`LogError::Backpressure`] since start.
    pub pushbacks: u64,
    /// Batches integrated and published since start.
    pub batches: u64,
    /// Storage write failures since start.
    pub storage_errors: u64,
    /// Duration of the last batch from staging to publication, in microseconds.
    pub last_batch_micros: u64,
}

/// State shared by the handles and the sequencer thread.
pub(crate) struct Shared {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) cfg: LogConfig,
    pub(crate) cache: Mutex<TileCache>,
    /// Submissions sent to the sequencer and not yet staged or refused.
    pub(crate) queued: AtomicUsize,
    /// Entries durably staged (acknowledged).
    pub(crate) staged: AtomicU64,
    /// Size of the latest published checkpoint.
    pub(crate) published: AtomicU64,
    pub(crate) closed: AtomicBool,
    /// Set by [`Log::halt`] (a witness alarm): no new entries, no new checkpoints.
    pub(crate) halted: AtomicBool,
    pub(crate) pushbacks: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) storage_errors: AtomicU64,
    pub(crate) last_batch_micros: AtomicU64,
    /// The last storage failure, while writes keep failing (cleared by the next write that
    /// succeeds); reported by `/health`.
    pub(crate) failing: Mutex<Option<String>>,
    /// The first integrity error a read met (damaged or missing stored data); kept until restart
    /// and reported by `/health`.
    pub(crate) integrity: Mutex<Option<String>>,
    /// A [`Msg::Wake`] is queued and not yet handled (shared store): announcements arriving
    /// meanwhile add no further wake-ups.
    pub(crate) wake_pending: AtomicBool,
    /// The entry clock ([`clock`]): the last time stamped on an entry, ms since the epoch. Here
    /// (not in the handle) so that the sequencer can raise it from a shared store's last time.
    pub(crate) clock: Mutex<u64>,
}

struct Handle {
    shared: Arc<Shared>,
    tx: Mutex<mpsc::Sender<Msg>>,
    checkpoints: watch::Receiver<Option<SignedCheckpoint>>,
}

/// A handle to a running log. Cheap to clone; the sequencer stops when the last clone is
/// dropped (after integrating what it holds) or on [`Log::shutdown`].
#[derive(Clone)]
pub struct Log {
    inner: Arc<Handle>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("origin", &self.inner.shared.cfg.origin)
            .finish_non_exhaustive()
    }
}

impl Log {
    /// Recover from whatever a crash left (integrate staged entries, sign a checkpoint), then
    /// start the sequencer thread.
    ///
    /// # Errors
    /// [`LogError::Checkpoint`] when the signer's name is not `cfg.origin` or the stored
    /// checkpoint was not signed by it; [`LogError::Integrity`] for inconsistent stored state;
    /// storage errors.
    pub async fn open(
        storage: Arc<dyn Storage>,
        log_signer: Signer,
        cfg: LogConfig,
    ) -> Result<Log, LogError> {
        if log_signer.name() != cfg.origin {
            return Err(LogError::Checkpoint(CheckpointError::OriginMismatch {
                origin: cfg.origin,
                key_name: log_signer.name().to_owned(),
            }));
        }
        let shared = Arc::new(Shared {
            cache: Mutex::new(TileCache::new(cfg.tile_cache_bytes)),
            storage,
            cfg,
            queued: AtomicUsize::new(0),
            staged: AtomicU64::new(0),
            published: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            halted: AtomicBool::new(false),
            pushbacks: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            storage_errors: AtomicU64::new(0),
            last_batch_micros: AtomicU64::new(0),
            failing: Mutex::new(None),
            integrity: Mutex::new(None),
            wake_pending: AtomicBool::new(false),
            clock: Mutex::new(0),
        });
        let (tx, rx) = mpsc::channel();
        let (watch_tx, checkpoints) = watch::channel(None);
        let (ready_tx, ready_rx) = oneshot::channel();
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("verdict-sequencer".into())
            .spawn(move || {
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    Sequencer::recover(thread_shared, log_signer, rx, watch_tx)
                }))
                .unwrap_or(Err(LogError::Integrity {
                    what: "the store panicked during recovery (damaged store)",
                })) {
                    Ok(sequencer) => {
                        let _ = ready_tx.send(Ok(()));
                        sequencer.run();
                    }
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                    }
                }
            })
            .map_err(|source| StorageError::Backend {
                op: "spawn sequencer",
                source: Box::new(source),
            })?;
        ready_rx.await.map_err(|_| LogError::ShuttingDown)??;
        let log = Log {
            inner: Arc::new(Handle {
                shared,
                tx: Mutex::new(tx),
                checkpoints,
            }),
        };
        // A shared store (several frontends, spec `spec/storage-postgres.md` §5): wake the
        // sequencer on every announcement. The subscription does not keep the log alive.
        if let Some(shared) = log.inner.shared.storage.shared() {
            let handle = Arc::downgrade(&log.inner);
            shared.subscribe(Box::new(move || {
                if let Some(handle) = handle
                    .upgrade()
                    .filter(|h| !h.shared.wake_pending.swap(true, Ordering::AcqRel))
                {
                    let tx = handle
                        .tx
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let _ = tx.send(Msg::Wake);
                }
            }));
        }
        Ok(log)
    }

    /// Open a log on a sled store in directory `path` (created if missing).
    ///
    /// # Errors
    /// As [`Log::open`], and [`StorageError::Backend`] when the store cannot be opened.
    pub async fn open_sled(
        path: &std::path::Path,
        log_signer: Signer,
        cfg: LogConfig,
    ) -> Result<Log, LogError> {
        let storage = SledStorage::open(path)?;
        Self::open(Arc::new(storage), log_signer, cfg).await
    }

    /// The storage the log runs on (e.g. for auxiliary records).
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.inner.shared.storage
    }

    /// The configuration.
    pub fn config(&self) -> &LogConfig {
        &self.inner.shared.cfg
    }

    /// Durably sequence one entry and its private record. Returns the entry's index once the
    /// batch holding it is durable (not yet integrated: see [`Log::wait_integrated`]).
    ///
    /// # Errors
    /// [`LogError::Backpressure`] when more than `max_pending` entries wait for integration;
    /// [`LogError::EntryTooLarge`], [`LogError::PrivateTooLarge`]; [`LogError::ShuttingDown`];
    /// [`LogError::SequencingFailed`] when storage failed (the entry is not acknowledged).
    pub async fn submit(
        &self,
        entry: Vec<u8>,
        private: Option<Vec<u8>>,
    ) -> Result<LeafIndex, LogError> {
        self.submit_inner(entry, private, None).await
    }

    /// As [`Log::submit`], and have the sequencer hand over the entry's inclusion proof with the
    /// checkpoint that first covers it ([`Sequenced::integrated`]).
    ///
    /// # Errors
    /// As [`Log::submit`].
    pub async fn submit_for_proof(
        &self,
        entry: Vec<u8>,
        private: Option<Vec<u8>>,
    ) -> Result<Sequenced, LogError> {
        let (tx, proof) = oneshot::channel();
        let leaf = leaf_hash(&entry);
        let index = self.submit_inner(entry, private, Some(tx)).await?;
        Ok(Sequenced {
            index,
            leaf,
            log: self.clone(),
            proof,
        })
    }

    async fn submit_inner(
        &self,
        entry: Vec<u8>,
        private: Option<Vec<u8>>,
        proof: Option<oneshot::Sender<Integrated>>,
    ) -> Result<LeafIndex, LogError> {
        self.enqueue(entry, private, proof, None)?
            .await
            .map_err(|_| LogError::ShuttingDown)?
            .map(|acked| acked.index)
    }

    /// Hand one entry to the sequencer, in the order of the calls (the sequencer stages entries
    /// in the order it receives them); the receiver gets its index once it is durable.
    fn enqueue(
        &self,
        entry: Vec<u8>,
        private: Option<Vec<u8>>,
        proof: Option<oneshot::Sender<Integrated>>,
        stamp: Option<(u64, Option<Restamp>)>,
    ) -> Result<oneshot::Receiver<Result<Acked, LogError>>, LogError> {
        if entry.len() > MAX_ENTRY_LEN {
            return Err(LogError::EntryTooLarge {
                len: entry.len(),
                max: MAX_ENTRY_LEN,
            });
        }
        if let Some(len) = private
            .as_ref()
            .map(Vec::len)
            .filter(|&len| len > MAX_PRIVATE_LEN)
        {
            return Err(LogError::PrivateTooLarge {
                len,
                max: MAX_PRIVATE_LEN,
            });
        }
        self.check_capacity()?;
        let shared = &self.inner.shared;
        let (reply, answer) = oneshot::channel();
        shared.queued.fetch_add(1, Ordering::AcqRel);
        let sent = self.sender().send(Msg::Submit(Submission {
            entry,
            private,
            reply,
            proof,
            queued_at: Instant::now(),
            time_ms: stamp.as_ref().map(|(time_ms, _)| *time_ms),
            restamp: stamp.and_then(|(_, restamp)| restamp),
        }));
        if sent.is_err() {
            shared.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(LogError::ShuttingDown);
        }
        Ok(answer)
    }

    /// Whether a submission would be accepted now: lets a caller refuse early, before doing
    /// work for an entry the log would push back ([`Log::submit`] checks again).
    ///
    /// # Errors
    /// [`LogError::ShuttingDown`]; [`LogError::Backpressure`] (counted in
    /// [`LogStats::pushbacks`]) when `max_pending` entries wait for integration.
    pub fn check_capacity(&self) -> Result<(), LogError> {
        let shared = &self.inner.shared;
        if shared.closed.load(Ordering::Acquire) {
            return Err(LogError::ShuttingDown);
        }
        if shared.halted.load(Ordering::Acquire) {
            return Err(LogError::Halted);
        }
        let pending = self.pending();
        if pending >= shared.cfg.max_pending {
            shared.pushbacks.fetch_add(1, Ordering::Relaxed);
            let retry_after = shared.cfg.batch_max_age.max(Duration::from_secs(1));
            return Err(LogError::Backpressure {
                retry_after,
                pending,
            });
        }
        Ok(())
    }

    fn sender(&self) -> mpsc::Sender<Msg> {
        self.inner
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether `index` is staged: known to this process, or, on a store shared by several
    /// frontends, staged by another one and not yet seen here (an entry whose index a shared
    /// request id or escalation record names; spec `storage-postgres.md` §5.4).
    ///
    /// # Errors
    /// Storage errors reading the shared staged size.
    pub(crate) fn is_staged(&self, index: LeafIndex) -> Result<bool, LogError> {
        if index.0 < self.inner.shared.staged.load(Ordering::Acquire) {
            return Ok(true);
        }
        let storage = &self.inner.shared.storage;
        if storage.shared().is_none() {
            return Ok(false);
        }
        Ok(storage.staged_size()?.0 > index.0)
    }

    /// Wait until `index` is covered by a published checkpoint, and return that checkpoint.
    ///
    /// # Errors
    /// [`LogError::OutOfRange`] when `index` was never sequenced; [`LogError::ShuttingDown`]
    /// when the sequencer stopped first.
    pub async fn wait_integrated(&self, index: LeafIndex) -> Result<SignedCheckpoint, LogError> {
        if !self.is_staged(index)? {
            return Err(LogError::OutOfRange {
                what: "index not sequenced",
            });
        }
        let mut rx = self.inner.checkpoints.clone();
        let found = rx
            .wait_for(|cp| cp.as_ref().is_some_and(|cp| cp.checkpoint.size.0 > index.0))
            .await
            .map_err(|_| LogError::ShuttingDown)?;
        found.clone().ok_or(LogError::ShuttingDown)
    }

    /// Stop for good (until restart): refuse new entries, so that no new checkpoint is signed.
    /// Called on a witness alarm ([`witness`], spec `spec/witness.md` §9.3).
    pub fn halt(&self) {
        self.inner.shared.halted.store(true, Ordering::Release);
    }

    /// Whether [`Log::halt`] was called.
    pub fn halted(&self) -> bool {
        self.inner.shared.halted.load(Ordering::Acquire)
    }

    /// A receiver of every checkpoint the sequencer publishes (or re-signs).
    pub fn checkpoints(&self) -> watch::Receiver<Option<SignedCheckpoint>> {
        self.inner.checkpoints.clone()
    }

    /// Entries submitted but not yet integrated into a published checkpoint.
    pub fn pending(&self) -> usize {
        let shared = &self.inner.shared;
        let staged = shared.staged.load(Ordering::Acquire);
        let published = shared.published.load(Ordering::Acquire);
        let unintegrated = usize::try_from(staged.saturating_sub(published)).unwrap_or(usize::MAX);
        shared
            .queued
            .load(Ordering::Acquire)
            .saturating_add(unintegrated)
    }

    /// The storage failure that makes writes fail right now, if any (e.g. "storage backend
    /// failed during stage: No space left on device"). Cleared once a write succeeds again.
    pub fn storage_problem(&self) -> Option<String> {
        self.inner
            .shared
            .failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The first integrity error a read met since start (damaged or missing stored data), if any.
    pub fn integrity_problem(&self) -> Option<String> {
        self.inner
            .shared
            .integrity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Counters for metrics.
    pub fn stats(&self) -> LogStats {
        let shared = &self.inner.shared;
        LogStats {
            tree_size: shared.published.load(Ordering::Acquire),
            staged_size: shared.staged.load(Ordering::Acquire),
            pending: self.pending(),
            pushbacks: shared.pushbacks.load(Ordering::Relaxed),
            batches: shared.batches.load(Ordering::Relaxed),
            storage_errors: shared.storage_errors.load(Ordering::Relaxed),
            last_batch_micros: shared.last_batch_micros.load(Ordering::Relaxed),
        }
    }

    /// Stop accepting entries, sequence and integrate everything submitted so far, sign, and
    /// stop the sequencer. Later calls return at once.
    ///
    /// # Errors
    /// [`LogError::Integrity`] or storage errors when the last entries could not be integrated
    /// (they stay staged and are integrated on the next open).
    pub async fn shutdown(&self) -> Result<(), LogError> {
        self.inner.shared.closed.store(true, Ordering::Release);
        let (reply, done) = oneshot::channel();
        if self.sender().send(Msg::Shutdown(reply)).is_err() {
            return Ok(());
        }
        done.await.unwrap_or(Ok(()))
    }
}

#[cfg(test)]
mod tests;
