//! Policy statements: the signed log entry of one policy registration. A COSE_Sign1 (RFC 9052)
//! with EdDSA by the checker key, like a receipt, over a registration record in deterministic
//! CBOR (RFC 8949 §4.2.1). Spec: `spec/policy-statement.md`.
//!
//! Receipts and policy statements share the log. They are told apart by the COSE protected
//! header: a policy statement carries `content type (3): "application/vnd.verdict.policy-statement+cbor"`
//! ([`CONTENT_TYPE`]) beside `alg` and `kid`, a receipt carries no content type (spec
//! `receipt.md` §2 forbids every other header parameter, so [`crate::receipt::Receipt::decode`]
//! rejects a statement and [`PolicyStatement::decode`] rejects a receipt). Use [`entry_type`] to
//! classify an entry of an entry bundle.
//!
//! Wire form (spec `policy-statement.md` §2):
//! `18([h'A3 01 27 03 78 2D <content type> 04 44 <kid>', {}, <record>, <sig>])`.
//!
//! ```
//! use verdict_core::merkle::Hash;
//! use verdict_core::note::Signer;
//! use verdict_core::statement::*;
//!
//! let checker = Signer::generate("checker.example")?;
//! let record = PolicyRecord {
//!     version: RECORD_VERSION,
//!     checker_key_id: checker.key_id(),
//!     name: "payments".into(),
//!     policy_version: "1.0.0".into(),
//!     policy_commitment: Hash([1; 32]),
//!     rule_tree_root: Hash([2; 32]),
//!     predecessor: None,
//!     time_ms: 1_795_000_000_000,
//!     registered_by: "admin".into(),
//!     analysis: AnalysisSummary::default(),
//! };
//! let bytes = PolicyStatement::sign(&record, &checker)?;
//! assert_eq!(entry_type(&bytes), EntryType::PolicyStatement);
//! let verified = PolicyStatement::verify(&bytes, &[checker.verifier()])?;
//! assert_eq!(verified.record(), &record);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use ciborium::value::{Integer, Value};
use coset::CoseSign1;

use crate::cbor;
use crate::cose;
use crate::merkle::Hash;
use crate::note::{KeyId, Signer, Verifier};
use crate::receipt::{ReceiptError, MAX_RECEIPT_SIZE};

/// COSE content type (header label 3) of a policy statement (spec `policy-statement.md` §2).
pub const CONTENT_TYPE: &str = "application/vnd.verdict.policy-statement+cbor";

/// Current record version.
pub const RECORD_VERSION: u8 = 1;

/// Longest policy name, version, registrant name and finding, in bytes (spec §4).
pub const MAX_TEXT: usize = 256;

/// Most findings recorded in one statement (spec §4).
pub const MAX_FINDINGS: usize = 64;

/// The kind of a log entry, from its COSE protected header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryType {
    /// A decision receipt (no content type).
    Receipt,
    /// A policy statement ([`CONTENT_TYPE`]).
    PolicyStatement,
    /// Neither: not a tagged COSE_Sign1, or another content type.
    Unknown,
}

/// Summary of the checker's analysis of the registered policy (spec §3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnalysisSummary {
    /// Number of error-level findings (for example contradictions).
    pub errors: u32,
    /// Number of warning-level findings.
    pub warnings: u32,
    /// True when the admin registered the policy despite error-level findings (`force=true`).
    pub forced: bool,
    /// The findings, one line each (`<severity> <kind>: <message>`), at most [`MAX_FINDINGS`].
    pub findings: Vec<String>,
}

/// The signed content of a policy statement: one registration (spec §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRecord {
    /// Record version ([`RECORD_VERSION`]).
    pub version: u8,
    /// Key id of the checker key that signs the statement.
    pub checker_key_id: KeyId,
    /// Policy name.
    pub name: String,
    /// Policy version (semantic version).
    pub policy_version: String,
    /// Salted policy commitment, as receipts carry it.
    pub policy_commitment: Hash,
    /// Root of the policy's rule-commitment tree.
    pub rule_tree_root: Hash,
    /// Commitment of the previous version of this name, or none for the first.
    pub predecessor: Option<Hash>,
    /// Registration time, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Name of the admin token that registered it (or `policies-dir` for start-up registration).
    pub registered_by: String,
    /// The analysis summary.
    pub analysis: AnalysisSummary,
}

