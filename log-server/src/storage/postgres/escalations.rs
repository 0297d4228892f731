//! The escalation records of a PostgreSQL store (table `verdict_escalations`; spec
//! `spec/storage-postgres.md`): read one, read all, and the compare-and-swap write.

use crate::storage::{EscalationEntry, StorageError};

use super::convert::{get, pg, pool_error};
use super::PostgresStorage;

impl PostgresStorage {
    /// The escalation record `id`, if any.
    ///
    /// # Errors
    /// Backend errors.
    pub(super) fn read_escalation(&self, id: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let pool = self.pool.clone();
        let id = id.to_vec();
        self.block("read escalation", async move {
            let op = "read escalation";
            let client = pool.get().await.map_err(pool_error(op))?;
            let row = client
                .query_opt(
                    "SELECT value FROM verdict_escalations WHERE id = $1",
                    &[&id],
                )
                .await
                .map_err(pg(op))?;
            row.map(|row| get(&row, 0, op)).transpose()
        })
    }

    /// Every escalation record, sorted by id (bytewise).
    ///
    /// # Errors
    /// Backend errors.
    pub(super) fn read_escalations(&self) -> Result<Vec<EscalationEntry>, StorageError> {
        let pool = self.pool.clone();
        self.block("read escalations", async move {
            let op = "read escalations";
            let client = pool.get().await.map_err(pool_error(op))?;
            let rows = client
                .query("SELECT id, value FROM verdict_escalations ORDER BY id", &[])
                .await
                .map_err(pg(op))?;
            rows.iter()
                .map(|row| Ok((get(row, 0, op)?, get(row, 1, op)?)))
                .collect()
        })
    }

    /// Compare-and-swap of an escalation record: writes `new` iff the current value equals
    /// `expected` (`None`: absent), durably; `Ok(false)` (and no change) otherwise.
    ///
    /// # Errors
    /// Backend errors.
    pub(super) fn cas_escalation(
        &self,
        id: &[u8],
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, StorageError> {
        let pool = self.pool.clone();
        let (id, expected, new) = (id.to_vec(), expected.map(<[u8]>::to_vec), new.to_vec());
        // Any frontend resolves escalations: the compare-and-swap below is the only guard.
        self.block("swap escalation", async move {
            let op = "swap escalation";
            let client = pool.get().await.map_err(pool_error(op))?;
            let changed = match expected {
                None => {
                    client
                        .execute(
                            "INSERT INTO verdict_escalations (id, value) VALUES ($1, $2) \
                             ON CONFLICT (id) DO NOTHING",
                            &[&id, &new],
                        )
                        .await
                }
                Some(expected) => {
                    client
                        .execute(
                            "UPDATE verdict_escalations SET value = $3 \
                             WHERE id = $1 AND value = $2",
                            &[&id, &expected, &new],
                        )
                        .await
                }
            }
            .map_err(pg(op))?;
            Ok(changed == 1)
        })
    }
}
