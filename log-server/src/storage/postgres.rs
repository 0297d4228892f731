//! [`Storage`] on PostgreSQL (issue 18; spec `spec/storage-postgres.md`).
//!
//! Tables (created and migrated at open by [`schema`], versioned in `verdict_schema_version`):
//! `verdict_log` (one row: staged size, the published [`LogState`], and since version 2 the last
//! staged entry time and the shared checkpoint lock, spec §5.4, §5.6), `verdict_staged`,
//! `verdict_private`, `verdict_tiles` (hash tiles at levels 0..=7, entry bundles at level -1,
//! each as its widest version), `verdict_policies` and `verdict_escalations`.
//!
//! How the [`Storage`] contract holds here (spec §3):
//! - **Durable on return:** every write is one transaction, and a method returns `Ok` only after
//!   `COMMIT` answered (PostgreSQL's durability point with the default `synchronous_commit = on`).
//! - **Atomic:** one transaction per method; an error before `COMMIT` rolls it back. An error
//!   *while* committing (a connection dropped, a timeout) may or may not have committed: the
//!   "failed but persisted" case the contract already allows, after which the sequencer re-reads.
//! - **Compare-and-swap of the published state:** one `UPDATE … WHERE published IS NOT DISTINCT
//!   FROM $expected` on the encoded state; zero rows updated is [`StorageError::StateConflict`].
//! - **Tiles immutable:** `write_tiles` locks the rows it touches (`SELECT … FOR UPDATE`), merges
//!   with [`merge_tile`] (a change of stored bytes is [`StorageError::TileConflict`] and rolls the
//!   whole call back), then upserts.
//! - **Errors:** every PostgreSQL, pool or timeout failure is [`StorageError::Backend`] (the
//!   server answers 503 `storage_unavailable`); malformed stored values are
//!   [`StorageError::Corrupt`].
//! - **TLS** (spec §1.1): every connection (pool, integrator-lock session, `LISTEN`) is opened
//!   through [`tls`] with libpq's `sslmode`/`sslrootcert` ([`sslmode`]); `verify-full` by
//!   default for a database on another machine.
//! - **Several frontends** (spec §5): any number of servers share one database; each appends at
//!   the end of staging and one at a time, the holder of the integrator lock (`writer`),
//!   integrates and publishes (`frontends`, [`crate::storage::shared::SharedLog`]).
//!
//! The [`Storage`] trait is synchronous and is called from the sequencer thread, from
//! `spawn_blocking` and from tokio workers (reads). The client is async (`tokio-postgres` with a
//! `deadpool-postgres` pool), so the store runs its own small tokio runtime (threads
//! `verdict-postgres`): a call spawns its future there and waits for the answer, inside
//! `tokio::task::block_in_place` when the caller is a worker of a multi-thread runtime, so that the
//! caller's runtime moves its other tasks away instead of stalling. Every call is bounded by
//! [`PostgresConfig::op_timeout`].

mod config;
mod convert;
mod escalations;
mod frontends;
mod registrations;
mod request_ids;
mod schema;
pub mod sslmode;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tls;
mod writer;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use verdict_core::merkle::{LeafIndex, TreeSize};
use verdict_core::tile::TileKind;

use crate::storage::{
    check_tile_write, merge_tile, LogState, PolicyRecordEntry, StagedEntry, Storage, StorageError,
    StoredTile, TileWrite,
};

pub use registrations::REGISTRATION_LOCK;
pub use schema::LATEST_VERSION as SCHEMA_VERSION;
pub use writer::WRITER_LOCK;

pub use config::PostgresConfig;

pub use super::EscalationEntry;

/// PostgreSQL-backed storage. See the module docs.
pub struct PostgresStorage {
    pool: Pool,
    /// The writer guard: a connection holding the session advisory lock [`WRITER_LOCK`].
    writer: writer::WriterGuard,
    /// The store's own runtime; `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    op_timeout: Duration,
    /// Connection settings and TLS connector, for the `LISTEN` connection.
    pg_config: tls::PgConnect,
    takeover_interval: Duration,
    poll_interval: Duration,
}

impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStorage")
            .field("pool", &self.pool.status())
            .field("op_timeout", &self.op_timeout)
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresStorage {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which tokio forbids inside another runtime: let it wind
        // down in the background instead.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

use convert::{
    corrupt, failed, get, kind_of, level_of, pg, pool_error, stored_tile, to_i64, to_u64,
};

impl PostgresStorage {
    /// Connect, create or migrate the schema ([`SCHEMA_VERSION`]), and return the store.
    ///
    /// # Errors
    /// [`StorageError::Backend`] when the URL or its TLS settings (spec §1.1) do not parse,
    /// the CA file is unusable, the database cannot be reached (or its certificate is refused)
    /// within the timeouts, or its schema is newer than this server knows.
    pub fn open(config: &PostgresConfig) -> Result<Self, StorageError> {
        let mut connect =
            tls::PgConnect::new(&config.url, config.ca_file.as_deref()).map_err(|source| {
                StorageError::Backend {
                    op: "open",
                    source: Box::new(source),
                }
            })?;
        let pg_config = &mut connect.config;
        pg_config.connect_timeout(config.connect_timeout);
        if pg_config.get_application_name().is_none() {
            pg_config.application_name("verdict-server");
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("verdict-postgres")
            .enable_all()
            .build()
            .map_err(|source| StorageError::Backend {
                op: "start the postgres runtime",
                source: Box::new(source),
            })?;
        let writer = writer::WriterGuard::new(connect.clone(), config.lock_timeout);
        let manager = Manager::from_config(
            connect.config.clone(),
            connect.tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(config.op_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|source| StorageError::Backend {
                op: "build the postgres pool",
                source: Box::new(source),
            })?;
        let store = Self {
            pool,
            writer,
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            op_timeout: config.op_timeout,
            pg_config: connect,
            takeover_interval: config.takeover_interval,
            poll_interval: config.poll_interval,
        };
        let version = store.block("migrate schema", schema::migrate(store.pool.clone()))?;
        // Integrator or frontend (spec §5): another server holding the lock is no error.
        let writer = store.writer.clone();
        let integrator = store.block("take the integrator lock", async move {
            writer.try_take().await
        })?;
        tracing::info!(
            schema.version = version,
            integrator,
            "postgres store open, schema version {version}, {}",
            if integrator {
                "integrator"
            } else {
                "frontend (another server integrates)"
            }
        );
        Ok(store)
    }

    /// Run `fut` on the store's runtime and wait for it, bounded by the operation timeout.
    fn block<T: Send + 'static>(
        &self,
        op: &'static str,
        fut: impl Future<Output = Result<T, StorageError>> + Send + 'static,
    ) -> Result<T, StorageError> {
        let timeout = self.op_timeout;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let result = tokio::time::timeout(timeout, fut)
                .await
                .unwrap_or_else(|_| Err(failed(op, "timed out")));
            let _ = tx.send(result);
        });
        let wait = move || {
            rx.recv()
                .unwrap_or_else(|_| Err(failed(op, "the postgres runtime stopped")))
        };
        match tokio::runtime::Handle::try_current() {
            Ok(caller) if caller.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
    }
}
impl Storage for PostgresStorage {
    fn escalation(&self, id: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.read_escalation(id)
    }

    fn escalations(&self) -> Result<Vec<EscalationEntry>, StorageError> {
        self.read_escalations()
    }

    fn swap_escalation(
        &self,
        id: &[u8],
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, StorageError> {
        self.cas_escalation(id, expected, new)
    }

    fn staged_size(&self) -> Result<TreeSize, StorageError> {
        let pool = self.pool.clone();
        self.block("staged size", async move {
            let op = "staged size";
            let client = pool.get().await.map_err(pool_error(op))?;
            let row = client
                .query_opt("SELECT staged_size FROM verdict_log WHERE id = 1", &[])
                .await
                .map_err(pg(op))?
                .ok_or(corrupt("log row", "missing"))?;
            to_u64("staged size", get(&row, 0, op)?).map(TreeSize)
        })
    }

    fn stage(&self, start: LeafIndex, batch: &[StagedEntry]) -> Result<(), StorageError> {
        // Only the integrator stages at a given index; the transaction is the shared one.
        let writer = self.writer.clone();
        self.block("stage", async move { writer.ensure().await })?;
        self.append_staged(Some(start), batch, None).map(|_| ())
    }

    fn staged(&self, start: LeafIndex, end: LeafIndex) -> Result<Vec<Vec<u8>>, StorageError> {
        if end.0 <= start.0 {
            return Ok(Vec::new());
        }
        let (first, last) = (to_i64(start.0)?, to_i64(end.0)?);
        let pool = self.pool.clone();
        self.block("read staged", async move {
            let op = "read staged";
            let client = pool.get().await.map_err(pool_error(op))?;
            let rows = client
                .query(
                    "SELECT idx, entry FROM verdict_staged WHERE idx >= $1 AND idx < $2 \
                     ORDER BY idx",
                    &[&first, &last],
                )
                .await
                .map_err(pg(op))?;
            let mut out = Vec::with_capacity(rows.len());
            let mut rows = rows.iter();
            for index in start.0..end.0 {
                let missing = StorageError::Missing {
                    what: "staged entry",
                    index,
                };
                let row = rows.next().ok_or(missing)?;
                let found: i64 = get(row, 0, op)?;
                if to_u64("staged index", found)? != index {
                    return Err(StorageError::Missing {
                        what: "staged entry",
                        index,
                    });
                }
                out.push(get(row, 1, op)?);
            }
            Ok(out)
        })
    }

    fn prune_staged(&self, below: LeafIndex) -> Result<(), StorageError> {
        let below = to_i64(below.0)?;
        let pool = self.pool.clone();
        let writer = self.writer.clone();
        self.block("prune staged", async move {
            writer.ensure().await?;
            let op = "prune staged";
            let client = pool.get().await.map_err(pool_error(op))?;
            client
                .execute("DELETE FROM verdict_staged WHERE idx < $1", &[&below])
                .await
                .map_err(pg(op))?;
            Ok(())
        })
    }

    fn private_record(&self, index: LeafIndex) -> Result<Option<Vec<u8>>, StorageError> {
        let index = to_i64(index.0)?;
        let pool = self.pool.clone();
        self.block("read private", async move {
            let op = "read private";
            let client = pool.get().await.map_err(pool_error(op))?;
            let row = client
                .query_opt(
                    "SELECT record FROM verdict_private WHERE idx = $1",
                    &[&index],
                )
                .await
                .map_err(pg(op))?;
            row.map(|row| get(&row, 0, op)).transpose()
        })
    }

    fn write_tiles(&self, tiles: &[TileWrite]) -> Result<(), StorageError> {
        for write in tiles {
            check_tile_write(write)?;
            to_i64(write.index)?;
        }
        if tiles.is_empty() {
            return Ok(());
        }
        let tiles = tiles.to_vec();
        let pool = self.pool.clone();
        let writer = self.writer.clone();
        self.block("write tiles", async move {
            writer.ensure().await?;
            let op = "write tiles";
            let keys: std::collections::BTreeSet<(i16, i64)> = tiles
                .iter()
                .map(|w| Ok((level_of(w.kind), to_i64(w.index)?)))
                .collect::<Result<_, StorageError>>()?;
            let (levels, indices): (Vec<i16>, Vec<i64>) = keys.into_iter().unzip();
            let mut client = pool.get().await.map_err(pool_error(op))?;
            let tx = client.transaction().await.map_err(pg(op))?;
            let rows = tx
                .query(
                    "SELECT t.level, t.idx, t.width, t.bytes FROM verdict_tiles t \
                     JOIN unnest($1::smallint[], $2::bigint[]) AS k(level, idx) \
                     ON t.level = k.level AND t.idx = k.idx \
                     FOR UPDATE OF t",
                    &[&levels, &indices],
                )
                .await
                .map_err(pg(op))?;
            // The stored tiles, then every write merged in order (changed ones marked).
            let mut merged: BTreeMap<(i16, i64), (StoredTile, bool)> = BTreeMap::new();
            for row in &rows {
                let level: i16 = get(row, 0, op)?;
                let index: i64 = get(row, 1, op)?;
                let tile = stored_tile(kind_of(level)?, get(row, 2, op)?, get(row, 3, op)?)?;
                merged.insert((level, index), (tile, false));
            }
            for write in &tiles {
                let key = (level_of(write.kind), to_i64(write.index)?);
                if let Some(tile) = merge_tile(merged.get(&key).map(|(t, _)| t), write)? {
                    merged.insert(key, (tile, true));
                }
            }
            let mut levels = Vec::new();
            let mut indices = Vec::new();
            let mut widths = Vec::new();
            let mut bytes = Vec::new();
            for ((level, index), (tile, changed)) in merged {
                if changed {
                    levels.push(level);
                    indices.push(index);
                    widths.push(i32::from(tile.width));
                    bytes.push(tile.bytes);
                }
            }
            if !levels.is_empty() {
                tx.execute(
                    "INSERT INTO verdict_tiles (level, idx, width, bytes) \
                     SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::integer[], $4::bytea[]) \
                     ON CONFLICT (level, idx) DO UPDATE \
                     SET width = EXCLUDED.width, bytes = EXCLUDED.bytes",
                    &[&levels, &indices, &widths, &bytes],
                )
                .await
                .map_err(pg(op))?;
            }
            tx.commit().await.map_err(pg(op))
        })
    }

    fn read_tile(&self, kind: TileKind, index: u64) -> Result<Option<StoredTile>, StorageError> {
        let (level, index) = (level_of(kind), to_i64(index)?);
        let pool = self.pool.clone();
        self.block("read tile", async move {
            let op = "read tile";
            let client = pool.get().await.map_err(pool_error(op))?;
            let row = client
                .query_opt(
                    "SELECT width, bytes FROM verdict_tiles WHERE level = $1 AND idx = $2",
                    &[&level, &index],
                )
                .await
                .map_err(pg(op))?;
            row.map(|row| stored_tile(kind, get(&row, 0, op)?, get(&row, 1, op)?))
                .transpose()
        })
    }

    fn state(&self) -> Result<Option<LogState>, StorageError> {
        let pool = self.pool.clone();
        self.block("read state", async move {
            let op = "read state";
            let client = pool.get().await.map_err(pool_error(op))?;
            let row = client
                .query_opt("SELECT published FROM verdict_log WHERE id = 1", &[])
                .await
                .map_err(pg(op))?
                .ok_or(corrupt("log row", "missing"))?;
            let published: Option<Vec<u8>> = get(&row, 0, op)?;
            published.map(|bytes| LogState::decode(&bytes)).transpose()
        })
    }

    fn publish(&self, expected: Option<&LogState>, new: &LogState) -> Result<(), StorageError> {
        let old = expected.map(LogState::encode);
        let expected_size = expected.map(|s| s.size.0);
        let new = new.encode();
        let pool = self.pool.clone();
        let writer = self.writer.clone();
        self.block("publish", async move {
            writer.ensure().await?;
            let op = "publish";
            let client = pool.get().await.map_err(pool_error(op))?;
            let updated = client
                .execute(
                    "UPDATE verdict_log SET published = $2 \
                     WHERE id = 1 AND published IS NOT DISTINCT FROM $1::bytea",
                    &[&old, &new],
                )
                .await
                .map_err(pg(op))?;
            if updated == 1 {
                frontends::announce(&client, "published").await;
                return Ok(());
            }
            let row = client
                .query_opt("SELECT published FROM verdict_log WHERE id = 1", &[])
                .await
                .map_err(pg(op))?;
            let found = match row {
                Some(row) => get::<Option<Vec<u8>>>(&row, 0, op)?
                    .and_then(|bytes| LogState::decode(&bytes).ok())
                    .map(|s| s.size.0),
                None => None,
            };
            Err(StorageError::StateConflict {
                expected: expected_size,
                found,
            })
        })
    }

    /// Check that the database answers again (the pool replaces dropped connections by itself).
    fn recover(&self) -> Result<(), StorageError> {
        let pool = self.pool.clone();
        self.block("recover", async move {
            let op = "recover";
            let client = pool.get().await.map_err(pool_error(op))?;
            client.simple_query("SELECT 1").await.map_err(pg(op))?;
            Ok(())
        })
    }

    fn put_policy_record(&self, key: &[u8], value: Option<&[u8]>) -> Result<(), StorageError> {
        let (key, value) = (key.to_vec(), value.map(<[u8]>::to_vec));
        let pool = self.pool.clone();
        self.block("write policy record", async move {
            let op = "write policy record";
            let client = pool.get().await.map_err(pool_error(op))?;
            match value {
                Some(value) => client
                    .execute(
                        "INSERT INTO verdict_policies (key, value) VALUES ($1, $2) \
                         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                        &[&key, &value],
                    )
                    .await
                    .map_err(pg(op))?,
                None => client
                    .execute("DELETE FROM verdict_policies WHERE key = $1", &[&key])
                    .await
                    .map_err(pg(op))?,
            };
            Ok(())
        })
    }

    fn shared(&self) -> Option<&dyn crate::storage::shared::SharedLog> {
        Some(self)
    }

    fn policy_records(&self) -> Result<Vec<PolicyRecordEntry>, StorageError> {
        let pool = self.pool.clone();
        self.block("read policy records", async move {
            let op = "read policy records";
            let client = pool.get().await.map_err(pool_error(op))?;
            let rows = client
                .query("SELECT key, value FROM verdict_policies ORDER BY key", &[])
                .await
                .map_err(pg(op))?;
            rows.iter()
                .map(|row| Ok((get(row, 0, op)?, get(row, 1, op)?)))
                .collect()
        })
    }
}
