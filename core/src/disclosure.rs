//! Selective rule disclosure (spec `spec/disclosure.md`): one rule of a registered policy,
//! opened for one decision that violated it, without the rest of the policy.
//!
//! A disclosure carries the decision's receipt and the policy statement (both COSE_Sign1 log
//! entries, signed by the checker key) and the opening of rule `i`: its canonical text, its
//! salt and the sibling path of its leaf `commit("rule", salt, text)` in the rule-commitment
//! tree (spec `receipt.md` §7, checker `compile.rs`). [`Disclosure::verify`] checks offline
//! (spec §4) that the statement and receipt are signed by a trusted checker key, that they name
//! the same policy commitment, that the receipt lists rule `i` as violated, and that the opening
//! leads to the statement's `rule_tree_root`. Version 2 documents also carry the statement's
//! proof of inclusion in the log (`statement_proof`, a C2SP tlog-proof), which
//! [`Disclosure::verify_logged`] checks with the log key, so a statement that was signed but never
//! logged (a fabricated rule tree under the same policy commitment) is refused.

use serde_json::Value;

use crate::bundle::ProofBundle;
use crate::merkle::Hash;
use crate::note::Verifier;
use crate::receipt::{commit, CommitmentTag, Receipt, ReceiptError, Salt, Statement};
use crate::statement::{PolicyRecord, PolicyStatement};

/// The format version this module writes (spec §2 `version`): 2, with `statement_proof`.
/// Version 1 (without it) is still read, but [`Disclosure::verify_logged`] refuses it.
pub const DISCLOSURE_VERSION: u64 = 2;

/// Largest disclosure file accepted (spec §2): 1 MiB.
pub const MAX_DISCLOSURE_BYTES: usize = 1 << 20;

/// Most sibling hashes in a rule path: a rule tree has at most 2^32 leaves (spec §3).
pub const MAX_PATH: usize = 32;

/// The opening of one rule leaf (spec §2 `rule`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleOpening {
    /// Rule index, in policy order (the index receipts list in `violated_rules`).
    pub index: u32,
    /// Number of rules in the policy (leaves of the rule tree).
    pub count: u32,
    /// The canonical rule text (compact JSON), exactly the bytes committed.
    pub text: String,
    /// The rule's salt.
    pub salt: Salt,
    /// Sibling hashes from the leaf up (spec §3).
    pub path: Vec<Hash>,
}

impl RuleOpening {
    /// The leaf `commit("rule", salt, text)` (spec `receipt.md` §7).
    pub fn leaf(&self) -> Hash {
        commit(CommitmentTag::Rule, &self.salt, self.text.as_bytes())
    }

    /// The rule-tree root the opening leads to (spec §3), or `None` when the index, count and
    /// path length do not fit together.
    pub fn root(&self) -> Option<Hash> {
        if self.index >= self.count {
            return None;
        }
        let mut node = self.leaf();
        let mut index = u64::from(self.index);
        let mut count = u64::from(self.count);
        let mut path = self.path.iter();
        while count > 1 {
            if index % 2 == 1 {
                node = pair(path.next()?, &node);
            } else if index + 1 < count {
                node = pair(&node, path.next()?);
            }
            // else: the last node of an odd level moves up unchanged.
            index /= 2;
            count = count.div_ceil(2);
        }
        if path.next().is_some() {
            return None;
        }
        Some(node)
    }
}

/// Inner node of the rule tree: `SHA-256(left ‖ right)` (spec §3).
fn pair(left: &Hash, right: &Hash) -> Hash {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// A decoded, *unverified* disclosure (spec §2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disclosure {
    /// Log index of the decision's receipt.
    pub decision_index: u64,
    /// The receipt (COSE_Sign1 bytes, the log entry at `decision_index`).
    pub receipt: Vec<u8>,
    /// Log index of the policy statement.
    pub statement_index: u64,
    /// The policy statement (COSE_Sign1 bytes, the log entry at `statement_index`).
    pub statement: Vec<u8>,
    /// Version 2: the C2SP tlog-proof of the statement entry (its text bytes); `None` in a
    /// version 1 document.
    pub statement_proof: Option<Vec<u8>>,
    /// The opened rule.
    pub rule: RuleOpening,
}

