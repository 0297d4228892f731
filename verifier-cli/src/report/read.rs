//! Feeding a package to the [`Aggregator`]: the manifest and checkpoint for the header, the
//! policy files, then every index of the period with its entry (from the entry bundles) and its
//! record (from `records.jsonl`), streamed together through `verdict_core::package`.

use std::path::Path;

use verdict_core::package::{Package, PackageError};

use super::data::{checkpoint_parts, Aggregator, Header, PolicyFile, ReportData};
use crate::error::CliError;

/// Most bytes of `checkpoint` read (a signed note is at most 1 MiB).
const MAX_CHECKPOINT: usize = verdict_core::note::MAX_NOTE_SIZE;

fn input(e: PackageError) -> CliError {
    CliError::input("package", e)
}

/// Read the whole package into a [`ReportData`], in one pass over its entries and records.
///
/// # Errors
/// [`CliError::Input`] when the package cannot be opened or read, or a file does not match the
/// manifest (the report is made only from a package whose files are the listed ones).
pub fn report_data(package: &Package) -> Result<ReportData, CliError> {
    let m = package.manifest();
    let checkpoint = package.read("checkpoint").map_err(input)?;
    let checkpoint = String::from_utf8_lossy(
        checkpoint
            .get(..MAX_CHECKPOINT)
            .unwrap_or(checkpoint.as_slice()),
    )
    .into_owned();
    let (body, signatures) = checkpoint_parts(&checkpoint);
    let mut agg = Aggregator::new(Header {
        origin: m.origin.clone(),
        exported_at: m.exported_at.clone(),
        from: m.period.from.clone(),
        to: m.period.to.clone(),
        start: m.period.start,
        end: m.period.end,
        tree_size: m.tree_size,
        checkpoint: body,
        checkpoint_signatures: signatures,
        has_start_checkpoint: package.has("start-checkpoint"),
    });
    for file in &m.files {
        if let Some(p) = policy_file(package, &file.path)? {
            agg.policy_file(&p);
        }
    }
    for_each_entry(package, |index, entry, record| {
        agg.entry(index, entry, record)
    })?;
    Ok(agg.finish())
}

/// Call `f` for every index of the period, in order, with its entry bytes and its record.
///
/// # Errors
/// [`CliError::Input`] when a file is missing, malformed or does not match the manifest, or the
/// entries do not cover the period.
pub fn for_each_entry(
    package: &Package,
    mut f: impl FnMut(u64, &[u8], Option<&serde_json::Value>),
) -> Result<(), CliError> {
    let mut entries = package.entries().map_err(input)?;
    for line in package.records().map_err(input)? {
        let line = line.map_err(input)?;
        let entry = loop {
            match entries.next() {
                Some(Ok((i, bytes))) if i == line.index => break bytes,
                Some(Ok((i, _))) if i < line.index => {}
                Some(Err(e)) => return Err(input(e)),
                Some(Ok(_)) | None => {
                    return Err(CliError::input(
                        "package",
                        format!("no entry for index {} in the entry bundles", line.index),
                    ))
                }
            }
        };
        f(line.index, &entry, line.record.as_ref());
    }
    Ok(())
}

/// The policy file at `path` (`policies/<hex>.json`), or `None` for another file.
fn policy_file(package: &Package, path: &str) -> Result<Option<PolicyFile>, CliError> {
    let Some(hex) = path
        .strip_prefix("policies/")
        .and_then(|p| p.strip_suffix(".json"))
    else {
        return Ok(None);
    };
    let bytes = package.read(path).map_err(input)?;
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| CliError::input(path, e))?;
    let text = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Ok(Some(PolicyFile {
        commitment: hex.to_owned(),
        name: text("name"),
        version: text("version"),
        statement_index: v
            .get("statement_index")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
    }))
}

/// Open a package (directory or `.tar`).
///
/// # Errors
/// [`CliError::Input`] naming the offending file.
pub fn open(path: &Path) -> Result<Package, CliError> {
    Package::open(path).map_err(|e| CliError::input(path.display(), e))
}
