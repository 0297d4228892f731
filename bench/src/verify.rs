//! `verdict-bench --verify`: after a load run, show that no acknowledged decision was lost.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A real `verdict-server` (sled store in a temporary directory, the workspace's test
    /// policies, the real checker pool) on a loopback port: its base URL and agent token.
    async fn server(dir: &std::path::Path) -> (String, String) {
        let config = verdict_log_server::config::Config {
            data_dir: dir.join("data"),
            policies_dir: std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../testdata/policies"),
            checker_threads: 1,
            ..Default::default()
        };
        let started = verdict_log_server::start(&config).await.unwrap();
        let token = std::fs::read_to_string(&started.keys.paths.agent_token).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = verdict_log_server::app(started.state.clone());
        let options = verdict_log_server::serve::ServeOptions::from_config(&config);
        tokio::spawn(async move {
            verdict_log_server::serve::serve(listener, app, options, std::future::pending()).await;
            drop(started);
        });
        (base, token.trim().to_owned())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verify_finds_every_acknowledged_receipt_and_flags_loss() {
        let dir = tempfile::tempdir().unwrap();
        let (base, token) = server(dir.path()).await;
        let client = reqwest::Client::new();
        let mut before = tree_size(&client, &base).await;
        for _ in 0..100 {
            if before.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            before = tree_size(&client, &base).await;
        }
        let before = before.unwrap();
        let mut acks = Vec::new();
        for n in 0..5 {
            let answer = client
                .post(format!("{base}/v1/check"))
                .bearer_auth(&token)
                .json(&serde_json::json!({
                    "policy": "customer-data-egress",
                    "action": {"record_count": n},
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), reqwest::StatusCode::OK);
            let body = answer.bytes().await.unwrap();
            acks.push(crate::check_load::acknowledged(&body).unwrap());
        }
        run(&client, &base, before, 5, acks.clone(), 2)
            .await
            .unwrap();
        // A receipt that is not the one logged at its index.
        let mut wrong = acks.clone();
        wrong[0].receipt = acks[1].receipt.clone();
        assert!(run(&client, &base, before, 5, wrong, 2).await.is_err());
        // An index acknowledged twice.
        let mut twice = acks.clone();
        twice[1].index = twice[0].index;
        assert!(run(&client, &base, before, 5, twice, 2).await.is_err());
        // More acknowledged than the log grew by.
        let mut more = acks.clone();
        more.push(acks[4].clone());
        assert!(run(&client, &base, before, 6, more, 2).await.is_err());
    }
}
