//! Opening a package (directory or tar, spec `evidence-package.md` §1, §8) and reading its files
//! with their size and SHA-256 checked against the manifest.
//!
//! The manifest's file list is not held in memory (issue 16, "Scale"): [`Package::open`] scans
//! `manifest.json` once, streaming, and keeps one index entry per 64 file records (the first
//! path, the byte range and its SHA-256). A lookup re-reads one block of records from the file
//! and checks its digest against the one taken while validating, so a manifest changed after it
//! was opened is refused, not trusted.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use super::manifest::{
    block_records, scan, Block, FileEntry, ManifestHead, BLOCK_FILES, MANIFEST, MAX_FILES,
    MAX_MANIFEST_LEN,
};
use super::range::entry_range;
use super::records::Records;
use super::{check_path, PackageError};
use crate::tile::{bundle_entries, Tile, TileKind, TileReader, TILE_WIDTH};

/// Largest file [`Package::read`] returns (an entry bundle is at most 256 × 65,537 bytes).
pub const MAX_FILE_LEN: u64 = 32 << 20;
/// Deepest directory nesting of a package (tile paths are the deepest, about 10).
const MAX_DEPTH: usize = 16;
/// Size of a tar header block.
const TAR_BLOCK: u64 = 512;

/// An opened package: the validated manifest head, an index of its file list, and access to
/// its files.
#[derive(Debug)]
pub struct Package {
    root: PathBuf,
    tar: bool,
    /// Where `manifest.json`'s bytes are: `(offset, size)` in the tar, `(0, size)` in a
    /// directory.
    manifest_at: (u64, u64),
    head: ManifestHead,
    blocks: Vec<Block>,
    count: u64,
    /// The records of the block read last (tiles and bundles are read in runs).
    cache: Mutex<Option<(usize, Arc<Vec<FileEntry>>)>>,
}

