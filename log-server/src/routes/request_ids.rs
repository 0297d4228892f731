//! Request ids seen recently, for replay detection on `POST /v1/check` (see [`super::check`]):
//! a bounded FIFO window of id → (fingerprint of policy and action, logged index and salt).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use verdict_core::receipt::Salt;
use verdict_core::LeafIndex;

use crate::error::ApiError;
use crate::AppState;

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
pub(crate) enum Reservation {
    /// First use: a guard that releases the id unless the request completes.
    New(ReservationGuard),
    /// Same id and action, already logged: return that entry.
    Replay(LeafIndex, Salt),
    /// Same id and action with approvals: check again with the original salt.
    Resubmit(Salt),
}

/// Releases a reserved request id on drop unless completed.
pub(crate) struct ReservationGuard {
    ids: AppState,
    id: String,
    pub(crate) completed: bool,
}

impl Drop for ReservationGuard {
    fn drop(&mut self) {
        if !self.completed {
            self.ids.request_ids.release(&self.id);
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

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, IdTable>, ApiError> {
        self.inner
            .lock()
            .map_err(|_| ApiError::internal("request id table poisoned"))
    }

    pub(crate) fn reserve(
        &self,
        state: &AppState,
        id: &str,
        fingerprint: [u8; 32],
        has_approvals: bool,
    ) -> Result<Reservation, ApiError> {
        let mut guard = self.lock()?;
        let (map, order) = &mut *guard;
        match map.get(id) {
            Some(seen) if seen.fingerprint != fingerprint => Err(ApiError::RequestIdConflict {
                request_id: id.to_owned(),
            }),
            Some(Seen { done: None, .. }) => Err(ApiError::RequestIdConflict {
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
                    ids: state.clone(),
                    id: id.to_owned(),
                    completed: false,
                }))
            }
        }
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
