//! Slow clients on a real loopback socket: `serve::serve` on 127.0.0.1:0 with short timeouts.
//!
//! 250 connections misbehave at once: 150 trickle their request head one byte every 50 ms
//! (Slowloris), 50 connect and send nothing, 50 send a complete `POST /v1/check` head with the
//! write token and then trickle the body. While they are all open, normal clients (a new
//! connection per request) fetch `/checkpoint` and run checks. The test asserts outcomes, not
//! latencies:
//! - every normal request succeeds (client timeout 20 s, far above the server's), and the first
//!   ones complete while no slow connection has been closed yet, i.e. while all 250 are open;
//! - every head-trickling and idle connection is closed by the server without an answer (or with
//!   a 408), and every body-trickling one is answered 503 `{error: "unavailable"}` (the router's
//!   request timeout) and closed; none is still open after 60 s;
//! - the log grows by exactly the normal checks (the slow ones log nothing);
//! - graceful shutdown then ends the accept loop.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use verdict_log_server::serve::{serve, ServeOptions};

use crate::TestServer;

const HEAD_TRICKLERS: usize = 150;
const IDLE: usize = 50;
const BODY_TRICKLERS: usize = 50;
/// Header-read and request timeout of the server under test.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on the life of a slow connection (generous: the server closes them after `TIMEOUT`).
const BOUND: Duration = Duration::from_secs(60);

#[derive(Debug)]
enum Outcome {
    /// Closed by the server; the bytes it sent before closing.
    Closed(Vec<u8>),
    /// Still open at `BOUND`.
    StillOpen,
}

struct Counters {
    connected: AtomicUsize,
    closed: AtomicUsize,
}

/// Connect, send `head`, then send `drip` every 50 ms (if any) until the server closes.
async fn slow(addr: SocketAddr, head: Vec<u8>, drip: Option<u8>, c: Arc<Counters>) -> Outcome {
    let stream = TcpStream::connect(addr)
        .await
        .expect("connect to the server");
    let (mut rd, mut wr) = stream.into_split();
    let sent_head = wr.write_all(&head).await;
    c.connected.fetch_add(1, Ordering::SeqCst);
    let writer = async move {
        if sent_head.is_ok() {
            if let Some(b) = drip {
                loop {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if wr.write_all(&[b]).await.is_err() {
                        break;
                    }
                }
            }
        }
        // Keep the write half open (dropping it would send FIN).
        std::future::pending::<()>().await;
        drop(wr);
    };
    let reader = async move {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        // EOF or reset: the server closed the connection.
        while let Ok(n @ 1..) = rd.read(&mut buf).await {
            got.extend_from_slice(&buf[..n]);
        }
        got
    };
    let outcome = tokio::time::timeout(BOUND, async {
        tokio::select! {
            got = reader => got,
            () = writer => unreachable!(),
        }
    })
    .await;
    match outcome {
        Ok(got) => {
            c.closed.fetch_add(1, Ordering::SeqCst);
            Outcome::Closed(got)
        }
        Err(_) => Outcome::StillOpen,
    }
}

