//! Signed-note Ed25519 keys: key ids, verifier keys and private keys (c2sp.org/signed-note).
//! Spec: `spec/note-and-checkpoint.md` §2. Re-exported from [`crate::note`].

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::note::NoteError;

/// The 4-byte key id: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[..4].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 4]);

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl KeyId {
    /// The Ed25519 key id of `name` and `key` (spec `note-and-checkpoint.md` §2).
    pub fn ed25519(name: &str, key: &ed25519_dalek::VerifyingKey) -> Self {
        Self::typed(name, ED25519_TYPE, key)
    }

    /// `SHA-256(name ‖ 0x0A ‖ type ‖ public key)[..4]`, for signature type `kind` (0x01 for
    /// Ed25519 note signatures, 0x04 for `cosignature/v1`).
    pub(crate) fn typed(name: &str, kind: u8, key: &ed25519_dalek::VerifyingKey) -> Self {
        let mut h = Sha256::new();
        h.update(name.as_bytes());
        h.update([0x0A, kind]);
        h.update(key.as_bytes());
        let digest: [u8; 32] = h.finalize().into();
        let [a, b, c, d, ..] = digest;
        KeyId([a, b, c, d])
    }
}
/// Signature type byte of Ed25519 note signatures (c2sp.org/signed-note, "Signature types").
pub const ED25519_TYPE: u8 = 0x01;

/// A key name is non-empty and holds no `+`, no Unicode space and no control character
/// (spec §2).
pub(crate) fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() {
        return Err(NoteError::MalformedKey {
            reason: "empty key name",
        });
    }
    if name
        .chars()
        .any(|c| c == '+' || c.is_whitespace() || c.is_control())
    {
        return Err(NoteError::MalformedKey {
            reason: "key name holds '+', a space or a control character",
        });
    }
    Ok(())
}

/// Decode `base64(type ‖ 32 bytes)` of a key string, the type among `types` (else the error is
/// `wrong_type`); the error is the reason, for the caller's `MalformedKey`.
pub(crate) fn decode_typed_key(
    text: &str,
    types: &[u8],
    wrong_type: &'static str,
) -> Result<(u8, [u8; 32]), &'static str> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| "key is not base64")?;
    let (kind, key) = raw.split_first().ok_or("empty key")?;
    if !types.contains(kind) {
        return Err(wrong_type);
    }
    let key = <[u8; 32]>::try_from(key).map_err(|_| "ed25519 key is not 32 bytes")?;
    Ok((*kind, key))
}

/// Parse the 8 lowercase hex digits of a key id.
pub(crate) fn parse_key_id(text: &str) -> Result<KeyId, &'static str> {
    let bad = "key id is not 8 lowercase hex digits";
    if text.len() != 8 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(bad);
    }
    let mut id = [0u8; 4];
    hex::decode_to_slice(text, &mut id).map_err(|_| bad)?;
    Ok(KeyId(id))
}

/// `base64(type ‖ key)`.
pub(crate) fn typed_key_base64(kind: u8, key: &[u8; 32]) -> String {
    let mut raw = Vec::with_capacity(33);
    raw.push(kind);
    raw.extend_from_slice(key);
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// A signed-note verifier key: name, key id and Ed25519 public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    key_id: KeyId,
    key: ed25519_dalek::VerifyingKey,
}

impl Verifier {
    /// Build from a name and public key, computing the key id.
    ///
    /// # Errors
    /// [`NoteError::MalformedKey`] when the name is empty or holds `+`, whitespace or a newline.
    pub fn new(name: &str, key: ed25519_dalek::VerifyingKey) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(Verifier {
            name: name.to_owned(),
            key_id: KeyId::ed25519(name, &key),
            key,
        })
    }

    /// Parse `<name>+<hex key id>+<base64(0x01 ‖ pubkey)>`, splitting on the first two `+` only
    /// (spec `note-and-checkpoint.md` §2). The key id must match the one computed from the key.
    ///
    /// # Errors
    /// [`NoteError::MalformedKey`].
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::MalformedKey {
                reason: "verifier key needs three '+'-separated fields",
            });
        };
        check_name(name)?;
        let id = parse_key_id(id).map_err(|reason| NoteError::MalformedKey { reason })?;
        let key = decode_typed_key(key, &[ED25519_TYPE], "unknown signature type")
            .map_err(|reason| NoteError::MalformedKey { reason })?
            .1;
        let key =
            ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|_| NoteError::MalformedKey {
                reason: "not an ed25519 public key",
            })?;
        let verifier = Verifier::new(name, key)?;
        if verifier.key_id != id {
            return Err(NoteError::MalformedKey {
                reason: "key id does not match the key",
            });
        }
        Ok(verifier)
    }

    /// Key name.
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

    /// Verify a raw 64-byte Ed25519 signature (RFC 8032, strict: canonical encodings, no
    /// small-order keys) over `message`.
    ///
    /// # Errors
    /// [`NoteError::InvalidSignature`] naming this key.
    pub fn verify_raw(&self, message: &[u8], signature: &[u8]) -> Result<(), NoteError> {
        ed25519_dalek::Signature::from_slice(signature)
            .ok()
            .filter(|sig| self.key.verify_strict(message, sig).is_ok())
            .map(|_| ())
            .ok_or_else(|| NoteError::InvalidSignature {
                name: self.name.clone(),
                key_id: self.key_id,
            })
    }
}

