//! The accept loop of `verdict-server`: HTTP/1.1 over TCP with per-connection timeouts and
//! graceful shutdown, used by `main.rs` instead of `axum::serve`.
//!
//! Why not `axum::serve`: it builds its connections without a timer, and hyper enforces its
//! header-read timeout only with one, so a client that trickles its request line and headers
//! (Slowloris) would hold a connection and a task forever. Here every connection gets:
//!
//! - `TCP_NODELAY`, so small answers (checkpoints, decisions) are not delayed by Nagle's
//!   algorithm waiting for the client's delayed ACK;
//! - a header-read timeout ([`ServeOptions::header_read_timeout`]): from the moment hyper starts
//!   reading a request head (a new connection, or an idle keep-alive connection waiting for its
//!   next request) the client must deliver the complete head within the timeout, or the
//!   connection is closed without an answer;
//! - the request timeout of the router (tower-http `TimeoutLayer`, `request_timeout_ms`): it
//!   covers the body too, because the body is read inside the handler, so a client that trickles
//!   a body gets the router's 503 `{error: "unavailable", message: "...request timed out"}` at the
//!   timeout, and the connection is closed (hyper does not keep a connection whose request body
//!   was not read to the end).
//!
//! Graceful shutdown: when the `shutdown` future completes, the loop stops accepting, asks every
//! connection to finish its in-flight request and close (idle ones close at once), and returns
//! when all connection tasks have ended. Each is bounded by the two timeouts above. The caller
//! then flushes the log (`Log::shutdown`, see `main.rs`).
//!
//! The slow-client test (`tests/server/slow_client.rs`) runs this loop on 127.0.0.1.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;

/// Per-connection options of [`serve`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeOptions {
    /// Time a client has to send a complete request head (request line and headers), counted
    /// from when the server starts reading it. Also bounds idle keep-alive connections.
    pub header_read_timeout: Duration,
    /// Set `TCP_NODELAY` on accepted sockets.
    pub nodelay: bool,
}

impl ServeOptions {
    /// Options for a configuration: `header_read_timeout_ms` (default 10 s); `TCP_NODELAY` on.
    pub fn from_config(config: &Config) -> Self {
        Self {
            header_read_timeout: config.header_read_timeout(),
            nodelay: true,
        }
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self::from_config(&Config::default())
    }
}

/// Serve `app` on `listener` until `shutdown` completes, then shut down gracefully (see the
/// module docs). Accept errors are logged and retried (after a second when they are not about a
/// single connection, e.g. out of file descriptors); this never returns early.
pub async fn serve<F>(listener: TcpListener, app: Router, options: ServeOptions, shutdown: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    // Dropping `signal_rx` tells every connection to shut down: `signal_tx.closed()` resolves.
    let (signal_tx, signal_rx) = watch::channel(());
    tokio::spawn(async move {
        shutdown.await;
        drop(signal_rx);
    });
    // Every connection task holds a `close_rx`; `close_tx.closed()` resolves when all ended.
    let (close_tx, close_rx) = watch::channel(());

    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = signal_tx.closed() => break,
        };
        let (stream, remote) = match accepted {
            Ok(pair) => pair,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                tracing::error!(error = %e, "accept failed: {e}; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if options.nodelay {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(%remote, error = %e, "cannot set TCP_NODELAY: {e}");
            }
        }
        let service = TowerToHyperService::new(app.clone());
        let signal_tx = signal_tx.clone();
        let close_rx = close_rx.clone();
        tokio::spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(options.header_read_timeout)
                .keep_alive(true);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            let mut shutting_down = false;
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            // Header timeouts, resets and parse errors of one client.
                            tracing::debug!(%remote, error = %e, "connection ended: {e}");
                        }
                        break;
                    }
                    () = signal_tx.closed(), if !shutting_down => {
                        shutting_down = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(close_rx);
        });
    }

    drop(close_rx);
    drop(listener);
    tracing::debug!(
        connections = close_tx.receiver_count(),
        "waiting for connections to finish"
    );
    close_tx.closed().await;
}

/// Errors of `accept` that concern one connection only (retry at once).
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
