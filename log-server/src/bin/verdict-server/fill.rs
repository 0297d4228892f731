//! `verdict-server fill`: grow a log fast, without the checker or HTTP (for benchmarks at scale,
//! `scripts/bench-scale.sh`; it needs the store exclusively, so it is part of the server binary,
//! not of the HTTP load generator `verdict-bench`).
//!
//! Opens the sled log of a data directory directly (the same keys and store `serve` uses, so the
//! data directory can be served afterwards) and submits synthetic receipt-sized entries through
//! [`Log::submit`] from many concurrent submitters. Every `--report-every` entries it prints the
//! throughput and this process's resident set size (`VmRSS`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use verdict_core::note::Signer;
use verdict_core::LeafIndex;
use verdict_log_server::config::Config;
use verdict_log_server::log::{Log, LogConfig, LogError};
use verdict_log_server::storage::sled::SledStorage;

use crate::{CmdResult, Context as _, Failure};

/// Arguments of `verdict-server fill` (the data directory is the global `--data-dir`).
#[derive(Debug, Clone, clap::Args)]
pub struct FillArgs {
    /// Entries to append to the log.
    #[arg(long)]
    pub entries: u64,
    /// Bytes per synthetic entry (a receipt is about 300 bytes).
    #[arg(long, default_value_t = 300)]
    pub entry_bytes: usize,
    /// Concurrent submitters.
    #[arg(long, default_value_t = 4096)]
    pub concurrency: usize,
    /// Sequencer batch size (entries per durable batch and checkpoint).
    #[arg(long, default_value_t = 4096)]
    pub batch: usize,
    /// Print a progress line every this many entries.
    #[arg(long, default_value_t = 1_000_000)]
    pub report_every: u64,
    /// Append real receipts signed by the data directory's checker key (synthetic commitments,
    /// decisions cycling allow / deny / escalate) instead of opaque bytes, so that `verdict audit`
    /// can verify the filled log. `--entry-bytes` is then ignored.
    #[arg(long)]
    pub receipts: bool,
}

/// A receipt for entry `n`, signed by `checker`: synthetic commitments (derived from `n`), so the
/// log holds as many distinct, verifiable receipts as `verdict audit` would meet in production.
fn receipt(n: u64, checker: &Signer) -> CmdResult<Vec<u8>> {
    use verdict_core::receipt::{Decision, Kind, Receipt, Statement, STATEMENT_VERSION};
    use verdict_core::Hash;
    let h = |tag: &[u8]| {
        Hash(
            Sha256::new()
                .chain_update(tag)
                .chain_update(n.to_be_bytes())
                .finalize()
                .into(),
        )
    };
    let decision = match n % 3 {
        0 => Decision::Allow,
        1 => Decision::Deny,
        _ => Decision::Escalate,
    };
    let statement = Statement {
        version: STATEMENT_VERSION,
        checker_key_id: checker.verifier().key_id(),
        // One policy for the whole fill, as a real log mostly has a few.
        policy_commitment: Hash(Sha256::digest(b"bench-fill/policy").into()),
        policy_version: "bench".to_owned(),
        action_commitment: h(b"bench-fill/action"),
        decision,
        kind: Kind::Check,
        fail_closed: false,
        violated_rules: if decision == Decision::Deny {
            vec![2]
        } else {
            Vec::new()
        },
        matched_variables: vec!["destination".to_owned(), "record_count".to_owned()],
        undetermined_variables: if decision == Decision::Escalate {
            vec!["authorization_token".to_owned()]
        } else {
            Vec::new()
        },
        approvers: Vec::new(),
        time_ms: 1_795_000_000_000 + n,
        request_id: format!("fill-{n}"),
        checker_version: env!("CARGO_PKG_VERSION").to_owned(),
        solver_version: "bench-fill".to_owned(),
    };
    Receipt::sign(&statement, checker).context(format_args!("sign receipt {n}"))
}

/// A deterministic synthetic entry: `len` bytes derived from `n` (so entries are distinct and
/// incompressible, like signed receipts).
fn entry(n: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut block = Sha256::digest(n.to_be_bytes());
    while out.len() < len {
        out.extend_from_slice(&block);
        block = Sha256::digest(block);
    }
    out.truncate(len);
    out
}

