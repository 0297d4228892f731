//! The checkpoint lock: the last checkpoint the log signed, kept in a file outside the store
//! (spec `spec/checkpoint-lock.md`).
//!
//! It is the compare-and-swap point of the log (the model is sunlight's `LockBackend`): the
//! sequencer writes a new checkpoint here, durably, *before* it publishes it in the store or
//! serves it, and it never signs a checkpoint that is not consistent with the locked one
//! (RFC 9162 §2.1.4). At start the store must equal or extend the locked checkpoint, with the
//! consistency proven from the store's tiles; a store restored from an older backup, or one that
//! lost writes, is refused instead of forking the log.
//!
//! A write is: a temporary file beside the lock, `fsync`, `rename` over the lock, `fsync` of the
//! directory. A crash leaves either the old or the new lock, never a torn one.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use verdict_core::checkpoint::Checkpoint;
use verdict_core::note::{Verifier, MAX_NOTE_SIZE};

use super::LogError;
use crate::storage::StorageError;

/// The checkpoint lock file of one log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointLock {
    path: PathBuf,
}

/// A checkpoint read from the lock, with its signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockedCheckpoint {
    /// The signed note, verbatim.
    pub note: Vec<u8>,
    /// Its body.
    pub checkpoint: Checkpoint,
}

fn io_error(op: &'static str) -> impl Fn(std::io::Error) -> LogError {
    move |source| {
        LogError::Storage(StorageError::Backend {
            op,
            source: Box::new(source),
        })
    }
}

impl CheckpointLock {
    /// The lock at `path` (the file need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Path of the lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The locked checkpoint, verified with `verifier` (the log key), or `None` when there is no
    /// lock file yet.
    ///
    /// # Errors
    /// [`LogError::LockUnreadable`] when the file cannot be read, is too large, or does not hold
    /// a checkpoint signed by `verifier` for `origin`.
    pub fn read(
        &self,
        verifier: &Verifier,
        origin: &str,
    ) -> Result<Option<LockedCheckpoint>, LogError> {
        let unreadable = |reason: String| LogError::LockUnreadable {
            path: self.path.clone(),
            reason,
        };
        let note = match std::fs::read(&self.path) {
            Ok(note) => note,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unreadable(e.to_string())),
        };
        if note.len() > MAX_NOTE_SIZE {
            return Err(unreadable(
                "larger than a checkpoint note can be".to_owned(),
            ));
        }
        let verified =
            Checkpoint::open(&note, verifier, &[]).map_err(|e| unreadable(e.to_string()))?;
        let checkpoint = verified.checkpoint().clone();
        if checkpoint.origin != origin {
            return Err(unreadable(format!(
                "checkpoint of origin {:?}, not {origin:?}",
                checkpoint.origin
            )));
        }
        Ok(Some(LockedCheckpoint { note, checkpoint }))
    }

    /// Replace the lock with `note`, durably: temporary file, fsync, rename, directory fsync.
    ///
    /// # Errors
    /// [`LogError::Storage`] ([`StorageError::Backend`]) on any I/O error; the old lock is then
    /// still in place, or the new one is (if only the directory fsync failed).
    pub fn write(&self, note: &[u8]) -> Result<(), LogError> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "checkpoint.lock".to_owned());
        let tmp = dir.join(format!(".{name}.tmp"));
        let result = (|| {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                // Mode 0600 whatever the umask (issue 13: files at rest).
                use std::os::unix::fs::OpenOptionsExt as _;
                options.mode(crate::at_rest::FILE_MODE);
            }
            let mut file = options
                .open(&tmp)
                .map_err(io_error("checkpoint lock create"))?;
            file.write_all(note)
                .map_err(io_error("checkpoint lock write"))?;
            file.sync_all().map_err(io_error("checkpoint lock fsync"))?;
            drop(file);
            std::fs::rename(&tmp, &self.path).map_err(io_error("checkpoint lock rename"))?;
            std::fs::File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(io_error("checkpoint lock directory fsync"))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use verdict_core::merkle::{Hash, TreeSize};
    use verdict_core::note::Signer;

    use super::*;

    fn note(signer: &Signer, size: u64) -> Vec<u8> {
        Checkpoint {
            origin: signer.name().to_owned(),
            size: TreeSize(size),
            root: Hash([size as u8; 32]),
            extensions: Vec::new(),
        }
        .sign(signer)
        .unwrap()
    }

    #[test]
    fn write_then_read_and_refuse_foreign_or_damaged_locks() {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::generate("lock.test/log").unwrap();
        let lock = CheckpointLock::new(dir.path().join("checkpoint.lock"));
        assert_eq!(lock.read(&signer.verifier(), signer.name()).unwrap(), None);
        lock.write(&note(&signer, 5)).unwrap();
        lock.write(&note(&signer, 7)).unwrap();
        let read = lock
            .read(&signer.verifier(), signer.name())
            .unwrap()
            .unwrap();
        assert_eq!(read.checkpoint.size, TreeSize(7));
        assert_eq!(read.note, note(&signer, 7));
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        let other = Signer::generate("lock.test/log").unwrap();
        assert!(matches!(
            lock.read(&other.verifier(), other.name()),
            Err(LogError::LockUnreadable { .. })
        ));
        assert!(matches!(
            lock.read(&signer.verifier(), "lock.test/other"),
            Err(LogError::LockUnreadable { .. })
        ));
        let mut bytes = std::fs::read(lock.path()).unwrap();
        bytes[2] ^= 1;
        std::fs::write(lock.path(), &bytes).unwrap();
        assert!(matches!(
            lock.read(&signer.verifier(), signer.name()),
            Err(LogError::LockUnreadable { .. })
        ));
    }
}
