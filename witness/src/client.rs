//! The client side of c2sp tlog-witness `add-checkpoint`, for a log that pushes its checkpoints
//! to witnesses (and for tests). Spec: `spec/witness.md` §5 and §9.
//!
//! [`WitnessClient::add_checkpoint`] takes the signed checkpoint, the size the client believes the
//! witness has, and the consistency proof from that size, and returns either the witness's
//! verified cosignature lines (to append to the checkpoint note) or, on `409 Conflict`, the
//! witness's actual size so the caller can resend with a proof from that size. A log server
//! drives retries, backoff and parallelism around it.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, USER_AGENT};
use hyper::Request;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use verdict_core::cosignature::{verify_note, CosignerKey, VerifiedCosignature};
use verdict_core::note::{Note, NoteSignature};
use verdict_core::{Hash, TreeSize};

use crate::protocol::{
    parse_cosignature_body, parse_size_body, AddCheckpointRequest, SIZE_CONTENT_TYPE,
};

/// Largest response body read from a witness.
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// Errors of the push client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The witness could not be reached, timed out, or its body exceeded the limit.
    #[error("witness {url}: {reason}")]
    Transport {
        /// Request URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The witness refused the checkpoint with a status other than 200 or 409.
    #[error("witness {url} answered {status}: {body}")]
    Rejected {
        /// Request URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The witness answered 200 or 409 with a body that does not follow the spec, or without a
    /// valid cosignature by its configured key.
    #[error("witness {url}: bad response: {reason}")]
    BadResponse {
        /// Request URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
}

impl ClientError {
    /// The HTTP status of a [`ClientError::Rejected`].
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The outcome of one `add-checkpoint` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddOutcome {
    /// The witness cosigned: its signature lines, verified with its key over the checkpoint.
    Cosigned {
        /// The lines to append to the checkpoint note.
        lines: Vec<NoteSignature>,
        /// What was verified (name, key id, timestamp).
        verified: Vec<VerifiedCosignature>,
    },
    /// `409 Conflict`: the witness's size differs from `old`; resend with a proof from it.
    Conflict {
        /// The size the witness last cosigned.
        witness_size: TreeSize,
    },
}

/// The HTTP client: hyper-util's pooled client over http and https (rustls with the platform
/// verifier, as reqwest uses elsewhere in the workspace), HTTP/1.1. Not reqwest: the log
/// server links this module, and its dependency tree stays free of reqwest (issue 10).
type Http = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client of one witness.
#[derive(Clone, Debug)]
pub struct WitnessClient {
    http: Http,
    url: String,
    key: CosignerKey,
    /// The bound on one whole call: connect, send, and read the answer.
    timeout: Duration,
}

/// The message of `e` and of every error under it, joined by `: ` (hyper's own messages name
/// only the kind, e.g. "client error (Connect)").
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

impl WitnessClient {
    /// A client of the witness whose submission prefix is `url` (e.g.
    /// `http://127.0.0.1:7380`), with cosigner key `key`, and a per-request `timeout` (connect,
    /// and the whole call).
    ///
    /// # Errors
    /// [`ClientError::Transport`] when the HTTP client cannot be built.
    pub fn new(url: &str, key: CosignerKey, timeout: Duration) -> Result<Self, ClientError> {
        let url = url.trim_end_matches('/').to_owned();
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(timeout));
        let https = HttpsConnectorBuilder::new()
            .with_provider_and_platform_verifier(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| ClientError::Transport {
                url: url.clone(),
                reason: describe(&e),
            })?
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let http = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .build(https);
        Ok(WitnessClient {
            http,
            url,
            key,
            timeout,
        })
    }

    /// The witness's key.
    pub fn key(&self) -> &CosignerKey {
        &self.key
    }

    /// POST `body` to `url`; the status, content type and body (at most
    /// [`MAX_RESPONSE_BODY`] bytes), all within the client's timeout.
    async fn post(&self, url: &str, body: Vec<u8>) -> Result<(u16, String, Vec<u8>), ClientError> {
        let transport = |reason: String| ClientError::Transport {
            url: url.to_owned(),
            reason,
        };
        let request = Request::post(url)
            .header(
                USER_AGENT,
                concat!("verdict-witness/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| transport(describe(&e)))?;
        let call = async {
            let resp = self
                .http
                .request(request)
                .await
                .map_err(|e| transport(describe(&e)))?;
            let status = resp.status().as_u16();
            let content_type = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let mut body = resp.into_body();
            let mut bytes = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| transport(describe(&e)))?;
                if let Ok(chunk) = frame.into_data() {
                    if bytes.len().saturating_add(chunk.len()) > MAX_RESPONSE_BODY {
                        return Err(transport("response body over the limit".to_owned()));
                    }
                    bytes.extend_from_slice(&chunk);
                }
            }
            Ok((status, content_type, bytes))
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| transport(format!("timed out after {:?}", self.timeout)))?
    }

    /// Send `checkpoint` (a signed note) with the consistency `proof` from `old`. Lines by
    /// other keys in the response are dropped; at least one valid line by the witness's key is
    /// required.
    ///
    /// # Errors
    /// [`ClientError`]; a 4xx/5xx other than 409 is [`ClientError::Rejected`] with its status.
    pub async fn add_checkpoint(
        &self,
        checkpoint: &[u8],
        old: TreeSize,
        proof: &[Hash],
    ) -> Result<AddOutcome, ClientError> {
        let url = format!("{}/add-checkpoint", self.url);
        let bad = |reason: String| ClientError::BadResponse {
            url: url.clone(),
            reason,
        };
        let body = AddCheckpointRequest {
            old,
            proof: proof.to_vec(),
            checkpoint: checkpoint.to_vec(),
        }
        .encode();
        let (status, content_type, bytes) = self.post(&url, body).await?;
        match status {
            200 => {
                let lines = parse_cosignature_body(&bytes).map_err(|e| bad(e.to_string()))?;
                let mut note = Note::parse(checkpoint).map_err(|e| bad(e.to_string()))?;
                let own: Vec<NoteSignature> =
                    lines.into_iter().filter(|l| self.key.matches(l)).collect();
                note.signatures = own.clone();
                let verified = verify_note(&note, std::slice::from_ref(&self.key))
                    .map_err(|e| bad(e.to_string()))?;
                if verified.is_empty() {
                    return Err(bad(format!(
                        "no cosignature by {} ({})",
                        self.key.name(),
                        self.key.key_id()
                    )));
                }
                Ok(AddOutcome::Cosigned {
                    lines: own,
                    verified,
                })
            }
            409 => {
                if content_type.split(';').next().map(str::trim) != Some(SIZE_CONTENT_TYPE) {
                    return Err(bad(format!(
                        "409 with content type {content_type:?}, expected {SIZE_CONTENT_TYPE}"
                    )));
                }
                let witness_size = parse_size_body(&bytes).map_err(|e| bad(e.to_string()))?;
                Ok(AddOutcome::Conflict { witness_size })
            }
            _ => Err(ClientError::Rejected {
                url: url.clone(),
                status,
                body: String::from_utf8_lossy(bytes.get(..200).unwrap_or(&bytes)).into_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The transport on real loopback sockets: http and https URLs, the timeout, the body limit
    //! and the error mapping (the protocol is tested against a real witness in
    //! `tests/witness/serve.rs`).

    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;
    use verdict_core::cosignature::Cosigner;

    use super::*;

    /// A server that answers every connection with `answer` after reading the request head
    /// (`None`: reads and never answers).
    async fn server(answer: Option<Vec<u8>>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let _ = stream.read(&mut buf).await;
                    match answer {
                        Some(bytes) => {
                            let _ = stream.write_all(&bytes).await;
                            let _ = stream.shutdown().await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(60)).await,
                    }
                });
            }
        });
        addr
    }

    fn client(url: &str, timeout: Duration) -> WitnessClient {
        let key = Cosigner::generate("witness.test").unwrap().verifier();
        WitnessClient::new(url, key, timeout).unwrap()
    }

    async fn call(c: &WitnessClient) -> Result<AddOutcome, ClientError> {
        c.add_checkpoint(b"not a checkpoint\n", TreeSize(0), &[])
            .await
    }

    #[tokio::test]
    async fn http_status_is_rejected_with_its_body() {
        let addr = server(Some(
            b"HTTP/1.1 403 Forbidden\r\ncontent-length: 7\r\n\r\nunknown".to_vec(),
        ))
        .await;
        let err = call(&client(&format!("http://{addr}/"), Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(403), "{err}");
        assert!(
            matches!(&err, ClientError::Rejected { body, url, .. } if body == "unknown" && url.ends_with("/add-checkpoint")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn https_goes_through_tls() {
        // A plain-HTTP server: over https the TLS handshake fails (a transport error), where
        // the same server over http answers.
        let addr = server(Some(
            b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n".to_vec(),
        ))
        .await;
        let err = call(&client(&format!("https://{addr}"), Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Transport { .. }), "{err}");
        let err = call(&client(&format!("http://{addr}"), Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(403), "{err}");
    }

    #[tokio::test]
    async fn a_silent_witness_times_out() {
        let addr = server(None).await;
        let started = std::time::Instant::now();
        let err = call(&client(
            &format!("http://{addr}"),
            Duration::from_millis(300),
        ))
        .await
        .unwrap_err();
        assert!(
            matches!(&err, ClientError::Transport { reason, .. } if reason.contains("timed out")),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused() {
        let mut answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
            MAX_RESPONSE_BODY + 1
        )
        .into_bytes();
        answer.resize(answer.len() + MAX_RESPONSE_BODY + 1, b'x');
        let addr = server(Some(answer)).await;
        let err = call(&client(&format!("http://{addr}"), Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ClientError::Transport { reason, .. } if reason.contains("over the limit")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn nothing_listening_is_a_transport_error() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let err = call(&client(&format!("http://{addr}"), Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Transport { .. }), "{err}");
        let err = call(&client("not a url", Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Transport { .. }), "{err}");
    }
}
