//! Crash soak (issue 6, "Crash soak"): a real `verdict-server` is driven at high rate by several
//! client tasks, `kill -9`ed ([`std::process::Child::kill`] is SIGKILL) at a random moment each
//! cycle and restarted on the same data directory. After every restart, with `verdict_core`
//! only (spec `merkle.md` §6–§7, `note-and-checkpoint.md` §7, `tiles.md` §3):
//!
//! - every acknowledged receipt is the entry at its index in the entry bundles
//!   (`/tile/entries/...`), with a valid inclusion proof against the new signed checkpoint;
//! - every checkpoint ever served (polled `/checkpoint`, and those inside wait=true bundles) is
//!   signed by the log key and consistent with the latest (`/v1/proof/consistency`, verified
//!   locally);
//! - the log still accepts writes (a wait=true check whose bundle verifies).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use base64::Engine as _;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use verdict_core::bundle::ProofBundle;
use verdict_core::checkpoint::{Checkpoint, VerifiedCheckpoint};
use verdict_core::merkle::{empty_root, leaf_hash, node_hash, root_of};
use verdict_core::note::Verifier;
use verdict_core::proof::{inclusion_proof, verify_consistency, verify_inclusion, HashSource};
use verdict_core::tile::{decode_entry_bundle_for, Tile, TileKind, TILE_WIDTH};
use verdict_core::{Hash, LeafIndex, TreeSize};

use crate::server::Server;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The policy the soak checks against (`testdata/policies/customer-data-egress.toml`).
pub const POLICY: &str = "customer-data-egress";

/// Settings of one soak run.
#[derive(Clone, Debug)]
pub struct SoakConfig {
    /// Kill/restart cycles.
    pub cycles: u32,
    /// Concurrent client tasks.
    pub clients: usize,
    /// Seed of the kill moments and the actions.
    pub seed: u64,
    /// Shortest time the server runs under load before it is killed.
    pub min_run: Duration,
    /// Longest time the server runs under load before it is killed.
    pub max_run: Duration,
}

/// One acknowledged check: what the server promised.
#[derive(Clone, Debug)]
pub struct Ack {
    /// Leaf index.
    pub index: u64,
    /// The receipt (the log entry), decoded from base64.
    pub receipt: Vec<u8>,
    /// The tlog-proof bundle (wait=true only).
    pub bundle: Option<String>,
}

/// Figures after one restart.
#[derive(Clone, Debug, Default)]
pub struct CycleReport {
    /// Cycle number (1-based; the final check after the last kill has the last number).
    pub cycle: u32,
    /// Time the server ran under load before the kill.
    pub ran_for: Duration,
    /// Checks acknowledged in this cycle.
    pub acked: usize,
    /// Checks acknowledged so far.
    pub acked_total: usize,
    /// Requests that failed (not acknowledged; expected around a kill).
    pub failed: usize,
    /// Tree size of the checkpoint after the restart.
    pub tree_size: u64,
    /// Acknowledged receipts missing, misplaced or without a valid inclusion proof.
    pub lost: usize,
    /// Distinct checkpoints seen so far.
    pub checkpoints: usize,
    /// Checkpoints not consistent with the latest (or not signed by the log key).
    pub inconsistent: usize,
}

/// Figures of a whole run.
#[derive(Clone, Debug, Default)]
pub struct SoakReport {
    /// Kill/restart cycles completed.
    pub cycles: u32,
    /// Acknowledged receipts.
    pub acknowledged: usize,
    /// Of which acknowledged with wait=true (and a bundle).
    pub acknowledged_with_bundle: usize,
    /// Lost receipts in the last verification (must be 0).
    pub lost: usize,
    /// Inconsistent checkpoints in the last verification (must be 0).
    pub inconsistent: usize,
    /// Distinct checkpoints verified.
    pub checkpoints: usize,
    /// Final tree size.
    pub tree_size: u64,
    /// Every violation found, in words.
    pub violations: Vec<String>,
    /// Every acknowledged check.
    pub acks: Vec<Ack>,
    /// Every distinct checkpoint seen, verbatim.
    pub seen_checkpoints: BTreeSet<Vec<u8>>,
}

