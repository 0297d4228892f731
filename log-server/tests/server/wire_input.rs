//! Bad input at the HTTP/1.1 framing level, on a real loopback socket through `serve::serve`:
//! what the router (and so `bad_input.rs`) never sees. Malformed request lines and headers,
//! conflicting or invalid `Content-Length`, request smuggling (`Content-Length` with
//! `Transfer-Encoding`), oversized heads, bad chunk framing and absurd body lengths.
//!
//! Each case must get a 4xx (or 505 for an unknown HTTP version), never a 5xx, and the
//! connection is closed. Framing errors that hyper rejects before the router get hyper's bare
//! answer with an empty body. Errors the router answers carry the JSON `{error, message}` body.
//! A client that half-closes in the middle of its body gets 400 `bad_json` (the handler sees the
//! body end early) or, when hyper notices the EOF first, a close without an answer (hyper's
//! default, as with `axum::serve`). A request with both
//! `Content-Length` and `Transfer-Encoding: chunked` is read as chunked and the connection is
//! closed after the one answer (RFC 9112 §6.1), so nothing can be smuggled behind it. The
//! server keeps serving and the log is unchanged after every case.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use verdict_log_server::serve::{serve, ServeOptions};

use crate::TestServer;

/// (name, raw request, allowed statuses, JSON error code when the router answers).
type WireCase = (&'static str, Vec<u8>, &'static [u16], Option<&'static str>);

/// Send `raw` (then half-close the socket when `half_close`), and read until the server closes
/// (bounded by 30 s).
async fn exchange(addr: SocketAddr, raw: &[u8], half_close: bool) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The server may close before reading everything (e.g. an oversized head): ignore write
    // errors and read what it answered.
    let _ = s.write_all(raw).await;
    if half_close {
        let _ = s.shutdown().await;
    }
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut got)).await;
    got
}