/// Status code and body of a raw HTTP/1.1 response.
fn parse_response(raw: &[u8]) -> Option<(u16, serde_json::Value)> {
    let text = std::str::from_utf8(raw).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, serde_json::from_str(body).unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_clients_do_not_starve_others() {
    let s = TestServer::start_with(|c| {
        c.request_timeout_ms = u64::try_from(TIMEOUT.as_millis()).unwrap();
    })
    .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        s.app.clone(),
        ServeOptions {
            header_read_timeout: TIMEOUT,
            nodelay: true,
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    let size_before = s.log_size();
    let tree_before = s.tree_size();

    let counters = Arc::new(Counters {
        connected: AtomicUsize::new(0),
        closed: AtomicUsize::new(0),
    });
    let mut slow_tasks = Vec::new();
    for i in 0..HEAD_TRICKLERS {
        let head = format!("GET /checkpoint HTTP/1.1\r\nHost: verdict.test\r\nX-Slow-{i}: ");
        slow_tasks.push((
            "head",
            tokio::spawn(slow(addr, head.into_bytes(), Some(b'a'), counters.clone())),
        ));
    }
    for _ in 0..IDLE {
        slow_tasks.push((
            "idle",
            tokio::spawn(slow(addr, Vec::new(), None, counters.clone())),
        ));
    }
    for _ in 0..BODY_TRICKLERS {
        let head = format!(
            "POST /v1/check HTTP/1.1\r\nHost: verdict.test\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n{{",
            s.agent_token
        );
        slow_tasks.push((
            "body",
            tokio::spawn(slow(addr, head.into_bytes(), Some(b' '), counters.clone())),
        ));
    }
    let total = slow_tasks.len();
    tokio::time::timeout(BOUND, async {
        while counters.connected.load(Ordering::SeqCst) < total {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("all slow clients connect");

    // Normal clients, a new connection per request, while the slow ones trickle.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let base = format!("http://{addr}");
    let mut checks = Vec::new();
    let mut served_while_all_open = 0;
    for k in 0..10 {
        let r = client
            .get(format!("{base}/checkpoint"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "checkpoint {k}");
        assert!(r.text().await.unwrap().contains("verdict.localhost"));
        let r = client
            .post(format!("{base}/v1/check"))
            .bearer_auth(&s.agent_token)
            .json(&serde_json::json!({
                "policy": "customer-data-egress",
                "action": {"destination": "internal", "record_count": k},
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "check {k}");
        let j: serde_json::Value = r.json().await.unwrap();
        assert_eq!(j["decision"], "allow", "{j}");
        checks.push(j["index"].as_u64().unwrap());
        if counters.closed.load(Ordering::SeqCst) == 0 {
            served_while_all_open += 1;
        }
    }
    eprintln!(
        "slow_client: {served_while_all_open} of 10 rounds (checkpoint + check) served while all \
         {total} slow connections were open"
    );
    assert!(
        served_while_all_open >= 1,
        "normal requests were served only after slow connections closed"
    );

    // Every slow connection ends as expected.
    let (mut head_closed, mut idle_closed, mut body_503) = (0, 0, 0);
    for (kind, task) in slow_tasks {
        let outcome = task.await.unwrap();
        let Outcome::Closed(got) = outcome else {
            panic!("{kind} connection: {outcome:?}");
        };
        match kind {
            "head" | "idle" => {
                // Closed without an answer, or with a 408.
                if !got.is_empty() {
                    let (status, _) = parse_response(&got)
                        .unwrap_or_else(|| panic!("{kind}: {:?}", String::from_utf8_lossy(&got)));
                    assert_eq!(status, 408, "{kind}");
                }
                if kind == "head" {
                    head_closed += 1;
                } else {
                    idle_closed += 1;
                }
            }
            _ => {
                let (status, body) = parse_response(&got)
                    .unwrap_or_else(|| panic!("body: {:?}", String::from_utf8_lossy(&got)));
                assert_eq!(status, 503, "body trickle: {body}");
                assert_eq!(body["error"], "unavailable", "{body}");
                assert!(body["message"].as_str().unwrap().contains("timed out"));
                body_503 += 1;
            }
        }
    }
    eprintln!(
        "slow_client: closed {head_closed} head tricklers and {idle_closed} idle connections; \
         {body_503} body tricklers got 503 and were closed"
    );
    assert_eq!(
        (head_closed, idle_closed, body_503),
        (HEAD_TRICKLERS, IDLE, BODY_TRICKLERS)
    );

    // The log grew by the normal checks only.
    assert_eq!(s.log_size(), size_before + 10);
    let mut sorted = checks.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 10);
    assert!(sorted
        .iter()
        .all(|&i| i >= tree_before && i < tree_before + 10));
    assert_eq!(s.tree_size(), tree_before + 10);

    // The server still serves, then shuts down gracefully.
    let r = client
        .get(format!("{base}/checkpoint"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    stop_tx.send(()).unwrap();
    tokio::time::timeout(BOUND, server)
        .await
        .expect("graceful shutdown ends the accept loop")
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}
