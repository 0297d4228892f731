//! A whole-log checker: everything a monitor would verify, read straight from [`Storage`].
//!
//! [`check_whole_log`] verifies, for the published state:
//! - the checkpoint signature by the log key (C2SP signed-note, spec `spec/note-and-checkpoint.md`);
//! - that the stored right edge matches the checkpoint's size and root;
//! - every entry bundle, by recomputing the tree from the entries: every hash tile must hold
//!   exactly the recomputed hashes (C2SP tlog-tiles, spec `spec/tiles.md` §2, §4), and the root
//!   must match;
//! - consistency with a previous checkpoint, through a proof built from the stored tiles
//!   (RFC 9162 §2.1.4);
//! - that staging covers the published tree: the staged size is at least the tree size and the
//!   staged entries still kept (those after the last full entry bundle) equal the published ones.
//!
//! Memory use is bounded by one tile per level, whatever the log size.

use std::sync::Mutex;

use verdict_core::checkpoint::{Checkpoint, CheckpointError, VerifiedCheckpoint};
use verdict_core::merkle::{
    empty_root, leaf_hash, Hash, LeafIndex, RightEdge, RightEdgeError, StoredHash, TreeSize,
};
use verdict_core::note::Verifier;
use verdict_core::proof::{
    consistency_proof, inclusion_proof, verify_consistency, verify_inclusion, VerifyError,
};
use verdict_core::tile::{
    decode_entry_bundle, width_in, BundleError, EntrySlot, Tile, TileHashSource, TileKind,
    TILE_HEIGHT, TILE_WIDTH,
};

use super::tiles::{bundle_entry, tile_prefix, CachedTiles};
use crate::storage::cache::TileCache;
use crate::storage::{Storage, StorageError};

const WIDTH: u64 = TILE_WIDTH as u64;

/// What the check found wrong.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Storage failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// Nothing was ever published.
    #[error("no published checkpoint")]
    NoCheckpoint,
    /// The checkpoint does not verify with the log key.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The stored right edge is malformed.
    #[error("right edge: {0}")]
    RightEdge(#[from] RightEdgeError),
    /// A tile or bundle is missing or narrower than the tree needs.
    #[error("{what} tile {path} is missing or too narrow")]
    MissingTile {
        /// Hash tile or entry bundle.
        what: &'static str,
        /// Its path.
        path: String,
    },
    /// An entry bundle does not decode.
    #[error("entry bundle {path}: {source}")]
    BadBundle {
        /// Its path.
        path: String,
        /// Why.
        #[source]
        source: BundleError,
    },
    /// A hash tile differs from the hashes recomputed from the entries.
    #[error("hash tile {path} does not match the entries")]
    TileMismatch {
        /// Its path.
        path: String,
    },
    /// Two things that must agree do not.
    #[error("inconsistent log: {what}")]
    Inconsistent {
        /// What disagrees.
        what: &'static str,
    },
    /// A proof built from the tiles did not verify.
    #[error("{what} proof: {source}")]
    Proof {
        /// Inclusion or consistency.
        what: &'static str,
        /// Why.
        #[source]
        source: VerifyError,
    },
    /// A proof could not be built from the tiles.
    #[error("building {what} proof failed: {reason}")]
    ProofBuild {
        /// Inclusion or consistency.
        what: &'static str,
        /// The error, as text.
        reason: String,
    },
}

/// A log that passed [`check_whole_log`].
#[derive(Clone, Debug)]
pub struct CheckedLog {
    /// The verified published checkpoint.
    pub checkpoint: VerifiedCheckpoint,
    /// Entries staged (at least the tree size).
    pub staged_size: TreeSize,
    /// Hash tiles compared.
    pub hash_tiles: u64,
    /// Entry bundles decoded.
    pub entry_bundles: u64,
}

fn path(kind: TileKind, index: u64, width: u16) -> String {
    Tile { kind, index, width }.path()
}