/// A decoded, *unverified* policy statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyStatement {
    /// The record.
    pub record: PolicyRecord,
    /// COSE `kid`.
    pub key_id: KeyId,
    /// Ed25519 signature.
    pub signature: Vec<u8>,
}

/// A policy statement whose signature verified with a trusted checker key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedPolicyStatement {
    statement: PolicyStatement,
}

impl VerifiedPolicyStatement {
    /// The verified record.
    pub fn record(&self) -> &PolicyRecord {
        &self.statement.record
    }
}

/// Map keys of the record (spec §3, table 1).
mod key {
    pub const VERSION: u64 = 0;
    pub const CHECKER_KEY_ID: u64 = 1;
    pub const NAME: u64 = 2;
    pub const POLICY_VERSION: u64 = 3;
    pub const POLICY_COMMITMENT: u64 = 4;
    pub const RULE_TREE_ROOT: u64 = 5;
    pub const PREDECESSOR: u64 = 6;
    pub const TIME_MS: u64 = 7;
    pub const REGISTERED_BY: u64 = 8;
    pub const ERRORS: u64 = 9;
    pub const WARNINGS: u64 = 10;
    pub const FORCED: u64 = 11;
    pub const FINDINGS: u64 = 12;
    pub const COUNT: usize = 13;
}

fn malformed(reason: impl Into<String>) -> ReceiptError {
    ReceiptError::Malformed {
        reason: reason.into(),
    }
}

fn uint(v: u64) -> Value {
    Value::Integer(Integer::from(v))
}

/// Field bounds of spec §4, checked on encode and decode.
fn validate(r: &PolicyRecord) -> Result<(), ReceiptError> {
    if r.version != RECORD_VERSION {
        return Err(malformed(format!(
            "unsupported policy record version {}",
            r.version
        )));
    }
    for (name, text) in [
        ("policy name", &r.name),
        ("policy version", &r.policy_version),
        ("registrant", &r.registered_by),
    ] {
        if text.is_empty() || text.len() > MAX_TEXT {
            return Err(malformed(format!("{name} must be 1 to {MAX_TEXT} bytes")));
        }
    }
    if r.analysis.findings.len() > MAX_FINDINGS {
        return Err(malformed(format!("more than {MAX_FINDINGS} findings")));
    }
    if r.analysis.findings.iter().any(|f| f.len() > MAX_TEXT) {
        return Err(malformed(format!(
            "a finding is longer than {MAX_TEXT} bytes"
        )));
    }
    if r.analysis.forced && r.analysis.errors == 0 {
        return Err(malformed("forced without error-level findings"));
    }
    Ok(())
}

impl PolicyRecord {
    /// Deterministic CBOR of the record (spec §3).
    ///
    /// # Errors
    /// [`ReceiptError::Malformed`] when a field breaks a bound of spec §4.
    pub fn to_cbor(&self) -> Result<Vec<u8>, ReceiptError> {
        validate(self)?;
        let a = &self.analysis;
        let entries = [
            (key::VERSION, uint(u64::from(self.version))),
            (
                key::CHECKER_KEY_ID,
                Value::Bytes(self.checker_key_id.0.to_vec()),
            ),
            (key::NAME, Value::Text(self.name.clone())),
            (
                key::POLICY_VERSION,
                Value::Text(self.policy_version.clone()),
            ),
            (
                key::POLICY_COMMITMENT,
                Value::Bytes(self.policy_commitment.0.to_vec()),
            ),
            (
                key::RULE_TREE_ROOT,
                Value::Bytes(self.rule_tree_root.0.to_vec()),
            ),
            (
                key::PREDECESSOR,
                self.predecessor
                    .map_or(Value::Null, |h| Value::Bytes(h.0.to_vec())),
            ),
            (key::TIME_MS, uint(self.time_ms)),
            (key::REGISTERED_BY, Value::Text(self.registered_by.clone())),
            (key::ERRORS, uint(u64::from(a.errors))),
            (key::WARNINGS, uint(u64::from(a.warnings))),
            (key::FORCED, Value::Bool(a.forced)),
            (
                key::FINDINGS,
                Value::Array(a.findings.iter().cloned().map(Value::Text).collect()),
            ),
        ];
        let map = Value::Map(entries.into_iter().map(|(k, v)| (uint(k), v)).collect());
        let mut out = Vec::new();
        ciborium::ser::into_writer(&map, &mut out)
            .map_err(|e| malformed(format!("cbor encoding failed: {e}")))?;
        if out.len() > MAX_RECEIPT_SIZE {
            return Err(ReceiptError::TooLarge { len: out.len() });
        }
        Ok(out)
    }

