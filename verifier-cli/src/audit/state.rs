//! The auditor's persisted state: the last checkpoint it verified, in `--state DIR/checkpoint`.

use std::path::{Path, PathBuf};

use crate::error::CliError;
use crate::files::{read_limited, MAX_TEXT_FILE};

/// The persisted state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Use `dir` (created on save if missing).
    pub fn new(dir: &Path) -> Self {
        StateDir {
            dir: dir.to_owned(),
        }
    }

    fn file(&self) -> PathBuf {
        self.dir.join("checkpoint")
    }

    /// The last verified signed checkpoint note, if any.
    ///
    /// # Errors
    /// [`CliError::Input`] when it exists but cannot be read.
    pub fn load(&self) -> Result<Option<Vec<u8>>, CliError> {
        let f = self.file();
        if !f.exists() {
            return Ok(None);
        }
        read_limited(&f, MAX_TEXT_FILE).map(Some)
    }

    /// Persist `note` atomically (write a temporary file, then rename).
    ///
    /// # Errors
    /// [`CliError::Input`] on I/O failure.
    pub fn save(&self, note: &[u8]) -> Result<(), CliError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| CliError::input(self.dir.display(), e))?;
        let tmp = self.dir.join("checkpoint.tmp");
        std::fs::write(&tmp, note).map_err(|e| CliError::input(tmp.display(), e))?;
        std::fs::rename(&tmp, self.file()).map_err(|e| CliError::input(self.dir.display(), e))
    }
}
