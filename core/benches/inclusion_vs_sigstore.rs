//! Inclusion-proof verification: `verdict-core` (RFC 9162 §2.1.3.2) against the `sigstore` crate
//! (RFC 6962 via `rekor::models::InclusionProof::verify`) on the same inputs (issue 6).
//!
//! Inputs, per tree size (1,000 and 1,000,000 leaves): 8 leaves at fixed pseudo-random indices,
//! each a 256-byte entry, its inclusion proof, and one checkpoint signed by our `Checkpoint::sign`
//! (Ed25519, C2SP signed note). Both verifiers get the same entry bytes, index, size, proof
//! hashes, root and signature.
//!
//! sigstore's public API always verifies the checkpoint signature with the proof (it has no
//! public proof-only verifier), so the compared operation is the whole client check:
//! - `verify/ours`: `Checkpoint::open` (parse the note, verify the Ed25519 signature) +
//!   `leaf_hash(entry)` + `verify_inclusion`;
//! - `verify/sigstore`: `InclusionProof::verify(entry, key)` (signature over the re-marshalled
//!   checkpoint, leaf hash, proof).
//!
//! `proof/ours` is our proof step alone (leaf hash + `verify_inclusion`), for reference.
//!
//! After criterion, a summary prints the median time per verification of each side (201
//! samples of about 0.5 ms each, robust on a shared machine), the ratio sigstore / ours, and each side's checkpoint
//! signature check alone (ours: `Note::parse` + `verify_indices`; sigstore:
//! `SignedCheckpoint::verify_signature`, which verifies with aws-lc-rs). Command (figures in `docs/benchmarks.md`):
//! `cargo bench -p verdict-core --bench inclusion_vs_sigstore -- --warm-up-time 1 --measurement-time 3`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benches; criterion_group! generates undocumented functions"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

mod common;

use common::{indices, tree};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use sigstore::crypto::{CosignVerificationKey, SigningScheme};
use sigstore::rekor::models::checkpoint::{
    Checkpoint as SsCheckpoint, CheckpointSignature, SignedCheckpoint,
};
use sigstore::rekor::models::InclusionProof;
use verdict_core::checkpoint::Checkpoint;
use verdict_core::merkle::{leaf_hash, Hash};
use verdict_core::note::{Note, Signer, Verifier};
use verdict_core::proof::{inclusion_proof, verify_inclusion};
use verdict_core::{LeafIndex, TreeSize};

/// Tree sizes compared.
const SIZES: [u64; 2] = [1_000, 1_000_000];
/// Leaves verified per size (cycled through by every benchmark).
const LEAVES: usize = 8;

/// The 256-byte entry at `i`.
fn entry(i: u64) -> Vec<u8> {
    let mut e = format!("verdict bench entry {i:020}").into_bytes();
    e.resize(256, b'.');
    e
}

/// One verification input, in both libraries' forms.
struct Case {
    entry: Vec<u8>,
    index: u64,
    size: u64,
    proof: Vec<Hash>,
    root: Hash,
    note: Vec<u8>,
    sigstore: InclusionProof,
}

/// Ed25519 public key in SPKI DER form (RFC 8410): fixed 12-byte prefix and the 32-byte key.
fn spki(key: &ed25519_dalek::VerifyingKey) -> Vec<u8> {
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(key.as_bytes());
    der
}

/// Build the tree of `n` entries, sign its checkpoint, and make the cases.
fn cases(signer: &Signer, n: u64) -> Vec<Case> {
    let (levels, edge) = tree(n, entry);
    let root = edge.root();
    let cp = Checkpoint {
        origin: signer.name().to_owned(),
        size: TreeSize(n),
        root,
        extensions: vec![],
    };
    let note = cp.sign(signer).unwrap();
    let parsed = Note::parse(&note).unwrap();
    let sig = &parsed.signatures[0];
    let signed = SignedCheckpoint {
        note: SsCheckpoint {
            origin: cp.origin.clone(),
            size: n,
            hash: root.0,
            other_content: vec![],
        },
        signatures: vec![CheckpointSignature {
            key_fingerprint: sig.key_id.0,
            raw: sig.signature.clone(),
            name: sig.name.clone(),
        }],
    };
    indices(LEAVES, n)
        .into_iter()
        .map(|index| {
            let proof = inclusion_proof(&levels, LeafIndex(index), TreeSize(n)).unwrap();
            let sigstore = InclusionProof::new(
                i64::try_from(index).unwrap(),
                root.0,
                n,
                proof.iter().map(|h| h.0).collect(),
                Some(signed.clone()),
            );
            Case {
                entry: entry(index),
                index,
                size: n,
                proof,
                root,
                note: note.clone(),
                sigstore,
            }
        })
        .collect()
}

/// Our whole client check: open the signed checkpoint, then verify the proof against its root.
fn ours(c: &Case, key: &Verifier) {
    let cp = Checkpoint::open(&c.note, key, &[]).unwrap();
    let cp = cp.checkpoint();
    assert_eq!(cp.size.0, c.size);
    verify_inclusion(
        &leaf_hash(&c.entry),
        LeafIndex(c.index),
        cp.size,
        &c.proof,
        &cp.root,
    )
    .unwrap();
}

/// Our proof step alone.
fn ours_proof(c: &Case) {
    verify_inclusion(
        &leaf_hash(&c.entry),
        LeafIndex(c.index),
        TreeSize(c.size),
        &c.proof,
        &c.root,
    )
    .unwrap();
}

