//! Verifying sampled entries: fetch each entry bundle once, fetch the hash tiles of each inclusion
//! proof, recompute the proof with core's code over the fetched tiles, verify it against the
//! root and verify the receipt. Each sample ends verified, failed (bad evidence) or unchecked (a
//! tile or bundle could not be fetched); one sample's problem never hides the others.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use verdict_core::checkpoint::Checkpoint;
use verdict_core::merkle::leaf_hash;
use verdict_core::note::Verifier;
use verdict_core::proof::{inclusion_proof, verify_inclusion, ProveError};
use verdict_core::receipt::{Receipt, VerifiedReceipt};
use verdict_core::statement::{entry_type, EntryType, PolicyStatement, VerifiedPolicyStatement};
use verdict_core::tile::{decode_entry_bundle_for, EntrySlot, TileHashSource, TileSourceError};
use verdict_core::LeafIndex;

use super::report::{AuditReport, SampleFailure, Unchecked};
use super::{progress_bar, PARALLEL};
use crate::error::{Check, CliError};
use crate::fetch::HttpTiles;
use crate::verify::receipt_failure;

/// How one sample ended.
#[derive(Debug)]
pub enum Outcome {
    /// Inclusion and receipt signature verified.
    Verified(Box<VerifiedReceipt>),
    /// Inclusion and policy-statement signature verified (spec `policy-statement.md` §2).
    Statement(Box<VerifiedPolicyStatement>),
    /// A check failed: the log served evidence that does not verify.
    Failed {
        /// The failed check.
        check: Check,
        /// What it found.
        reason: String,
    },
    /// A tile or bundle could not be fetched: nothing is known about this entry.
    Unchecked {
        /// The fetch error.
        reason: String,
    },
}

impl From<CliError> for Outcome {
    fn from(e: CliError) -> Self {
        match e {
            CliError::Failed { check, reason } => Outcome::Failed { check, reason },
            other => Outcome::Unchecked {
                reason: other.to_string(),
            },
        }
    }
}

impl From<Result<Outcome, CliError>> for Outcome {
    fn from(r: Result<Outcome, CliError>) -> Self {
        r.unwrap_or_else(Outcome::from)
    }
}

/// Record one outcome in the report.
fn record(report: &mut AuditReport, index: u64, outcome: Outcome) {
    match outcome {
        Outcome::Verified(receipt) => {
            report.checked += 1;
            report.verified += 1;
            report.counts.add(&receipt);
        }
        Outcome::Statement(_) => {
            report.checked += 1;
            report.verified += 1;
            *report
                .counts
                .by_kind
                .entry("policy-statement".to_owned())
                .or_default() += 1;
        }
        Outcome::Failed { check, reason } => {
            report.checked += 1;
            report.failure_count += 1;
            report.failures.push(SampleFailure {
                index,
                check,
                reason,
            });
        }
        Outcome::Unchecked { reason } => report.unchecked.push(Unchecked { index, reason }),
    }
}

/// Verify the entries `indices` of the tree of `cp`, at most [`PARALLEL`] bundles at a time,
/// recording every outcome in `report` (failures and unchecked entries sorted by index).
pub async fn run_samples(
    tiles: &HttpTiles,
    cp: &Checkpoint,
    checkers: &[Verifier],
    indices: &[u64],
    progress: bool,
    report: &mut AuditReport,
) {
    let bar = progress_bar(progress, indices.len() as u64);
    let checkers: Arc<Vec<Verifier>> = Arc::new(checkers.to_vec());
    let cp = Arc::new(cp.clone());
    // Group samples by entry bundle: each bundle is fetched once.
    let mut groups: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for &i in indices {
        groups
            .entry(EntrySlot::of(LeafIndex(i)).bundle)
            .or_default()
            .push(i);
    }
    let mut set = tokio::task::JoinSet::new();
    let mut in_flight: HashMap<tokio::task::Id, Vec<u64>> = HashMap::new();
    let mut next = groups.into_values();
    loop {
        while set.len() < PARALLEL {
            let Some(group) = next.next() else { break };
            let (t, c, k) = (tiles.clone(), Arc::clone(&cp), Arc::clone(&checkers));
            let g = group.clone();
            let handle = set.spawn(async move { verify_group(&t, &c, &g, &k).await });
            in_flight.insert(handle.id(), group);
        }
        let Some(joined) = set.join_next_with_id().await else {
            break;
        };
        let (id, outcomes) = match joined {
            Ok((id, outcomes)) => (id, outcomes),
            // A task that did not finish leaves its entries unchecked, never verified.
            Err(e) => {
                let group = in_flight.remove(&e.id()).unwrap_or_default();
                let reason = format!("internal error: {e}");
                let outcomes = group
                    .into_iter()
                    .map(|i| {
                        (
                            i,
                            Outcome::Unchecked {
                                reason: reason.clone(),
                            },
                        )
                    })
                    .collect();
                (e.id(), outcomes)
            }
        };
        in_flight.remove(&id);
        bar.inc(outcomes.len() as u64);
        for (index, outcome) in outcomes {
            record(report, index, outcome);
        }
    }
    bar.finish_and_clear();
    report.failures.sort_by_key(|f| f.index);
    report.unchecked.sort_by_key(|u| u.index);
}

