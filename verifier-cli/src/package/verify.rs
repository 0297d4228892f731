//! `verdict audit verify-package PKG`: the offline checks of spec `evidence-package.md` §9.
//! No network, no policy engine: signatures, the recomputed root, consistency, commitments,
//! approvals, times and the summary. Stops at the first failed item and names its file.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;
use verdict_core::approval::{
    parse_escalation_id, resubmission, ApprovalMessage, SignedApproval, Verdict,
};
use verdict_core::bundle::ProofBundle;
use verdict_core::merkle::leaf_hash;
use verdict_core::note::{KeyId, Verifier};
use verdict_core::package::{
    canonical_json, outside_subtrees, parse_canonical, CompactRange, Package, PackageError,
    PackageTiles, MANIFEST,
};
use verdict_core::proof::HashSource as _;
use verdict_core::receipt::{
    commit, published_request_id, CommitmentTag, Receipt, Salt, Statement,
};
use verdict_core::statement::{entry_type, EntryType, PolicyStatement};
use verdict_core::tile::{Tile, TileHashSource, TileKind, TILE_WIDTH};
use verdict_core::{Hash, TreeSize};

use super::paths;
use crate::consistency::{check_proof, open_checkpoint, parse_proof, precheck};
use crate::error::{Check, CliError};
use crate::trust::Trust;

mod items;
use items::{check_policy_bundle, check_record, policy_file};

/// The checks of spec §9 that every package gets, in order, as `summary.json` lists them
/// (`consistency` only when the package has a start checkpoint).
const CHECKS: [&str; 13] = [
    "manifest",
    "layout",
    "checkpoint_signature",
    "consistency",
    "tiles",
    "receipt_signature",
    "policy_registration",
    "entry_time",
    "records",
    "action_commitment",
    "policy_commitment",
    "approval",
    "summary",
];

/// The verification summary (spec §7), a function of the package alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Receipts of `[start, end)` by decision name.
    pub by_decision: BTreeMap<String, u64>,
    /// Receipts of `[start, end)` by kind name.
    pub by_kind: BTreeMap<String, u64>,
    /// Check names run.
    pub checks: Vec<String>,
    /// End of the period.
    pub end: u64,
    /// Entries in the period.
    pub entries: u64,
    /// Policy files.
    pub policies: u64,
    /// Policy statements in the period.
    pub policy_statements: u64,
    /// Receipts in the period.
    pub receipts: u64,
    /// Start of the period.
    pub start: u64,
    /// Tree size of the checkpoint.
    pub tree_size: u64,
}

impl Summary {
    /// The canonical bytes of `summary.json`.
    ///
    /// # Errors
    /// [`CliError::Input`] if it cannot be serialised (not expected).
    pub fn to_bytes(&self) -> Result<Vec<u8>, CliError> {
        let v = serde_json::to_value(self).map_err(|e| CliError::input("summary", e))?;
        Ok(canonical_json(&v).into_bytes())
    }
}

/// What `verify-package` prints.
#[derive(Debug, Serialize)]
pub struct PackageReport {
    /// `valid`.
    pub result: &'static str,
    /// Log origin.
    pub origin: String,
    /// The summary that was recomputed and matched.
    pub summary: Summary,
    /// Witness quorum, when a tlog-policy was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witnesses: Option<String>,
}

impl PackageReport {
    /// One human line.
    pub fn human(&self) -> String {
        let s = &self.summary;
        let mut out = format!(
            "valid: package of {} entries [{}, {}) of {} (tree size {}): {} receipts, {} policy statements, {} policies; every check passed",
            s.entries, s.start, s.end, self.origin, s.tree_size, s.receipts, s.policy_statements, s.policies
        );
        if let Some(w) = &self.witnesses {
            out.push_str(&format!("\nnote: {w}"));
        }
        out
    }
}

/// A failed check about one file.
fn fail(check: Check, path: &str, reason: impl std::fmt::Display) -> CliError {
    CliError::failed(check, format!("{path}: {reason}"))
}

/// Map a reader error to a failure naming its file.
pub(crate) fn package_failure(e: PackageError) -> CliError {
    let path = e.path().to_owned();
    match &e {
        PackageError::Open { .. } | PackageError::Io { .. } => {
            CliError::input(if path.is_empty() { "package" } else { &path }, e)
        }
        PackageError::Format { .. } if path.starts_with("tile/") => {
            CliError::failed(Check::Tiles, e)
        }
        PackageError::Format { .. } if path == paths::RECORDS => {
            CliError::failed(Check::Records, e)
        }
        _ => CliError::failed(Check::Manifest, e),
    }
}

