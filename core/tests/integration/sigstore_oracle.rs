//! Our RFC 9162 proof verification against sigstore's RFC 6962 verification, an independent
//! implementation (spec `merkle.md` §9). Consistency goes through
//! `rekor::models::ConsistencyProof::verify`; inclusion through `rekor::models::InclusionProof`,
//! which also checks a checkpoint signed by our own `Checkpoint::sign`, so sigstore's checkpoint
//! code accepts our checkpoint bodies and signatures.
//!
//! Known difference: sigstore accepts a consistency proof from size 0 (empty proof, empty root);
//! our verifier rejects it by design (spec `merkle.md` §7.1). Those cases assert our rule instead.

use proptest::prelude::*;
use sigstore::crypto::{CosignVerificationKey, SigningScheme};
use sigstore::rekor::models::checkpoint::{
    Checkpoint as SsCheckpoint, CheckpointSignature, SignedCheckpoint,
};
use sigstore::rekor::models::{ConsistencyProof, InclusionProof};
use verdict_core::checkpoint::Checkpoint;
use verdict_core::merkle::{leaf_hash, Hash, RightEdge};
use verdict_core::note::{Note, Signer};
use verdict_core::proof::{
    consistency_proof, inclusion_proof, verify_consistency, verify_inclusion, MemoryHashSource,
};
use verdict_core::{LeafIndex, TreeSize};

/// How a proof is tampered with before both verifiers see it.
#[derive(Clone, Debug)]
enum Tamper {
    None,
    FlipBit(usize, u8),
    Drop(usize),
    Append,
    Duplicate,
    SwapRoots,
    OldSize(i8),
    NewSize(i8),
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        3 => Just(Tamper::None),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Tamper::FlipBit(i, b)),
        1 => any::<usize>().prop_map(Tamper::Drop),
        1 => Just(Tamper::Append),
        1 => Just(Tamper::Duplicate),
        1 => Just(Tamper::SwapRoots),
        1 => (-2i8..=2).prop_map(Tamper::OldSize),
        1 => (-2i8..=2).prop_map(Tamper::NewSize),
    ]
}

fn shift(v: u64, d: i8) -> u64 {
    v.saturating_add_signed(i64::from(d))
}

fn apply(t: &Tamper, proof: &mut Vec<Hash>, sizes: &mut (u64, u64), roots: &mut (Hash, Hash)) {
    match *t {
        Tamper::None => {}
        Tamper::FlipBit(i, b) => {
            if !proof.is_empty() {
                let n = proof.len();
                proof[i % n].0[usize::from(b) % 32] ^= 1 << (b % 8);
            }
        }
        Tamper::Drop(i) => {
            if !proof.is_empty() {
                let n = proof.len();
                proof.remove(i % n);
            }
        }
        Tamper::Append => proof.push(roots.0),
        Tamper::Duplicate => {
            if let Some(f) = proof.first().copied() {
                proof.insert(0, f);
            }
        }
        Tamper::SwapRoots => std::mem::swap(&mut roots.0, &mut roots.1),
        Tamper::OldSize(d) => sizes.0 = shift(sizes.0, d),
        Tamper::NewSize(d) => sizes.1 = shift(sizes.1, d),
    }
}

fn tree(n: usize) -> (Vec<Vec<u8>>, Vec<Hash>, Vec<Hash>) {
    let entries: Vec<Vec<u8>> = (0..n).map(|i| format!("entry {i}").into_bytes()).collect();
    let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
    let mut edge = RightEdge::new();
    let mut roots = vec![edge.root()];
    for l in &leaves {
        edge.append(*l, &mut |_| {}).unwrap();
        roots.push(edge.root());
    }
    (entries, leaves, roots)
}

/// Ed25519 public key in SPKI DER form (RFC 8410): fixed 12-byte prefix and the 32-byte key.
fn spki(key: &ed25519_dalek::VerifyingKey) -> Vec<u8> {
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(key.as_bytes());
    der
}

