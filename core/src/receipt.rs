//! Decision receipts: a COSE_Sign1 (RFC 9052) with EdDSA over a decision statement in
//! deterministic CBOR (RFC 8949 §4.2), and salted commitments. Spec: `spec/receipt.md`.
//!
//! Checker keys use the signed-note key format ([`crate::note::Verifier`]), so a verifier handles
//! one key format; the COSE `kid` is the 4-byte note key id (spec §2).
//!
//! Wire form (spec `receipt.md` §2): `18([h'A2 01 27 04 44 <kid>', {}, <statement>, <sig>])`,
//! i.e. a tagged COSE_Sign1 whose protected header holds exactly `alg: EdDSA (-8)` and `kid`,
//! with an empty unprotected header, an attached payload and empty external AAD.
//!
//! ```
//! use verdict_core::merkle::Hash;
//! use verdict_core::note::Signer;
//! use verdict_core::receipt::*;
//!
//! let checker = Signer::generate("checker.example")?;
//! let salt = Salt::random();
//! let statement = Statement {
//!     version: STATEMENT_VERSION,
//!     checker_key_id: checker.key_id(),
//!     policy_commitment: commit(CommitmentTag::Policy, &salt, b"canonical policy"),
//!     policy_version: "1".into(),
//!     action_commitment: commit(CommitmentTag::Action, &salt, b"canonical action"),
//!     decision: Decision::Allow,
//!     kind: Kind::Check,
//!     fail_closed: false,
//!     violated_rules: vec![],
//!     matched_variables: vec!["amount".into()],
//!     undetermined_variables: vec![],
//!     approvers: vec![],
//!     time_ms: 0,
//!     request_id: "r1".into(),
//!     checker_version: "0.1.0".into(),
//!     solver_version: "z3 4.8.12".into(),
//! };
//! let bytes = Receipt::sign(&statement, &checker)?;
//! let verified = Receipt::verify(&bytes, &[checker.verifier()])?;
//! assert_eq!(verified.statement(), &statement);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::merkle::Hash;
use coset::CoseSign1;
use sha2::{Digest as _, Sha256};

use crate::cbor;
use crate::cose;
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
    /// Screening found the action in the policy's scope (a logged `/v1/screen`, kind
    /// [`Kind::Screen`] only; spec `receipt.md` §3 table 2). Not a decision about the action: a
    /// check must follow.
    InScope,
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
    /// Deterministic CBOR of the statement (RFC 8949 §4.2.1; spec `receipt.md` §3).
    ///
    /// # Errors
    /// [`ReceiptError::Malformed`] if a field exceeds its bound or breaks an ordering rule
    /// (spec `receipt.md` §4), or the version is not [`STATEMENT_VERSION`].
    pub fn to_cbor(&self) -> Result<Vec<u8>, ReceiptError> {
        cbor::encode_statement(self)
    }

    /// Decode a statement, rejecting non-canonical encodings, unknown fields and trailing data.
    ///
    /// # Errors
    /// [`ReceiptError`].
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, ReceiptError> {
        cbor::decode_statement(bytes)
    }
}

impl Decision {
    /// Lowercase name: `allow`, `deny`, `escalate`, `not-applicable`, `in-scope`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Escalate => "escalate",
            Decision::NotApplicable => "not-applicable",
            Decision::InScope => "in-scope",
        }
    }

    /// Whether a receipt of `kind` may carry this decision (spec `receipt.md` §3): a screen
    /// only `not-applicable` or `in-scope`, a check only `allow`, `deny`, `escalate` or
    /// `not-applicable`.
    pub fn admitted_by(&self, kind: Kind) -> bool {
        match kind {
            Kind::Screen => matches!(self, Decision::NotApplicable | Decision::InScope),
            Kind::Check => !matches!(self, Decision::InScope),
        }
    }
}

impl Kind {
    /// Lowercase name: `screen` or `check`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Screen => "screen",
            Kind::Check => "check",
        }
    }
}

