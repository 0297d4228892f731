//! Policy statement vectors in `testdata/statements/` (spec `spec/policy-statement.md`):
//! `statements::regenerate` (ignored) writes them; `statements::vectors_are_current` fails when
//! the code produces other bytes; `statements::vectors_verify` checks every valid vector decodes
//! to its record and every invalid one is rejected with its error kind.

use ciborium::value::Value;
use serde_json::json;
use verdict_core::merkle::Hash;
use verdict_core::note::{KeyId, Signer};
use verdict_core::receipt::ReceiptError;
use verdict_core::statement::{
    entry_type, AnalysisSummary, EntryType, PolicyRecord, PolicyStatement, RECORD_VERSION,
};

fn dir() -> std::path::PathBuf {
    crate::testdata().join("statements")
}

fn checker() -> Signer {
    Signer::new(
        "verdict.example/log/checker",
        ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
    )
    .unwrap()
}

fn record(key_id: KeyId) -> PolicyRecord {
    PolicyRecord {
        version: RECORD_VERSION,
        checker_key_id: key_id,
        name: "customer-data-egress".into(),
        policy_version: "1.0.0".into(),
        policy_commitment: Hash([0x11; 32]),
        rule_tree_root: Hash([0x22; 32]),
        predecessor: None,
        time_ms: 1_795_000_000_000,
        registered_by: "policies-dir".into(),
        analysis: AnalysisSummary::default(),
    }
}

fn error_kind(e: &ReceiptError) -> &'static str {
    match e {
        ReceiptError::TooLarge { .. } => "too-large",
        ReceiptError::Malformed { .. } => "malformed",
        ReceiptError::TrailingData => "trailing-data",
        ReceiptError::UnknownCritical { .. } => "unknown-critical",
        ReceiptError::UnsupportedAlgorithm => "unsupported-algorithm",
        ReceiptError::UntrustedKey { .. } => "untrusted-key",
        ReceiptError::BadSignature { .. } => "bad-signature",
        ReceiptError::KeyIdMismatch => "key-id-mismatch",
    }
}

fn record_json(r: &PolicyRecord) -> serde_json::Value {
    json!({
        "version": r.version,
        "checker_key_id": hex::encode(r.checker_key_id.0),
        "name": r.name,
        "policy_version": r.policy_version,
        "policy_commitment": r.policy_commitment.to_hex(),
        "rule_tree_root": r.rule_tree_root.to_hex(),
        "predecessor": r.predecessor.map(|h| h.to_hex()),
        "time_ms": r.time_ms,
        "registered_by": r.registered_by,
        "analysis": {
            "errors": r.analysis.errors,
            "warnings": r.analysis.warnings,
            "forced": r.analysis.forced,
            "findings": r.analysis.findings,
        },
    })
}

/// Re-sign a hand-built COSE_Sign1 (protected header map, payload) with `signer`.
fn raw_sign1(protected: Vec<(Value, Value)>, payload: Vec<u8>, signer: &Signer) -> Vec<u8> {
    let mut prot = Vec::new();
    ciborium::ser::into_writer(&Value::Map(protected), &mut prot).unwrap();
    let tbs = Value::Array(vec![
        Value::Text("Signature1".into()),
        Value::Bytes(prot.clone()),
        Value::Bytes(vec![]),
        Value::Bytes(payload.clone()),
    ]);
    let mut tbs_bytes = Vec::new();
    ciborium::ser::into_writer(&tbs, &mut tbs_bytes).unwrap();
    let sig = signer.sign_raw(&tbs_bytes).to_vec();
    let sign1 = Value::Tag(
        18,
        Box::new(Value::Array(vec![
            Value::Bytes(prot),
            Value::Map(vec![]),
            Value::Bytes(payload),
            Value::Bytes(sig),
        ])),
    );
    let mut out = Vec::new();
    ciborium::ser::into_writer(&sign1, &mut out).unwrap();
    out
}

fn header(kid: KeyId, content_type: Option<&str>) -> Vec<(Value, Value)> {
    let mut h = vec![(Value::Integer(1.into()), Value::Integer((-8).into()))];
    if let Some(ct) = content_type {
        h.push((Value::Integer(3.into()), Value::Text(ct.into())));
    }
    h.push((Value::Integer(4.into()), Value::Bytes(kid.0.to_vec())));
    h
}

