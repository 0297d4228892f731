//! The witness: checks a checkpoint against the latest one it cosigned for that origin, and
//! cosigns it only when it is consistent. Spec: `spec/witness.md` §5–§6 (c2sp.org/tlog-witness,
//! `add-checkpoint`).
//!
//! The check of `old` against the stored size and the durable write of the new checkpoint happen
//! under one lock, so two concurrent requests cannot roll the state back (the race the spec
//! describes). The answer is given only after the write is durable.

use std::collections::BTreeMap;
use std::sync::Mutex;

use verdict_core::checkpoint::Checkpoint;
use verdict_core::cosignature::Cosigner;
use verdict_core::merkle::empty_root;
use verdict_core::note::{Note, NoteError, NoteSignature, Verifier};
use verdict_core::proof::verify_consistency;
use verdict_core::{Hash, TreeSize};

use crate::protocol::AddCheckpointRequest;
use crate::state::{StateError, Store};

/// Why a checkpoint was not cosigned. [`AddError::status`] is the HTTP status c2sp
/// tlog-witness prescribes.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// The request, note or checkpoint body is malformed (400).
    #[error("malformed request: {reason}")]
    Malformed {
        /// What was wrong.
        reason: String,
    },
    /// The witness has no key for this origin (404).
    #[error("unknown log origin {origin:?}")]
    UnknownOrigin {
        /// The checkpoint's origin.
        origin: String,
    },
    /// No signature by a trusted log key, or a trusted key's signature fails (403).
    #[error("checkpoint signature: {reason}")]
    Signature {
        /// What was wrong.
        reason: String,
    },
    /// The old size exceeds the checkpoint's size (400).
    #[error("old size {old} exceeds checkpoint size {size}")]
    OldAboveSize {
        /// The request's old size.
        old: TreeSize,
        /// The checkpoint's size.
        size: TreeSize,
    },
    /// The old size is not the size the witness last cosigned (409, body: that size).
    #[error("old size {old} does not match the witness's size {witness}")]
    Conflict {
        /// The request's old size.
        old: TreeSize,
        /// The size the witness last cosigned (0 if none).
        witness: TreeSize,
    },
    /// The old size, the checkpoint's size and the witness's size are equal but the root is
    /// not the one the witness cosigned at that size: a fork (409, body: that size; c2sp
    /// tlog-witness "If the old size matches the checkpoint size, the witness MUST check that
    /// the root hashes are also identical").
    #[error(
        "fork: size {size} was cosigned with root {cosigned}, this checkpoint has root {root}"
    )]
    RootMismatch {
        /// The common size.
        size: TreeSize,
        /// The root the witness cosigned at that size.
        cosigned: Hash,
        /// The root of the submitted checkpoint.
        root: Hash,
    },
    /// The checkpoint is not consistent with the witness's: a bad proof, a fork or a wrong
    /// empty root (422).
    #[error("inconsistent checkpoint: {reason}")]
    Inconsistent {
        /// What failed.
        reason: String,
    },
    /// The state could not be read or written; nothing was cosigned (500).
    #[error(transparent)]
    State(#[from] StateError),
}

impl AddError {
    /// The HTTP status code of c2sp tlog-witness for this error.
    pub fn status(&self) -> u16 {
        match self {
            AddError::Malformed { .. } | AddError::OldAboveSize { .. } => 400,
            AddError::Signature { .. } => 403,
            AddError::UnknownOrigin { .. } => 404,
            AddError::Conflict { .. } | AddError::RootMismatch { .. } => 409,
            AddError::Inconsistent { .. } => 422,
            AddError::State(_) => 500,
        }
    }
}

/// A cosigned checkpoint: the witness's signature line and the note it now publishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosigned {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The cosignature line(s) to return.
    pub cosignatures: Vec<NoteSignature>,
    /// The stored note: the checkpoint with the log's verified signatures and the cosignature.
    pub note: Vec<u8>,
}

/// A witness: its key, the logs it follows (by origin) and its durable state.
#[derive(Debug)]
pub struct Witness {
    cosigner: Cosigner,
    logs: BTreeMap<String, Vec<Verifier>>,
    store: Store,
    lock: Mutex<()>,
}

impl Witness {
    /// A witness signing with `cosigner`, following the logs of `log_keys` (the origin of each
    /// is its key name; several keys may share an origin), keeping state in `store`.
    pub fn new(cosigner: Cosigner, log_keys: Vec<Verifier>, store: Store) -> Self {
        let mut logs: BTreeMap<String, Vec<Verifier>> = BTreeMap::new();
        for k in log_keys {
            logs.entry(k.name().to_owned()).or_default().push(k);
        }
        Witness {
            cosigner,
            logs,
            store,
            lock: Mutex::new(()),
        }
    }

    /// The witness's signing key.
    pub fn cosigner(&self) -> &Cosigner {
        &self.cosigner
    }

