//! C2SP tlog-cosignature: Ed25519 `cosignature/v1` witness cosignatures on checkpoints.
//! Spec: `spec/witness.md` §2–§4, following c2sp.org/tlog-cosignature.
//!
//! A cosignature is a signed-note signature line on a checkpoint:
//! `— <witness name> base64(key id ‖ u64 big-endian timestamp ‖ Ed25519 signature)`, where
//! - the key id is `SHA-256(<name> ‖ 0x0A ‖ 0x04 ‖ 32-byte public key)[..4]` ([`key_id`]);
//! - the signature is over [`signed_message`]: `cosignature/v1\n`, `time <timestamp>\n` and the
//!   whole checkpoint body (extension lines included, signature lines excluded);
//! - the timestamp is POSIX seconds, at most 2^63 − 1.
//!
//! Witness verifier keys are vkeys of signature type 0x04:
//! `<name>+<hex key id>+base64(0x04 ‖ public key)` ([`CosignerKey`]).
//!
//! Transport-agnostic: no I/O and no clock (the caller passes the timestamp).
//!
//! ```
//! use verdict_core::cosignature::{verify_note, Cosigner};
//! use verdict_core::note::Note;
//!
//! let witness = Cosigner::generate("witness.example/w1")?;
//! let body = "example.com/log\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n";
//! let mut note = Note::new(body)?;
//! note.signatures.push(witness.cosign(body, 1_700_000_000)?);
//! let verified = verify_note(&note, &[witness.verifier()])?;
//! assert_eq!(verified[0].timestamp(), 1_700_000_000);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::checkpoint::Checkpoint;
use crate::note::{KeyId, Note, NoteSignature};
use crate::note_key::{check_name, decode_typed_key, parse_key_id, typed_key_base64};

/// Signature type byte of Ed25519 `cosignature/v1` keys (c2sp.org/tlog-cosignature).
pub const COSIGNATURE_V1_TYPE: u8 = 0x04;
/// Bytes of a cosignature after the key id: 8-byte timestamp and 64-byte Ed25519 signature.
pub const COSIGNATURE_V1_LEN: usize = 8 + 64;
/// Largest timestamp a cosignature may carry: 2^63 − 1.
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;
/// Header line of the signed message, which gives domain separation.
pub const HEADER: &str = "cosignature/v1";

/// Errors of cosigner keys and cosignatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignatureError {
    /// A verifier or private key string is malformed, or of another signature type.
    #[error("malformed cosigner key: {reason}")]
    MalformedKey {
        /// What was wrong.
        reason: &'static str,
    },
    /// A signature line by a known cosigner does not hold key id, timestamp and signature.
    #[error("malformed cosignature by {name}: {reason}")]
    Malformed {
        /// Cosigner name.
        name: String,
        /// What was wrong.
        reason: &'static str,
    },
    /// The timestamp exceeds 2^63 − 1 (or is zero when signing).
    #[error("cosignature timestamp {timestamp} out of range")]
    TimestampOutOfRange {
        /// The timestamp.
        timestamp: u64,
    },
    /// The text to cosign is not a checkpoint body.
    #[error("not a checkpoint body: {reason}")]
    NotCheckpoint {
        /// What was wrong.
        reason: String,
    },
    /// A cosignature by a known cosigner failed to verify.
    #[error("invalid cosignature by {name} ({key_id})")]
    InvalidSignature {
        /// Cosigner name.
        name: String,
        /// Key id.
        key_id: KeyId,
    },
    /// A known cosigner signed the same note more than once.
    #[error("cosigner {name} ({key_id}) signed more than once")]
    Duplicate {
        /// Cosigner name.
        name: String,
        /// Key id.
        key_id: KeyId,
    },
}

/// The `cosignature/v1` key id: `SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key)[..4]`.
pub fn key_id(name: &str, key: &ed25519_dalek::VerifyingKey) -> KeyId {
    KeyId::typed(name, COSIGNATURE_V1_TYPE, key)
}

/// The message a `cosignature/v1` signs: `cosignature/v1\ntime <timestamp>\n<body>`, the
/// timestamp in ASCII decimal without leading zeros, the body the whole checkpoint text.
pub fn signed_message(body: &str, timestamp: u64) -> Vec<u8> {
    format!("{HEADER}\ntime {timestamp}\n{body}").into_bytes()
}

/// The parts of a cosignature line's blob after the key id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cosignature {
    /// Key id.
    pub key_id: KeyId,
    /// POSIX seconds at which the witness cosigned.
    pub timestamp: u64,
    /// Ed25519 signature over [`signed_message`].
    pub signature: [u8; 64],
}