fn malformed(reason: impl Into<String>) -> ReceiptError {
    ReceiptError::Malformed {
        reason: reason.into(),
    }
}

/// Decode and check everything but the signature; also return the COSE structure for its
/// to-be-signed bytes.
fn decode_inner(bytes: &[u8]) -> Result<(Receipt, CoseSign1), ReceiptError> {
    let sign1 = cose::parse_sign1(bytes)?;
    let (key_id, payload) = cose::check_envelope(&sign1, None)?;
    let statement = Statement::from_cbor(payload)?;
    let receipt = Receipt {
        statement,
        key_id,
        signature: sign1.signature.clone(),
    };
    if receipt.encode()? != bytes {
        return Err(malformed("receipt is not in deterministic cbor"));
    }
    Ok((receipt, sign1))
}

impl Receipt {
    /// Sign a statement with the checker key; returns the COSE_Sign1 bytes (tagged, 18).
    /// The Sig_structure is RFC 9052 §4.4 with context `Signature1` and empty external AAD.
    ///
    /// # Errors
    /// [`ReceiptError::TooLarge`] or [`ReceiptError::KeyIdMismatch`] (the statement's
    /// `checker_key_id` must be the signer's key id), or [`ReceiptError::Malformed`] from
    /// [`Statement::to_cbor`].
    pub fn sign(statement: &Statement, signer: &Signer) -> Result<Vec<u8>, ReceiptError> {
        if statement.checker_key_id != signer.key_id() {
            return Err(ReceiptError::KeyIdMismatch);
        }
        let sign1 = cose::envelope(statement.checker_key_id, None, statement.to_cbor()?)
            .create_signature(&[], |tbs| signer.sign_raw(tbs).to_vec())
            .build();
        cose::to_tagged_bytes(sign1)
    }

    /// Re-encode a decoded receipt; for a receipt returned by [`Receipt::decode`] this gives
    /// back exactly the bytes it was decoded from.
    ///
    /// # Errors
    /// [`ReceiptError::Malformed`] or [`ReceiptError::TooLarge`].
    pub fn encode(&self) -> Result<Vec<u8>, ReceiptError> {
        let sign1 = cose::envelope(self.key_id, None, self.statement.to_cbor()?)
            .signature(self.signature.clone())
            .build();
        cose::to_tagged_bytes(sign1)
    }

    /// Decode without verifying (for `verdict inspect`). Checks, in order (spec `receipt.md`
    /// §5): size, one CBOR item without trailing data, tag 18, `crit`, algorithm, kid, no other
    /// header parameters, the statement, signature length, canonical bytes.
    ///
    /// # Errors
    /// [`ReceiptError`].
    pub fn decode(bytes: &[u8]) -> Result<Self, ReceiptError> {
        decode_inner(bytes).map(|(receipt, _)| receipt)
    }

    /// Decode and verify with one of the trusted checker keys (spec `receipt.md` §6).
    ///
    /// # Errors
    /// [`ReceiptError`]: [`ReceiptError::UntrustedKey`] when no trusted key has the kid,
    /// [`ReceiptError::KeyIdMismatch`] when the statement names another key,
    /// [`ReceiptError::BadSignature`] when the signature fails.
    pub fn verify(
        bytes: &[u8],
        checker_keys: &[Verifier],
    ) -> Result<VerifiedReceipt, ReceiptError> {
        let (receipt, sign1) = decode_inner(bytes)?;
        cose::verify(
            &sign1,
            receipt.key_id,
            receipt.statement.checker_key_id,
            checker_keys,
        )?;
        Ok(VerifiedReceipt { receipt })
    }
}

