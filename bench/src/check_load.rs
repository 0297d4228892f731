//! The check load of `verdict-bench`: `POST /v1/check` at a fixed rate or flat out.
//!
//! Each of `--concurrency` workers sends one request at a time. At a fixed rate (`--rate N`)
//! worker `w` of `c` has scheduled starts `start + (w + k·c) / N`, and a request's latency is
//! measured from its scheduled start, not from when it was sent: a server that falls behind
//! shows up in the percentiles (no coordinated omission). Flat out (`--rate 0`), latency is
//! measured from the send.
//!
//! Counted per answer: 2xx (latency recorded), 503 (backpressure or unavailable: expected past
//! saturation; each must carry `Retry-After`), everything else is an error. With `--verify` the
//! index and receipt of every acknowledged decision are kept for [`crate::verify`].

use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine as _;

use crate::verify::{self, Acknowledged};
use crate::{BenchArgs, BenchResult};

/// The part of a `POST /v1/check` answer that `--verify` needs.
#[derive(Debug, serde::Deserialize)]
struct Ack {
    index: u64,
    receipt: String,
}

/// Run the check load described by `args` and print the report.
///
/// # Errors
/// Unreadable token file, an invalid `--action`, a failed `--verify` (lost entries).
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let token = std::fs::read_to_string(&args.token_file)
        .with_context(|| format!("cannot read token file {}", args.token_file.display()))?
        .trim()
        .to_owned();
    let action: serde_json::Value =
        serde_json::from_str(&args.action).context("--action is not JSON")?;
    let body = bytes_of(&serde_json::json!({ "policy": args.policy, "action": action }))?;
    let base = args.url.trim_end_matches('/').to_owned();
    let query = match (args.no_wait, args.witnessed) {
        (true, _) => "?wait=false",
        (false, true) => "?witnessed=true",
        (false, false) => "",
    };
    let url = format!("{base}/v1/check{query}");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let before = if args.verify {
        Some(verify::tree_size(&client, &base).await?)
    } else {
        None
    };
    let concurrency = args.concurrency.max(1);
    let duration = Duration::from_secs(args.duration.max(1));
    // Interval between two scheduled starts of one worker at a fixed rate.
    let interval = (args.rate > 0).then(|| {
        Duration::from_secs_f64(
            f64::from(u32::try_from(concurrency).unwrap_or(u32::MAX)) / args.rate as f64,
        )
    });
    println!(
        "bench: {url} for {}s, concurrency {concurrency}, rate {}",
        duration.as_secs(),
        if args.rate == 0 {
            "flat out".to_owned()
        } else {
            format!("{}/s", args.rate)
        }
    );
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let job = Worker {
            client: client.clone(),
            url: url.clone(),
            token: token.clone(),
            body: body.clone(),
            keep_acks: args.verify,
            start,
            duration,
            interval,
            // Stagger workers evenly over one interval.
            offset: interval.map_or(Duration::ZERO, |i| {
                i.mul_f64(worker as f64 / concurrency as f64)
            }),
        };
        tasks.push(tokio::spawn(job.run()));
    }
    let mut total = BenchResult::new()?;
    let mut acks = Vec::new();
    for task in tasks {
        let (r, a) = task.await.context("worker panicked")??;
        total.merge(&r)?;
        acks.extend(a);
    }
    let elapsed = start.elapsed().as_secs_f64();
    print_report(&total, elapsed);
    if let Some(before) = before {
        verify::run(&client, &base, before, total.ok, acks, concurrency.min(32)).await?;
    }
    Ok(())
}

fn bytes_of(value: &serde_json::Value) -> anyhow::Result<Vec<u8>> {
    Ok(serde_json::to_vec(value)?)
}

/// One load worker.
struct Worker {
    client: reqwest::Client,
    url: String,
    token: String,
    body: Vec<u8>,
    keep_acks: bool,
    start: Instant,
    duration: Duration,
    interval: Option<Duration>,
    offset: Duration,
}

impl Worker {
    async fn run(self) -> anyhow::Result<(BenchResult, Vec<Acknowledged>)> {
        let mut result = BenchResult::new()?;
        let mut acks = Vec::new();
        let auth = format!("Bearer {}", self.token);
        let mut next = self.start + self.offset;
        loop {
            let scheduled = match self.interval {
                Some(i) => {
                    tokio::time::sleep_until(next.into()).await;
                    let s = next;
                    next += i;
                    s
                }
                None => Instant::now(),
            };
            if scheduled.duration_since(self.start) >= self.duration {
                break;
            }
            let response = self
                .client
                .post(&self.url)
                .header(reqwest::header::AUTHORIZATION, &auth)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(self.body.clone())
                .send()
                .await;
            match response {
                Ok(r) if r.status().is_success() => {
                    let Ok(bytes) = r.bytes().await else {
                        result.errors += 1;
                        continue;
                    };
                    let micros = u64::try_from(scheduled.elapsed().as_micros()).unwrap_or(u64::MAX);
                    result.latency.saturating_record(micros.max(1));
                    result.ok += 1;
                    if self.keep_acks {
                        acks.push(acknowledged(&bytes)?);
                    }
                }
                Ok(r) if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                    if !r.headers().contains_key(reqwest::header::RETRY_AFTER) {
                        result.missing_retry_after += 1;
                    }
                    let _ = r.bytes().await;
                    result.unavailable += 1;
                }
                Ok(_) | Err(_) => result.errors += 1,
            }
        }
        Ok((result, acks))
    }
}

/// Index and receipt of a 2xx answer.
pub(crate) fn acknowledged(body: &[u8]) -> anyhow::Result<Acknowledged> {
    let ack: Ack = serde_json::from_slice(body).context("acknowledged answer without index")?;
    let receipt = base64::engine::general_purpose::STANDARD
        .decode(ack.receipt)
        .context("acknowledged answer with a bad receipt")?;
    Ok(Acknowledged {
        index: ack.index,
        receipt,
    })
}

fn print_report(total: &BenchResult, elapsed: f64) {
    let ms = |q: f64| total.latency.value_at_quantile(q) as f64 / 1000.0;
    println!("requests ok:   {}", total.ok);
    println!("errors:        {}", total.errors);
    println!(
        "503 answers:   {} (without Retry-After: {})",
        total.unavailable, total.missing_retry_after
    );
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
}