/// An action for `customer-data-egress`: a random mix of allowed and denied transfers.
pub fn random_action(rng: &mut StdRng) -> serde_json::Value {
    const CLASSES: [&str; 4] = ["public", "internal", "confidential", "restricted"];
    let class = CLASSES
        .get(rng.gen_range(0..4usize))
        .copied()
        .unwrap_or("public");
    let mut action = serde_json::json!({
        "destination": if rng.gen_bool(0.5) { "internal" } else { "external" },
        "classification": class,
        "record_count": rng.gen_range(0..20_000u32),
        "transfers_in_session": rng.gen_range(0..3u32),
        "is_privileged": rng.gen_bool(0.2),
    });
    if let Some(obj) = action.as_object_mut() {
        for (field, p) in [
            ("authorization_token", 0.7),
            ("re_authorization_token", 0.5),
            ("approval_token", 0.5),
        ] {
            if rng.gen_bool(p) {
                obj.insert(
                    field.into(),
                    format!("tok-{:016x}", rng.gen::<u64>()).into(),
                );
            }
        }
        if rng.gen_bool(0.5) {
            obj.insert("approver_id".into(), "alice".into());
        }
    }
    action
}

/// Shared state of the client tasks of one cycle.
struct Load {
    base: String,
    token: String,
    http: reqwest::Client,
    acks: Mutex<Vec<Ack>>,
    checkpoints: Mutex<BTreeSet<Vec<u8>>>,
    failed: std::sync::atomic::AtomicUsize,
    stop: AtomicBool,
}

/// One check; `Ok(None)` when not acknowledged (error status or transport error).
async fn one_check(load: &Load, action: serde_json::Value, wait: bool) -> Result<Option<Ack>> {
    let body = serde_json::json!({ "policy": POLICY, "action": action });
    let r = load
        .http
        .post(format!("{}/v1/check?wait={wait}", load.base))
        .bearer_auth(&load.token)
        .json(&body)
        .send()
        .await?;
    if !r.status().is_success() {
        return Ok(None);
    }
    let v: serde_json::Value = r.json().await?;
    let index = v
        .get("index")
        .unwrap_or(&serde_json::Value::Null)
        .as_u64()
        .ok_or_else(|| anyhow!("acknowledged check without index: {v}"))?;
    let receipt = B64.decode(
        v.get("receipt")
            .unwrap_or(&serde_json::Value::Null)
            .as_str()
            .ok_or_else(|| anyhow!("acknowledged check without receipt: {v}"))?,
    )?;
    let bundle = v
        .pointer("/proof/bundle")
        .and_then(|b| b.as_str())
        .map(str::to_owned);
    if wait && bundle.is_none() {
        bail!("wait=true answer without a bundle: {v}");
    }
    Ok(Some(Ack {
        index,
        receipt,
        bundle,
    }))
}

