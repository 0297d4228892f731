//! `verdict audit`: the auditor's sampling tool against a live log.
//!
//! 1. fetch `/checkpoint` and verify it with the trusted log key;
//! 2. prove consistency with the last checkpoint verified (persisted in `--state`) and with
//!    `--since`; a rollback or fork is a loud failure;
//! 3. sample N leaf indices reproducibly from the seed ([`sample`]);
//! 4. fetch their entry bundles and hash tiles (at most [`PARALLEL`] in flight);
//! 5. recompute each inclusion proof from the tiles and verify it against the root;
//! 6. verify every sampled receipt's signature with a trusted checker key;
//! 7. count decisions by outcome, kind and policy commitment.
//!
//! `--full` instead downloads every entry bundle and level-0 tile, checks every receipt,
//! recomputes the root of the whole log and checks each stored higher-level tile hash.

pub mod full;
pub mod sample;
pub mod state;

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::sync::Arc;

use verdict_core::checkpoint::{Checkpoint, VerifiedCheckpoint};
use verdict_core::merkle::leaf_hash;
use verdict_core::note::Verifier;
use verdict_core::proof::{inclusion_proof, verify_inclusion, ProveError};
use verdict_core::receipt::Receipt;
use verdict_core::tile::{decode_entry_bundle, TileHashSource, TileKind, TileSourceError};
use verdict_core::LeafIndex;

use crate::consistency::{check_proof, open_checkpoint, precheck, proof_from_tiles};
use crate::error::{Check, CliError};
use crate::fetch::{tile_at, Fetcher, HttpTiles, MAX_CHECKPOINT_BODY};
use crate::names::{decision_name, kind_name};
use crate::trust::Trust;
use crate::verify::receipt_failure;

/// Samples verified concurrently (each fetching its tiles).
pub const PARALLEL: usize = 16;
/// At most this many failures are listed in a report (all are counted).
pub const MAX_LISTED_FAILURES: usize = 100;

/// Audit options.
#[derive(Clone, Debug)]
pub struct AuditOptions {
    /// Base URL of the log.
    pub log: String,
    /// A checkpoint file the auditor already holds: sample only entries after it.
    pub since: Option<std::path::PathBuf>,
    /// Number of entries to sample (ignored with `full`).
    pub sample: u64,
    /// Sampling seed; a random one is chosen and reported when absent.
    pub seed: Option<String>,
    /// State directory holding the last verified checkpoint.
    pub state: Option<std::path::PathBuf>,
    /// Check every entry and tile instead of sampling.
    pub full: bool,
    /// Show a progress bar (only honoured when stderr is a terminal).
    pub progress: bool,
}

/// One failed sample.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SampleFailure {
    /// Leaf index.
    pub index: u64,
    /// The failed check.
    pub check: Check,
    /// What it found.
    pub reason: String,
}

/// Decision counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// By decision.
    pub by_decision: BTreeMap<String, u64>,
    /// By kind.
    pub by_kind: BTreeMap<String, u64>,
    /// By policy commitment (hex) and version.
    pub by_policy: BTreeMap<String, u64>,
}

impl Counts {
    fn add(&mut self, receipt: &verdict_core::receipt::VerifiedReceipt) {
        let s = receipt.statement();
        *self
            .by_decision
            .entry(decision_name(s.decision).to_owned())
            .or_default() += 1;
        *self
            .by_kind
            .entry(kind_name(s.kind).to_owned())
            .or_default() += 1;
        *self
            .by_policy
            .entry(format!(
                "{} ({})",
                s.policy_commitment.to_hex(),
                s.policy_version
            ))
            .or_default() += 1;
    }
}

