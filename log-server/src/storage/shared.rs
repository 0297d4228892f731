//! Several frontends on one store (issue 18; spec `spec/storage-postgres.md` §5).
//!
//! A backend that lets several `verdict-server` processes share one log (PostgreSQL) returns a
//! [`SharedLog`] from [`super::Storage::shared`]. Every process is a **frontend**: it decides
//! checks and appends its entries (with their private records) at the end of staging, durably,
//! with [`SharedLog::stage_at_end`] (the store serialises concurrent appends, so the order of
//! staging is the one log order). At most one process at a time is the **integrator**
//! ([`SharedLog::try_integrator`]): it integrates what every frontend staged, writes tiles, signs
//! and publishes checkpoints (compare-and-swap of the published state, which fences an
//! integrator that lost its role without noticing) and announces them. Frontends learn of new
//! checkpoints through [`SharedLog::subscribe`] and by polling the published state every
//! [`SharedLog::poll_interval`], and answer their clients with proofs built from stored tiles.

use std::time::Duration;

use verdict_core::merkle::LeafIndex;

use super::{StagedEntry, StorageError};

/// What a store shared by several frontends offers beyond [`super::Storage`]. See the module docs.
pub trait SharedLog: Send + Sync {
    /// Append `batch` with its private records at the end of staging, wherever it is now, durably
    /// and atomically, and return the index of its first entry.
    ///
    /// # Errors
    /// Backend errors (nothing is acknowledged; the batch may or may not be staged).
    fn stage_at_end(&self, batch: &[StagedEntry]) -> Result<LeafIndex, StorageError>;

    /// Take the integrator role if it is free; `Ok(true)` when this process holds it (taken now
    /// or earlier and still held).
    ///
    /// # Errors
    /// Backend errors (the caller stays a frontend).
    fn try_integrator(&self) -> Result<bool, StorageError>;

    /// Whether this process holds the integrator role, as far as it knows without asking the
    /// database (a lost connection is noticed here; a compare-and-swap fences the rest).
    fn is_integrator(&self) -> bool;

    /// Call `wake` on every announcement (entries staged, checkpoint published) and whenever the
    /// listening connection was re-established (announcements may have been missed).
    fn subscribe(&self, wake: Box<dyn Fn() + Send + Sync>);

    /// How often a frontend tries to take the integrator role.
    fn takeover_interval(&self) -> Duration;

    /// How often the published state and staging are polled, in case an announcement was lost.
    fn poll_interval(&self) -> Duration;
}