    /// Decode a record, rejecting unknown keys, wrong types, broken bounds, non-canonical
    /// encodings and trailing data.
    ///
    /// # Errors
    /// [`ReceiptError`].
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, ReceiptError> {
        if bytes.len() > MAX_RECEIPT_SIZE {
            return Err(ReceiptError::TooLarge { len: bytes.len() });
        }
        let Value::Map(entries) = cbor::read_one(bytes)? else {
            return Err(malformed("policy record is not a map"));
        };
        let mut fields: [Option<Value>; key::COUNT] = Default::default();
        for (k, v) in entries {
            let k = match k {
                Value::Integer(i) => u64::try_from(i).ok(),
                _ => None,
            };
            let slot = k
                .and_then(|k| usize::try_from(k).ok())
                .and_then(|i| fields.get_mut(i))
                .ok_or_else(|| ReceiptError::UnknownCritical {
                    field: format!("policy record key {k:?}"),
                })?;
            if slot.replace(v).is_some() {
                return Err(malformed("duplicate policy record key"));
            }
        }
        let mut take = |k: u64| {
            usize::try_from(k)
                .ok()
                .and_then(|i| fields.get_mut(i))
                .and_then(Option::take)
                .ok_or_else(|| malformed(format!("missing policy record key {k}")))
        };
        let bad = |k: u64, what: &str| malformed(format!("policy record key {k} is not {what}"));
        let as_uint = |k: u64, v: Value| match v {
            Value::Integer(i) => u64::try_from(i).map_err(|_| bad(k, "an unsigned integer")),
            _ => Err(bad(k, "an unsigned integer")),
        };
        let as_text = |k: u64, v: Value| match v {
            Value::Text(t) => Ok(t),
            _ => Err(bad(k, "a text string")),
        };
        let as_hash = |k: u64, v: Value| match v {
            Value::Bytes(b) => <[u8; 32]>::try_from(b.as_slice())
                .map(Hash)
                .map_err(|_| bad(k, "32 bytes")),
            _ => Err(bad(k, "32 bytes")),
        };
        let as_u32 = |k: u64, v: Value| {
            as_uint(k, v).and_then(|n| u32::try_from(n).map_err(|_| bad(k, "a u32")))
        };
        let record = PolicyRecord {
            version: u8::try_from(as_uint(key::VERSION, take(key::VERSION)?)?)
                .map_err(|_| malformed("policy record version out of range"))?,
            checker_key_id: match take(key::CHECKER_KEY_ID)? {
                Value::Bytes(b) => <[u8; 4]>::try_from(b.as_slice())
                    .map(KeyId)
                    .map_err(|_| bad(key::CHECKER_KEY_ID, "4 bytes"))?,
                _ => return Err(bad(key::CHECKER_KEY_ID, "4 bytes")),
            },
            name: as_text(key::NAME, take(key::NAME)?)?,
            policy_version: as_text(key::POLICY_VERSION, take(key::POLICY_VERSION)?)?,
            policy_commitment: as_hash(key::POLICY_COMMITMENT, take(key::POLICY_COMMITMENT)?)?,
            rule_tree_root: as_hash(key::RULE_TREE_ROOT, take(key::RULE_TREE_ROOT)?)?,
            predecessor: match take(key::PREDECESSOR)? {
                Value::Null => None,
                v => Some(as_hash(key::PREDECESSOR, v)?),
            },
            time_ms: as_uint(key::TIME_MS, take(key::TIME_MS)?)?,
            registered_by: as_text(key::REGISTERED_BY, take(key::REGISTERED_BY)?)?,
            analysis: AnalysisSummary {
                errors: as_u32(key::ERRORS, take(key::ERRORS)?)?,
                warnings: as_u32(key::WARNINGS, take(key::WARNINGS)?)?,
                forced: match take(key::FORCED)? {
                    Value::Bool(b) => b,
                    _ => return Err(bad(key::FORCED, "a bool")),
                },
                findings: match take(key::FINDINGS)? {
                    Value::Array(items) => items
                        .into_iter()
                        .map(|v| as_text(key::FINDINGS, v))
                        .collect::<Result<_, _>>()?,
                    _ => return Err(bad(key::FINDINGS, "an array")),
                },
            },
        };
        if record.to_cbor()? != bytes {
            return Err(malformed("policy record is not in deterministic cbor"));
        }
        Ok(record)
    }
}

