//! The entry clock: entry times never decrease in log order (spec `evidence-package.md` §3.1,
//! `receipt.md` §9), so a period of time is one range of log indices.
//!
//! A submitter takes a [`Stamp`] ([`Log::stamp`]): it holds the clock's lock and a time that is
//! `max(now, last stamped)`. The submitter signs its entry with that time and hands it to the
//! sequencer through [`Stamp::submit`], which releases the lock only after the entry is queued.
//! The sequencer stages entries in the order it receives them, so log order is stamp order and
//! times are non-decreasing. At start the server raises the clock to the time of the last entry
//! in the log ([`Log::raise_clock`]), so a wall clock that moved back (NTP, a restored VM) does not
//! break the order across a restart either.
//!
//! The lock is held for one signature and one channel send (microseconds); no `await` happens
//! under it.
//!
//! **Several frontends on one database** (spec `storage-postgres.md` §5.6, `receipt.md` §9).
//! Each frontend's clock is its own, so the store keeps the last staged entry time and refuses,
//! under its row lock, a batch whose first time is older
//! ([`crate::storage::StorageError::StaleTime`]). A submitter that can rebuild its entry at a
//! later time hands a [`Restamp`] with it ([`Stamp::submit_restampable`]): on a refusal the
//! sequencer raises this clock to the stored time, re-stamps and re-signs the entries of the
//! batch that are older than it (keeping their order), and stages again at once, a bounded
//! number of times. The submitter learns the final time and bytes from [`Staged::restamped`].
//! The sequencer also raises this clock from the stored time whenever it follows the shared
//! store, so refusals are rare.

use std::sync::MutexGuard;

use tokio::sync::oneshot;
use verdict_core::merkle::leaf_hash;
use verdict_core::LeafIndex;

use super::sequencer::Acked;
use super::{Integrated, Log, LogError, Sequenced};

/// Rebuilds and re-signs an entry at a later entry time (`time_ms`, ms since the epoch): the new
/// entry bytes, or `None` when it cannot (the batch then fails closed). Called on the sequencer
/// thread; it must not block.
pub type Restamp = Box<dyn FnMut(u64) -> Option<Vec<u8>> + Send>;

/// An entry the sequencer re-stamped before staging it (shared store, module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restamped {
    /// The entry time it now carries.
    pub time_ms: u64,
    /// The entry bytes staged (signed again with `time_ms`).
    pub entry: Vec<u8>,
}

/// A durably staged entry ([`Queued::staged`]).
#[derive(Debug)]
pub struct Staged {
    /// Its index.
    pub index: LeafIndex,
    /// With a proof requested, the handle to wait for its integration.
    pub sequenced: Option<Sequenced>,
    /// Set when the sequencer re-stamped the entry: the bytes in the log are these, not the ones
    /// submitted.
    pub restamped: Option<Restamped>,
}

/// A held entry clock with the time to stamp on one entry. Dropping it without
/// [`Stamp::submit`] releases the clock and logs nothing.
pub struct Stamp<'a> {
    log: &'a Log,
    last: MutexGuard<'a, u64>,
    time_ms: u64,
}

/// An entry handed to the sequencer, not yet acknowledged.
pub struct Queued {
    answer: oneshot::Receiver<Result<Acked, LogError>>,
    proof: Option<(verdict_core::Hash, oneshot::Receiver<Integrated>)>,
    log: Log,
}

impl Log {
    /// Take the entry clock: the returned [`Stamp`] carries `max(now_ms, last stamped time)`.
    /// Hold it only to sign the entry and [`Stamp::submit`] it.
    pub fn stamp(&self, now_ms: u64) -> Stamp<'_> {
        let last = self
            .inner
            .shared
            .clock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let time_ms = now_ms.max(*last);
        Stamp {
            log: self,
            last,
            time_ms,
        }
    }

    /// Raise the entry clock to at least `time_ms` (at start: the time of the last logged
    /// entry).
    pub fn raise_clock(&self, time_ms: u64) {
        raise(&self.inner.shared.clock, time_ms);
    }
}

impl Stamp<'_> {
    /// The time to put in the entry, ms since the Unix epoch.
    pub fn time_ms(&self) -> u64 {
        self.time_ms
    }

    /// Queue `entry` (signed with [`Stamp::time_ms`]) and its private record, then release the
    /// clock. With `proof`, the sequencer also hands over the entry's inclusion proof
    /// ([`Queued::sequenced`] returns a [`Sequenced`]).
    ///
    /// # Errors
    /// As [`Log::submit`], for what is checked before queueing (size, capacity, shutdown).
    pub fn submit(
        self,
        entry: Vec<u8>,
        private: Option<Vec<u8>>,
        proof: bool,
    ) -> Result<Queued, LogError> {
        self.submit_restampable(entry, private, proof, None)
    }

    /// As [`Stamp::submit`], with `restamp` to rebuild the entry at a later time if a shared
    /// store refuses its time (module docs).
    ///
    /// # Errors
    /// As [`Stamp::submit`].
    pub fn submit_restampable(
        mut self,
        entry: Vec<u8>,
        private: Option<Vec<u8>>,
        proof: bool,
        restamp: Option<Restamp>,
    ) -> Result<Queued, LogError> {
        let leaf = leaf_hash(&entry);
        let (tx, rx) = if proof {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some((leaf, rx)))
        } else {
            (None, None)
        };
        let answer = self
            .log
            .enqueue(entry, private, tx, Some((self.time_ms, restamp)))?;
        *self.last = self.time_ms;
        Ok(Queued {
            answer,
            proof: rx,
            log: self.log.clone(),
        })
    }
}

impl Queued {
    /// Wait until the entry is durably staged: its index, and with a proof requested, the
    /// [`Sequenced`] handle to wait for its integration.
    ///
    /// # Errors
    /// As [`Log::submit`].
    pub async fn sequenced(self) -> Result<(LeafIndex, Option<Sequenced>), LogError> {
        let staged = self.staged().await?;
        Ok((staged.index, staged.sequenced))
    }

    /// As [`Queued::sequenced`], and whether the sequencer re-stamped the entry.
    ///
    /// # Errors
    /// As [`Log::submit`].
    pub async fn staged(self) -> Result<Staged, LogError> {
        let Acked { index, restamped } =
            self.answer.await.map_err(|_| LogError::ShuttingDown)??;
        let sequenced = self.proof.map(|(leaf, proof)| Sequenced {
            index,
            // The proof is of the bytes in the log.
            leaf: restamped.as_ref().map_or(leaf, |r| leaf_hash(&r.entry)),
            log: self.log.clone(),
            proof,
        });
        Ok(Staged {
            index,
            sequenced,
            restamped,
        })
    }
}

/// Raise the entry clock `clock` to at least `time_ms`.
pub(crate) fn raise(clock: &std::sync::Mutex<u64>, time_ms: u64) {
    let mut last = clock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    *last = (*last).max(time_ms);
}
