//! `manifest.json` of an evidence package (spec `evidence-package.md` §2).

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

#[cfg(doc)]
use super::canonical::canonical_json;
use super::PackageError;

/// The `format` value of a v1 package.
pub const FORMAT: &str = "verdict-evidence-package/v1";
/// Path of the manifest inside a package.
pub const MANIFEST: &str = "manifest.json";
/// Largest manifest a reader accepts: [`MAX_FILES`] records of at most about 400 bytes. A
/// reader streams it (memory does not grow with it).
pub const MAX_MANIFEST_LEN: u64 = 512 << 20;

/// The manifest (spec §2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Exporter's clock, RFC 3339 (informational; spec §2).
    pub exported_at: String,
    /// Every file but the manifest, sorted by path bytewise.
    pub files: Vec<FileEntry>,
    /// [`FORMAT`].
    pub format: String,
    /// Origin line of the checkpoint.
    pub origin: String,
    /// The period (spec §3).
    pub period: Period,
    /// Size of `checkpoint`.
    pub tree_size: u64,
}

/// One listed file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative path (spec §1).
    pub path: String,
    /// SHA-256 of the bytes, 64 lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// The period: log indices `[start, end)` and, for a period named by time, its bounds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    /// First index of the period.
    pub start: u64,
    /// End of the period (exclusive).
    pub end: u64,
    /// Lower time bound (RFC 3339, `Z`), or `None` for a period named by checkpoints.
    pub from: Option<String>,
    /// Upper time bound (RFC 3339, `Z`, exclusive), or `None`.
    pub to: Option<String>,
}

impl Period {
    /// `from` and `to` in milliseconds since the Unix epoch (spec §3), both or neither.
    ///
    /// # Errors
    /// [`PackageError::Manifest`] when only one is given or one does not parse.
    pub fn bounds_ms(&self) -> Result<Option<(i64, i64)>, PackageError> {
        match (&self.from, &self.to) {
            (None, None) => Ok(None),
            (Some(f), Some(t)) => Ok(Some((parse_time_ms(f)?, parse_time_ms(t)?))),
            _ => Err(manifest_err(
                "period.from and period.to must both be set or both null",
            )),
        }
    }
}

/// Milliseconds since the epoch of an RFC 3339 instant in the form the exporter writes
/// (`jiff::Timestamp` display, UTC `Z`); other spellings are refused so that one instant has one
/// encoding.
///
/// # Errors
/// [`PackageError::Manifest`].
pub fn parse_time_ms(text: &str) -> Result<i64, PackageError> {
    let ts: jiff::Timestamp = text
        .parse()
        .map_err(|e| manifest_err(format!("time {text:?}: {e}")))?;
    if ts.to_string() != text {
        return Err(manifest_err(format!(
            "time {text:?} is not in canonical form ({ts})"
        )));
    }
    Ok(ts.as_millisecond())
}

fn manifest_err(reason: impl Into<String>) -> PackageError {
    PackageError::Manifest {
        reason: reason.into(),
    }
}

impl Manifest {
    /// Parse and validate a manifest held in memory: [`scan`] over the bytes, collecting the
    /// file list. [`super::Package`] does not hold the list; it scans the file instead.
    ///
    /// # Errors
    /// [`PackageError::Manifest`] or [`PackageError::Path`].
    pub fn parse(bytes: &[u8]) -> Result<Self, PackageError> {
        let mut files = Vec::new();
        let scanned = scan(bytes, |f| {
            files.push(f);
            Ok(())
        })?;
        Ok(scanned.head.with_files(files))
    }

    /// The fields of the manifest but the file list.
    pub fn head(&self) -> ManifestHead {
        ManifestHead {
            exported_at: self.exported_at.clone(),
            format: self.format.clone(),
            origin: self.origin.clone(),
            period: self.period.clone(),
            tree_size: self.tree_size,
        }
    }

    /// The canonical bytes of the manifest (what [`Manifest::parse`] accepts).
    ///
    /// # Errors
    /// [`PackageError::Manifest`] if it cannot be serialised (not expected).
    pub fn to_bytes(&self) -> Result<Vec<u8>, PackageError> {
        let mut out = Vec::new();
        self.write_canonical(&mut out)
            .map_err(|e| manifest_err(e.to_string()))?;
        Ok(out)
    }

