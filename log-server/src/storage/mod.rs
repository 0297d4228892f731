//! The storage layer: the [`Storage`] contract of the log, the types that cross it, and its
//! backends.
//!
//! The sequencer ([`crate::log`]) is the only writer. It calls the synchronous methods of
//! [`Storage`] from its own thread; readers (the HTTP routes, through the log) call the read
//! methods from any thread. Backends:
//! - [`sled::SledStorage`] (the default: one sled `Db`, with full tiles as immutable files beside
//!   it, [`files`]);
//! - [`postgres::PostgresStorage`] (PostgreSQL, `storage = "postgres"`; spec
//!   `spec/storage-postgres.md`);
//! - `mem::MemStorage` (in memory, with injected "failed and not persisted" and "failed but
//!   persisted" faults), only with the cargo feature `testing`.
//!
//! [`cache::TileCache`] is the bounded tile cache shared by the sled backend and the log's reads.
//! Nothing here depends on the log or the layers above it.
//!
//! Spec: `spec/tiles.md` (tile layout, C2SP tlog-tiles) and `spec/note-and-checkpoint.md`.

pub mod cache;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
#[cfg(any(test, feature = "testing"))]
pub mod conformance_shared;
pub mod files;
#[cfg(any(test, feature = "testing"))]
pub mod mem;
pub mod postgres;
pub mod shared;
pub mod sled;

use verdict_core::merkle::{Hash, LeafIndex, TreeSize};
use verdict_core::tile::{TileKind, TILE_WIDTH};

/// One entry to sequence: the public log entry (a receipt) and its private record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedEntry {
    /// The entry bytes that go into the log (at most 65,535 bytes, C2SP tlog-tiles entry bundles).
    pub entry: Vec<u8>,
    /// The private record (raw action and salt); stored only in the private store.
    pub private: Option<Vec<u8>>,
}

/// The published state of the log: a signed checkpoint and the right edge of its tree.
///
/// `right_edge` holds the hashes of the maximal complete subtrees of a tree of `size` (largest
/// first, `size.count_ones()` of them), from which the root and every later append follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogState {
    /// Tree size of the checkpoint.
    pub size: TreeSize,
    /// The right edge hashes (see [`verdict_core::merkle::RightEdge::hashes`]).
    pub right_edge: Vec<Hash>,
    /// The signed checkpoint note, verbatim (C2SP tlog-checkpoint).
    pub checkpoint: Vec<u8>,
}

/// Format version of an encoded [`LogState`].
const STATE_VERSION: u8 = 1;
/// Upper bound on an encoded [`LogState`]: header, 64 hashes, and a note of at most 1 MiB.
const MAX_STATE_LEN: usize = 1 + 8 + 1 + 64 * Hash::LEN + verdict_core::note::MAX_NOTE_SIZE;

impl LogState {
    /// Serialise: version byte, size (u64 big-endian), hash count (u8), hashes, checkpoint note.
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(10 + self.right_edge.len() * Hash::LEN + self.checkpoint.len());
        out.push(STATE_VERSION);
        out.extend_from_slice(&self.size.0.to_be_bytes());
        // At most 64 hashes (one per bit of the size); `decode` rejects anything else.
        out.push(u8::try_from(self.right_edge.len()).unwrap_or(u8::MAX));
        for hash in &self.right_edge {
            out.extend_from_slice(&hash.0);
        }
        out.extend_from_slice(&self.checkpoint);
        out
    }

    /// Parse what [`LogState::encode`] wrote.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] for a wrong version, a truncated value, or a hash count that
    /// does not match the size.
    pub fn decode(bytes: &[u8]) -> Result<Self, StorageError> {
        let corrupt = |reason| StorageError::Corrupt {
            what: "log state",
            reason,
        };
        if bytes.len() > MAX_STATE_LEN {
            return Err(corrupt("too long"));
        }
        let (&version, rest) = bytes.split_first().ok_or(corrupt("empty"))?;
        if version != STATE_VERSION {
            return Err(corrupt("unknown version"));
        }
        let (size, rest) = rest.split_at_checked(8).ok_or(corrupt("truncated size"))?;
        let size = u64::from_be_bytes(<[u8; 8]>::try_from(size).map_err(|_| corrupt("size"))?);
        let (&count, rest) = rest.split_first().ok_or(corrupt("truncated count"))?;
        if u32::from(count) != size.count_ones() {
            return Err(corrupt("hash count does not match size"));
        }
        let hashes_len = usize::from(count) * Hash::LEN;
        let (hashes, note) = rest
            .split_at_checked(hashes_len)
            .ok_or(corrupt("truncated hashes"))?;
        let right_edge = hashes
            .chunks_exact(Hash::LEN)
            .map(Hash::from_slice)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| corrupt("hash"))?;
        if note.is_empty() {
            return Err(corrupt("missing checkpoint"));
        }
        Ok(Self {
            size: TreeSize(size),
            right_edge,
            checkpoint: note.to_vec(),
        })
    }
}