/// Prefix a failure's reason with a path.
fn at(path: &str, e: CliError) -> CliError {
    match e {
        CliError::Failed { check, reason } => fail(check, path, reason),
        other => other,
    }
}

/// Verify the package at `path` (spec §9).
///
/// # Errors
/// [`CliError::Failed`] naming the check and the file; [`CliError::Input`] when the package
/// cannot be read; [`CliError::Usage`] without a log key or checker key.
pub fn verify_package(path: &Path, trust: &Trust) -> Result<PackageReport, CliError> {
    trust.require_log_key()?;
    trust.require_checker_key()?;
    let pkg = Package::open(path).map_err(package_failure)?;
    pkg.verify_files().map_err(package_failure)?;
    let summary = analyze(&pkg, trust)?;
    let got = pkg.read(paths::SUMMARY).map_err(package_failure)?;
    if got != summary.to_bytes()? {
        return Err(fail(
            Check::Summary,
            paths::SUMMARY,
            "differs from the summary recomputed from the package",
        ));
    }
    let cp = pkg.read(paths::CHECKPOINT).map_err(package_failure)?;
    Ok(PackageReport {
        result: "valid",
        origin: pkg.manifest().origin.clone(),
        summary,
        witnesses: trust
            .check_quorum(&cp)
            .map_err(|e| at(paths::CHECKPOINT, e))?
            .map(|q| q.human()),
    })
}

/// One policy file (spec §6), checked on its own.
struct PolicyFile {
    name: String,
    version: String,
    statement_index: u64,
    approvers: Vec<Verifier>,
    /// The statement at `statement_index` was seen in the entry range and matched.
    seen: bool,
}

