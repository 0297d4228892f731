//! The checkpoint-lock checks of the sequencer (spec `spec/checkpoint-lock.md`): at open, the
//! store against the lock file; before signing, that a new checkpoint equals or extends the
//! locked one; and re-signing the published checkpoint.

use std::time::Instant;

use verdict_core::checkpoint::Checkpoint;
use verdict_core::merkle::{empty_root, RightEdge, TreeSize};
use verdict_core::proof::{consistency_proof, verify_consistency};
use verdict_core::tile::TileHashSource;

use super::super::tiles::CachedTiles;
use super::super::{LockMismatch, LogError, SignedCheckpoint};
use super::Sequencer;

impl Sequencer {
    /// At open, after [`Sequencer::reload`]: compare the store with the checkpoint lock.
    /// - No lock file: create it from the store's checkpoint (first start with a lock; a store
    ///   without a checkpoint gets its lock with its first checkpoint).
    /// - The store's tree is at least the locked size: prove it extends the locked checkpoint.
    /// - It is smaller: the staged entries must reach the locked size (a crash between writing
    ///   the lock and publishing in the store); the checkpoint that integrates them is checked
    ///   when it is signed ([`Sequencer::check_extends_lock`]).
    pub(super) fn check_lock_at_open(&mut self) -> Result<(), LogError> {
        let Some(lock) = self.lock.clone() else {
            return Ok(());
        };
        let origin = self.shared.cfg.origin.clone();
        let Some(locked) = lock.read(&self.verifier, &origin)? else {
            if let Some(state) = &self.published {
                let checkpoint = Checkpoint::open(&state.checkpoint, &self.verifier, &[])?
                    .checkpoint()
                    .clone();
                lock.write(&state.checkpoint)?;
                tracing::warn!(
                    path = %lock.path().display(),
                    tree.size = checkpoint.size.0,
                    "no checkpoint lock at {}: created it from the store's checkpoint at tree size {} (first start with a checkpoint lock)",
                    lock.path().display(),
                    checkpoint.size.0
                );
                self.locked = Some(checkpoint);
            }
            return Ok(());
        };
        let locked = locked.checkpoint;
        let edge = self.edge.clone();
        if edge.size() < locked.size && self.staged_size < locked.size.0 {
            return Err(self.mismatch(
                &locked,
                &edge,
                "the store holds fewer entries than the locked checkpoint (restored from an older backup, or writes were lost)",
            ));
        }
        self.locked = Some(locked);
        if edge.size() >= self.locked.as_ref().map_or(TreeSize(0), |l| l.size) {
            self.check_extends_lock(&edge)?;
        }
        tracing::info!(
            path = %lock.path().display(),
            lock.size = self.locked.as_ref().map_or(0, |l| l.size.0),
            tree.size = edge.size().0,
            "checkpoint lock {} checked",
            lock.path().display()
        );
        Ok(())
    }

    /// Whether the tree of `edge` may be signed: it must equal or extend the locked checkpoint.
    /// Proven by construction when `edge` grew from the locked tree (the sequencer's edge is the
    /// locked one), otherwise from the store's tiles (which `edge`'s tree must already have).
    ///
    /// # Errors
    /// [`LogError::LockMismatch`]; storage errors while building the proof.
    pub(super) fn check_extends_lock(&self, edge: &RightEdge) -> Result<(), LogError> {
        let Some(locked) = &self.locked else {
            return Ok(());
        };
        self.check_extends(locked, edge, self.lock_path())
    }

    /// As [`Sequencer::check_extends_lock`], against `locked` kept at `path` (the lock file, or
    /// the shared store's lock, module `shared_lock`).
    pub(super) fn check_extends(
        &self,
        locked: &Checkpoint,
        edge: &RightEdge,
        path: std::path::PathBuf,
    ) -> Result<(), LogError> {
        let mismatch = |reason| self.mismatch_at(path.clone(), locked, edge, reason);
        let (size, root) = (edge.size(), edge.root());
        if size < locked.size {
            return Err(mismatch(
                "refusing to sign a tree smaller than the locked checkpoint",
            ));
        }
        if size == locked.size {
            if root == locked.root {
                return Ok(());
            }
            return Err(mismatch(
                "the store's tree at the locked size has another root",
            ));
        }
        if self.edge.size() == locked.size && self.edge.root() == locked.root {
            // `edge` was extended from the locked tree (integrate_staged, publish).
            return Ok(());
        }
        if locked.size.0 == 0 {
            if locked.root == empty_root() {
                return Ok(());
            }
            return Err(mismatch("the locked empty tree has a wrong root"));
        }
        let tiles = CachedTiles::new(self.shared.storage.as_ref(), &self.shared.cache);
        let proof = consistency_proof(&TileHashSource::new(&tiles, size), locked.size, size)?;
        verify_consistency(locked.size, size, &proof, &locked.root, &root)
            .map_err(|_| mismatch("the store's tree is not consistent with the locked checkpoint"))
    }

    fn mismatch(&self, locked: &Checkpoint, edge: &RightEdge, reason: &'static str) -> LogError {
        self.mismatch_at(self.lock_path(), locked, edge, reason)
    }

    fn lock_path(&self) -> std::path::PathBuf {
        self.lock
            .as_ref()
            .map(|l| l.path().to_path_buf())
            .unwrap_or_default()
    }

    /// [`LogError::LockMismatch`] of the lock kept at `lock_path`.
    pub(super) fn mismatch_at(
        &self,
        lock_path: std::path::PathBuf,
        locked: &Checkpoint,
        edge: &RightEdge,
        reason: &'static str,
    ) -> LogError {
        LogError::LockMismatch(Box::new(LockMismatch {
            lock_path,
            lock_size: locked.size,
            lock_root: locked.root,
            store_size: edge.size(),
            store_root: edge.root(),
            staged_size: self.staged_size,
            reason,
        }))
    }

    /// Sign the published checkpoint again: identical bytes (Ed25519 is deterministic, and
    /// checkpoints carry no time), but proof that the key and the sequencer still work.
    pub(super) fn resign(&mut self) -> Result<(), LogError> {
        let Some(state) = &self.published else {
            return Ok(());
        };
        let stored = self.shared.storage.state()?;
        if stored.as_ref() != Some(state) {
            self.dirty = true;
            return Err(LogError::Integrity {
                what: "published state changed under the sequencer",
            });
        }
        let checkpoint = Checkpoint {
            origin: self.shared.cfg.origin.clone(),
            size: self.edge.size(),
            root: self.edge.root(),
            extensions: Vec::new(),
        };
        let note = checkpoint.sign(&self.signer)?;
        if note != state.checkpoint {
            return Err(LogError::Integrity {
                what: "re-signed checkpoint differs from the stored one",
            });
        }
        self.signed_at = Instant::now();
        self.checkpoints.send_replace(Some(SignedCheckpoint {
            note,
            checkpoint,
            signed_at: self.signed_at,
        }));
        Ok(())
    }
}