/// A stored tile record: the widest version of a tile written so far.
///
/// A hash tile of width `W` is `W * 32` bytes; an entry bundle of width `W` holds `W` entries.
/// Any narrower version of the same tile is a byte prefix of the stored one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTile {
    /// Number of hashes or entries held, 1..=256.
    pub width: u16,
    /// The tile bytes.
    pub bytes: Vec<u8>,
}

/// A tile (hash tile or entry bundle) to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TileWrite {
    /// Hash tile level or entry bundle.
    pub kind: TileKind,
    /// Tile index `N`.
    pub index: u64,
    /// The content: all hashes or entries of the tile from its start.
    pub tile: StoredTile,
}

/// Errors of a storage backend.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The backend (sled, the file system) failed.
    #[error("storage backend failed during {op}: {source}")]
    Backend {
        /// The operation that failed.
        op: &'static str,
        /// The backend error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A fault injected by the in-memory test backend (`mem::MemStorage`, feature `testing`).
    #[error("injected fault in {op} (write call {call}, persisted: {persisted})")]
    Injected {
        /// The operation.
        op: &'static str,
        /// The write call number (0-based) that failed.
        call: u64,
        /// Whether the write took effect before the error was returned.
        persisted: bool,
    },
    /// The compare-and-swap of the published state failed: the stored state is not the expected one.
    #[error("published state changed concurrently (expected size {expected:?}, found {found:?})")]
    StateConflict {
        /// Size of the state the caller expected (None: no state).
        expected: Option<u64>,
        /// Size of the state found (None: no state).
        found: Option<u64>,
    },
    /// Staging must start exactly at the staged size.
    #[error("staging must start at index {staged_size}, not {start}")]
    NotContiguous {
        /// The current staged size.
        staged_size: u64,
        /// The index the caller started at.
        start: u64,
    },
    /// A tile write would change bytes already written (tiles are immutable).
    #[error("tile {kind:?} {index} would change bytes already written")]
    TileConflict {
        /// Tile kind.
        kind: TileKind,
        /// Tile index.
        index: u64,
    },
    /// A value asked for is not stored.
    #[error("{what} {index} is missing")]
    Missing {
        /// What is missing.
        what: &'static str,
        /// Its index.
        index: u64,
    },
    /// A shared store refused a batch whose first entry time is older than the last staged one
    /// (entry times never decrease in log order, spec `storage-postgres.md` §5.6): nothing was
    /// staged; re-stamp the batch at `last_ms` or later and stage it again.
    #[error("entry time older than the last staged entry time {last_ms}")]
    StaleTime {
        /// The last staged entry time, ms since the epoch.
        last_ms: u64,
    },
    /// A write of the shared checkpoint lock was refused (spec `storage-postgres.md` §5.4):
    /// the stored lock is not the expected one, or the new checkpoint does not equal or extend
    /// it. Nothing was written.
    #[error("checkpoint lock in the store refused: {reason} (stored size {stored_size:?}, new size {new_size})")]
    LockRefused {
        /// Size of the stored lock's checkpoint (None: no lock stored).
        stored_size: Option<u64>,
        /// Size of the refused checkpoint.
        new_size: u64,
        /// Why.
        reason: &'static str,
    },
    /// A stored or given value is malformed.
    #[error("malformed {what}: {reason}")]
    Corrupt {
        /// What is malformed.
        what: &'static str,
        /// Why.
        reason: &'static str,
    },
}

