//! Generator of `testdata/receipts/` (see `receipts.rs`): fixed keys and statements, invalid
//! receipts built by hand with `coset` and `ciborium`, and proof bundles over a 5-leaf log whose
//! root and proofs come from a naive RFC 9162 §2.1 implementation written out here.

use std::collections::BTreeMap;

use ciborium::value::{Integer, Value as Cbor};
use coset::{iana, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable as _};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use verdict_core::bundle::ProofBundle;
use verdict_core::checkpoint::Checkpoint;
use verdict_core::merkle::{leaf_hash, node_hash, Hash};
use verdict_core::note::{KeyId, Signer};
use verdict_core::receipt::{
    commit, CommitmentTag, Decision, Kind, Receipt, Salt, Statement, STATEMENT_VERSION,
};
use verdict_core::{LeafIndex, TreeSize};

use super::{checker, log, statement_json, stranger, GENERATED_BY};

/// A statement with commitments computed from fixed salts and canonical inputs.
pub fn sample_statement(n: u8, key: KeyId) -> Statement {
    let salt = Salt([n; 32]);
    let policy = commit(
        CommitmentTag::Policy,
        &Salt([0xAA; 32]),
        b"policy payments v3",
    );
    let action = commit(
        CommitmentTag::Action,
        &salt,
        format!("{{\"amount\":{}}}", 100 * u32::from(n)).as_bytes(),
    );
    let base = Statement {
        version: STATEMENT_VERSION,
        checker_key_id: key,
        policy_commitment: policy,
        policy_version: "2026.11.3".into(),
        action_commitment: action,
        decision: Decision::Allow,
        kind: Kind::Check,
        fail_closed: false,
        violated_rules: vec![],
        matched_variables: vec!["amount".into(), "payee".into()],
        undetermined_variables: vec![],
        approvers: vec![],
        time_ms: 1_795_000_000_000 + u64::from(n) * 1000,
        request_id: format!("req-{n:04}"),
        checker_version: "verdict-checker 0.1.0".into(),
        solver_version: "z3 4.8.12".into(),
    };
    match n % 5 {
        0 => Statement {
            decision: Decision::Deny,
            violated_rules: vec![0, 3],
            ..base
        },
        1 => base,
        2 => Statement {
            decision: Decision::Escalate,
            undetermined_variables: vec!["approver_count".into()],
            approvers: vec![KeyId([0xde, 0xad, 0xbe, 0xef])],
            ..base
        },
        3 => Statement {
            decision: Decision::NotApplicable,
            kind: Kind::Screen,
            matched_variables: vec![],
            ..base
        },
        _ => Statement {
            decision: Decision::Deny,
            fail_closed: true,
            ..base
        },
    }
}

const VALID_NAMES: [&str; 5] = [
    "deny-check",
    "allow-check",
    "escalate-with-approver",
    "not-applicable-screen",
    "fail-closed-deny",
];

fn uint(v: u64) -> Cbor {
    Cbor::Integer(Integer::from(v))
}

fn cbor_bytes(v: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).unwrap();
    out
}

fn payload_map(s: &Statement) -> Vec<(Cbor, Cbor)> {
    let bytes = s.to_cbor().unwrap();
    match ciborium::de::from_reader::<Cbor, _>(bytes.as_slice()).unwrap() {
        Cbor::Map(m) => m,
        _ => unreachable!(),
    }
}

/// A COSE_Sign1 with any protected header and payload, signed by `signer` (for invalid vectors).
fn cose(protected: coset::Header, payload: Vec<u8>, signer: &Signer) -> Vec<u8> {
    CoseSign1Builder::new()
        .protected(protected)
        .payload(payload)
        .create_signature(&[], |tbs| signer.sign_raw(tbs).to_vec())
        .build()
        .to_tagged_vec()
        .unwrap()
}

fn eddsa_header(kid: KeyId) -> HeaderBuilder {
    HeaderBuilder::new()
        .algorithm(iana::Algorithm::EdDSA)
        .key_id(kid.0.to_vec())
}

fn replace_once(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let at = haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    [&haystack[..at], with, &haystack[at + needle.len()..]].concat()
}

