//! A small HTTP/1.1 proxy on loopback that sits between a client and a real `verdict-server`
//! and misbehaves on chosen requests: it withholds tiles (404, 503, a dropped connection, a body
//! cut short) or flips one bit of them. Used by the `verdict audit` fault tests.
//!
//! The proxy reads one request per connection (`GET` only, headers up to 16 KiB), forwards it to
//! the upstream server with `reqwest`, applies the [`Fault`] that its rule picks for the path,
//! and closes the connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, Result};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does with one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward it unchanged.
    Pass,
    /// Answer `404 Not Found` with an empty body.
    NotFound,
    /// Answer `503 Service Unavailable`.
    Unavailable,
    /// Close the connection without answering.
    Drop,
    /// Announce the full length but send only half of the body.
    Truncate,
    /// Flip bit `bit` (taken modulo the body's bit length) of the body.
    Flip {
        /// Bit position.
        bit: u64,
    },
}

/// Chooses the fault for a request path (without the leading `/`).
pub type Rule = Arc<dyn Fn(&str) -> Fault + Send + Sync>;

/// Counts of what the proxy did.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Requests forwarded unchanged.
    pub passed: AtomicU64,
    /// Requests withheld (404, 503, dropped or truncated).
    pub withheld: AtomicU64,
    /// Responses with a flipped bit.
    pub flipped: AtomicU64,
}

/// A running proxy; stopped when dropped.
#[derive(Debug)]
pub struct Proxy {
    /// Base URL of the proxy, e.g. `http://127.0.0.1:40123`.
    pub base: String,
    /// What it did so far.
    pub stats: Arc<ProxyStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A rule that, for every tile and entry bundle path, withholds it with probability
/// `withhold` and flips a bit with probability `flip`, chosen from `seed` and the path alone
/// (so a run is reproducible whatever the order of requests). Other paths pass.
pub fn seeded_rule(seed: u64, withhold: f64, flip: f64) -> Rule {
    Arc::new(move |path: &str| {
        if !path.starts_with("tile/") {
            return Fault::Pass;
        }
        let mut rng = StdRng::seed_from_u64(seed ^ fnv1a(path.as_bytes()));
        let x: f64 = rng.gen();
        if x < withhold {
            match rng.gen_range(0..4u8) {
                0 => Fault::NotFound,
                1 => Fault::Unavailable,
                2 => Fault::Drop,
                _ => Fault::Truncate,
            }
        } else if x < withhold + flip {
            Fault::Flip { bit: rng.gen() }
        } else {
            Fault::Pass
        }
    })
}

/// FNV-1a of `bytes`: a stable hash of a path for seeding.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl Proxy {
    /// Start a proxy to `upstream` (a base URL) on a free loopback port.
    ///
    /// # Errors
    /// When the port cannot be bound or the client cannot be built.
    pub async fn start(upstream: &str, rule: Rule) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        let stats = Arc::new(ProxyStats::default());
        let upstream = upstream.trim_end_matches('/').to_owned();
        let st = Arc::clone(&stats);
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (client, upstream, rule, st) = (
                    client.clone(),
                    upstream.clone(),
                    Arc::clone(&rule),
                    Arc::clone(&st),
                );
                tokio::spawn(async move {
                    // A failed connection only affects that client request.
                    let _ = serve(sock, &client, &upstream, &rule, &st).await;
                });
            }
        });
        Ok(Proxy {
            base: format!("http://{addr}"),
            stats,
            task,
        })
    }
}

/// Read the request head: up to the blank line, at most 16 KiB.
async fn read_head(sock: &mut TcpStream) -> Result<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut buf).await?;
        if n == 0 {
            return Err(anyhow!("connection closed before the request head ended"));
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
        if head.len() > 16 * 1024 {
            return Err(anyhow!("request head too long"));
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

async fn serve(
    mut sock: TcpStream,
    client: &reqwest::Client,
    upstream: &str,
    rule: &Rule,
    stats: &ProxyStats,
) -> Result<()> {
    let head = read_head(&mut sock).await?;
    let target = head
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("GET "))
        .and_then(|rest| rest.split(' ').next())
        .ok_or_else(|| anyhow!("not a GET request"))?
        .to_owned();
    let path = target.trim_start_matches('/');
    let fault = rule(path);
    if fault == Fault::Drop {
        stats.withheld.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    let resp = client.get(format!("{upstream}/{path}")).send().await?;
    let status = resp.status();
    let mut body = resp.bytes().await?.to_vec();
    let (code, reason) = match fault {
        Fault::NotFound => {
            body.clear();
            (404, "Not Found")
        }
        Fault::Unavailable => {
            body = b"unavailable".to_vec();
            (503, "Service Unavailable")
        }
        _ => (
            status.as_u16(),
            status.canonical_reason().unwrap_or("Unknown"),
        ),
    };
    let announced = body.len();
    match fault {
        Fault::Truncate => body.truncate(announced / 2),
        Fault::Flip { bit } if !body.is_empty() => {
            let bits = (body.len() as u64) * 8;
            let bit = bit % bits;
            if let Some(byte) = body.get_mut(usize::try_from(bit / 8).unwrap_or(0)) {
                *byte ^= 1 << (bit % 8);
            }
        }
        _ => {}
    }
    match fault {
        Fault::Pass => stats.passed.fetch_add(1, Ordering::Relaxed),
        Fault::Flip { .. } => stats.flipped.fetch_add(1, Ordering::Relaxed),
        _ => stats.withheld.fetch_add(1, Ordering::Relaxed),
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\ncontent-length: {announced}\r\ncontent-type: application/octet-stream\r\nconnection: close\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await?;
    sock.write_all(&body).await?;
    sock.shutdown().await?;
    Ok(())
}
