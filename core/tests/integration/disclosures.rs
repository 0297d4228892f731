//! Rule disclosure vectors in `testdata/disclosures/` (spec `spec/disclosure.md` §6):
//! `disclosures::regenerate` (ignored) writes them; `disclosures::vectors_are_current` fails
//! when the code produces another document; `disclosures::vectors_verify` checks every valid
//! vector verifies and every invalid one fails with its check name.

use rs_merkle::{algorithms::Sha256 as MerkleSha256, MerkleTree};
use serde_json::{json, Value};
use verdict_core::bundle::ProofBundle;
use verdict_core::checkpoint::Checkpoint;
use verdict_core::disclosure::{Disclosure, RuleOpening};
use verdict_core::merkle::{leaf_hash, root_of, Hash};
use verdict_core::note::{Signer, Verifier};
use verdict_core::proof::{inclusion_proof, HashSource};
use verdict_core::receipt::{
    commit, CommitmentTag, Decision, Kind, Receipt, Salt, Statement, STATEMENT_VERSION,
};
use verdict_core::statement::{AnalysisSummary, PolicyRecord, PolicyStatement, RECORD_VERSION};
use verdict_core::{LeafIndex, TreeSize};

fn dir() -> std::path::PathBuf {
    crate::testdata().join("disclosures")
}

fn signer(seed: u8) -> Signer {
    Signer::new(
        "verdict.example/log/checker",
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
    )
    .unwrap()
}

const RULES: [&str; 3] = [
    r#"{"id":"external-needs-auth","effect":"deny"}"#,
    r#"{"id":"external-approved-vendor","effect":"deny"}"#,
    r#"{"id":"bulk-needs-approval","effect":"escalate"}"#,
];

fn rule_salt(i: usize) -> Salt {
    Salt([0x40 + u8::try_from(i).unwrap(); 32])
}

/// The log key of the vectors (a signed-note signer named like a log).
fn log_signer(seed: u8) -> Signer {
    Signer::new(
        "verdict.example/log",
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
    )
    .unwrap()
}

/// Leaf hashes of a small in-memory log, as a hash source for proofs.
struct Leaves(Vec<Hash>);

impl HashSource for Leaves {
    type Error = std::convert::Infallible;
    fn hashes(&self, wanted: &[(u8, u64)]) -> Result<Vec<Hash>, Self::Error> {
        Ok(wanted
            .iter()
            .map(|&(level, index)| {
                let width = 1usize << level;
                let lo = usize::try_from(index).unwrap() * width;
                root_of(&self.0[lo..(lo + width).min(self.0.len())])
            })
            .collect())
    }
}

/// A ten-entry log holding `statement` at index 3 and `receipt` at index 9 (filler elsewhere),
/// and the C2SP tlog-proof of entry `proven` signed by `log`.
fn statement_proof(log: &Signer, statement: &[u8], receipt: &[u8], proven: u64) -> Vec<u8> {
    let entries: Vec<Vec<u8>> = (0..10u8)
        .map(|i| match i {
            3 => statement.to_vec(),
            9 => receipt.to_vec(),
            _ => format!("filler-{i}").into_bytes(),
        })
        .collect();
    let leaves = Leaves(entries.iter().map(|e| leaf_hash(e)).collect());
    let root = root_of(&leaves.0);
    let proof = inclusion_proof(&leaves, LeafIndex(proven), TreeSize(10)).unwrap();
    let checkpoint = Checkpoint {
        origin: log.name().to_owned(),
        size: TreeSize(10),
        root,
        extensions: vec![],
    }
    .sign(log)
    .unwrap();
    ProofBundle {
        extra: Some(entries[usize::try_from(proven).unwrap()].clone()),
        index: LeafIndex(proven),
        proof,
        checkpoint,
    }
    .encode()
}

