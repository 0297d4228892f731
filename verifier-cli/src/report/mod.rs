//! `verdict audit report`: one self-contained HTML page from an evidence package (issue 16
//! item 5; package layout `spec/evidence-package.md`; guide `docs/auditor-guide.md`).
//!
//! Two steps, tested apart: [`data`] reads the package's entries once, in index order, into a
//! [`data::ReportData`] of counts (memory bounded by days, rules and versions, never by the
//! number of entries); [`html`] renders it with the [`charts`] (plotters, SVG backend) and the
//! [`mapping`] to ISO/IEC 42001 Annex A and the EU AI Act.
//!
//! The page has inline CSS and SVG, no script, and a Content-Security-Policy of
//! `default-src 'none'`: opening it fetches nothing.

pub mod charts;
pub mod data;
pub mod html;
pub mod mapping;
pub mod read;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::CliError;
use html::Verification;

/// What `verdict audit report` did.
#[derive(Debug, Serialize)]
pub struct ReportOutcome {
    /// `written`.
    pub result: &'static str,
    /// The HTML file.
    pub out: PathBuf,
    /// Entries of the period read.
    pub entries: u64,
    /// Receipts among them.
    pub receipts: u64,
    /// Whether the verification section holds this run's verification (`true`) or the
    /// exporter's summary only (`false`).
    pub verified: bool,
    /// This run's verification result: `valid`, `failed`, or `not verified`.
    pub verification: &'static str,
}

impl ReportOutcome {
    /// Exit code: 1 when this run's verification failed (the report says which check), else 0.
    pub fn exit_code(&self) -> u8 {
        if self.verification == "failed" {
            crate::error::EXIT_FAILED
        } else {
            crate::error::EXIT_VALID
        }
    }

    /// One line for humans.
    pub fn human(&self) -> String {
        format!(
            "report written to {}: {} entries, {} receipts{}",
            self.out.display(),
            self.entries,
            self.receipts,
            if self.verification == "failed" {
                "; VERIFICATION FAILED, see its section"
            } else if self.verified {
                "; package verified"
            } else {
                " (verification section: the exporter's summary.json, not re-verified)"
            }
        )
    }
}

/// The verification section from the package's `summary.json` (the exporter's summary), when
/// the package is not verified by this run.
///
/// # Errors
/// [`CliError::Input`] when `summary.json` is missing or not JSON.
pub fn summary_verification(
    package: &verdict_core::package::Package,
) -> Result<Verification, CliError> {
    let bytes = package
        .read("summary.json")
        .map_err(|e| CliError::input("package", e))?;
    let summary: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| CliError::input("summary.json", e))?;
    let mut rows = Vec::new();
    if let serde_json::Value::Object(map) = &summary {
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        for k in keys {
            let v = map.get(k).map(ToString::to_string).unwrap_or_default();
            rows.push((k.clone(), v));
        }
    }
    Ok(Verification {
        source: "These are the exporter's summary (summary.json), shown as exported and not \
                 re-verified by this report: run `verdict audit verify-package` on the package, \
                 or give this command the trusted keys."
            .to_owned(),
        valid: None,
        rows,
    })
}

/// Write the report of `package` (with the drift against `previous`) to `out`, replacing it
/// atomically.
///
/// # Errors
/// [`CliError::Input`] when a package cannot be read or `out` cannot be written.
pub fn write(
    package: &Path,
    previous: Option<&Path>,
    out: &Path,
    verification: impl FnOnce(&verdict_core::package::Package) -> Result<Verification, CliError>,
) -> Result<ReportOutcome, CliError> {
    let pkg = read::open(package)?;
    let data = read::report_data(&pkg)?;
    let verification = verification(&pkg)?;
    let previous = previous
        .map(|p| read::open(p).and_then(|pkg| read::report_data(&pkg)))
        .transpose()?;
    let page = html::render(&data, previous.as_ref(), &verification)
        .map_err(|e| CliError::input("report", e))?;
    let tmp = out.with_extension("html.partial");
    std::fs::write(&tmp, page.as_bytes()).map_err(|e| CliError::input(tmp.display(), e))?;
    std::fs::rename(&tmp, out).map_err(|e| CliError::input(out.display(), e))?;
    Ok(ReportOutcome {
        result: "written",
        out: out.to_owned(),
        entries: data.entries,
        receipts: data.receipts,
        verified: verification.valid.is_some(),
        verification: match verification.valid {
            Some(true) => "valid",
            Some(false) => "failed",
            None => "not verified",
        },
    })
}

/// The verification section from this run's verification of the package, the same checks as
/// `verdict audit verify-package` ([`crate::package::verify::verify_package`]). A failed check
/// is shown (the report is still written); an input error stops the report.
///
/// # Errors
/// [`CliError::Input`] or [`CliError::Usage`] from the verification (nothing could be checked).
pub fn package_verification(
    path: &Path,
    trust: &crate::trust::Trust,
) -> Result<Verification, CliError> {
    let source = "Verified by this run with the trusted keys given: the same checks as \
                  `verdict audit verify-package` (spec evidence-package.md §9)."
        .to_owned();
    match crate::package::verify::verify_package(path, trust) {
        Ok(report) => {
            let mut rows: Vec<(String, String)> = report
                .summary
                .checks
                .iter()
                .map(|c| (c.clone(), "passed".to_owned()))
                .collect();
            if let Some(w) = report.witnesses {
                rows.push(("witness quorum".to_owned(), w));
            }
            Ok(Verification {
                source,
                valid: Some(true),
                rows,
            })
        }
        Err(CliError::Failed { check, reason }) => Ok(Verification {
            source,
            valid: Some(false),
            rows: vec![(check.to_string(), reason)],
        }),
        Err(other) => Err(other),
    }
}
