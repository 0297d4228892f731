//! File modes at rest (issue 13, operator guide "Data directory"): the data directory and every
//! directory the server creates are `0700`, and every file it writes is `0600`, whatever the
//! umask it was started with.
//!
//! Two measures, so that neither alone has to be complete:
//! - [`restrict_umask`] sets the process umask to `0o077` at start ([`crate::start`]), so files
//!   created by code we do not control (sled's `conf`, `db`, `blobs/`, `snap.*`) get no group or
//!   other bits;
//! - the server's own writes set the mode explicitly ([`FILE_MODE`] for key, token, tile and lock
//!   files; [`private_dir`] for directories), and [`restrict_tree`] brings an existing data
//!   directory (written by an earlier version, or under a looser umask) to the same modes when
//!   the server starts.

use std::path::Path;

/// Mode of every directory the server creates, the data directory included.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file the server writes.
pub const FILE_MODE: u32 = 0o600;
/// The process umask set by [`restrict_umask`].
pub const UMASK: u32 = 0o077;

/// Set the process umask to [`UMASK`], so that every file and directory created afterwards by
/// this process (by any library) has no group or other permission bits.
pub fn restrict_umask() {
    #[cfg(unix)]
    {
        use nix::sys::stat::{umask, Mode};
        let _previous = umask(Mode::from_bits_truncate(UMASK));
    }
}

/// Create `dir` (and missing parents) and set its mode to [`DIR_MODE`].
///
/// # Errors
/// The I/O error of creating it or changing its mode.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    set_mode(dir, DIR_MODE)
}

/// Set `path`'s mode to [`FILE_MODE`].
///
/// # Errors
/// The I/O error of changing its mode.
pub fn private_file(path: &Path) -> std::io::Result<()> {
    set_mode(path, FILE_MODE)
}

/// Bring the tree under `root` to the at-rest modes: directories [`DIR_MODE`], regular files
/// [`FILE_MODE`]. Symbolic links are neither followed nor changed. Returns the number of
/// entries whose mode was changed.
///
/// # Errors
/// The first I/O error (reading a directory, changing a mode).
pub fn restrict_tree(root: &Path) -> std::io::Result<usize> {
    let mut changed = 0usize;
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        // The store is open while this runs, and sled removes files of its own (old snapshots,
        // blobs) at any time: an entry gone between listing and chmod is skipped, not an error.
        match restrict_one(&path, &mut stack) {
            Ok(true) => changed = changed.saturating_add(1),
            Ok(false) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(changed)
}

/// Restrict one entry (listing a directory's children onto `stack`); whether its mode changed.
fn restrict_one(path: &Path, stack: &mut Vec<std::path::PathBuf>) -> std::io::Result<bool> {
    let meta = std::fs::symlink_metadata(path)?;
    let want = if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            match entry {
                Ok(entry) => stack.push(entry.path()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        DIR_MODE
    } else if meta.is_file() {
        FILE_MODE
    } else {
        return Ok(false);
    };
    if mode_of(&meta) == want {
        return Ok(false);
    }
    set_mode(path, want)?;
    Ok(true)
}

#[cfg(unix)]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_of(_meta: &std::fs::Metadata) -> u32 {
    0
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn restrict_tree_sets_dirs_0700_and_files_0600_without_following_links() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("data");
        std::fs::create_dir_all(root.join("store/blobs")).unwrap();
        std::fs::write(root.join("log.key"), "k").unwrap();
        std::fs::write(root.join("store/blobs/1"), "b").unwrap();
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, "o").unwrap();
        set_mode(&outside, 0o644).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        for p in [&root, &root.join("store"), &root.join("store/blobs")] {
            set_mode(p, 0o755).unwrap();
        }
        for p in [root.join("log.key"), root.join("store/blobs/1")] {
            set_mode(&p, 0o644).unwrap();
        }
        assert_eq!(restrict_tree(&root).unwrap(), 5);
        for d in [&root, &root.join("store"), &root.join("store/blobs")] {
            assert_eq!(mode(d), DIR_MODE, "{}", d.display());
        }
        for f in [root.join("log.key"), root.join("store/blobs/1")] {
            assert_eq!(mode(&f), FILE_MODE, "{}", f.display());
        }
        assert_eq!(mode(&outside), 0o644, "a link's target is not changed");
        assert_eq!(restrict_tree(&root).unwrap(), 0, "idempotent");
    }

    /// A store file removed while the walk runs (sled drops old snapshots) is skipped.
    #[test]
    fn a_missing_tree_or_entry_is_not_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(restrict_tree(&tmp.path().join("absent")).unwrap(), 0);
        let mut stack = Vec::new();
        assert!(!restrict_one(&tmp.path().join("gone"), &mut stack).is_ok_and(|c| c));
        assert!(restrict_one(&tmp.path().join("gone"), &mut stack)
            .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound));
    }

    #[test]
    fn private_dir_creates_with_0700() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("a/b");
        private_dir(&d).unwrap();
        assert_eq!(mode(&d), DIR_MODE);
        std::fs::write(d.join("f"), "x").unwrap();
        set_mode(&d.join("f"), 0o666).unwrap();
        private_file(&d.join("f")).unwrap();
        assert_eq!(mode(&d.join("f")), FILE_MODE);
    }
}
