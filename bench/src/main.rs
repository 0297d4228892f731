//! `verdict-bench`: a load generator for `verdict-server` over HTTP: `POST /v1/check`
//! ([`check_load`], the default) and `verdict-bench proofs` ([`proofs`]: proof and tile serving
//! latency). It uses only the public API of the server and `verdict-core` to verify answers. (To
//! grow a log fast without HTTP, `verdict-server fill` appends to a stopped server's store.)
//!
//! The check load ([`check_load`]) runs `--concurrency` workers for `--duration` seconds, either
//! flat out (`--rate 0`) or at a fixed total rate (open loop: each request has a scheduled start
//! time and its latency is measured from that time, so a slow server is not hidden by coordinated
//! omission). It prints throughput, latency percentiles (hdrhistogram, microsecond resolution),
//! errors, and 503 answers with how many lacked `Retry-After`. `--verify` ([`verify`]) then
//! checks that nothing acknowledged was lost.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser as _;
use hdrhistogram::Histogram;

mod check_load;
mod proofs;
mod verify;

/// Modes of `verdict-bench` besides the default check load.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchMode {
    /// Measure inclusion-proof or tile latency against a running server.
    Proofs(proofs::ProofsArgs),
}

/// Arguments of `verdict-bench`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "verdict-bench",
    version,
    about = "Load generator for verdict-server: POST /v1/check, or proofs and tiles",
    args_conflicts_with_subcommands = true
)]
pub struct BenchArgs {
    /// A scale mode instead of the check load.
    #[command(subcommand)]
    pub mode: Option<BenchMode>,
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// File holding an agent token (screen and check).
    #[arg(long, default_value = "verdict-data/agent.token")]
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
    /// Send `?witnessed=true`: each answer waits for a checkpoint cosigned by the server's
    /// witness quorum (ignored with `--no-wait`).
    #[arg(long, conflicts_with = "no_wait")]
    pub witnessed: bool,
    /// After the run, check that nothing acknowledged was lost: every acknowledged receipt is
    /// served by `GET /v1/bundle/<index>` at its index with a valid inclusion proof against a
    /// checkpoint signed by the log key, and the log grew by no less than the acknowledged
    /// count. Exits non-zero on any loss.
    #[arg(long)]
    pub verify: bool,
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
    /// 503 answers without a `Retry-After` header (must stay 0).
    pub missing_retry_after: u64,
    /// Other errors (non-2xx or transport).
    pub errors: u64,
}

impl BenchResult {
    /// Empty results (latency from 1 µs to 60 s, 3 significant digits).
    ///
    /// # Errors
    /// Never in practice (fixed, valid histogram bounds).
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            latency: Histogram::new_with_bounds(1, 60_000_000, 3)?,
            ok: 0,
            unavailable: 0,
            missing_retry_after: 0,
            errors: 0,
        })
    }

    /// Add `other` into `self`.
    ///
    /// # Errors
    /// When the histograms cannot be merged.
    pub fn merge(&mut self, other: &Self) -> anyhow::Result<()> {
        self.latency.add(&other.latency)?;
        self.ok += other.ok;
        self.unavailable += other.unavailable;
        self.missing_retry_after += other.missing_retry_after;
        self.errors += other.errors;
        Ok(())
    }
}

/// Run the chosen mode and print a report. Exit codes: 0 success, 1 failure (unreachable
/// server, unreadable token file, lost entries with `--verify`), 2 usage error.
#[tokio::main]
async fn main() -> ExitCode {
    let args = BenchArgs::parse();
    let result = match args.mode.clone() {
        Some(BenchMode::Proofs(p)) => proofs::run(p).await,
        None => check_load::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("verdict-bench: {e:#}");
            ExitCode::from(1)
        }
    }
}