/// A statement at index 3 and a deny receipt at index 9 violating rule 1, signed by `key`, with
/// rule `rule` opened and the statement's inclusion proof signed by the log key (seed 9).
fn build(key: &Signer, policy_commitment: Hash, rule: u32) -> Disclosure {
    let leaves: Vec<[u8; 32]> = RULES
        .iter()
        .enumerate()
        .map(|(i, t)| commit(CommitmentTag::Rule, &rule_salt(i), t.as_bytes()).0)
        .collect();
    let tree = MerkleTree::<MerkleSha256>::from_leaves(&leaves);
    let record = PolicyRecord {
        version: RECORD_VERSION,
        checker_key_id: key.key_id(),
        name: "customer-data-egress".into(),
        policy_version: "1.0.0".into(),
        policy_commitment: Hash([0x11; 32]),
        rule_tree_root: Hash(tree.root().unwrap()),
        predecessor: None,
        time_ms: 1_795_000_000_000,
        registered_by: "admin".into(),
        analysis: AnalysisSummary::default(),
    };
    let decision = Statement {
        version: STATEMENT_VERSION,
        checker_key_id: key.key_id(),
        policy_commitment,
        policy_version: "1.0.0".into(),
        action_commitment: Hash([0x33; 32]),
        decision: Decision::Deny,
        kind: Kind::Check,
        fail_closed: false,
        violated_rules: vec![1],
        matched_variables: vec!["destination".into(), "vendor".into()],
        undetermined_variables: vec![],
        approvers: vec![],
        time_ms: 1_795_000_001_000,
        request_id: "r-1".into(),
        checker_version: "0.1.0".into(),
        solver_version: "z3 4.8.12".into(),
    };
    let i = usize::try_from(rule).unwrap();
    let receipt = Receipt::sign(&decision, key).unwrap();
    let statement = PolicyStatement::sign(&record, key).unwrap();
    Disclosure {
        decision_index: 9,
        statement_proof: Some(statement_proof(&log_signer(9), &statement, &receipt, 3)),
        receipt,
        statement_index: 3,
        statement,
        rule: RuleOpening {
            index: rule,
            count: 3,
            text: RULES[i].to_owned(),
            salt: rule_salt(i),
            path: tree
                .proof(&[i])
                .proof_hashes()
                .iter()
                .map(|h| Hash(*h))
                .collect(),
        },
    }
}

fn generate() -> Value {
    let key = signer(7);
    let good = build(&key, Hash([0x11; 32]), 1);
    let mut invalid = Vec::new();
    let mut case = |name: &str, check: &str, why: &str, doc: Value| {
        invalid.push(json!({ "name": name, "check": check, "why": why, "disclosure": doc }));
    };
    let mut d = good.clone();
    d.rule.text = d.rule.text.replace("vendor", "vendoR");
    case(
        "tampered-text",
        "rule-opening",
        "one byte of the rule text changed",
        d.to_json(),
    );
    let mut d = good.clone();
    d.rule.salt.0[0] ^= 1;
    case(
        "tampered-salt",
        "rule-opening",
        "one bit of the salt flipped",
        d.to_json(),
    );
    let mut d = good.clone();
    d.rule.path[0].0[31] ^= 1;
    case(
        "tampered-path",
        "rule-opening",
        "one bit of a path hash flipped",
        d.to_json(),
    );
    let mut d = good.clone();
    d.rule.path.pop();
    case(
        "short-path",
        "rule-opening",
        "a path hash missing",
        d.to_json(),
    );
    case(
        "not-violated",
        "violated",
        "rule 0 correctly opened, but the receipt lists only rule 1",
        build(&key, Hash([0x11; 32]), 0).to_json(),
    );
    case(
        "other-policy",
        "policy-commitment",
        "the receipt was made under another policy commitment",
        build(&key, Hash([0x12; 32]), 1).to_json(),
    );
    case(
        "untrusted-key",
        "statement-signature",
        "statement and receipt signed by a key that is not checker_vkey",
        build(&signer(8), Hash([0x11; 32]), 1).to_json(),
    );
    let mut d = good.clone();
    d.statement_index = 9;
    case(
        "statement-not-earlier",
        "order",
        "statement index not below the decision index",
        d.to_json(),
    );
    let mut d = good.clone();
    d.receipt.push(0);
    case(
        "receipt-trailing-data",
        "receipt-signature",
        "a byte appended to the receipt",
        d.to_json(),
    );
    let mut doc = good.to_json();
    doc["extra"] = json!(1);
    case(
        "unknown-field",
        "format",
        "a field the format does not define",
        doc,
    );
    let mut doc = good.to_json();
    doc["rule"]["salt"] = json!("AB".repeat(32));
    case("uppercase-hex", "format", "hex must be lowercase", doc);
    let mut doc = good.to_json();
    doc["version"] = json!(3);
    case(
        "unknown-version",
        "format",
        "only versions 1 and 2 are defined",
        doc,
    );
    let mut doc = good.to_json();
    doc["version"] = json!(1);
    case(
        "version-1-with-proof",
        "format",
        "statement_proof is not a field of version 1",
        doc,
    );
    let mut d = good.clone();
    d.statement_proof = None;
    case(
        "version-1",
        "statement-inclusion",
        "a version 1 document: nothing proves the statement was logged",
        d.to_json(),
    );
    let mut d = good.clone();
    d.statement_proof = Some(statement_proof(&log_signer(9), &d.statement, &d.receipt, 4));
    case(
        "proof-of-another-entry",
        "statement-inclusion",
        "a valid inclusion proof, of entry 4 instead of the statement",
        d.to_json(),
    );
    let mut d = good.clone();
    d.statement_proof = Some(statement_proof(
        &log_signer(10),
        &d.statement,
        &d.receipt,
        3,
    ));
    case(
        "proof-by-another-log",
        "statement-inclusion",
        "the statement's proof is signed by a key that is not log_vkey",
        d.to_json(),
    );
    let mut d = good.clone();
    d.statement_index = 2;
    case(
        "statement-index-unproven",
        "statement-inclusion",
        "statement_index 2, but the proof is of index 3",
        d.to_json(),
    );
    let mut d = good.clone();
    let text = String::from_utf8(d.statement_proof.clone().unwrap()).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.swap(3, 4);
    d.statement_proof = Some((lines.join("\n") + "\n").into_bytes());
    case(
        "statement-proof-hashes-swapped",
        "statement-inclusion",
        "two hashes of the statement's inclusion proof swapped",
        d.to_json(),
    );
    json!({
        "checker_vkey": key.verifier().to_string(),
        "log_vkey": log_signer(9).verifier().to_string(),
        "valid": [{ "name": "violated-rule-1", "disclosure": good.to_json() }],
        "invalid": invalid,
    })
}