/// Status of the first response in `raw`, and its body when it is JSON.
fn first_response(raw: &[u8]) -> Option<(u16, Option<serde_json::Value>)> {
    let text = String::from_utf8_lossy(raw);
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let json = head
        .to_ascii_lowercase()
        .contains("content-type: application/json")
        .then(|| {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(rest.len());
            serde_json::from_str(rest.get(..len).unwrap_or(rest)).ok()
        })
        .flatten();
    Some((status, json))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_errors_get_4xx_and_leave_the_log_unchanged() {
    let s = TestServer::start().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        s.app.clone(),
        ServeOptions {
            header_read_timeout: Duration::from_secs(10),
            nodelay: true,
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    let w = s.agent_token.clone();
    let before = s.log_size();
    let tree = s.tree_size();
    let body = r#"{"policy":"customer-data-egress","action":{"destination":"internal"}}"#;
    let check_head = |extra: &str| {
        format!(
            "POST /v1/check HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {w}\r\n\
             Connection: close\r\nContent-Type: application/json\r\n{extra}\r\n"
        )
    };
    // (name, raw request, allowed statuses, JSON error code when the router answers). Requests
    // that are complete ask for `Connection: close`; "half-close" cases shut down the write side
    // after sending and may also be closed without an answer.
    let cases: Vec<WireCase> = vec![
        (
            "garbage request line",
            b"GARBAGE\r\n\r\n".to_vec(),
            &[400],
            None,
        ),
        (
            "binary junk",
            vec![0x16, 0x03, 0x01, 0x00, 0xff, 0x0d, 0x0a, 0x0d, 0x0a],
            &[400],
            None,
        ),
        (
            "lowercase method junk",
            b"get /checkpoint HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_vec(),
            &[400, 404, 405],
            None,
        ),
        (
            "unknown http version",
            b"GET /checkpoint HTTP/3.7\r\nHost: t\r\nConnection: close\r\n\r\n".to_vec(),
            &[400, 505],
            None,
        ),
        (
            "space in path",
            b"GET /check point HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_vec(),
            &[400],
            None,
        ),
        (
            "invalid utf-8 in path",
            b"GET /tile/\xff\xfe HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_vec(),
            &[400],
            None,
        ),
        (
            "header without colon",
            b"GET /checkpoint HTTP/1.1\r\nHost t\r\n\r\n".to_vec(),
            &[400],
            None,
        ),
        (
            "nul in header value",
            b"GET /checkpoint HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-A: a\0b\r\n\r\n"
                .to_vec(),
            &[400],
            None,
        ),
        (
            "obsolete line folding",
            b"GET /checkpoint HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-A: a\r\n b\r\n\r\n"
                .to_vec(),
            &[400],
            None,
        ),
        (
            "head larger than the read buffer",
            format!(
                "GET /checkpoint HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
                "a".repeat(600_000)
            )
            .into_bytes(),
            &[400, 431],
            None,
        ),
        (
            "too many headers",
            format!(
                "GET /checkpoint HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{}\r\n",
                (0..200)
                    .map(|i| format!("X-{i}: v\r\n"))
                    .collect::<String>()
            )
            .into_bytes(),
            &[400, 431],
            None,
        ),
        (
            "content-length not a number",
            format!("{}{body}", check_head("Content-Length: abc\r\n")).into_bytes(),
            &[400],
            None,
        ),
        (
            "negative content-length",
            format!("{}{body}", check_head("Content-Length: -1\r\n")).into_bytes(),
            &[400],
            None,
        ),
        (
            "conflicting content-lengths",
            format!(
                "{}{body}",
                check_head(&format!(
                    "Content-Length: {}\r\nContent-Length: 5\r\n",
                    body.len()
                ))
            )
            .into_bytes(),
            &[400],
            None,
        ),
        (
            "content-length 0 and chunked (smuggling)",
            {
                let hidden = "GET /v1/keys HTTP/1.1\r\nHost: t\r\n\r\n";
                format!(
                    "{}{:x}\r\n{hidden}\r\n0\r\n\r\n",
                    check_head("Content-Length: 0\r\nTransfer-Encoding: chunked\r\n"),
                    hidden.len()
                )
                .into_bytes()
            },
            &[400],
            Some("bad_json"),
        ),
        (
            "unknown transfer-encoding",
            format!("{}{body}", check_head("Transfer-Encoding: gzip\r\n")).into_bytes(),
            &[400, 501],
            None,
        ),
        (
            "absurd content-length",
            format!("{}{body}", check_head("Content-Length: 1000000000000\r\n")).into_bytes(),
            &[413],
            Some("body_too_large"),
        ),
        (
            "content-length beyond u64",
            format!(
                "{}{body}",
                check_head("Content-Length: 99999999999999999999999\r\n")
            )
            .into_bytes(),
            &[400],
            None,
        ),
        (
            "half-close inside the body",
            format!("{}{body}", check_head("Content-Length: 500\r\n")).into_bytes(),
            &[400],
            Some("bad_json"),
        ),
        (
            "bad chunk size",
            format!(
                "{}zz\r\n{body}\r\n0\r\n\r\n",
                check_head("Transfer-Encoding: chunked\r\n")
            )
            .into_bytes(),
            &[400],
            None,
        ),
        (
            "chunked body over the limit",
            format!(
                "{}{}0\r\n\r\n",
                check_head("Transfer-Encoding: chunked\r\n"),
                format!("1000\r\n{}\r\n", " ".repeat(4096)).repeat(8)
            )
            .into_bytes(),
            &[413],
            Some("body_too_large"),
        ),
        (
            "half-close inside a chunk",
            format!(
                "{}{:x}\r\n{}",
                check_head("Transfer-Encoding: chunked\r\n"),
                body.len(),
                &body[..10]
            )
            .into_bytes(),
            &[400],
            Some("bad_json"),
        ),
    ];
    let n = cases.len();
    let mut failures = Vec::new();
    for (name, raw, allowed, code) in cases {
        let half_close = name.starts_with("half-close");
        let got = exchange(addr, &raw, half_close).await;
        if got.windows(9).filter(|w| w == b"HTTP/1.1 ").count() > 1 {
            failures.push(format!(
                "{name}: more than one response: {:?}",
                String::from_utf8_lossy(&got)
            ));
        }
        eprintln!(
            "  {name:<42} {}",
            first_response(&got).map_or("closed without answer".to_owned(), |(st, j)| {
                format!(
                    "{st} {}",
                    j.map_or(String::new(), |j| j["error"].to_string())
                )
            })
        );
        match first_response(&got) {
            None if half_close && got.is_empty() => {}
            Some((status, json)) => {
                if !allowed.contains(&status) {
                    failures.push(format!(
                        "{name}: status {status}, expected one of {allowed:?}: {}",
                        String::from_utf8_lossy(&got)
                    ));
                }
                if let Some(code) = code {
                    let ok = json.as_ref().is_some_and(|j| {
                        j["error"] == code && j["message"].as_str().is_some_and(|m| !m.is_empty())
                    });
                    if !ok {
                        failures.push(format!("{name}: expected JSON error {code}, got {json:?}"));
                    }
                }
            }
            None => failures.push(format!(
                "{name}: no HTTP response, got {:?}",
                String::from_utf8_lossy(&got)
            )),
        }
        // Still serving, and nothing logged.
        let ok = exchange(
            addr,
            b"GET /checkpoint HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            false,
        )
        .await;
        assert_eq!(
            first_response(&ok).map(|r| r.0),
            Some(200),
            "{name}: stopped serving: {:?} (case answer {:?})",
            String::from_utf8_lossy(&ok),
            String::from_utf8_lossy(&got)
        );
        assert_eq!(s.log_size(), before, "{name}: the log changed");
    }
    eprintln!("wire_input: {n} framing cases");
    assert!(
        failures.is_empty(),
        "{} of {n} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(n >= 22);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(s.tree_size(), tree);
    assert_eq!(s.log_size(), before);
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .unwrap()
        .unwrap();
}
