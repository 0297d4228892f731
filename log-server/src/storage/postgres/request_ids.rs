//! The request-id window shared by every frontend (table `verdict_request_ids`, migration 3;
//! spec `spec/storage-postgres.md` §5.4).
//!
//! - **Reserve** is one statement, `INSERT … ON CONFLICT (key) DO UPDATE … WHERE <in flight and
//!   older than the lease>`: PostgreSQL's unique index makes a second insert of the same key wait
//!   for the first transaction and then see the conflict, so of several frontends reserving one
//!   id at the same instant exactly one gets a row back. The others read the winner's row.
//! - **Prune:** the same statement deletes the rows more than `window` reservations older than
//!   the new one (`seq`), skipping rows another transaction holds (`SKIP LOCKED`), so two
//!   frontends pruning at once never wait on each other.
//! - **Complete** sets the logged index and salt; **release** deletes an in-flight row by its
//!   reservation token only.

use verdict_core::merkle::LeafIndex;

use super::convert::{corrupt, failed, get, pg, pool_error, to_i64, to_u64};
use super::PostgresStorage;
use crate::storage::shared::{RequestIdClaim, RequestIdRow};
use crate::storage::StorageError;

/// Attempts at reserve-or-read when the row found by a failed reservation vanished meanwhile
/// (released or pruned between the two statements).
const ATTEMPTS: usize = 8;

impl PostgresStorage {
    pub(super) fn reserve_id(
        &self,
        claim: &RequestIdClaim<'_>,
    ) -> Result<Option<RequestIdRow>, StorageError> {
        let key = claim.key.to_vec();
        let fingerprint = claim.fingerprint.to_vec();
        let token = claim.token.to_vec();
        let window = i64::try_from(claim.window.max(1)).unwrap_or(i64::MAX);
        let lease = claim.lease.as_secs_f64();
        let pool = self.pool.clone();
        self.block("reserve request id", async move {
            let op = "reserve request id";
            let client = pool.get().await.map_err(pool_error(op))?;
            for _ in 0..ATTEMPTS {
                let won = client
                    .query_opt(
                        "WITH ins AS ( \
                           INSERT INTO verdict_request_ids AS r (key, fingerprint, token) \
                           VALUES ($1, $2, $3) \
                           ON CONFLICT (key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, \
                             token = EXCLUDED.token, reserved_at = now(), \
                             seq = nextval('verdict_request_ids_order') \
                           WHERE r.idx IS NULL \
                             AND r.reserved_at < now() - make_interval(secs => $5::float8) \
                           RETURNING r.seq), \
                         pruned AS ( \
                           DELETE FROM verdict_request_ids WHERE key IN ( \
                             SELECT key FROM verdict_request_ids \
                             WHERE seq <= (SELECT seq FROM ins) - $4::bigint AND key <> $1 \
                             FOR UPDATE SKIP LOCKED)) \
                         SELECT seq FROM ins",
                        &[&key, &fingerprint, &token, &window, &lease],
                    )
                    .await
                    .map_err(pg(op))?;
                if won.is_some() {
                    return Ok(None);
                }
                if let Some(row) = read(&client, &key, op).await? {
                    return Ok(Some(row));
                }
            }
            Err(failed(op, "the request id's reservation keeps changing"))
        })
    }

    pub(super) fn read_id(&self, key: &[u8; 32]) -> Result<Option<RequestIdRow>, StorageError> {
        let key = key.to_vec();
        let pool = self.pool.clone();
        self.block("read request id", async move {
            let op = "read request id";
            let client = pool.get().await.map_err(pool_error(op))?;
            read(&client, &key, op).await
        })
    }

    pub(super) fn complete_id(
        &self,
        key: &[u8; 32],
        index: LeafIndex,
        salt: &[u8; 32],
    ) -> Result<(), StorageError> {
        let (key, salt, index) = (key.to_vec(), salt.to_vec(), to_i64(index.0)?);
        let pool = self.pool.clone();
        self.block("complete request id", async move {
            let op = "complete request id";
            let client = pool.get().await.map_err(pool_error(op))?;
            client
                .execute(
                    "UPDATE verdict_request_ids SET idx = $2, salt = $3 WHERE key = $1",
                    &[&key, &index, &salt],
                )
                .await
                .map_err(pg(op))?;
            Ok(())
        })
    }

    pub(super) fn release_id(&self, key: &[u8; 32], token: &[u8; 16]) -> Result<(), StorageError> {
        let (key, token) = (key.to_vec(), token.to_vec());
        let pool = self.pool.clone();
        self.block("release request id", async move {
            let op = "release request id";
            let client = pool.get().await.map_err(pool_error(op))?;
            client
                .execute(
                    "DELETE FROM verdict_request_ids \
                     WHERE key = $1 AND token = $2 AND idx IS NULL",
                    &[&key, &token],
                )
                .await
                .map_err(pg(op))?;
            Ok(())
        })
    }
}

async fn read(
    client: &tokio_postgres::Client,
    key: &Vec<u8>,
    op: &'static str,
) -> Result<Option<RequestIdRow>, StorageError> {
    let Some(row) = client
        .query_opt(
            "SELECT fingerprint, idx, salt FROM verdict_request_ids WHERE key = $1",
            &[key],
        )
        .await
        .map_err(pg(op))?
    else {
        return Ok(None);
    };
    let fingerprint: Vec<u8> = get(&row, 0, op)?;
    let fingerprint = <[u8; 32]>::try_from(fingerprint)
        .map_err(|_| corrupt("request id row", "fingerprint is not 32 bytes"))?;
    let index: Option<i64> = get(&row, 1, op)?;
    let salt: Option<Vec<u8>> = get(&row, 2, op)?;
    let logged = match (index, salt) {
        (Some(index), Some(salt)) => Some((
            LeafIndex(to_u64("request id index", index)?),
            <[u8; 32]>::try_from(salt)
                .map_err(|_| corrupt("request id row", "salt is not 32 bytes"))?,
        )),
        (None, None) => None,
        _ => return Err(corrupt("request id row", "index without salt")),
    };
    Ok(Some(RequestIdRow {
        fingerprint,
        logged,
    }))
}
