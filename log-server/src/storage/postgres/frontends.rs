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

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::{AsyncMessage, NoTls};
use verdict_core::merkle::LeafIndex;

use super::{corrupt, get, pg, pool_error, to_i64, to_u64, PostgresStorage};
use crate::storage::shared::{RequestIdClaim, RequestIdRow, SharedLog};
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
    ) -> Result<LeafIndex, StorageError> {
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
                    "SELECT staged_size FROM verdict_log WHERE id = 1 FOR UPDATE",
                    &[],
                )
                .await
                .map_err(pg(op))?
                .ok_or(corrupt("log row", "missing"))?;
            let start: i64 = get(&row, 0, op)?;
            let start_u64 = to_u64("staged size", start)?;
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
                "UPDATE verdict_log SET staged_size = $1 WHERE id = 1",
                &[&end],
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
    fn stage_at_end(&self, batch: &[StagedEntry]) -> Result<LeafIndex, StorageError> {
        self.append_staged(None, batch)
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

/// One `LISTEN` connection: call `wake` on every notification until the connection ends.
async fn listen(
    config: &tokio_postgres::Config,
    wake: &Arc<dyn Fn() + Send + Sync>,
) -> Result<(), StorageError> {
    let op = "listen";
    let (client, mut connection) = config.connect(NoTls).await.map_err(pg(op))?;
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