/// Invalid receipts: (name, bytes, expected error, why).
fn invalid_receipts(valid: &[u8]) -> Vec<(&'static str, Vec<u8>, &'static str, &'static str)> {
    let c = checker();
    let kid = c.key_id();
    let st = sample_statement(0, kid);
    let canonical = st.to_cbor().unwrap();
    let mut out = Vec::new();

    let mut bad_sig = valid.to_vec();
    *bad_sig.last_mut().unwrap() ^= 0x01;
    out.push((
        "bad-signature",
        bad_sig,
        "bad-signature",
        "last signature byte flipped",
    ));

    out.push((
        "trailing-data",
        [valid, &[0x00]].concat(),
        "trailing-data",
        "one byte after the COSE_Sign1",
    ));

    out.push((
        "untagged",
        valid[1..].to_vec(),
        "malformed",
        "COSE_Sign1 without tag 18",
    ));

    let mut swapped = payload_map(&st);
    swapped.swap(0, 1);
    out.push((
        "non-canonical-map-order",
        cose(
            eddsa_header(kid).build(),
            cbor_bytes(&Cbor::Map(swapped)),
            &c,
        ),
        "malformed",
        "statement keys 1 and 0 out of order (validly signed)",
    ));

    // Key 0 (version) written as 0x18 0x01 instead of 0x01.
    let long_int = replace_once(&canonical, &[0xb0, 0x00, 0x01], &[0xb0, 0x00, 0x18, 0x01]);
    out.push((
        "non-canonical-integer",
        cose(eddsa_header(kid).build(), long_int, &c),
        "malformed",
        "statement version in a two-byte head (validly signed)",
    ));

    // violated_rules [0, 3] as an indefinite-length array.
    let indefinite = replace_once(
        &canonical,
        &[0x08, 0x82, 0x00, 0x03],
        &[0x08, 0x9f, 0x00, 0x03, 0xff],
    );
    out.push((
        "indefinite-length",
        cose(eddsa_header(kid).build(), indefinite, &c),
        "malformed",
        "violated rules as an indefinite-length array (validly signed)",
    ));

    let mut extra = payload_map(&st);
    extra.push((uint(16), Cbor::Text("surprise".into())));
    out.push((
        "unknown-field",
        cose(eddsa_header(kid).build(), cbor_bytes(&Cbor::Map(extra)), &c),
        "unknown-critical",
        "statement key 16 is not defined (validly signed)",
    ));

    out.push((
        "wrong-alg",
        cose(
            HeaderBuilder::new()
                .algorithm(iana::Algorithm::ES256)
                .key_id(kid.0.to_vec())
                .build(),
            canonical.clone(),
            &c,
        ),
        "unsupported-algorithm",
        "protected alg is ES256 (-7), not EdDSA (-8)",
    ));

    out.push((
        "unknown-critical-header",
        cose(
            eddsa_header(kid)
                .add_critical_label(coset::RegisteredLabelWithPrivate::PrivateUse(-65537))
                .value(-65537, Cbor::Text("must understand".into()))
                .build(),
            canonical.clone(),
            &c,
        ),
        "unknown-critical",
        "crit lists private header -65537",
    ));

    let mut unsorted = st.clone();
    unsorted.matched_variables.reverse();
    let mut unsorted_map = payload_map(&st);
    unsorted_map[9].1 = Cbor::Array(
        unsorted
            .matched_variables
            .iter()
            .cloned()
            .map(Cbor::Text)
            .collect(),
    );
    out.push((
        "unsorted-variables",
        cose(
            eddsa_header(kid).build(),
            cbor_bytes(&Cbor::Map(unsorted_map)),
            &c,
        ),
        "malformed",
        "matched variables not in ascending order (validly signed)",
    ));

    // Spec receipt.md §3: a screen admits only not-applicable (3) and in-scope (4), a check
    // admits 0-3. Both payloads are validly signed and otherwise canonical.
    for (name, base, key, code, why) in [
        (
            "screen-with-allow",
            sample_statement(3, kid),
            5u64,
            0u64,
            "kind screen with decision allow (validly signed): a screen admits only not-applicable and in-scope",
        ),
        (
            "check-with-in-scope",
            sample_statement(1, kid),
            5,
            4,
            "kind check with decision in-scope (validly signed): in-scope is a screening decision",
        ),
        (
            "unknown-decision",
            sample_statement(1, kid),
            5,
            5,
            "decision 5 is not defined (validly signed)",
        ),
    ] {
        let map: Vec<(Cbor, Cbor)> = payload_map(&base)
            .into_iter()
            .map(|(k, v)| {
                if k == uint(key) {
                    (k, uint(code))
                } else {
                    (k, v)
                }
            })
            .collect();
        out.push((
            name,
            cose(eddsa_header(kid).build(), cbor_bytes(&Cbor::Map(map)), &c),
            "malformed",
            why,
        ));
    }

    let other = stranger();
    out.push((
        "untrusted-key",
        Receipt::sign(&sample_statement(0, other.key_id()), &other).unwrap(),
        "untrusted-key",
        "signed by verdict.example/other-checker, which is not trusted",
    ));

    out.push((
        "key-id-mismatch",
        cose(
            eddsa_header(kid).build(),
            sample_statement(0, other.key_id()).to_cbor().unwrap(),
            &c,
        ),
        "key-id-mismatch",
        "kid is the checker's but the statement names another key (signed by the checker)",
    ));
    out
}

