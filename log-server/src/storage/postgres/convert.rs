//! Conversions between PostgreSQL values and the store's types, and the store's error values
//! (spec `spec/storage-postgres.md` §3: every client failure is [`StorageError::Backend`], a
//! malformed stored value [`StorageError::Corrupt`]).

use crate::storage::{StorageError, StoredTile};
use verdict_core::merkle::Hash;
use verdict_core::tile::{TileKind, TILE_WIDTH};

/// A backend error with a message of our own.
pub(crate) fn failed(op: &'static str, message: &'static str) -> StorageError {
    StorageError::Backend {
        op,
        source: message.into(),
    }
}

pub(super) fn pg(op: &'static str) -> impl Fn(tokio_postgres::Error) -> StorageError {
    move |source| StorageError::Backend {
        op,
        source: explained(source),
    }
}

pub(super) fn pool_error(
    op: &'static str,
) -> impl Fn(deadpool_postgres::PoolError) -> StorageError {
    move |source| StorageError::Backend {
        op,
        source: explained(source),
    }
}

/// A client error whose message carries its causes: `tokio-postgres` prints only the outermost
/// ("error performing TLS handshake", "db error"), which does not tell an operator why.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(super) struct Explained {
    message: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

fn explained(
    error: impl std::error::Error + Send + Sync + 'static,
) -> Box<dyn std::error::Error + Send + Sync> {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = c.source();
    }
    Box::new(Explained {
        message,
        source: Box::new(error),
    })
}

pub(super) fn corrupt(what: &'static str, reason: &'static str) -> StorageError {
    StorageError::Corrupt { what, reason }
}

/// An index or size as a PostgreSQL `bigint`.
pub(super) fn to_i64(value: u64) -> Result<i64, StorageError> {
    i64::try_from(value).map_err(|_| corrupt("index", "beyond the range of bigint"))
}

/// A stored `bigint` as an index or size.
pub(super) fn to_u64(what: &'static str, value: i64) -> Result<u64, StorageError> {
    u64::try_from(value).map_err(|_| corrupt(what, "negative"))
}

/// The `level` column of a tile: hash tile level 0..=7, entry bundle -1.
pub(super) fn level_of(kind: TileKind) -> i16 {
    match kind {
        TileKind::Hashes { level } => i16::from(level),
        TileKind::Entries => -1,
    }
}

pub(super) fn kind_of(level: i16) -> Result<TileKind, StorageError> {
    match level {
        -1 => Ok(TileKind::Entries),
        0..=7 => u8::try_from(level)
            .map(|level| TileKind::Hashes { level })
            .map_err(|_| corrupt("tile row", "bad level")),
        _ => Err(corrupt("tile row", "bad level")),
    }
}

/// A stored tile row, checked like a tile write (width 1..=256, hash tiles `width * 32` bytes).
pub(super) fn stored_tile(
    kind: TileKind,
    width: i32,
    bytes: Vec<u8>,
) -> Result<StoredTile, StorageError> {
    let width = u16::try_from(width)
        .ok()
        .filter(|w| (1..=TILE_WIDTH).contains(w))
        .ok_or(corrupt("tile row", "bad width"))?;
    if matches!(kind, TileKind::Hashes { .. }) && bytes.len() != usize::from(width) * Hash::LEN {
        return Err(corrupt("tile row", "hash tile length is not width * 32"));
    }
    Ok(StoredTile { width, bytes })
}

pub(super) fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a tokio_postgres::Row,
    column: usize,
    op: &'static str,
) -> Result<T, StorageError> {
    row.try_get(column).map_err(pg(op))
}
