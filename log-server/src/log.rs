//! The [`Log`] handle: submit entries, wait for their integration, and read checkpoints, tiles,
//! entries and proofs.
//!
//! Writes go through the sequencer thread ([`crate::sequencer`]); reads go straight to
//! [`Storage`] through a bounded tile cache. Proofs are built from stored tiles with core's
//! [`TileHashSource`] (RFC 9162 §2.1.3, §2.1.4); the tree is never held in memory.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};
use verdict_core::bundle::ProofBundle;
use verdict_core::checkpoint::{Checkpoint, CheckpointError};
use verdict_core::merkle::{Hash, LeafIndex, RightEdgeError, TreeSize};
use verdict_core::note::Signer;
use verdict_core::proof::{consistency_proof, inclusion_proof, ProveError};
use verdict_core::tile::{
    Tile, TileHashSource, TileKind, TileSourceError, TileUpdateError, TILE_WIDTH,
};

use crate::sequencer::{Msg, Sequencer, Submission};
use crate::storage::{Storage, StorageError};
use crate::storage_sled::SledStorage;
use crate::tiles::{bundle_entry, tile_prefix, width_in, CachedTiles, TileCache};

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

/// Errors of the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Too many entries are waiting for integration; retry later.
    #[error("log is busy with {pending} pending entries, retry after {retry_after:?}")]
    Backpressure {
        /// When to retry.
        retry_after: Duration,
        /// Entries pending.
        pending: usize,
    },
    /// An entry is longer than [`MAX_ENTRY_LEN`].
    #[error("entry of {len} bytes exceeds the {max}-byte limit")]
    EntryTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A private record is longer than [`MAX_PRIVATE_LEN`].
    #[error("private record of {len} bytes exceeds the {max}-byte limit")]
    PrivateTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The log is shutting down or its sequencer has stopped.
    #[error("log is shutting down")]
    ShuttingDown,
    /// The batch holding the entry could not be made durable; the entry was not sequenced
    /// (it may still appear in the log, unacknowledged). The cause is logged.
    #[error("sequencing failed during {op}")]
    SequencingFailed {
        /// The storage operation that failed.
        op: &'static str,
    },
    /// Storage failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// Stored log data is inconsistent with itself or with what this process published.
    #[error("log integrity violated: {what}")]
    Integrity {
        /// What is inconsistent.
        what: &'static str,
    },
    /// An index or size is outside the published tree, or sizes are out of order.
    #[error("out of range: {what}")]
    OutOfRange {
        /// What was out of range.
        what: &'static str,
    },
    /// A stored tile is malformed.
    #[error("tile {path}: {reason}")]
    BadTile {
        /// Tile path.
        path: String,
        /// What was wrong.
        reason: &'static str,
    },
    /// The signer's name is not the origin, or the stored checkpoint is not signed by it.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The tree cannot grow.
    #[error("tree: {0}")]
    Tree(#[from] RightEdgeError),
}

impl From<TileUpdateError<StorageError>> for LogError {
    fn from(error: TileUpdateError<StorageError>) -> Self {
        match error {
            TileUpdateError::Read(error) => LogError::Storage(error),
            TileUpdateError::MissingTile { .. } => LogError::Integrity {
                what: "partial tile of the published tree is missing",
            },
            TileUpdateError::WrongLength { .. } => LogError::Integrity {
                what: "stored partial tile has the wrong length",
            },
            TileUpdateError::MissingHash { .. } => LogError::Integrity {
                what: "tree extension did not produce a needed hash",
            },
        }
    }
}