/// Check the whole published log in `storage` (see the module docs).
///
/// # Errors
/// [`CheckError`] naming the first thing found wrong.
pub fn check_whole_log(
    storage: &dyn Storage,
    log_key: &Verifier,
    previous: Option<&Checkpoint>,
) -> Result<CheckedLog, CheckError> {
    let state = storage.state()?.ok_or(CheckError::NoCheckpoint)?;
    let verified = Checkpoint::open(&state.checkpoint, log_key, &[])?;
    let checkpoint = verified.checkpoint();
    let size = checkpoint.size;
    if size != state.size {
        return Err(CheckError::Inconsistent {
            what: "checkpoint size differs from state size",
        });
    }
    let stored_edge = RightEdge::from_parts(size, state.right_edge.clone())?;
    if stored_edge.root() != checkpoint.root {
        return Err(CheckError::Inconsistent {
            what: "right edge root differs from checkpoint",
        });
    }
    let staged_size = storage.staged_size()?;
    if staged_size < size {
        return Err(CheckError::Inconsistent {
            what: "staged size below the tree size",
        });
    }

    let mut tiles = HashTileCheck::default();
    let mut edge = RightEdge::new();
    let mut created = Vec::new();
    let keep_from = size.0 / WIDTH * WIDTH;
    let bundles = size.0.div_ceil(WIDTH);
    for index in 0..bundles {
        let width = width_in(TileKind::Entries, index, size);
        let bundle_path = path(TileKind::Entries, index, width);
        let missing = || CheckError::MissingTile {
            what: "entry",
            path: bundle_path.clone(),
        };
        let stored = storage
            .read_tile(TileKind::Entries, index)?
            .ok_or_else(missing)?;
        let bytes = tile_prefix(TileKind::Entries, &stored, width).map_err(|_| missing())?;
        let entries = decode_entry_bundle(bytes).map_err(|source| CheckError::BadBundle {
            path: bundle_path.clone(),
            source,
        })?;
        if entries.len() != usize::from(width) {
            return Err(CheckError::Inconsistent {
                what: "entry bundle width",
            });
        }
        let start = index * WIDTH;
        if start >= keep_from {
            let end = start + u64::from(width);
            if storage.staged(LeafIndex(start), LeafIndex(end))? != entries {
                return Err(CheckError::Inconsistent {
                    what: "staged entry differs from bundle",
                });
            }
        }
        for entry in &entries {
            edge.append(leaf_hash(entry), &mut |stored| created.push(stored))?;
            for stored in created.drain(..) {
                tiles.push(storage, stored)?;
            }
        }
    }
    tiles.finish(storage, size)?;
    if edge != stored_edge {
        return Err(CheckError::Inconsistent {
            what: "entries do not hash to the checkpoint root",
        });
    }

    let cache = Mutex::new(TileCache::new(1 << 20));
    let reader = CachedTiles::new(storage, &cache);
    let source = TileHashSource::new(&reader, size);
    if size.0 > 0 {
        let last = LeafIndex(size.0 - 1);
        let proof = inclusion_proof(&source, last, size).map_err(|e| CheckError::ProofBuild {
            what: "inclusion",
            reason: e.to_string(),
        })?;
        let leaf = leaf_hash(&storage_entry(storage, last, size)?);
        verify_inclusion(&leaf, last, size, &proof, &checkpoint.root).map_err(|source| {
            CheckError::Proof {
                what: "inclusion",
                source,
            }
        })?;
    }
    if let Some(previous) = previous {
        check_consistency(&source, previous, checkpoint)?;
    }
    Ok(CheckedLog {
        checkpoint: verified.clone(),
        staged_size,
        hash_tiles: tiles.checked,
        entry_bundles: bundles,
    })
}

fn storage_entry(
    storage: &dyn Storage,
    index: LeafIndex,
    size: TreeSize,
) -> Result<Vec<u8>, CheckError> {
    let slot = EntrySlot::of(index);
    let missing = || CheckError::MissingTile {
        what: "entry",
        path: path(
            TileKind::Entries,
            slot.bundle,
            width_in(TileKind::Entries, slot.bundle, size),
        ),
    };
    let stored = storage
        .read_tile(TileKind::Entries, slot.bundle)?
        .ok_or_else(missing)?;
    bundle_entry(&stored.bytes, slot.position).map_err(CheckError::Storage)
}

