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
//!
//! The store also keeps, in its log row, the last staged entry time (entry times never decrease
//! across frontends, spec `storage-postgres.md` §5.6: [`SharedLog::stage_at_end`] refuses an
//! older batch) and the shared checkpoint lock ([`SharedLog::swap_lock`], §5.4).
//! The request-id window is shared too (spec §5.4): [`SharedLog::reserve_request_id`] reserves an
//! id for exactly one frontend (two racing on one id: one wins, the other is shown the winner's
//! row), [`SharedLog::complete_request_id`] records the entry logged for it, and the window keeps
//! the newest ids only. Policy registrations are serialised across the frontends
//! ([`SharedLog::lock_registrations`]).

use std::time::Duration;

use verdict_core::merkle::LeafIndex;

use super::{StagedEntry, StorageError};

/// The entry times of a batch to stage, ms since the epoch ([`SharedLog::stage_at_end`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchTimes {
    /// The time of the first timed entry.
    pub first_ms: u64,
    /// The largest time in the batch.
    pub last_ms: u64,
}

/// A request id's row in the shared window ([`SharedLog::reserve_request_id`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestIdRow {
    /// Fingerprint of the policy commitment and the action the id was first used with.
    pub fingerprint: [u8; 32],
    /// The entry last logged for the id and its salt; `None` while the request is in flight.
    pub logged: Option<(LeafIndex, [u8; 32])>,
}

/// A request-id reservation to make ([`SharedLog::reserve_request_id`]).
#[derive(Clone, Copy, Debug)]
pub struct RequestIdClaim<'a> {
    /// The key of the id: SHA-256 of a domain separator and the id (never the id text).
    pub key: &'a [u8; 32],
    /// Fingerprint of the policy commitment and the action.
    pub fingerprint: &'a [u8; 32],
    /// A random token naming this reservation (its release deletes only its own).
    pub token: &'a [u8; 16],
    /// How many ids the window keeps (the newest; older ones are pruned).
    pub window: u64,
    /// After how long an in-flight reservation (its frontend crashed) may be taken over.
    pub lease: Duration,
}

/// What a store shared by several frontends offers beyond [`super::Storage`]. See the module docs.
pub trait SharedLog: Send + Sync {
    /// Append `batch` with its private records at the end of staging, wherever it is now, durably
    /// and atomically, and return the index of its first entry. With `times` (the entry times
    /// of the batch, non-decreasing), the store refuses the batch if its first time is older
    /// than the last staged entry time, and otherwise records the batch's last time.
    ///
    /// # Errors
    /// [`StorageError::StaleTime`] (nothing staged); backend errors (nothing is acknowledged;
    /// the batch may or may not be staged).
    fn stage_at_end(
        &self,
        batch: &[StagedEntry],
        times: Option<BatchTimes>,
    ) -> Result<LeafIndex, StorageError>;

    /// The last staged entry time, ms since the epoch (0 before any timed batch).
    ///
    /// # Errors
    /// Backend errors.
    fn last_time_ms(&self) -> Result<u64, StorageError>;

    /// The shared checkpoint lock: the last checkpoint note an integrator signed, unverified
    /// (the caller verifies it), or `None` before the first.
    ///
    /// # Errors
    /// Backend errors.
    fn lock(&self) -> Result<Option<Vec<u8>>, StorageError>;

    /// Write the shared checkpoint lock: `new` (a signed checkpoint note) replaces the stored
    /// one if the stored one is `expected` (compare-and-swap) and `new` equals or extends it by
    /// size (a checkpoint of the same size must have the same root; a smaller one is refused).
    /// Writing the note already stored is a no-op that succeeds, whatever `expected` says.
    /// Consistency of a larger tree with the stored one is the integrator's to prove before it
    /// signs (spec `checkpoint-lock.md` §3); the store checks only size and root.
    ///
    /// # Errors
    /// [`StorageError::LockRefused`] (nothing written); [`StorageError::Corrupt`] when `new`
    /// or the stored lock is not a checkpoint note; backend errors.
    fn swap_lock(&self, expected: Option<&[u8]>, new: &[u8]) -> Result<(), StorageError>;

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

    /// Reserve a request id for this frontend, durably: `Ok(None)` when this call reserved it (a
    /// new row, in flight, or an in-flight row older than `claim.lease` taken over), otherwise
    /// the row that holds it (in flight on some frontend, or logged). Of several frontends
    /// reserving one id at the same instant, exactly one gets `Ok(None)`. Prunes ids beyond the
    /// window.
    ///
    /// # Errors
    /// Backend errors (nothing is reserved as far as the caller knows: fail closed).
    fn reserve_request_id(
        &self,
        claim: &RequestIdClaim<'_>,
    ) -> Result<Option<RequestIdRow>, StorageError>;

    /// The row of a request id, if it is in the window.
    ///
    /// # Errors
    /// Backend errors.
    fn request_id(&self, key: &[u8; 32]) -> Result<Option<RequestIdRow>, StorageError>;

    /// Record `index` and `salt` as the entry last logged for the id, durably (a no-op when the
    /// id left the window).
    ///
    /// # Errors
    /// Backend errors.
    fn complete_request_id(
        &self,
        key: &[u8; 32],
        index: LeafIndex,
        salt: &[u8; 32],
    ) -> Result<(), StorageError>;

    /// Delete the in-flight reservation `token` of an id (a request that logged nothing), so
    /// that a retry is decided anew; a no-op for a logged id or another reservation.
    ///
    /// # Errors
    /// Backend errors.
    fn release_request_id(&self, key: &[u8; 32], token: &[u8; 16]) -> Result<(), StorageError>;

    /// Take the lock that serialises policy registrations across every frontend, waiting up to
    /// the operation timeout; it is held until the returned guard is dropped, or the process
    /// dies. While it is held no other frontend registers, so an interrupted registration found
    /// then is nobody's in flight (`policy-statement.md` §8).
    ///
    /// # Errors
    /// Backend errors, or the lock not taken within the timeout (nothing is registered).
    fn lock_registrations(&self) -> Result<Box<dyn Send + Sync>, StorageError>;
}
