//! The registration lock of a PostgreSQL store (spec `spec/storage-postgres.md` §5.4): policy
//! registrations are serialised across every frontend by a session advisory lock
//! ([`REGISTRATION_LOCK`]) held on a connection of its own for the length of one registration.
//!
//! The lock is taken with `pg_try_advisory_lock` in a loop (never a blocking
//! `pg_advisory_lock`, which could be granted after the caller gave up), bounded by the
//! operation timeout. Dropping the guard closes its connection, which releases the lock; so
//! does the death of the process holding it. Whoever takes the lock next therefore knows that no
//! other registration is under way, and may settle an interrupted one (`policy-statement.md` §8).

use std::time::Duration;

use super::convert::{get, pg};
use super::PostgresStorage;
use crate::storage::StorageError;

/// Key of the session advisory lock of policy registrations ("verdict" + 3).
pub const REGISTRATION_LOCK: i64 = 0x7665_7264_6963_7403;
/// Pause between two attempts at the lock.
const RETRY: Duration = Duration::from_millis(20);

/// A held registration lock: its own session, closed on drop.
struct Held {
    _client: tokio_postgres::Client,
}

impl PostgresStorage {
    pub(super) fn lock_registrations_now(&self) -> Result<Box<dyn Send + Sync>, StorageError> {
        let config = self.pg_config.clone();
        let handle = self.handle.clone();
        self.block("take the registration lock", async move {
            let op = "take the registration lock";
            let (client, connection) = config.connect().await.map_err(pg(op))?;
            // The connection ends when the client is dropped (the guard), closing the session.
            handle.spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(error = %error, "registration lock connection: {error}");
                }
            });
            loop {
                let row = client
                    .query_one("SELECT pg_try_advisory_lock($1)", &[&REGISTRATION_LOCK])
                    .await
                    .map_err(pg(op))?;
                if get::<bool>(&row, 0, op)? {
                    return Ok(Box::new(Held { _client: client }) as Box<dyn Send + Sync>);
                }
                tokio::time::sleep(RETRY).await;
            }
        })
    }
}