impl StorageError {
    /// Whether stored data is damaged or missing (as opposed to a backend that failed to answer,
    /// e.g. a full disk): [`StorageError::Corrupt`], [`StorageError::Missing`], and sled's own
    /// corruption errors.
    pub fn is_integrity(&self) -> bool {
        match self {
            StorageError::Corrupt { .. } | StorageError::Missing { .. } => true,
            StorageError::Backend { source, .. } => source
                .downcast_ref::<::sled::Error>()
                .is_some_and(|e| matches!(e, ::sled::Error::Corruption { .. })),
            _ => false,
        }
    }
}
/// One policy-registry record: key and value ([`Storage::policy_records`]).
pub type PolicyRecordEntry = (Vec<u8>, Vec<u8>);

/// An escalation record with its id ([`Storage::escalations`]).
pub type EscalationEntry = (Vec<u8>, Vec<u8>);

/// Durable storage of one log.
///
/// # Contract
/// - **Durable on return.** When a write method returns `Ok`, its effect survives a crash (sled:
///   after `flush()`; tile files: after fsync of the file and of its directory; PostgreSQL: after
///   `COMMIT`), except [`Storage::prune_staged`], which is idempotent and may be lost.
/// - **Atomic writes.** Each write method takes effect completely or not at all, as seen by a
///   later reader or after a crash. A method that returns `Err` may or may not have taken effect
///   ("failed but persisted"); the caller must re-read the state ([`Storage::state`],
///   [`Storage::staged_size`]) before relying on it.
/// - **Staging is append-only.** [`Storage::stage`] appends at exactly the staged size; a staged
///   entry never changes. Staged entries below the start of the last full published entry
///   bundle may be pruned; all others are kept.
/// - **Compare-and-swap of the published state.** [`Storage::publish`] replaces the state only
///   if the stored one equals `expected`.
/// - **Tiles are immutable.** A tile is stored as its widest version so far. Writing a tile
///   either extends the stored bytes or is a byte prefix of them (a no-op); anything else is
///   [`StorageError::TileConflict`] and writes nothing. A full tile (width 256) never changes.
/// - **Reads return what was written, or an error.** [`Storage::read_tile`] returns the bytes of
///   a committed write, or nothing, or fails; bytes that do not match the committed log (a
///   damaged file) are [`StorageError::Corrupt`], never served. A backend that keeps data
///   outside its transactional store (the sled backend's full tile files) checks it on read
///   against committed state (there: the parent tile in the Merkle tree), makes it durable
///   *before* the commit that covers it, and ignores (and never silently replaces) data that no
///   commit covers: such leftovers of a failed or crashed write are invisible to readers, and a
///   retry must find them byte-identical or fail with [`StorageError::TileConflict`].
/// - **Memory is bounded** (persistent backends). No method keeps data in memory in proportion
///   to the size of the log; any cache has a fixed byte bound (the sled backend: sled's page cache, which then only
///   holds partial tiles and small records).
/// - **Private records are separate.** They live apart from tiles and entries; no tile or entry
///   read returns them. So do policy-registry records ([`Storage::put_policy_record`]) and
///   escalation records ([`Storage::swap_escalation`]).
///
/// Implementations must be safe to call from several threads; only one sequencer writes.
pub trait Storage: Send + Sync + 'static {
    /// Number of entries staged (durably sequenced) so far.
    ///
    /// # Errors
    /// [`StorageError`] on backend failure.
    fn staged_size(&self) -> Result<TreeSize, StorageError>;

    /// Append `batch` at indices `start..`, with their private records, durably and atomically.
    ///
    /// # Errors
    /// [`StorageError::NotContiguous`] if `start` is not the staged size; backend errors.
    fn stage(&self, start: LeafIndex, batch: &[StagedEntry]) -> Result<(), StorageError>;

    /// The staged entries with indices in `start..end`.
    ///
    /// # Errors
    /// [`StorageError::Missing`] if any of them is not stored (pruned or never staged).
    fn staged(&self, start: LeafIndex, end: LeafIndex) -> Result<Vec<Vec<u8>>, StorageError>;

    /// Drop staged entries with indices below `below` (they live on in full entry bundles).
    ///
    /// # Errors
    /// Backend errors.
    fn prune_staged(&self, below: LeafIndex) -> Result<(), StorageError>;

    /// The private record of `index`, if any.
    ///
    /// # Errors
    /// Backend errors.
    fn private_record(&self, index: LeafIndex) -> Result<Option<Vec<u8>>, StorageError>;

    /// Write hash tiles and entry bundles, durably and atomically (all or none).
    ///
    /// # Errors
    /// [`StorageError::TileConflict`] if one would change stored bytes; backend errors.
    fn write_tiles(&self, tiles: &[TileWrite]) -> Result<(), StorageError>;

    /// The stored (widest) version of a tile.
    ///
    /// # Errors
    /// Backend errors; [`StorageError::Corrupt`] for an unreadable record.
    fn read_tile(&self, kind: TileKind, index: u64) -> Result<Option<StoredTile>, StorageError>;

    /// The published state, if any was ever published.
    ///
    /// # Errors
    /// Backend errors; [`StorageError::Corrupt`] for an unreadable record.
    fn state(&self) -> Result<Option<LogState>, StorageError>;

    /// Replace the published state with `new` if it currently equals `expected`.
    ///
    /// # Errors
    /// [`StorageError::StateConflict`] when it does not; backend errors.
    fn publish(&self, expected: Option<&LogState>, new: &LogState) -> Result<(), StorageError>;

    /// Make the backend usable again after a failed write, before the caller re-reads the state
    /// (the sled backend reopens its `Db`, which keeps failing after an I/O error such as a full
    /// disk). The default does nothing.
    ///
    /// # Errors
    /// When the backend cannot be reopened (retried on the next write).
    fn recover(&self) -> Result<(), StorageError> {
        Ok(())
    }

    /// The several-frontends interface of a store shared by several servers
    /// ([`shared::SharedLog`]; PostgreSQL), or `None` when this process is the only writer
    /// (the default).
    fn shared(&self) -> Option<&dyn shared::SharedLog> {
        None
    }
    /// Write (`Some`) or delete (`None`) the policy-registry record under `key`, durably and
    /// atomically. The policy registry (`service::policies`) keeps policy texts and their
    /// registrations here, apart from tiles, entries and private records.
    ///
    /// # Errors
    /// Backend errors.
    fn put_policy_record(&self, key: &[u8], value: Option<&[u8]>) -> Result<(), StorageError>;

    /// Every policy-registry record, sorted by key (bytewise).
    ///
    /// # Errors
    /// Backend errors.
    fn policy_records(&self) -> Result<Vec<PolicyRecordEntry>, StorageError>;

    /// Escalation records (issue 15; spec/approval.md), keyed by escalation id.
    ///
    /// # Errors
    /// Backend errors.
    fn escalation(&self, id: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;

    /// Every escalation record, in key order.
    ///
    /// # Errors
    /// Backend errors.
    fn escalations(&self) -> Result<Vec<EscalationEntry>, StorageError>;

    /// Compare-and-swap: writes `new` iff the current value equals `expected` (None = absent).
    /// Ok(false) when it does not; durable when it returns Ok(true).
    ///
    /// # Errors
    /// Backend errors.
    fn swap_escalation(
        &self,
        id: &[u8],
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, StorageError>;
}

/// Check that `write` is a well-formed tile: width 1..=256, and a hash tile of `width * 32` bytes.
///
/// # Errors
/// [`StorageError::Corrupt`].
pub(crate) fn check_tile_write(write: &TileWrite) -> Result<(), StorageError> {
    let width = write.tile.width;
    if width == 0 || width > TILE_WIDTH {
        return Err(StorageError::Corrupt {
            what: "tile write",
            reason: "width not in 1..=256",
        });
    }
    if let TileKind::Hashes { .. } = write.kind {
        if write.tile.bytes.len() != usize::from(width) * Hash::LEN {
            return Err(StorageError::Corrupt {
                what: "tile write",
                reason: "hash tile length is not width * 32",
            });
        }
    }
    Ok(())
}

/// Merge a tile write with the stored record: `Ok(Some(new))` to store, `Ok(None)` when the
/// stored record already holds it, `Err(TileConflict)` when the bytes disagree.
///
/// # Errors
/// [`StorageError::TileConflict`].
pub(crate) fn merge_tile(
    stored: Option<&StoredTile>,
    write: &TileWrite,
) -> Result<Option<StoredTile>, StorageError> {
    let conflict = || StorageError::TileConflict {
        kind: write.kind,
        index: write.index,
    };
    match stored {
        None => Ok(Some(write.tile.clone())),
        Some(old) if write.tile.width >= old.width => {
            if write.tile.bytes.starts_with(&old.bytes) {
                Ok((write.tile.width > old.width).then(|| write.tile.clone()))
            } else {
                Err(conflict())
            }
        }
        Some(old) => {
            if old.bytes.starts_with(&write.tile.bytes) {
                Ok(None)
            } else {
                Err(conflict())
            }
        }
    }
}

/// Encode a stored tile as a value: width (u16 big-endian) then the bytes.
pub(crate) fn encode_tile(tile: &StoredTile) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + tile.bytes.len());
    out.extend_from_slice(&tile.width.to_be_bytes());
    out.extend_from_slice(&tile.bytes);
    out
}