/// Verify the sampled entries of one entry bundle (all `indices` share their bundle).
async fn verify_group(
    tiles: &HttpTiles,
    cp: &Checkpoint,
    indices: &[u64],
    checkers: &[Verifier],
) -> Vec<(u64, Outcome)> {
    let Some(&first) = indices.first() else {
        return Vec::new();
    };
    let entries = match fetch_entries(tiles, cp, EntrySlot::of(LeafIndex(first))).await {
        Ok(entries) => entries,
        Err(e) => return indices.iter().map(|&i| (i, e.clone().into())).collect(),
    };
    let mut out = Vec::with_capacity(indices.len());
    for &i in indices {
        let outcome = verify_entry(tiles, cp, &entries, i, checkers).await;
        out.push((i, outcome.into()));
    }
    out
}

/// Verify one entry `index` against `cp`: its bundle, inclusion and signature.
///
/// # Errors
/// [`CliError::Failed`] naming the check; [`CliError::Network`] when a tile cannot be fetched.
pub async fn verify_sample(
    tiles: &HttpTiles,
    cp: &Checkpoint,
    index: u64,
    checkers: &[Verifier],
) -> Result<Outcome, CliError> {
    let entries = fetch_entries(tiles, cp, EntrySlot::of(LeafIndex(index))).await?;
    verify_entry(tiles, cp, &entries, index, checkers).await
}

/// Fetch and decode the entry bundle holding `slot`, at its width in the tree of `cp`.
async fn fetch_entries(
    tiles: &HttpTiles,
    cp: &Checkpoint,
    slot: EntrySlot,
) -> Result<Vec<Vec<u8>>, CliError> {
    let tile = slot.tile_in(cp.size).ok_or_else(|| {
        CliError::usage(format!(
            "entry bundle {} is beyond size {}",
            slot.bundle, cp.size
        ))
    })?;
    let bytes = tiles.fetch(tile).await?;
    decode_entry_bundle_for(&tile, &bytes)
        .map_err(|e| CliError::failed(Check::Tiles, format!("entry bundle {}: {e}", tile.path())))
}

/// Verify entry `index` given its (already fetched and decoded) entry bundle: fetch the hash
/// tiles of its inclusion proof, recompute the proof, verify it against the root, verify the
/// receipt.
///
/// # Errors
/// [`CliError::Failed`] naming the check; [`CliError::Network`] when a tile cannot be fetched.
async fn verify_entry(
    tiles: &HttpTiles,
    cp: &Checkpoint,
    entries: &[Vec<u8>],
    index: u64,
    checkers: &[Verifier],
) -> Result<Outcome, CliError> {
    let size = cp.size;
    let entry = entries
        .get(EntrySlot::of(LeafIndex(index)).position)
        .ok_or_else(|| CliError::failed(Check::Tiles, "entry missing from its bundle"))?;
    let fetched = tiles.for_inclusion(LeafIndex(index), size).await?;
    let proof = inclusion_proof(&TileHashSource::new(&fetched, size), LeafIndex(index), size)
        .map_err(|e| match e {
            ProveError::Source(TileSourceError::Read(inner)) => inner,
            other => CliError::failed(Check::Tiles, other),
        })?;
    verify_inclusion(&leaf_hash(entry), LeafIndex(index), size, &proof, &cp.root)
        .map_err(|e| CliError::failed(Check::Inclusion, e))?;
    if entry_type(entry) == EntryType::PolicyStatement {
        return PolicyStatement::verify(entry, checkers)
            .map(|s| Outcome::Statement(Box::new(s)))
            .map_err(|e| {
                CliError::failed(Check::PolicyRegistration, format!("policy statement: {e}"))
            });
    }
    Receipt::verify(entry, checkers)
        .map(|r| Outcome::Verified(Box::new(r)))
        .map_err(receipt_failure)
}
