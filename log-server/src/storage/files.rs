//! Full tiles as files: the immutable part of the log, kept out of sled.
//!
//! A full hash tile or entry bundle (width 256) never changes (spec `spec/tiles.md` §2, C2SP
//! tlog-tiles "Full tiles"), so [`crate::storage::sled::SledStorage`] stores it as one file, at its
//! C2SP tlog-tiles path under the store directory (`tile/<L>/<N>`, `tile/entries/<N>`, `N` in
//! the `x001/x234/067` form of spec `tiles.md` §3), and keeps nothing about it in sled. The file
//! holds exactly the tile bytes, so a static file server pointed at the store directory serves
//! the full tiles as C2SP tlog-tiles prescribes.
//!
//! Reading a file costs no process memory beyond the returned bytes (the kernel page cache holds
//! the rest), so the server's memory is bounded by its own caches whatever the log size. This
//! module only stores bytes; whether a file is part of the committed log, and intact, is decided
//! by the sled backend from the Merkle tree (see [`crate::storage::sled`]).
//!
//! # Writing (crash safety)
//! [`TileFiles::write_full`] writes each file to `tile-tmp/` first, fsyncs it, renames it into
//! place and then fsyncs every directory it renamed into (and every directory it created, in its
//! parent). Only after all of that returns does the caller commit the sled records that make the
//! file part of the log. Hence:
//! - a crash before the rename leaves a temporary file, which no read looks at; [`TileFiles::open`]
//!   deletes all of them;
//! - a crash after the rename but before the sled commit leaves a complete file that the
//!   committed tree does not cover yet. The tile's bytes follow from the durably staged entries,
//!   so the retry writes the same bytes: an existing file is compared byte for byte and accepted
//!   only if identical. A file that differs is never replaced: [`StorageError::TileConflict`]
//!   (fail closed).

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use verdict_core::tile::{Tile, TileKind, TILE_WIDTH};

use crate::storage::StorageError;

/// Directory (under the store directory) of temporary files being written.
const TMP_DIR: &str = "tile-tmp";
/// Largest full entry bundle: 256 entries of at most 65,535 bytes, each with a 2-byte length.
const MAX_BUNDLE_LEN: u64 = 256 * (2 + 65_535);
/// Length of a full hash tile: 256 hashes.
const HASH_TILE_LEN: u64 = 256 * 32;
/// At most this many files are written (and fsynced) in parallel.
const MAX_PARALLEL: usize = 16;

/// A full tile to write: kind, index and its bytes.
#[derive(Clone, Copy, Debug)]
pub struct FullTile<'a> {
    /// Hash tile level or entry bundle.
    pub kind: TileKind,
    /// Tile index `N`.
    pub index: u64,
    /// The tile bytes (a hash tile: 8,192 bytes; a bundle: 256 length-prefixed entries).
    pub bytes: &'a [u8],
}

/// The full-tile files of one store directory. See the module docs.
#[derive(Debug)]
pub struct TileFiles {
    root: PathBuf,
    tmp: PathBuf,
    counter: AtomicU64,
}

fn io_error(op: &'static str) -> impl Fn(std::io::Error) -> StorageError {
    move |source| StorageError::Backend {
        op,
        source: Box::new(source),
    }
}

/// A directory builder that creates with mode 0700 (issue 13: files at rest).
fn private_dir_builder() -> fs::DirBuilder {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(crate::at_rest::DIR_MODE);
    }
    builder
}

/// Options that create (or truncate) a file for writing with mode 0600 (issue 13).
fn private_file_options() -> fs::OpenOptions {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(crate::at_rest::FILE_MODE);
    }
    options
}

/// fsync a directory, so that entries created or renamed in it are durable.
fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("sync tile directory"))
}

/// Length bound of a full tile file of `kind`: exact for hash tiles, a maximum for bundles.
fn check_len(kind: TileKind, len: u64) -> Result<(), StorageError> {
    let ok = match kind {
        TileKind::Hashes { .. } => len == HASH_TILE_LEN,
        TileKind::Entries => len > 0 && len <= MAX_BUNDLE_LEN,
    };
    if ok {
        Ok(())
    } else {
        Err(StorageError::Corrupt {
            what: "tile file",
            reason: "wrong length",
        })
    }
}

impl TileFiles {
    /// Use `root` (the store directory) for full tiles: create `tile/` and `tile-tmp/` if
    /// missing and delete every temporary file a crash left in `tile-tmp/`.
    ///
    /// The caller must hold the store exclusively (sled's lock on the same directory), since
    /// temporary files of a running writer would be deleted too.
    ///
    /// # Errors
    /// [`StorageError::Backend`] when the directories cannot be created or cleaned.
    pub fn open(root: &Path) -> Result<Self, StorageError> {
        let files = Self {
            root: root.to_path_buf(),
            tmp: root.join(TMP_DIR),
            counter: AtomicU64::new(0),
        };
        files.ensure_dir(&root.join("tile"))?;
        files.ensure_dir(&files.tmp)?;
        for item in fs::read_dir(&files.tmp).map_err(io_error("list temporary tile files"))? {
            let item = item.map_err(io_error("list temporary tile files"))?;
            fs::remove_file(item.path()).map_err(io_error("remove temporary tile file"))?;
        }
        Ok(files)
    }

