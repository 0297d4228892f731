//! Several frontends on one database (spec `spec/storage-postgres.md` §5): appending at the end
//! of staging from any frontend, the integrator lock, and `LISTEN`/`NOTIFY` announcements.
//!
//! - [`SharedLog::stage_at_end`] locks the log row (`SELECT … FOR UPDATE`), so that concurrent
//!   appends from several frontends are serialised: each gets the next contiguous indices, and
//!   the order of commits is the log order. It `NOTIFY`s `verdict_log` in the same transaction
//!   (delivered at commit), which wakes the integrator.
//! - The integrator's publish `NOTIFY`s `verdict_log` after its compare-and-swap succeeded,
//!   which wakes every frontend.
//! - [`SharedLog::subscribe`] keeps one dedicated connection `LISTEN`ing on `verdict_log`,
//!   reconnecting after any loss (and calling `wake` then too, as announcements may have been
//!   missed); the sequencer also polls every `poll_interval`, so a lost announcement only delays.
//! - The log row also holds the last staged entry time (`last_time_ms`; a timed batch older
//!   than it is refused under the row lock, [`StorageError::StaleTime`]) and the shared
//!   checkpoint lock (`locked`, [`SharedLog::swap_lock`]; spec §5.4, §5.6).

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::AsyncMessage;
use verdict_core::merkle::LeafIndex;

use super::{corrupt, get, pg, pool_error, to_i64, to_u64, PostgresStorage};
use crate::storage::shared::{BatchTimes, RequestIdClaim, RequestIdRow, SharedLog};
use crate::storage::{StagedEntry, StorageError};

/// The `LISTEN`/`NOTIFY` channel.
const CHANNEL: &str = "verdict_log";
/// Pause before reconnecting a lost `LISTEN` connection.
const RECONNECT_DELAY: Duration = Duration::from_millis(200);

/// `NOTIFY` the frontends (best effort: they also poll).
pub(super) async fn announce(client: &tokio_postgres::Client, what: &str) {
    if let Err(error) = client
        .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &what])
        .await
    {
        tracing::debug!(error = %error, "NOTIFY {CHANNEL} failed (frontends poll): {error}");
    }
}

