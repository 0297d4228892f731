//! Bounded file reads: the verifier reads hostile input, so no file is read past its limit.

use std::io::Read as _;
use std::path::Path;

use crate::error::CliError;

/// Limit for checkpoint and key/policy files (a signed note is at most 1 MiB).
pub const MAX_TEXT_FILE: usize = verdict_core::note::MAX_NOTE_SIZE;
/// Limit for a raw canonical action file.
pub const MAX_ACTION_FILE: usize = 1 << 20;

/// The result of a bounded read: the bytes, or the fact that the file exceeded `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bounded {
    /// The whole file, at most `limit` bytes.
    Complete(Vec<u8>),
    /// The file holds more than `limit` bytes; the first `limit + 1` are kept.
    TooLarge(Vec<u8>),
}

/// Read at most `limit + 1` bytes of `path`, telling whether the file was larger than `limit`.
///
/// # Errors
/// [`CliError::Input`] when the file cannot be opened or read.
pub fn read_bounded(path: &Path, limit: usize) -> Result<Bounded, CliError> {
    let file = std::fs::File::open(path).map_err(|e| CliError::input(path.display(), e))?;
    let mut buf = Vec::new();
    let take = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    file.take(take)
        .read_to_end(&mut buf)
        .map_err(|e| CliError::input(path.display(), e))?;
    if buf.len() > limit {
        Ok(Bounded::TooLarge(buf))
    } else {
        Ok(Bounded::Complete(buf))
    }
}

/// Read a whole file of at most `limit` bytes; a larger file is an input error.
///
/// # Errors
/// [`CliError::Input`].
pub fn read_limited(path: &Path, limit: usize) -> Result<Vec<u8>, CliError> {
    match read_bounded(path, limit)? {
        Bounded::Complete(bytes) => Ok(bytes),
        Bounded::TooLarge(_) => Err(CliError::input(
            path.display(),
            format!("file exceeds the {limit}-byte limit"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_read_reports_oversize() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"12345").unwrap();
        assert_eq!(
            read_bounded(&p, 5).unwrap(),
            Bounded::Complete(b"12345".to_vec())
        );
        assert_eq!(
            read_bounded(&p, 4).unwrap(),
            Bounded::TooLarge(b"12345".to_vec())
        );
        assert!(read_limited(&p, 4).is_err());
        assert!(read_limited(&dir.path().join("missing"), 4).is_err());
    }
}