impl Cosignature {
    /// Split a note signature into timestamp and signature: exactly 72 bytes after the key id,
    /// a timestamp of at most 2^63 − 1.
    ///
    /// # Errors
    /// [`CosignatureError::Malformed`] or [`CosignatureError::TimestampOutOfRange`].
    pub fn from_note_signature(sig: &NoteSignature) -> Result<Self, CosignatureError> {
        let malformed = |reason| CosignatureError::Malformed {
            name: sig.name.clone(),
            reason,
        };
        let Some((ts, signature)) = sig.signature.split_first_chunk::<8>() else {
            return Err(malformed("shorter than timestamp and signature"));
        };
        let signature = <[u8; 64]>::try_from(signature)
            .map_err(|_| malformed("not 8 timestamp and 64 signature bytes"))?;
        let timestamp = u64::from_be_bytes(*ts);
        if timestamp > MAX_TIMESTAMP {
            return Err(CosignatureError::TimestampOutOfRange { timestamp });
        }
        Ok(Cosignature {
            key_id: sig.key_id,
            timestamp,
            signature,
        })
    }

    /// The note signature line of this cosignature by `name`.
    pub fn to_note_signature(&self, name: &str) -> NoteSignature {
        let mut blob = Vec::with_capacity(COSIGNATURE_V1_LEN);
        blob.extend_from_slice(&self.timestamp.to_be_bytes());
        blob.extend_from_slice(&self.signature);
        NoteSignature {
            name: name.to_owned(),
            key_id: self.key_id,
            signature: blob,
        }
    }
}

/// A cosignature verified by a trusted cosigner key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCosignature {
    name: String,
    key_id: KeyId,
    timestamp: u64,
}

impl VerifiedCosignature {
    /// Cosigner name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Cosigner key id.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }
    /// POSIX seconds at which the cosigner signed.
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }
}

/// A witness's `cosignature/v1` verifier key: name, key id and Ed25519 public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosignerKey {
    name: String,
    key_id: KeyId,
    key: ed25519_dalek::VerifyingKey,
}

impl CosignerKey {
    /// Build from a name and public key, computing the key id.
    ///
    /// # Errors
    /// [`CosignatureError::MalformedKey`] for an invalid name (empty, `+`, space, control).
    pub fn new(name: &str, key: ed25519_dalek::VerifyingKey) -> Result<Self, CosignatureError> {
        check_name(name).map_err(|_| CosignatureError::MalformedKey {
            reason: "key name is empty or holds '+', a space or a control character",
        })?;
        Ok(CosignerKey {
            name: name.to_owned(),
            key_id: key_id(name, &key),
            key,
        })
    }

    /// Parse the vkey `<name>+<hex key id>+base64(0x04 ‖ public key)`, splitting on the first
    /// two `+` only. The type byte must be 0x04 and the key id must match.
    ///
    /// # Errors
    /// [`CosignatureError::MalformedKey`].
    pub fn parse(vkey: &str) -> Result<Self, CosignatureError> {
        let bad = |reason| CosignatureError::MalformedKey { reason };
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("verifier key needs three '+'-separated fields"));
        };
        let id = parse_key_id(id).map_err(malformed_key)?;
        let key = decode_key(key, &[COSIGNATURE_V1_TYPE])?.1;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&key)
            .map_err(|_| bad("not an ed25519 public key"))?;
        let parsed = CosignerKey::new(name, key)?;
        if parsed.key_id != id {
            return Err(bad("key id does not match the key"));
        }
        Ok(parsed)
    }

    /// Cosigner name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Key id.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Public key.
    pub fn key(&self) -> &ed25519_dalek::VerifyingKey {
        &self.key
    }

    /// Whether `sig` is a line of this key (same name and key id).
    pub fn matches(&self, sig: &NoteSignature) -> bool {
        sig.name == self.name && sig.key_id == self.key_id
    }

    /// Verify one cosignature line over the checkpoint `body` (RFC 8032 strict verification).
    ///
    /// # Errors
    /// [`CosignatureError::InvalidSignature`] when the line is not this key's or fails;
    /// [`CosignatureError::Malformed`] or [`CosignatureError::TimestampOutOfRange`] for a bad
    /// blob.
    pub fn verify(
        &self,
        body: &str,
        sig: &NoteSignature,
    ) -> Result<VerifiedCosignature, CosignatureError> {
        let invalid = || CosignatureError::InvalidSignature {
            name: self.name.clone(),
            key_id: self.key_id,
        };
        if !self.matches(sig) {
            return Err(invalid());
        }
        let cosig = Cosignature::from_note_signature(sig)?;
        let signature = ed25519_dalek::Signature::from_bytes(&cosig.signature);
        self.key
            .verify_strict(&signed_message(body, cosig.timestamp), &signature)
            .map_err(|_| invalid())?;
        Ok(VerifiedCosignature {
            name: self.name.clone(),
            key_id: self.key_id,
            timestamp: cosig.timestamp,
        })
    }
}