    /// The state directory.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Handle an `add-checkpoint` request body at time `now` (POSIX seconds), in the order of
    /// checks of c2sp tlog-witness. Blocking (file I/O): call from a blocking thread.
    ///
    /// # Errors
    /// [`AddError`], whose [`AddError::status`] is the response status.
    pub fn add_checkpoint(&self, body: &[u8], now: u64) -> Result<Cosigned, AddError> {
        let req = AddCheckpointRequest::parse(body).map_err(|e| AddError::Malformed {
            reason: e.reason.to_owned(),
        })?;
        let result = self.add(&req, now);
        let refused = match &result {
            Err(AddError::Inconsistent { reason }) => Some(reason.clone()),
            Err(e @ AddError::RootMismatch { .. }) => Some(e.to_string()),
            _ => None,
        };
        if let Some(reason) = refused {
            // A validly signed checkpoint that fails consistency may prove misbehaviour: keep it.
            let origin = Note::parse(&req.checkpoint)
                .ok()
                .and_then(|n| Checkpoint::parse(&n.text).ok())
                .map(|c| c.origin)
                .unwrap_or_default();
            match self.store.save_evidence(&origin, now, body) {
                Ok(path) => tracing::warn!(
                    log.origin = %origin, evidence = %path.display(),
                    "rejected inconsistent checkpoint for {origin}: {reason}; request kept in {}",
                    path.display()
                ),
                Err(e) => tracing::warn!(log.origin = %origin, "evidence not kept: {e}"),
            }
        }
        result
    }

    /// Check and cosign a parsed request (see [`Witness::add_checkpoint`]).
    ///
    /// # Errors
    /// [`AddError`].
    pub fn add(&self, req: &AddCheckpointRequest, now: u64) -> Result<Cosigned, AddError> {
        let malformed = |e: &dyn std::fmt::Display| AddError::Malformed {
            reason: e.to_string(),
        };
        let note = Note::parse(&req.checkpoint).map_err(|e| malformed(&e))?;
        let checkpoint = Checkpoint::parse(&note.text).map_err(|e| malformed(&e))?;
        let keys = self
            .logs
            .get(&checkpoint.origin)
            .ok_or_else(|| AddError::UnknownOrigin {
                origin: checkpoint.origin.clone(),
            })?;
        let used = note.verify_indices(keys).map_err(|e| AddError::Signature {
            reason: match e {
                NoteError::NoTrustedSignature => "no signature by a trusted log key".to_owned(),
                other => other.to_string(),
            },
        })?;
        if req.old > checkpoint.size {
            return Err(AddError::OldAboveSize {
                old: req.old,
                size: checkpoint.size,
            });
        }
        // Check against the stored size and persist under one lock (spec §6).
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let stored = self.store.load(&checkpoint.origin)?;
        let witness_size = stored.as_ref().map_or(TreeSize(0), |s| s.checkpoint.size);
        if req.old != witness_size {
            return Err(AddError::Conflict {
                old: req.old,
                witness: witness_size,
            });
        }
        let inconsistent = |reason: String| AddError::Inconsistent { reason };
        if checkpoint.size.0 == 0 && checkpoint.root != empty_root() {
            return Err(inconsistent(
                "a checkpoint of size 0 must have the empty tree's root".into(),
            ));
        }
        match &stored {
            _ if req.old.0 == 0 => {
                if !req.proof.is_empty() {
                    return Err(inconsistent("a proof from size 0 must be empty".into()));
                }
            }
            None => unreachable_without_state()?,
            Some(s) if req.old == checkpoint.size => {
                if s.checkpoint.root != checkpoint.root {
                    return Err(AddError::RootMismatch {
                        size: checkpoint.size,
                        cosigned: s.checkpoint.root,
                        root: checkpoint.root,
                    });
                }
                if !req.proof.is_empty() {
                    return Err(inconsistent(
                        "a proof between equal sizes must be empty".into(),
                    ));
                }
            }
            Some(s) => verify_consistency(
                req.old,
                checkpoint.size,
                &req.proof,
                &s.checkpoint.root,
                &checkpoint.root,
            )
            .map_err(|e| {
                inconsistent(format!(
                    "size {} does not extend the cosigned size {}: {e}",
                    checkpoint.size, req.old
                ))
            })?,
        }
        let cosignature = self
            .cosigner
            .cosign(&note.text, now)
            .map_err(|e| malformed(&e))?;
        let mut published = Note {
            text: note.text.clone(),
            signatures: used
                .iter()
                .filter_map(|&i| keys.get(i))
                .filter_map(|k| {
                    note.signatures
                        .iter()
                        .find(|s| s.name == k.name() && s.key_id == k.key_id())
                        .cloned()
                })
                .collect(),
        };
        published.signatures.push(cosignature.clone());
        let bytes = published.to_bytes();
        self.store.save(&checkpoint.origin, &bytes)?;
        tracing::info!(
            log.origin = %checkpoint.origin, tree.size = checkpoint.size.0,
            "cosigned {} at size {} (was {})", checkpoint.origin, checkpoint.size, witness_size
        );
        Ok(Cosigned {
            checkpoint,
            cosignatures: vec![cosignature],
            note: bytes,
        })
    }

    /// The size the witness last cosigned for `origin` (0 if never), and that note.
    ///
    /// # Errors
    /// [`StateError`].
    pub fn latest(&self, origin: &str) -> Result<Option<crate::state::Stored>, StateError> {
        self.store.load(origin)
    }
}

/// `old` is non-zero and equals the stored size, so a state exists; reaching this is a bug,
/// reported as an inconsistency (never a cosignature).
fn unreachable_without_state() -> Result<(), AddError> {
    Err(AddError::Inconsistent {
        reason: "no stored checkpoint for a non-zero old size".into(),
    })
}
