//! Compilation: parse, type check, canonical form, policy commitment and rule commitment tree
//! (`spec/policy-language.md` §6).
//!
//! - Canonical policy: compact JSON of `{"format":"verdict-policy/v1","policy":<Policy>}` with the
//!   typed AST's fields in declaration order, maps sorted by key and variables sorted by name.
//!   Comments, whitespace, key order and TOML quoting style do not change it.
//! - `policy_commitment = commit(Policy, salt, canonical)`.
//! - Rule leaf i = `commit(Rule, rule_salt_i, canonical_rule_i)` where `canonical_rule_i` is the
//!   compact JSON of rule i and `rule_salt_i = SHA-256("verdict-rule-salt/v1" ‖ salt ‖ u32be(i))`.
//!   The tree is `rs_merkle`'s SHA-256 tree (plain `SHA-256(left ‖ right)` nodes, an odd node is
//!   promoted); the root of an empty rule list is SHA-256 of the empty string.

use rs_merkle::algorithms::Sha256 as MerkleSha256;
use rs_merkle::{MerkleProof, MerkleTree};
use serde::Serialize;
use sha2::{Digest, Sha256};
use verdict_core::note::Verifier;
use verdict_core::receipt::{commit, CommitmentTag, Salt};
use verdict_core::Hash;

use crate::ast::{Policy, Rule};
use crate::error::{PolicyError, PolicyErrorKind};
use crate::parse::parse_toml;
use crate::typecheck::check_policy;

/// Format tag inside the canonical policy.
pub const CANONICAL_FORMAT: &str = "verdict-policy/v1";

/// A compiled policy: typed AST, canonical bytes, commitment and rule tree.
#[derive(Clone, Debug)]
pub struct CompiledPolicy {
    policy: Policy,
    canonical: Vec<u8>,
    salt: Salt,
    commitment: Hash,
    rule_salts: Vec<Salt>,
    rule_canonical: Vec<Vec<u8>>,
    rule_leaves: Vec<[u8; 32]>,
    rule_root: Hash,
    approvers: Vec<Verifier>,
}

#[derive(Serialize)]
struct CanonicalPolicy<'a> {
    format: &'static str,
    policy: &'a Policy,
}

/// Compile a policy file.
///
/// # Errors
/// [`PolicyError`], located at a line and column of `source`.
pub fn compile(source: &str, salt: Salt) -> Result<CompiledPolicy, PolicyError> {
    let raw = parse_toml(source)?;
    let policy = check_policy(source, raw)?;
    CompiledPolicy::from_policy(policy, salt).map_err(|kind| PolicyError::at(kind, source, 0))
}

impl CompiledPolicy {
    /// Build from an already type-checked policy (e.g. a generated one in tests or tools).
    ///
    /// # Errors
    /// [`PolicyErrorKind::ApproverKey`] if an approver key does not parse,
    /// [`PolicyErrorKind::ApproverNameMismatch`] or [`PolicyErrorKind::DuplicateApproverName`]
    /// for inconsistent approver names, or
    /// [`PolicyErrorKind::Toml`] if serialisation fails (not expected).
    pub fn from_policy(policy: Policy, salt: Salt) -> Result<Self, PolicyErrorKind> {
        let ser_err = |e: serde_json::Error| PolicyErrorKind::Toml {
            message: format!("canonical serialisation failed: {e}"),
        };
        let canonical = serde_json::to_vec(&CanonicalPolicy {
            format: CANONICAL_FORMAT,
            policy: &policy,
        })
        .map_err(ser_err)?;
        let commitment = commit(CommitmentTag::Policy, &salt, &canonical);
        let mut rule_salts = Vec::with_capacity(policy.rules.len());
        let mut rule_canonical = Vec::with_capacity(policy.rules.len());
        let mut rule_leaves = Vec::with_capacity(policy.rules.len());
        for (i, rule) in policy.rules.iter().enumerate() {
            let rs = rule_salt(&salt, i);
            let bytes = canonical_rule(rule).map_err(ser_err)?;
            rule_leaves.push(commit(CommitmentTag::Rule, &rs, &bytes).0);
            rule_salts.push(rs);
            rule_canonical.push(bytes);
        }
        let rule_root = MerkleTree::<MerkleSha256>::from_leaves(&rule_leaves)
            .root()
            .map_or_else(|| Hash(Sha256::digest(b"").into()), Hash);
        let mut names = std::collections::BTreeSet::new();
        let approvers = policy
            .approvers
            .iter()
            .map(|a| {
                let v = Verifier::parse(&a.key).map_err(|e| PolicyErrorKind::ApproverKey {
                    name: a.name.clone(),
                    reason: e.to_string(),
                })?;
                // spec/policy-language.md §2.1 (the type checker reports these located).
                if v.name() != a.name {
                    return Err(PolicyErrorKind::ApproverNameMismatch {
                        name: a.name.clone(),
                        key_name: v.name().to_owned(),
                    });
                }
                if !names.insert(a.name.as_str()) {
                    return Err(PolicyErrorKind::DuplicateApproverName {
                        name: a.name.clone(),
                    });
                }
                Ok(v)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            policy,
            canonical,
            salt,
            commitment,
            rule_salts,
            rule_canonical,
            rule_leaves,
            rule_root,
            approvers,
        })
    }