/// Parse what [`encode_tile`] wrote.
///
/// # Errors
/// [`StorageError::Corrupt`].
pub(crate) fn decode_tile(bytes: &[u8]) -> Result<StoredTile, StorageError> {
    let (width, rest) = bytes.split_at_checked(2).ok_or(StorageError::Corrupt {
        what: "tile record",
        reason: "truncated",
    })?;
    let width = u16::from_be_bytes([
        width.first().copied().unwrap_or_default(),
        width.get(1).copied().unwrap_or_default(),
    ]);
    if width == 0 || width > TILE_WIDTH {
        return Err(StorageError::Corrupt {
            what: "tile record",
            reason: "bad width",
        });
    }
    Ok(StoredTile {
        width,
        bytes: rest.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(width: u16, byte: u8) -> TileWrite {
        TileWrite {
            kind: TileKind::Hashes { level: 0 },
            index: 3,
            tile: StoredTile {
                width,
                bytes: vec![byte; usize::from(width) * 32],
            },
        }
    }

    #[test]
    fn state_round_trips_and_rejects_bad_counts() {
        let state = LogState {
            size: TreeSize(5),
            right_edge: vec![Hash([1; 32]), Hash([2; 32])],
            checkpoint: b"note\n".to_vec(),
        };
        assert_eq!(LogState::decode(&state.encode()).unwrap(), state);
        let bad = LogState {
            size: TreeSize(7),
            ..state.clone()
        };
        assert!(matches!(
            LogState::decode(&bad.encode()),
            Err(StorageError::Corrupt { .. })
        ));
        let mut truncated = state.encode();
        truncated.truncate(20);
        assert!(LogState::decode(&truncated).is_err());
        let empty_note = LogState {
            checkpoint: vec![],
            ..state
        };
        assert!(LogState::decode(&empty_note.encode()).is_err());
        assert!(LogState::decode(&[]).is_err());
    }

    #[test]
    fn tiles_extend_but_never_change() {
        let base = write(2, 7);
        let mut longer = write(3, 7);
        assert_eq!(merge_tile(None, &base).unwrap(), Some(base.tile.clone()));
        assert_eq!(
            merge_tile(Some(&base.tile), &longer).unwrap(),
            Some(longer.tile.clone())
        );
        assert_eq!(merge_tile(Some(&longer.tile), &base).unwrap(), None);
        assert_eq!(merge_tile(Some(&base.tile), &base).unwrap(), None);
        longer.tile.bytes[0] = 8;
        assert!(matches!(
            merge_tile(Some(&base.tile), &longer),
            Err(StorageError::TileConflict { index: 3, .. })
        ));
        assert!(merge_tile(Some(&longer.tile), &base).is_err());
    }

    #[test]
    fn tile_writes_are_checked_and_records_round_trip() {
        assert!(check_tile_write(&write(256, 1)).is_ok());
        assert!(check_tile_write(&write(0, 1)).is_err());
        let mut bad = write(2, 1);
        bad.tile.bytes.pop();
        assert!(check_tile_write(&bad).is_err());
        let tile = write(4, 9).tile;
        assert_eq!(decode_tile(&encode_tile(&tile)).unwrap(), tile);
        assert!(decode_tile(&[0]).is_err());
        assert!(decode_tile(&[0, 0]).is_err());
        assert!(decode_tile(&[1, 1]).is_err());
    }
}