    /// Write the canonical JSON of the manifest (spec §2) to `out`: see
    /// [`ManifestHead::write_canonical`].
    ///
    /// # Errors
    /// The writer's error.
    pub fn write_canonical<W: std::io::Write>(&self, out: &mut W) -> std::io::Result<()> {
        self.head().write_canonical(self.files.iter().map(Ok), out)
    }

    /// The listed file at `path`.
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files
            .binary_search_by(|f| f.path.as_bytes().cmp(path.as_bytes()))
            .ok()
            .and_then(|i| self.files.get(i))
    }
}

/// Every field of the manifest but `files`: what an opened [`super::Package`] holds in memory
/// (its file list stays on disk, issue 16 "Scale").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestHead {
    /// Exporter's clock, RFC 3339 (informational; spec §2).
    pub exported_at: String,
    /// [`FORMAT`].
    pub format: String,
    /// Origin line of the checkpoint.
    pub origin: String,
    /// The period (spec §3).
    pub period: Period,
    /// Size of `checkpoint`.
    pub tree_size: u64,
}

impl ManifestHead {
    /// The whole manifest with `files`.
    pub fn with_files(self, files: Vec<FileEntry>) -> Manifest {
        Manifest {
            exported_at: self.exported_at,
            files,
            format: self.format,
            origin: self.origin,
            period: self.period,
            tree_size: self.tree_size,
        }
    }

    /// Write the canonical JSON of the manifest with these `files` (spec §2) to `out`,
    /// streaming: the same bytes as [`canonical_json`] of its `serde_json::Value`, keys sorted
    /// bytewise at every level, without building that tree or a list of the files. The
    /// exporter writes `manifest.json` with it ([`super::write_manifest`]).
    ///
    /// # Errors
    /// The writer's error, or the first error of `files`.
    pub fn write_canonical<W, I, F>(&self, files: I, out: &mut W) -> std::io::Result<()>
    where
        W: std::io::Write,
        I: IntoIterator<Item = std::io::Result<F>>,
        F: std::borrow::Borrow<FileEntry>,
    {
        out.write_all(b"{\"exported_at\":")?;
        json(out, &self.exported_at)?;
        out.write_all(b",\"files\":[")?;
        for (i, f) in files.into_iter().enumerate() {
            let f = f?;
            let f = f.borrow();
            if i > 0 {
                out.write_all(b",")?;
            }
            out.write_all(b"{\"path\":")?;
            json(out, &f.path)?;
            out.write_all(b",\"sha256\":")?;
            json(out, &f.sha256)?;
            out.write_all(b",\"size\":")?;
            json(out, &f.size)?;
            out.write_all(b"}")?;
        }
        out.write_all(b"],\"format\":")?;
        json(out, &self.format)?;
        out.write_all(b",\"origin\":")?;
        json(out, &self.origin)?;
        let p = &self.period;
        out.write_all(b",\"period\":{\"end\":")?;
        json(out, &p.end)?;
        out.write_all(b",\"from\":")?;
        json(out, &p.from)?;
        out.write_all(b",\"start\":")?;
        json(out, &p.start)?;
        out.write_all(b",\"to\":")?;
        json(out, &p.to)?;
        out.write_all(b"},\"tree_size\":")?;
        json(out, &self.tree_size)?;
        out.write_all(b"}")
    }
}

/// Files per [`Block`] of the on-disk index.
pub(super) const BLOCK_FILES: usize = 64;

/// One block of [`BLOCK_FILES`] consecutive file records of a scanned manifest: where its bytes
/// are and their SHA-256, so that a reader can find and re-read a record from the file with the
/// bytes checked against what it validated, without holding the list (issue 16, "Scale").
#[derive(Clone, Debug)]
pub(super) struct Block {
    /// Path of the block's first record (block `i` starts at record `i * BLOCK_FILES`).
    pub first: String,
    /// Byte offset of the first record's `{` in the manifest.
    pub start: u64,
    /// Byte offset just after the last record's `}`.
    pub end: u64,
    /// SHA-256 of the bytes `[start, end)`.
    pub sha256: [u8; 32],
    /// For a tar: offset of the data of the block's first member (set by the tar check).
    pub tar_data: u64,
}