    /// Policy name.
    pub fn name(&self) -> &str {
        &self.policy.name
    }

    /// Policy version string.
    pub fn version(&self) -> &str {
        &self.policy.version
    }

    /// Salted policy commitment.
    pub fn commitment(&self) -> Hash {
        self.commitment
    }

    /// The policy salt.
    pub fn salt(&self) -> Salt {
        self.salt
    }

    /// Canonical policy bytes.
    pub fn canonical(&self) -> &[u8] {
        &self.canonical
    }

    /// The typed AST.
    pub fn ast(&self) -> &Policy {
        &self.policy
    }

    /// Parsed approver keys, in file order.
    pub fn approvers(&self) -> &[Verifier] {
        &self.approvers
    }

    /// Root of the rule commitment tree.
    pub fn rule_tree_root(&self) -> Hash {
        self.rule_root
    }

    /// Disclosure of rule `index`: its salt, canonical bytes and Merkle proof, or `None` when out
    /// of range.
    pub fn rule_proof(&self, index: usize) -> Option<RuleProof> {
        let salt = *self.rule_salts.get(index)?;
        let canonical = self.rule_canonical.get(index)?.clone();
        let tree = MerkleTree::<MerkleSha256>::from_leaves(&self.rule_leaves);
        let proof = tree.proof(&[index]);
        Some(RuleProof {
            index,
            rule_count: self.rule_leaves.len(),
            salt,
            canonical_rule: canonical,
            path: proof.proof_hashes().iter().map(|h| Hash(*h)).collect(),
        })
    }
}

/// Canonical bytes of one rule.
fn canonical_rule(rule: &Rule) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(rule)
}

/// Per-rule salt derived from the policy salt.
fn rule_salt(salt: &Salt, index: usize) -> Salt {
    let mut h = Sha256::new();
    h.update(b"verdict-rule-salt/v1");
    h.update(salt.0);
    h.update(u32::try_from(index).unwrap_or(u32::MAX).to_be_bytes());
    Salt(h.finalize().into())
}

/// Selective disclosure of one rule with its inclusion proof in the rule tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleProof {
    /// Rule index.
    pub index: usize,
    /// Number of rules (leaves).
    pub rule_count: usize,
    /// The rule's salt.
    pub salt: Salt,
    /// Canonical rule bytes (compact JSON).
    pub canonical_rule: Vec<u8>,
    /// Sibling hashes, bottom up (rs_merkle order).
    pub path: Vec<Hash>,
}

/// A rule disclosure whose proof matched a rule tree root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedRule {
    /// Rule index.
    pub index: usize,
    /// Canonical rule bytes.
    pub canonical_rule: Vec<u8>,
}

/// The rule proof does not lead to the given root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("rule proof does not match the rule tree root")]
pub struct RuleProofMismatch;

