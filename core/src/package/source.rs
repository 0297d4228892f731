//! Opening a package (directory or tar, spec `evidence-package.md` §1, §8) and reading its files
//! with their size and SHA-256 checked against the manifest.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::manifest::{Manifest, MANIFEST, MAX_MANIFEST_LEN};
use super::range::entry_range;
use super::records::Records;
use super::{check_path, PackageError};
use crate::tile::{bundle_entries, Tile, TileKind, TileReader, TILE_WIDTH};

/// Largest file [`Package::read`] returns (an entry bundle is at most 256 × 65,537 bytes).
pub const MAX_FILE_LEN: u64 = 32 << 20;
/// Most files a package may hold.
const MAX_FILES: usize = 1 << 20;
/// Deepest directory nesting of a package (tile paths are the deepest, about 10).
const MAX_DEPTH: usize = 16;

/// Tar members: path to (offset of the data, size).
type TarIndex = BTreeMap<String, (u64, u64)>;

/// Where the files are.
#[derive(Debug)]
enum Source {
    /// A directory.
    Dir,
    /// A tar file: member path to (offset of the data, size).
    Tar(TarIndex),
}

/// An opened package: the validated manifest and access to its files.
#[derive(Debug)]
pub struct Package {
    root: PathBuf,
    source: Source,
    manifest: Manifest,
}

