//! The read side of [`Log`]: checkpoints, tiles, entries, proofs and bundles, straight from
//! [`crate::storage::Storage`] through the bounded tile cache. Proofs are built from stored tiles
//! with core's [`TileHashSource`] (RFC 9162 §2.1.3, §2.1.4; spec `spec/tiles.md`); the tree is
//! never held in memory.

use verdict_core::bundle::ProofBundle;
use verdict_core::merkle::{Hash, LeafIndex, TreeSize};
use verdict_core::proof::{consistency_proof, inclusion_proof};
use verdict_core::tile::{width_in, EntrySlot, Tile, TileHashSource, TileKind, TILE_WIDTH};

use super::tiles::{bundle_entry, tile_prefix, CachedTiles};
use super::{Log, LogError, SignedCheckpoint};

impl Log {
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

    /// Log an integrity error of a read loudly and remember it for `/health`; pass the result on.
    fn checked<T>(&self, what: &'static str, result: Result<T, LogError>) -> Result<T, LogError> {
        if let Err(error) = &result {
            if error.is_integrity() {
                tracing::error!(read = what, error = %error, "log integrity error reading {what}: {error}");
                let mut slot = self
                    .inner
                    .shared
                    .integrity
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if slot.is_none() {
                    *slot = Some(format!("{what}: {error}"));
                }
            }
        }
        result
    }

    fn tiles(&self) -> CachedTiles<'_> {
        CachedTiles::new(self.inner.shared.storage.as_ref(), &self.inner.shared.cache)
    }

    /// A hash tile or entry bundle of exactly `tile.width`, if the latest checkpoint covers it.
    ///
    /// # Errors
    /// Storage errors; [`LogError::Integrity`] when a covered tile is missing.
    pub fn read_tile(&self, tile: Tile) -> Result<Option<Vec<u8>>, LogError> {
        self.checked("tile", self.read_tile_unchecked(tile))
    }

    fn read_tile_unchecked(&self, tile: Tile) -> Result<Option<Vec<u8>>, LogError> {
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
        self.checked("inclusion proof", self.inclusion_unchecked(index, size))
    }

    fn inclusion_unchecked(&self, index: LeafIndex, size: TreeSize) -> Result<Vec<Hash>, LogError> {
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
        self.checked("consistency proof", self.consistency_unchecked(from, to))
    }

    fn consistency_unchecked(&self, from: TreeSize, to: TreeSize) -> Result<Vec<Hash>, LogError> {
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
        self.checked("entry", self.entry_unchecked(index))
    }

    fn entry_unchecked(&self, index: LeafIndex) -> Result<Option<Vec<u8>>, LogError> {
        if index.0 >= self.published_size().0 {
            return Ok(None);
        }
        let slot = EntrySlot::of(index);
        let bundle = self
            .tiles()
            .stored(TileKind::Entries, slot.bundle, slot.min_width())?
            .ok_or(LogError::Integrity {
                what: "published entry bundle missing",
            })?;
        Ok(Some(bundle_entry(&bundle.bytes, slot.position)?))
    }

    /// The C2SP tlog-proof of `index` against the latest checkpoint, with the entry as `extra`.
    ///
    /// # Errors
    /// [`LogError::OutOfRange`] when the latest checkpoint does not cover `index`.
    pub fn bundle(&self, index: LeafIndex) -> Result<ProofBundle, LogError> {
        self.checked("proof bundle", self.bundle_unchecked(index))
    }

    fn bundle_unchecked(&self, index: LeafIndex) -> Result<ProofBundle, LogError> {
        let latest = self.latest_checkpoint().ok_or(LogError::OutOfRange {
            what: "no checkpoint yet",
        })?;
        self.bundle_against(index, latest.checkpoint.size, latest.note)
    }

    /// The C2SP tlog-proof of `index` against the published checkpoint of `size` whose signed
    /// note (possibly with cosignatures, spec `spec/witness.md` §9.2) is `note`.
    ///
    /// # Errors
    /// [`LogError::OutOfRange`] when `size` does not cover `index` or is beyond the latest
    /// checkpoint.
    pub fn bundle_against(
        &self,
        index: LeafIndex,
        size: TreeSize,
        note: Vec<u8>,
    ) -> Result<ProofBundle, LogError> {
        let published = self.latest_checkpoint().map_or(0, |c| c.checkpoint.size.0);
        if size.0 > published {
            return Err(LogError::OutOfRange {
                what: "size beyond the published tree",
            });
        }
        if index.0 >= size.0 {
            return Err(LogError::OutOfRange {
                what: "index not in the published tree",
            });
        }
        let tiles = self.tiles();
        let proof = inclusion_proof(&TileHashSource::new(&tiles, size), index, size)?;
        let slot = EntrySlot::of(index);
        let stored = tiles
            .stored(TileKind::Entries, slot.bundle, slot.min_width())?
            .ok_or(LogError::Integrity {
                what: "published entry bundle missing",
            })?;
        let entry = bundle_entry(&stored.bytes, slot.position)?;
        Ok(ProofBundle {
            extra: Some(entry),
            index,
            proof,
            checkpoint: note,
        })
    }

    /// The private record of `index` (only the authenticated private endpoint may call this).
    ///
    /// # Errors
    /// Storage errors.
    pub fn private_record(&self, index: LeafIndex) -> Result<Option<Vec<u8>>, LogError> {
        if !self.is_staged(index)? {
            return Ok(None);
        }
        Ok(self.inner.shared.storage.private_record(index)?)
    }
}
