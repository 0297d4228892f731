//! `verdict-server bench --verify`: after a load run, show that no acknowledged decision was lost.
//!
//! For every acknowledged answer (index and receipt), `GET /v1/bundle/<index>` must return a
//! C2SP tlog-proof whose checkpoint is signed by the log key (from `GET /v1/keys`), whose
//! inclusion proof verifies, and whose entry is exactly the acknowledged receipt
//! (`spec/proof-bundle.md`). No index may be acknowledged twice, and the tree must have grown by
//! at least the number of acknowledged decisions (exactly that many when nothing else writes:
//! 503 answers log nothing).

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use verdict_core::bundle::ProofBundle;
use verdict_core::note::Verifier;

/// One acknowledged decision.
#[derive(Debug, Clone)]
pub struct Acknowledged {
    /// Its leaf index.
    pub index: u64,
    /// The receipt (COSE_Sign1 bytes) the answer carried.
    pub receipt: Vec<u8>,
}

/// Tree size of the server's latest checkpoint (`GET /checkpoint`, second line).
///
/// # Errors
/// Transport errors or a malformed checkpoint.
pub async fn tree_size(client: &reqwest::Client, base: &str) -> anyhow::Result<u64> {
    let text = client
        .get(format!("{base}/checkpoint"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    text.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .context("checkpoint without a tree size")
}

async fn log_verifier(client: &reqwest::Client, base: &str) -> anyhow::Result<Verifier> {
    let keys: serde_json::Value = client
        .get(format!("{base}/v1/keys"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let vkey = keys
        .pointer("/log/verifier_key")
        .and_then(serde_json::Value::as_str)
        .context("/v1/keys without log.verifier_key")?;
    Verifier::parse(vkey).context("bad log verifier key")
}

/// Why one acknowledged entry failed verification.
async fn check_one(
    client: &reqwest::Client,
    base: &str,
    verifier: &Verifier,
    ack: &Acknowledged,
) -> Result<(), String> {
    let response = client
        .get(format!("{base}/v1/bundle/{}", ack.index))
        .send()
        .await
        .map_err(|e| format!("fetch: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("bundle answered {}", response.status()));
    }
    let bytes = response.bytes().await.map_err(|e| format!("read: {e}"))?;
    let bundle = ProofBundle::parse(&bytes).map_err(|e| format!("parse: {e}"))?;
    let verified = bundle
        .verify(verifier)
        .map_err(|e| format!("verify: {e}"))?;
    if verified.index().0 != ack.index {
        return Err(format!("bundle for index {}", verified.index().0));
    }
    if verified.entry() != ack.receipt.as_slice() {
        return Err("a different receipt is logged at this index".to_owned());
    }
    Ok(())
}

/// Verify `acks` against the server at `base`; `before` is the tree size before the run and
/// `ok` the number of acknowledged answers. Prints a summary.
///
/// # Errors
/// Any lost, duplicated or mismatched entry, or a tree that grew by less than `ok`.
pub async fn run(
    client: &reqwest::Client,
    base: &str,
    before: u64,
    ok: u64,
    acks: Vec<Acknowledged>,
    concurrency: usize,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let verifier = log_verifier(client, base).await?;
    let mut indices: Vec<u64> = acks.iter().map(|a| a.index).collect();
    indices.sort_unstable();
    let duplicates = indices.windows(2).filter(|w| w.first() == w.last()).count();
    let needed = indices.last().map_or(before, |&i| i.saturating_add(1));
    // `?wait=false` answers come before integration: wait for a checkpoint covering them.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut after = tree_size(client, base).await?;
    while after < needed && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = tree_size(client, base).await?;
    }
    let total = acks.len();
    let workers = concurrency.max(1);
    let mut shards: Vec<Vec<Acknowledged>> = vec![Vec::new(); workers];
    for (n, ack) in acks.into_iter().enumerate() {
        if let Some(shard) = shards.get_mut(n % workers) {
            shard.push(ack);
        }
    }
    let mut tasks = Vec::with_capacity(workers);
    for shard in shards {
        let (client, base, verifier) = (client.clone(), base.to_owned(), verifier.clone());
        tasks.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for ack in &shard {
                if let Err(why) = check_one(&client, &base, &verifier, ack).await {
                    failures.push((ack.index, why));
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for task in tasks {
        failures.extend(task.await.context("verify worker panicked")?);
    }
    failures.sort();
    let growth = after.saturating_sub(before);
    println!(
        "verify:        {total} acknowledged, {} verified, {} lost or wrong, {duplicates} duplicate indices ({:.1} s)",
        total - failures.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "tree size:     {before} -> {after} (+{growth}; {} acknowledged{})",
        ok,
        match growth.cmp(&ok) {
            std::cmp::Ordering::Equal => ", equal".to_owned(),
            std::cmp::Ordering::Greater => format!(
                ", {} unacknowledged entries: answers lost to errors, or other writers",
                growth - ok
            ),
            std::cmp::Ordering::Less => ", FEWER than acknowledged".to_owned(),
        }
    );
    for (index, why) in failures.iter().take(10) {
        println!("  index {index}: {why}");
    }
    if !failures.is_empty() || duplicates > 0 || growth < ok || u64::try_from(total)? != ok {
        bail!(
            "verification failed: {} lost or wrong, {duplicates} duplicates, tree grew by {growth} for {ok} acknowledged ({total} recorded)",
            failures.len()
        );
    }
    Ok(())
}