/// sigstore's inclusion verification (checkpoint signature, leaf hash, proof).
fn theirs(c: &Case, key: &CosignVerificationKey) {
    c.sigstore.verify(&c.entry, key).unwrap();
}

struct Inputs {
    verifier: Verifier,
    key: CosignVerificationKey,
    by_size: Vec<(u64, Vec<Case>)>,
}

fn inputs() -> Inputs {
    let signer = Signer::generate("example.com/verdict/bench").unwrap();
    let verifier = signer.verifier();
    let key =
        CosignVerificationKey::from_der(&spki(verifier.key()), &SigningScheme::ED25519).unwrap();
    let by_size = SIZES.iter().map(|&n| (n, cases(&signer, n))).collect();
    let inputs = Inputs {
        verifier,
        key,
        by_size,
    };
    // Both verifiers accept every case, and both reject a flipped proof bit.
    for (_, cs) in &inputs.by_size {
        for c in cs {
            ours(c, &inputs.verifier);
            theirs(c, &inputs.key);
            let mut bad = InclusionProof::new(
                i64::try_from(c.index).unwrap(),
                c.root.0,
                c.size,
                c.proof.iter().map(|h| h.0).collect(),
                c.sigstore.checkpoint.clone(),
            );
            if let Some(h) = bad.hashes.first_mut() {
                h[0] ^= 1;
                assert!(bad.verify(&c.entry, &inputs.key).is_err());
                let mut proof = c.proof.clone();
                proof[0].0[0] ^= 1;
                assert!(verify_inclusion(
                    &leaf_hash(&c.entry),
                    LeafIndex(c.index),
                    TreeSize(c.size),
                    &proof,
                    &c.root
                )
                .is_err());
            }
        }
    }
    inputs
}

fn bench(c: &mut Criterion) {
    let inputs = inputs();
    let mut g = c.benchmark_group("inclusion_vs_sigstore");
    for (n, cs) in &inputs.by_size {
        let mut k = 0usize;
        g.bench_function(BenchmarkId::new("verify/ours", n), |b| {
            b.iter(|| {
                k = k.wrapping_add(1);
                ours(black_box(&cs[k % cs.len()]), &inputs.verifier);
            });
        });
        g.bench_function(BenchmarkId::new("verify/sigstore", n), |b| {
            b.iter(|| {
                k = k.wrapping_add(1);
                theirs(black_box(&cs[k % cs.len()]), &inputs.key);
            });
        });
        g.bench_function(BenchmarkId::new("proof/ours", n), |b| {
            b.iter(|| {
                k = k.wrapping_add(1);
                ours_proof(black_box(&cs[k % cs.len()]));
            });
        });
    }
    g.finish();
    summary(&inputs);
}

/// Median wall time per call of `f` over 201 samples of about 0.5 ms each. Samples are kept
/// far below a scheduler time slice, so on a shared machine most samples run undisturbed and
/// the median ignores the preempted ones.
fn median_ns(mut f: impl FnMut(usize)) -> f64 {
    let mut iters = 1usize;
    loop {
        let t = Instant::now();
        for k in 0..iters {
            f(black_box(k));
        }
        if t.elapsed() >= Duration::from_micros(500) {
            break;
        }
        iters *= 2;
    }
    let mut samples: Vec<f64> = (0..201)
        .map(|_| {
            let t = Instant::now();
            for k in 0..iters {
                f(black_box(k));
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// The medians side by side and their ratio, and the signature check of each side alone.
fn summary(inputs: &Inputs) {
    println!();
    println!("inclusion verification, median per call (201 samples of ~0.5 ms; 8 leaves cycled):");
    println!(
        "{:>9} {:>5} | {:>10} {:>10} {:>7} | {:>10} {:>10} | {:>10}",
        "tree size", "path", "ours", "sigstore", "s/o", "ours sig", "sstore sig", "ours proof"
    );
    for (n, cs) in &inputs.by_size {
        let ours_ns = median_ns(|k| ours(&cs[k % cs.len()], &inputs.verifier));
        let theirs_ns = median_ns(|k| theirs(&cs[k % cs.len()], &inputs.key));
        let proof_ns = median_ns(|k| ours_proof(&cs[k % cs.len()]));
        let ours_sig_ns = median_ns(|k| {
            let c = &cs[k % cs.len()];
            let note = Note::parse(&c.note).unwrap();
            note.verify_indices(std::slice::from_ref(&inputs.verifier))
                .unwrap();
        });
        let theirs_sig_ns = median_ns(|k| {
            let c = &cs[k % cs.len()];
            let cp = c.sigstore.checkpoint.as_ref().unwrap();
            cp.verify_signature(&inputs.key).unwrap();
        });
        let mean_len = cs.iter().map(|c| c.proof.len()).sum::<usize>() as f64 / cs.len() as f64;
        let us = |ns: f64| format!("{:.2} µs", ns / 1e3);
        println!(
            "{n:>9} {mean_len:>5.1} | {:>10} {:>10} {:>6.2}x | {:>10} {:>10} | {:>10}",
            us(ours_ns),
            us(theirs_ns),
            theirs_ns / ours_ns,
            us(ours_sig_ns),
            us(theirs_sig_ns),
            us(proof_ns),
        );
    }
    println!(
        "(s/o = sigstore / ours; sigstore verifies Ed25519 with aws-lc-rs, ours with \
         ed25519-dalek verify_strict)"
    );
}

criterion_group!(inclusion_vs_sigstore, bench);
criterion_main!(inclusion_vs_sigstore);