/// A listed file and, in a tar, the offset of its data.
struct Located {
    entry: FileEntry,
    data: u64,
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

fn padded(size: u64) -> u64 {
    size.div_ceil(TAR_BLOCK).saturating_mul(TAR_BLOCK)
}

impl Package {
    /// Open a directory or a `.tar` package: scan and validate `manifest.json` (spec §2) and
    /// check that the package holds exactly the listed files plus the manifest (a tar: in
    /// manifest order, the manifest last, one ustar header per member, regular files only,
    /// spec §8). File contents are not checked here: see [`Package::verify_files`] and
    /// [`Package::read`]. Memory does not grow with the number of files beyond one index
    /// entry per 64 of them.
    ///
    /// # Errors
    /// [`PackageError::Open`] when `path` is neither a directory nor a readable tar;
    /// otherwise the error naming the offending file.
    pub fn open(path: &Path) -> Result<Self, PackageError> {
        let meta = std::fs::metadata(path).map_err(open_err)?;
        let tar = !meta.is_dir();
        let manifest_at = if tar {
            tar_manifest(path)?
        } else {
            let full = path.join(MANIFEST);
            match std::fs::symlink_metadata(&full) {
                Ok(m) if m.is_file() => (0, m.len()),
                Ok(_) => {
                    return Err(PackageError::Path {
                        path: MANIFEST.to_owned(),
                        reason: "not a regular file".to_owned(),
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(PackageError::Manifest {
                        reason: "missing".to_owned(),
                    })
                }
                Err(e) => return Err(io_err(MANIFEST, e)),
            }
        };
        if manifest_at.1 > MAX_MANIFEST_LEN {
            return Err(PackageError::Format {
                path: MANIFEST.to_owned(),
                reason: format!(
                    "{} bytes, over the {MAX_MANIFEST_LEN}-byte limit",
                    manifest_at.1
                ),
            });
        }
        let mut package = Package {
            root: path.to_owned(),
            tar,
            manifest_at,
            head: ManifestHead {
                exported_at: String::new(),
                format: String::new(),
                origin: String::new(),
                period: super::Period {
                    start: 0,
                    end: 0,
                    from: None,
                    to: None,
                },
                tree_size: 0,
            },
            blocks: Vec::new(),
            count: 0,
            cache: Mutex::new(None),
        };
        let scanned = scan(BufReader::new(package.manifest_reader(0)?), |_| Ok(()))?;
        package.head = scanned.head;
        package.blocks = scanned.blocks;
        package.count = scanned.count;
        if tar {
            let starts = package.check_tar()?;
            for (b, data) in package.blocks.iter_mut().zip(starts) {
                b.tar_data = data;
            }
        } else {
            package.check_dir()?;
        }
        Ok(package)
    }

    /// The validated manifest, but its file list (see [`Package::files`]).
    pub fn manifest(&self) -> &ManifestHead {
        &self.head
    }

    /// How many files the manifest lists.
    pub fn file_count(&self) -> u64 {
        self.count
    }

    /// True when the package is a tar file.
    pub fn is_tar(&self) -> bool {
        self.tar
    }

    /// Whether the manifest lists `path` (false also when the manifest cannot be re-read; a
    /// read of the file then fails with the reason).
    pub fn has(&self, path: &str) -> bool {
        matches!(self.lookup(path), Ok(Some(_)))
    }

    /// The manifest's file list, in manifest (path) order, re-read from the manifest block by
    /// block (each block's digest checked against the one taken when it was opened).
    pub fn files(&self) -> Files<'_> {
        Files {
            package: self,
            block: 0,
            records: Arc::new(Vec::new()),
            pos: 0,
        }
    }

    /// A reader of the bytes of `manifest.json` from byte `from` on.
    fn manifest_reader(&self, from: u64) -> Result<std::io::Take<File>, PackageError> {
        let (offset, size) = self.manifest_at;
        let mut f = if self.tar {
            File::open(&self.root)
        } else {
            File::open(self.root.join(MANIFEST))
        }
        .map_err(|e| io_err(MANIFEST, e))?;
        f.seek(SeekFrom::Start(offset.saturating_add(from)))
            .map_err(|e| io_err(MANIFEST, e))?;
        Ok(f.take(size.saturating_sub(from)))
    }

    /// The records of block `i`, re-read and checked against the digest taken at open.
    fn block(&self, i: usize) -> Result<Arc<Vec<FileEntry>>, PackageError> {
        if let Ok(cache) = self.cache.lock() {
            if let Some((at, records)) = cache.as_ref() {
                if *at == i {
                    return Ok(Arc::clone(records));
                }
            }
        }
        let changed = || PackageError::Manifest {
            reason: "changed on disk since the package was opened".to_owned(),
        };
        let b = self.blocks.get(i).ok_or_else(changed)?;
        let len = usize::try_from(b.end - b.start).map_err(|_| changed())?;
        let mut bytes = vec![0u8; len];
        self.manifest_reader(b.start)?
            .read_exact(&mut bytes)
            .map_err(|e| io_err(MANIFEST, e))?;
        if <[u8; 32]>::from(Sha256::digest(&bytes)) != b.sha256 {
            return Err(changed());
        }
        let records = Arc::new(block_records(&bytes)?);
        let first = (i as u64).saturating_mul(BLOCK_FILES as u64);
        let want = self.count.saturating_sub(first).min(BLOCK_FILES as u64);
        if records.len() as u64 != want {
            return Err(changed());
        }
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Some((i, Arc::clone(&records)));
        }
        Ok(records)
    }

    /// Find `path` in the manifest: a binary search of the block index, then of one block.
    fn lookup(&self, path: &str) -> Result<Option<Located>, PackageError> {
        let i = self
            .blocks
            .partition_point(|b| b.first.as_bytes() <= path.as_bytes());
        let Some(i) = i.checked_sub(1) else {
            return Ok(None);
        };
        let records = self.block(i)?;
        let Ok(j) = records.binary_search_by(|f| f.path.as_bytes().cmp(path.as_bytes())) else {
            return Ok(None);
        };
        let mut data = self.blocks.get(i).map_or(0, |b| b.tar_data);
        if self.tar {
            for f in records.iter().take(j) {
                data = data
                    .saturating_add(padded(f.size))
                    .saturating_add(TAR_BLOCK);
            }
        }
        Ok(records.get(j).map(|entry| Located {
            entry: entry.clone(),
            data,
        }))
    }

