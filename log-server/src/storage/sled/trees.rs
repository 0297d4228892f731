//! The open sled `Db` and its trees ([`Trees`]), the keys of their records and the conversion
//! of sled errors (spec `spec/storage.md`; module docs of [`super`]).

use std::path::Path;

use sled::transaction::TransactionError;
use verdict_core::tile::TileKind;

use crate::storage::StorageError;

/// One open sled `Db` and the trees of the module docs.
#[derive(Debug)]
pub(crate) struct Trees {
    pub(super) db: sled::Db,
    pub(crate) state: sled::Tree,
    pub(crate) staged: sled::Tree,
    pub(crate) private: sled::Tree,
    pub(crate) policies: sled::Tree,
    pub(crate) escalations: sled::Tree,
    pub(crate) tiles: sled::Tree,
    pub(crate) entries: sled::Tree,
}

impl Trees {
    /// Open the `Db` in `path`. sled 0.34 panics on some damaged files (e.g. "index out of
    /// bounds" on a truncated `db`): the panic is caught and reported as
    /// [`StorageError::Corrupt`], so that a damaged store is a clean refusal, not exit 101.
    pub(super) fn open(path: &Path, cache_bytes: u64) -> Result<Self, StorageError> {
        let config = sled::Config::new().path(path).cache_capacity(cache_bytes);
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(
            move || -> Result<Self, StorageError> {
                let db = config.open().map_err(backend("open"))?;
                let tree = |name: &str| db.open_tree(name).map_err(backend("open tree"));
                Ok(Self {
                    state: tree("state")?,
                    staged: tree("staged")?,
                    private: tree("private")?,
                    policies: tree("policies")?,
                    escalations: tree("escalations")?,
                    tiles: tree("tiles")?,
                    entries: tree("entries")?,
                    db,
                })
            },
        ));
        opened.unwrap_or(Err(StorageError::Corrupt {
            what: "sled store",
            reason: "sled panicked while opening it (damaged or truncated files)",
        }))
    }

    pub(super) fn tile_tree(&self, kind: TileKind) -> &sled::Tree {
        match kind {
            TileKind::Hashes { .. } => &self.tiles,
            TileKind::Entries => &self.entries,
        }
    }

    pub(super) fn flush(&self, op: &'static str) -> Result<(), StorageError> {
        self.db.flush().map(drop).map_err(backend(op))
    }
}

pub(super) fn backend(op: &'static str) -> impl Fn(sled::Error) -> StorageError {
    move |source| StorageError::Backend {
        op,
        source: Box::new(source),
    }
}

pub(super) fn tx_error(
    op: &'static str,
) -> impl Fn(TransactionError<StorageError>) -> StorageError {
    move |error| match error {
        TransactionError::Abort(error) => error,
        TransactionError::Storage(source) => StorageError::Backend {
            op,
            source: Box::new(source),
        },
    }
}

pub(super) fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

pub(super) fn hash_tile_key(level: u8, index: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    let (first, rest) = key.split_at_mut(1);
    first.copy_from_slice(&[level]);
    rest.copy_from_slice(&index.to_be_bytes());
    key
}

pub(super) fn decode_u64(what: &'static str, bytes: &[u8]) -> Result<u64, StorageError> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| StorageError::Corrupt {
            what,
            reason: "not 8 bytes",
        })
}