/// Why a disclosure does not verify (spec §4; each has its own check name).
#[derive(Debug, thiserror::Error)]
pub enum DisclosureError {
    /// Not a disclosure document (spec §2).
    #[error("malformed disclosure: {0}")]
    Malformed(String),
    /// The policy statement does not verify with a trusted checker key.
    #[error("policy statement: {0}")]
    Statement(ReceiptError),
    /// The receipt does not verify with a trusted checker key.
    #[error("receipt: {0}")]
    Receipt(ReceiptError),
    /// The statement was not logged before the decision.
    #[error("the policy statement (index {statement}) is not earlier in the log than the decision (index {decision})")]
    Order {
        /// Statement index.
        statement: u64,
        /// Decision index.
        decision: u64,
    },
    /// The receipt was made under another policy.
    #[error("the receipt's policy commitment {receipt} is not the statement's {statement}")]
    PolicyMismatch {
        /// The receipt's commitment (hex).
        receipt: String,
        /// The statement's commitment (hex).
        statement: String,
    },
    /// The receipt does not list the rule as violated.
    #[error("rule {0} is not among the receipt's violated rules")]
    NotViolated(u32),
    /// The rule opening does not lead to the statement's rule-tree root.
    #[error("the rule text, salt and path do not lead to the statement's rule_tree_root")]
    RuleMismatch,
    /// The statement's inclusion in the log is not proven (no proof, a proof that does not
    /// verify with the log key, or one of another entry or index).
    #[error("the policy statement's inclusion in the log is not proven: {0}")]
    StatementInclusion(String),
}

impl DisclosureError {
    /// Short check name, for CLI output (spec §4).
    pub fn check(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "format",
            Self::Statement(_) => "statement-signature",
            Self::Receipt(_) => "receipt-signature",
            Self::Order { .. } => "order",
            Self::PolicyMismatch { .. } => "policy-commitment",
            Self::NotViolated(_) => "violated",
            Self::RuleMismatch => "rule-opening",
            Self::StatementInclusion(_) => "statement-inclusion",
        }
    }
}

/// A disclosure whose every check passed.
#[derive(Clone, Debug)]
pub struct VerifiedDisclosure {
    /// The disclosure.
    pub disclosure: Disclosure,
    /// The verified policy record.
    pub policy: PolicyRecord,
    /// The verified receipt statement.
    pub decision: Statement,
}

fn malformed(what: impl Into<String>) -> DisclosureError {
    DisclosureError::Malformed(what.into())
}

fn field<'a>(
    obj: &'a serde_json::Map<String, Value>,
    name: &str,
) -> Result<&'a Value, DisclosureError> {
    obj.get(name)
        .ok_or_else(|| malformed(format!("missing field {name}")))
}

fn exact_keys(obj: &serde_json::Map<String, Value>, keys: &[&str]) -> Result<(), DisclosureError> {
    if let Some(k) = obj.keys().find(|k| !keys.contains(&k.as_str())) {
        return Err(malformed(format!("unknown field {k}")));
    }
    Ok(())
}

fn u64_field(obj: &serde_json::Map<String, Value>, name: &str) -> Result<u64, DisclosureError> {
    field(obj, name)?
        .as_u64()
        .ok_or_else(|| malformed(format!("{name} must be a non-negative integer")))
}

fn u32_field(obj: &serde_json::Map<String, Value>, name: &str) -> Result<u32, DisclosureError> {
    u32::try_from(u64_field(obj, name)?).map_err(|_| malformed(format!("{name} is too large")))
}

fn str_field<'a>(
    obj: &'a serde_json::Map<String, Value>,
    name: &str,
) -> Result<&'a str, DisclosureError> {
    field(obj, name)?
        .as_str()
        .ok_or_else(|| malformed(format!("{name} must be a string")))
}