/// What `verdict audit` established.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AuditReport {
    /// `"valid"` or `"failed"`.
    pub result: &'static str,
    /// Log URL.
    pub log: String,
    /// Log origin.
    pub origin: String,
    /// The log key that verified the checkpoint.
    pub log_key: String,
    /// Tree size audited.
    pub tree_size: u64,
    /// Root (base64).
    pub root: String,
    /// Size of the previously verified checkpoint from `--state`, if any.
    pub previous_size: Option<u64>,
    /// Size of the `--since` checkpoint, if any.
    pub since_size: Option<u64>,
    /// `"sample"` or `"full"`.
    pub mode: &'static str,
    /// The sampled range `[start, end)`.
    pub range: [u64; 2],
    /// The seed used (reuse it to reproduce the sample).
    pub seed: Option<String>,
    /// Entries checked.
    pub checked: u64,
    /// Entries whose inclusion and receipt signature verified.
    pub verified: u64,
    /// Failures (at most [`MAX_LISTED_FAILURES`] listed).
    pub failures: Vec<SampleFailure>,
    /// Total number of failures.
    pub failure_count: u64,
    /// Counts of verified receipts.
    pub counts: Counts,
    /// Policy versions registered in the log (full mode): `<index>: <name> <version> <commitment>`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policy_versions: Vec<String>,
    /// A note about witnesses, when the policy lists any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witnesses: Option<String>,
}

impl AuditReport {
    /// Whether any entry failed.
    pub fn failed(&self) -> bool {
        self.failure_count > 0
    }

    /// A short human report: one summary line, then counts, then failures.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let head = if self.failed() { "FAILED" } else { "OK" };
        let prev = match self.previous_size {
            Some(p) => format!("; consistent with the previously verified size {p}"),
            None => String::new(),
        };
        out.push_str(&format!(
            "{head}: audited {} size {} (log key {}){prev}: {} of {} {} entries in [{}, {}) verified \
             (inclusion from tiles + receipt signature){}\n",
            self.origin,
            self.tree_size,
            self.log_key,
            self.verified,
            self.checked,
            self.mode,
            self.range[0],
            self.range[1],
            self.seed
                .as_ref()
                .map(|s| format!(", seed {s}"))
                .unwrap_or_default(),
        ));
        for (title, map) in [
            ("decision", &self.counts.by_decision),
            ("kind", &self.counts.by_kind),
            ("policy", &self.counts.by_policy),
        ] {
            for (k, v) in map {
                out.push_str(&format!("  {title} {k}: {v}\n"));
            }
        }
        if let Some(w) = &self.witnesses {
            out.push_str(&format!("  note: {w}\n"));
        }
        for f in &self.failures {
            out.push_str(&format!(
                "  FAILED entry {}: check {} failed: {}\n",
                f.index, f.check, f.reason
            ));
        }
        if self.failure_count > self.failures.len() as u64 {
            out.push_str(&format!(
                "  ... and {} more failures\n",
                self.failure_count - self.failures.len() as u64
            ));
        }
        out
    }
}

/// Run an audit.
///
/// # Errors
/// [`CliError::Failed`] for a bad checkpoint, rollback or fork; [`CliError::Network`],
/// [`CliError::Usage`], [`CliError::Input`]. Failed *entries* are in the report instead.
pub async fn run(opts: &AuditOptions, trust: &Trust) -> Result<AuditReport, CliError> {
    trust.require_log_key()?;
    trust.require_checker_key()?;
    let fetcher = Fetcher::new(&opts.log)?;
    // 1. the current checkpoint
    let note = fetcher.get("checkpoint", MAX_CHECKPOINT_BODY).await?;
    let current = open_checkpoint(&note, trust)?;
    let cp = current.checkpoint().clone();
    let tiles = HttpTiles::new(fetcher.clone(), tokio::runtime::Handle::current());

    // 2. consistency with what we verified before
    let state = opts.state.as_deref().map(state::StateDir::new);
    let previous = match &state {
        Some(s) => match s.load()? {
            Some(bytes) => Some(open_checkpoint(&bytes, trust).map_err(|e| {
                CliError::input("--state checkpoint", format!("does not verify: {e}"))
            })?),
            None => None,
        },
        None => None,
    };
    let since = match &opts.since {
        Some(path) => {
            let bytes = crate::files::read_limited(path, crate::files::MAX_TEXT_FILE)?;
            Some(open_checkpoint(&bytes, trust)?)
        }
        None => None,
    };
    for old in previous.iter().chain(since.iter()) {
        prove_extends(&tiles, old, &current).await?;
    }

    let mut report = AuditReport {
        result: "valid",
        log: fetcher.base().to_owned(),
        origin: cp.origin.clone(),
        log_key: current
            .note()
            .verified_by()
            .first()
            .map(|id| format!("{}+{id}", cp.origin))
            .unwrap_or_default(),
        tree_size: cp.size.0,
        root: cp.root.to_base64(),
        previous_size: previous.as_ref().map(|p| p.checkpoint().size.0),
        since_size: since.as_ref().map(|s| s.checkpoint().size.0),
        mode: if opts.full { "full" } else { "sample" },
        range: [0, cp.size.0],
        seed: None,
        checked: 0,
        verified: 0,
        failures: Vec::new(),
        failure_count: 0,
        counts: Counts::default(),
        policy_versions: Vec::new(),
        witnesses: trust.witness_note(),
    };

    if opts.full {
        let outcome = full::run(&tiles, &cp, &trust.checker_keys, opts.progress).await?;
        report.checked = outcome.checked;
        report.verified = outcome.verified;
        report.counts = outcome.counts;
        report.policy_versions = outcome
            .registrations
            .iter()
            .map(|(i, v)| format!("{i}: {v}"))
            .collect();
        report.failure_count = outcome.failures.len() as u64;
        report.failures = outcome.failures;
    } else {
        let start = since.as_ref().map_or(0, |s| s.checkpoint().size.0);
        report.range = [start, cp.size.0];
        let seed = opts.seed.clone().unwrap_or_else(|| {
            use rand::RngCore as _;
            let mut b = [0u8; 16];
            rand::thread_rng().fill_bytes(&mut b);
            hex::encode(b)
        });
        let indices = sample::sample(&seed, start, cp.size.0, opts.sample);
        report.seed = Some(seed);
        run_samples(
            &tiles,
            &cp,
            &trust.checker_keys,
            &indices,
            opts.progress,
            &mut report,
        )
        .await?;
    }
    report.failures.truncate(MAX_LISTED_FAILURES);
    if report.failed() {
        report.result = "failed";
    } else if let Some(s) = &state {
        s.save(&note)?;
    }
    Ok(report)
}

