//! Request ids seen recently, for replay detection on `POST /v1/check` (see [`super::check`]):
//! a bounded FIFO window of id → (fingerprint of policy and action, logged index and salt).
//!
//! The window survives a restart: [`RequestIds::restore`] rebuilds it at start from the private
//! records of the newest entries, so a client that retries after a crash gets its logged entry
//! back instead of a second one.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use verdict_core::receipt::Salt;
use verdict_core::LeafIndex;

use super::private::PrivateRecord;
use super::ServiceError;
use crate::log::{Log, LogError};

#[derive(Clone, Debug)]
pub(crate) struct Seen {
    fingerprint: [u8; 32],
    done: Option<(LeafIndex, Salt)>,
}

/// The id table and its insertion order (for FIFO eviction).
type IdTable = (HashMap<String, Seen>, VecDeque<String>);

/// Recently seen request ids (bounded FIFO window).
#[derive(Debug)]
pub struct RequestIds {
    window: usize,
    inner: Mutex<IdTable>,
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
    pub(crate) completed: bool,
}

impl Drop for ReservationGuard<'_> {
    fn drop(&mut self) {
        if !self.completed {
            self.ids.release(&self.id);
        }
    }
}

impl RequestIds {
    /// A table remembering up to `window` ids.
    pub fn new(window: usize) -> Self {
        Self {
            window: window.max(1),
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, IdTable>, ServiceError> {
        self.inner
            .lock()
            .map_err(|_| ServiceError::internal("request id table poisoned"))
    }

    /// The fingerprint a seen id was first used with, if the id is in the window.
    pub(crate) fn fingerprint(&self, id: &str) -> Option<[u8; 32]> {
        self.lock().ok()?.0.get(id).map(|s| s.fingerprint)
    }

    pub(crate) fn reserve(
        &self,
        id: &str,
        fingerprint: [u8; 32],
        has_approvals: bool,
    ) -> Result<Reservation<'_>, ServiceError> {
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
                    completed: false,
                }))
            }
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
    pub(crate) fn logged(&self, id: &str) -> Option<LeafIndex> {
        self.lock().ok()?.0.get(id)?.done.map(|(index, _)| index)
    }

    pub(crate) fn complete(&self, id: &str, index: LeafIndex, salt: Salt) {
        if let Ok(mut guard) = self.inner.lock() {
            if let Some(seen) = guard.0.get_mut(id) {
                seen.done = Some((index, salt));
            }
        }
    }

    fn release(&self, id: &str) {
        if let Ok(mut guard) = self.inner.lock() {
            let (map, order) = &mut *guard;
            if map.get(id).is_some_and(|s| s.done.is_none()) {
                map.remove(id);
                order.retain(|x| x != id);
            }
        }
    }
}
