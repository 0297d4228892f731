//! Reading evidence packages (spec `evidence-package.md`): a directory or an uncompressed ustar
//! `.tar` with a manifest that lists every file with its SHA-256.
//!
//! Unlike the rest of this crate, this module reads files: a package is a file-system object.
//! It holds no network or async code. Memory does not grow with the period (issue 16,
//! "Scale"): files are read one at a time (the largest, an entry bundle, is at most 256 ×
//! 65,537 bytes), `records.jsonl` is streamed line by line, entries are iterated bundle by
//! bundle, and the manifest's file list (one entry bundle per 256 entries) stays on disk: it is
//! scanned, streaming, and indexed by one entry per 64 files, whose blocks are re-read (digest
//! checked) when a file is looked up. A directory is walked one listing at a time and a tar one
//! header at a time, each merged with the sorted list.
//!
//! - [`Package::open`] scans and validates `manifest.json` (spec §2) and checks that the
//!   package holds exactly the listed files (no unlisted file, none missing, no symlink);
//!   [`Package::files`] streams the list;
//! - [`Package::read`] returns a file's bytes after checking its size and SHA-256;
//!   [`Package::verify_files`] checks every listed file;
//! - [`Package::records`] streams `records.jsonl` (spec §5), [`Package::entries`] the log
//!   entries of the entry range (spec §4.1) from the entry bundles;
//! - [`PackageTiles`], [`entry_range`] and [`CompactRange`] say which tiles a package holds and
//!   recompute the checkpoint's root from them (spec §4.2);
//! - [`write_manifest`] lists a directory package in its `manifest.json`, and [`write_tar`]
//!   packs it into the tar form (spec §8).

mod canonical;
mod entry;
mod manifest;
mod range;
mod records;
mod source;

pub use canonical::{canonical_json, parse_canonical};
pub use entry::entry_time_ms;
pub use manifest::{
    parse_time_ms, FileEntry, Manifest, ManifestHead, Period, FORMAT, MANIFEST, MAX_MANIFEST_LEN,
};
pub use range::{entry_range, outside_subtrees, CompactRange, PackageTiles, Subtrees};
pub use records::{RecordLine, Records, MAX_RECORD_LINE};
pub use source::{write_manifest, write_tar, Entries, Files, Package, MAX_FILE_LEN};

/// Errors reading a package. Every variant names the file (path inside the package) it is
/// about; [`PackageError::path`] returns it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageError {
    /// The package itself could not be opened (not a directory or tar, unreadable).
    #[error("cannot open package: {reason}")]
    Open {
        /// What went wrong.
        reason: String,
    },
    /// `manifest.json` is missing, malformed or not canonical (spec §2).
    #[error("manifest.json: {reason}")]
    Manifest {
        /// What was wrong.
        reason: String,
    },
    /// A path is not a valid package path, or a member is not a regular file.
    #[error("{path}: {reason}")]
    Path {
        /// The path.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// A file in the package is not listed in the manifest.
    #[error("{path}: file not listed in manifest.json")]
    Unlisted {
        /// The path.
        path: String,
    },
    /// A file listed in the manifest is not in the package.
    #[error("{path}: listed in manifest.json but missing")]
    Missing {
        /// The path.
        path: String,
    },
    /// A file's size or SHA-256 differs from the manifest.
    #[error("{path}: {reason}")]
    Digest {
        /// The path.
        path: String,
        /// What differs.
        reason: String,
    },
    /// A file's content is malformed (a record line, an entry bundle).
    #[error("{path}: {reason}")]
    Format {
        /// The path.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// A file could not be read.
    #[error("{path}: read error: {reason}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        reason: String,
    },
}

impl PackageError {
    /// The file the error is about (`manifest.json` for manifest errors, empty for
    /// [`PackageError::Open`]).
    pub fn path(&self) -> &str {
        match self {
            PackageError::Open { .. } => "",
            PackageError::Manifest { .. } => MANIFEST,
            PackageError::Path { path, .. }
            | PackageError::Unlisted { path }
            | PackageError::Missing { path }
            | PackageError::Digest { path, .. }
            | PackageError::Format { path, .. }
            | PackageError::Io { path, .. } => path,
        }
    }
}

/// Check a package path (spec §1): relative, `/`-separated, no empty, `.` or `..` segment, at
/// most 255 bytes, printable ASCII without `\`.
///
/// # Errors
/// [`PackageError::Path`].
pub fn check_path(path: &str) -> Result<(), PackageError> {
    let bad = |reason: &str| PackageError::Path {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if path.is_empty() || path.len() > 255 {
        return Err(bad("path is empty or longer than 255 bytes"));
    }
    if !path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') {
        return Err(bad("path holds a byte other than printable ASCII"));
    }
    if path
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(bad("path is absolute or has an empty, . or .. segment"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        for ok in ["checkpoint", "tile/0/x001/234.p/5", "policies/ab.json"] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "a//b",
            "../x",
            "a/./b",
            "a/",
            "a b",
            "a\\b",
            "é",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }
}
