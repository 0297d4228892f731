//! `verdict-bench proofs`: proof-serving latency of a running server.
//!
//! Reads the tree size from `GET /checkpoint`, then `--concurrency` workers fetch `--count`
//! random `GET /v1/proof/inclusion?index=&size=` (uniform index, size uniform in
//! `(index, tree size]`) or random full tiles (`/tile/0/...` hash tiles and/or
//! `/tile/entries/...` bundles), after `--warmup` unmeasured requests. Prints throughput and
//! p50/p90/p99 latency (closed loop: each worker sends its next request when the last answered).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use verdict_core::tile::{Tile, TileKind, TILE_WIDTH};

use crate::verify::tree_size;
use crate::BenchResult;

/// What `verdict-bench proofs` fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProofKind {
    /// `GET /v1/proof/inclusion?index=&size=`.
    Inclusion,
    /// Full level-0 hash tiles and entry bundles, alternately.
    Tile,
    /// Full level-0 hash tiles only (8 KiB).
    HashTile,
    /// Full entry bundles only.
    EntryBundle,
}

/// Arguments of `verdict-bench proofs`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProofsArgs {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Measured requests.
    #[arg(long, default_value_t = 20_000)]
    pub count: u64,
    /// Unmeasured warm-up requests sent first.
    #[arg(long, default_value_t = 2_000)]
    pub warmup: u64,
    /// Concurrent requests in flight (workers).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// What to fetch.
    #[arg(long, value_enum, default_value_t = ProofKind::Inclusion)]
    pub kind: ProofKind,
    /// Seed of the request sequence.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Uniform in `0..n` (`n` ≥ 1; 0 is treated as 1).
fn below(rng: &mut StdRng, n: u64) -> u64 {
    rng.gen_range(0..n.max(1))
}

/// The relative URL of request `n` of a run against a tree of `size` entries.
fn request_path(kind: ProofKind, rng: &mut StdRng, n: u64, size: u64) -> String {
    match kind {
        ProofKind::Inclusion => {
            let index = below(rng, size);
            let at = index + 1 + below(rng, size - index);
            format!("/v1/proof/inclusion?index={index}&size={at}")
        }
        ProofKind::Tile | ProofKind::HashTile | ProofKind::EntryBundle => {
            let full = size / u64::from(TILE_WIDTH);
            let hashes = match kind {
                ProofKind::HashTile => true,
                ProofKind::EntryBundle => false,
                _ => n.is_multiple_of(2),
            };
            let tile = Tile {
                kind: if hashes {
                    TileKind::Hashes { level: 0 }
                } else {
                    TileKind::Entries
                },
                index: below(rng, full),
                width: TILE_WIDTH,
            };
            format!("/{}", tile.path())
        }
    }
}

/// Run the proof-latency benchmark and print a report.
///
/// # Errors
/// The server is unreachable, or its tree is too small for the chosen kind; request failures
/// are counted, not returned.
pub async fn run(args: ProofsArgs) -> anyhow::Result<()> {
    let base = args.url.trim_end_matches('/').to_owned();
    let concurrency = args.concurrency.max(1);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let size = tree_size(&client, &base).await?;
    let minimum = match args.kind {
        ProofKind::Inclusion => 1,
        _ => u64::from(TILE_WIDTH),
    };
    anyhow::ensure!(size >= minimum, "tree size {size} is too small");
    println!(
        "bench proofs: {base}, tree size {size}, {:?}, {} requests (+{} warm-up), concurrency {concurrency}",
        args.kind, args.count, args.warmup
    );
    let total = args.warmup + args.count;
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let (client, base, next) = (client.clone(), base.clone(), Arc::clone(&next));
        let kind = args.kind;
        let mut rng =
            StdRng::seed_from_u64(args.seed ^ (worker as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        tasks.push(tokio::spawn(async move {
            let mut result = BenchResult::new()?;
            let mut bytes = 0u64;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return anyhow::Ok((result, bytes));
                }
                let url = format!("{base}{}", request_path(kind, &mut rng, n, size));
                let sent = Instant::now();
                let ok = match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => match r.bytes().await {
                        Ok(b) if !b.is_empty() => {
                            bytes += b.len() as u64;
                            true
                        }
                        _ => false,
                    },
                    Ok(_) | Err(_) => false,
                };
                if n < args.warmup {
                    continue;
                }
                if ok {
                    let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                    result.latency.saturating_record(micros.max(1));
                    result.ok += 1;
                } else {
                    result.errors += 1;
                }
            }
        }));
    }
    let mut sum = BenchResult::new()?;
    let mut bytes = 0;
    for task in tasks {
        let (r, b) = task.await.context("worker panicked")??;
        sum.merge(&r)?;
        bytes += b;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let us = |q: f64| sum.latency.value_at_quantile(q) as f64 / 1000.0;
    println!("requests ok:   {} (errors {})", sum.ok, sum.errors);
    println!(
        "throughput:    {:.0} requests/s (incl. warm-up, {elapsed:.2} s)",
        total as f64 / elapsed
    );
    println!(
        "mean size:     {:.0} bytes",
        bytes as f64 / total.max(1) as f64
    );
    println!(
        "latency (ms):  p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
        us(0.50),
        us(0.90),
        us(0.99),
        sum.latency.max() as f64 / 1000.0
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_stay_inside_the_tree() {
        let mut rng = StdRng::seed_from_u64(3);
        for n in 0..1000 {
            let path = request_path(ProofKind::Inclusion, &mut rng, n, 1000);
            let q = path.strip_prefix("/v1/proof/inclusion?index=").unwrap();
            let (index, at) = q.split_once("&size=").unwrap();
            let (index, at): (u64, u64) = (index.parse().unwrap(), at.parse().unwrap());
            assert!(index < at && at <= 1000, "{path}");
        }
        for kind in [ProofKind::Tile, ProofKind::HashTile, ProofKind::EntryBundle] {
            for n in 0..100 {
                let path = request_path(kind, &mut rng, n, 1000);
                let tile = Tile::parse_path(path.strip_prefix('/').unwrap()).unwrap();
                assert!(tile.index < 3 && tile.width == TILE_WIDTH, "{path}");
                let hashes = tile.kind == TileKind::Hashes { level: 0 };
                match kind {
                    ProofKind::HashTile => assert!(hashes),
                    ProofKind::EntryBundle => assert!(!hashes),
                    _ => assert_eq!(hashes, n.is_multiple_of(2)),
                }
            }
        }
    }
}
