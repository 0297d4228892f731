//! C2SP signed-note with Ed25519 keys (signature type 0x01). Spec: `spec/note-and-checkpoint.md`.
//!
//! SKELETON: signatures are the contract; bodies are being filled in.

/// The 4-byte key id: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[..4].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 4]);

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

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
        let _ = (name, key);
        todo_skeleton()
    }

    /// Parse `<name>+<hex key id>+<base64(0x01 ‖ pubkey)>`, splitting on the first two `+` only.
    ///
    /// # Errors
    /// [`NoteError::MalformedKey`].
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let _ = vkey;
        todo_skeleton()
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
}

impl std::fmt::Display for Verifier {
    /// The verifier key string `<name>+<hex>+<base64>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let _ = f;
        todo_skeleton()
    }
}

/// A signed-note signer: name and Ed25519 private key.
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
        let _ = (name, key);
        todo_skeleton()
    }

    /// Generate a fresh key from the OS random source.
    ///
    /// # Errors
    /// [`NoteError::MalformedKey`] for an invalid name.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        let _ = name;
        todo_skeleton()
    }

    /// Parse `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 ‖ seed)>`.
    ///
    /// # Errors
    /// [`NoteError::MalformedKey`], including a key id that does not match.
    pub fn parse(skey: &str) -> Result<Self, NoteError> {
        let _ = skey;
        todo_skeleton()
    }

    /// The private key string `PRIVATE+KEY+<name>+<hex>+<base64>`.
    pub fn to_private_key_string(&self) -> String {
        todo_skeleton()
    }

    /// Key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The matching verifier.
    pub fn verifier(&self) -> Verifier {
        let _ = &self.key;
        todo_skeleton()
    }

    /// Raw Ed25519 signature over `message` (deterministic, RFC 8032).
    pub fn sign_raw(&self, message: &[u8]) -> [u8; 64] {
        let _ = message;
        todo_skeleton()
    }
}

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
}

/// Maximum size of a note in bytes.
pub const MAX_NOTE_SIZE: usize = 1 << 20;
/// Maximum number of signature lines.
pub const MAX_SIGNATURES: usize = 100;

impl Note {
    /// Parse a note (text, blank line, signature lines), enforcing size limits.
    ///
    /// # Errors
    /// [`NoteError::Malformed`] or [`NoteError::TooLarge`].
    pub fn parse(bytes: &[u8]) -> Result<Self, NoteError> {
        let _ = bytes;
        todo_skeleton()
    }

    /// Unsigned note from text; the text must end in a newline.
    ///
    /// # Errors
    /// [`NoteError::Malformed`].
    pub fn new(text: &str) -> Result<Self, NoteError> {
        let _ = text;
        todo_skeleton()
    }

    /// Add a signature by `signer` over the text.
    pub fn sign(&mut self, signer: &Signer) {
        let _ = signer;
        todo_skeleton()
    }

    /// Serialise: text, blank line, one `— name base64` line per signature.
    pub fn to_bytes(&self) -> Vec<u8> {
        todo_skeleton()
    }

    /// Verify against trusted keys: unknown signatures are ignored, a failing known one rejects.
    ///
    /// # Errors
    /// [`NoteError::InvalidSignature`] or [`NoteError::NoTrustedSignature`].
    pub fn verify(self, verifiers: &[Verifier]) -> Result<VerifiedNote, NoteError> {
        let _ = verifiers;
        todo_skeleton()
    }
}

/// Parse and verify in one step.
///
/// # Errors
/// See [`Note::parse`] and [`Note::verify`].
pub fn open(bytes: &[u8], verifiers: &[Verifier]) -> Result<VerifiedNote, NoteError> {
    Note::parse(bytes)?.verify(verifiers)
}

#[expect(clippy::panic, reason = "skeleton placeholder, replaced before merge")]
fn todo_skeleton<T>() -> T {
    panic!("skeleton")
}