fn check_consistency<R: verdict_core::tile::TileReader>(
    source: &TileHashSource<'_, R>,
    previous: &Checkpoint,
    current: &Checkpoint,
) -> Result<(), CheckError> {
    if previous.origin != current.origin {
        return Err(CheckError::Inconsistent {
            what: "previous checkpoint has another origin",
        });
    }
    if previous.size > current.size {
        return Err(CheckError::Inconsistent {
            what: "tree shrank",
        });
    }
    if previous.size.0 == 0 {
        if previous.root != empty_root() {
            return Err(CheckError::Inconsistent {
                what: "empty tree with a non-empty root",
            });
        }
        return Ok(());
    }
    if previous.size == current.size {
        if previous.root != current.root {
            return Err(CheckError::Inconsistent {
                what: "same size, different roots",
            });
        }
        return Ok(());
    }
    let proof = consistency_proof(source, previous.size, current.size).map_err(|e| {
        CheckError::ProofBuild {
            what: "consistency",
            reason: e.to_string(),
        }
    })?;
    verify_consistency(
        previous.size,
        current.size,
        &proof,
        &previous.root,
        &current.root,
    )
    .map_err(|source| CheckError::Proof {
        what: "consistency",
        source,
    })
}

/// Hash tiles being recomputed: the open tile of each tile level.
#[derive(Default)]
struct HashTileCheck {
    /// Per tile level: tile index and the hashes so far.
    open: Vec<(u64, Vec<u8>)>,
    checked: u64,
}

impl HashTileCheck {
    fn push(&mut self, storage: &dyn Storage, stored: StoredHash) -> Result<(), CheckError> {
        if !stored.level.is_multiple_of(TILE_HEIGHT) {
            return Ok(());
        }
        let level = usize::from(stored.level / TILE_HEIGHT);
        while self.open.len() <= level {
            self.open.push((0, Vec::new()));
        }
        let Some((index, bytes)) = self.open.get_mut(level) else {
            return Ok(());
        };
        if stored.index / WIDTH != *index
            || stored.index % WIDTH != (bytes.len() / Hash::LEN) as u64
        {
            return Err(CheckError::Inconsistent {
                what: "stored hashes out of order",
            });
        }
        bytes.extend_from_slice(&stored.hash.0);
        if bytes.len() == usize::from(TILE_WIDTH) * Hash::LEN {
            let full = std::mem::take(bytes);
            let tile_index = *index;
            *index += 1;
            compare(
                storage,
                stored.level / TILE_HEIGHT,
                tile_index,
                TILE_WIDTH,
                &full,
            )?;
            self.checked += 1;
        }
        Ok(())
    }

    fn finish(&mut self, storage: &dyn Storage, size: TreeSize) -> Result<(), CheckError> {
        for (level, (index, bytes)) in (0u8..).zip(&self.open) {
            let kind = TileKind::Hashes { level };
            let width = width_in(kind, *index, size);
            if bytes.len() != usize::from(width) * Hash::LEN {
                return Err(CheckError::Inconsistent {
                    what: "partial hash tile width",
                });
            }
            if width > 0 {
                compare(storage, level, *index, width, bytes)?;
                self.checked += 1;
            }
        }
        Ok(())
    }
}

