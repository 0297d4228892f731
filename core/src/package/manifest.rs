//! `manifest.json` of an evidence package (spec `evidence-package.md` §2).

use serde::{Deserialize, Serialize};

use super::canonical::{canonical_json, parse_canonical};
use super::PackageError;

/// The `format` value of a v1 package.
pub const FORMAT: &str = "verdict-evidence-package/v1";
/// Path of the manifest inside a package.
pub const MANIFEST: &str = "manifest.json";
/// Largest manifest a reader accepts (about 100,000 files).
pub const MAX_MANIFEST_LEN: u64 = 16 << 20;

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
    /// Parse and validate a manifest: canonical JSON, known fields only, [`FORMAT`], valid and
    /// sorted unique paths, hex digests, `start <= end <= tree_size`, times that parse.
    ///
    /// # Errors
    /// [`PackageError::Manifest`] or [`PackageError::Path`].
    pub fn parse(bytes: &[u8]) -> Result<Self, PackageError> {
        let value = parse_canonical(bytes).map_err(manifest_err)?;
        let m: Manifest =
            serde_json::from_value(value).map_err(|e| manifest_err(format!("{e}")))?;
        if m.format != FORMAT {
            return Err(manifest_err(format!("format is not {FORMAT}")));
        }
        if m.period.start > m.period.end || m.period.end > m.tree_size {
            return Err(manifest_err("period is not start <= end <= tree_size"));
        }
        m.period.bounds_ms()?;
        parse_time_ms(&m.exported_at)?;
        let mut prev: Option<&str> = None;
        for f in &m.files {
            super::check_path(&f.path)?;
            if f.path == MANIFEST {
                return Err(manifest_err("manifest.json lists itself"));
            }
            if prev.is_some_and(|p| p.as_bytes() >= f.path.as_bytes()) {
                return Err(manifest_err(format!(
                    "files are not sorted and unique at {}",
                    f.path
                )));
            }
            if f.sha256.len() != 64
                || !f
                    .sha256
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                return Err(manifest_err(format!(
                    "sha256 of {} is not 64 lowercase hex",
                    f.path
                )));
            }
            prev = Some(&f.path);
        }
        Ok(m)
    }

    /// The canonical bytes of the manifest (what [`Manifest::parse`] accepts).
    ///
    /// # Errors
    /// [`PackageError::Manifest`] if it cannot be serialised (not expected).
    pub fn to_bytes(&self) -> Result<Vec<u8>, PackageError> {
        let value = serde_json::to_value(self).map_err(|e| manifest_err(e.to_string()))?;
        Ok(canonical_json(&value).into_bytes())
    }

    /// The listed file at `path`.
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files
            .binary_search_by(|f| f.path.as_bytes().cmp(path.as_bytes()))
            .ok()
            .and_then(|i| self.files.get(i))
    }
}