/// A validly signed receipt over 65,535 bytes: the statement lists 300 long variable names.
fn oversize_receipt() -> Vec<u8> {
    let c = checker();
    let mut map = payload_map(&sample_statement(1, c.key_id()));
    let mut names: Vec<String> = (0..300)
        .map(|i| format!("v{i:03}{}", "x".repeat(220)))
        .collect();
    names.sort();
    map[9].1 = Cbor::Array(names.into_iter().map(Cbor::Text).collect());
    let bytes = cose(
        eddsa_header(c.key_id()).build(),
        cbor_bytes(&Cbor::Map(map)),
        &c,
    );
    assert!(bytes.len() > verdict_core::receipt::MAX_RECEIPT_SIZE);
    bytes
}

/// RFC 9162 §2.1.1 MTH and §2.1.3.1 PATH, written out naively as an oracle independent of
/// `verdict_core::proof`.
fn mth(leaves: &[Vec<u8>]) -> Hash {
    match leaves.len() {
        0 => Hash(Sha256::digest(b"").into()),
        1 => leaf_hash(&leaves[0]),
        n => {
            let k = split(n);
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn path(m: usize, leaves: &[Vec<u8>]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 {
        return vec![];
    }
    let k = split(n);
    if m < k {
        let mut p = path(m, &leaves[..k]);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = path(m - k, &leaves[k..]);
        p.push(mth(&leaves[..k]));
        p
    }
}

/// Proof bundles: (name, file bytes, stage, expected error or "ok", why).
type BundleCase = (
    &'static str,
    Vec<u8>,
    &'static str,
    &'static str,
    &'static str,
);

fn bundles(leaves: &[Vec<u8>]) -> Vec<BundleCase> {
    let log = log();
    let cp = Checkpoint {
        origin: log.name().into(),
        size: TreeSize(leaves.len() as u64),
        root: mth(leaves),
        extensions: vec![],
    };
    let signed = cp.sign(&log).unwrap();
    let bundle = |i: usize| ProofBundle {
        extra: Some(leaves[i].clone()),
        index: LeafIndex(i as u64),
        proof: path(i, leaves),
        checkpoint: signed.clone(),
    };
    let mut out: Vec<BundleCase> = Vec::new();
    out.push((
        "valid-index-0",
        bundle(0).encode(),
        "verify",
        "ok",
        "receipt 0 in a 5-leaf log",
    ));
    out.push((
        "valid-index-3",
        bundle(3).encode(),
        "verify",
        "ok",
        "receipt 3 in a 5-leaf log",
    ));
    out.push((
        "valid-index-4",
        bundle(4).encode(),
        "verify",
        "ok",
        "the last leaf (proof of one hash)",
    ));

    let mut b = bundle(3);
    b.extra.as_mut().unwrap()[10] ^= 1;
    out.push((
        "tampered-receipt",
        b.encode(),
        "verify",
        "inclusion",
        "one byte of the receipt changed",
    ));

    let mut b = bundle(3);
    b.index = LeafIndex(2);
    out.push((
        "wrong-index",
        b.encode(),
        "verify",
        "inclusion",
        "index 2 with the proof of index 3",
    ));

    let mut b = bundle(3);
    b.proof.pop();
    out.push((
        "short-proof",
        b.encode(),
        "verify",
        "inclusion",
        "last proof hash removed",
    ));

    let forger = Signer::new(
        log.name(),
        ed25519_dalek::SigningKey::from_bytes(&[0x66; 32]),
    )
    .unwrap();
    let mut b = bundle(3);
    b.checkpoint = cp.sign(&forger).unwrap();
    out.push((
        "forged-checkpoint",
        b.encode(),
        "verify",
        "checkpoint",
        "checkpoint signed by another key under the log's name",
    ));

    let mut b = bundle(3);
    b.extra = None;
    out.push((
        "missing-extra",
        b.encode(),
        "verify",
        "missing-entry",
        "no extra line, so nothing to prove",
    ));

    let text = String::from_utf8(bundle(3).encode()).unwrap();
    out.push((
        "duplicate-index",
        text.replacen("index 3\n", "index 3\nindex 3\n", 1)
            .into_bytes(),
        "parse",
        "malformed",
        "the index line twice",
    ));
    out.push((
        "truncated-hash",
        text.replacen("=\n\n", "\n\n", 1).into_bytes(),
        "parse",
        "malformed",
        "a proof hash without its base64 padding",
    ));
    out.push((
        "trailing-data",
        [text.as_bytes(), b"garbage"].concat(),
        "parse",
        "checkpoint",
        "bytes after the checkpoint's signature lines",
    ));
    out.push((
        "wrong-header",
        text.replacen("tlog-proof@v1", "tlog-proof@v2", 1)
            .into_bytes(),
        "parse",
        "malformed",
        "first line names another format version",
    ));
    out
}

/// Every generated file, by path relative to `testdata/receipts/`.
pub fn generate() -> BTreeMap<String, Vec<u8>> {
    let c = checker();
    let statements: Vec<Statement> = (0..5).map(|n| sample_statement(n, c.key_id())).collect();
    let receipts: Vec<Vec<u8>> = statements
        .iter()
        .map(|s| Receipt::sign(s, &c).unwrap())
        .collect();
    let valid: Vec<Value> = statements
        .iter()
        .zip(&receipts)
        .zip(VALID_NAMES)
        .map(|((s, r), name)| {
            json!({"name": name, "receipt_hex": hex::encode(r), "statement": statement_json(s)})
        })
        .collect();
    // Added after the five above (which the proof bundles prove), so their bytes stay the same.
    let mut valid = valid;
    let in_scope = Statement {
        decision: Decision::InScope,
        kind: Kind::Screen,
        request_id: "req-0005".into(),
        time_ms: 1_795_000_005_000,
        matched_variables: vec!["amount".into()],
        ..sample_statement(3, c.key_id())
    };
    valid.push(json!({
        "name": "in-scope-screen",
        "receipt_hex": hex::encode(Receipt::sign(&in_scope, &c).unwrap()),
        "statement": statement_json(&in_scope),
    }));
    let mut invalid: Vec<Value> = invalid_receipts(&receipts[0])
        .into_iter()
        .map(|(name, bytes, error, why)| {
            json!({"name": name, "receipt_hex": hex::encode(bytes), "error": error, "why": why})
        })
        .collect();
    invalid.push(json!({
        "name": "oversize",
        "receipt_file": "oversize.cose",
        "error": "too-large",
        "why": "a validly signed receipt of more than 65,535 bytes",
    }));
    let commitments: Vec<Value> = [
        (CommitmentTag::Action, [0u8; 32], "{\"amount\":100}"),
        (CommitmentTag::Action, [1u8; 32], "{\"amount\":100}"),
        (CommitmentTag::Policy, [0u8; 32], "{\"amount\":100}"),
        (CommitmentTag::Rule, [0x5a; 32], ""),
    ]
    .into_iter()
    .map(|(tag, salt, text)| {
        json!({
            "tag": tag.as_str(),
            "salt_hex": hex::encode(salt),
            "canonical_utf8": text,
            "commitment_hex": commit(tag, &Salt(salt), text.as_bytes()).to_hex(),
        })
    })
    .collect();

    let mut files = BTreeMap::new();
    let mut bundle_list = Vec::new();
    for (name, bytes, stage, error, why) in bundles(&receipts) {
        let file = format!("bundles/{name}.tlog-proof");
        bundle_list.push(json!({"file": file, "stage": stage, "error": error, "why": why}));
        files.insert(file, bytes);
    }
    let doc = json!({
        "about": GENERATED_BY,
        "spec": "spec/receipt.md §8, spec/proof-bundle.md §5",
        "checker_vkey": c.verifier().to_string(),
        "checker_skey": c.to_private_key_string(),
        "untrusted_vkey": stranger().verifier().to_string(),
        "log_vkey": log().verifier().to_string(),
        "log_skey": log().to_private_key_string(),
        "valid": valid,
        "invalid": invalid,
        "commitments": commitments,
        "bundles": bundle_list,
    });
    // Sort keys ourselves: serde_json's map order depends on its `preserve_order` feature, which
    // another workspace member's dependency (cedar-policy) switches on in workspace-wide builds.
    let mut text = serde_json::to_string_pretty(&sorted_keys(doc)).unwrap();
    text.push('\n');
    files.insert("vectors.json".into(), text.into_bytes());
    files.insert("oversize.cose".into(), oversize_receipt());
    files
}

/// `value` with every object's keys in sorted order, whatever serde_json's map type is.
fn sorted_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<String, Value> =
                map.into_iter().map(|(k, v)| (k, sorted_keys(v))).collect();
            Value::Object(sorted.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted_keys).collect()),
        other => other,
    }
}