async fn client(load: Arc<Load>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    while !load.stop.load(Ordering::Relaxed) {
        let wait = rng.gen_bool(0.5);
        match one_check(&load, random_action(&mut rng), wait).await {
            Ok(Some(ack)) => {
                if let Ok(mut acks) = load.acks.lock() {
                    acks.push(ack);
                }
            }
            Ok(None) | Err(_) => {
                load.failed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn poll_checkpoints(load: Arc<Load>) {
    while !load.stop.load(Ordering::Relaxed) {
        if let Ok(r) = load
            .http
            .get(format!("{}/checkpoint", load.base))
            .send()
            .await
        {
            if r.status().is_success() {
                if let Ok(b) = r.bytes().await {
                    if let Ok(mut cps) = load.checkpoints.lock() {
                        cps.insert(b.to_vec());
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// All complete-subtree hashes of a tree held in memory: level `l` holds the hashes of the
/// complete subtrees of `2^l` leaves. Built in O(n); proofs in O(log n).
struct Levels(Vec<Vec<Hash>>);

/// A subtree not held by [`Levels`].
#[derive(Debug)]
struct NoSubtree(u8, u64);

impl std::fmt::Display for NoSubtree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no complete subtree at level {} index {}",
            self.0, self.1
        )
    }
}

impl std::error::Error for NoSubtree {}

impl Levels {
    fn new(leaves: Vec<Hash>) -> Self {
        let mut levels = vec![leaves];
        while let Some(last) = levels.last() {
            if last.len() < 2 {
                break;
            }
            let next: Vec<Hash> = last
                .chunks_exact(2)
                .filter_map(|p| match p {
                    [l, r] => Some(node_hash(l, r)),
                    _ => None,
                })
                .collect();
            levels.push(next);
        }
        Levels(levels)
    }
}

impl HashSource for Levels {
    type Error = NoSubtree;
    fn hashes(&self, wanted: &[(u8, u64)]) -> Result<Vec<Hash>, NoSubtree> {
        wanted
            .iter()
            .map(|&(l, i)| {
                self.0
                    .get(usize::from(l))
                    .and_then(|v| v.get(usize::try_from(i).ok()?))
                    .copied()
                    .ok_or(NoSubtree(l, i))
            })
            .collect()
    }
}

/// The entries of a tree of `size`, from its entry bundles.
async fn fetch_entries(server: &Server, size: u64) -> Result<Vec<Vec<u8>>> {
    let mut entries = Vec::new();
    for n in 0..size.div_ceil(u64::from(TILE_WIDTH)) {
        let tile = Tile::in_tree(TileKind::Entries, n, TreeSize(size))
            .ok_or_else(|| anyhow!("no entry bundle {n} at size {size}"))?;
        let bytes = server.get_bytes(&tile.path()).await?;
        entries.extend(decode_entry_bundle_for(&tile, &bytes).with_context(|| tile.path())?);
    }
    Ok(entries)
}

/// Wait until the latest checkpoint covers `want` entries; return it, verified.
async fn covering_checkpoint(
    server: &Server,
    key: &Verifier,
    want: u64,
) -> Result<(Vec<u8>, VerifiedCheckpoint)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let bytes = server.get_bytes("checkpoint").await?;
        let cp = Checkpoint::open(&bytes, key, &[]).context("latest checkpoint")?;
        if cp.checkpoint().size.0 >= want || Instant::now() > deadline {
            return Ok((bytes, cp));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Verify everything against the server just restarted: waits (≤ 30 s) for a checkpoint that
/// covers every acknowledged index, fetches every entry bundle of it, and checks each ack's
/// entry and inclusion proof and each checkpoint's signature and consistency. Returns
/// `(lost, inconsistent, tree size)`, pushing a line per violation onto `violations`.
///
/// # Errors
/// When the server cannot be read (transport, malformed tiles, unsigned latest checkpoint).
pub async fn verify_after_restart(
    server: &Server,
    key: &Verifier,
    acks: &[Ack],
    checkpoints: &mut BTreeSet<Vec<u8>>,
    violations: &mut Vec<String>,
) -> Result<(usize, usize, u64)> {
    let want = acks.iter().map(|a| a.index + 1).max().unwrap_or(0);
    let (latest_bytes, latest) = covering_checkpoint(server, key, want).await?;
    checkpoints.insert(latest_bytes);
    let size = latest.checkpoint().size;
    let root = latest.checkpoint().root;
    let entries = fetch_entries(server, size.0).await?;
    let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
    if root_of(&leaves) != root {
        violations.push(format!(
            "entry bundles of size {} do not hash to the checkpoint root",
            size.0
        ));
    }
    let levels = Levels::new(leaves);
    let mut lost = 0;
    for ack in acks {
        let at = usize::try_from(ack.index)?;
        let ok = match entries.get(at) {
            Some(e) if *e == ack.receipt => {
                match inclusion_proof(&levels, LeafIndex(ack.index), size) {
                    Ok(p) => verify_inclusion(
                        &leaf_hash(&ack.receipt),
                        LeafIndex(ack.index),
                        size,
                        &p,
                        &root,
                    )
                    .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
            Some(_) => Err("another entry at its index".to_owned()),
            None => Err(format!("beyond tree size {}", size.0)),
        };
        if let Err(why) = ok {
            lost += 1;
            violations.push(format!("lost receipt at index {}: {why}", ack.index));
        }
    }
    let mut inconsistent = 0;
    for cp_bytes in checkpoints.iter() {
        if let Err(why) = consistent(server, key, cp_bytes, size, &root).await {
            inconsistent += 1;
            violations.push(format!(
                "checkpoint {:?} inconsistent with size {}: {why}",
                String::from_utf8_lossy(cp_bytes),
                size.0
            ));
        }
    }
    Ok((lost, inconsistent, size.0))
}

/// Whether the signed checkpoint `old` is consistent with (`size`, `root`), by the server's proof.
async fn consistent(
    server: &Server,
    key: &Verifier,
    old: &[u8],
    size: TreeSize,
    root: &Hash,
) -> Result<()> {
    let old = Checkpoint::open(old, key, &[])?;
    let (old_size, old_root) = (old.checkpoint().size, old.checkpoint().root);
    if old_size.0 == 0 {
        if old_root != empty_root() {
            bail!("empty tree with a non-empty root");
        }
        return Ok(());
    }
    if old_size.0 > size.0 {
        bail!("rollback: served size {} above latest", old_size.0);
    }
    if old_size == size {
        if old_root != *root {
            bail!("fork: same size, different root");
        }
        return Ok(());
    }
    let v = server
        .get_json(&format!(
            "v1/proof/consistency?from={}&to={}",
            old_size.0, size.0
        ))
        .await?;
    let proof = v
        .get("proof")
        .unwrap_or(&serde_json::Value::Null)
        .as_array()
        .ok_or_else(|| anyhow!("no proof in {v}"))?
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap_or_default()).map_err(|e| anyhow!("{e}")))
        .collect::<Result<Vec<_>>>()?;
    verify_consistency(old_size, size, &proof, &old_root, root)?;
    Ok(())
}

/// Check that the log accepts a write: a wait=true check whose bundle verifies.
async fn accepts_write(server: &Server, key: &Verifier, rng: &mut StdRng) -> Result<Ack> {
    let v = server.check(POLICY, random_action(rng), true).await?;
    let bundle = v
        .pointer("/proof/bundle")
        .and_then(|b| b.as_str())
        .ok_or_else(|| anyhow!("no bundle in {v}"))?;
    let verified = ProofBundle::parse(bundle.as_bytes())?.verify(key)?;
    Ok(Ack {
        index: verified.index().0,
        receipt: verified.entry().to_vec(),
        bundle: Some(bundle.to_owned()),
    })
}

/// Run the soak on `data_dir` (created if absent; should be fresh). `on_cycle` sees the figures
/// after every restart. Violations are collected in the report, not returned as errors; errors
/// are for a soak that could not run (e.g. the server did not restart).
///
/// # Errors
/// When the server cannot be started or a verification cannot be carried out.
pub async fn run(
    cfg: &SoakConfig,
    data_dir: &Path,
    mut on_cycle: impl FnMut(&CycleReport),
) -> Result<SoakReport> {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut report = SoakReport::default();
    let mut acks: Vec<Ack> = Vec::new();
    let mut checkpoints: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut server = Server::start(data_dir, None).await?;
    let k = Verifier::parse(&server.log_key).map_err(|e| anyhow!("log key: {e}"))?;
    for cycle in 1..=cfg.cycles {
        let load = Arc::new(Load {
            base: server.base.clone(),
            token: server.token.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            acks: Mutex::new(Vec::new()),
            checkpoints: Mutex::new(BTreeSet::new()),
            failed: 0.into(),
            stop: AtomicBool::new(false),
        });
        let mut tasks = Vec::new();
        for c in 0..cfg.clients {
            tasks.push(tokio::spawn(client(
                load.clone(),
                rng.gen::<u64>() ^ c as u64,
            )));
        }
        tasks.push(tokio::spawn(poll_checkpoints(load.clone())));
        let min = cfg.min_run.as_millis() as u64;
        let max = (cfg.max_run.as_millis() as u64).max(min + 1);
        let ran_for = Duration::from_millis(rng.gen_range(min..max));
        tokio::time::sleep(ran_for).await;
        drop(server); // SIGKILL (Child::kill) and reap, mid-load.
        load.stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
        let new_acks = std::mem::take(&mut *load.acks.lock().map_err(|_| anyhow!("poisoned"))?);
        checkpoints.extend(std::mem::take(
            &mut *load.checkpoints.lock().map_err(|_| anyhow!("poisoned"))?,
        ));
        for ack in &new_acks {
            if let Some(b) = &ack.bundle {
                match ProofBundle::parse(b.as_bytes()) {
                    Ok(pb) => {
                        if pb.verify(&k).is_err() || pb.index.0 != ack.index {
                            report
                                .violations
                                .push(format!("bad bundle for index {}", ack.index));
                        }
                        checkpoints.insert(pb.checkpoint);
                    }
                    Err(e) => report
                        .violations
                        .push(format!("unparsable bundle for index {}: {e}", ack.index)),
                }
            }
        }
        let acked = new_acks.len();
        acks.extend(new_acks);

        // Restart on the same data directory and check everything.
        server = Server::start(data_dir, None).await?;
        if Verifier::parse(&server.log_key).ok().as_ref() != Some(&k) {
            report
                .violations
                .push(format!("cycle {cycle}: log key changed"));
        }
        let (lost, inconsistent, tree_size) =
            verify_after_restart(&server, &k, &acks, &mut checkpoints, &mut report.violations)
                .await?;
        match accepts_write(&server, &k, &mut rng).await {
            Ok(ack) => acks.push(ack),
            Err(e) => report
                .violations
                .push(format!("cycle {cycle}: log does not accept writes: {e}")),
        }
        report.cycles = cycle;
        report.acknowledged = acks.len();
        report.acknowledged_with_bundle = acks.iter().filter(|a| a.bundle.is_some()).count();
        report.lost = lost;
        report.inconsistent = inconsistent;
        report.checkpoints = checkpoints.len();
        report.tree_size = tree_size;
        on_cycle(&CycleReport {
            cycle,
            ran_for,
            acked,
            acked_total: acks.len(),
            failed: load.failed.load(Ordering::Relaxed),
            tree_size,
            lost,
            checkpoints: checkpoints.len(),
            inconsistent,
        });
    }
    server.stop()?;
    report.acks = acks;
    report.seen_checkpoints = checkpoints;
    Ok(report)
}
