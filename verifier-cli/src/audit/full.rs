//! `verdict audit --full`: every entry bundle and level-0 tile is downloaded, every receipt is
//! verified, the root of the whole log is recomputed with [`RightEdge`], and every stored hash
//! of a higher tile level is compared with the recomputed one. Memory stays O(log n) plus the
//! tiles in flight and one entry per registered policy version.
//!
//! Policy statements (spec `policy-statement.md`) are verified as such, and every receipt's
//! policy commitment must have been registered by a statement at a lower index (§7); otherwise
//! the receipt fails check `policy_registration`.

use std::collections::HashMap;
use std::sync::Arc;

use verdict_core::checkpoint::Checkpoint;
use verdict_core::merkle::{leaf_hash, RightEdge, StoredHash};
use verdict_core::note::Verifier;
use verdict_core::receipt::Receipt;
use verdict_core::statement::{entry_type, EntryType, PolicyStatement};
use verdict_core::tile::{decode_entry_bundle_for, Tile, TileKind, TILE_HEIGHT, TILE_WIDTH};
use verdict_core::{Hash, TreeSize};

use super::{progress_bar, Counts, SampleFailure, PARALLEL};
use crate::error::{Check, CliError};
use crate::fetch::HttpTiles;
use crate::verify::receipt_failure;

/// Result of a full audit.
#[derive(Debug, Default)]
pub struct FullOutcome {
    /// Entries checked.
    pub checked: u64,
    /// Entries whose receipt verified.
    pub verified: u64,
    /// Receipt counts.
    pub counts: Counts,
    /// Failures (all of them; the caller truncates the list).
    pub failures: Vec<SampleFailure>,
    /// Policy versions registered in the log: `name version commitment` by log index.
    pub registrations: Vec<(u64, String)>,
}

/// The tile of `kind` at `index` in the tree of `size`.
fn tile_in(kind: TileKind, index: u64, size: u64) -> Result<Tile, CliError> {
    Tile::in_tree(kind, index, TreeSize(size))
        .ok_or_else(|| CliError::usage("tile beyond the tree size"))
}