/// Classify a log entry by its COSE protected header (spec `policy-statement.md` §2). Only the
/// header is looked at; decode the entry to check the rest.
pub fn entry_type(bytes: &[u8]) -> EntryType {
    let Ok(sign1) = cose::parse_sign1(bytes) else {
        return EntryType::Unknown;
    };
    match &sign1.protected.header.content_type {
        None => EntryType::Receipt,
        Some(coset::ContentType::Text(t)) if t == CONTENT_TYPE => EntryType::PolicyStatement,
        Some(_) => EntryType::Unknown,
    }
}

fn decode_inner(bytes: &[u8]) -> Result<(PolicyStatement, CoseSign1), ReceiptError> {
    let sign1 = cose::parse_sign1(bytes)?;
    let (key_id, payload) = cose::check_envelope(&sign1, Some(CONTENT_TYPE))?;
    let record = PolicyRecord::from_cbor(payload)?;
    let statement = PolicyStatement {
        record,
        key_id,
        signature: sign1.signature.clone(),
    };
    if statement.encode()? != bytes {
        return Err(malformed("policy statement is not in deterministic cbor"));
    }
    Ok((statement, sign1))
}

impl PolicyStatement {
    /// Sign a record with the checker key; returns the tagged COSE_Sign1 bytes.
    ///
    /// # Errors
    /// [`ReceiptError::KeyIdMismatch`] when the record names another key; errors of
    /// [`PolicyRecord::to_cbor`]; [`ReceiptError::TooLarge`].
    pub fn sign(record: &PolicyRecord, signer: &Signer) -> Result<Vec<u8>, ReceiptError> {
        if record.checker_key_id != signer.key_id() {
            return Err(ReceiptError::KeyIdMismatch);
        }
        let sign1 = cose::envelope(record.checker_key_id, Some(CONTENT_TYPE), record.to_cbor()?)
            .create_signature(&[], |tbs| signer.sign_raw(tbs).to_vec())
            .build();
        cose::to_tagged_bytes(sign1)
    }

    /// Re-encode; gives back exactly the bytes a statement was decoded from.
    ///
    /// # Errors
    /// As [`PolicyRecord::to_cbor`].
    pub fn encode(&self) -> Result<Vec<u8>, ReceiptError> {
        let sign1 = cose::envelope(self.key_id, Some(CONTENT_TYPE), self.record.to_cbor()?)
            .signature(self.signature.clone())
            .build();
        cose::to_tagged_bytes(sign1)
    }

