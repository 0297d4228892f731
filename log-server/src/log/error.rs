//! [`LogError`]: the errors of the log, and their conversions from core's tile and proof errors.

use std::time::Duration;

use verdict_core::checkpoint::CheckpointError;
use verdict_core::merkle::{Hash, RightEdgeError, TreeSize};
use verdict_core::proof::ProveError;
use verdict_core::tile::{TileSourceError, TileUpdateError};

use crate::storage::StorageError;

/// The store and the checkpoint lock disagree: both trees and why (see [`LogError::LockMismatch`]).
#[derive(Debug, thiserror::Error)]
#[error(
    "the store (tree size {store_size}, root {store_root}, {staged_size} entries staged) does not \
     extend the checkpoint lock {} (tree size {lock_size}, root {lock_root}): {reason}; start on \
     a copy of the store at least as new as the lock (docs/operator-guide.md, \"Start-up \
     refused\")",
    lock_path.display()
)]
pub struct LockMismatch {
    /// The lock file.
    pub lock_path: std::path::PathBuf,
    /// Tree size of the locked checkpoint.
    pub lock_size: TreeSize,
    /// Root of the locked checkpoint.
    pub lock_root: Hash,
    /// Tree size of the store's tree compared with the lock.
    pub store_size: TreeSize,
    /// Root of that tree.
    pub store_root: Hash,
    /// Entries staged in the store.
    pub staged_size: u64,
    /// What does not match.
    pub reason: &'static str,
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
    /// The log halted on a witness alarm (spec `spec/witness.md` §9.3) and accepts no entries.
    #[error("log halted: a witness has seen a larger tree")]
    Halted,
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
    /// The store does not equal or extend the checkpoint lock (spec `spec/checkpoint-lock.md`):
    /// it was restored from an older backup, lost writes, or holds another tree. The server
    /// refuses to start (exit 3) rather than sign a checkpoint that forks the log.
    #[error(transparent)]
    LockMismatch(Box<LockMismatch>),
    /// The checkpoint lock exists but cannot be read or verified with the log key.
    #[error("checkpoint lock {}: {reason}", path.display())]
    LockUnreadable {
        /// The lock file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
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

impl LogError {
    /// Whether this error means the stored log is damaged or does not match the checkpoint lock
    /// (an integrity refusal: exit 3 at start, 503 `integrity` on reads), as opposed to a
    /// transient failure or a bad request.
    pub fn is_integrity(&self) -> bool {
        match self {
            LogError::Integrity { .. }
            | LogError::LockMismatch(_)
            | LogError::LockUnreadable { .. }
            | LogError::BadTile { .. }
            | LogError::Checkpoint(_)
            | LogError::Tree(_) => true,
            LogError::Storage(error) => error.is_integrity(),
            _ => false,
        }
    }
}
