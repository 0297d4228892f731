//! `verdict-server bench`: a load generator for `POST /v1/check` over HTTP, and the scale
//! modes `bench fill` ([`fill`]: grow a log directly) and `bench proofs` ([`proofs`]: proof and
//! tile serving latency).
//!
//! Runs `--concurrency` workers for `--duration` seconds, either flat out (`--rate 0`) or at a
//! fixed total rate (open loop: each request has a scheduled start time and its latency is
//! measured from that time, so a slow server is not hidden by coordinated omission). Prints
//! throughput, latency percentiles (hdrhistogram, microsecond resolution), errors and 503s.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;

use crate::config::Config;

pub mod fill;
pub mod proofs;

/// Scale modes of `verdict-server bench` (without one, it drives `POST /v1/check`).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchMode {
    /// Append synthetic entries to the log of `--data-dir` directly (no server, no checker).
    Fill(fill::FillArgs),
    /// Measure inclusion-proof or tile latency against a running server.
    Proofs(proofs::ProofsArgs),
}

/// Arguments of `verdict-server bench`.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// A scale mode instead of the check load.
    #[command(subcommand)]
    pub mode: Option<BenchMode>,
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// File holding the write token.
    #[arg(long, default_value = "verdict-data/write.token")]
    pub token_file: PathBuf,
    /// Policy name or commitment.
    #[arg(long, default_value = "customer-data-egress")]
    pub policy: String,
    /// Action JSON sent with every check.
    #[arg(
        long,
        default_value = r#"{"destination":"internal","record_count":10}"#
    )]
    pub action: String,
    /// Total requests per second; 0 = flat out.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Concurrent requests in flight (workers).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Duration in seconds.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Send `?wait=false` (measure durable sequencing instead of check-to-proof).
    #[arg(long)]
    pub no_wait: bool,
}

/// Results of one worker (or all of them, merged).
#[derive(Debug)]
pub struct BenchResult {
    /// Latency of successful requests, microseconds.
    pub latency: Histogram<u64>,
    /// Successful requests.
    pub ok: u64,
    /// 503 answers (backpressure or unavailable).
    pub unavailable: u64,
    /// Other errors (non-2xx or transport).
    pub errors: u64,
}

impl BenchResult {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            latency: Histogram::new_with_bounds(1, 60_000_000, 3)?,
            ok: 0,
            unavailable: 0,
            errors: 0,
        })
    }

    fn merge(&mut self, other: &Self) -> anyhow::Result<()> {
        self.latency.add(&other.latency)?;
        self.ok += other.ok;
        self.unavailable += other.unavailable;
        self.errors += other.errors;
        Ok(())
    }
}

/// Resident set size of this process in KiB (`VmRSS` of `/proc/self/status`), where available.
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Run the chosen mode and print a report (`config` gives the data directory of `fill`).
///
/// # Errors
/// Unreadable token file or an invalid action; the errors of [`fill::run`] and
/// [`proofs::run`]; request failures are counted, not returned.
pub async fn run(args: BenchArgs, config: &Config) -> anyhow::Result<()> {
    match args.mode.clone() {
        Some(BenchMode::Fill(fill)) => fill::run(fill, config).await,
        Some(BenchMode::Proofs(p)) => proofs::run(p).await,
        None => run_check(args).await,
    }
}

async fn run_check(args: BenchArgs) -> anyhow::Result<()> {
    let token = std::fs::read_to_string(&args.token_file)
        .with_context(|| format!("cannot read token file {}", args.token_file.display()))?
        .trim()
        .to_owned();
    let action: serde_json::Value =
        serde_json::from_str(&args.action).context("--action is not JSON")?;
    let body = serde_json::to_vec(&serde_json::json!({ "policy": args.policy, "action": action }))?;
    let url = format!(
        "{}/v1/check{}",
        args.url.trim_end_matches('/'),
        if args.no_wait { "?wait=false" } else { "" }
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let concurrency = args.concurrency.max(1);
    let duration = Duration::from_secs(args.duration.max(1));
    // Interval between two requests of one worker at a fixed rate.
    let interval = if args.rate == 0 {
        None
    } else {
        Some(Duration::from_secs_f64(
            f64::from(u32::try_from(concurrency).unwrap_or(u32::MAX)) / args.rate as f64,
        ))
    };
    println!(
        "bench: {} for {}s, concurrency {}, rate {}",
        url,
        duration.as_secs(),
        concurrency,
        if args.rate == 0 {
            "flat out".to_owned()
        } else {
            format!("{}/s", args.rate)
        }
    );
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let client = client.clone();
        let url = url.clone();
        let token = token.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut result = BenchResult::new()?;
            // Stagger workers evenly over one interval.
            let offset = interval.map_or(Duration::ZERO, |i| {
                i.mul_f64(worker as f64 / concurrency as f64)
            });
            let mut next = start + offset;
            loop {
                let scheduled = match interval {
                    Some(i) => {
                        tokio::time::sleep_until(next.into()).await;
                        let s = next;
                        next += i;
                        s
                    }
                    None => Instant::now(),
                };
                if scheduled.duration_since(start) >= duration {
                    break;
                }
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        let micros =
                            u64::try_from(scheduled.elapsed().as_micros()).unwrap_or(u64::MAX);
                        result.latency.saturating_record(micros.max(1));
                        result.ok += 1;
                    }
                    Ok(r) if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                        let _ = r.bytes().await;
                        result.unavailable += 1;
                    }
                    Ok(_) | Err(_) => result.errors += 1,
                }
            }
            anyhow::Ok(result)
        }));
    }
    let mut total = BenchResult::new()?;
    for task in tasks {
        let r = task.await.context("worker panicked")??;
        total.merge(&r)?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ms = |q: f64| total.latency.value_at_quantile(q) as f64 / 1000.0;
    println!("requests ok:   {}", total.ok);
    println!("errors:        {}", total.errors);
    println!("503 answers:   {}", total.unavailable);
    println!("elapsed:       {elapsed:.2} s");
    println!(
        "throughput:    {:.0} decisions/s",
        total.ok as f64 / elapsed
    );
    println!(
        "latency (ms):  p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        ms(0.50),
        ms(0.90),
        ms(0.99),
        total.latency.max() as f64 / 1000.0
    );
    Ok(())
}