impl PostgresStorage {
    /// Append `batch` to staging in one transaction under the log-row lock (`SELECT … FOR
    /// UPDATE`), with its private records, and `NOTIFY` in the same transaction: at `expected`
    /// ([`crate::storage::Storage::stage`]: [`StorageError::NotContiguous`] when staging does
    /// not end there), or at the end of staging ([`SharedLog::stage_at_end`]). Returns the first
    /// index of the batch.
    pub(super) fn append_staged(
        &self,
        expected: Option<LeafIndex>,
        batch: &[StagedEntry],
        times: Option<BatchTimes>,
    ) -> Result<LeafIndex, StorageError> {
        let (first_ms, last_ms) = match times {
            Some(t) => (
                Some(to_i64(t.first_ms)?),
                to_i64(t.last_ms.max(t.first_ms))?,
            ),
            None => (None, 0),
        };
        let count = i64::try_from(batch.len()).map_err(|_| corrupt("batch", "too long"))?;
        let offsets: Vec<i64> = (0..count).collect();
        let entries: Vec<Vec<u8>> = batch.iter().map(|e| e.entry.clone()).collect();
        let (private_offsets, private): (Vec<i64>, Vec<Vec<u8>>) = offsets
            .iter()
            .zip(batch)
            .filter_map(|(offset, e)| e.private.clone().map(|p| (*offset, p)))
            .unzip();
        let pool = self.pool.clone();
        self.block("stage", async move {
            let op = "stage";
            let mut client = pool.get().await.map_err(pool_error(op))?;
            let tx = client.transaction().await.map_err(pg(op))?;
            let row = tx
                .query_opt(
                    "SELECT staged_size, last_time_ms FROM verdict_log WHERE id = 1 FOR UPDATE",
                    &[],
                )
                .await
                .map_err(pg(op))?
                .ok_or(corrupt("log row", "missing"))?;
            let start: i64 = get(&row, 0, op)?;
            let start_u64 = to_u64("staged size", start)?;
            let stored_ms: i64 = get(&row, 1, op)?;
            // Entry times never decrease in log order (spec §5.6): refuse, stage nothing.
            if first_ms.is_some_and(|first| first < stored_ms) {
                return Err(StorageError::StaleTime {
                    last_ms: to_u64("last entry time", stored_ms)?,
                });
            }
            if let Some(expected) = expected.filter(|e| e.0 != start_u64) {
                return Err(StorageError::NotContiguous {
                    staged_size: start_u64,
                    start: expected.0,
                });
            }
            let end = start
                .checked_add(count)
                .ok_or(corrupt("batch", "index overflow"))?;
            to_i64(to_u64("staged size", end)?)?;
            tx.execute(
                "INSERT INTO verdict_staged (idx, entry) \
                 SELECT $1 + o, e FROM unnest($2::bigint[], $3::bytea[]) AS t(o, e)",
                &[&start, &offsets, &entries],
            )
            .await
            .map_err(pg(op))?;
            if !private.is_empty() {
                tx.execute(
                    "INSERT INTO verdict_private (idx, record) \
                     SELECT $1 + o, r FROM unnest($2::bigint[], $3::bytea[]) AS t(o, r)",
                    &[&start, &private_offsets, &private],
                )
                .await
                .map_err(pg(op))?;
            }
            tx.execute(
                "UPDATE verdict_log SET staged_size = $1, \
                 last_time_ms = greatest(last_time_ms, $2) WHERE id = 1",
                &[&end, &last_ms],
            )
            .await
            .map_err(pg(op))?;
            tx.execute("SELECT pg_notify($1, 'staged')", &[&CHANNEL])
                .await
                .map_err(pg(op))?;
            tx.commit().await.map_err(pg(op))?;
            Ok(LeafIndex(start_u64))
        })
    }
}

impl SharedLog for PostgresStorage {
    fn stage_at_end(
        &self,
        batch: &[StagedEntry],
        times: Option<BatchTimes>,
    ) -> Result<LeafIndex, StorageError> {
        self.append_staged(None, batch, times)
    }

    fn last_time_ms(&self) -> Result<u64, StorageError> {
        let pool = self.pool.clone();
        self.block("read last entry time", async move {
            let op = "read last entry time";
            let client = pool.get().await.map_err(pool_error(op))?;
            let row = client
                .query_opt("SELECT last_time_ms FROM verdict_log WHERE id = 1", &[])
                .await
                .map_err(pg(op))?
                .ok_or(corrupt("log row", "missing"))?;
            to_u64("last entry time", get(&row, 0, op)?)
        })
    }

    fn lock(&self) -> Result<Option<Vec<u8>>, StorageError> {
        let pool = self.pool.clone();
        self.block("read checkpoint lock", async move {
            let op = "read checkpoint lock";
            let client = pool.get().await.map_err(pool_error(op))?;
            let row = client
                .query_opt("SELECT locked FROM verdict_log WHERE id = 1", &[])
                .await
                .map_err(pg(op))?
                .ok_or(corrupt("log row", "missing"))?;
            get(&row, 0, op)
        })
    }