    /// Directory form: walk the tree in bytewise path order and merge it with the manifest's
    /// list (both sorted): the first path in one but not the other is unlisted or missing.
    fn check_dir(&self) -> Result<(), PackageError> {
        let mut walk = Walk::new(&self.root)?;
        let mut files = self.files();
        let mut present = walk.next_file()?;
        let mut listed = files.next().transpose()?;
        loop {
            match (present, listed) {
                (None, None) => return Ok(()),
                (Some(p), None) => return Err(PackageError::Unlisted { path: p }),
                (None, Some(f)) => return Err(PackageError::Missing { path: f.path }),
                (Some(p), Some(f)) => match p.as_bytes().cmp(f.path.as_bytes()) {
                    std::cmp::Ordering::Less => return Err(PackageError::Unlisted { path: p }),
                    std::cmp::Ordering::Greater => {
                        return Err(PackageError::Missing { path: f.path })
                    }
                    std::cmp::Ordering::Equal => {
                        present = walk.next_file()?;
                        listed = files.next().transpose()?;
                    }
                },
            }
        }
    }

    /// Tar form: the members are the listed files in manifest order, then `manifest.json`, and
    /// nothing else (spec §8). Returns the data offset of each block's first member.
    fn check_tar(&self) -> Result<Vec<u64>, PackageError> {
        let mut starts = Vec::with_capacity(self.blocks.len());
        let mut members = TarMembers::open(&self.root)?;
        let mut files = self.files();
        let mut ordinal = 0u64;
        loop {
            let member = members.next().transpose()?;
            let listed = files.next().transpose()?;
            let (member, want) = match (member, listed) {
                (Some(m), Some(f)) if m.name == f.path => {
                    if ordinal.is_multiple_of(BLOCK_FILES as u64) {
                        starts.push(m.data);
                    }
                    ordinal += 1;
                    continue;
                }
                (Some(m), None) if m.name == MANIFEST => {
                    return match members.next().transpose()? {
                        None => Ok(starts),
                        Some(extra) => Err(self.misplaced(extra.name)),
                    };
                }
                (Some(m), None) => return Err(self.misplaced(m.name)),
                (None, Some(f)) => return Err(PackageError::Missing { path: f.path }),
                (None, None) => {
                    return Err(PackageError::Manifest {
                        reason: "not the last tar member (spec evidence-package.md §8)".to_owned(),
                    })
                }
                (Some(m), Some(f)) => (m, f.path),
            };
            // The member is not the one the manifest lists here: unlisted, or out of order,
            // or the listed one is missing from the tar.
            if member.name != MANIFEST && self.lookup(&member.name)?.is_none() {
                return Err(PackageError::Unlisted { path: member.name });
            }
            for later in members.by_ref() {
                if later?.name == want {
                    return Err(out_of_order(member.name));
                }
            }
            return Err(PackageError::Missing { path: want });
        }
    }

    /// A tar member after its place: unlisted, or listed (out of order, or a duplicate).
    fn misplaced(&self, name: String) -> PackageError {
        match self.lookup(&name) {
            Ok(None) if name != MANIFEST => PackageError::Unlisted { path: name },
            Err(e) => e,
            _ => out_of_order(name),
        }
    }

    /// A reader of the raw bytes of a listed member or the manifest (unchecked) and its
    /// manifest entry (`None` for the manifest).
    fn reader(&self, path: &str) -> Result<(Box<dyn Read + '_>, Option<FileEntry>), PackageError> {
        let missing = || PackageError::Missing {
            path: path.to_owned(),
        };
        if path == MANIFEST {
            return Ok((Box::new(BufReader::new(self.manifest_reader(0)?)), None));
        }
        let located = self.lookup(path)?.ok_or_else(missing)?;
        if self.tar {
            let mut f = File::open(&self.root).map_err(|e| io_err(path, e))?;
            f.seek(SeekFrom::Start(located.data))
                .map_err(|e| io_err(path, e))?;
            let size = located.entry.size;
            return Ok((Box::new(BufReader::new(f).take(size)), Some(located.entry)));
        }
        let full = self.root.join(path);
        let meta = std::fs::symlink_metadata(&full).map_err(|e| io_err(path, e))?;
        if !meta.is_file() {
            return Err(PackageError::Path {
                path: path.to_owned(),
                reason: "not a regular file".to_owned(),
            });
        }
        let f = File::open(&full).map_err(|e| io_err(path, e))?;
        Ok((Box::new(BufReader::new(f)), Some(located.entry)))
    }