fn io_err(path: &str, e: impl std::fmt::Display) -> PackageError {
    PackageError::Io {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

fn open_err(e: impl std::fmt::Display) -> PackageError {
    PackageError::Open {
        reason: e.to_string(),
    }
}

impl Package {
    /// Open a directory or a `.tar` package: read and validate `manifest.json` (spec §2) and
    /// check that the package holds exactly the listed files plus the manifest (a tar: in
    /// manifest order, the manifest last, regular files only, spec §8). File contents are not
    /// checked here: see [`Package::verify_files`] and [`Package::read`].
    ///
    /// # Errors
    /// [`PackageError::Open`] when `path` is neither a directory nor a readable tar;
    /// otherwise the error naming the offending file.
    pub fn open(path: &Path) -> Result<Self, PackageError> {
        let meta = std::fs::metadata(path).map_err(open_err)?;
        let (source, present) = if meta.is_dir() {
            let mut files = Vec::new();
            walk(path, "", 0, &mut files)?;
            (Source::Dir, files)
        } else {
            let (members, order) = index_tar(path)?;
            (Source::Tar(members), order)
        };
        let mut package = Package {
            root: path.to_owned(),
            source,
            manifest: placeholder_manifest(),
        };
        if !present.iter().any(|p| p == MANIFEST) {
            return Err(PackageError::Manifest {
                reason: "missing".to_owned(),
            });
        }
        package.manifest = Manifest::parse(&package.read_raw(MANIFEST, MAX_MANIFEST_LEN)?)?;
        // Every present file listed, every listed file present: binary searches in the sorted
        // manifest and in a sorted copy of the present paths, no set of the paths (issue 16).
        for p in &present {
            if p != MANIFEST && package.manifest.file(p).is_none() {
                return Err(PackageError::Unlisted { path: p.clone() });
            }
        }
        let mut sorted: Vec<&str> = present.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        for f in &package.manifest.files {
            if sorted.binary_search(&f.path.as_str()).is_err() {
                return Err(PackageError::Missing {
                    path: f.path.clone(),
                });
            }
        }
        drop(sorted);
        if matches!(package.source, Source::Tar(_)) {
            let expected = package
                .manifest
                .files
                .iter()
                .map(|f| f.path.as_str())
                .chain([MANIFEST]);
            if let Some((got, _)) = present
                .iter()
                .zip(expected)
                .find(|(got, want)| got.as_str() != *want)
            {
                return Err(PackageError::Path {
                    path: got.clone(),
                    reason: "tar member out of manifest order (spec evidence-package.md §8)"
                        .to_owned(),
                });
            }
        }
        Ok(package)
    }

    /// The validated manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The validated manifest, taking it out of the package (the exporter reuses its file list).
    pub fn into_manifest(self) -> Manifest {
        self.manifest
    }

    /// True when the package is a tar file.
    pub fn is_tar(&self) -> bool {
        matches!(self.source, Source::Tar(_))
    }

    /// Whether the manifest lists `path`.
    pub fn has(&self, path: &str) -> bool {
        self.manifest.file(path).is_some()
    }

    /// A reader of the raw bytes of a member (unchecked) and its size.
    fn reader(&self, path: &str) -> Result<(Box<dyn Read + '_>, u64), PackageError> {
        match &self.source {
            Source::Dir => {
                let full = self.root.join(path);
                let meta = std::fs::symlink_metadata(&full).map_err(|e| io_err(path, e))?;
                if !meta.is_file() {
                    return Err(PackageError::Path {
                        path: path.to_owned(),
                        reason: "not a regular file".to_owned(),
                    });
                }
                let f = File::open(&full).map_err(|e| io_err(path, e))?;
                Ok((Box::new(BufReader::new(f)), meta.len()))
            }
            Source::Tar(members) => {
                let &(offset, size) = members.get(path).ok_or_else(|| PackageError::Missing {
                    path: path.to_owned(),
                })?;
                let mut f = File::open(&self.root).map_err(|e| io_err(path, e))?;
                f.seek(SeekFrom::Start(offset))
                    .map_err(|e| io_err(path, e))?;
                Ok((Box::new(BufReader::new(f).take(size)), size))
            }
        }
    }

    /// Raw bytes of a member, at most `max` bytes, unchecked (for the manifest).
    fn read_raw(&self, path: &str, max: u64) -> Result<Vec<u8>, PackageError> {
        let (r, size) = self.reader(path)?;
        if size > max {
            return Err(PackageError::Format {
                path: path.to_owned(),
                reason: format!("{size} bytes, over the {max}-byte limit"),
            });
        }
        let mut out = Vec::new();
        r.take(max)
            .read_to_end(&mut out)
            .map_err(|e| io_err(path, e))?;
        Ok(out)
    }

    /// The bytes of a listed file, after checking its size and SHA-256 against the manifest.
    ///
    /// # Errors
    /// [`PackageError::Missing`] for an unlisted path, [`PackageError::Digest`],
    /// [`PackageError::Format`] over [`MAX_FILE_LEN`], [`PackageError::Io`].
    pub fn read(&self, path: &str) -> Result<Vec<u8>, PackageError> {
        let entry = self
            .manifest
            .file(path)
            .ok_or_else(|| PackageError::Missing {
                path: path.to_owned(),
            })?;
        if entry.size > MAX_FILE_LEN {
            return Err(PackageError::Format {
                path: path.to_owned(),
                reason: format!("{} bytes, over the {MAX_FILE_LEN}-byte limit", entry.size),
            });
        }
        let bytes = self.read_raw(path, MAX_FILE_LEN)?;
        check_digest(
            path,
            entry,
            bytes.len() as u64,
            &Sha256::digest(&bytes).into(),
        )?;
        Ok(bytes)
    }

    /// A streaming reader of a listed file; the caller checks the digest with the returned
    /// [`DigestCheck`] at the end ([`Records`] does).
    pub(super) fn stream(
        &self,
        path: &str,
    ) -> Result<(Box<dyn Read + '_>, DigestCheck), PackageError> {
        let entry = self
            .manifest
            .file(path)
            .ok_or_else(|| PackageError::Missing {
                path: path.to_owned(),
            })?;
        let (r, _) = self.reader(path)?;
        Ok((
            r,
            DigestCheck {
                path: path.to_owned(),
                entry: entry.clone(),
                hasher: Sha256::new(),
                size: 0,
            },
        ))
    }

    /// Check the size and SHA-256 of every listed file, streaming (spec §9 check `manifest`).
    ///
    /// # Errors
    /// The first [`PackageError::Digest`] or [`PackageError::Io`].
    pub fn verify_files(&self) -> Result<(), PackageError> {
        for f in &self.manifest.files {
            let (mut r, mut check) = self.stream(&f.path)?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = r.read(&mut buf).map_err(|e| io_err(&f.path, e))?;
                let Some(chunk) = buf.get(..n) else { break };
                if n == 0 {
                    break;
                }
                check.update(chunk);
            }
            check.finish()?;
        }
        Ok(())
    }

    /// Stream `records.jsonl` (spec §5).
    ///
    /// # Errors
    /// [`PackageError::Missing`] when it is not listed.
    pub fn records(&self) -> Result<Records<'_>, PackageError> {
        let (r, check) = self.stream(super::records::RECORDS)?;
        Ok(Records::new(
            r,
            check,
            self.manifest.period.start,
            self.manifest.period.end,
        ))
    }

    /// The entry range `[a, b)` of this package (spec §4.1).
    ///
    /// # Errors
    /// [`PackageError::Manifest`] when the period does not fit the tree size.
    pub fn entry_range(&self) -> Result<(u64, u64), PackageError> {
        let p = &self.manifest.period;
        entry_range(p.start, p.end, self.manifest.tree_size).ok_or_else(|| PackageError::Manifest {
            reason: "period is not start <= end <= tree_size".to_owned(),
        })
    }

    /// The log entries of the entry range, in index order, from the entry bundles (each read
    /// with its digest checked and decoded as the tile of its width in the tree of
    /// `tree_size`).
    ///
    /// # Errors
    /// As [`Package::entry_range`].
    pub fn entries(&self) -> Result<Entries<'_>, PackageError> {
        let (a, b) = self.entry_range()?;
        Ok(Entries {
            package: self,
            next: a,
            end: b,
            bundle: Vec::new(),
            bundle_start: a,
        })
    }
}

