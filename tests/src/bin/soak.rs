//! Crash soak: drive a real `verdict-server` with checks, `kill -9` it at random moments,
//! restart it on the same data directory and prove nothing acknowledged was lost and every
//! checkpoint served stays consistent (issue 6, "Crash soak"; see `docs/reliability.md`).
//!
//! ```sh
//! cargo run -p verdict-tests --bin soak -- --cycles 20 --clients 8 --seed 1
//! ```
//! Exit 0 when every cycle holds; 1 on any violation (lost receipt, inconsistent checkpoint,
//! log not accepting writes); 2 when the soak could not run.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use verdict_tests::soak::{run, SoakConfig};

/// Crash soak of verdict-server.
#[derive(Parser, Debug)]
struct Args {
    /// Kill/restart cycles.
    #[arg(long, default_value_t = 20)]
    cycles: u32,
    /// Concurrent client tasks.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Seed of the kill moments and actions (random when absent).
    #[arg(long)]
    seed: Option<u64>,
    /// Shortest run under load before a kill, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    min_run_ms: u64,
    /// Longest run under load before a kill, in milliseconds.
    #[arg(long, default_value_t = 6000)]
    max_run_ms: u64,
    /// Data directory (default: a fresh temporary directory, removed afterwards).
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(rand::random);
    let cfg = SoakConfig {
        cycles: args.cycles,
        clients: args.clients,
        seed,
        min_run: Duration::from_millis(args.min_run_ms),
        max_run: Duration::from_millis(args.max_run_ms),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("soak: runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let tmp = match tempfile::tempdir() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("soak: temp dir: {e}");
            return ExitCode::from(2);
        }
    };
    let data_dir = args.data_dir.unwrap_or_else(|| tmp.path().join("data"));
    println!(
        "soak: {} cycles, {} clients, seed {seed}, data dir {}",
        cfg.cycles,
        cfg.clients,
        data_dir.display()
    );
    let started = Instant::now();
    let result = rt.block_on(run(&cfg, &data_dir, |c| {
        println!(
            "cycle {:>3}: killed after {:>5} ms; acked {:>6} (total {:>7}), failed {:>4}, tree size {:>7}, checkpoints {:>5}, lost {}, inconsistent {}",
            c.cycle,
            c.ran_for.as_millis(),
            c.acked,
            c.acked_total,
            c.failed,
            c.tree_size,
            c.checkpoints,
            c.lost,
            c.inconsistent
        );
    }));
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("soak: could not run: {e:#}");
            return ExitCode::from(2);
        }
    };
    println!(
        "soak done in {:.1} s: cycles {}, acknowledged {} ({} with bundle), lost {}, inconsistent checkpoints {}, checkpoints verified {}, final tree size {}, violations {}",
        started.elapsed().as_secs_f64(),
        report.cycles,
        report.acknowledged,
        report.acknowledged_with_bundle,
        report.lost,
        report.inconsistent,
        report.checkpoints,
        report.tree_size,
        report.violations.len()
    );
    for v in &report.violations {
        println!("violation: {v}");
    }
    if report.violations.is_empty() && report.lost == 0 && report.inconsistent == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
