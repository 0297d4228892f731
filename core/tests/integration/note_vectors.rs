//! C2SP signed-note known answers (`testdata/vectors/signed-note/vectors.json`), every Tessera
//! `checkpoint.N` opened with the Tessera log key, and property tests of the note and checkpoint
//! codecs. Spec: `spec/note-and-checkpoint.md` §8.

use proptest::prelude::*;
use serde_json::Value;
use verdict_core::checkpoint::{Checkpoint, CheckpointError};
use verdict_core::merkle::Hash;
use verdict_core::note::{self, Note, NoteError, Signer, Verifier};
use verdict_core::TreeSize;

fn vectors() -> Value {
    let path = crate::testdata().join("vectors/signed-note/vectors.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("missing {field}"))
}

#[test]
fn signed_note_vectors() {
    let v = vectors();
    let mut ran = 0;
    for case in v["valid"].as_array().unwrap() {
        let name = str_of(case, "name");
        let vkey = str_of(case, "vkey");
        let verifier = Verifier::parse(vkey).unwrap();
        assert_eq!(verifier.to_string(), vkey, "{name}: vkey round trip");
        let signed = str_of(case, "signed").as_bytes();
        let opened = note::open(signed, std::slice::from_ref(&verifier)).unwrap();
        assert_eq!(opened.text(), str_of(case, "text"), "{name}");
        assert_eq!(opened.verified_by(), &[verifier.key_id()]);
        assert_eq!(Note::parse(signed).unwrap().to_bytes(), signed, "{name}");
        if let Some(skey) = case["skey"].as_str() {
            let signer = Signer::parse(skey).unwrap();
            assert_eq!(
                signer.to_private_key_string(),
                skey,
                "{name}: skey round trip"
            );
            assert_eq!(signer.verifier(), verifier, "{name}: skey matches vkey");
            let mut note = Note::new(str_of(case, "text")).unwrap();
            note.sign(&signer);
            assert_eq!(
                String::from_utf8(note.to_bytes()).unwrap(),
                str_of(case, "signed"),
                "{name}: deterministic signature reproduced byte for byte"
            );
        }
        ran += 1;
    }
    for case in v["bad_vkeys"].as_array().unwrap() {
        let err = Verifier::parse(str_of(case, "vkey")).unwrap_err();
        assert!(
            matches!(err, NoteError::MalformedKey { .. }),
            "{}: {err}",
            str_of(case, "why")
        );
        ran += 1;
    }
    for case in v["rejected_notes"].as_array().unwrap() {
        let verifier = Verifier::parse(str_of(case, "vkey")).unwrap();
        let res = note::open(str_of(case, "signed").as_bytes(), &[verifier]);
        assert!(
            matches!(
                res,
                Err(NoteError::NoTrustedSignature | NoteError::InvalidSignature { .. })
            ),
            "{}: {res:?}",
            str_of(case, "why")
        );
        ran += 1;
    }
    assert_eq!(ran, 6, "every signed-note vector ran");
    println!("signed-note vectors: {ran} cases ran");
}

/// The spec's rule: a signature whose key name matches but whose key id differs (or the other way
/// round) is unknown, so it is ignored rather than failing the note.
#[test]
fn name_or_id_alone_is_unknown() {
    let v = vectors();
    let case = &v["valid"][1];
    let verifier = Verifier::parse(str_of(case, "vkey")).unwrap();
    let signer = Signer::parse(str_of(case, "skey")).unwrap();
    let other = Signer::new(
        verifier.name(),
        ed25519_dalek::SigningKey::from_bytes(&[42; 32]),
    )
    .unwrap();
    let mut note = Note::new(str_of(case, "text")).unwrap();
    note.sign(&other);
    note.sign(&signer);
    let opened = note::open(&note.to_bytes(), &[verifier]).unwrap();
    assert_eq!(opened.verified_by().len(), 1);
}

#[test]
fn tessera_checkpoints_open() {
    let v = vectors();
    let log_key = Verifier::parse(str_of(&v, "tessera_log_vkey")).unwrap();
    let dir = crate::testdata().join("vectors/tessera-log");
    let mut ran = 0;
    for n in 0..=15u64 {
        let bytes = std::fs::read(dir.join(format!("checkpoint.{n}"))).unwrap();
        let cp = Checkpoint::open(&bytes, &log_key, &[]).unwrap();
        assert_eq!(cp.checkpoint().size, TreeSize(n));
        assert_eq!(cp.checkpoint().origin, "example.com/log/testdata");
        assert_eq!(cp.checkpoint().to_text(), cp.note().text());
        assert_eq!(Note::parse(&bytes).unwrap().to_bytes(), bytes);
        ran += 1;
    }
    let latest = std::fs::read(dir.join("checkpoint")).unwrap();
    let cp = Checkpoint::open(&latest, &log_key, &[]).unwrap();
    assert_eq!(cp.checkpoint().size, TreeSize(15));
    assert_eq!(
        cp.checkpoint().root,
        Hash::from_base64("rKbDipCvhuX1GZ7g5BBe8sA6BbJ7ja/1nk427v383cs=").unwrap()
    );
    ran += 1;
    // A log key under another name does not open them, even with the same public key.
    let renamed = Verifier::new("example.com/other", *log_key.key()).unwrap();
    assert!(matches!(
        Checkpoint::open(&latest, &renamed, &[]),
        Err(CheckpointError::OriginMismatch { .. })
    ));
    println!("tessera checkpoints opened: {ran}");
}

/// Key names: non-empty, no `+`, no whitespace, no control characters.
fn key_name() -> impl Strategy<Value = String> {
    "[a-z0-9./_-]{1,24}"
}

/// Note text: lines of printable text (possibly empty lines), ending in a newline.
fn note_text() -> impl Strategy<Value = String> {
    prop::collection::vec("[ -~\u{a0}-\u{2fff}]{0,40}", 1..6).prop_map(|lines| {
        let mut text = lines.join("\n");
        text.push('\n');
        text
    })
}

fn checkpoint() -> impl Strategy<Value = Checkpoint> {
    (
        key_name(),
        any::<u64>(),
        any::<[u8; 32]>(),
        prop::collection::vec("[ -~]{1,30}", 0..3),
    )
        .prop_map(|(origin, size, root, extensions)| Checkpoint {
            origin,
            size: TreeSize(size),
            root: Hash(root),
            extensions,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn note_round_trip(text in note_text(), names in prop::collection::btree_set(key_name(), 1..4),
                       seed in any::<[u8; 32]>()) {
        let mut note = Note::new(&text).unwrap();
        let signers: Vec<Signer> = names
            .iter()
            .map(|n| Signer::new(n, ed25519_dalek::SigningKey::from_bytes(&seed)).unwrap())
            .collect();
        for s in &signers {
            note.sign(s);
        }
        let bytes = note.to_bytes();
        let parsed = Note::parse(&bytes).unwrap();
        prop_assert_eq!(&parsed, &note);
        prop_assert_eq!(parsed.to_bytes(), bytes);
        prop_assert!(parsed.verify(&[signers[0].verifier()]).is_ok());
    }

    #[test]
    fn checkpoint_round_trip(cp in checkpoint(), seed in any::<[u8; 32]>()) {
        prop_assert_eq!(Checkpoint::parse(&cp.to_text()).unwrap(), cp.clone());
        let signer = Signer::new(&cp.origin, ed25519_dalek::SigningKey::from_bytes(&seed)).unwrap();
        let signed = cp.sign(&signer).unwrap();
        let opened = Checkpoint::open(&signed, &signer.verifier(), &[]).unwrap();
        prop_assert_eq!(opened.checkpoint(), &cp);
    }

    #[test]
    fn corrupted_checkpoint_never_opens(cp in checkpoint(), at in any::<prop::sample::Index>(),
                                        bit in 0u8..8) {
        let signer = Signer::new(&cp.origin, ed25519_dalek::SigningKey::from_bytes(&[1; 32])).unwrap();
        let mut signed = cp.sign(&signer).unwrap();
        let i = at.index(signed.len());
        signed[i] ^= 1 << bit;
        // Flipping a bit breaks the syntax, the key name or id, or the signature.
        prop_assert!(Checkpoint::open(&signed, &signer.verifier(), &[]).is_err());
    }

    #[test]
    fn note_parser_total(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Note::parse(&bytes);
        let _ = Checkpoint::parse(&String::from_utf8_lossy(&bytes));
    }
}
