//! Request ids seen recently, for replay detection on `POST /v1/check` (see [`super::check`]):
//! a bounded FIFO window of id → (fingerprint of policy and action, logged index and salt).
//!
//! The window survives a restart: [`RequestIds::restore`] rebuilds it at start from the private
//! records of the newest entries, so a client that retries after a crash gets its logged entry
//! back instead of a second one.
//!
//! On a store shared by several frontends (PostgreSQL, spec `storage-postgres.md` §5.4) the
//! window is the store's ([`crate::storage::shared::SharedLog::reserve_request_id`]): an id is
//! reserved by exactly one frontend, and a retry on any frontend finds the entry logged for it.
//! The store keeps a key derived from the id ([`key_of`]) and the fingerprint, never the id or
//! action text. A store error fails closed (503, nothing decided or logged).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};
use verdict_core::receipt::Salt;
use verdict_core::LeafIndex;

use super::private::PrivateRecord;
use super::ServiceError;
use crate::log::{Log, LogError};
use crate::storage::shared::{RequestIdClaim, RequestIdRow, SharedLog};
use crate::storage::{Storage, StorageError};

/// How long an in-flight request id stays reserved in a shared window by the frontend that took
/// it before another frontend may take it over (the first one crashed): far beyond any check
/// (the checker timeout, staging, waiting for integration across a takeover).
pub const IN_FLIGHT_LEASE: std::time::Duration = std::time::Duration::from_secs(120);

/// Domain separator of the key under which a shared store keeps a request id ([`key_of`]).
pub const KEY_PREFIX: &[u8] = b"verdict/request-id/v1\n";

/// The key of a request id in a shared store: `SHA-256("verdict/request-id/v1\n" ‖ id)`.
pub fn key_of(id: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(KEY_PREFIX);
    h.update(id.as_bytes());
    h.finalize().into()
}

#[derive(Clone, Debug)]
pub(crate) struct Seen {
    fingerprint: [u8; 32],
    done: Option<(LeafIndex, Salt)>,
}

/// The id table and its insertion order (for FIFO eviction).
type IdTable = (HashMap<String, Seen>, VecDeque<String>);

/// Recently seen request ids (bounded FIFO window), in memory or in a shared store.
pub struct RequestIds {
    window: usize,
    inner: Mutex<IdTable>,
    /// The store whose [`SharedLog`] holds the window (several frontends), if any.
    shared: Option<Arc<dyn Storage>>,
}

impl std::fmt::Debug for RequestIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestIds")
            .field("window", &self.window)
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

/// What to do with a request id.
pub(crate) enum Reservation<'a> {
    /// First use: a guard that releases the id unless the request completes.
    New(ReservationGuard<'a>),
    /// Same id and action, already logged: return that entry.
    Replay(LeafIndex, Salt),
    /// Same id and action with approvals: check again with the original salt.
    Resubmit(Salt),
}

/// Releases a reserved request id on drop unless completed.
pub(crate) struct ReservationGuard<'a> {
    ids: &'a RequestIds,
    id: String,
    /// The shared store's reservation token (random), if the window is shared.
    token: Option<[u8; 16]>,
    pub(crate) completed: bool,
}

impl Drop for ReservationGuard<'_> {
    fn drop(&mut self) {
        if !self.completed {
            self.ids.release(&self.id, self.token.as_ref());
        }
    }
}

/// A storage error of the shared window: unavailable (503), or internal for damaged data.
fn storage_error(e: StorageError) -> ServiceError {
    if e.is_integrity() {
        ServiceError::internal(e)
    } else {
        ServiceError::StorageUnavailable
    }
}

impl RequestIds {
    /// A table remembering up to `window` ids.
    pub fn new(window: usize) -> Self {
        Self {
            window: window.max(1),
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
            shared: None,
        }
    }

    /// The window of `log`: in the store when it is shared by several frontends
    /// ([`Storage::shared`]), in memory otherwise.
    pub fn for_log(window: usize, log: &Log) -> Self {
        let storage = log.storage();
        Self {
            shared: storage.shared().is_some().then(|| Arc::clone(storage)),
            ..Self::new(window)
        }
    }

    fn shared(&self) -> Option<&dyn SharedLog> {
        self.shared.as_deref().and_then(|s| s.shared())
    }