/// Our signed checkpoint, re-expressed as sigstore's `SignedCheckpoint`.
fn sigstore_checkpoint(signer: &Signer, size: u64, root: Hash) -> SignedCheckpoint {
    let cp = Checkpoint {
        origin: signer.name().to_owned(),
        size: TreeSize(size),
        root,
        extensions: vec![],
    };
    let note = Note::parse(&cp.sign(signer).unwrap()).unwrap();
    let sig = &note.signatures[0];
    SignedCheckpoint {
        note: SsCheckpoint {
            origin: cp.origin.clone(),
            size,
            hash: root.0,
            other_content: vec![],
        },
        signatures: vec![CheckpointSignature {
            key_fingerprint: sig.key_id.0,
            raw: sig.signature.clone(),
            name: sig.name.clone(),
        }],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn consistency_agrees_with_sigstore(n in 1usize..80, a in any::<usize>(), b in any::<usize>(), t in tamper()) {
        let (_, leaves, roots) = tree(n);
        let new = b % n + 1;
        let old = a % new + 1;
        let mut proof = consistency_proof(&MemoryHashSource::new(leaves), TreeSize(old as u64), TreeSize(new as u64)).unwrap();
        let mut sizes = (old as u64, new as u64);
        let mut rs = (roots[old], roots[new]);
        apply(&t, &mut proof, &mut sizes, &mut rs);
        let ours = verify_consistency(TreeSize(sizes.0), TreeSize(sizes.1), &proof, &rs.0, &rs.1);
        let raw: Vec<[u8; 32]> = proof.iter().map(|h| h.0).collect();
        let theirs = ConsistencyProof::new(rs.1 .0, raw).verify(sizes.0, &rs.0 .0, sizes.1, Some(&rs.1 .0));
        if sizes.0 == 0 {
            prop_assert!(ours.is_err(), "size-0 rule");
        } else {
            prop_assert_eq!(ours.is_ok(), theirs.is_ok(), "tamper {:?}: ours {:?} theirs {:?}", t, ours, theirs.err());
        }
        if matches!(t, Tamper::None) {
            prop_assert!(ours.is_ok());
        }
    }

    #[test]
    fn inclusion_agrees_with_sigstore(n in 1usize..80, a in any::<usize>(), t in tamper()) {
        let (entries, leaves, roots) = tree(n);
        let i = a % n;
        let mut proof = inclusion_proof(&MemoryHashSource::new(leaves.clone()), LeafIndex(i as u64), TreeSize(n as u64)).unwrap();
        // Reuse the tamper kinds: OldSize moves the index, NewSize the tree size.
        let mut sizes = (i as u64, n as u64);
        let mut rs = (roots[n], leaves[i]);
        apply(&t, &mut proof, &mut sizes, &mut rs);
        let (root, leaf) = rs;
        let ours = verify_inclusion(&leaf, LeafIndex(sizes.0), TreeSize(sizes.1), &proof, &root);
        let signer = Signer::generate("example.com/verdict/oracle").unwrap();
        let key = CosignVerificationKey::from_der(&spki(signer.verifier().key()), &SigningScheme::ED25519).unwrap();
        let ip = InclusionProof::new(
            sizes.0 as i64,
            root.0,
            sizes.1,
            proof.iter().map(|h| h.0).collect(),
            Some(sigstore_checkpoint(&signer, sizes.1, root)),
        );
        // Sigstore takes the entry and hashes it itself: only an untampered leaf has an entry.
        let entry_matches = leaf == leaves[i];
        let theirs = ip.verify(&entries[i], &key);
        if entry_matches {
            prop_assert_eq!(ours.is_ok(), theirs.is_ok(), "tamper {:?}: ours {:?} theirs {:?}", t, ours, theirs.err());
        } else {
            prop_assert!(ours.is_err());
        }
        if matches!(t, Tamper::None) {
            prop_assert!(ours.is_ok());
        }
    }
}
