//! The latency the gateway adds to a tool call (`--ignored`; figures in docs/benchmarks.md).
//!
//! The same allowed `write_file` call is made N times directly against the filesystem server
//! (rmcp client, stdio child process) and N times through the gateway, A/B interleaved in one
//! run (the order alternates every round) (rmcp client, Streamable
//! HTTP → gateway → `POST /v1/check` with the proof → stdio upstream). Prints p50/p99 of both, of
//! the difference of the percentiles and of the per-round difference. Not a timed assertion.
//!
//! `cargo test --release -p verdict-gateway --test gateway -- --ignored --nocapture overhead`
//! (`GATEWAY_OVERHEAD_CALLS`, default 300).

use std::time::Instant;

use anyhow::Result;
use hdrhistogram::Histogram;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt as _};
use serde_json::json;

use crate::support::{filesystem_server, skip, Setup};

/// One allowed `write_file` call; its latency in µs.
async fn timed_call(
    client: &RunningService<RoleClient, ()>,
    root: &std::path::Path,
    tag: &str,
    i: u64,
) -> Result<u64> {
    let args = json!({"path": root.join(format!("internal/{tag}-{i}.txt")), "content": "x"});
    let params = CallToolRequestParams::new("write_file")
        .with_arguments(args.as_object().cloned().unwrap_or_default());
    let t = Instant::now();
    let r = client.call_tool(params).await?;
    let us = u64::try_from(t.elapsed().as_micros())?;
    assert_ne!(r.is_error, Some(true), "{tag} call failed: {:?}", r.content);
    Ok(us)
}

/// N calls each way, A/B interleaved (the order alternates each round, so load from other
/// work on the machine falls on both sides alike); the first 20 rounds warm up.
async fn measure(
    direct: &RunningService<RoleClient, ()>,
    via: &RunningService<RoleClient, ()>,
    root: &std::path::Path,
    n: u64,
) -> Result<(Histogram<u64>, Histogram<u64>, Histogram<u64>)> {
    let (mut hd, mut hg, mut added) = (
        Histogram::<u64>::new(3)?,
        Histogram::<u64>::new(3)?,
        Histogram::<u64>::new(3)?,
    );
    for i in 0..n + 20 {
        let (d, g) = if i % 2 == 0 {
            let d = timed_call(direct, root, "direct", i).await?;
            (d, timed_call(via, root, "gateway", i).await?)
        } else {
            let g = timed_call(via, root, "gateway", i).await?;
            (timed_call(direct, root, "direct", i).await?, g)
        };
        if i >= 20 {
            hd.record(d)?;
            hg.record(g)?;
            added.record(g.saturating_sub(d))?;
        }
    }
    Ok((hd, hg, added))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run with --ignored --nocapture (release build for the published figures)"]
async fn overhead() -> Result<()> {
    let fs = match filesystem_server() {
        Ok(fs) => fs,
        Err(e) => {
            skip("gateway overhead measurement", &e);
            return Ok(());
        }
    };
    let n: u64 = std::env::var("GATEWAY_OVERHEAD_CALLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let setup = Setup::new(fs.clone()).await?;
    let mut cmd = tokio::process::Command::new(&fs.0);
    cmd.arg(&fs.1).arg(&setup.root);
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let direct_client = ().serve(transport).await?;
    let gw = setup.gateway().await?;
    let gw_client = ()
        .serve(StreamableHttpClientTransport::from_uri(format!(
            "{}/mcp",
            gw.base
        )))
        .await?;
    let (direct, via, added) = measure(&direct_client, &gw_client, &setup.root, n).await?;
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "gateway overhead, {n} allowed write_file calls each way, A/B interleaved (after 20 warm-up rounds)"
    );
    println!(
        "  direct (rmcp stdio → filesystem server): p50 {:.2} ms  p99 {:.2} ms",
        ms(direct.value_at_quantile(0.5)),
        ms(direct.value_at_quantile(0.99))
    );
    println!(
        "  through gateway (HTTP → check → stdio):  p50 {:.2} ms  p99 {:.2} ms",
        ms(via.value_at_quantile(0.5)),
        ms(via.value_at_quantile(0.99))
    );
    println!(
        "  added (difference of the percentiles): p50 {:.2} ms  p99 {:.2} ms",
        ms(via
            .value_at_quantile(0.5)
            .saturating_sub(direct.value_at_quantile(0.5))),
        ms(via
            .value_at_quantile(0.99)
            .saturating_sub(direct.value_at_quantile(0.99)))
    );
    println!(
        "  added (per round, gateway minus direct):  p50 {:.2} ms  p99 {:.2} ms",
        ms(added.value_at_quantile(0.5)),
        ms(added.value_at_quantile(0.99))
    );
    direct_client.cancel().await?;
    gw_client.cancel().await?;
    Ok(())
}