#[test]
#[ignore = "writes testdata/disclosures/vectors.json"]
fn regenerate() {
    std::fs::create_dir_all(dir()).unwrap();
    let text = serde_json::to_string_pretty(&generate()).unwrap();
    std::fs::write(dir().join("vectors.json"), text + "\n").unwrap();
}

#[test]
fn vectors_are_current() {
    let stored: Value =
        serde_json::from_slice(&std::fs::read(dir().join("vectors.json")).unwrap()).unwrap();
    assert_eq!(stored, generate(), "run disclosures::regenerate");
}

#[test]
fn vectors_verify() {
    let v: Value =
        serde_json::from_slice(&std::fs::read(dir().join("vectors.json")).unwrap()).unwrap();
    let keys = [Verifier::parse(v["checker_vkey"].as_str().unwrap()).unwrap()];
    let log = Verifier::parse(v["log_vkey"].as_str().unwrap()).unwrap();
    let valid = v["valid"].as_array().unwrap();
    assert!(!valid.is_empty());
    for case in valid {
        let bytes = serde_json::to_vec(&case["disclosure"]).unwrap();
        let d = Disclosure::from_json(&bytes).unwrap();
        let verified = d.verify_logged(&keys, &log).unwrap();
        assert!(verified.decision.violated_rules.contains(&d.rule.index));
        // Round trip: the document re-encodes to the same JSON.
        assert_eq!(d.to_json(), case["disclosure"]);
    }
    let invalid = v["invalid"].as_array().unwrap();
    assert!(invalid.len() >= 10);
    for case in invalid {
        let bytes = serde_json::to_vec(&case["disclosure"]).unwrap();
        let got =
            Disclosure::from_json(&bytes).and_then(|d| d.verify_logged(&keys, &log).map(|_| ()));
        let err = got.expect_err(case["name"].as_str().unwrap());
        assert_eq!(err.check(), case["check"], "{}: {err}", case["name"]);
    }
}

/// Any one-bit change of the valid document is refused, never a panic; the only changes that
/// still verify are in `decision_index`, which no signature covers here (the receipt's bundle
/// binds it in `verdict verify --disclosure`, spec §4), and they keep every checked part. The
/// statement index is bound by the statement proof.
#[test]
fn one_bit_changes_never_verify_another_opening() {
    let v: Value =
        serde_json::from_slice(&std::fs::read(dir().join("vectors.json")).unwrap()).unwrap();
    let keys = [Verifier::parse(v["checker_vkey"].as_str().unwrap()).unwrap()];
    let log = Verifier::parse(v["log_vkey"].as_str().unwrap()).unwrap();
    let good = serde_json::to_vec(&v["valid"][0]["disclosure"]).unwrap();
    let original = Disclosure::from_json(&good).unwrap();
    let mut accepted = 0;
    for i in 0..good.len() {
        let mut bytes = good.clone();
        bytes[i] ^= 1;
        let Ok(d) = Disclosure::from_json(&bytes) else {
            continue;
        };
        if d.verify_logged(&keys, &log).is_ok() {
            accepted += 1;
            assert_eq!(d.statement_index, original.statement_index, "byte {i}");
            assert_eq!(d.rule, original.rule, "byte {i}");
            assert_eq!(d.receipt, original.receipt, "byte {i}");
            assert_eq!(d.statement, original.statement, "byte {i}");
        }
    }
    assert!(accepted <= 4, "{accepted} one-bit variants verified");
}