impl TileReader for Package {
    type Error = PackageError;

    /// The bytes of a tile in the package, digest checked.
    fn read_tile(&self, tile: Tile) -> Result<Vec<u8>, PackageError> {
        self.read(&tile.path())
    }
}

/// Size and SHA-256 of a file read as a stream, checked at the end.
pub(super) struct DigestCheck {
    path: String,
    entry: super::FileEntry,
    hasher: Sha256,
    size: u64,
}

impl DigestCheck {
    pub(super) fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.size = self.size.saturating_add(bytes.len() as u64);
    }
    pub(super) fn finish(self) -> Result<(), PackageError> {
        check_digest(
            &self.path,
            &self.entry,
            self.size,
            &self.hasher.finalize().into(),
        )
    }
    pub(super) fn path(&self) -> &str {
        &self.path
    }
}

fn check_digest(
    path: &str,
    entry: &super::FileEntry,
    size: u64,
    digest: &[u8; 32],
) -> Result<(), PackageError> {
    if size != entry.size {
        return Err(PackageError::Digest {
            path: path.to_owned(),
            reason: format!("size {size} differs from manifest.json's {}", entry.size),
        });
    }
    if hex::encode(digest) != entry.sha256 {
        return Err(PackageError::Digest {
            path: path.to_owned(),
            reason: "sha256 differs from manifest.json".to_owned(),
        });
    }
    Ok(())
}

/// Iterator of [`Package::entries`]: `(index, entry bytes)`.
pub struct Entries<'a> {
    package: &'a Package,
    next: u64,
    end: u64,
    bundle: Vec<Vec<u8>>,
    bundle_start: u64,
}

impl Iterator for Entries<'_> {
    type Item = Result<(u64, Vec<u8>), PackageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let w = u64::from(TILE_WIDTH);
        let pos = self.next - self.bundle_start;
        if self.bundle.is_empty() || pos >= self.bundle.len() as u64 {
            let k = self.next / w;
            let size = crate::TreeSize(self.package.manifest.tree_size);
            let Some(tile) = Tile::in_tree(TileKind::Entries, k, size) else {
                self.next = self.end;
                return Some(Err(PackageError::Format {
                    path: format!("tile/entries bundle {k}"),
                    reason: "bundle beyond the tree size".to_owned(),
                }));
            };
            let path = tile.path();
            let loaded = self.package.read(&path).and_then(|bytes| {
                let entries: Result<Vec<Vec<u8>>, _> = bundle_entries(&bytes)
                    .map(|e| e.map(<[u8]>::to_vec))
                    .collect();
                match entries {
                    Ok(e) if e.len() == usize::from(tile.width) => Ok(e),
                    Ok(e) => Err(PackageError::Format {
                        path: path.clone(),
                        reason: format!(
                            "entry bundle holds {} entries, its width is {}",
                            e.len(),
                            tile.width
                        ),
                    }),
                    Err(e) => Err(PackageError::Format {
                        path: path.clone(),
                        reason: e.to_string(),
                    }),
                }
            });
            match loaded {
                Ok(entries) => {
                    self.bundle = entries;
                    self.bundle_start = k * w;
                }
                Err(e) => {
                    self.next = self.end;
                    return Some(Err(e));
                }
            }
        }
        let pos = usize::try_from(self.next - self.bundle_start).unwrap_or(usize::MAX);
        let entry = self.bundle.get_mut(pos).map(std::mem::take)?;
        let index = self.next;
        self.next += 1;
        Some(Ok((index, entry)))
    }
}

