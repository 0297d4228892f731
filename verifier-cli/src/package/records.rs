//! The records stream of `audit export` (`GET /v1/private/records`, spec `evidence-package.md`
//! §5) on hyper's HTTP/1 client with a small read buffer.
//!
//! Through reqwest, hyper's read buffer grew to 2.7 MB for a moment at the start of a 1M-entry
//! export (a heap profile in `docs/benchmarks.md`, "Memory without the file list"): bytes
//! already handed out as body chunks still share it when the next read reserves room, and
//! reqwest does not expose hyper's `max_buf_size`. Here it is [`READ_BUFFER`], so the peak does
//! not depend on timing or on the period.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, USER_AGENT};
use hyper::Request;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::error::CliError;

/// hyper's HTTP/1 read buffer limit for the records stream (its default is about 400 KiB; it
/// refuses less than 8 KiB).
const READ_BUFFER: usize = 64 * 1024;
/// Connect timeout.
const CONNECT: Duration = Duration::from_secs(10);
/// Whole-request timeout of one page (100,000 records).
const PAGE: Duration = Duration::from_secs(600);

/// A client of `GET /v1/private/records` with the auditor token.
pub struct RecordsClient {
    http: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    base: String,
    token: String,
}

/// One page's response body, read chunk by chunk.
pub struct Page {
    body: Incoming,
    url: String,
    deadline: tokio::time::Instant,
}

fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl RecordsClient {
    /// A client for the log at `base` (http or https; https verified with the platform's
    /// roots, as reqwest does).
    ///
    /// # Errors
    /// [`CliError::Network`] when TLS cannot be set up.
    pub fn new(base: &str, token: &str) -> Result<Self, CliError> {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(CONNECT));
        let https = HttpsConnectorBuilder::new()
            .with_provider_and_platform_verifier(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| CliError::network(base, describe(&e)))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let http = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .http1_max_buf_size(READ_BUFFER)
            .build(https);
        Ok(RecordsClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    /// `GET {base}/{path}`; a status other than 200 is an error with the body's first line.
    ///
    /// # Errors
    /// [`CliError::Network`].
    pub async fn get(&self, path: &str) -> Result<Page, CliError> {
        let url = format!("{}/{path}", self.base);
        let deadline = tokio::time::Instant::now() + PAGE;
        let request = Request::get(&url)
            .header(AUTHORIZATION, format!("Bearer {}", self.token))
            .header(USER_AGENT, concat!("verdict/", env!("CARGO_PKG_VERSION")))
            .body(Empty::new())
            .map_err(|e| CliError::network(&url, describe(&e)))?;
        let resp = tokio::time::timeout_at(deadline, self.http.request(request))
            .await
            .map_err(|_| CliError::network(&url, format!("timed out after {PAGE:?}")))?
            .map_err(|e| CliError::network(&url, describe(&e)))?;
        let status = resp.status();
        let mut page = Page {
            body: resp.into_body(),
            url,
            deadline,
        };
        if status != hyper::StatusCode::OK {
            let mut text = Vec::new();
            while let Some(chunk) = page.chunk().await.ok().flatten() {
                text.extend_from_slice(&chunk);
                if text.len() > 4096 {
                    break;
                }
            }
            let text = String::from_utf8_lossy(&text);
            return Err(CliError::network(
                &page.url,
                format!("status {status}: {}", text.trim()),
            ));
        }
        Ok(page)
    }
}

impl Page {
    /// The next chunk of the body, `None` at its end.
    ///
    /// # Errors
    /// [`CliError::Network`] on a transport error or past the page's deadline.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, CliError> {
        loop {
            let frame = tokio::time::timeout_at(self.deadline, self.body.frame())
                .await
                .map_err(|_| CliError::network(&self.url, format!("timed out after {PAGE:?}")))?;
            match frame {
                None => return Ok(None),
                Some(Err(e)) => return Err(CliError::network(&self.url, describe(&e))),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A one-connection HTTP/1.1 server answering `response` and returning the request head.
    async fn server(response: &'static [u8]) -> (String, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).await.unwrap();
                head.extend_from_slice(&buf[..n]);
            }
            conn.write_all(response).await.unwrap();
            conn.shutdown().await.unwrap();
            String::from_utf8(head).unwrap()
        });
        (base, task)
    }

    #[tokio::test]
    async fn a_chunked_page_is_read_to_its_end_with_the_token() {
        let (base, task) = server(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n\
              6\r\nline1\n\r\n6\r\nline2\n\r\n0\r\n\r\n",
        )
        .await;
        let client = RecordsClient::new(&base, "tok3n").unwrap();
        let mut page = client
            .get("v1/private/records?start=0&end=2")
            .await
            .unwrap();
        let mut body = Vec::new();
        while let Some(chunk) = page.chunk().await.unwrap() {
            body.extend_from_slice(&chunk);
        }
        assert_eq!(body, b"line1\nline2\n");
        let head = task.await.unwrap();
        assert!(
            head.starts_with("GET /v1/private/records?start=0&end=2 HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("authorization: bearer tok3n\r\n"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn a_refusal_is_an_error_with_its_status_and_body() {
        let (base, _task) = server(
            b"HTTP/1.1 403 Forbidden\r\ncontent-length: 29\r\nconnection: close\r\n\r\n\
              {\"error\":\"not an auditor\"}\n\n\n",
        )
        .await;
        let client = RecordsClient::new(&base, "agent").unwrap();
        let err = client
            .get("v1/private/records?start=0&end=1")
            .await
            .err()
            .unwrap();
        let text = err.to_string();
        assert!(
            text.contains("status 403") && text.contains("not an auditor"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_cut_stream_is_an_error_not_an_end() {
        let (base, _task) = server(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n6\r\nline1\n\r\n",
        )
        .await;
        let client = RecordsClient::new(&base, "t").unwrap();
        let mut page = client
            .get("v1/private/records?start=0&end=2")
            .await
            .unwrap();
        assert_eq!(
            page.chunk().await.unwrap().as_deref(),
            Some(&b"line1\n"[..])
        );
        assert!(
            page.chunk().await.is_err(),
            "a chunked body without its last chunk"
        );
    }

    #[tokio::test]
    async fn nothing_listening_is_a_network_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let client = RecordsClient::new(&base, "t").unwrap();
        assert!(matches!(
            client.get("v1/private/records").await,
            Err(CliError::Network { .. })
        ));
    }
}
