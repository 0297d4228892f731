//! Versioned schema migrations of the PostgreSQL store (spec `spec/storage-postgres.md` §2).
//!
//! The SQL lives in `log-server/migrations/NNNN_name.sql`, compiled in. At open, in one
//! transaction under a transaction-scoped advisory lock (so that two servers starting together
//! migrate once): create `verdict_schema_version` if missing, read the highest applied version,
//! apply each newer migration and record it. A database whose version is newer than this
//! server's is refused (no downgrade).

use deadpool_postgres::Pool;

use super::{failed, pg, pool_error};
use crate::storage::StorageError;

/// One migration: version, description, SQL.
struct Migration {
    version: i32,
    description: &'static str,
    sql: &'static str,
}

/// Every migration, in order. Never edit an applied one: append.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "initial schema: log state, staged, private, tiles, policies, escalations",
        sql: include_str!("../../../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        description: "last staged entry time and the shared checkpoint lock in the log row",
        sql: include_str!("../../../migrations/0002_entry_time_and_lock.sql"),
    },
    Migration {
        version: 3,
        description: "request-id window shared by the frontends",
        sql: include_str!("../../../migrations/0003_request_ids.sql"),
    },
];

/// The schema version this server creates and understands.
pub const LATEST_VERSION: i32 = 3;

/// Key of the advisory lock held while migrating ("verdict" + 1, as an arbitrary constant).
const MIGRATION_LOCK: i64 = 0x7665_7264_6963_7401;

/// Bring the schema to [`LATEST_VERSION`]; returns it.
pub(super) async fn migrate(pool: Pool) -> Result<i32, StorageError> {
    let op = "migrate schema";
    let mut client = pool.get().await.map_err(pool_error(op))?;
    let tx = client.transaction().await.map_err(pg(op))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg(op))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS verdict_schema_version (\
             version     integer     PRIMARY KEY,\
             description text        NOT NULL,\
             applied_at  timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(pg(op))?;
    let row = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM verdict_schema_version",
            &[],
        )
        .await
        .map_err(pg(op))?;
    let current: i32 = row.try_get(0).map_err(pg(op))?;
    if current > LATEST_VERSION {
        return Err(failed(
            op,
            "the database schema is newer than this verdict-server (downgrade refused)",
        ));
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.batch_execute(migration.sql).await.map_err(pg(op))?;
        tx.execute(
            "INSERT INTO verdict_schema_version (version, description) VALUES ($1, $2)",
            &[&migration.version, &migration.description],
        )
        .await
        .map_err(pg(op))?;
        tracing::info!(
            schema.version = migration.version,
            "applied postgres migration {}: {}",
            migration.version,
            migration.description
        );
    }
    tx.commit().await.map_err(pg(op))?;
    Ok(LATEST_VERSION)
}