impl std::fmt::Display for CosignerKey {
    /// The vkey `<name>+<hex>+<base64(0x04 ‖ key)>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}+{}+{}",
            self.name,
            self.key_id,
            typed_key_base64(COSIGNATURE_V1_TYPE, self.key.as_bytes())
        )
    }
}

/// Verify the cosignatures of `keys` on a note: lines of unknown keys are ignored, a known
/// key's line that fails rejects the note, a known key may sign once (signed-note rules applied
/// to cosigner keys). Returns the verified cosignatures in line order; possibly none.
///
/// # Errors
/// [`CosignatureError::InvalidSignature`], [`CosignatureError::Malformed`],
/// [`CosignatureError::TimestampOutOfRange`] or [`CosignatureError::Duplicate`].
pub fn verify_note(
    note: &Note,
    keys: &[CosignerKey],
) -> Result<Vec<VerifiedCosignature>, CosignatureError> {
    let mut out: Vec<VerifiedCosignature> = Vec::new();
    for sig in &note.signatures {
        let Some(key) = keys.iter().find(|k| k.matches(sig)) else {
            continue;
        };
        if out
            .iter()
            .any(|v| v.key_id == key.key_id && v.name == key.name)
        {
            return Err(CosignatureError::Duplicate {
                name: key.name.clone(),
                key_id: key.key_id,
            });
        }
        out.push(key.verify(&note.text, sig)?);
    }
    Ok(out)
}

/// A witness's signing key: name and Ed25519 private key (zeroised on drop).
#[derive(Clone)]
pub struct Cosigner {
    name: String,
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cosigner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Cosigner {
    /// Build from a name and private key.
    ///
    /// # Errors
    /// [`CosignatureError::MalformedKey`] for an invalid name.
    pub fn new(name: &str, key: ed25519_dalek::SigningKey) -> Result<Self, CosignatureError> {
        CosignerKey::new(name, key.verifying_key())?;
        Ok(Cosigner {
            name: name.to_owned(),
            key,
        })
    }

    /// Generate a fresh key from the OS random source.
    ///
    /// # Errors
    /// [`CosignatureError::MalformedKey`] for an invalid name.
    ///
    /// # Panics
    /// Only if the operating system's random source fails.
    pub fn generate(name: &str) -> Result<Self, CosignatureError> {
        Self::new(
            name,
            ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng),
        )
    }

    /// Parse `PRIVATE+KEY+<name>+<hex key id>+base64(type ‖ 32-byte seed)`. The type is 0x04
    /// (what [`Cosigner::to_private_key_string`] writes) or 0x01, a signed-note Ed25519 private
    /// key reused as a cosigner, as Go's `NewSignerForCosignatureV1` accepts; the key id must
    /// match for that type.
    ///
    /// # Errors
    /// [`CosignatureError::MalformedKey`].
    pub fn parse(skey: &str) -> Result<Self, CosignatureError> {
        let bad = |reason| CosignatureError::MalformedKey { reason };
        let mut parts = skey.splitn(5, '+');
        let (Some("PRIVATE"), Some("KEY"), Some(name), Some(id), Some(key)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad("private key must be PRIVATE+KEY+<name>+<id>+<key>"));
        };
        let id = parse_key_id(id).map_err(malformed_key)?;
        let (kind, seed) = decode_key(key, &[COSIGNATURE_V1_TYPE, crate::note::ED25519_TYPE])?;
        let cosigner = Cosigner::new(name, ed25519_dalek::SigningKey::from_bytes(&seed))?;
        let public = cosigner.key.verifying_key();
        let expected = if kind == COSIGNATURE_V1_TYPE {
            key_id(name, &public)
        } else {
            KeyId::ed25519(name, &public)
        };
        if expected != id {
            return Err(bad("key id does not match the key"));
        }
        Ok(cosigner)
    }

    /// The private key string `PRIVATE+KEY+<name>+<hex>+base64(0x04 ‖ seed)`.
    pub fn to_private_key_string(&self) -> String {
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            self.key_id(),
            typed_key_base64(COSIGNATURE_V1_TYPE, self.key.as_bytes())
        )
    }

    /// Cosigner name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Key id of the matching verifier key.
    pub fn key_id(&self) -> KeyId {
        key_id(&self.name, &self.key.verifying_key())
    }

    /// The matching verifier key.
    pub fn verifier(&self) -> CosignerKey {
        let key = self.key.verifying_key();
        CosignerKey {
            name: self.name.clone(),
            key_id: key_id(&self.name, &key),
            key,
        }
    }

    /// Cosign the checkpoint `body` at `timestamp` (POSIX seconds, 1 ..= 2^63 − 1; c2sp
    /// tlog-witness forbids a zero timestamp). Returns the signature line to append to the note.
    ///
    /// # Errors
    /// [`CosignatureError::TimestampOutOfRange`]; [`CosignatureError::NotCheckpoint`] when
    /// `body` does not parse as a checkpoint.
    pub fn cosign(&self, body: &str, timestamp: u64) -> Result<NoteSignature, CosignatureError> {
        use ed25519_dalek::Signer as _;
        if timestamp == 0 || timestamp > MAX_TIMESTAMP {
            return Err(CosignatureError::TimestampOutOfRange { timestamp });
        }
        Checkpoint::parse(body).map_err(|e| CosignatureError::NotCheckpoint {
            reason: e.to_string(),
        })?;
        let signature = self.key.sign(&signed_message(body, timestamp)).to_bytes();
        Ok(Cosignature {
            key_id: self.key_id(),
            timestamp,
            signature,
        }
        .to_note_signature(&self.name))
    }
}