    fn row(&self, shared: &dyn SharedLog, id: &str) -> Result<Option<RequestIdRow>, ServiceError> {
        shared.request_id(&key_of(id)).map_err(storage_error)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, IdTable>, ServiceError> {
        self.inner
            .lock()
            .map_err(|_| ServiceError::internal("request id table poisoned"))
    }

    /// The fingerprint a seen id was first used with, if the id is in the window.
    ///
    /// # Errors
    /// Shared store errors.
    pub(crate) fn fingerprint(&self, id: &str) -> Result<Option<[u8; 32]>, ServiceError> {
        if let Some(shared) = self.shared() {
            return Ok(self.row(shared, id)?.map(|r| r.fingerprint));
        }
        Ok(self.lock()?.0.get(id).map(|s| s.fingerprint))
    }

    pub(crate) fn reserve(
        &self,
        id: &str,
        fingerprint: [u8; 32],
        has_approvals: bool,
    ) -> Result<Reservation<'_>, ServiceError> {
        if let Some(shared) = self.shared() {
            return self.reserve_shared(shared, id, fingerprint, has_approvals);
        }
        let mut guard = self.lock()?;
        let (map, order) = &mut *guard;
        match map.get(id) {
            Some(seen) if seen.fingerprint != fingerprint => Err(ServiceError::RequestIdConflict {
                request_id: id.to_owned(),
            }),
            Some(Seen { done: None, .. }) => Err(ServiceError::RequestIdConflict {
                request_id: id.to_owned(),
            }),
            Some(Seen {
                done: Some((index, salt)),
                ..
            }) => Ok(if has_approvals {
                Reservation::Resubmit(*salt)
            } else {
                Reservation::Replay(*index, *salt)
            }),
            None => {
                map.insert(
                    id.to_owned(),
                    Seen {
                        fingerprint,
                        done: None,
                    },
                );
                order.push_back(id.to_owned());
                while order.len() > self.window {
                    if let Some(old) = order.pop_front() {
                        map.remove(&old);
                    }
                }
                Ok(Reservation::New(ReservationGuard {
                    ids: self,
                    id: id.to_owned(),
                    token: None,
                    completed: false,
                }))
            }
        }
    }