    /// Decode without verifying. Checks (spec §5): size, one CBOR item without trailing data,
    /// tag 18, no `crit`, EdDSA, the content type, a 4-byte kid, no other header parameter, the
    /// record, the signature length, canonical bytes.
    ///
    /// # Errors
    /// [`ReceiptError`].
    pub fn decode(bytes: &[u8]) -> Result<Self, ReceiptError> {
        decode_inner(bytes).map(|(s, _)| s)
    }

    /// Decode and verify with one of the trusted checker keys (spec §6).
    ///
    /// # Errors
    /// [`ReceiptError::UntrustedKey`], [`ReceiptError::KeyIdMismatch`],
    /// [`ReceiptError::BadSignature`], or a decoding error.
    pub fn verify(
        bytes: &[u8],
        checker_keys: &[Verifier],
    ) -> Result<VerifiedPolicyStatement, ReceiptError> {
        let (statement, sign1) = decode_inner(bytes)?;
        cose::verify(
            &sign1,
            statement.key_id,
            statement.record.checker_key_id,
            checker_keys,
        )?;
        Ok(VerifiedPolicyStatement { statement })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipt::Receipt;

    fn signer() -> Signer {
        Signer::new(
            "checker.example",
            ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
        )
        .unwrap()
    }

    fn record(key_id: KeyId) -> PolicyRecord {
        PolicyRecord {
            version: RECORD_VERSION,
            checker_key_id: key_id,
            name: "customer-data-egress".into(),
            policy_version: "1.1.0".into(),
            policy_commitment: Hash([1; 32]),
            rule_tree_root: Hash([2; 32]),
            predecessor: Some(Hash([3; 32])),
            time_ms: 1_795_000_000_000,
            registered_by: "admin".into(),
            analysis: AnalysisSummary {
                errors: 1,
                warnings: 0,
                forced: true,
                findings: vec!["error contradiction: rules a and b never both hold".into()],
            },
        }
    }

    #[test]
    fn sign_decode_verify_and_classify() {
        let s = signer();
        let r = record(s.key_id());
        let bytes = PolicyStatement::sign(&r, &s).unwrap();
        let decoded = PolicyStatement::decode(&bytes).unwrap();
        assert_eq!(decoded.record, r);
        assert_eq!(decoded.encode().unwrap(), bytes);
        assert_eq!(
            PolicyStatement::verify(&bytes, &[s.verifier()])
                .unwrap()
                .record(),
            &r
        );
        assert_eq!(entry_type(&bytes), EntryType::PolicyStatement);
        // A statement is never a receipt.
        assert!(Receipt::decode(&bytes).is_err());
        assert_eq!(entry_type(b"not cbor"), EntryType::Unknown);
        let mut none = r.clone();
        none.predecessor = None;
        none.analysis = AnalysisSummary::default();
        let bytes = PolicyStatement::sign(&none, &s).unwrap();
        assert_eq!(PolicyStatement::decode(&bytes).unwrap().record, none);
    }

    #[test]
    fn tampering_and_bounds_are_rejected() {
        let s = signer();
        let bytes = PolicyStatement::sign(&record(s.key_id()), &s).unwrap();
        let mut flipped = bytes.clone();
        let last = flipped.len() - 70;
        flipped[last] ^= 1;
        assert!(PolicyStatement::verify(&flipped, &[s.verifier()]).is_err());
        let other = Signer::generate("other").unwrap();
        assert!(matches!(
            PolicyStatement::verify(&bytes, &[other.verifier()]),
            Err(ReceiptError::UntrustedKey { .. })
        ));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(PolicyStatement::decode(&trailing).is_err());
        let mut r = record(s.key_id());
        r.analysis.forced = true;
        r.analysis.errors = 0;
        assert!(r.to_cbor().is_err());
        let mut r = record(s.key_id());
        r.name = String::new();
        assert!(r.to_cbor().is_err());
        let mut r = record(s.key_id());
        r.analysis.findings = vec!["x".into(); MAX_FINDINGS + 1];
        assert!(r.to_cbor().is_err());
        assert_eq!(
            PolicyStatement::sign(&record(KeyId([0; 4])), &s),
            Err(ReceiptError::KeyIdMismatch)
        );
    }
}
