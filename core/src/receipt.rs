//! Decision receipts: a COSE_Sign1 (RFC 9052) with EdDSA over a decision statement in
//! deterministic CBOR (RFC 8949 §4.2), and salted commitments. Spec: `spec/receipt.md`.
//!
//! Checker keys use the signed-note key format ([`crate::note::Verifier`]), so a verifier handles
//! one key format; the COSE `kid` is the 4-byte note key id.
//!
//! SKELETON: signatures are the contract; bodies are being filled in.

use crate::merkle::Hash;
use crate::note::{KeyId, Signer, Verifier};

/// Maximum size of an encoded receipt: it must fit one entry of a tile bundle.
pub const MAX_RECEIPT_SIZE: usize = 65_535;

/// Current statement version.
pub const STATEMENT_VERSION: u8 = 1;

/// A decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Decision {
    /// Every completion of the action satisfies every rule.
    Allow,
    /// No completion satisfies the rules (or the check failed closed).
    Deny,
    /// The outcome depends on unbound variables, or only escalate-effect rules are violated.
    Escalate,
    /// Screening found the action out of the policy's scope.
    NotApplicable,
}

/// What produced the decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A screen (relevance check) only.
    Screen,
    /// A full check.
    Check,
}

/// The signed statement of one decision. Holds commitments, never action data or policy text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// Statement version ([`STATEMENT_VERSION`]).
    pub version: u8,
    /// Key id of the checker key that signs the receipt.
    pub checker_key_id: KeyId,
    /// Salted commitment to the canonical policy.
    pub policy_commitment: Hash,
    /// Policy version string from the policy file.
    pub policy_version: String,
    /// Salted commitment to the canonical action.
    pub action_commitment: Hash,
    /// The decision.
    pub decision: Decision,
    /// Screen or check.
    pub kind: Kind,
    /// True when the decision is a fail-closed deny (solver timeout or unknown).
    pub fail_closed: bool,
    /// Indices (in policy order) of violated rules, ascending.
    pub violated_rules: Vec<u32>,
    /// Policy variable names the action mentions, sorted.
    pub matched_variables: Vec<String>,
    /// For escalate: unbound variables that decide the outcome, sorted.
    pub undetermined_variables: Vec<String>,
    /// Key ids of approvers whose approvals were verified, sorted.
    pub approvers: Vec<KeyId>,
    /// Decision time, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Request id chosen by the caller or server (at most 64 bytes).
    pub request_id: String,
    /// Checker software version.
    pub checker_version: String,
    /// Solver name and version, e.g. `z3 4.8.12`.
    pub solver_version: String,
}

/// Errors of receipts and commitments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// Over [`MAX_RECEIPT_SIZE`].
    #[error("receipt of {len} bytes exceeds {MAX_RECEIPT_SIZE}")]
    TooLarge {
        /// Encoded length.
        len: usize,
    },
    /// Not a well-formed COSE_Sign1 or statement.
    #[error("malformed receipt: {reason}")]
    Malformed {
        /// What was wrong.
        reason: String,
    },
    /// Bytes after the COSE structure.
    #[error("trailing data after receipt")]
    TrailingData,
    /// A critical field or header that this version does not understand.
    #[error("unknown critical field {field}")]
    UnknownCritical {
        /// The field key or label.
        field: String,
    },
    /// Not an EdDSA signature.
    #[error("unsupported algorithm")]
    UnsupportedAlgorithm,
    /// The kid is not one of the trusted checker keys.
    #[error("receipt signed by untrusted key {key_id}")]
    UntrustedKey {
        /// The kid in the receipt.
        key_id: KeyId,
    },
    /// The signature did not verify.
    #[error("invalid receipt signature by {key_id}")]
    BadSignature {
        /// The kid in the receipt.
        key_id: KeyId,
    },
    /// The statement's checker key id differs from the COSE kid.
    #[error("statement key id does not match the signing key")]
    KeyIdMismatch,
}

/// A decoded, *unverified* receipt: the statement and the signature bytes, plus the original
/// encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The statement.
    pub statement: Statement,
    /// COSE `kid`.
    pub key_id: KeyId,
    /// Ed25519 signature.
    pub signature: Vec<u8>,
}

/// A receipt whose signature verified with a trusted checker key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedReceipt {
    receipt: Receipt,
}

impl VerifiedReceipt {
    /// The verified statement.
    pub fn statement(&self) -> &Statement {
        &self.receipt.statement
    }
    /// The key id that signed it.
    pub fn key_id(&self) -> KeyId {
        self.receipt.key_id
    }
}

impl Statement {
    /// Deterministic CBOR of the statement (RFC 8949 §4.2.1).
    ///
    /// # Errors
    /// [`ReceiptError::Malformed`] if a field exceeds its bound.
    pub fn to_cbor(&self) -> Result<Vec<u8>, ReceiptError> {
        todo_skeleton()
    }

    /// Decode a statement, rejecting non-canonical encodings, unknown fields and trailing data.
    ///
    /// # Errors
    /// [`ReceiptError`].
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, ReceiptError> {
        let _ = bytes;
        todo_skeleton()
    }
}

impl Receipt {
    /// Sign a statement with the checker key; returns the COSE_Sign1 bytes (tagged, 18).
    ///
    /// # Errors
    /// [`ReceiptError::TooLarge`] or [`ReceiptError::KeyIdMismatch`].
    pub fn sign(statement: &Statement, signer: &Signer) -> Result<Vec<u8>, ReceiptError> {
        let _ = (statement, signer);
        todo_skeleton()
    }

    /// Decode without verifying (for `verdict inspect`).
    ///
    /// # Errors
    /// [`ReceiptError`].
    pub fn decode(bytes: &[u8]) -> Result<Self, ReceiptError> {
        let _ = bytes;
        todo_skeleton()
    }

    /// Decode and verify with one of the trusted checker keys.
    ///
    /// # Errors
    /// [`ReceiptError`].
    pub fn verify(
        bytes: &[u8],
        checker_keys: &[Verifier],
    ) -> Result<VerifiedReceipt, ReceiptError> {
        let _ = (bytes, checker_keys);
        todo_skeleton()
    }
}

/// A 32-byte commitment salt.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Salt(pub [u8; 32]);

impl std::fmt::Debug for Salt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Salt(..)")
    }
}

impl Salt {
    /// A fresh salt from the OS random source.
    pub fn random() -> Self {
        todo_skeleton()
    }
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    /// Parse 64 hex digits.
    ///
    /// # Errors
    /// [`ReceiptError::Malformed`].
    pub fn from_hex(text: &str) -> Result<Self, ReceiptError> {
        let _ = text;
        todo_skeleton()
    }
}

/// Domain-separation tags of commitments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitmentTag {
    /// A canonical policy.
    Policy,
    /// A canonical action.
    Action,
    /// One rule leaf of the rule-commitment tree.
    Rule,
}

/// Salted commitment: SHA-256(tag ‖ salt ‖ canonical bytes), with the tag encoding of
/// `spec/receipt.md`.
pub fn commit(tag: CommitmentTag, salt: &Salt, canonical: &[u8]) -> Hash {
    let _ = (tag, salt, canonical);
    todo_skeleton()
}

#[expect(clippy::panic, reason = "skeleton placeholder, replaced before merge")]
fn todo_skeleton<T>() -> T {
    panic!("skeleton")
}
