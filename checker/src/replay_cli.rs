//! `verdict-policy replay PKG` (issue 16 item 4): open an evidence package (directory or
//! `.tar`, `spec/evidence-package.md`), compile its policy files, and replay every entry of the
//! period with [`verdict_checker::replay::Replayer`], streaming the records and the entries
//! together (memory bounded by the policies, not the period).
//!
//! Output: one line per difference (`index N: FIELD: expected X, got Y`) and a summary; with
//! `--json`, one object `{"summary": {...}, "differences": [...]}` (at most
//! [`MAX_JSON_DIFFERENCES`] listed; the summary counts all). Exit 0 when none differ, 1 when any
//! differs, 2 when the package cannot be read or a policy file is unusable.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use verdict_checker::replay::{Difference, PolicyText, Replayer};
use verdict_core::package::{Package, PackageError};

/// Most differences listed in `--json` output.
pub const MAX_JSON_DIFFERENCES: usize = 10_000;

/// A failure of the command: exit 2 with this message.
pub struct Unreadable(pub String);

fn package_error(e: PackageError) -> Unreadable {
    Unreadable(format!("package: {e}"))
}

/// Replay the package at `path`; returns the exit code (0 or 1).
///
/// # Errors
/// [`Unreadable`] (exit 2) when the package or a policy file cannot be used.
pub fn run(path: &Path, timeout: Duration, json_out: bool) -> Result<u8, Unreadable> {
    let package = Package::open(path).map_err(package_error)?;
    let mut texts = Vec::new();
    for file in package.files() {
        let file = file.map_err(package_error)?;
        let Some(hex) = file
            .path
            .strip_prefix("policies/")
            .and_then(|p| p.strip_suffix(".json"))
        else {
            continue;
        };
        let bytes = package.read(&file.path).map_err(package_error)?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Unreadable(format!("{}: {e}", file.path)))?;
        let field = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| Unreadable(format!("{}: no string field {k:?}", file.path)))
        };
        texts.push(PolicyText {
            commitment: hex.to_owned(),
            text: field("text")?,
            salt: field("salt")?,
        });
    }
    let mut replayer = Replayer::new(&texts, timeout).map_err(|e| Unreadable(e.to_string()))?;
    let mut listed: Vec<Difference> = Vec::new();
    let mut entries = package.entries().map_err(package_error)?;
    for line in package.records().map_err(package_error)? {
        let line = line.map_err(package_error)?;
        let entry = loop {
            match entries.next() {
                Some(Ok((i, bytes))) if i == line.index => break bytes,
                Some(Ok((i, _))) if i < line.index => {}
                Some(Err(e)) => return Err(package_error(e)),
                Some(Ok(_)) | None => {
                    return Err(Unreadable(format!(
                        "package: no entry for index {} in the entry bundles",
                        line.index
                    )))
                }
            }
        };
        let diffs = replayer
            .entry(line.index, &entry, line.record.as_ref())
            .map_err(|e| Unreadable(e.to_string()))?;
        for d in diffs {
            if json_out {
                if listed.len() < MAX_JSON_DIFFERENCES {
                    listed.push(d);
                }
            } else {
                println!(
                    "index {}: {}: expected {}, got {}",
                    d.index, d.what, d.expected, d.got
                );
            }
        }
    }
    let s = &replayer.summary;
    if json_out {
        let out = json!({"summary": s, "differences": listed});
        println!("{out}");
    } else {
        println!(
            "replayed {} entries: {} checks ({} final decisions of escalations), {} screens, {} policy statements; {} differ",
            s.entries, s.checks, s.escalation_finals, s.screens, s.statements, s.differ
        );
    }
    Ok(u8::from(s.differ > 0))
}