fn compare(
    storage: &dyn Storage,
    level: u8,
    index: u64,
    width: u16,
    expected: &[u8],
) -> Result<(), CheckError> {
    let kind = TileKind::Hashes { level };
    let tile_path = path(kind, index, width);
    let missing = || CheckError::MissingTile {
        what: "hash",
        path: tile_path.clone(),
    };
    let stored = storage.read_tile(kind, index)?.ok_or_else(missing)?;
    let bytes = tile_prefix(kind, &stored, width).map_err(|_| missing())?;
    if bytes != expected {
        return Err(CheckError::TileMismatch { path: tile_path });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::tiles::extend;
    use crate::storage::mem::MemStorage;
    use crate::storage::{LogState, StagedEntry, TileWrite};
    use verdict_core::note::Signer;

    const ORIGIN: &str = "example.com/check-test";

    fn signer() -> Signer {
        Signer::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[3; 32])).unwrap()
    }

    /// Build a log of `n` entries by hand, letting `tamper` change the tiles before they are
    /// written; returns the storage and the checkpoint.
    fn build(n: u32, tamper: impl Fn(&mut Vec<TileWrite>)) -> (MemStorage, Checkpoint) {
        let storage = MemStorage::new();
        let entries: Vec<Vec<u8>> = (0..n).map(|i| i.to_le_bytes().to_vec()).collect();
        let staged: Vec<_> = entries
            .iter()
            .map(|e| StagedEntry {
                entry: e.clone(),
                private: None,
            })
            .collect();
        storage.stage(LeafIndex(0), &staged).unwrap();
        let mut extension = extend(&storage, &RightEdge::new(), &entries).unwrap();
        tamper(&mut extension.writes);
        storage.write_tiles(&extension.writes).unwrap();
        let checkpoint = Checkpoint {
            origin: ORIGIN.into(),
            size: extension.edge.size(),
            root: extension.edge.root(),
            extensions: vec![],
        };
        let state = LogState {
            size: extension.edge.size(),
            right_edge: extension.edge.hashes().to_vec(),
            checkpoint: checkpoint.sign(&signer()).unwrap(),
        };
        storage.publish(None, &state).unwrap();
        (storage, checkpoint)
    }

    #[test]
    fn accepts_a_good_log_and_checks_consistency() {
        let (storage, checkpoint) = build(700, |_| {});
        let checked = check_whole_log(&storage, &signer().verifier(), None).unwrap();
        assert_eq!(checked.checkpoint.checkpoint(), &checkpoint);
        assert_eq!((checked.hash_tiles, checked.entry_bundles), (4, 3));
        let (_, smaller) = build(300, |_| {});
        check_whole_log(&storage, &signer().verifier(), Some(&smaller)).unwrap();
        let forked = Checkpoint {
            root: Hash([9; 32]),
            ..smaller.clone()
        };
        assert!(matches!(
            check_whole_log(&storage, &signer().verifier(), Some(&forked)),
            Err(CheckError::Proof {
                what: "consistency",
                ..
            })
        ));
        let (_, larger) = build(701, |_| {});
        assert!(matches!(
            check_whole_log(&storage, &signer().verifier(), Some(&larger)),
            Err(CheckError::Inconsistent {
                what: "tree shrank"
            })
        ));
        let other = Signer::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[4; 32])).unwrap();
        assert!(matches!(
            check_whole_log(&storage, &other.verifier(), None),
            Err(CheckError::Checkpoint(_))
        ));
        assert!(matches!(
            check_whole_log(&MemStorage::new(), &signer().verifier(), None),
            Err(CheckError::NoCheckpoint)
        ));
    }

    #[test]
    fn detects_tampered_tiles_and_bundles() {
        let flip_hash = |writes: &mut Vec<TileWrite>| {
            let tile = writes
                .iter_mut()
                .find(|w| w.kind == TileKind::Hashes { level: 1 })
                .unwrap();
            tile.tile.bytes[5] ^= 1;
        };
        let (storage, _) = build(600, flip_hash);
        assert!(matches!(
            check_whole_log(&storage, &signer().verifier(), None),
            Err(CheckError::TileMismatch { .. })
        ));
        let change_entry = |writes: &mut Vec<TileWrite>| {
            let bundle = writes
                .iter_mut()
                .find(|w| w.kind == TileKind::Entries)
                .unwrap();
            bundle.tile.bytes[3] ^= 1;
        };
        let (storage, _) = build(600, change_entry);
        assert!(check_whole_log(&storage, &signer().verifier(), None).is_err());
        let drop_bundle = |writes: &mut Vec<TileWrite>| writes.retain(|w| w.index != 2);
        let (storage, _) = build(600, drop_bundle);
        assert!(matches!(
            check_whole_log(&storage, &signer().verifier(), None),
            Err(CheckError::MissingTile { .. })
        ));
    }
}