    fn swap_lock(&self, expected: Option<&[u8]>, new: &[u8]) -> Result<(), StorageError> {
        let (new_size, new_root) = size_and_root(new)?;
        let (expected, new) = (expected.map(<[u8]>::to_vec), new.to_vec());
        let (pool, writer) = (self.pool.clone(), self.writer.clone());
        self.block("write checkpoint lock", async move {
            let op = "write checkpoint lock";
            writer.ensure().await?;
            let mut client = pool.get().await.map_err(pool_error(op))?;
            let tx = client.transaction().await.map_err(pg(op))?;
            let row = tx
                .query_opt(
                    "SELECT locked FROM verdict_log WHERE id = 1 FOR UPDATE",
                    &[],
                )
                .await
                .map_err(pg(op))?
                .ok_or(corrupt("log row", "missing"))?;
            let stored: Option<Vec<u8>> = get(&row, 0, op)?;
            if stored.as_deref() == Some(new.as_slice()) {
                return Ok(());
            }
            let stored_sr = stored.as_deref().map(size_and_root).transpose()?;
            let refused = |reason| StorageError::LockRefused {
                stored_size: stored_sr.map(|(size, _)| size),
                new_size,
                reason,
            };
            match stored_sr {
                Some((size, root)) if size == new_size && root == new_root => return Ok(()),
                Some((size, _)) if size == new_size => {
                    return Err(refused("same size, another root"))
                }
                Some((size, _)) if size > new_size => {
                    return Err(refused("smaller than the stored lock"))
                }
                _ => {}
            }
            if stored != expected {
                return Err(refused("the stored lock is not the expected one"));
            }
            tx.execute("UPDATE verdict_log SET locked = $1 WHERE id = 1", &[&new])
                .await
                .map_err(pg(op))?;
            tx.commit().await.map_err(pg(op))?;
            Ok(())
        })
    }

    fn try_integrator(&self) -> Result<bool, StorageError> {
        let writer = self.writer.clone();
        self.block("take the integrator lock", async move {
            writer.try_take().await
        })
    }

    fn is_integrator(&self) -> bool {
        self.writer.is_held()
    }

    fn subscribe(&self, wake: Box<dyn Fn() + Send + Sync>) {
        let config = self.pg_config.clone();
        let wake: Arc<dyn Fn() + Send + Sync> = Arc::from(wake);
        self.handle.spawn(async move {
            loop {
                if let Err(error) = listen(&config, &wake).await {
                    tracing::debug!(error = %error, "LISTEN {CHANNEL} connection lost: {error}");
                }
                // Announcements may have been missed while the connection was down.
                wake();
                tokio::time::sleep(RECONNECT_DELAY).await;
            }
        });
    }

    fn takeover_interval(&self) -> Duration {
        self.takeover_interval
    }

    fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    fn reserve_request_id(
        &self,
        claim: &RequestIdClaim<'_>,
    ) -> Result<Option<RequestIdRow>, StorageError> {
        self.reserve_id(claim)
    }

    fn request_id(&self, key: &[u8; 32]) -> Result<Option<RequestIdRow>, StorageError> {
        self.read_id(key)
    }

    fn complete_request_id(
        &self,
        key: &[u8; 32],
        index: LeafIndex,
        salt: &[u8; 32],
    ) -> Result<(), StorageError> {
        self.complete_id(key, index, salt)
    }

    fn release_request_id(&self, key: &[u8; 32], token: &[u8; 16]) -> Result<(), StorageError> {
        self.release_id(key, token)
    }

    fn lock_registrations(&self) -> Result<Box<dyn Send + Sync>, StorageError> {
        self.lock_registrations_now()
    }
}

/// Size and root of a checkpoint note (unverified: the sequencer verifies what it reads).
fn size_and_root(note: &[u8]) -> Result<(u64, verdict_core::Hash), StorageError> {
    let bad = || corrupt("checkpoint lock", "not a checkpoint note");
    let note = verdict_core::note::Note::parse(note).map_err(|_| bad())?;
    let checkpoint = verdict_core::checkpoint::Checkpoint::parse(&note.text).map_err(|_| bad())?;
    Ok((checkpoint.size.0, checkpoint.root))
}

/// One `LISTEN` connection: call `wake` on every notification until the connection ends.
async fn listen(
    config: &super::tls::PgConnect,
    wake: &Arc<dyn Fn() + Send + Sync>,
) -> Result<(), StorageError> {
    let op = "listen";
    let (client, mut connection) = config.connect().await.map_err(pg(op))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => {
                    if tx.send(()).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            }
        }
    });
    let listening = client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(pg(op));
    if listening.is_ok() {
        wake();
        while rx.recv().await.is_some() {
            // Coalesce a burst of notifications into one wake-up.
            while rx.try_recv().is_ok() {}
            wake();
        }
    }
    driver.abort();
    drop(client);
    listening
}