/// A scanned manifest: its head, its block index and how many files it lists.
#[derive(Debug)]
pub(super) struct Scanned {
    pub head: ManifestHead,
    pub blocks: Vec<Block>,
    pub count: u64,
}

/// Scan and validate a manifest from a reader, streaming: canonical JSON (spec §2) checked
/// token by token against the one encoding of the fixed schema (keys in sorted order, no
/// whitespace, every string and number in serde_json's compact form), known fields only,
/// [`FORMAT`], valid and sorted unique paths, 64-lowercase-hex digests, `start <= end <=
/// tree_size`, times that parse. Each file record is passed to `on_file`; memory is one record
/// and one block index entry per [`BLOCK_FILES`] records, whatever the number of files.
///
/// # Errors
/// [`PackageError::Manifest`] or [`PackageError::Path`], or the error of `on_file`.
pub(super) fn scan<R: std::io::BufRead>(
    r: R,
    mut on_file: impl FnMut(FileEntry) -> Result<(), PackageError>,
) -> Result<Scanned, PackageError> {
    let mut s = Scanner::new(r);
    s.expect(b"{\"exported_at\":")?;
    let exported_at = s.string()?;
    s.expect(b",\"files\":[")?;
    let mut blocks: Vec<Block> = Vec::new();
    let mut count = 0u64;
    let mut prev: Option<String> = None;
    if s.peek()? != Some(b']') {
        loop {
            let first_of_block = count.is_multiple_of(BLOCK_FILES as u64);
            let at = s.pos;
            if first_of_block {
                s.tap = Some(Sha256::new());
            }
            let f = s.record()?;
            if prev
                .as_deref()
                .is_some_and(|p| p.as_bytes() >= f.path.as_bytes())
            {
                return Err(manifest_err(format!(
                    "files are not sorted and unique at {}",
                    f.path
                )));
            }
            if count >= MAX_FILES {
                return Err(manifest_err(format!("more than {MAX_FILES} files")));
            }
            if first_of_block {
                blocks.push(Block {
                    first: f.path.clone(),
                    start: at,
                    end: at,
                    sha256: [0; 32],
                    tar_data: 0,
                });
            }
            count += 1;
            let last_of_block = count.is_multiple_of(BLOCK_FILES as u64);
            let more = s.peek()? == Some(b',');
            if last_of_block || !more {
                let hasher = s.tap.take().unwrap_or_default();
                if let Some(b) = blocks.last_mut() {
                    b.end = s.pos;
                    b.sha256 = hasher.finalize().into();
                }
            }
            prev = Some(f.path.clone());
            on_file(f)?;
            if !more {
                break;
            }
            s.expect(b",")?;
        }
    }
    s.expect(b"],\"format\":")?;
    let format = s.string()?;
    s.expect(b",\"origin\":")?;
    let origin = s.string()?;
    s.expect(b",\"period\":{\"end\":")?;
    let end = s.number()?;
    s.expect(b",\"from\":")?;
    let from = s.opt_string()?;
    s.expect(b",\"start\":")?;
    let start = s.number()?;
    s.expect(b",\"to\":")?;
    let to = s.opt_string()?;
    s.expect(b"},\"tree_size\":")?;
    let tree_size = s.number()?;
    s.expect(b"}")?;
    if s.peek()?.is_some() {
        return Err(s.not_canonical());
    }
    let head = ManifestHead {
        exported_at,
        format,
        origin,
        period: Period {
            start,
            end,
            from,
            to,
        },
        tree_size,
    };
    if head.format != FORMAT {
        return Err(manifest_err(format!("format is not {FORMAT}")));
    }
    if start > end || end > tree_size {
        return Err(manifest_err("period is not start <= end <= tree_size"));
    }
    head.period.bounds_ms()?;
    parse_time_ms(&head.exported_at)?;
    Ok(Scanned {
        head,
        blocks,
        count,
    })
}

/// Parse the file records of one [`Block`]'s bytes (records separated by `,`), each checked as
/// [`scan`] checks it.
///
/// # Errors
/// [`PackageError::Manifest`] or [`PackageError::Path`].
pub(super) fn block_records(bytes: &[u8]) -> Result<Vec<FileEntry>, PackageError> {
    let mut s = Scanner::new(bytes);
    let mut out = Vec::with_capacity(BLOCK_FILES);
    loop {
        out.push(s.record()?);
        match s.peek()? {
            None => return Ok(out),
            Some(_) => s.expect(b",")?,
        }
    }
}

