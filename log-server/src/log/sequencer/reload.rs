//! Reload (also recovery at open): re-derive the sequencer's in-memory state from storage,
//! refusing state that lost acknowledged entries or published checkpoints (module docs of
//! [`super`], **Failures** and **Recovery**).

use std::sync::atomic::Ordering;

use verdict_core::checkpoint::Checkpoint;
use verdict_core::merkle::RightEdge;

use super::super::{LogError, SignedCheckpoint};
use super::Sequencer;

impl Sequencer {
    /// Re-derive the in-memory state from storage, refusing anything that lost acknowledged
    /// entries or published checkpoints.
    pub(super) fn reload(&mut self) -> Result<(), LogError> {
        let storage = self.shared.storage.as_ref();
        if self.dirty {
            storage.recover()?;
        }
        let state = storage.state()?;
        let staged = storage.staged_size()?.0;
        if staged < self.staged_size {
            return Err(LogError::Integrity {
                what: "storage lost acknowledged entries",
            });
        }
        let Some(state) = state else {
            if self.published.is_some() {
                return Err(LogError::Integrity {
                    what: "storage lost the published checkpoint",
                });
            }
            self.staged_size = staged;
            self.shared.staged.store(staged, Ordering::Release);
            self.dirty = false;
            return Ok(());
        };
        let edge = RightEdge::from_parts(state.size, state.right_edge.clone()).map_err(|_| {
            LogError::Integrity {
                what: "stored right edge does not match its size",
            }
        })?;
        let verified = Checkpoint::open(&state.checkpoint, &self.verifier, &[])?;
        let checkpoint = verified.checkpoint().clone();
        if checkpoint.size != state.size || checkpoint.root != edge.root() {
            return Err(LogError::Integrity {
                what: "stored checkpoint does not match the tree",
            });
        }
        if checkpoint.origin != self.shared.cfg.origin {
            return Err(LogError::Integrity {
                what: "stored checkpoint has another origin",
            });
        }
        if let Some(old) = &self.published {
            if state.size < old.size || (state.size == old.size && state != *old) {
                return Err(LogError::Integrity {
                    what: "storage lost the published checkpoint",
                });
            }
        }
        if staged < state.size.0 {
            return Err(LogError::Integrity {
                what: "published tree is larger than staged",
            });
        }
        let changed = self.published.as_ref() != Some(&state);
        self.edge = edge;
        self.staged_size = staged;
        self.shared.staged.store(staged, Ordering::Release);
        self.shared.published.store(state.size.0, Ordering::Release);
        if changed {
            self.checkpoints.send_replace(Some(SignedCheckpoint {
                note: state.checkpoint.clone(),
                checkpoint,
                signed_at: self.signed_at,
            }));
        }
        self.published = Some(state);
        self.dirty = false;
        self.drop_covered_waiters();
        Ok(())
    }
}
