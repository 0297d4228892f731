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
    for file in package.files() {
        let file = file.map_err(input)?;
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sha2::{Digest as _, Sha256};
    use verdict_core::merkle::Hash;
    use verdict_core::note::Signer;
    use verdict_core::package::{write_tar, FileEntry, Manifest, Period, FORMAT};
    use verdict_core::receipt::{Decision, Kind, Receipt, Statement, STATEMENT_VERSION};
    use verdict_core::tile::{encode_entry_bundle, Tile, TileKind};
    use verdict_core::TreeSize;

    use super::*;

    const T0: u64 = 1_795_000_000_000;

    fn receipt(signer: &Signer, decision: Decision, kind: Kind, rules: &[u32], t: u64) -> Vec<u8> {
        Receipt::sign(
            &Statement {
                version: STATEMENT_VERSION,
                checker_key_id: signer.key_id(),
                policy_commitment: Hash([1; 32]),
                policy_version: "1.0.0".into(),
                action_commitment: Hash([2; 32]),
                decision,
                kind,
                fail_closed: false,
                violated_rules: rules.to_vec(),
                matched_variables: Vec::new(),
                undetermined_variables: Vec::new(),
                approvers: Vec::new(),
                time_ms: t,
                request_id: format!("r{t}"),
                checker_version: "t".into(),
                solver_version: "z3".into(),
            },
            signer,
        )
        .unwrap()
    }

    /// A directory package of 4 entries, period [1, 4): the reader checks digests and the file
    /// set, not signatures, so the checkpoint text is only displayed.
    fn package(dir: &Path) {
        let signer = Signer::generate("checker.example").unwrap();
        let entries = [
            receipt(&signer, Decision::Allow, Kind::Check, &[], T0),
            receipt(&signer, Decision::Deny, Kind::Check, &[0], T0 + 1),
            receipt(&signer, Decision::Deny, Kind::Check, &[0, 1], T0 + 2),
            receipt(&signer, Decision::NotApplicable, Kind::Screen, &[], T0 + 3),
        ];
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let tile = Tile::in_tree(TileKind::Entries, 0, TreeSize(4)).unwrap();
        files.insert(tile.path(), encode_entry_bundle(&entries).unwrap());
        files.insert(
            "checkpoint".into(),
            b"verdict.test/e2e\n4\nroot=\n\n\xe2\x80\x94 verdict.test/e2e sig\n".to_vec(),
        );
        let records: String = (1..4)
            .map(|i| format!("{{\"index\":{i},\"record\":{{\"request_id\":\"r\"}}}}\n"))
            .collect();
        files.insert("records.jsonl".into(), records.into_bytes());
        files.insert(
            format!("policies/{}.json", Hash([1; 32]).to_hex()),
            br#"{"name":"pay<ments>","statement_index":0,"version":"1.0.0"}"#.to_vec(),
        );
        files.insert("summary.json".into(), br#"{"receipts":3}"#.to_vec());
        let mut listed = Vec::new();
        for (path, bytes) in &files {
            let full = dir.join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, bytes).unwrap();
            listed.push(FileEntry {
                path: path.clone(),
                sha256: hex::encode(Sha256::digest(bytes)),
                size: bytes.len() as u64,
            });
        }
        let manifest = Manifest {
            exported_at: "2026-12-06T05:00:00Z".into(),
            files: listed,
            format: FORMAT.into(),
            origin: "verdict.test/e2e".into(),
            period: Period {
                start: 1,
                end: 4,
                from: None,
                to: None,
            },
            tree_size: 4,
        };
        std::fs::write(dir.join("manifest.json"), manifest.to_bytes().unwrap()).unwrap();
    }

    #[test]
    fn reads_the_period_of_a_directory_and_a_tar_package() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pkg");
        package(&dir);
        let data = report_data(&open(&dir).unwrap()).unwrap();
        assert_eq!(data.entries, 3, "index 0 is before the period");
        assert_eq!(
            (
                data.totals.deny,
                data.totals.not_applicable,
                data.totals.allow
            ),
            (2, 1, 0)
        );
        assert_eq!(data.header.tree_size, 4);
        assert_eq!(data.header.checkpoint, "verdict.test/e2e\n4\nroot=");
        assert_eq!(data.header.checkpoint_signatures, 1);
        let rows = data.rule_rows();
        assert_eq!(rows[0].label(), "pay<ments> 1.0.0 #0");
        assert_eq!(rows[0].counts.deny, 2);

        let tar = tmp.path().join("pkg.tar");
        write_tar(&dir, &tar).unwrap();
        assert_eq!(report_data(&open(&tar).unwrap()).unwrap(), data);

        let out = tmp.path().join("report.html");
        let outcome =
            crate::report::write(&tar, Some(&dir), &out, crate::report::summary_verification)
                .unwrap();
        assert_eq!(
            (outcome.entries, outcome.receipts, outcome.verified),
            (3, 3, false)
        );
        let page = std::fs::read_to_string(&out).unwrap();
        assert!(page.contains("pay&lt;ments&gt; 1.0.0 #0"));
        assert!(page.contains("<section id=\"drift\">"));
        assert!(
            page.contains("receipts</td><td>3</td>"),
            "summary.json shown"
        );
    }

    #[test]
    fn a_changed_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pkg");
        package(&dir);
        std::fs::write(dir.join("records.jsonl"), b"{}\n").unwrap();
        let err = report_data(&open(&dir).unwrap()).unwrap_err();
        assert!(err.to_string().contains("records.jsonl"), "{err}");
    }
}
