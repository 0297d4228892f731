//! C2SP tlog-checkpoint: origin, size, root and extension lines, signed as a note.
//! Spec: `spec/note-and-checkpoint.md`.
//!
//! SKELETON: signatures are the contract; bodies are being filled in.

use crate::merkle::{Hash, TreeSize};
use crate::note::{NoteError, Signer, VerifiedNote, Verifier};

/// Checkpoint body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Origin line: the log's unique name; the signing key's name equals it.
    pub origin: String,
    /// Tree size.
    pub size: TreeSize,
    /// Root hash.
    pub root: Hash,
    /// Extension lines, without their newlines.
    pub extensions: Vec<String>,
}

/// Errors of checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The body is malformed.
    #[error("malformed checkpoint: {reason}")]
    Malformed {
        /// What was wrong.
        reason: &'static str,
    },
    /// The note failed to parse or verify.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The verifier's key name is not the checkpoint's origin.
    #[error("origin {origin:?} does not match key name {key_name:?}")]
    OriginMismatch {
        /// Origin in the checkpoint.
        origin: String,
        /// Name of the log key.
        key_name: String,
    },
}

/// A checkpoint whose note was verified by the log key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    checkpoint: Checkpoint,
    note: VerifiedNote,
}

impl VerifiedCheckpoint {
    /// The checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }
    /// The verified note it came in.
    pub fn note(&self) -> &VerifiedNote {
        &self.note
    }
}

impl Checkpoint {
    /// The body text: origin, size, base64 root, extensions, each ending in a newline.
    pub fn to_text(&self) -> String {
        todo_skeleton()
    }

    /// Parse a body text.
    ///
    /// # Errors
    /// [`CheckpointError::Malformed`].
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let _ = text;
        todo_skeleton()
    }

    /// Sign with the log key (whose name must equal the origin); returns the signed note bytes.
    ///
    /// # Errors
    /// [`CheckpointError::OriginMismatch`].
    pub fn sign(&self, signer: &Signer) -> Result<Vec<u8>, CheckpointError> {
        let _ = signer;
        todo_skeleton()
    }

    /// Parse a signed checkpoint note and verify it with the log key. Extra signatures by other
    /// keys (witnesses) are ignored unless listed in `also`.
    ///
    /// # Errors
    /// [`CheckpointError`].
    pub fn open(
        note: &[u8],
        log_key: &Verifier,
        also: &[Verifier],
    ) -> Result<VerifiedCheckpoint, CheckpointError> {
        let _ = (note, log_key, also);
        todo_skeleton()
    }
}

#[expect(clippy::panic, reason = "skeleton placeholder, replaced before merge")]
fn todo_skeleton<T>() -> T {
    panic!("skeleton")
}
