//! `verdict audit`: the auditor's sampling tool against a live log.
//!
//! 1. fetch `/checkpoint` and verify it with the trusted log key;
//! 2. prove consistency with the last checkpoint verified (persisted in `--state`), and from
//!    `--until` to the live checkpoint; a rollback or fork is a loud failure;
//! 3. pin the audited checkpoint: `--until` when given, else the live one; prove `--since`
//!    consistent with it and audit the period `[since, end)`;
//! 4. sample N leaf indices reproducibly from the seed ([`sample`]);
//! 5. fetch their entry bundles and hash tiles asynchronously (at most [`PARALLEL`] bundles in
//!    flight), recompute each inclusion proof from the tiles with core's code and verify it
//!    against the root ([`check`]);
//! 6. verify every sampled receipt's signature with a trusted checker key;
//! 7. count decisions by outcome, kind and policy commitment ([`report`]).
//!
//! A sample whose tile or bundle cannot be fetched is *unchecked*: it is listed, the other
//! samples are still reported, and the result is `incomplete` (exit 1). `--full` instead
//! downloads every entry bundle and level-0 tile, checks every receipt, recomputes the root of
//! the whole log and checks each stored higher-level tile hash ([`full`]).
//!
//! Nothing here blocks on the runtime: tiles are fetched with `async` HTTP and proofs are
//! computed from the fetched bytes, so an early error cannot leave a fetch running while the
//! runtime shuts down.

pub mod check;
pub mod full;
pub mod report;
pub mod sample;
pub mod state;

use std::io::IsTerminal as _;

use verdict_core::checkpoint::VerifiedCheckpoint;

use crate::consistency::{check_proof, open_checkpoint, precheck, proof_from_tiles};
use crate::error::CliError;
use crate::fetch::{Fetcher, HttpTiles, MAX_CHECKPOINT_BODY};
use crate::trust::Trust;

pub use report::{AuditReport, AuditResult, Counts, SampleFailure, Unchecked, MAX_LISTED_FAILURES};

/// Entry bundles verified concurrently (each fetching its tiles).
pub const PARALLEL: usize = 16;

/// Audit options.
#[derive(Clone, Debug)]
pub struct AuditOptions {
    /// Base URL of the log.
    pub log: String,
    /// A checkpoint file the auditor already holds: sample only entries after it.
    pub since: Option<std::path::PathBuf>,
    /// A checkpoint file that pins the end of the audited period (instead of the live
    /// checkpoint); the live checkpoint must extend it.
    pub until: Option<std::path::PathBuf>,
    /// Number of entries to sample (ignored with `full`); at least 1.
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

/// Read and verify a checkpoint file given on the command line.
fn checkpoint_file(path: &std::path::Path, trust: &Trust) -> Result<VerifiedCheckpoint, CliError> {
    let bytes = crate::files::read_limited(path, crate::files::MAX_TEXT_FILE)?;
    open_checkpoint(&bytes, trust)
}

/// Run an audit.
///
/// # Errors
/// [`CliError::Failed`] for a bad checkpoint, rollback or fork; [`CliError::Usage`] for
/// `--sample 0` or an empty period; [`CliError::Network`], [`CliError::Input`]. Failed and
/// unchecked *entries* are in the report instead.
pub async fn run(opts: &AuditOptions, trust: &Trust) -> Result<AuditReport, CliError> {
    trust.require_log_key()?;
    trust.require_checker_key()?;
    if !opts.full && opts.sample == 0 {
        return Err(CliError::usage("--sample must be at least 1"));
    }
    let fetcher = Fetcher::new(&opts.log)?;
    // 1. the live checkpoint
    let note = fetcher.get("checkpoint", MAX_CHECKPOINT_BODY).await?;
    let live = open_checkpoint(&note, trust)?;
    let tiles = HttpTiles::new(fetcher.clone());

    // 2. consistency with what we verified before, and of the pinned end with the live log
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
    let since = opts
        .since
        .as_deref()
        .map(|p| checkpoint_file(p, trust))
        .transpose()?;
    let until = opts
        .until
        .as_deref()
        .map(|p| checkpoint_file(p, trust))
        .transpose()?;
    for old in previous.iter().chain(until.iter()) {
        prove_extends(&tiles, old, &live).await?;
    }
    // 3. the audited checkpoint and period
    let end = until.as_ref().unwrap_or(&live);
    if let Some(s) = &since {
        if until.is_some() && s.checkpoint().size > end.checkpoint().size {
            return Err(CliError::usage(format!(
                "--since size {} is after --until size {}",
                s.checkpoint().size,
                end.checkpoint().size
            )));
        }
        prove_extends(&tiles, s, end).await?;
    }
    let cp = end.checkpoint().clone();
    let start = match (&since, opts.full) {
        (Some(s), false) => s.checkpoint().size.0,
        _ => 0,
    };
    if start >= cp.size.0 {
        return Err(CliError::usage(format!(
            "the audited period [{start}, {}) holds no entries: nothing to audit",
            cp.size.0
        )));
    }

    let mut report = AuditReport {
        result: AuditResult::Valid,
        log: fetcher.base().to_owned(),
        origin: cp.origin.clone(),
        log_key: end
            .note()
            .verified_by()
            .first()
            .map(|id| format!("{}+{id}", cp.origin))
            .unwrap_or_default(),
        tree_size: cp.size.0,
        root: cp.root.to_base64(),
        live_size: live.checkpoint().size.0,
        previous_size: previous.as_ref().map(|p| p.checkpoint().size.0),
        since_size: since.as_ref().map(|s| s.checkpoint().size.0),
        until_size: until.as_ref().map(|u| u.checkpoint().size.0),
        mode: if opts.full { "full" } else { "sample" },
        range: [start, cp.size.0],
        seed: None,
        sampled: None,
        checked: 0,
        verified: 0,
        failures: Vec::new(),
        failure_count: 0,
        unchecked: Vec::new(),
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
        // 4.–7. sample and verify
        let seed = opts.seed.clone().unwrap_or_else(|| {
            use rand::RngCore as _;
            let mut b = [0u8; 16];
            rand::thread_rng().fill_bytes(&mut b);
            hex::encode(b)
        });
        let indices = sample::sample(&seed, start, cp.size.0, opts.sample);
        report.seed = Some(seed);
        check::run_samples(
            &tiles,
            &cp,
            &trust.checker_keys,
            &indices,
            opts.progress,
            &mut report,
        )
        .await;
        report.sampled = Some(indices);
    }
    report.conclude();
    if report.result == AuditResult::Valid {
        if let Some(s) = &state {
            s.save(&note)?;
        }
    }
    Ok(report)
}

/// Prove that `new` extends `old`, computing the proof from the log's tiles.
async fn prove_extends(
    tiles: &HttpTiles,
    old: &VerifiedCheckpoint,
    new: &VerifiedCheckpoint,
) -> Result<(), CliError> {
    let (o, n) = (old.checkpoint(), new.checkpoint());
    if !precheck(o, n)? {
        return Ok(());
    }
    let fetched = tiles.for_consistency(o.size, n.size).await?;
    let proof = proof_from_tiles(&fetched, o, n)?;
    check_proof(o, n, &proof)
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