fn b64_field(obj: &serde_json::Map<String, Value>, name: &str) -> Result<Vec<u8>, DisclosureError> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(str_field(obj, name)?)
        .map_err(|_| malformed(format!("{name} must be standard base64")))
}

fn hex32(text: &str, name: &str) -> Result<[u8; 32], DisclosureError> {
    let bad = || malformed(format!("{name} must be 64 lowercase hex digits"));
    if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(bad());
    }
    let bytes = hex::decode(text).map_err(|_| bad())?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| bad())
}

impl Disclosure {
    /// Parse the JSON document of spec §2. Unknown fields, wrong types, non-lowercase hex and a
    /// path longer than [`MAX_PATH`] are refused.
    ///
    /// # Errors
    /// [`DisclosureError::Malformed`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, DisclosureError> {
        if bytes.len() > MAX_DISCLOSURE_BYTES {
            return Err(malformed("larger than 1 MiB"));
        }
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| malformed(format!("not JSON: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| malformed("not a JSON object"))?;
        let version = u64_field(obj, "version")?;
        let keys: &[&str] = match version {
            1 => &[
                "version",
                "decision_index",
                "receipt",
                "statement_index",
                "statement",
                "rule",
            ],
            DISCLOSURE_VERSION => &[
                "version",
                "decision_index",
                "receipt",
                "statement_index",
                "statement",
                "statement_proof",
                "rule",
            ],
            _ => return Err(malformed("unsupported version")),
        };
        exact_keys(obj, keys)?;
        let statement_proof = if version == DISCLOSURE_VERSION {
            Some(str_field(obj, "statement_proof")?.as_bytes().to_vec())
        } else {
            None
        };
        let rule = field(obj, "rule")?
            .as_object()
            .ok_or_else(|| malformed("rule must be an object"))?;
        exact_keys(rule, &["index", "count", "text", "salt", "path"])?;
        let path = field(rule, "path")?
            .as_array()
            .ok_or_else(|| malformed("path must be an array"))?;
        if path.len() > MAX_PATH {
            return Err(malformed("path is too long"));
        }
        let path = path
            .iter()
            .map(|h| {
                h.as_str()
                    .ok_or_else(|| malformed("path holds strings"))
                    .and_then(|t| hex32(t, "path hash"))
                    .map(Hash)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            decision_index: u64_field(obj, "decision_index")?,
            receipt: b64_field(obj, "receipt")?,
            statement_index: u64_field(obj, "statement_index")?,
            statement: b64_field(obj, "statement")?,
            statement_proof,
            rule: RuleOpening {
                index: u32_field(rule, "index")?,
                count: u32_field(rule, "count")?,
                text: str_field(rule, "text")?.to_owned(),
                salt: Salt(hex32(str_field(rule, "salt")?, "salt")?),
                path,
            },
        })
    }

    /// The JSON document of spec §2 (a `serde_json::Value`; its key order does not matter):
    /// version 2 with `statement_proof` when there is one, else version 1.
    pub fn to_json(&self) -> Value {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut doc = serde_json::json!({
            "version": 1,
            "decision_index": self.decision_index,
            "receipt": b64.encode(&self.receipt),
            "statement_index": self.statement_index,
            "statement": b64.encode(&self.statement),
            "rule": {
                "index": self.rule.index,
                "count": self.rule.count,
                "text": self.rule.text,
                "salt": self.rule.salt.to_hex(),
                "path": self.rule.path.iter().map(Hash::to_hex).collect::<Vec<_>>(),
            },
        });
        if let (Some(proof), Some(obj)) = (&self.statement_proof, doc.as_object_mut()) {
            obj.insert("version".to_owned(), Value::from(DISCLOSURE_VERSION));
            obj.insert(
                "statement_proof".to_owned(),
                Value::from(String::from_utf8_lossy(proof).into_owned()),
            );
        }
        doc
    }

    /// [`Disclosure::verify`], then check `statement-inclusion` (spec §4): the document carries a
    /// statement proof (version 2) that verifies with `log_key` (checkpoint signature and
    /// inclusion, RFC 9162) for exactly the statement at `statement_index`.
    ///
    /// # Errors
    /// The first [`DisclosureError`] met.
    pub fn verify_logged(
        &self,
        checker_keys: &[Verifier],
        log_key: &Verifier,
    ) -> Result<VerifiedDisclosure, DisclosureError> {
        let verified = self.verify(checker_keys)?;
        let not_proven = |why: String| DisclosureError::StatementInclusion(why);
        let proof = self.statement_proof.as_deref().ok_or_else(|| {
            not_proven("a version 1 disclosure carries no statement proof".into())
        })?;
        let bundle = ProofBundle::parse(proof).map_err(|e| not_proven(e.to_string()))?;
        let logged = bundle
            .verify(log_key)
            .map_err(|e| not_proven(e.to_string()))?;
        if logged.index().0 != self.statement_index {
            return Err(not_proven(format!(
                "the proof is for index {}, the statement_index is {}",
                logged.index().0,
                self.statement_index
            )));
        }
        if logged.entry() != self.statement.as_slice() {
            return Err(not_proven(
                "the proven entry is not the disclosure's statement".into(),
            ));
        }
        Ok(verified)
    }

    /// Every check of spec §4, in its order, with the trusted checker keys.
    ///
    /// # Errors
    /// The first [`DisclosureError`] met.
    pub fn verify(&self, checker_keys: &[Verifier]) -> Result<VerifiedDisclosure, DisclosureError> {
        let policy = PolicyStatement::verify(&self.statement, checker_keys)
            .map_err(DisclosureError::Statement)?
            .record()
            .clone();
        let decision = Receipt::verify(&self.receipt, checker_keys)
            .map_err(DisclosureError::Receipt)?
            .receipt()
            .statement
            .clone();
        if self.statement_index >= self.decision_index {
            return Err(DisclosureError::Order {
                statement: self.statement_index,
                decision: self.decision_index,
            });
        }
        if decision.policy_commitment != policy.policy_commitment {
            return Err(DisclosureError::PolicyMismatch {
                receipt: decision.policy_commitment.to_hex(),
                statement: policy.policy_commitment.to_hex(),
            });
        }
        if !decision.violated_rules.contains(&self.rule.index) {
            return Err(DisclosureError::NotViolated(self.rule.index));
        }
        if self.rule.root() != Some(policy.rule_tree_root) {
            return Err(DisclosureError::RuleMismatch);
        }
        Ok(VerifiedDisclosure {
            disclosure: self.clone(),
            policy,
            decision,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rs_merkle::{algorithms::Sha256 as MerkleSha256, MerkleTree};

    /// The root and paths agree with the rs_merkle tree the checker builds, for every index of
    /// every tree size up to 17 (odd levels included).
    #[test]
    fn root_matches_rs_merkle() {
        for count in 1u32..=17 {
            let openings: Vec<RuleOpening> = (0..count)
                .map(|i| RuleOpening {
                    index: i,
                    count,
                    text: format!("{{\"id\":\"r{i}\"}}"),
                    salt: Salt([u8::try_from(i).unwrap(); 32]),
                    path: vec![],
                })
                .collect();
            let leaves: Vec<[u8; 32]> = openings.iter().map(|o| o.leaf().0).collect();
            let tree = MerkleTree::<MerkleSha256>::from_leaves(&leaves);
            let root = Hash(tree.root().unwrap());
            for mut o in openings {
                let proof = tree.proof(&[o.index as usize]);
                o.path = proof.proof_hashes().iter().map(|h| Hash(*h)).collect();
                assert_eq!(o.root(), Some(root), "count {count} index {}", o.index);
                let mut extra = o.clone();
                extra.path.push(root);
                assert_eq!(extra.root(), None);
                if let Some(first) = o.path.first_mut() {
                    first.0[0] ^= 1;
                    assert_ne!(o.root(), Some(root));
                }
            }
        }
    }

    #[test]
    fn index_out_of_range_has_no_root() {
        let o = RuleOpening {
            index: 2,
            count: 2,
            text: String::new(),
            salt: Salt([0; 32]),
            path: vec![],
        };
        assert_eq!(o.root(), None);
    }
}