impl RuleProof {
    /// Recompute the leaf and check the proof against `root`.
    ///
    /// # Errors
    /// [`RuleProofMismatch`].
    pub fn verify(&self, root: &Hash) -> Result<VerifiedRule, RuleProofMismatch> {
        let leaf = commit(CommitmentTag::Rule, &self.salt, &self.canonical_rule).0;
        let proof =
            MerkleProof::<MerkleSha256>::new(self.path.iter().map(|h| h.0).collect::<Vec<_>>());
        if self.index < self.rule_count
            && proof.verify(root.0, &[self.index], &[leaf], self.rule_count)
        {
            Ok(VerifiedRule {
                index: self.index,
                canonical_rule: self.canonical_rule.clone(),
            })
        } else {
            Err(RuleProofMismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = r#"
name = "p"
version = "1"
[variables]
x = { type = "int", min = 0 }
d = { type = "enum", values = ["a", "b"] }
[[rules]]
id = "r0"
text = "x small"
require = 'x <= 5'
effect = "deny"
[[rules]]
id = "r1"
text = "d"
when = 'd == "a"'
require = 'x >= 1'
effect = "escalate"
"#;

    // Same policy: comments, whitespace, key order and quoting differ.
    const B: &str = r#"
# a comment
version = "1"
name    = "p"

[variables]
d = { values = ["a", "b"], type = "enum" }   # reordered
x = { min = 0, type = "int" }

[[rules]]
id = "r0"
text = "x small"
require = "x<=5"
effect = "deny"

[[rules]]
effect = "escalate"
id = "r1"
text = "d"
when = '''d   ==   "a"'''
require = '(x >= 1)'
"#;

    #[test]
    fn canonical_is_stable_under_formatting() {
        let a = compile(A, Salt([3; 32])).unwrap();
        let b = compile(B, Salt([3; 32])).unwrap();
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(a.commitment(), b.commitment());
        assert_eq!(a.rule_tree_root(), b.rule_tree_root());
        let c = compile(A, Salt([4; 32])).unwrap();
        assert_ne!(a.commitment(), c.commitment());
        assert_eq!(
            a.commitment(),
            commit(CommitmentTag::Policy, &Salt([3; 32]), a.canonical())
        );
        let changed = compile(&A.replace("x <= 5", "x <= 6"), Salt([3; 32])).unwrap();
        assert_ne!(a.canonical(), changed.canonical());
        assert_eq!(a.name(), "p");
        assert_eq!(a.version(), "1");
    }

    #[test]
    fn rule_proofs_verify() {
        let src = (0..5).fold(A.to_owned(), |s, i| {
            s + &format!("[[rules]]\nid = \"extra{i}\"\ntext = \"t\"\nrequire = 'x >= {i}'\neffect = \"deny\"\n")
        });
        let p = compile(&src, Salt([3; 32])).unwrap();
        let root = p.rule_tree_root();
        for i in 0..7 {
            let proof = p.rule_proof(i).unwrap();
            let v = proof.verify(&root).unwrap();
            assert_eq!(v.index, i);
            let mut bad = proof.clone();
            bad.canonical_rule.push(b' ');
            assert!(bad.verify(&root).is_err());
            let mut moved = proof.clone();
            moved.index = (i + 1) % 7;
            assert!(moved.verify(&root).is_err());
        }
        assert!(p.rule_proof(7).is_none());
        let empty = compile("name = \"e\"\nversion = \"1\"\n", Salt([0; 32])).unwrap();
        assert_eq!(empty.rule_tree_root(), Hash(Sha256::digest(b"").into()));
    }

    /// `optional = true` enters the canonical form (and the commitment) only when set, so
    /// policies written before the field existed keep their bytes and commitments.
    #[test]
    fn optional_is_canonical_only_when_set() {
        let plain = compile(A, Salt([0; 32])).unwrap();
        let text = String::from_utf8(plain.canonical().to_vec()).unwrap();
        assert!(!text.contains("optional"), "{text}");
        let explicit_false = A.replace(
            r#"x = { type = "int", min = 0 }"#,
            r#"x = { type = "int", min = 0, optional = false }"#,
        );
        let same = compile(&explicit_false, Salt([0; 32])).unwrap();
        assert_eq!(same.canonical(), plain.canonical());
        let optional = A.replace(
            r#"x = { type = "int", min = 0 }"#,
            r#"x = { type = "int", min = 0, optional = true }"#,
        );
        let o = compile(&optional, Salt([0; 32])).unwrap();
        let text = String::from_utf8(o.canonical().to_vec()).unwrap();
        assert!(text.contains(r#""optional":true"#), "{text}");
        assert_ne!(o.commitment(), plain.commitment());
        assert!(o.ast().variable("x").unwrap().may_be_absent());
        assert!(!o.ast().variable("d").unwrap().may_be_absent());
    }
}
