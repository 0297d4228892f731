//! Connection settings of the PostgreSQL store (spec `storage-postgres.md`).

use std::path::PathBuf;
use std::time::Duration;

#[cfg(doc)]
use super::PostgresStorage;
#[cfg(doc)]
use crate::storage::StorageError;

/// Connection settings of [`PostgresStorage`] (from `storage = "postgres"` in the server
/// configuration).
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// Connection URL (`postgresql://user:password@host:port/database`, or the key/value form),
    /// with libpq's `sslmode` and `sslrootcert` (spec §1.1).
    pub url: String,
    /// PEM file of the CA that signed the database's certificate (`postgres_ca_file`), when
    /// not given as `sslrootcert` in the URL.
    pub ca_file: Option<PathBuf>,
    /// Maximum connections in the pool.
    pub pool_size: usize,
    /// Bound on establishing one connection.
    pub connect_timeout: Duration,
    /// Bound on one storage call (waiting for a connection included); past it the call fails
    /// with [`StorageError::Backend`].
    pub op_timeout: Duration,
    /// How often a frontend tries to take the integrator lock (spec §5).
    pub takeover_interval: Duration,
    /// `idle_session_timeout` of the integrator-lock session: a paused or cut-off integrator
    /// loses the lock after at most this long (spec §5).
    pub lock_timeout: Duration,
    /// How often the published state and staging are polled besides `LISTEN` (spec §5).
    pub poll_interval: Duration,
}

impl std::fmt::Debug for PostgresConfig {
    // The URL may hold a password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &"<redacted>")
            .field("ca_file", &self.ca_file)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("op_timeout", &self.op_timeout)
            .field("takeover_interval", &self.takeover_interval)
            .field("lock_timeout", &self.lock_timeout)
            .field("poll_interval", &self.poll_interval)
            .finish()
    }
}

impl PostgresConfig {
    /// Defaults for `url`: 8 connections, 5 s to connect, 10 s per call; try the integrator
    /// lock every second, lose it after 5 s of silence, poll every 250 ms.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ca_file: None,
            pool_size: 8,
            connect_timeout: Duration::from_secs(5),
            op_timeout: Duration::from_secs(10),
            takeover_interval: Duration::from_secs(1),
            lock_timeout: Duration::from_secs(5),
            poll_interval: Duration::from_millis(250),
        }
    }
}