impl VerifiedReceipt {
    /// The whole verified receipt.
    pub fn receipt(&self) -> &Receipt {
        &self.receipt
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
    ///
    /// # Panics
    /// Only if the operating system's random source fails.
    pub fn random() -> Self {
        use rand_core::RngCore as _;
        let mut salt = [0u8; 32];
        rand_core::OsRng.fill_bytes(&mut salt);
        Salt(salt)
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
        let mut salt = [0u8; 32];
        hex::decode_to_slice(text, &mut salt)
            .map_err(|_| malformed("salt is not 64 hex digits"))?;
        Ok(Salt(salt))
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

impl CommitmentTag {
    /// The tag's name in the commitment input: `policy`, `action` or `rule`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CommitmentTag::Policy => "policy",
            CommitmentTag::Action => "action",
            CommitmentTag::Rule => "rule",
        }
    }
}

/// Prefix of every commitment input (spec `receipt.md` §7).
pub const COMMITMENT_PREFIX: &[u8] = b"verdict/commit/v1/";

/// Salted commitment (spec `receipt.md` §7):
/// `SHA-256("verdict/commit/v1/" ‖ tag name ‖ 0x00 ‖ salt (32 bytes) ‖ canonical bytes)`.
/// Tag names hold no 0x00 and the salt has a fixed length, so the input splits one way only.
pub fn commit(tag: CommitmentTag, salt: &Salt, canonical: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(COMMITMENT_PREFIX);
    h.update(tag.as_str().as_bytes());
    h.update([0x00]);
    h.update(salt.0);
    h.update(canonical);
    Hash(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::new(
            "checker.example",
            ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
        )
        .unwrap()
    }

    fn statement(key_id: KeyId) -> Statement {
        Statement {
            version: STATEMENT_VERSION,
            checker_key_id: key_id,
            policy_commitment: Hash([1; 32]),
            policy_version: "2026.11".into(),
            action_commitment: Hash([2; 32]),
            decision: Decision::Deny,
            kind: Kind::Check,
            fail_closed: false,
            violated_rules: vec![0, 3],
            matched_variables: vec!["amount".into(), "payee".into()],
            undetermined_variables: vec![],
            approvers: vec![],
            time_ms: 1_795_000_000_000,
            request_id: "req-1".into(),
            checker_version: "0.1.0".into(),
            solver_version: "z3 4.8.12".into(),
        }
    }

    #[test]
    fn sign_decode_verify() {
        let s = signer();
        let st = statement(s.key_id());
        let bytes = Receipt::sign(&st, &s).unwrap();
        let r = Receipt::decode(&bytes).unwrap();
        assert_eq!(r.statement, st);
        assert_eq!(r.encode().unwrap(), bytes);
        let v = Receipt::verify(&bytes, &[s.verifier()]).unwrap();
        assert_eq!(v.statement(), &st);
        assert_eq!(v.key_id(), s.key_id());
    }

    #[test]
    fn key_id_must_match_signer() {
        let s = signer();
        let st = statement(KeyId([0; 4]));
        assert_eq!(Receipt::sign(&st, &s), Err(ReceiptError::KeyIdMismatch));
    }

    #[test]
    fn statement_rules() {
        let mut st = statement(KeyId([0; 4]));
        st.violated_rules = vec![3, 0];
        assert!(st.to_cbor().is_err());
        let mut st = statement(KeyId([0; 4]));
        st.request_id = "x".repeat(65);
        assert!(st.to_cbor().is_err());
        let mut st = statement(KeyId([0; 4]));
        st.version = 2;
        assert!(st.to_cbor().is_err());
    }

    #[test]
    fn commitment_depends_on_every_input() {
        let salt = Salt([0; 32]);
        let a = commit(CommitmentTag::Action, &salt, b"x");
        assert_ne!(a, commit(CommitmentTag::Policy, &salt, b"x"));
        assert_ne!(a, commit(CommitmentTag::Action, &Salt([1; 32]), b"x"));
        assert_ne!(a, commit(CommitmentTag::Action, &salt, b"y"));
        assert_eq!(Salt::from_hex(&salt.to_hex()).unwrap(), salt);
        assert_ne!(Salt::random(), Salt::random());
    }
}