/// Every check of spec §9 but `summary` (the exporter computes the summary with it, before it
/// writes `summary.json`). `summary.json` need not exist yet.
///
/// # Errors
/// As [`verify_package`].
pub fn analyze(pkg: &Package, trust: &Trust) -> Result<Summary, CliError> {
    let m = pkg.manifest();
    let (start, end) = (m.period.start, m.period.end);
    let cp_bytes = pkg.read(paths::CHECKPOINT).map_err(package_failure)?;
    let cp = open_checkpoint(&cp_bytes, trust)
        .map_err(|e| at(paths::CHECKPOINT, e))?
        .checkpoint()
        .clone();
    let n = cp.size.0;
    if m.origin != cp.origin || m.tree_size != n {
        return Err(fail(
            Check::Manifest,
            MANIFEST,
            "origin or tree_size differs from the checkpoint",
        ));
    }
    let bounds = m.period.bounds_ms().map_err(package_failure)?;
    let mut expected: BTreeSet<String> = [paths::CHECKPOINT, paths::RECORDS, paths::SUMMARY]
        .into_iter()
        .map(str::to_owned)
        .collect();

    // Start checkpoint and consistency (spec §3, §4.3).
    let has_start = pkg.has(paths::START_CHECKPOINT);
    let start_expected = bounds.is_none() && start > 0;
    if has_start != start_expected {
        return Err(fail(
            Check::Layout,
            paths::START_CHECKPOINT,
            "present exactly for a period named by checkpoints that starts after index 0",
        ));
    }
    let mut checks: Vec<String> = CHECKS.iter().map(|c| (*c).to_owned()).collect();
    if has_start {
        expected.insert(paths::START_CHECKPOINT.to_owned());
        let bytes = pkg.read(paths::START_CHECKPOINT).map_err(package_failure)?;
        let old = open_checkpoint(&bytes, trust)
            .map_err(|e| at(paths::START_CHECKPOINT, e))?
            .checkpoint()
            .clone();
        if old.size.0 != start {
            return Err(fail(
                Check::Consistency,
                paths::START_CHECKPOINT,
                format!("size {} is not the period start {start}", old.size),
            ));
        }
        if precheck(&old, &cp).map_err(|e| at(paths::START_CHECKPOINT, e))? {
            expected.insert(paths::CONSISTENCY.to_owned());
            let text = pkg.read(paths::CONSISTENCY).map_err(|e| {
                if matches!(e, PackageError::Missing { .. }) {
                    fail(Check::Layout, paths::CONSISTENCY, "missing")
                } else {
                    package_failure(e)
                }
            })?;
            let proof = parse_proof(paths::CONSISTENCY, &text)
                .map_err(|e| fail(Check::Consistency, paths::CONSISTENCY, e))?;
            if encode_proof(&proof).as_bytes() != text.as_slice() {
                return Err(fail(
                    Check::Consistency,
                    paths::CONSISTENCY,
                    "not one base64 hash per line",
                ));
            }
            check_proof(&old, &cp, &proof).map_err(|e| at(paths::CONSISTENCY, e))?;
        }
    } else {
        checks.retain(|c| c != "consistency");
    }

    // Tiles (spec §4).
    let tiles = PackageTiles::new(start, end, n).ok_or_else(|| {
        fail(
            Check::Manifest,
            MANIFEST,
            "period does not fit the tree size",
        )
    })?;
    let hash_tiles: Vec<String> = tiles.hash_tiles().iter().map(Tile::path).collect();
    for t in tiles.iter() {
        if !pkg.has(&t.path()) {
            return Err(fail(
                Check::Layout,
                &t.path(),
                "tile missing from the package",
            ));
        }
    }
    let (a, b) = pkg.entry_range().map_err(package_failure)?;
    let (left, right) = outside_subtrees(a, b, n);
    let source = TileHashSource::new(pkg, TreeSize(n));
    let tile_err = |e: verdict_core::tile::TileSourceError<PackageError>| match e {
        verdict_core::tile::TileSourceError::Read(inner) => package_failure(inner),
        other => fail(Check::Tiles, &hash_tiles.join(", "), other),
    };
    let left_hashes = source.hashes(&left).map_err(tile_err)?;
    let right_hashes = source.hashes(&right).map_err(tile_err)?;
    let mut range = CompactRange::new();
    for (&(level, _), h) in left.iter().zip(&left_hashes) {
        range.push(level, *h);
    }

    // Policy files (spec §6).
    let mut policies: HashMap<Hash, PolicyFile> = HashMap::new();
    let mut registered: HashMap<Hash, u64> = HashMap::new();
    for f in pkg.files() {
        let f = f.map_err(package_failure)?;
        let Some(hex) = f
            .path
            .strip_prefix("policies/")
            .and_then(|p| p.strip_suffix(".json"))
        else {
            continue;
        };
        let (commitment, pf) = policy_file(pkg, &f.path, hex)?;
        if pf.statement_index < a {
            let bpath = paths::policy_bundle(hex);
            expected.insert(bpath.clone());
            check_policy_bundle(pkg, &bpath, &cp_bytes, commitment, &pf, trust)?;
            registered.insert(commitment, pf.statement_index);
        } else if pf.statement_index >= b {
            return Err(fail(
                Check::PolicyRegistration,
                &f.path,
                "statement_index is after the package's entries",
            ));
        }
        policies.insert(commitment, pf);
    }

    // Entries, records, times (spec §3.1, §5).
    let mut summary = Summary {
        start,
        end,
        tree_size: n,
        entries: end - start,
        ..Summary::default()
    };
    let mut wanted_policies: BTreeSet<Hash> = BTreeSet::new();
    let mut records = pkg.records().map_err(package_failure)?;
    let mut prev_time: Option<u64> = None;
    let entries = pkg.entries().map_err(package_failure)?;
    for item in entries {
        let (index, entry) = item.map_err(package_failure)?;
        range.push(0, leaf_hash(&entry));
        let bpath = Tile::in_tree(
            TileKind::Entries,
            index / u64::from(TILE_WIDTH),
            TreeSize(n),
        )
        .map(|t| t.path())
        .unwrap_or_default();
        let here = format!("{bpath} (index {index})");
        let in_period = (start..end).contains(&index);
        let (time, receipt) = match entry_type(&entry) {
            EntryType::PolicyStatement => {
                let s = PolicyStatement::verify(&entry, &trust.checker_keys).map_err(|e| {
                    fail(
                        Check::ReceiptSignature,
                        &here,
                        format!("policy statement: {e}"),
                    )
                })?;
                let r = s.record();
                registered.entry(r.policy_commitment).or_insert(index);
                if let Some(pf) = policies.get_mut(&r.policy_commitment) {
                    if pf.statement_index == index {
                        if pf.name != r.name || pf.version != r.policy_version {
                            return Err(fail(
                                Check::PolicyCommitment,
                                &paths::policy(&r.policy_commitment.to_hex()),
                                format!("name or version differs from the statement at {index}"),
                            ));
                        }
                        pf.seen = true;
                    }
                }
                if in_period {
                    summary.policy_statements += 1;
                    wanted_policies.insert(r.policy_commitment);
                }
                (r.time_ms, None)
            }
            _ => {
                let r = Receipt::verify(&entry, &trust.checker_keys)
                    .map_err(|e| at(&here, crate::verify::receipt_failure(e)))?;
                let st = r.statement().clone();
                if in_period {
                    summary.receipts += 1;
                    *summary
                        .by_decision
                        .entry(st.decision.as_str().to_owned())
                        .or_default() += 1;
                    *summary
                        .by_kind
                        .entry(st.kind.as_str().to_owned())
                        .or_default() += 1;
                    wanted_policies.insert(st.policy_commitment);
                    match registered.get(&st.policy_commitment) {
                        Some(&k) if k < index => {}
                        _ => {
                            return Err(fail(
                                Check::PolicyRegistration,
                                &here,
                                format!(
                                    "receipt cites policy {} that no statement at a lower index registers",
                                    st.policy_commitment.to_hex()
                                ),
                            ))
                        }
                    }
                }
                (st.time_ms, Some(st))
            }
        };
        if prev_time.is_some_and(|p| p > time) {
            return Err(fail(
                Check::EntryTime,
                &here,
                "entry time is below the previous entry's (spec receipt.md §9)",
            ));
        }
        prev_time = Some(time);
        if let Some((from, to)) = bounds {
            let t = i128::from(time);
            let (from, to) = (i128::from(from), i128::from(to));
            let ok = if in_period {
                from <= t && t < to
            } else if index.checked_add(1) == Some(start) {
                t < from
            } else if index == end {
                t >= to
            } else {
                true
            };
            if !ok {
                return Err(fail(
                    Check::EntryTime,
                    &here,
                    "entry time does not place it where the period says (spec evidence-package.md §3)",
                ));
            }
        }
        if in_period {
            let line = records
                .next()
                .ok_or_else(|| {
                    fail(
                        Check::Records,
                        paths::RECORDS,
                        format!("no line for index {index}"),
                    )
                })?
                .map_err(package_failure)?;
            check_record(index, receipt.as_ref(), line.record.as_ref(), &policies)?;
        }
    }
    if let Some(extra) = records.next() {
        return Err(match extra {
            Err(e) => package_failure(e),
            Ok(line) => fail(
                Check::Records,
                paths::RECORDS,
                format!("unexpected line for index {}", line.index),
            ),
        });
    }
    for (&(level, _), h) in right.iter().zip(&right_hashes) {
        range.push(level, *h);
    }
    let root = if n == 0 {
        verdict_core::merkle::empty_root()
    } else {
        range.root()
    };
    if root != cp.root {
        let files = if hash_tiles.is_empty() {
            "tile/entries".to_owned()
        } else {
            hash_tiles.join(", ")
        };
        return Err(fail(
            Check::Tiles,
            &files,
            format!(
                "root of {n} recomputed from the package's tiles is {root}, the checkpoint says {}",
                cp.root
            ),
        ));
    }

    // Policy layout (spec §6).
    for (c, pf) in &policies {
        let p = paths::policy(&c.to_hex());
        if !wanted_policies.contains(c) {
            return Err(fail(
                Check::Layout,
                &p,
                "policy neither cited nor registered in the period",
            ));
        }
        if pf.statement_index >= a && !pf.seen {
            return Err(fail(
                Check::PolicyCommitment,
                &p,
                "the entry at statement_index is not this policy's statement",
            ));
        }
        expected.insert(p);
    }
    for c in &wanted_policies {
        let p = paths::policy(&c.to_hex());
        if !policies.contains_key(c) {
            return Err(fail(
                Check::Layout,
                &p,
                "missing: a receipt or statement of the period cites it",
            ));
        }
    }
    // The first path, bytewise, listed but not of the layout or of the layout but not listed
    // (the first of the symmetric difference). Tile paths are matched by parsing them against
    // the package's tiles (`PackageTiles::contains`), not through a set of every path (issue
    // 16, "Scale"); a tile of the layout missing from the manifest was refused above.
    let of_layout = |p: &str| {
        expected.contains(p)
            || Tile::parse_path(p).is_ok_and(|t| t.path() == p && tiles.contains(&t))
    };
    let mut unlisted_extra = None;
    for f in pkg.files() {
        let f = f.map_err(package_failure)?;
        if !of_layout(&f.path) {
            unlisted_extra = Some(f.path);
            break;
        }
    }
    let missing = expected.iter().find(|p| !pkg.has(p)).cloned();
    let first = match (unlisted_extra, missing) {
        (Some(x), Some(y)) if y < x => Some((y, false)),
        (Some(x), _) => Some((x, true)),
        (None, Some(y)) => Some((y, false)),
        (None, None) => None,
    };
    if let Some((p, listed)) = first {
        let why = if listed {
            "not a file of this package's layout (spec evidence-package.md §1)"
        } else {
            "missing from the package"
        };
        return Err(fail(Check::Layout, &p, why));
    }
    summary.policies = policies.len() as u64;
    summary.checks = checks;
    Ok(summary)
}

/// The text form of a consistency proof: one base64 hash per line (spec §1).
pub fn encode_proof(proof: &[Hash]) -> String {
    proof
        .iter()
        .map(|h| format!("{}\n", h.to_base64()))
        .collect()
}
