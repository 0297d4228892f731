//! C2SP signed-note with Ed25519 keys (signature type 0x01). Spec: `spec/note-and-checkpoint.md`
//! §1–§5, following c2sp.org/signed-note v1.
//!
//! A note is a text ending in a newline, a blank line, then one or more lines
//! `— <key name> base64(key id ‖ signature)`. Verification ignores signatures by unknown keys,
//! rejects the note when a known key's signature fails, and needs at least one trusted
//! signature (spec §4).
//!
//! ```
//! use verdict_core::note::{self, Note, Signer, Verifier};
//!
//! let signer = Signer::generate("example.com/log")?;
//! let vkey = Verifier::parse(&signer.verifier().to_string())?;
//! let mut n = Note::new("hello\n")?;
//! n.sign(&signer);
//! let opened = note::open(&n.to_bytes(), &[vkey])?;
//! assert_eq!(opened.text(), "hello\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use base64::Engine as _;

use crate::note_key::check_name;
pub use crate::note_key::{KeyId, Signer, Verifier, ED25519_TYPE};

/// Errors of keys and notes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// A verifier or private key string is malformed.
    #[error("malformed key: {reason}")]
    MalformedKey {
        /// What was wrong.
        reason: &'static str,
    },
    /// A note is malformed (missing blank line, bad signature line, not UTF-8, ...).
    #[error("malformed note: {reason}")]
    Malformed {
        /// What was wrong.
        reason: &'static str,
    },
    /// The note or its signature block exceeds a limit.
    #[error("note exceeds limit: {what}")]
    TooLarge {
        /// Which limit.
        what: &'static str,
    },
    /// A signature by a known key failed to verify.
    #[error("invalid signature by {name} ({key_id})")]
    InvalidSignature {
        /// Key name.
        name: String,
        /// Key id.
        key_id: KeyId,
    },
    /// No signature by any of the given verifiers.
    #[error("no signature by a trusted key")]
    NoTrustedSignature,
}

/// Prefix of every signature line: U+2014 EM DASH and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// One signature line of a note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// Key id (first 4 bytes of the decoded signature blob).
    pub key_id: KeyId,
    /// The rest of the blob (64 bytes for Ed25519; other lengths allowed for unknown types).
    pub signature: Vec<u8>,
}

/// A parsed, *unverified* note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The text, ending in a newline.
    pub text: String,
    /// Signature lines in order.
    pub signatures: Vec<NoteSignature>,
}

/// A note with at least one signature verified by a trusted key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedNote {
    note: Note,
    verified_by: Vec<KeyId>,
}

impl VerifiedNote {
    /// The note text.
    pub fn text(&self) -> &str {
        &self.note.text
    }
    /// The whole note, signatures included.
    pub fn note(&self) -> &Note {
        &self.note
    }
    /// Key ids of the trusted keys whose signatures verified.
    pub fn verified_by(&self) -> &[KeyId] {
        &self.verified_by
    }

    /// Wrap a note whose signatures by `verifiers[i]`, `i` in `used`, were verified by
    /// [`Note::verify_indices`].
    pub(crate) fn from_indices(note: Note, verifiers: &[Verifier], used: &[usize]) -> Self {
        let verified_by = used
            .iter()
            .filter_map(|&i| verifiers.get(i).map(Verifier::key_id))
            .collect();
        VerifiedNote { note, verified_by }
    }
}

/// Maximum size of a note in bytes.
pub const MAX_NOTE_SIZE: usize = 1 << 20;
/// Maximum number of signature lines.
pub const MAX_SIGNATURES: usize = 100;

/// Text rules (spec §3): ends in a newline, no control character other than newline.
fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::Malformed {
            reason: "text does not end in a newline",
        });
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::Malformed {
            reason: "control character other than newline",
        });
    }
    Ok(())
}

/// Parse one signature line (without its newline).
fn parse_signature_line(line: &str) -> Result<NoteSignature, NoteError> {
    let bad = |reason| NoteError::Malformed { reason };
    let rest = line.strip_prefix(SIG_PREFIX).ok_or(bad(
        "signature line does not start with an em dash and a space",
    ))?;
    let (name, blob) = rest
        .split_once(' ')
        .ok_or(bad("signature line has no space after the key name"))?;
    check_name(name).map_err(|_| bad("invalid key name in signature line"))?;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .map_err(|_| bad("signature is not base64"))?;
    match blob.as_slice() {
        [a, b, c, d, sig @ ..] if !sig.is_empty() => Ok(NoteSignature {
            name: name.to_owned(),
            key_id: KeyId([*a, *b, *c, *d]),
            signature: sig.to_vec(),
        }),
        _ => Err(bad("signature shorter than 5 bytes")),
    }
}

