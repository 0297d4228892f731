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
//! under it. With several frontends on one database (spec `storage-postgres.md` §5), each
//! frontend's clock is its own: the guarantee holds per frontend, not across them (§5.5).

use std::sync::MutexGuard;

use tokio::sync::oneshot;
use verdict_core::merkle::leaf_hash;
use verdict_core::LeafIndex;

use super::{Integrated, Log, LogError, Sequenced};

/// A held entry clock with the time to stamp on one entry. Dropping it without
/// [`Stamp::submit`] releases the clock and logs nothing.
pub struct Stamp<'a> {
    log: &'a Log,
    last: MutexGuard<'a, u64>,
    time_ms: u64,
}

/// An entry handed to the sequencer, not yet acknowledged.
pub struct Queued {
    answer: oneshot::Receiver<Result<LeafIndex, LogError>>,
    proof: Option<(verdict_core::Hash, oneshot::Receiver<Integrated>)>,
    log: Log,
}

impl Log {
    /// Take the entry clock: the returned [`Stamp`] carries `max(now_ms, last stamped time)`.
    /// Hold it only to sign the entry and [`Stamp::submit`] it.
    pub fn stamp(&self, now_ms: u64) -> Stamp<'_> {
        let last = self
            .inner
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
        let mut last = self
            .inner
            .clock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *last = (*last).max(time_ms);
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
        mut self,
        entry: Vec<u8>,
        private: Option<Vec<u8>>,
        proof: bool,
    ) -> Result<Queued, LogError> {
        let leaf = leaf_hash(&entry);
        let (tx, rx) = if proof {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some((leaf, rx)))
        } else {
            (None, None)
        };
        let answer = self.log.enqueue(entry, private, tx)?;
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
        let index = self.answer.await.map_err(|_| LogError::ShuttingDown)??;
        let sequenced = self.proof.map(|(leaf, proof)| Sequenced {
            index,
            leaf,
            log: self.log.clone(),
            proof,
        });
        Ok((index, sequenced))
    }
}