/// Run the full audit. It needs every tile: one that cannot be fetched ends it with
/// [`CliError::Network`] (the root cannot be recomputed without it).
///
/// # Errors
/// [`CliError::Failed`] (`tiles`) when a tile disagrees with the entries or the root differs;
/// [`CliError::Network`].
pub async fn run(
    tiles: &HttpTiles,
    cp: &Checkpoint,
    checkers: &[Verifier],
    progress: bool,
) -> Result<FullOutcome, CliError> {
    let size = cp.size.0;
    let bundles = size.div_ceil(u64::from(TILE_WIDTH));
    let bar = progress_bar(progress, size);
    let mut out = FullOutcome::default();
    let mut edge = RightEdge::new();
    let mut upper: HashMap<u8, (Tile, Arc<Vec<u8>>)> = HashMap::new();
    let mut registered: HashMap<Hash, u64> = HashMap::new();
    let mut n = 0u64;
    while n < bundles {
        let end = (n + PARALLEL as u64).min(bundles);
        // Fetch this chunk's entry bundles and level-0 tiles concurrently.
        let mut set = tokio::task::JoinSet::new();
        for b in n..end {
            for kind in [TileKind::Entries, TileKind::Hashes { level: 0 }] {
                let tile = tile_in(kind, b, size)?;
                let t = tiles.clone();
                set.spawn(async move { (tile, t.fetch(tile).await) });
            }
        }
        let mut fetched: HashMap<Tile, Arc<Vec<u8>>> = HashMap::new();
        while let Some(j) = set.join_next().await {
            let (tile, bytes) = j.map_err(|e| CliError::input("fetch task", e))?;
            fetched.insert(tile, bytes?);
        }
        for b in n..end {
            let etile = tile_in(TileKind::Entries, b, size)?;
            let htile = tile_in(TileKind::Hashes { level: 0 }, b, size)?;
            let ebytes = fetched.get(&etile).cloned().unwrap_or_default();
            let hbytes = fetched.get(&htile).cloned().unwrap_or_default();
            let entries = decode_entry_bundle_for(&etile, &ebytes).map_err(|e| {
                CliError::failed(Check::Tiles, format!("entry bundle {}: {e}", etile.path()))
            })?;
            for (j, entry) in entries.iter().enumerate() {
                let index = b * u64::from(TILE_WIDTH) + j as u64;
                let leaf = leaf_hash(entry);
                let stored = hbytes.get(j * 32..j * 32 + 32);
                if stored != Some(&leaf.0[..]) {
                    return Err(CliError::failed(
                        Check::Tiles,
                        format!(
                            "tile {} hash {j} is not the leaf hash of entry {index}",
                            htile.path()
                        ),
                    ));
                }
                let mut created = Vec::new();
                edge.append(leaf, &mut |h: StoredHash| created.push(h))
                    .map_err(|e| CliError::failed(Check::Tiles, e))?;
                for h in created {
                    check_upper(tiles, size, &mut upper, h).await?;
                }
                out.checked += 1;
                if entry_type(entry) == EntryType::PolicyStatement {
                    match PolicyStatement::verify(entry, checkers) {
                        Ok(s) => {
                            let r = s.record();
                            out.verified += 1;
                            registered.entry(r.policy_commitment).or_insert(index);
                            out.registrations.push((
                                index,
                                format!(
                                    "{} {} {}",
                                    r.name,
                                    r.policy_version,
                                    r.policy_commitment.to_hex()
                                ),
                            ));
                            *out.counts
                                .by_kind
                                .entry("policy-statement".to_owned())
                                .or_default() += 1;
                        }
                        Err(e) => out.failures.push(SampleFailure {
                            index,
                            check: Check::PolicyRegistration,
                            reason: format!("policy statement: {e}"),
                        }),
                    }
                    bar.inc(1);
                    continue;
                }
                match Receipt::verify(entry, checkers) {
                    Ok(r) => {
                        out.verified += 1;
                        out.counts.add(&r);
                        let c = r.statement().policy_commitment;
                        if !registered.contains_key(&c) {
                            out.failures.push(SampleFailure {
                                index,
                                check: Check::PolicyRegistration,
                                reason: format!(
                                    "receipt cites policy commitment {} ({}), which no policy statement at a lower index registers",
                                    c.to_hex(),
                                    r.statement().policy_version
                                ),
                            });
                        }
                    }
                    Err(e) => {
                        if let CliError::Failed { check, reason } = receipt_failure(e) {
                            out.failures.push(SampleFailure {
                                index,
                                check,
                                reason,
                            });
                        }
                    }
                }
                bar.inc(1);
            }
        }
        n = end;
    }
    bar.finish_and_clear();
    let root = edge.root();
    if root != cp.root {
        return Err(CliError::failed(
            Check::Tiles,
            format!(
                "recomputed root of all {size} entries is {root}, the checkpoint says {}",
                cp.root
            ),
        ));
    }
    Ok(out)
}

/// Compare a stored hash at a tile boundary level (8 L, L ≥ 1) with the log's tile.
async fn check_upper(
    tiles: &HttpTiles,
    size: u64,
    upper: &mut HashMap<u8, (Tile, Arc<Vec<u8>>)>,
    h: StoredHash,
) -> Result<(), CliError> {
    if h.level == 0 || !h.level.is_multiple_of(TILE_HEIGHT) {
        return Ok(());
    }
    let level = h.level / TILE_HEIGHT;
    let w = u64::from(TILE_WIDTH);
    let Some(tile) = Tile::in_tree(TileKind::Hashes { level }, h.index / w, TreeSize(size)) else {
        return Ok(());
    };
    let cached = upper
        .get(&level)
        .filter(|(t, _)| *t == tile)
        .map(|(_, b)| Arc::clone(b));
    let bytes = match cached {
        Some(b) => b,
        None => {
            let b = tiles.fetch(tile).await?;
            upper.insert(level, (tile, Arc::clone(&b)));
            b
        }
    };
    let pos = usize::try_from(h.index % w).unwrap_or(0) * 32;
    if bytes.get(pos..pos + 32) != Some(&h.hash.0[..]) {
        return Err(CliError::failed(
            Check::Tiles,
            format!(
                "tile {} hash {} differs from the hash recomputed from the entries",
                tile.path(),
                h.index % w
            ),
        ));
    }
    Ok(())
}