fn malformed_key(reason: &'static str) -> CosignatureError {
    CosignatureError::MalformedKey { reason }
}

/// Decode `base64(type ‖ 32 bytes)` with a type among `types` (spec `witness.md`).
fn decode_key(text: &str, types: &[u8]) -> Result<(u8, [u8; 32]), CosignatureError> {
    decode_typed_key(text, types, "signature type is not 0x04 (cosignature/v1)")
        .map_err(malformed_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "example.com/log\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n";

    fn witness() -> Cosigner {
        Cosigner::new(
            "witness.example/w1",
            ed25519_dalek::SigningKey::from_bytes(&[4; 32]),
        )
        .unwrap()
    }

    fn cosigned(w: &Cosigner, ts: u64) -> Note {
        let mut note = Note::new(BODY).unwrap();
        note.signatures.push(w.cosign(BODY, ts).unwrap());
        note
    }

    #[test]
    fn sign_verify_round_trip() {
        let w = witness();
        let note = cosigned(&w, 1_679_315_147);
        let bytes = note.to_bytes();
        let parsed = Note::parse(&bytes).unwrap();
        let v = verify_note(&parsed, &[w.verifier()]).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].timestamp(), 1_679_315_147);
        assert_eq!(v[0].name(), "witness.example/w1");
        assert_eq!(parsed.signatures[0].signature.len(), COSIGNATURE_V1_LEN);
    }

    #[test]
    fn keys_round_trip_and_differ_from_note_keys() {
        let w = witness();
        let v = w.verifier();
        assert_eq!(CosignerKey::parse(&v.to_string()).unwrap(), v);
        let again = Cosigner::parse(&w.to_private_key_string()).unwrap();
        assert_eq!(again.verifier(), v);
        // The same key as a signed-note key has another id (type byte 0x01).
        assert_ne!(
            KeyId::ed25519(w.name(), v.key()),
            v.key_id(),
            "key ids must differ by type byte"
        );
        // A signed-note (0x01) vkey is not a cosigner key.
        let note_key = crate::note::Verifier::new(w.name(), *v.key()).unwrap();
        assert!(CosignerKey::parse(&note_key.to_string()).is_err());
    }

    #[test]
    fn edits_are_rejected() {
        let w = witness();
        let note = cosigned(&w, 1_700_000_000);
        // Edited body.
        let mut edited = note.clone();
        edited.text = BODY.replace("\n5\n", "\n6\n");
        assert!(matches!(
            verify_note(&edited, &[w.verifier()]),
            Err(CosignatureError::InvalidSignature { .. })
        ));
        // Edited timestamp.
        let mut edited = note.clone();
        edited.signatures[0].signature[7] ^= 1;
        assert!(verify_note(&edited, &[w.verifier()]).is_err());
        // Truncated.
        let mut edited = note.clone();
        edited.signatures[0].signature.pop();
        assert!(matches!(
            verify_note(&edited, &[w.verifier()]),
            Err(CosignatureError::Malformed { .. })
        ));
        // Duplicate.
        let mut dup = note.clone();
        dup.signatures.push(note.signatures[0].clone());
        assert!(matches!(
            verify_note(&dup, &[w.verifier()]),
            Err(CosignatureError::Duplicate { .. })
        ));
        // Unknown keys are ignored.
        let other =
            Cosigner::new("other", ed25519_dalek::SigningKey::from_bytes(&[5; 32])).unwrap();
        assert!(verify_note(&note, &[other.verifier()]).unwrap().is_empty());
    }

    #[test]
    fn timestamp_bounds() {
        let w = witness();
        assert!(w.cosign(BODY, 0).is_err());
        assert!(w.cosign(BODY, MAX_TIMESTAMP + 1).is_err());
        assert!(w.cosign(BODY, MAX_TIMESTAMP).is_ok());
        assert!(matches!(
            w.cosign("not a checkpoint\n", 1),
            Err(CosignatureError::NotCheckpoint { .. })
        ));
    }
}
