//! `verdict-server fill`: grow a log fast, without the checker or HTTP (for benchmarks at scale,
//! `scripts/bench-scale.sh`; it needs the store exclusively, so it is part of the server binary,
//! not of the HTTP load generator `verdict-bench`).
//!
//! It writes only to a benchmark data directory: a new or empty one, which it marks with the file
//! [`BENCH_MARKER`], or one so marked. A directory with other files (a server may have used it)
//! is refused with exit code 4, so synthetic entries never enter a real log. The keys it creates
//! are throwaway keys named for benchmarks: origin [`BENCH_ORIGIN`], checker key
//! `bench.invalid/verdict-server-fill/checker` (`.invalid` is reserved, RFC 2606).
//!
//! Opens the sled log of that directory directly (the same layout `serve` uses, with the
//! checkpoint lock, so the directory can be served afterwards) and submits synthetic receipt-sized
//! entries through
//! [`Log::submit`] from many concurrent submitters. Every `--report-every` entries it prints the
//! throughput and this process's resident set size (`VmRSS`).
//!
//! With `--package` ([`package`]), it instead opens the directory as the server does and logs
//! real decisions through the check and screen use cases, after registering one policy: a log
//! whose every receipt has its private record, which `verdict audit export` and
//! `verdict audit verify-package` accept (the evidence-package benchmark,
//! `scripts/bench-package.sh`).

mod package;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use verdict_core::note::Signer;
use verdict_core::LeafIndex;
use verdict_log_server::config::Config;
use verdict_log_server::log::{Log, LogConfig, LogError};
use verdict_log_server::storage::sled::SledStorage;

use crate::{CmdResult, Context as _, Failure, EXIT_NOT_A_BENCH_DIR};

/// The file that marks a data directory as made by `fill` (for benchmarks only).
pub const BENCH_MARKER: &str = "BENCHMARK-DATA-ONLY";
/// Origin (and log key name) of a benchmark log.
pub const BENCH_ORIGIN: &str = "bench.invalid/verdict-server-fill";

/// Make sure `dir` is a benchmark data directory: marked, or new or empty (then mark it).
///
/// # Errors
/// Exit code 4 when `dir` holds files but no marker; I/O errors.
fn prepare_bench_dir(dir: &std::path::Path) -> CmdResult {
    let marker = dir.join(BENCH_MARKER);
    if marker.is_file() {
        return Ok(());
    }
    let used = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(Failure(format!("{}: {e}", dir.display()), 1)),
    };
    if used {
        return Err(Failure(
            format!(
                "refusing to fill {}: it is not a benchmark data directory (it holds files but no \
                 {BENCH_MARKER} file, so a server may have used it); give fill a new or empty \
                 --data-dir",
                dir.display()
            ),
            EXIT_NOT_A_BENCH_DIR,
        ));
    }
    std::fs::create_dir_all(dir).context(format_args!("cannot create {}", dir.display()))?;
    std::fs::write(
        &marker,
        "This data directory was made by `verdict-server fill`: synthetic entries signed with \
         throwaway keys, for benchmarks only.\n",
    )
    .context(format_args!("cannot write {}", marker.display()))?;
    Ok(())
}

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
    #[arg(long, conflicts_with = "package")]
    pub receipts: bool,
    /// Log an exportable period instead: register one policy, then log real decisions (allow,
    /// deny, escalate, not-applicable checks; in-scope and not-applicable screens) through the
    /// server's check and screen use cases, each receipt with its private record, so that
    /// `verdict audit export` and `verify-package` accept the log. Slower (every check is
    /// decided by the checker). `--entry-bytes` is then ignored.
    #[arg(long)]
    pub package: bool,
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
        // Shaped like a published request id (a commitment, spec `receipt.md` §7.1).
        request_id: h(b"bench-fill/request-id").to_hex(),
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
    if args.package {
        return package::run(&args, config).await;
    }
    prepare_bench_dir(&config.data_dir)?;
    let keys = verdict_log_server::keys::load_or_create(&config.data_dir, BENCH_ORIGIN, true)?;
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
            checkpoint_lock: Some(config.checkpoint_lock_path()),
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
                        Err(e) => return Err(Failure(format!("submit failed: {e}"), 1)),
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let reporter = progress(
        log.clone(),
        Arc::clone(&done),
        args.entries,
        args.report_every,
        start,
    );
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

/// Print a progress line (entries, tree size, rate, `VmRSS`) every `every` of `total` entries
/// counted in `done`, until aborted.
fn progress(
    log: Log,
    done: Arc<AtomicU64>,
    total: u64,
    every: u64,
    start: Instant,
) -> tokio::task::JoinHandle<()> {
    let every = every.max(1);
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
    fn fill_refuses_a_used_directory_and_marks_a_new_one() {
        let tmp = tempfile::tempdir().unwrap();
        let used = tmp.path().join("used");
        std::fs::create_dir_all(used.join("store")).unwrap();
        let Err(Failure(message, code)) = prepare_bench_dir(&used) else {
            panic!("a used directory was accepted");
        };
        assert_eq!(code, EXIT_NOT_A_BENCH_DIR);
        assert!(
            message.contains("not a benchmark data directory"),
            "{message}"
        );
        let fresh = tmp.path().join("fresh");
        prepare_bench_dir(&fresh).unwrap();
        assert!(fresh.join(BENCH_MARKER).is_file());
        std::fs::create_dir_all(fresh.join("store")).unwrap();
        prepare_bench_dir(&fresh).unwrap();
    }

    #[test]
    fn entries_have_the_length_and_differ() {
        assert_eq!(entry(1, 300).len(), 300);
        assert_eq!(entry(1, 5).len(), 5);
        assert_ne!(entry(1, 300), entry(2, 300));
        assert_eq!(entry(7, 300), entry(7, 300));
        let checker = Signer::generate("bench-checker").unwrap();
        let r = receipt(4, &checker).unwrap();
        let v = verdict_core::receipt::Receipt::verify(&r, &[checker.verifier()]).unwrap();
        let id = &v.statement().request_id;
        assert_eq!(id.len(), 64, "{id}");
        assert_ne!(
            id,
            &receipt(5, &checker)
                .map(|r| {
                    verdict_core::receipt::Receipt::decode(&r)
                        .unwrap()
                        .statement
                        .request_id
                })
                .unwrap()
        );
    }
}