impl Note {
    /// Parse a note (text, blank line, signature lines), enforcing size limits (spec §3).
    ///
    /// # Errors
    /// [`NoteError::Malformed`] or [`NoteError::TooLarge`].
    pub fn parse(bytes: &[u8]) -> Result<Self, NoteError> {
        if bytes.len() > MAX_NOTE_SIZE {
            return Err(NoteError::TooLarge { what: "note size" });
        }
        let all = std::str::from_utf8(bytes).map_err(|_| NoteError::Malformed {
            reason: "not utf-8",
        })?;
        // The text is separated from the signatures by the last empty line.
        let split = all.rfind("\n\n").ok_or(NoteError::Malformed {
            reason: "no blank line before the signatures",
        })?;
        let (text, sigs) = (all.get(..=split), all.get(split + 2..));
        let (Some(text), Some(sigs)) = (text, sigs) else {
            return Err(NoteError::Malformed {
                reason: "no blank line before the signatures",
            });
        };
        check_text(text)?;
        if sigs.is_empty() {
            return Err(NoteError::Malformed {
                reason: "no signature lines",
            });
        }
        let Some(sigs) = sigs.strip_suffix('\n') else {
            return Err(NoteError::Malformed {
                reason: "signature block does not end in a newline",
            });
        };
        let mut signatures = Vec::new();
        for line in sigs.split('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(NoteError::TooLarge {
                    what: "number of signatures",
                });
            }
            signatures.push(parse_signature_line(line)?);
        }
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }

    /// Unsigned note from text; the text must end in a newline, hold no control character other
    /// than newline, and fit [`MAX_NOTE_SIZE`].
    ///
    /// # Errors
    /// [`NoteError::Malformed`] or [`NoteError::TooLarge`].
    pub fn new(text: &str) -> Result<Self, NoteError> {
        if text.len() > MAX_NOTE_SIZE {
            return Err(NoteError::TooLarge { what: "note size" });
        }
        check_text(text)?;
        Ok(Note {
            text: text.to_owned(),
            signatures: Vec::new(),
        })
    }

    /// Add a signature by `signer` over the text.
    pub fn sign(&mut self, signer: &Signer) {
        self.signatures.push(NoteSignature {
            name: signer.name().to_owned(),
            key_id: signer.key_id(),
            signature: signer.sign_raw(self.text.as_bytes()).to_vec(),
        });
    }

    /// Serialise: text, blank line, one `— name base64` line per signature.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(self.text.len() + 1 + self.signatures.len() * 110);
        out.push_str(&self.text);
        out.push('\n');
        for sig in &self.signatures {
            let mut blob = Vec::with_capacity(4 + sig.signature.len());
            blob.extend_from_slice(&sig.key_id.0);
            blob.extend_from_slice(&sig.signature);
            out.push_str(SIG_PREFIX);
            out.push_str(&sig.name);
            out.push(' ');
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(blob));
            out.push('\n');
        }
        out.into_bytes()
    }

    /// Verify against trusted keys: unknown signatures are ignored, a failing known one rejects
    /// (spec §4).
    ///
    /// # Errors
    /// [`NoteError::InvalidSignature`], [`NoteError::NoTrustedSignature`], or
    /// [`NoteError::Malformed`] when a known key signed twice.
    pub fn verify(self, verifiers: &[Verifier]) -> Result<VerifiedNote, NoteError> {
        let used = self.verify_indices(verifiers)?;
        Ok(VerifiedNote::from_indices(self, verifiers, &used))
    }

    /// The indices into `verifiers` of the keys whose signatures verified, in signature order.
    /// At least one; see [`Note::verify`] for the rules.
    ///
    /// # Errors
    /// As [`Note::verify`].
    pub fn verify_indices(&self, verifiers: &[Verifier]) -> Result<Vec<usize>, NoteError> {
        let mut used: Vec<usize> = Vec::new();
        for sig in &self.signatures {
            let known = verifiers
                .iter()
                .position(|v| v.key_id() == sig.key_id && v.name() == sig.name);
            let Some(index) = known else {
                continue;
            };
            let Some(verifier) = verifiers.get(index) else {
                continue;
            };
            if used.contains(&index) {
                return Err(NoteError::Malformed {
                    reason: "a known key signed more than once",
                });
            }
            verifier.verify_raw(self.text.as_bytes(), &sig.signature)?;
            used.push(index);
        }
        if used.is_empty() {
            return Err(NoteError::NoTrustedSignature);
        }
        Ok(used)
    }
}

/// Parse and verify in one step.
///
/// # Errors
/// See [`Note::parse`] and [`Note::verify`].
pub fn open(bytes: &[u8], verifiers: &[Verifier]) -> Result<VerifiedNote, NoteError> {
    Note::parse(bytes)?.verify(verifiers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::new(
            "example.com/test",
            ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
        )
        .unwrap()
    }

    #[test]
    fn sign_parse_verify_round_trip() {
        let s = signer();
        let mut note = Note::new("hello\n\nworld\n").unwrap();
        note.sign(&s);
        let bytes = note.to_bytes();
        let parsed = Note::parse(&bytes).unwrap();
        assert_eq!(parsed, note);
        let v = parsed.verify(&[s.verifier()]).unwrap();
        assert_eq!(v.verified_by(), &[s.key_id()]);
        assert_eq!(v.text(), "hello\n\nworld\n");
    }

    #[test]
    fn duplicate_known_signature_rejected() {
        let s = signer();
        let mut note = Note::new("x\n").unwrap();
        note.sign(&s);
        note.sign(&s);
        assert!(matches!(
            note.verify(&[s.verifier()]),
            Err(NoteError::Malformed { .. })
        ));
    }

    #[test]
    fn too_many_signatures() {
        let s = signer();
        let mut note = Note::new("x\n").unwrap();
        for _ in 0..=MAX_SIGNATURES {
            note.sign(&s);
        }
        assert_eq!(
            Note::parse(&note.to_bytes()),
            Err(NoteError::TooLarge {
                what: "number of signatures"
            })
        );
    }

    #[test]
    fn malformed_notes() {
        for bad in [
            &b"no blank line\n"[..],
            b"text\n\n",
            b"text\n\n\xe2\x80\x94 name AAAAAAA=",
            b"text\n\n- name AAAAAAAA\n",
            b"te\rxt\n\n\xe2\x80\x94 name AAAAAAAA\n",
            b"\xff\n\n\xe2\x80\x94 name AAAAAAAA\n",
            b"text\n\n\xe2\x80\x94 name AAAA\n",
        ] {
            assert!(
                matches!(Note::parse(bad), Err(NoteError::Malformed { .. })),
                "{bad:?}"
            );
        }
    }
}