/// Most files a manifest may list (a package of about 268 million entries).
pub(super) const MAX_FILES: u64 = 1 << 20;
/// Longest JSON string token of a manifest (a path is at most 255 bytes).
const MAX_TOKEN: usize = 4096;

/// A byte-at-a-time reader of canonical manifest JSON, with an optional hash of what it
/// consumes.
struct Scanner<R> {
    r: R,
    pos: u64,
    tap: Option<Sha256>,
    token: Vec<u8>,
}

impl<R: std::io::BufRead> Scanner<R> {
    fn new(r: R) -> Self {
        Self {
            r,
            pos: 0,
            tap: None,
            token: Vec::new(),
        }
    }

    fn not_canonical(&self) -> PackageError {
        manifest_err(format!(
            "not in canonical JSON (compact, keys sorted) at byte {}",
            self.pos
        ))
    }

    fn peek(&mut self) -> Result<Option<u8>, PackageError> {
        let buf = self
            .r
            .fill_buf()
            .map_err(|e| manifest_err(format!("read error: {e}")))?;
        Ok(buf.first().copied())
    }

    fn byte(&mut self) -> Result<u8, PackageError> {
        let b = self.peek()?.ok_or_else(|| self.not_canonical())?;
        self.r.consume(1);
        self.pos += 1;
        if let Some(t) = self.tap.as_mut() {
            t.update([b]);
        }
        Ok(b)
    }

    fn expect(&mut self, lit: &[u8]) -> Result<(), PackageError> {
        for &want in lit {
            if self.peek()? != Some(want) {
                return Err(self.not_canonical());
            }
            self.byte()?;
        }
        Ok(())
    }

    /// A JSON string in serde_json's compact form (minimal escapes), decoded.
    fn string(&mut self) -> Result<String, PackageError> {
        let at = self.pos;
        self.token.clear();
        if self.byte()? != b'"' {
            return Err(self.not_canonical());
        }
        self.token.push(b'"');
        loop {
            if self.token.len() > MAX_TOKEN {
                return Err(manifest_err(format!(
                    "string at byte {at} longer than {MAX_TOKEN} bytes"
                )));
            }
            let b = self.byte()?;
            self.token.push(b);
            match b {
                b'"' => break,
                b'\\' => {
                    let e = self.byte()?;
                    self.token.push(e);
                }
                _ => {}
            }
        }
        let text: String = serde_json::from_slice(&self.token)
            .map_err(|e| manifest_err(format!("string at byte {at}: {e}")))?;
        if serde_json::to_vec(&text).ok().as_deref() != Some(self.token.as_slice()) {
            return Err(manifest_err(format!(
                "string at byte {at} is not in canonical JSON (minimal escapes)"
            )));
        }
        Ok(text)
    }

    /// A string or `null`.
    fn opt_string(&mut self) -> Result<Option<String>, PackageError> {
        if self.peek()? == Some(b'n') {
            self.expect(b"null")?;
            Ok(None)
        } else {
            self.string().map(Some)
        }
    }

    /// An unsigned integer in its one decimal form (no sign, no leading zero, no fraction).
    fn number(&mut self) -> Result<u64, PackageError> {
        let at = self.pos;
        let mut digits = String::new();
        while let Some(b @ b'0'..=b'9') = self.peek()? {
            self.byte()?;
            digits.push(char::from(b));
            if digits.len() > 20 {
                break;
            }
        }
        match digits.parse::<u64>() {
            Ok(v) if v.to_string() == digits => Ok(v),
            _ => Err(manifest_err(format!(
                "number at byte {at} is not an unsigned integer in canonical JSON"
            ))),
        }
    }

    /// One file record `{"path":…,"sha256":…,"size":…}`, checked (path syntax, not the
    /// manifest itself, 64 lowercase hex).
    fn record(&mut self) -> Result<FileEntry, PackageError> {
        self.expect(b"{\"path\":")?;
        let path = self.string()?;
        self.expect(b",\"sha256\":")?;
        let sha256 = self.string()?;
        self.expect(b",\"size\":")?;
        let size = self.number()?;
        self.expect(b"}")?;
        super::check_path(&path)?;
        if path == MANIFEST {
            return Err(manifest_err("manifest.json lists itself"));
        }
        if sha256.len() != 64
            || !sha256
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(manifest_err(format!(
                "sha256 of {path} is not 64 lowercase hex"
            )));
        }
        Ok(FileEntry { path, sha256, size })
    }
}

