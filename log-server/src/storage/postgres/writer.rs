//! The writer guard (spec `spec/storage-postgres.md` §5): one `verdict-server` writes to a
//! database at a time.
//!
//! The store holds a PostgreSQL session advisory lock ([`WRITER_LOCK`]) on a connection of its
//! own, outside the pool. Opening a store fails while another holds it, and every write first
//! checks that the lock connection is still alive; if it was dropped (a terminated connection,
//! a server restart: PostgreSQL then releases the lock), the write reconnects and takes the lock
//! again, or fails with [`StorageError::Backend`] when another server took it meanwhile. This is
//! a guard against a second server started by mistake, not a fence: a write already in flight
//! when the lock connection drops is not stopped by it (the publish compare-and-swap and
//! contiguous staging still refuse a forked state).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tokio_postgres::NoTls;

use super::{failed, pg};
use crate::storage::StorageError;

/// Key of the session advisory lock held by the one writing server ("verdict" + 2).
pub const WRITER_LOCK: i64 = 0x7665_7264_6963_7402;

/// The lock connection, shared by the store's calls. Cheap to clone.
#[derive(Clone)]
pub(super) struct WriterGuard {
    config: tokio_postgres::Config,
    client: Arc<Mutex<Option<tokio_postgres::Client>>>,
}

impl WriterGuard {
    pub(super) fn new(config: tokio_postgres::Config) -> Self {
        Self {
            config,
            client: Arc::new(Mutex::new(None)),
        }
    }

    /// Make sure this store holds the writer lock (reconnecting and taking it again if its
    /// connection was dropped). Runs on the store's runtime.
    pub(super) async fn ensure(&self) -> Result<(), StorageError> {
        if self.try_take().await? {
            Ok(())
        } else {
            Err(held_elsewhere())
        }
    }

    /// As [`WriterGuard::ensure`], retrying for up to `wait` while another session holds the
    /// lock: a server restarted right after the previous one stopped (or was killed) waits for
    /// PostgreSQL to notice the old session is gone.
    pub(super) async fn ensure_within(&self, wait: Duration) -> Result<(), StorageError> {
        let deadline = Instant::now() + wait;
        loop {
            if self.try_take().await? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(held_elsewhere());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `Ok(true)` when this store holds the lock (taken now or before), `Ok(false)` when another
    /// session holds it.
    async fn try_take(&self) -> Result<bool, StorageError> {
        let op = "take the writer lock";
        let mut slot = self.client.lock().await;
        if slot.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(true);
        }
        *slot = None;
        let (client, connection) = self.config.connect(NoTls).await.map_err(pg(op))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(error = %error, "postgres writer-lock connection closed: {error}");
            }
        });
        let row = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&WRITER_LOCK])
            .await
            .map_err(pg(op))?;
        let held: bool = row.try_get(0).map_err(pg(op))?;
        if held {
            *slot = Some(client);
        }
        Ok(held)
    }
}

fn held_elsewhere() -> StorageError {
    failed(
        "take the writer lock",
        "another verdict-server holds this database's writer lock (run one server per database)",
    )
}
