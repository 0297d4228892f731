//! Property tests of the statement, receipt and proof-bundle codecs (spec `receipt.md` §3–§6,
//! `proof-bundle.md` §2–§4): round trips are exact, re-encoding is byte-identical, and any
//! single-byte corruption of a signed receipt never verifies.

use proptest::prelude::*;
use verdict_core::bundle::ProofBundle;
use verdict_core::checkpoint::Checkpoint;
use verdict_core::merkle::Hash;
use verdict_core::note::KeyId;
use verdict_core::receipt::{Decision, Kind, Receipt, Statement, STATEMENT_VERSION};
use verdict_core::{LeafIndex, TreeSize};

fn sorted_unique<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v.dedup();
    v
}

fn statement(key: KeyId) -> impl Strategy<Value = Statement> {
    let decision = prop_oneof![
        Just(Decision::Allow),
        Just(Decision::Deny),
        Just(Decision::Escalate),
        Just(Decision::NotApplicable),
        Just(Decision::InScope)
    ];
    let kind = prop_oneof![Just(Kind::Screen), Just(Kind::Check)];
    let names = || prop::collection::vec("[a-z_.\u{e9}]{1,20}", 0..5).prop_map(sorted_unique);
    (
        (
            any::<[u8; 32]>(),
            "[ -~]{0,30}",
            any::<[u8; 32]>(),
            decision,
            kind,
            any::<bool>(),
        ),
        (
            prop::collection::vec(any::<u32>(), 0..6).prop_map(sorted_unique),
            names(),
            names(),
            prop::collection::vec(any::<[u8; 4]>(), 0..3)
                .prop_map(|v| sorted_unique(v.into_iter().map(KeyId).collect())),
        ),
        (any::<u64>(), "[ -~]{0,64}", "[ -~]{0,40}", "[ -~]{0,40}"),
    )
        .prop_map(move |(a, b, c)| Statement {
            version: STATEMENT_VERSION,
            checker_key_id: key,
            policy_commitment: Hash(a.0),
            policy_version: a.1,
            action_commitment: Hash(a.2),
            // A screen admits only not-applicable and in-scope, a check all but in-scope
            // (spec receipt.md §3): an inadmissible pair keeps the decision and fixes the kind.
            decision: a.3,
            kind: if a.3.admitted_by(a.4) {
                a.4
            } else if a.4 == Kind::Screen {
                Kind::Check
            } else {
                Kind::Screen
            },
            fail_closed: a.5,
            violated_rules: b.0,
            matched_variables: b.1,
            undetermined_variables: b.2,
            approvers: b.3,
            time_ms: c.0,
            request_id: c.1,
            checker_version: c.2,
            solver_version: c.3,
        })
}

fn bundle() -> impl Strategy<Value = ProofBundle> {
    let log = super::log();
    let cp = Checkpoint {
        origin: log.name().into(),
        size: TreeSize(1000),
        root: Hash([7; 32]),
        extensions: vec![],
    };
    let signed = cp.sign(&log).unwrap();
    (
        prop::option::of(prop::collection::vec(any::<u8>(), 0..200)),
        any::<u64>(),
        prop::collection::vec(any::<[u8; 32]>().prop_map(Hash), 0..20),
    )
        .prop_map(move |(extra, index, proof)| ProofBundle {
            extra,
            index: LeafIndex(index),
            proof,
            checkpoint: signed.clone(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn statement_round_trip(s in statement(KeyId([1, 2, 3, 4]))) {
        let bytes = s.to_cbor().unwrap();
        let back = Statement::from_cbor(&bytes).unwrap();
        prop_assert_eq!(&back, &s);
        prop_assert_eq!(back.to_cbor().unwrap(), bytes);
    }

    #[test]
    fn receipt_round_trip(s in statement(super::checker().key_id())) {
        let signer = super::checker();
        let bytes = Receipt::sign(&s, &signer).unwrap();
        let decoded = Receipt::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded.statement, &s);
        prop_assert_eq!(decoded.encode().unwrap(), bytes.clone());
        let verified = Receipt::verify(&bytes, &[signer.verifier()]).unwrap();
        prop_assert_eq!(verified.statement(), &s);
    }

    #[test]
    fn corrupted_receipt_never_verifies(
        s in statement(super::checker().key_id()),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let signer = super::checker();
        let mut bytes = Receipt::sign(&s, &signer).unwrap();
        let i = at.index(bytes.len());
        bytes[i] ^= xor;
        prop_assert!(Receipt::verify(&bytes, &[signer.verifier()]).is_err());
    }

    #[test]
    fn bundle_round_trip(b in bundle()) {
        let bytes = b.encode();
        let back = ProofBundle::parse(&bytes).unwrap();
        prop_assert_eq!(&back, &b);
        prop_assert_eq!(back.encode(), bytes);
    }

    #[test]
    fn decoders_total(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = Statement::from_cbor(&bytes);
        let _ = Receipt::decode(&bytes);
        let _ = ProofBundle::parse(&bytes);
    }
}