    /// The bytes of a listed file, after checking its size and SHA-256 against the manifest.
    ///
    /// # Errors
    /// [`PackageError::Missing`] for an unlisted path, [`PackageError::Digest`],
    /// [`PackageError::Format`] over [`MAX_FILE_LEN`], [`PackageError::Io`].
    pub fn read(&self, path: &str) -> Result<Vec<u8>, PackageError> {
        let (r, entry) = self.reader(path)?;
        let entry = entry.ok_or_else(|| PackageError::Missing {
            path: path.to_owned(),
        })?;
        if entry.size > MAX_FILE_LEN {
            return Err(PackageError::Format {
                path: path.to_owned(),
                reason: format!("{} bytes, over the {MAX_FILE_LEN}-byte limit", entry.size),
            });
        }
        let mut bytes = Vec::new();
        r.take(MAX_FILE_LEN.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| io_err(path, e))?;
        check_digest(
            path,
            &entry,
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
        let (r, entry) = self.reader(path)?;
        let entry = entry.ok_or_else(|| PackageError::Missing {
            path: path.to_owned(),
        })?;
        Ok((
            r,
            DigestCheck {
                path: path.to_owned(),
                entry,
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
        let mut buf = vec![0u8; 64 * 1024];
        for f in self.files() {
            let f = f?;
            let (mut r, mut check) = self.stream(&f.path)?;
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
            self.head.period.start,
            self.head.period.end,
        ))
    }

    /// The entry range `[a, b)` of this package (spec §4.1).
    ///
    /// # Errors
    /// [`PackageError::Manifest`] when the period does not fit the tree size.
    pub fn entry_range(&self) -> Result<(u64, u64), PackageError> {
        let p = &self.head.period;
        entry_range(p.start, p.end, self.head.tree_size).ok_or_else(|| PackageError::Manifest {
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

fn out_of_order(name: String) -> PackageError {
    PackageError::Path {
        path: name,
        reason: "tar member out of manifest order or duplicated (spec evidence-package.md §8)"
            .to_owned(),
    }
}

/// Iterator of [`Package::files`].
pub struct Files<'a> {
    package: &'a Package,
    block: usize,
    records: Arc<Vec<FileEntry>>,
    pos: usize,
}

impl Iterator for Files<'_> {
    type Item = Result<FileEntry, PackageError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(f) = self.records.get(self.pos) {
                self.pos += 1;
                return Some(Ok(f.clone()));
            }
            if self.block >= self.package.blocks.len() {
                return None;
            }
            match self.package.block(self.block) {
                Ok(records) => {
                    self.records = records;
                    self.pos = 0;
                    self.block += 1;
                }
                Err(e) => {
                    self.block = usize::MAX;
                    self.records = Arc::new(Vec::new());
                    return Some(Err(e));
                }
            }
        }
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
            let size = crate::TreeSize(self.package.head.tree_size);
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

/// The regular files under a directory as package paths, in bytewise path order, one
/// directory listing at a time (a directory sorts as its name followed by `/`, so the order is
/// that of the full paths). Symlinks and other file types are refused.
struct Walk {
    stack: Vec<(String, PathBuf, std::vec::IntoIter<DirItem>)>,
    count: u64,
}

impl Walk {
    fn new(root: &Path) -> Result<Self, PackageError> {
        Ok(Walk {
            stack: vec![(
                String::new(),
                root.to_owned(),
                list_dir(root, "")?.into_iter(),
            )],
            count: 0,
        })
    }

    /// The next file but the top-level `manifest.json`.
    fn next_file(&mut self) -> Result<Option<String>, PackageError> {
        loop {
            let depth = self.stack.len();
            let Some((prefix, dir, items)) = self.stack.last_mut() else {
                return Ok(None);
            };
            let Some((name, is_dir)) = items.next() else {
                self.stack.pop();
                continue;
            };
            let rel = format!("{prefix}{name}");
            if is_dir {
                if depth > MAX_DEPTH {
                    return Err(PackageError::Path {
                        path: rel,
                        reason: "directories nested too deep".to_owned(),
                    });
                }
                let full = dir.join(&name);
                let children = list_dir(&full, &rel)?;
                self.stack
                    .push((format!("{rel}/"), full, children.into_iter()));
                continue;
            }
            if rel == MANIFEST {
                continue;
            }
            check_path(&rel)?;
            self.count += 1;
            if self.count > MAX_FILES {
                return Err(PackageError::Path {
                    path: rel,
                    reason: "too many files".to_owned(),
                });
            }
            return Ok(Some(rel));
        }
    }
}

/// A directory entry: its name and whether it is a directory.
type DirItem = (String, bool);

/// One directory's entries, sorted as [`Walk`] needs.
fn list_dir(dir: &Path, rel: &str) -> Result<Vec<DirItem>, PackageError> {
    let rd = std::fs::read_dir(dir).map_err(|e| io_err(rel, e))?;
    let prefix = if rel.is_empty() {
        String::new()
    } else {
        format!("{rel}/")
    };
    let mut out = Vec::new();
    for item in rd {
        let item = item.map_err(|e| io_err(rel, e))?;
        let name = item
            .file_name()
            .into_string()
            .map_err(|n| PackageError::Path {
                path: format!("{prefix}{}", n.to_string_lossy()),
                reason: "file name is not UTF-8".to_owned(),
            })?;
        // The entry's own type, not its target's: a symlink is refused.
        let kind = item.file_type().map_err(|e| io_err(&name, e))?;
        if !kind.is_dir() && !kind.is_file() {
            return Err(PackageError::Path {
                path: format!("{prefix}{name}"),
                reason: "not a regular file or directory (symlink?)".to_owned(),
            });
        }
        if out.len() as u64 >= MAX_FILES {
            return Err(PackageError::Path {
                path: prefix,
                reason: "too many files".to_owned(),
            });
        }
        out.push((name, kind.is_dir()));
    }
    // A directory sorts as its name followed by `/`.
    fn key((name, dir): &DirItem) -> impl Iterator<Item = u8> + '_ {
        name.bytes().chain(dir.then_some(b'/'))
    }
    out.sort_unstable_by(|x, y| key(x).cmp(key(y)));
    Ok(out)
}

/// One tar member: its path, the offset of its data and its size.
struct Member {
    name: String,
    data: u64,
    size: u64,
}

/// The members of a ustar archive, read header by header (spec §8: one ustar header per
/// member, regular files only, checksums valid), without an index of them.
struct TarMembers {
    file: BufReader<File>,
    len: u64,
    pos: u64,
    count: u64,
    done: bool,
}

impl TarMembers {
    fn open(path: &Path) -> Result<Self, PackageError> {
        let file = File::open(path).map_err(open_err)?;
        let len = file.metadata().map_err(open_err)?.len();
        Ok(TarMembers {
            file: BufReader::new(file),
            len,
            pos: 0,
            count: 0,
            done: false,
        })
    }

    fn member(&mut self) -> Result<Option<Member>, PackageError> {
        let bad = |reason: String| open_err(format!("tar: {reason}"));
        if self.pos == self.len {
            // No end-of-archive blocks: the archive ends with its last member.
            return Ok(None);
        }
        if self.pos.saturating_add(TAR_BLOCK) > self.len {
            return Err(bad(format!("truncated at byte {}", self.pos)));
        }
        let mut block = [0u8; TAR_BLOCK as usize];
        self.file
            .seek(SeekFrom::Start(self.pos))
            .and_then(|_| self.file.read_exact(&mut block))
            .map_err(|e| bad(e.to_string()))?;
        if block.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        let header = tar::Header::from_byte_slice(&block);
        let mut recomputed = header.clone();
        recomputed.set_cksum();
        if header.cksum().ok() != recomputed.cksum().ok() {
            return Err(bad(format!("header checksum at byte {}", self.pos)));
        }
        let name = header
            .path()
            .map_err(|e| bad(format!("member path: {e}")))?
            .to_str()
            .map(str::to_owned)
            .ok_or_else(|| bad("member path is not UTF-8".to_owned()))?;
        if header.entry_type() != tar::EntryType::Regular {
            return Err(PackageError::Path {
                path: name,
                reason: "tar member is not a regular file (spec evidence-package.md §8)".to_owned(),
            });
        }
        check_path(&name)?;
        let size = header
            .entry_size()
            .map_err(|e| bad(format!("member size: {e}")))?;
        let data = self.pos + TAR_BLOCK;
        if data.saturating_add(size) > self.len {
            return Err(bad(format!("{name}: truncated")));
        }
        self.pos = data.saturating_add(padded(size));
        self.count += 1;
        if self.count > MAX_FILES + 1 {
            return Err(open_err("too many tar members"));
        }
        Ok(Some(Member { name, data, size }))
    }
}

impl Iterator for TarMembers {
    type Item = Result<Member, PackageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let m = self.member().transpose();
        if !matches!(m, Some(Ok(_))) {
            self.done = true;
        }
        m
    }
}

/// Where `manifest.json` is in a tar: `(data offset, size)`. It must be there once.
fn tar_manifest(path: &Path) -> Result<(u64, u64), PackageError> {
    let mut found = None;
    let mut members = TarMembers::open(path)?;
    while let Some(m) = members.next().transpose()? {
        if m.name == MANIFEST {
            if found.is_some() {
                return Err(PackageError::Path {
                    path: m.name,
                    reason: "duplicate tar member".to_owned(),
                });
            }
            found = Some((m.data, m.size));
        }
    }
    found.ok_or_else(|| PackageError::Manifest {
        reason: "missing".to_owned(),
    })
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
    if package.is_tar() {
        return Err(open_err("write_tar packs a directory package, not a tar"));
    }
    let file = File::create(out).map_err(|e| io_err("(tar)", e))?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
    let paths = package
        .files()
        .map(|f| f.map(|f| f.path))
        .chain([Ok(MANIFEST.to_owned())]);
    for path in paths {
        let path = path?;
        let (r, entry) = package.reader(&path)?;
        let size = entry.map_or(package.manifest_at.1, |e| e.size);
        // The header's size is the manifest's: a file of another size would make a corrupt
        // archive, so refuse it here (its digest is checked by the reader anyway).
        let actual = std::fs::symlink_metadata(dir.join(&path))
            .map_err(|e| io_err(&path, e))?
            .len();
        if actual != size {
            return Err(PackageError::Digest {
                path,
                reason: format!("size {actual} differs from manifest.json's {size}"),
            });
        }
        let mut header = tar::Header::new_ustar();
        header.set_size(size);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, &path, r.take(size))
            .map_err(|e| io_err(&path, e))?;
    }
    let mut w = builder.into_inner().map_err(|e| io_err("(tar)", e))?;
    w.flush().map_err(|e| io_err("(tar)", e))?;
    w.into_inner()
        .map_err(|e| io_err("(tar)", e.error().to_string()))?
        .sync_all()
        .map_err(|e| io_err("(tar)", e))?;
    Ok(())
}

/// Write `manifest.json` for the directory package at `dir` (spec §2): every file under `dir`
/// but `manifest.json` itself, walked in bytewise path order and hashed as it is listed, so
/// that neither the exporter nor this function holds the file list (issue 16, "Scale"). An
/// existing `manifest.json` is replaced; on error it may be left incomplete (the exporter
/// writes into a temporary directory that it removes on failure).
///
/// # Errors
/// [`PackageError::Path`] for a file that may not be in a package (a symlink, a bad name),
/// [`PackageError::Io`].
pub fn write_manifest(dir: &Path, head: &ManifestHead) -> Result<(), PackageError> {
    let full = dir.join(MANIFEST);
    let file = File::create(&full).map_err(|e| io_err(MANIFEST, e))?;
    let mut out = std::io::BufWriter::new(file);
    let mut walk = Walk::new(dir)?;
    let mut failed: Option<PackageError> = None;
    let files = std::iter::from_fn(|| match walk.next_file() {
        Ok(path) => path.map(|path| {
            hash_file(&dir.join(&path)).map(|(sha256, size)| FileEntry { path, sha256, size })
        }),
        Err(e) => {
            failed = Some(e);
            Some(Err(std::io::Error::other("walk failed")))
        }
    });
    let written = head
        .write_canonical(files, &mut out)
        .and_then(|()| out.flush());
    match (failed, written) {
        (Some(e), _) => Err(e),
        (None, Err(e)) => Err(io_err(MANIFEST, e)),
        (None, Ok(())) => Ok(()),
    }
}

/// SHA-256 (hex) and size of a file, streaming.
fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(buf.get(..n).unwrap_or_default());
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
