//! Pull mode: for a log that does not push, fetch its `/checkpoint`, prove consistency with the
//! witness's latest cosigned checkpoint from the log's tiles (c2sp tlog-tiles), and cosign
//! through the same checks as `add-checkpoint`. Spec: `spec/witness.md` §7.
//!
//! The proof is computed here from hash tiles the log serves; the tiles are not trusted: the
//! proof is verified against the stored and the new root like any pushed proof. The cosigned
//! note is published in the data directory (`checkpoints/<origin hash>`), which
//! `verdict-witness serve` serves at `GET /<origin hash>/checkpoint`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use verdict_core::checkpoint::Checkpoint;
use verdict_core::note::{Verifier, MAX_NOTE_SIZE};
use verdict_core::proof::{consistency_proof, ProveError};
use verdict_core::tile::{Tile, TileHashSource, TileKind, TileReader, TileSourceError, TILE_WIDTH};
use verdict_core::{Hash, TreeSize};

use crate::protocol::AddCheckpointRequest;
use crate::witness::{AddError, Cosigned, Witness};

/// Errors of one watch round.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The log could not be reached or served something unusable (not evidence of anything).
    #[error("log {url}: {reason}")]
    Network {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The log misbehaved: a bad signature, a rollback, a fork or an inconsistent tree.
    #[error("log {origin} misbehaves: {reason}")]
    Misbehaviour {
        /// The log's origin.
        origin: String,
        /// What was found.
        reason: String,
    },
    /// The witness's own state failed; nothing was cosigned.
    #[error("witness state: {0}")]
    State(String),
}

/// What a watch round did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchOutcome {
    /// A checkpoint was cosigned (the first, a larger one, or the same one again).
    Cosigned {
        /// Size before.
        previous: TreeSize,
        /// The cosigned checkpoint and note.
        cosigned: Box<Cosigned>,
    },
}

/// One log to watch.
#[derive(Clone, Debug)]
pub struct WatchedLog {
    /// Base URL of the log (C2SP tlog-tiles: `<url>/checkpoint`, `<url>/tile/...`).
    pub url: String,
    /// The log's key; its name is the origin.
    pub key: Verifier,
}

/// Largest hash tile body.
const MAX_TILE_BODY: usize = TILE_WIDTH as usize * 32;