/// One scalar in serde_json's compact form (what [`canonical_json`] writes for it).
fn json<W: std::io::Write, T: Serialize + ?Sized>(out: &mut W, v: &T) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, v).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::canonical::{canonical_json, parse_canonical};

    fn sample(from: Option<&str>) -> Manifest {
        Manifest {
            exported_at: "2026-12-06T05:00:00Z".into(),
            files: [
                "checkpoint",
                "policies/a.json",
                "records.jsonl",
                "tile/0/000",
            ]
            .iter()
            .enumerate()
            .map(|(i, p)| FileEntry {
                path: (*p).to_owned(),
                sha256: format!("{i:x}").repeat(64),
                size: (i as u64) << 40,
            })
            .collect(),
            format: FORMAT.into(),
            origin: "verdict.test/\"é\u{7}\\/log".into(),
            period: Period {
                start: 3,
                end: 7,
                from: from.map(str::to_owned),
                to: from.map(|_| "2026-12-07T00:00:00.5Z".to_owned()),
            },
            tree_size: u64::MAX,
        }
    }

    /// The streaming encoding is byte for byte `canonical_json` of the `Value` (spec §2), and
    /// `parse` accepts exactly it: any other spelling of the same value is refused.
    #[test]
    fn streaming_encoding_is_the_canonical_json_of_the_value() {
        for from in [None, Some("2026-12-06T00:00:00Z")] {
            let m = sample(from);
            let bytes = m.to_bytes().unwrap();
            let via_value = canonical_json(&serde_json::to_value(&m).unwrap());
            assert_eq!(String::from_utf8(bytes.clone()).unwrap(), via_value);
            assert!(parse_canonical(&bytes).is_ok());
            assert_eq!(Manifest::parse(&bytes).unwrap(), m);

            let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let pretty = serde_json::to_vec_pretty(&value).unwrap();
            let mut spaced = bytes.clone();
            spaced.push(b' ');
            let escaped = String::from_utf8(bytes.clone())
                .unwrap()
                .replace("\"checkpoint\"", "\"\\u0063heckpoint\"");
            let reordered = String::from_utf8(bytes.clone())
                .unwrap()
                .replacen("{\"path\":\"checkpoint\",", "{", 1)
                .replacen("\"size\":0}", "\"size\":0,\"path\":\"checkpoint\"}", 1);
            for bad in [pretty, spaced, escaped.into_bytes(), reordered.into_bytes()] {
                let err = Manifest::parse(&bad).unwrap_err();
                assert!(err.to_string().contains("canonical"), "{err}");
            }
        }
        for bad in [
            &b"not json"[..],
            b"[]",
            br#"{"exported_at":"x"}"#,
            br#"{"extra":1}"#,
        ] {
            assert!(matches!(
                Manifest::parse(bad),
                Err(PackageError::Manifest { .. })
            ));
        }
        // The fields in their sorted order but given as an array are not a manifest.
        let m = sample(None);
        let as_array = serde_json::to_vec(&(
            &m.exported_at,
            &m.files,
            &m.format,
            &m.origin,
            &m.period,
            m.tree_size,
        ))
        .unwrap();
        assert!(Manifest::parse(&as_array).is_err());
    }

    /// The fuzz seeds of `fuzz/corpus/manifest/` say what they are: every `valid-*` parses
    /// (and re-encodes to itself), every `invalid-*` is refused.
    #[test]
    fn fuzz_seeds_are_what_their_names_say() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/manifest");
        let mut seen = (0, 0);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = std::fs::read(&path).unwrap();
            let parsed = Manifest::parse(&bytes);
            if name.starts_with("valid-") {
                assert_eq!(parsed.unwrap().to_bytes().unwrap(), bytes, "{name}");
                seen.0 += 1;
            } else {
                assert!(parsed.is_err(), "{name}");
                seen.1 += 1;
            }
        }
        assert!(seen.0 >= 3 && seen.1 >= 10, "{seen:?}");
    }
}
