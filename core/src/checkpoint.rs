//! C2SP tlog-checkpoint: origin, size, root and extension lines, signed as a note.
//! Spec: `spec/note-and-checkpoint.md` §6–§7, following c2sp.org/tlog-checkpoint.

use crate::merkle::{Hash, TreeSize};
use crate::note::{Note, NoteError, Signer, VerifiedNote, Verifier};

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
        let mut out = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            self.root.to_base64()
        );
        for line in &self.extensions {
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    /// Parse a body text (spec `note-and-checkpoint.md` §6): at least three non-empty lines,
    /// each ending in a newline; a decimal size without sign or leading zeros; a base64 root of
    /// 32 bytes; no control characters.
    ///
    /// # Errors
    /// [`CheckpointError::Malformed`].
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let bad = |reason| CheckpointError::Malformed { reason };
        if text.len() > crate::note::MAX_NOTE_SIZE {
            return Err(bad("checkpoint text too large"));
        }
        let body = text
            .strip_suffix('\n')
            .ok_or(bad("text does not end in a newline"))?;
        if body.chars().any(|c| c.is_control() && c != '\n') {
            return Err(bad("control character in checkpoint"));
        }
        let mut lines = body.split('\n');
        let origin = lines.next().ok_or(bad("missing origin"))?;
        if origin.is_empty() {
            return Err(bad("empty origin"));
        }
        let size = parse_decimal(lines.next().ok_or(bad("missing tree size"))?)
            .ok_or(bad("tree size is not a canonical decimal"))?;
        let root = Hash::from_base64(lines.next().ok_or(bad("missing root hash"))?)
            .map_err(|_| bad("root hash is not base64 of 32 bytes"))?;
        let mut extensions = Vec::new();
        for line in lines {
            if line.is_empty() {
                return Err(bad("empty extension line"));
            }
            extensions.push(line.to_owned());
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size: TreeSize(size),
            root,
            extensions,
        })
    }

    /// Sign with the log key (whose name must equal the origin); returns the signed note bytes.
    ///
    /// # Errors
    /// [`CheckpointError::OriginMismatch`]; [`CheckpointError::Malformed`] when the fields would
    /// not parse back to the same checkpoint (an origin or extension holding a newline, an empty
    /// extension).
    pub fn sign(&self, signer: &Signer) -> Result<Vec<u8>, CheckpointError> {
        if signer.name() != self.origin {
            return Err(CheckpointError::OriginMismatch {
                origin: self.origin.clone(),
                key_name: signer.name().to_owned(),
            });
        }
        let text = self.to_text();
        if Checkpoint::parse(&text)? != *self {
            return Err(CheckpointError::Malformed {
                reason: "fields do not round-trip through the text form",
            });
        }
        let mut note = Note::new(&text)?;
        note.sign(signer);
        Ok(note.to_bytes())
    }

    /// Parse a signed checkpoint note and verify it with the log key. Extra signatures by other
    /// keys (witnesses) are ignored unless listed in `also`; a listed key whose signature fails
    /// rejects the checkpoint (spec §7).
    ///
    /// # Errors
    /// [`CheckpointError`]: [`NoteError::NoTrustedSignature`] when the log key did not sign.
    pub fn open(
        note: &[u8],
        log_key: &Verifier,
        also: &[Verifier],
    ) -> Result<VerifiedCheckpoint, CheckpointError> {
        let note = Note::parse(note)?;
        let checkpoint = Checkpoint::parse(&note.text)?;
        if checkpoint.origin != log_key.name() {
            return Err(CheckpointError::OriginMismatch {
                origin: checkpoint.origin,
                key_name: log_key.name().to_owned(),
            });
        }
        let mut all = Vec::with_capacity(also.len() + 1);
        all.push(log_key.clone());
        all.extend_from_slice(also);
        let used = note.verify_indices(&all)?;
        if !used.contains(&0) {
            return Err(NoteError::NoTrustedSignature.into());
        }
        let verified = VerifiedNote::from_indices(note, &all, &used);
        Ok(VerifiedCheckpoint {
            checkpoint,
            note: verified,
        })
    }
}

/// ASCII decimal without sign or leading zeros (except `0` itself), fitting a `u64`.
pub(crate) fn parse_decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if canonical {
        text.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(name: &str) -> Signer {
        Signer::new(name, ed25519_dalek::SigningKey::from_bytes(&[9; 32])).unwrap()
    }

    fn cp() -> Checkpoint {
        Checkpoint {
            origin: "example.com/log".into(),
            size: TreeSize(42),
            root: Hash([3; 32]),
            extensions: vec!["ext one".into()],
        }
    }

    #[test]
    fn sign_open_round_trip() {
        let s = signer("example.com/log");
        let bytes = cp().sign(&s).unwrap();
        let v = Checkpoint::open(&bytes, &s.verifier(), &[]).unwrap();
        assert_eq!(v.checkpoint(), &cp());
        assert_eq!(Checkpoint::parse(&cp().to_text()).unwrap(), cp());
    }

    #[test]
    fn origin_must_match_key_name() {
        let s = signer("example.com/other");
        assert!(matches!(
            cp().sign(&s),
            Err(CheckpointError::OriginMismatch { .. })
        ));
        let good = signer("example.com/log");
        let bytes = cp().sign(&good).unwrap();
        assert!(matches!(
            Checkpoint::open(&bytes, &s.verifier(), &[]),
            Err(CheckpointError::OriginMismatch { .. })
        ));
    }

    #[test]
    fn witness_signature_is_optional_but_checked_when_listed() {
        let log = signer("example.com/log");
        let witness = Signer::new(
            "witness.example",
            ed25519_dalek::SigningKey::from_bytes(&[5; 32]),
        )
        .unwrap();
        let bytes = cp().sign(&log).unwrap();
        // The witness did not sign: still fine, only the log key is required.
        let v = Checkpoint::open(&bytes, &log.verifier(), &[witness.verifier()]).unwrap();
        assert_eq!(v.note().verified_by(), &[log.key_id()]);
        // Only the witness signed: not enough.
        let mut note = Note::new(&cp().to_text()).unwrap();
        note.sign(&witness);
        assert!(
            Checkpoint::open(&note.to_bytes(), &log.verifier(), &[witness.verifier()]).is_err()
        );
    }

    #[test]
    fn malformed_bodies() {
        let root = Hash([0; 32]).to_base64();
        for bad in [
            format!("o\n01\n{root}\n"),
            format!("o\n+1\n{root}\n"),
            format!("o\n-1\n{root}\n"),
            format!("o\n\n{root}\n"),
            format!("o\n18446744073709551616\n{root}\n"),
            format!("\n1\n{root}\n"),
            format!("o\n1\n{root}\n\n"),
            format!("o\n1\n{root}"),
            "o\n1\nAAAA\n".to_string(),
            "o\n1\n".to_string(),
        ] {
            assert!(Checkpoint::parse(&bad).is_err(), "{bad:?}");
        }
        assert!(Checkpoint::parse(&format!("o\n0\n{root}\n")).is_ok());
    }
}
