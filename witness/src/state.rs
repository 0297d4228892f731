//! Durable witness state: for each origin, the latest checkpoint the witness cosigned, kept as
//! the signed note it publishes (log signature and the witness's cosignature). Spec:
//! `spec/witness.md` §6.
//!
//! Layout of the data directory:
//! - `checkpoints/<origin hash>`: the note, where `<origin hash>` is the lowercase hex SHA-256 of
//!   the origin ([`crate::protocol::origin_hash`]);
//! - `evidence/<origin hash>.<unix seconds>.<n>`: requests with a valid log signature that failed
//!   a consistency check (possible proof of log misbehaviour), kept as received.
//!
//! A write is durable when [`Store::save`] returns: temporary file, `fsync`, `rename` over the
//! old file, `fsync` of the directory. A crash leaves either the old or the new note, never a
//! torn one.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use verdict_core::checkpoint::Checkpoint;
use verdict_core::note::Note;

use crate::protocol::origin_hash;

/// Errors of the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file could not be read, written or synced.
    #[error("state {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A stored note does not parse: the witness refuses to cosign for that origin.
    #[error("state {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

/// The latest cosigned checkpoint of one origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The checkpoint body.
    pub checkpoint: Checkpoint,
    /// The note as stored (and published).
    pub note: Vec<u8>,
}

/// The state directory.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Store {
    /// Open (creating) the state directory `dir`.
    ///
    /// # Errors
    /// [`StateError::Io`].
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        for sub in ["checkpoints", "evidence"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(io(&p))?;
        }
        Ok(Store {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, origin: &str) -> PathBuf {
        self.dir.join("checkpoints").join(origin_hash(origin))
    }

    /// The stored note of the origin with hash `hash` (64 lowercase hex digits), for the
    /// monitoring endpoint. `Ok(None)` when none (or when `hash` is not such a hash).
    ///
    /// # Errors
    /// [`StateError::Io`].
    pub fn note_by_hash(&self, hash: &str) -> Result<Option<Vec<u8>>, StateError> {
        let valid =
            hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !valid {
            return Ok(None);
        }
        let path = self.dir.join("checkpoints").join(hash);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// The latest cosigned checkpoint of `origin`, if any.
    ///
    /// # Errors
    /// [`StateError::Io`]; [`StateError::Corrupt`] when the file does not parse or belongs to
    /// another origin.
    pub fn load(&self, origin: &str) -> Result<Option<Stored>, StateError> {
        let path = self.path(origin);
        let note = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let corrupt = |reason: String| StateError::Corrupt {
            path: path.clone(),
            reason,
        };
        let parsed = Note::parse(&note).map_err(|e| corrupt(e.to_string()))?;
        let checkpoint = Checkpoint::parse(&parsed.text).map_err(|e| corrupt(e.to_string()))?;
        if checkpoint.origin != origin {
            return Err(corrupt(format!("holds origin {:?}", checkpoint.origin)));
        }
        Ok(Some(Stored { checkpoint, note }))
    }

    /// Replace the note of `origin` durably (temporary file, fsync, rename, directory fsync).
    ///
    /// # Errors
    /// [`StateError::Io`]; the old note is then still in place.
    pub fn save(&self, origin: &str, note: &[u8]) -> Result<(), StateError> {
        let path = self.path(origin);
        let dir = self.dir.join("checkpoints");
        write_durably(&dir, &path, note)
    }

    /// Keep a rejected request as possible evidence of misbehaviour (best effort, durable).
    ///
    /// # Errors
    /// [`StateError::Io`].
    pub fn save_evidence(
        &self,
        origin: &str,
        now: u64,
        body: &[u8],
    ) -> Result<PathBuf, StateError> {
        let dir = self.dir.join("evidence");
        let stem = format!("{}.{now}", origin_hash(origin));
        let mut n = 0u32;
        let path = loop {
            let candidate = dir.join(format!("{stem}.{n}"));
            if !candidate.exists() {
                break candidate;
            }
            n = n.saturating_add(1);
            if n == u32::MAX {
                return Err(io(&candidate)(std::io::Error::other(
                    "too many evidence files",
                )));
            }
        };
        write_durably(&dir, &path, body)?;
        Ok(path)
    }
}

/// Write `bytes` to `path` in `dir` atomically and durably.
fn write_durably(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp"));
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io(path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.load("o").unwrap(), None);
        let root = verdict_core::merkle::empty_root().to_base64();
        let note = format!("o\n0\n{root}\n\n\u{2014} o AAAAAAAA\n");
        store.save("o", note.as_bytes()).unwrap();
        let got = store.load("o").unwrap().unwrap();
        assert_eq!(got.note, note.as_bytes());
        assert_eq!(got.checkpoint.size.0, 0);
        assert_eq!(
            store.note_by_hash(&origin_hash("o")).unwrap().unwrap(),
            note.as_bytes()
        );
        assert_eq!(store.note_by_hash("../x").unwrap(), None);
        // A note of another origin under this origin's name is refused.
        store.save("p", note.as_bytes()).unwrap();
        assert!(matches!(store.load("p"), Err(StateError::Corrupt { .. })));
        std::fs::write(store.path("o"), b"garbage").unwrap();
        assert!(matches!(store.load("o"), Err(StateError::Corrupt { .. })));
        let ev = store.save_evidence("o", 5, b"x").unwrap();
        let ev2 = store.save_evidence("o", 5, b"y").unwrap();
        assert_ne!(ev, ev2);
    }
}
