//! The client side of c2sp tlog-witness `add-checkpoint`, for a log that pushes its checkpoints
//! to witnesses (and for tests). Spec: `spec/witness.md` §5 and §9.
//!
//! [`WitnessClient::add_checkpoint`] takes the signed checkpoint, the size the client believes the
//! witness has, and the consistency proof from that size, and returns either the witness's
//! verified cosignature lines (to append to the checkpoint note) or, on `409 Conflict`, the
//! witness's actual size so the caller can resend with a proof from that size. A log server
//! drives retries, backoff and parallelism around it.

use std::time::Duration;

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

/// A client of one witness.
#[derive(Clone, Debug)]
pub struct WitnessClient {
    http: reqwest::Client,
    url: String,
    key: CosignerKey,
}

impl WitnessClient {
    /// A client of the witness whose submission prefix is `url` (e.g.
    /// `http://127.0.0.1:7380`), with cosigner key `key`, and a per-request `timeout`.
    ///
    /// # Errors
    /// [`ClientError::Transport`] when the HTTP client cannot be built.
    pub fn new(url: &str, key: CosignerKey, timeout: Duration) -> Result<Self, ClientError> {
        let url = url.trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("verdict-witness/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Transport {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        Ok(WitnessClient { http, url, key })
    }

    /// The witness's key.
    pub fn key(&self) -> &CosignerKey {
        &self.key
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
        let transport = |e: &dyn std::fmt::Display| ClientError::Transport {
            url: url.clone(),
            reason: e.to_string(),
        };
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
        let mut resp = self
            .http
            .post(&url)
            .body(body)
            .send()
            .await
            .map_err(|e| transport(&e))?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| transport(&e))? {
            if bytes.len().saturating_add(chunk.len()) > MAX_RESPONSE_BODY {
                return Err(transport(&"response body over the limit"));
            }
            bytes.extend_from_slice(&chunk);
        }
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