async fn get(http: &reqwest::Client, url: &str, limit: usize) -> Result<Vec<u8>, WatchError> {
    let net = |reason: String| WatchError::Network {
        url: url.to_owned(),
        reason,
    };
    let mut resp = http.get(url).send().await.map_err(|e| net(e.to_string()))?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(net(format!("status {}", resp.status())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| net(e.to_string()))? {
        if body.len().saturating_add(chunk.len()) > limit {
            return Err(net(format!("body over the {limit}-byte limit")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A blocking [`TileReader`] over HTTP, blocking on a tokio runtime handle: call only from a
/// blocking thread.
struct HttpTiles {
    http: reqwest::Client,
    base: String,
    handle: tokio::runtime::Handle,
    cache: Mutex<HashMap<Tile, Vec<u8>>>,
}

/// Error of [`HttpTiles`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TileFetchError(String);

impl TileReader for HttpTiles {
    type Error = TileFetchError;

    fn read_tile(&self, tile: Tile) -> Result<Vec<u8>, TileFetchError> {
        if let Some(hit) = self.cache.lock().ok().and_then(|c| c.get(&tile).cloned()) {
            return Ok(hit);
        }
        if !matches!(tile.kind, TileKind::Hashes { .. }) {
            return Err(TileFetchError("only hash tiles are read".into()));
        }
        let url = format!("{}/{}", self.base, tile.path());
        let bytes = self
            .handle
            .block_on(get(&self.http, &url, MAX_TILE_BODY))
            .map_err(|e| TileFetchError(e.to_string()))?;
        if bytes.len() != usize::from(tile.width) * 32 {
            return Err(TileFetchError(format!(
                "tile {url} has {} bytes, expected {}",
                bytes.len(),
                usize::from(tile.width) * 32
            )));
        }
        if let Ok(mut c) = self.cache.lock() {
            c.insert(tile, bytes.clone());
        }
        Ok(bytes)
    }
}

/// One round for one log: fetch, verify, prove, cosign, publish.
///
/// # Errors
/// [`WatchError::Misbehaviour`] for a bad signature, rollback, fork or failed proof;
/// [`WatchError::Network`] when the log or its tiles cannot be fetched;
/// [`WatchError::State`] for the witness's own storage.
pub async fn watch_once(
    http: &reqwest::Client,
    log: &WatchedLog,
    witness: &Arc<Witness>,
    now: u64,
) -> Result<WatchOutcome, WatchError> {
    let base = log.url.trim_end_matches('/').to_owned();
    let origin = log.key.name().to_owned();
    let misbehaves = |reason: String| WatchError::Misbehaviour {
        origin: origin.clone(),
        reason,
    };
    let note = get(http, &format!("{base}/checkpoint"), MAX_NOTE_SIZE).await?;
    let verified = Checkpoint::open(&note, &log.key, &[])
        .map_err(|e| misbehaves(format!("checkpoint rejected: {e}")))?;
    let new = verified.checkpoint().clone();
    let w = Arc::clone(witness);
    let o = origin.clone();
    let stored = tokio::task::spawn_blocking(move || w.latest(&o))
        .await
        .map_err(|e| WatchError::State(e.to_string()))?
        .map_err(|e| WatchError::State(e.to_string()))?;
    let (old_size, old_root) = stored.as_ref().map_or((TreeSize(0), None), |s| {
        (s.checkpoint.size, Some(s.checkpoint.root))
    });
    if new.size < old_size {
        return Err(misbehaves(format!(
            "rollback: the log serves size {} but size {old_size} was cosigned",
            new.size
        )));
    }
    if new.size == old_size && old_root.is_some_and(|r| r != new.root) {
        return Err(misbehaves(format!(
            "fork: size {} was cosigned with another root",
            new.size
        )));
    }
    let proof: Vec<Hash> = if old_size.0 == 0 || old_size == new.size {
        Vec::new()
    } else {
        let tiles = HttpTiles {
            http: http.clone(),
            base: base.clone(),
            handle: tokio::runtime::Handle::current(),
            cache: Mutex::new(HashMap::new()),
        };
        let size = new.size;
        let result = tokio::task::spawn_blocking(move || {
            let source = TileHashSource::new(&tiles, size);
            consistency_proof(&source, old_size, size)
        })
        .await
        .map_err(|e| WatchError::State(e.to_string()))?;
        match result {
            Ok(p) => p,
            Err(ProveError::Source(TileSourceError::Read(e))) => {
                return Err(WatchError::Network {
                    url: base.clone(),
                    reason: e.to_string(),
                })
            }
            Err(e) => return Err(misbehaves(format!("tiles: {e}"))),
        }
    };
    let req = AddCheckpointRequest {
        old: old_size,
        proof,
        checkpoint: note,
    };
    let w = Arc::clone(witness);
    let result = tokio::task::spawn_blocking(move || {
        let r = w.add(&req, now);
        if let Err(AddError::Inconsistent { .. }) = &r {
            let _ = w
                .store()
                .save_evidence(&req_origin(&req), now, &req.encode());
        }
        r
    })
    .await
    .map_err(|e| WatchError::State(e.to_string()))?;
    match result {
        Ok(cosigned) => Ok(WatchOutcome::Cosigned {
            previous: old_size,
            cosigned: Box::new(cosigned),
        }),
        Err(AddError::State(e)) => Err(WatchError::State(e.to_string())),
        Err(AddError::Conflict { witness, .. }) => Err(WatchError::State(format!(
            "state changed during the round (now size {witness}); another process writes this \
             data directory for the same log"
        ))),
        Err(e) => Err(misbehaves(e.to_string())),
    }
}

fn req_origin(req: &AddCheckpointRequest) -> String {
    verdict_core::note::Note::parse(&req.checkpoint)
        .ok()
        .and_then(|n| Checkpoint::parse(&n.text).ok())
        .map(|c| c.origin)
        .unwrap_or_default()
}

/// A client for watching, with bounded timeouts.
///
/// # Errors
/// When the client cannot be built.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("verdict-witness/", env!("CARGO_PKG_VERSION")))
        .build()
}
