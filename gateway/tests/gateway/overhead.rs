//! The latency the gateway adds to a tool call (`--ignored`; figures in docs/benchmarks.md).
//!
//! The same allowed `write_file` call is made N times directly against the filesystem server
//! (rmcp client, stdio child process) and N times through the gateway (rmcp client, Streamable
//! HTTP → gateway → `POST /v1/check` with the proof → stdio upstream). Prints p50/p99 of both and
//! of the difference of the percentiles.
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

async fn measure(
    client: &RunningService<RoleClient, ()>,
    root: &std::path::Path,
    n: u64,
    tag: &str,
) -> Result<Histogram<u64>> {
    let mut h = Histogram::<u64>::new(3)?;
    for i in 0..n + 20 {
        let args = json!({"path": root.join(format!("internal/{tag}-{i}.txt")), "content": "x"});
        let params = CallToolRequestParams::new("write_file")
            .with_arguments(args.as_object().cloned().unwrap_or_default());
        let t = Instant::now();
        let r = client.call_tool(params).await?;
        let us = u64::try_from(t.elapsed().as_micros())?;
        assert_ne!(r.is_error, Some(true), "{tag} call failed: {:?}", r.content);
        if i >= 20 {
            h.record(us)?; // the first 20 warm up
        }
    }
    Ok(h)
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
    let direct = measure(&direct_client, &setup.root, n, "direct").await?;
    let gw = setup.gateway().await?;
    let gw_client = ()
        .serve(StreamableHttpClientTransport::from_uri(format!(
            "{}/mcp",
            gw.base
        )))
        .await?;
    let via = measure(&gw_client, &setup.root, n, "gateway").await?;
    let ms = |us: u64| us as f64 / 1000.0;
    println!("gateway overhead, {n} allowed write_file calls each (after 20 warm-up calls)");
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
        "  added: p50 {:.2} ms  p99 {:.2} ms",
        ms(via
            .value_at_quantile(0.5)
            .saturating_sub(direct.value_at_quantile(0.5))),
        ms(via
            .value_at_quantile(0.99)
            .saturating_sub(direct.value_at_quantile(0.99)))
    );
    direct_client.cancel().await?;
    gw_client.cancel().await?;
    Ok(())
}