fn generate() -> Vec<u8> {
    let c = checker();
    let other = Signer::new(
        "verdict.example/log/checker",
        ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
    )
    .unwrap();
    let base = record(c.key_id());
    let mut second = base.clone();
    second.policy_version = "1.1.0".into();
    second.policy_commitment = Hash([0x33; 32]);
    second.predecessor = Some(base.policy_commitment);
    second.registered_by = "admin".into();
    second.analysis = AnalysisSummary {
        errors: 1,
        warnings: 1,
        forced: true,
        findings: vec![
            "error contradiction: rules a and b can never both hold".into(),
            "warning never-fires: rule c never fires".into(),
        ],
    };
    let valid: Vec<serde_json::Value> = [
        (
            "first version, registered from the policies directory",
            &base,
        ),
        (
            "second version with a predecessor and forced error findings",
            &second,
        ),
    ]
    .iter()
    .map(|(why, r)| {
        let bytes = PolicyStatement::sign(r, &c).unwrap();
        json!({ "why": why, "statement_hex": hex::encode(&bytes), "record": record_json(r) })
    })
    .collect();

    let good = PolicyStatement::sign(&base, &c).unwrap();
    let payload = base.to_cbor().unwrap();
    let mut tampered = good.clone();
    let at = tampered.len() - 80;
    tampered[at] ^= 0x01;
    let mut trailing = good.clone();
    trailing.push(0x00);
    // A record with an extra key 13.
    let mut extra_key = payload.clone();
    extra_key[0] += 1; // map of 13 -> 14 entries (0xad -> 0xae)
    extra_key.extend([0x0d, 0xf5]);
    // A record whose name is empty.
    let mut empty_name = base.clone();
    empty_name.name = String::new();
    let empty_name_payload = {
        // Hand-encode: to_cbor refuses it.
        let Value::Map(mut m) = ciborium::de::from_reader::<Value, _>(payload.as_slice()).unwrap()
        else {
            unreachable!()
        };
        m[2].1 = Value::Text(String::new());
        let mut out = Vec::new();
        ciborium::ser::into_writer(&Value::Map(m), &mut out).unwrap();
        out
    };
    let receipt_like = raw_sign1(header(c.key_id(), None), payload.clone(), &c);
    let invalid = vec![
        (
            "tampered",
            "bad-signature",
            "one byte of the record changed",
            tampered,
        ),
        (
            "trailing-byte",
            "trailing-data",
            "a byte after the COSE structure",
            trailing,
        ),
        (
            "untrusted-key",
            "untrusted-key",
            "signed by a key nobody trusts",
            PolicyStatement::sign(&record(other.key_id()), &other).unwrap(),
        ),
        (
            "no-content-type",
            "malformed",
            "a receipt-style header without the policy-statement content type",
            receipt_like,
        ),
        (
            "other-content-type",
            "malformed",
            "content type application/cbor",
            raw_sign1(
                header(c.key_id(), Some("application/cbor")),
                payload.clone(),
                &c,
            ),
        ),
        (
            "unknown-record-key",
            "unknown-critical",
            "record key 13",
            raw_sign1(
                header(c.key_id(), Some(verdict_core::statement::CONTENT_TYPE)),
                extra_key,
                &c,
            ),
        ),
        (
            "empty-name",
            "malformed",
            "policy name of zero bytes",
            raw_sign1(
                header(c.key_id(), Some(verdict_core::statement::CONTENT_TYPE)),
                empty_name_payload,
                &c,
            ),
        ),
    ];
    let invalid: Vec<serde_json::Value> = invalid
        .into_iter()
        .map(|(name, error, why, bytes)| {
            json!({ "name": name, "error": error, "why": why, "statement_hex": hex::encode(bytes) })
        })
        .collect();
    let doc = json!({
        "about": "generated by `cargo test -p verdict-core --test integration statements::regenerate -- --ignored` (core/tests/integration/statements.rs); do not edit",
        "checker_vkey": c.verifier().to_string(),
        "checker_skey": c.to_private_key_string(),
        "untrusted_vkey": other.verifier().to_string(),
        "content_type": verdict_core::statement::CONTENT_TYPE,
        "valid": valid,
        "invalid": invalid,
    });
    let mut out = serde_json::to_vec_pretty(&sorted(doc)).unwrap();
    out.push(b'\n');
    out
}

/// Sort object keys (independent of serde_json's `preserve_order`).
fn sorted(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let mut items: Vec<_> = m.into_iter().collect();
            items.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(items.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(sorted).collect())
        }
        other => other,
    }
}

#[test]
#[ignore = "writes testdata/statements/vectors.json; run by hand after a format change"]
fn regenerate() {
    std::fs::create_dir_all(dir()).unwrap();
    std::fs::write(dir().join("vectors.json"), generate()).unwrap();
}

#[test]
fn vectors_are_current() {
    let on_disk = std::fs::read(dir().join("vectors.json"))
        .unwrap_or_else(|e| panic!("{e}; run statements::regenerate"));
    assert!(
        on_disk == generate(),
        "testdata/statements/vectors.json differs from the code; run statements::regenerate"
    );
}

#[test]
fn vectors_verify() {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir().join("vectors.json")).unwrap()).unwrap();
    let trusted = verdict_core::note::Verifier::parse(v["checker_vkey"].as_str().unwrap()).unwrap();
    let signer = Signer::parse(v["checker_skey"].as_str().unwrap()).unwrap();
    for case in v["valid"].as_array().unwrap() {
        let bytes = hex::decode(case["statement_hex"].as_str().unwrap()).unwrap();
        assert_eq!(entry_type(&bytes), EntryType::PolicyStatement);
        let verified = PolicyStatement::verify(&bytes, std::slice::from_ref(&trusted)).unwrap();
        assert_eq!(
            record_json(verified.record()),
            case["record"],
            "{}",
            case["why"]
        );
        assert_eq!(
            PolicyStatement::sign(verified.record(), &signer).unwrap(),
            bytes
        );
        assert!(verdict_core::receipt::Receipt::decode(&bytes).is_err());
    }
    for case in v["invalid"].as_array().unwrap() {
        let bytes = hex::decode(case["statement_hex"].as_str().unwrap()).unwrap();
        let err = PolicyStatement::verify(&bytes, std::slice::from_ref(&trusted)).unwrap_err();
        assert_eq!(error_kind(&err), case["error"], "{}: {err}", case["name"]);
    }
}