    /// The path of the full tile file of `kind` and `index` (C2SP tlog-tiles layout).
    pub fn path(&self, kind: TileKind, index: u64) -> PathBuf {
        self.root.join(
            Tile {
                kind,
                index,
                width: TILE_WIDTH,
            }
            .path(),
        )
    }

    /// Create `dir` and its missing parents (below the root), fsyncing each parent a directory
    /// was created in.
    fn ensure_dir(&self, dir: &Path) -> Result<(), StorageError> {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            if parent != self.root && parent.starts_with(&self.root) {
                self.ensure_dir(parent)?;
            }
            match private_dir_builder().create(dir) {
                Ok(()) => sync_dir(parent)?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_error("create tile directory")(e)),
            }
        }
        Ok(())
    }

    /// Durably write full tiles, each to its own file (see the module docs). On `Ok` every file
    /// exists with exactly the given bytes, and its name is durable in its directory.
    ///
    /// # Errors
    /// [`StorageError::TileConflict`] when a file already exists with other bytes (it is left
    /// alone); [`StorageError::Backend`] on I/O failure.
    pub fn write_full(&self, tiles: &[FullTile<'_>]) -> Result<(), StorageError> {
        let mut dirs = BTreeSet::new();
        for tile in tiles {
            let path = self.path(tile.kind, tile.index);
            if let Some(dir) = path.parent() {
                self.ensure_dir(dir)?;
                dirs.insert(dir.to_path_buf());
            }
        }
        let jobs: Vec<_> = tiles.iter().collect();
        parallel(&jobs, |tile| self.write_one(tile))?;
        let dirs: Vec<_> = dirs.into_iter().collect();
        parallel(&dirs, |dir| sync_dir(dir))
    }

    /// Write one file through a temporary file, or check the existing one.
    fn write_one(&self, tile: &FullTile<'_>) -> Result<(), StorageError> {
        let path = self.path(tile.kind, tile.index);
        let conflict = || StorageError::TileConflict {
            kind: tile.kind,
            index: tile.index,
        };
        match self.read_unchecked(tile.kind, &path) {
            Ok(Some(existing)) if existing == tile.bytes => return Ok(()),
            Ok(Some(_)) | Err(StorageError::Corrupt { .. }) => return Err(conflict()),
            Ok(None) => {}
            Err(error) => return Err(error),
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self.tmp.join(format!("{}-{n}", std::process::id()));
        let written = (|| {
            let mut file = private_file_options().open(&tmp)?;
            file.write_all(tile.bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        if let Err(error) = written {
            // Best effort: a leftover is ignored by reads and deleted on the next open.
            let _ = fs::remove_file(&tmp);
            return Err(io_error("write tile file")(error));
        }
        Ok(())
    }

    /// The bytes of a file, length-checked; `None` if it does not exist.
    fn read_unchecked(&self, kind: TileKind, path: &Path) -> Result<Option<Vec<u8>>, StorageError> {
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("open tile file")(e)),
        };
        let len = file.metadata().map_err(io_error("stat tile file"))?.len();
        check_len(kind, len)?;
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        // Read one byte past the expected length to notice a file that grew meanwhile.
        std::io::Read::by_ref(&mut file)
            .take(len.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(io_error("read tile file"))?;
        if u64::try_from(bytes.len()).ok() != Some(len) {
            return Err(StorageError::Corrupt {
                what: "tile file",
                reason: "length changed while reading",
            });
        }
        Ok(Some(bytes))
    }

    /// The bytes of the full tile file of `kind` and `index`, if it exists, length-checked
    /// (a hash tile: exactly 8,192 bytes; a bundle: 1 to 256 * 65,537 bytes). The caller checks
    /// the content against the tree.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] for a wrong length; [`StorageError::Backend`] on I/O failure.
    pub fn read_full(&self, kind: TileKind, index: u64) -> Result<Option<Vec<u8>>, StorageError> {
        self.read_unchecked(kind, &self.path(kind, index))
    }
}

/// Run `job` on every item, up to [`MAX_PARALLEL`] at a time (fsyncs overlap, so a batch of
/// tiles costs about one fsync latency instead of one per file). Returns the first error.
fn parallel<T: Sync>(
    items: &[T],
    job: impl Fn(&T) -> Result<(), StorageError> + Sync,
) -> Result<(), StorageError> {
    if items.len() <= 1 {
        return items.iter().try_for_each(&job);
    }
    let threads = items.len().min(MAX_PARALLEL);
    let job = &job;
    std::thread::scope(|scope| {
        let mut result = Ok(());
        let mut handles = Vec::with_capacity(threads);
        for t in 0..threads {
            let spawned = std::thread::Builder::new()
                .name("tile-writer".to_owned())
                .spawn_scoped(scope, move || {
                    items.iter().skip(t).step_by(threads).try_for_each(job)
                });
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(error) => {
                    result = Err(io_error("spawn tile writer")(error));
                    break;
                }
            }
        }
        for handle in handles {
            let outcome = handle.join().unwrap_or(Err(StorageError::Corrupt {
                what: "tile file writer",
                reason: "thread panicked",
            }));
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H0: TileKind = TileKind::Hashes { level: 0 };

    fn hash_tile(byte: u8) -> Vec<u8> {
        vec![byte; 256 * 32]
    }

    #[test]
    fn writes_at_the_c2sp_path_and_rewrites_only_identical_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let files = TileFiles::open(dir.path()).unwrap();
        let tile = hash_tile(7);
        let bundle = [0u8, 1, 9].repeat(256);
        files
            .write_full(&[
                FullTile {
                    kind: H0,
                    index: 1_234_067,
                    bytes: &tile,
                },
                FullTile {
                    kind: TileKind::Entries,
                    index: 3,
                    bytes: &bundle,
                },
            ])
            .unwrap();
        let path = dir.path().join("tile/0/x001/x234/067");
        assert_eq!(fs::read(&path).unwrap(), tile);
        assert_eq!(
            fs::read(dir.path().join("tile/entries/003")).unwrap(),
            bundle
        );
        assert_eq!(files.read_full(H0, 1_234_067).unwrap(), Some(tile.clone()));
        // Idempotent: the same bytes again (a retry after a crash before the record).
        let same = FullTile {
            kind: H0,
            index: 1_234_067,
            bytes: &tile,
        };
        files.write_full(&[same]).unwrap();
        // Other bytes are refused, and the file is left as it was.
        let other = hash_tile(8);
        let err = files
            .write_full(&[FullTile {
                bytes: &other,
                ..same
            }])
            .unwrap_err();
        assert!(matches!(
            err,
            StorageError::TileConflict {
                index: 1_234_067,
                ..
            }
        ));
        assert_eq!(fs::read(&path).unwrap(), tile);
        // Nothing is left in the temporary directory after successful writes.
        assert_eq!(fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(), 0);
    }

    #[test]
    fn open_deletes_temporary_leftovers_which_reads_never_see() {
        let dir = tempfile::tempdir().unwrap();
        let files = TileFiles::open(dir.path()).unwrap();
        // A crash mid-write: a torn temporary file, never renamed.
        let torn = dir.path().join(TMP_DIR).join("1234-0");
        fs::write(&torn, [1u8; 100]).unwrap();
        assert_eq!(files.read_full(H0, 0).unwrap(), None);
        drop(files);
        let files = TileFiles::open(dir.path()).unwrap();
        assert!(!torn.exists());
        // The tile can then be written normally.
        let tile = hash_tile(1);
        files
            .write_full(&[FullTile {
                kind: H0,
                index: 0,
                bytes: &tile,
            }])
            .unwrap();
        assert_eq!(files.read_full(H0, 0).unwrap(), Some(tile));
    }

    #[test]
    fn wrong_lengths_are_corrupt_and_damaged_files_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let files = TileFiles::open(dir.path()).unwrap();
        let tile = hash_tile(3);
        files
            .write_full(&[FullTile {
                kind: H0,
                index: 5,
                bytes: &tile,
            }])
            .unwrap();
        let path = files.path(H0, 5);
        // Truncated (a torn write that bypassed the rename): the length check catches it.
        fs::write(&path, &tile[..4096]).unwrap();
        assert!(matches!(
            files.read_full(H0, 5),
            Err(StorageError::Corrupt {
                reason: "wrong length",
                ..
            })
        ));
        // A damaged file is never overwritten, not even with the right bytes.
        for damaged in [
            &tile[..4096],
            &[&tile[..100], &[4], &tile[101..]].concat()[..],
        ] {
            fs::write(&path, damaged).unwrap();
            let err = files
                .write_full(&[FullTile {
                    kind: H0,
                    index: 5,
                    bytes: &tile,
                }])
                .unwrap_err();
            assert!(matches!(err, StorageError::TileConflict { .. }));
            assert_eq!(fs::read(&path).unwrap(), damaged);
        }
        // An empty bundle file is malformed.
        fs::create_dir_all(dir.path().join("tile/entries")).unwrap();
        fs::write(dir.path().join("tile/entries/000"), b"").unwrap();
        assert!(files.read_full(TileKind::Entries, 0).is_err());
    }

    #[test]
    fn many_tiles_are_written_in_parallel() {
        let dir = tempfile::tempdir().unwrap();
        let files = TileFiles::open(dir.path()).unwrap();
        let tiles: Vec<Vec<u8>> = (0..40u8).map(hash_tile).collect();
        let writes: Vec<FullTile<'_>> = tiles
            .iter()
            .zip(995u64..)
            .map(|(bytes, index)| FullTile {
                kind: H0,
                index,
                bytes,
            })
            .collect();
        files.write_full(&writes).unwrap();
        for (bytes, index) in tiles.iter().zip(995u64..) {
            assert_eq!(files.read_full(H0, index).unwrap().as_ref(), Some(bytes));
        }
        assert!(dir.path().join("tile/0/x001/034").is_file());
    }
}