/// The manifest before the real one is read (never returned to a caller).
fn placeholder_manifest() -> Manifest {
    Manifest {
        exported_at: String::new(),
        files: Vec::new(),
        format: String::new(),
        origin: String::new(),
        period: super::Period {
            start: 0,
            end: 0,
            from: None,
            to: None,
        },
        tree_size: 0,
    }
}

/// Collect the regular files under `dir` as package paths; refuse symlinks and other types.
fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<String>) -> Result<(), PackageError> {
    if depth > MAX_DEPTH {
        return Err(PackageError::Path {
            path: prefix.to_owned(),
            reason: "directories nested too deep".to_owned(),
        });
    }
    let rd = std::fs::read_dir(dir).map_err(|e| io_err(prefix, e))?;
    let mut names = Vec::new();
    for item in rd {
        let item = item.map_err(|e| io_err(prefix, e))?;
        let name = item
            .file_name()
            .into_string()
            .map_err(|n| PackageError::Path {
                path: format!("{prefix}{}", n.to_string_lossy()),
                reason: "file name is not UTF-8".to_owned(),
            })?;
        names.push((name, item.path()));
    }
    names.sort();
    for (name, full) in names {
        let rel = format!("{prefix}{name}");
        let meta = std::fs::symlink_metadata(&full).map_err(|e| io_err(&rel, e))?;
        if meta.is_dir() {
            walk(&full, &format!("{rel}/"), depth + 1, out)?;
        } else if meta.is_file() {
            check_path(&rel)?;
            if out.len() >= MAX_FILES {
                return Err(PackageError::Path {
                    path: rel,
                    reason: "too many files".to_owned(),
                });
            }
            out.push(rel);
        } else {
            return Err(PackageError::Path {
                path: rel,
                reason: "not a regular file or directory (symlink?)".to_owned(),
            });
        }
    }
    Ok(())
}

/// Index the members of a tar: path to (data offset, size), and the member order.
fn index_tar(path: &Path) -> Result<(TarIndex, Vec<String>), PackageError> {
    let file = File::open(path).map_err(open_err)?;
    let mut archive = tar::Archive::new(BufReader::new(file));
    let mut members = BTreeMap::new();
    let mut order = Vec::new();
    let entries = archive.entries().map_err(open_err)?;
    for entry in entries {
        let entry = entry.map_err(|e| open_err(format!("tar: {e}")))?;
        let name = entry
            .path()
            .map_err(|e| open_err(format!("tar member path: {e}")))?
            .to_str()
            .map(str::to_owned)
            .ok_or_else(|| open_err("tar member path is not UTF-8"))?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(PackageError::Path {
                path: name,
                reason: "tar member is not a regular file".to_owned(),
            });
        }
        check_path(&name)?;
        let size = entry.size();
        if members
            .insert(name.clone(), (entry.raw_file_position(), size))
            .is_some()
        {
            return Err(PackageError::Path {
                path: name,
                reason: "duplicate tar member".to_owned(),
            });
        }
        if order.len() >= MAX_FILES {
            return Err(open_err("too many tar members"));
        }
        order.push(name);
    }
    Ok((members, order))
}

/// Pack the directory package at `dir` into a tar at `out` (spec §8): the listed files in
/// manifest order, then `manifest.json`; ustar headers, mode 0644, uid/gid/mtime 0. Streams
/// each file; the caller renames `out` into place.
///
/// # Errors
/// [`PackageError`] from opening `dir` (its manifest and file set are checked) or
/// [`PackageError::Io`] writing `out`.
pub fn write_tar(dir: &Path, out: &Path) -> Result<(), PackageError> {
    let package = Package::open(dir)?;
    let file = File::create(out).map_err(|e| io_err("(tar)", e))?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
    let paths = package
        .manifest
        .files
        .iter()
        .map(|f| f.path.as_str())
        .chain([MANIFEST]);
    for path in paths {
        let (r, size) = package.reader(path)?;
        let mut header = tar::Header::new_ustar();
        header.set_size(size);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, path, r)
            .map_err(|e| io_err(path, e))?;
    }
    let mut w = builder.into_inner().map_err(|e| io_err("(tar)", e))?;
    w.flush().map_err(|e| io_err("(tar)", e))?;
    w.into_inner()
        .map_err(|e| io_err("(tar)", e.error().to_string()))?
        .sync_all()
        .map_err(|e| io_err("(tar)", e))?;
    Ok(())
}