impl From<ProveError<TileSourceError<StorageError>>> for LogError {
    fn from(error: ProveError<TileSourceError<StorageError>>) -> Self {
        match error {
            ProveError::InvalidRange { what } => LogError::OutOfRange { what },
            ProveError::Source(TileSourceError::Read(error)) => LogError::Storage(error),
            ProveError::Source(TileSourceError::Malformed { path, reason }) => {
                LogError::BadTile { path, reason }
            }
        }
    }
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
    pub(crate) pushbacks: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) storage_errors: AtomicU64,
    pub(crate) last_batch_micros: AtomicU64,
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
            pushbacks: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            storage_errors: AtomicU64::new(0),
            last_batch_micros: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel();
        let (watch_tx, checkpoints) = watch::channel(None);
        let (ready_tx, ready_rx) = oneshot::channel();
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("verdict-sequencer".into())
            .spawn(
                move || match Sequencer::recover(thread_shared, log_signer, rx, watch_tx) {
                    Ok(sequencer) => {
                        let _ = ready_tx.send(Ok(()));
                        sequencer.run();
                    }
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                    }
                },
            )
            .map_err(|source| StorageError::Backend {
                op: "spawn sequencer",
                source: Box::new(source),
            })?;
        ready_rx.await.map_err(|_| LogError::ShuttingDown)??;
        Ok(Log {
            inner: Arc::new(Handle {
                shared,
                tx: Mutex::new(tx),
                checkpoints,
            }),
        })
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
        let shared = &self.inner.shared;
        if shared.closed.load(Ordering::Acquire) {
            return Err(LogError::ShuttingDown);
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
        let (reply, answer) = oneshot::channel();
        shared.queued.fetch_add(1, Ordering::AcqRel);
        let sent = self.sender().send(Msg::Submit(Submission {
            entry,
            private,
            reply,
            queued_at: Instant::now(),
        }));
        if sent.is_err() {
            shared.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(LogError::ShuttingDown);
        }
        answer.await.map_err(|_| LogError::ShuttingDown)?
    }

    fn sender(&self) -> mpsc::Sender<Msg> {
        self.inner
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Wait until `index` is covered by a published checkpoint, and return that checkpoint.
    ///
    /// # Errors
    /// [`LogError::OutOfRange`] when `index` was never sequenced; [`LogError::ShuttingDown`]
    /// when the sequencer stopped first.
    pub async fn wait_integrated(&self, index: LeafIndex) -> Result<SignedCheckpoint, LogError> {
        if index.0 >= self.inner.shared.staged.load(Ordering::Acquire) {
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

    /// The latest published checkpoint.
    pub fn latest_checkpoint(&self) -> Option<SignedCheckpoint> {
        self.inner.checkpoints.borrow().clone()
    }

    fn published_size(&self) -> TreeSize {
        self.inner
            .checkpoints
            .borrow()
            .as_ref()
            .map_or(TreeSize(0), |cp| cp.checkpoint.size)
    }

    fn tiles(&self) -> CachedTiles<'_> {
        CachedTiles::new(self.inner.shared.storage.as_ref(), &self.inner.shared.cache)
    }

    /// A hash tile or entry bundle of exactly `tile.width`, if the latest checkpoint covers it.
    ///
    /// # Errors
    /// Storage errors; [`LogError::Integrity`] when a covered tile is missing.
    pub fn read_tile(&self, tile: Tile) -> Result<Option<Vec<u8>>, LogError> {
        let size = self.published_size();
        if tile.width == 0
            || tile.width > TILE_WIDTH
            || tile.width > width_in(tile.kind, tile.index, size)
        {
            return Ok(None);
        }
        let stored = self
            .tiles()
            .stored(tile.kind, tile.index, tile.width)?
            .ok_or(LogError::Integrity {
                what: "published tile missing",
            })?;
        Ok(Some(tile_prefix(tile.kind, &stored, tile.width)?.to_vec()))
    }

    /// Inclusion proof of `index` in the tree of `size` (at most the published size).
    ///
    /// # Errors
    /// [`LogError::OutOfRange`] unless `index < size <= published size`; storage errors.
    pub fn inclusion_proof(&self, index: LeafIndex, size: TreeSize) -> Result<Vec<Hash>, LogError> {
        if size > self.published_size() {
            return Err(LogError::OutOfRange {
                what: "size beyond the published tree",
            });
        }
        let tiles = self.tiles();
        Ok(inclusion_proof(
            &TileHashSource::new(&tiles, size),
            index,
            size,
        )?)
    }

    /// Consistency proof from the tree of `from` to that of `to` (at most the published size).
    ///
    /// # Errors
    /// [`LogError::OutOfRange`] unless `0 < from <= to <= published size`; storage errors.
    pub fn consistency_proof(&self, from: TreeSize, to: TreeSize) -> Result<Vec<Hash>, LogError> {
        if to > self.published_size() {
            return Err(LogError::OutOfRange {
                what: "size beyond the published tree",
            });
        }
        let tiles = self.tiles();
        Ok(consistency_proof(
            &TileHashSource::new(&tiles, to),
            from,
            to,
        )?)
    }

    /// The entry at `index`, if the latest checkpoint covers it.
    ///
    /// # Errors
    /// Storage errors; [`LogError::Integrity`] when its bundle is missing.
    pub fn entry(&self, index: LeafIndex) -> Result<Option<Vec<u8>>, LogError> {
        if index.0 >= self.published_size().0 {
            return Ok(None);
        }
        let width = u64::from(TILE_WIDTH);
        let position = usize::try_from(index.0 % width).unwrap_or(usize::MAX);
        let needed = u16::try_from(index.0 % width + 1).unwrap_or(TILE_WIDTH);
        let bundle = self
            .tiles()
            .stored(TileKind::Entries, index.0 / width, needed)?
            .ok_or(LogError::Integrity {
                what: "published entry bundle missing",
            })?;
        Ok(Some(bundle_entry(&bundle.bytes, position)?))
    }

    /// The C2SP tlog-proof of `index` against the latest checkpoint, with the entry as `extra`.
    ///
    /// # Errors
    /// [`LogError::OutOfRange`] when the latest checkpoint does not cover `index`.
    pub fn bundle(&self, index: LeafIndex) -> Result<ProofBundle, LogError> {
        let latest = self.latest_checkpoint().ok_or(LogError::OutOfRange {
            what: "no checkpoint yet",
        })?;
        let size = latest.checkpoint.size;
        if index.0 >= size.0 {
            return Err(LogError::OutOfRange {
                what: "index not in the published tree",
            });
        }
        let tiles = self.tiles();
        let proof = inclusion_proof(&TileHashSource::new(&tiles, size), index, size)?;
        let width = u64::from(TILE_WIDTH);
        let needed = u16::try_from(index.0 % width + 1).unwrap_or(TILE_WIDTH);
        let stored = tiles
            .stored(TileKind::Entries, index.0 / width, needed)?
            .ok_or(LogError::Integrity {
                what: "published entry bundle missing",
            })?;
        let position = usize::try_from(index.0 % width).unwrap_or(usize::MAX);
        let entry = bundle_entry(&stored.bytes, position)?;
        Ok(ProofBundle {
            extra: Some(entry),
            index,
            proof,
            checkpoint: latest.note,
        })
    }

    /// The private record of `index` (only the authenticated private endpoint may call this).
    ///
    /// # Errors
    /// Storage errors.
    pub fn private_record(&self, index: LeafIndex) -> Result<Option<Vec<u8>>, LogError> {
        if index.0 >= self.inner.shared.staged.load(Ordering::Acquire) {
            return Ok(None);
        }
        Ok(self.inner.shared.storage.private_record(index)?)
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
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]
mod tests {
    use super::*;
    use crate::storage::StagedEntry;
    use crate::storage_mem::MemStorage;
    use verdict_core::merkle::leaf_hash;
    use verdict_core::proof::{verify_consistency, verify_inclusion};

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
}
