//! `manifest.json` of an evidence package (spec `evidence-package.md` §2).

use serde::{Deserialize, Serialize};

#[cfg(doc)]
use super::canonical::canonical_json;
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
    /// The bytes are deserialised straight into the typed manifest (no `serde_json::Value` tree
    /// of the file list), and the canonical form (spec §2) is checked by streaming the typed
    /// manifest's canonical encoding against the bytes: the encoding of a typed value equals
    /// [`canonical_json`] of its `Value` (same keys, sorted; same serde_json scalars), so this
    /// accepts exactly what `parse_canonical` followed by a typed conversion accepts, with
    /// memory of one compact entry per listed file (issue 16, "Scale").
    ///
    /// # Errors
    /// [`PackageError::Manifest`] or [`PackageError::Path`].
    pub fn parse(bytes: &[u8]) -> Result<Self, PackageError> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| {
            if e.is_data() {
                manifest_err(format!("{e}"))
            } else {
                manifest_err(format!("not JSON: {e}"))
            }
        })?;
        let mut cmp = Compare {
            expected: bytes,
            pos: 0,
        };
        if m.write_canonical(&mut cmp).is_err() || cmp.pos != bytes.len() {
            return Err(manifest_err("not in canonical JSON (compact, keys sorted)"));
        }
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
        let mut out = Vec::new();
        self.write_canonical(&mut out)
            .map_err(|e| manifest_err(e.to_string()))?;
        Ok(out)
    }

    /// Write the canonical JSON of the manifest (spec §2) to `out`, streaming: the same bytes
    /// as [`canonical_json`] of its `serde_json::Value`, keys sorted bytewise at every level,
    /// without building that tree. The exporter writes `manifest.json` with it.
    ///
    /// # Errors
    /// The writer's error.
    pub fn write_canonical<W: std::io::Write>(&self, out: &mut W) -> std::io::Result<()> {
        out.write_all(b"{\"exported_at\":")?;
        json(out, &self.exported_at)?;
        out.write_all(b",\"files\":[")?;
        for (i, f) in self.files.iter().enumerate() {
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

    /// The listed file at `path`.
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files
            .binary_search_by(|f| f.path.as_bytes().cmp(path.as_bytes()))
            .ok()
            .and_then(|i| self.files.get(i))
    }
}

/// One scalar in serde_json's compact form (what [`canonical_json`] writes for it).
fn json<W: std::io::Write, T: Serialize + ?Sized>(out: &mut W, v: &T) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, v).map_err(std::io::Error::other)
}

/// A writer that compares what is written with `expected` from `pos` on, and fails at the
/// first difference (the streaming canonical check of [`Manifest::parse`]).
struct Compare<'a> {
    expected: &'a [u8],
    pos: usize,
}

impl std::io::Write for Compare<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let end = self.pos.saturating_add(buf.len());
        if self.expected.get(self.pos..end) != Some(buf) {
            return Err(std::io::Error::other("not canonical"));
        }
        self.pos = end;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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
}
