//! The integrator lock (spec `spec/storage-postgres.md` §5): at most one `verdict-server` at a
//! time integrates a database's log; every other one is a frontend.
//!
//! The store holds a PostgreSQL session advisory lock ([`WRITER_LOCK`]) on a connection of its
//! own, outside the pool. A store that does not hold it tries again on that connection
//! ([`WriterGuard::try_take`], every `takeover_interval` from the sequencer). The lock session
//! runs with `idle_session_timeout = lock_timeout`, and the holder sends a heartbeat every
//! quarter of it: a holder that died releases the lock at once (its connection closes), one
//! that is paused or cut off from the database (no heartbeat) loses it when PostgreSQL ends its
//! idle session, after at most `lock_timeout`. Every integrator write first checks that the lock
//! connection is alive, and re-takes the lock (or fails) if it was dropped. This is a guard, not
//! a fence: a write already in flight when the lock is lost is not stopped by it; the publish
//! compare-and-swap, contiguous staging and immutable tiles refuse to fork the stored state.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use super::{failed, pg};
use crate::storage::StorageError;

/// Key of the session advisory lock held by the one integrating server ("verdict" + 2).
pub const WRITER_LOCK: i64 = 0x7665_7264_6963_7402;

/// The lock connection and whether it holds the lock.
struct LockConn {
    client: tokio_postgres::Client,
    held: bool,
}

/// The lock connection, shared by the store's calls. Cheap to clone.
#[derive(Clone)]
pub(super) struct WriterGuard {
    config: super::tls::PgConnect,
    lock_timeout: Duration,
    conn: Arc<Mutex<Option<LockConn>>>,
    /// Last known "holds the lock", for [`WriterGuard::is_held`] while the connection is busy.
    held: Arc<AtomicBool>,
    /// Incremented whenever the lock is taken anew: stops the heartbeat of an older holding.
    generation: Arc<AtomicU64>,
    /// Incremented for every new lock connection: an older one closing late changes nothing.
    connection: Arc<AtomicU64>,
}

impl WriterGuard {
    pub(super) fn new(config: super::tls::PgConnect, lock_timeout: Duration) -> Self {
        Self {
            config,
            lock_timeout,
            conn: Arc::new(Mutex::new(None)),
            held: Arc::new(AtomicBool::new(false)),
            generation: Arc::new(AtomicU64::new(0)),
            connection: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Make sure this store holds the lock (reconnecting and taking it again if its connection
    /// was dropped), or fail: called before every integrator write. Runs on the store's runtime.
    pub(super) async fn ensure(&self) -> Result<(), StorageError> {
        if self.try_take().await? {
            Ok(())
        } else {
            Err(held_elsewhere())
        }
    }

    /// Whether this store holds the lock, without a round trip.
    pub(super) fn is_held(&self) -> bool {
        match self.conn.try_lock() {
            Ok(slot) => slot
                .as_ref()
                .is_some_and(|c| c.held && !c.client.is_closed()),
            Err(_) => self.held.load(Ordering::Acquire),
        }
    }

    /// `Ok(true)` when this store holds the lock (taken now or before), `Ok(false)` when another
    /// session holds it.
    pub(super) async fn try_take(&self) -> Result<bool, StorageError> {
        let op = "take the integrator lock";
        let mut slot = self.conn.lock().await;
        if slot.as_ref().is_some_and(|c| c.client.is_closed()) {
            if slot.as_ref().is_some_and(|c| c.held) {
                tracing::warn!("postgres integrator-lock connection lost: no longer integrating");
            }
            *slot = None;
        }
        if let Some(conn) = slot.as_ref() {
            if conn.held {
                return Ok(true);
            }
        } else {
            let (client, connection) = self.config.connect().await.map_err(pg(op))?;
            let (held, current) = (Arc::clone(&self.held), Arc::clone(&self.connection));
            let mine = current.fetch_add(1, Ordering::AcqRel) + 1;
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(error = %error, "postgres integrator-lock connection closed: {error}");
                }
                if current.load(Ordering::Acquire) == mine {
                    held.store(false, Ordering::Release);
                }
            });
            // A holder that stops talking (paused, cut off) loses its session, hence the lock.
            let millis = self.lock_timeout.as_millis().max(1);
            client
                .batch_execute(&format!("SET idle_session_timeout = {millis}"))
                .await
                .map_err(pg(op))?;
            *slot = Some(LockConn {
                client,
                held: false,
            });
        }
        let Some(conn) = slot.as_mut() else {
            return Ok(false);
        };
        let row = conn
            .client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&WRITER_LOCK])
            .await
            .map_err(pg(op))?;
        let held: bool = row.try_get(0).map_err(pg(op))?;
        conn.held = held;
        self.held.store(held, Ordering::Release);
        if held {
            let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
            self.spawn_heartbeat(generation);
        }
        Ok(held)
    }

    /// While this holding lasts, run a query on the lock connection every quarter of the lock
    /// timeout, so that PostgreSQL ends the session only when this process stops talking.
    fn spawn_heartbeat(&self, generation: u64) {
        let guard = self.clone();
        let every = (self.lock_timeout / 4).max(Duration::from_millis(10));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if guard.generation.load(Ordering::Acquire) != generation {
                    return;
                }
                let mut slot = guard.conn.lock().await;
                let Some(conn) = slot.as_ref().filter(|c| c.held) else {
                    return;
                };
                let beat = tokio::time::timeout(every, conn.client.simple_query("SELECT 1")).await;
                if !matches!(beat, Ok(Ok(_))) {
                    // Give the lock up cleanly rather than keep a session that may be ended.
                    tracing::warn!("postgres integrator-lock heartbeat failed: releasing the lock");
                    *slot = None;
                    guard.held.store(false, Ordering::Release);
                    return;
                }
            }
        });
    }
}

fn held_elsewhere() -> StorageError {
    failed(
        "take the integrator lock",
        "another verdict-server is this database's integrator",
    )
}