    /// [`Self::reserve`] on the shared store: the same answers, from the one row every
    /// frontend sees.
    fn reserve_shared(
        &self,
        shared: &dyn SharedLog,
        id: &str,
        fingerprint: [u8; 32],
        has_approvals: bool,
    ) -> Result<Reservation<'_>, ServiceError> {
        let key = key_of(id);
        let mut token = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut token);
        let claim = RequestIdClaim {
            key: &key,
            fingerprint: &fingerprint,
            token: &token,
            window: u64::try_from(self.window).unwrap_or(u64::MAX),
            lease: IN_FLIGHT_LEASE,
        };
        let conflict = || ServiceError::RequestIdConflict {
            request_id: id.to_owned(),
        };
        match shared.reserve_request_id(&claim).map_err(storage_error)? {
            None => Ok(Reservation::New(ReservationGuard {
                ids: self,
                id: id.to_owned(),
                token: Some(token),
                completed: false,
            })),
            Some(row) if row.fingerprint != fingerprint => Err(conflict()),
            Some(RequestIdRow { logged: None, .. }) => Err(conflict()),
            Some(RequestIdRow {
                logged: Some((index, salt)),
                ..
            }) => Ok(if has_approvals {
                Reservation::Resubmit(Salt(salt))
            } else {
                Reservation::Replay(index, Salt(salt))
            }),
        }
    }

    /// Rebuild the window from the private records of the newest `window` entries of `log`
    /// (newest first: a later entry with the same id, a resubmission with approvals, wins), so
    /// that replay detection survives a restart. Entries staged but never acknowledged are
    /// restored too: they are in the log, so a retry is answered from it. A record that cannot be
    /// read as one is skipped with a warning (its id is then decided again if replayed). Returns
    /// the number of ids restored.
    ///
    /// # Errors
    /// Storage errors reading the private records.
    pub fn restore(&self, log: &Log) -> Result<usize, LogError> {
        if self.shared.is_some() {
            // The shared window is durable in the store: nothing to rebuild.
            return Ok(0);
        }
        let end = log.stats().staged_size;
        let start = end.saturating_sub(u64::try_from(self.window).unwrap_or(u64::MAX));
        let mut newest_first: Vec<(String, Seen)> = Vec::new();
        let mut seen_ids = std::collections::HashSet::new();
        for index in (start..end).rev() {
            let Some(bytes) = log.private_record(LeafIndex(index))? else {
                continue;
            };
            let parsed = serde_json::from_slice::<PrivateRecord<'_>>(&bytes)
                .ok()
                .and_then(|r| {
                    let commitment = hex::decode(&r.policy).ok()?;
                    let salt = Salt::from_hex(&r.salt).ok()?;
                    Some((r.request_id.into_owned(), commitment, r.action, salt))
                });
            let Some((id, commitment, action, salt)) = parsed else {
                tracing::warn!(
                    leaf.index = index,
                    "private record is not a decision record; its request id is not restored"
                );
                continue;
            };
            if !seen_ids.insert(id.clone()) {
                continue;
            }
            let fingerprint = super::action::fingerprint_of(&commitment, &action);
            newest_first.push((
                id,
                Seen {
                    fingerprint,
                    done: Some((LeafIndex(index), salt)),
                },
            ));
        }
        let restored = newest_first.len();
        let Ok(mut guard) = self.inner.lock() else {
            return Ok(0);
        };
        let (map, order) = &mut *guard;
        for (id, seen) in newest_first.into_iter().rev() {
            if map.insert(id.clone(), seen).is_none() {
                order.push_back(id);
            }
        }
        while order.len() > self.window {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
        Ok(restored)
    }

    /// The entry last logged for a seen id, if the id is in the window and completed.
    ///
    /// # Errors
    /// Shared store errors.
    pub(crate) fn logged(&self, id: &str) -> Result<Option<LeafIndex>, ServiceError> {
        if let Some(shared) = self.shared() {
            return Ok(self
                .row(shared, id)?
                .and_then(|r| r.logged)
                .map(|(index, _)| index));
        }
        Ok(self
            .lock()?
            .0
            .get(id)
            .and_then(|s| s.done)
            .map(|(index, _)| index))
    }

    /// Record the entry logged for `id`. On a shared store a failure is logged and otherwise
    /// ignored: the entry is logged already, and the id stays in flight until the lease ends
    /// (a retry meanwhile is 409; after it, decided again).
    pub(crate) fn complete(&self, id: &str, index: LeafIndex, salt: Salt) {
        if let Some(shared) = self.shared() {
            if let Err(error) = shared.complete_request_id(&key_of(id), index, &salt.0) {
                tracing::warn!(
                    leaf.index = index.0,
                    error = %error,
                    "recording the entry {} of a request id failed: {error}",
                    index.0
                );
            }
            return;
        }
        if let Ok(mut guard) = self.inner.lock() {
            if let Some(seen) = guard.0.get_mut(id) {
                seen.done = Some((index, salt));
            }
        }
    }

    fn release(&self, id: &str, token: Option<&[u8; 16]>) {
        if let (Some(shared), Some(token)) = (self.shared(), token) {
            if let Err(error) = shared.release_request_id(&key_of(id), token) {
                tracing::warn!(
                    error = %error,
                    "releasing a request id failed (it stays reserved until the lease ends): {error}"
                );
            }
            return;
        }
        if let Ok(mut guard) = self.inner.lock() {
            let (map, order) = &mut *guard;
            if map.get(id).is_some_and(|s| s.done.is_none()) {
                map.remove(id);
                order.retain(|x| x != id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_keys_are_domain_separated_hashes_of_the_id() {
        let key = key_of("req-1");
        assert_eq!(key, key_of("req-1"));
        assert_ne!(key, key_of("req-2"));
        let mut h = Sha256::new();
        h.update(b"verdict/request-id/v1\n");
        h.update(b"req-1");
        assert_eq!(key, <[u8; 32]>::from(h.finalize()));
        assert_ne!(key, <[u8; 32]>::from(Sha256::digest(b"req-1")));
    }

    #[test]
    fn the_memory_window_answers_replays_conflicts_and_in_flight_ids() {
        let ids = RequestIds::new(2);
        let Reservation::New(mut guard) = ids.reserve("a", [1; 32], false).unwrap() else {
            panic!("a fresh id is new");
        };
        assert!(matches!(
            ids.reserve("a", [1; 32], false),
            Err(ServiceError::RequestIdConflict { .. })
        ));
        ids.complete("a", LeafIndex(4), Salt([7; 32]));
        guard.completed = true;
        drop(guard);
        let Ok(Reservation::Replay(index, salt)) = ids.reserve("a", [1; 32], false) else {
            panic!("a logged id is replayed");
        };
        assert_eq!((index, salt), (LeafIndex(4), Salt([7; 32])));
        assert!(matches!(
            ids.reserve("a", [2; 32], false),
            Err(ServiceError::RequestIdConflict { .. })
        ));
        assert_eq!(ids.logged("a").unwrap(), Some(LeafIndex(4)));
        // A request that logged nothing releases its id.
        drop(ids.reserve("b", [1; 32], false).unwrap());
        assert!(ids.fingerprint("b").unwrap().is_none());
    }
}