/// Append `args.entries` synthetic entries to the log of `config.data_dir`.
///
/// # Errors
/// The data directory cannot be opened (e.g. a server holds it), or a submission failed with
/// anything but backpressure.
pub async fn run(args: FillArgs, config: &Config) -> CmdResult {
    let keys = verdict_log_server::keys::load_or_create(
        &config.data_dir,
        &config.default_origin(),
        config.origin.is_some(),
    )?;
    let storage =
        SledStorage::open(&config.data_dir.join("store")).context("cannot open the store")?;
    let signer = keys.log.clone();
    let log = Log::open(
        Arc::new(storage),
        signer,
        LogConfig {
            batch_max_entries: args.batch.max(1),
            batch_max_age: Duration::from_millis(config.batch_max_age_ms),
            max_pending: config.max_pending.max(args.concurrency),
            ..LogConfig::new(keys.log.name())
        },
    )
    .await
    .context("cannot open the log")?;
    let initial = log.stats().tree_size;
    println!(
        "fill: {} entries of {} bytes into {} (tree size {initial}), {} submitters, batches of {}",
        args.entries,
        args.entry_bytes,
        config.data_dir.display(),
        args.concurrency,
        args.batch
    );
    println!("fill: start RSS {} KiB", rss_kib().unwrap_or(0));
    let checker = Arc::new(keys.checker.clone());
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(args.concurrency.max(1));
    for _ in 0..args.concurrency.max(1) {
        let (log, next, done) = (log.clone(), Arc::clone(&next), Arc::clone(&done));
        let (total, len, receipts) = (args.entries, args.entry_bytes, args.receipts);
        let checker = Arc::clone(&checker);
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return Ok::<(), Failure>(());
                }
                let bytes = if receipts {
                    receipt(initial + n, &checker)?
                } else {
                    entry(initial + n, len)
                };
                loop {
                    match log.submit(bytes.clone(), None).await {
                        Ok(_) => break,
                        Err(LogError::Backpressure { .. }) => {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err(e) => return Err(Failure(format!("submit failed: {e}"))),
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let reporter = {
        let (log, done) = (log.clone(), Arc::clone(&done));
        let (total, every) = (args.entries, args.report_every.max(1));
        tokio::spawn(async move {
            let mut next_mark = every;
            let mut last = (Instant::now(), 0u64);
            while next_mark <= total {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let d = done.load(Ordering::Relaxed);
                if d >= next_mark {
                    let now = Instant::now();
                    let rate = (d - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
                    println!(
                        "fill: +{d} entries  tree size {}  {:.0} s  {rate:.0} entries/s  RSS {} KiB",
                        log.stats().tree_size,
                        start.elapsed().as_secs_f64(),
                        rss_kib().unwrap_or(0)
                    );
                    last = (now, d);
                    next_mark = (d / every + 1) * every;
                }
            }
        })
    };
    for task in tasks {
        task.await.context("submitter panicked")??;
    }
    reporter.abort();
    let added = done.load(Ordering::Relaxed);
    if let Some(last) = (initial + added).checked_sub(1) {
        log.wait_integrated(LeafIndex(last))
            .await
            .context("integration")?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let stats = log.stats();
    log.shutdown().await.context("log shutdown")?;
    println!(
        "fill: added {added} entries in {elapsed:.1} s ({:.0} entries/s); tree size {}; RSS {} KiB; {} batches",
        added as f64 / elapsed,
        stats.tree_size,
        rss_kib().unwrap_or(0),
        stats.batches
    );
    Ok(())
}

/// Resident set size of this process in KiB (`VmRSS` of `/proc/self/status`), where available.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_have_the_length_and_differ() {
        assert_eq!(entry(1, 300).len(), 300);
        assert_eq!(entry(1, 5).len(), 5);
        assert_ne!(entry(1, 300), entry(2, 300));
        assert_eq!(entry(7, 300), entry(7, 300));
        let checker = Signer::generate("bench-checker").unwrap();
        let r = receipt(4, &checker).unwrap();
        let v = verdict_core::receipt::Receipt::verify(&r, &[checker.verifier()]).unwrap();
        assert_eq!(v.statement().request_id, "fill-4");
    }
}
