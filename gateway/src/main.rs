//! `verdict-gateway`: see the crate documentation and `docs/gateway-guide.md`.
//!
//! Exit codes: 0 clean shutdown, 2 configuration or mapping error (one line with file and
//! line), 3 an upstream cannot be started or reached, 4 the listener cannot be bound, 1 other.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use rmcp::ServiceExt as _;
use tokio_util::sync::CancellationToken;
use verdict_gateway::{ops, Config, Gateway, GatewayError, GatewayHandler};

/// MCP gateway: checks every tool call with verdict-server before it reaches the tool.
#[derive(Debug, Parser)]
#[command(name = "verdict-gateway", version)]
struct Cli {
    /// The configuration and mapping file (TOML).
    #[arg(long, short, env = "VERDICT_GATEWAY_CONFIG")]
    config: PathBuf,
    /// Serve MCP over Streamable HTTP at http://ADDR/mcp (with /health and /metrics); overrides
    /// `listen` in the file.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Serve MCP on stdin/stdout (for local clients that start the gateway as a process).
    #[arg(long)]
    stdio: bool,
    /// Validate the configuration and mappings (no upstream is started) and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() {
    let cli = Cli::parse();
    // Logs go to stderr: stdout may be the MCP stdio stream.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let code = match tokio::runtime::Runtime::new() {
        Ok(rt) => match rt.block_on(run(cli)) {
            Ok(()) => 0,
            Err(e) => {
                let code = e
                    .downcast_ref::<GatewayError>()
                    .map_or(1, GatewayError::exit_code);
                eprintln!("verdict-gateway: {e:#}");
                code
            }
        },
        Err(e) => {
            eprintln!("verdict-gateway: cannot start the runtime: {e}");
            1
        }
    };
    std::process::exit(code);
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(&cli.config)?;
    if cli.check_config {
        println!(
            "{}: ok ({} policies, {} upstreams, {} tool mappings)",
            cli.config.display(),
            config.policies.len(),
            config.upstreams.len(),
            config.tools.len()
        );
        return Ok(());
    }
    let listen = cli.listen.or(config.listen);
    if listen.is_none() && !cli.stdio {
        anyhow::bail!("nothing to serve: give --listen ADDR, `listen` in the file, or --stdio");
    }
    let handler = GatewayHandler::new(Gateway::start(config).await?);
    let ct = CancellationToken::new();
    let http = match listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| GatewayError::Listen {
                    addr: addr.to_string(),
                    source,
                })?;
            let bound = listener.local_addr()?;
            tracing::info!("verdict-gateway serving MCP at http://{bound}/mcp");
            let app = ops::app(handler.clone(), ct.child_token());
            let shutdown = ct.clone();
            Some(tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move { shutdown.cancelled().await })
                    .await
            }))
        }
        None => None,
    };
    if cli.stdio {
        tracing::info!("verdict-gateway serving MCP on stdio");
        let service = handler.serve(rmcp::transport::stdio()).await?;
        tokio::select! {
            r = service.waiting() => { r?; }
            _ = shutdown_signal() => {}
        }
    } else {
        shutdown_signal().await;
    }
    ct.cancel();
    if let Some(h) = http {
        h.await??;
    }
    Ok(())
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