/// Prove that `new` extends `old`, computing the proof from the log's tiles.
async fn prove_extends(
    tiles: &HttpTiles,
    old: &VerifiedCheckpoint,
    new: &VerifiedCheckpoint,
) -> Result<(), CliError> {
    let (o, n) = (old.checkpoint().clone(), new.checkpoint().clone());
    if !precheck(&o, &n)? {
        return Ok(());
    }
    let t = tiles.clone();
    tokio::task::spawn_blocking(move || {
        let proof = proof_from_tiles(&t, &o, &n)?;
        check_proof(&o, &n, &proof)
    })
    .await
    .map_err(|e| CliError::input("consistency task", e))?
}

fn progress_bar(enabled: bool, len: u64) -> indicatif::ProgressBar {
    if enabled && std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(len);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} entries ({per_sec})",
        ) {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    }
}

async fn run_samples(
    tiles: &HttpTiles,
    cp: &Checkpoint,
    checkers: &[Verifier],
    indices: &[u64],
    progress: bool,
    report: &mut AuditReport,
) -> Result<(), CliError> {
    let bar = progress_bar(progress, indices.len() as u64);
    let checkers: Arc<Vec<Verifier>> = Arc::new(checkers.to_vec());
    let cp = Arc::new(cp.clone());
    // Group samples by entry bundle: each bundle is fetched once.
    let mut groups: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for &i in indices {
        groups.entry(i / 256).or_default().push(i);
    }
    let mut set = tokio::task::JoinSet::new();
    let mut next = groups.into_values();
    let mut first_error: Option<CliError> = None;
    loop {
        while set.len() < PARALLEL && first_error.is_none() {
            let Some(group) = next.next() else { break };
            let (t, c, k) = (tiles.clone(), Arc::clone(&cp), Arc::clone(&checkers));
            set.spawn_blocking(move || verify_group(&t, &c, &group, &k));
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        let outcomes = joined.map_err(|e| CliError::input("sample task", e))?;
        bar.inc(outcomes.len() as u64);
        for (index, outcome) in outcomes {
            report.checked += 1;
            match outcome {
                Ok(Verified::Receipt(receipt)) => {
                    report.verified += 1;
                    report.counts.add(&receipt);
                }
                Ok(Verified::Statement(_)) => {
                    report.verified += 1;
                    *report
                        .counts
                        .by_kind
                        .entry("policy-statement".to_owned())
                        .or_default() += 1;
                }
                Err(CliError::Failed { check, reason }) => {
                    report.failure_count += 1;
                    report.failures.push(SampleFailure {
                        index,
                        check,
                        reason,
                    });
                }
                Err(other) => {
                    if first_error.is_none() {
                        first_error = Some(other);
                    }
                }
            }
        }
    }
    bar.finish_and_clear();
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Verify the sampled entries of one entry bundle (all `indices` share `index / 256`).
fn verify_group(
    tiles: &HttpTiles,
    cp: &Checkpoint,
    indices: &[u64],
    checkers: &[Verifier],
) -> Vec<(u64, Result<Verified, CliError>)> {
    let Some(&first) = indices.first() else {
        return Vec::new();
    };
    match fetch_entries(tiles, cp, first / 256) {
        Ok(entries) => indices
            .iter()
            .map(|&i| (i, verify_entry(tiles, cp, &entries, i, checkers)))
            .collect(),
        Err(e) => indices.iter().map(|&i| (i, Err(e.clone()))).collect(),
    }
}

fn fetch_entries(tiles: &HttpTiles, cp: &Checkpoint, n: u64) -> Result<Vec<Vec<u8>>, CliError> {
    let tile = tile_at(TileKind::Entries, n, cp.size.0)
        .ok_or_else(|| CliError::usage(format!("entry bundle {n} is beyond size {}", cp.size)))?;
    let bytes = tiles.fetch(tile)?;
    let entries = decode_entry_bundle(&bytes).map_err(|e| {
        CliError::failed(Check::Tiles, format!("entry bundle {}: {e}", tile.path()))
    })?;
    if entries.len() != usize::from(tile.width) {
        return Err(CliError::failed(
            Check::Tiles,
            format!(
                "entry bundle {} holds {} entries, expected {}",
                tile.path(),
                entries.len(),
                tile.width
            ),
        ));
    }
    Ok(entries)
}

/// Verify one sampled entry: fetch its entry bundle, recompute its inclusion from hash tiles,
/// verify its receipt. Blocking.
///
/// # Errors
/// [`CliError::Failed`] naming the check; [`CliError::Network`].
pub fn verify_sample(
    tiles: &HttpTiles,
    cp: &Checkpoint,
    index: u64,
    checkers: &[Verifier],
) -> Result<Verified, CliError> {
    let entries = fetch_entries(tiles, cp, index / 256)?;
    verify_entry(tiles, cp, &entries, index, checkers)
}

/// Verify entry `index` given its (already fetched and decoded) entry bundle.
fn verify_entry(
    tiles: &HttpTiles,
    cp: &Checkpoint,
    entries: &[Vec<u8>],
    index: u64,
    checkers: &[Verifier],
) -> Result<Verified, CliError> {
    let size = cp.size;
    let entry = usize::try_from(index % 256)
        .ok()
        .and_then(|i| entries.get(i))
        .ok_or_else(|| CliError::failed(Check::Tiles, "entry missing from its bundle"))?;
    let leaf = leaf_hash(entry);
    let source = TileHashSource::new(tiles, size);
    let proof = inclusion_proof(&source, LeafIndex(index), size).map_err(|e| match e {
        ProveError::Source(TileSourceError::Read(inner)) => inner,
        other => CliError::failed(Check::Tiles, other),
    })?;
    verify_inclusion(&leaf, LeafIndex(index), size, &proof, &cp.root)
        .map_err(|e| CliError::failed(Check::Inclusion, e))?;
    if verdict_core::statement::entry_type(entry)
        == verdict_core::statement::EntryType::PolicyStatement
    {
        return verdict_core::statement::PolicyStatement::verify(entry, checkers)
            .map(|s| Verified::Statement(Box::new(s)))
            .map_err(|e| {
                CliError::failed(Check::PolicyRegistration, format!("policy statement: {e}"))
            });
    }
    Receipt::verify(entry, checkers)
        .map(|r| Verified::Receipt(Box::new(r)))
        .map_err(receipt_failure)
}

/// A verified log entry: a receipt or a policy statement (spec `policy-statement.md` §2).
#[derive(Debug)]
pub enum Verified {
    /// A decision receipt.
    Receipt(Box<verdict_core::receipt::VerifiedReceipt>),
    /// A policy statement.
    Statement(Box<verdict_core::statement::VerifiedPolicyStatement>),
}