impl std::fmt::Display for Verifier {
    /// The verifier key string `<name>+<hex>+<base64>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}+{}+{}",
            self.name,
            self.key_id,
            typed_key_base64(ED25519_TYPE, self.key.as_bytes())
        )
    }
}

/// A signed-note signer: name and Ed25519 private key (zeroised on drop, also in clones).
#[derive(Clone)]
pub struct Signer {
    name: String,
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Build from a name and private key.
    ///
    /// # Errors
    /// [`NoteError::MalformedKey`] for an invalid name.
    pub fn new(name: &str, key: ed25519_dalek::SigningKey) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(Signer {
            name: name.to_owned(),
            key,
        })
    }

    /// Generate a fresh key from the OS random source.
    ///
    /// # Errors
    /// [`NoteError::MalformedKey`] for an invalid name.
    ///
    /// # Panics
    /// Only if the operating system's random source fails.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        check_name(name)?;
        let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
        Self::new(name, key)
    }

    /// Parse `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 ‖ seed)>` (spec §2).
    ///
    /// # Errors
    /// [`NoteError::MalformedKey`], including a key id that does not match.
    pub fn parse(skey: &str) -> Result<Self, NoteError> {
        let mut parts = skey.splitn(5, '+');
        let (Some("PRIVATE"), Some("KEY"), Some(name), Some(id), Some(key)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(NoteError::MalformedKey {
                reason: "private key must be PRIVATE+KEY+<name>+<id>+<key>",
            });
        };
        check_name(name)?;
        let id = parse_key_id(id).map_err(|reason| NoteError::MalformedKey { reason })?;
        let seed = decode_typed_key(key, &[ED25519_TYPE], "unknown signature type")
            .map_err(|reason| NoteError::MalformedKey { reason })?
            .1;
        let signer = Signer::new(name, ed25519_dalek::SigningKey::from_bytes(&seed))?;
        if signer.verifier().key_id != id {
            return Err(NoteError::MalformedKey {
                reason: "key id does not match the key",
            });
        }
        Ok(signer)
    }

    /// The private key string `PRIVATE+KEY+<name>+<hex>+<base64>`.
    pub fn to_private_key_string(&self) -> String {
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            self.key_id(),
            typed_key_base64(ED25519_TYPE, self.key.as_bytes())
        )
    }

    /// Key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Key id of the matching verifier.
    pub fn key_id(&self) -> KeyId {
        KeyId::ed25519(&self.name, &self.key.verifying_key())
    }

    /// The matching verifier.
    pub fn verifier(&self) -> Verifier {
        let key = self.key.verifying_key();
        Verifier {
            name: self.name.clone(),
            key_id: KeyId::ed25519(&self.name, &key),
            key,
        }
    }

    /// Raw Ed25519 signature over `message` (deterministic, RFC 8032).
    pub fn sign_raw(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        self.key.sign(message).to_bytes()
    }
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
    fn keys_round_trip() {
        let s = signer();
        let v = s.verifier();
        assert_eq!(Verifier::parse(&v.to_string()).unwrap(), v);
        let s2 = Signer::parse(&s.to_private_key_string()).unwrap();
        assert_eq!(s2.verifier(), v);
    }

    #[test]
    fn rejects_bad_names_and_ids() {
        let key = signer().verifier();
        assert!(Verifier::new("a+b", *key.key()).is_err());
        assert!(Verifier::new("a b", *key.key()).is_err());
        assert!(Verifier::new("", *key.key()).is_err());
        let text = key
            .to_string()
            .replacen(&key.key_id().to_string(), "00000000", 1);
        assert!(Verifier::parse(&text).is_err());
    }
}
