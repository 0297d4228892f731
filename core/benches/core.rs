//! Criterion benchmarks of `verdict-core`. Figures and the command used are in
//! `docs/benchmarks.md`. Each area has its own function and `criterion_group!`; add a group by
//! appending a function, a `criterion_group!` and its name to `criterion_main!`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benches; criterion_group! generates undocumented functions"
)]

use std::hint::black_box;

mod common;

use common::{indices, tree, Levels};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use verdict_core::merkle::{leaf_hash, node_hash, Hash, RightEdge};
use verdict_core::proof::{
    consistency_proof, inclusion_proof, verify_consistency, verify_inclusion,
};
use verdict_core::{LeafIndex, TreeSize};

/// Leaves of the large tree (2^20 = 1,048,576).
const BIG: u64 = 1 << 20;

fn big_tree() -> (Levels, RightEdge) {
    tree(BIG, |i| i.to_le_bytes().to_vec())
}

/// CPU time of the current thread in ns (Linux `/proc/thread-self/schedstat`, first field).
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Run `f` `n` times and print operations per second of this thread's CPU time (one core),
/// skipped where `/proc` is unavailable. Long enough (about a second) that the scheduler's
/// accounting granularity does not matter.
fn cpu_rate(name: &str, n: usize, mut f: impl FnMut(usize)) {
    let Some(start) = thread_cpu_ns() else {
        return;
    };
    let wall = std::time::Instant::now();
    for k in 0..n {
        f(black_box(k));
    }
    let Some(end) = thread_cpu_ns() else {
        return;
    };
    let cpu = (end - start) as f64 / 1e9;
    println!(
        "{name}: {n} ops in {cpu:.3} s thread CPU ({:.3} s wall): {:.0} ops/s per core",
        wall.elapsed().as_secs_f64(),
        n as f64 / cpu
    );
}

/// Merkle hashing, proof generation and proof verification on a 2^20-leaf tree.
fn bench_merkle(c: &mut Criterion) {
    let mut g = c.benchmark_group("merkle");
    let entry = vec![0xabu8; 256];
    g.throughput(Throughput::Elements(1));
    g.bench_function("leaf_hash_256B", |b| {
        b.iter(|| leaf_hash(black_box(&entry)))
    });
    let (l, r) = (leaf_hash(b"l"), leaf_hash(b"r"));
    g.bench_function("node_hash", |b| {
        b.iter(|| node_hash(black_box(&l), black_box(&r)))
    });
    g.bench_function("right_edge_append", |b| {
        let mut edge = RightEdge::new();
        b.iter(|| {
            edge.append(black_box(l), &mut |s| {
                black_box(s);
            })
        })
    });

    let (store, edge) = big_tree();
    let size = edge.size();
    let root = edge.root();
    let idx = indices(1024, BIG);
    let mut k = 0usize;
    g.bench_function("inclusion_proof_gen_1M", |b| {
        b.iter(|| {
            k = (k + 1) % idx.len();
            inclusion_proof(&store, LeafIndex(idx[k]), size).unwrap()
        })
    });
    let proofs: Vec<(u64, Hash, Vec<Hash>)> = idx
        .iter()
        .map(|&i| {
            let p = inclusion_proof(&store, LeafIndex(i), size).unwrap();
            (i, store.0[0][i as usize], p)
        })
        .collect();
    g.bench_function("inclusion_verify_1M", |b| {
        b.iter(|| {
            k = (k + 1) % proofs.len();
            let (i, leaf, p) = &proofs[k];
            verify_inclusion(leaf, LeafIndex(*i), size, p, &root).unwrap()
        })
    });
    // The same work timed in this thread's CPU time, so the figure is per core even when the
    // machine is shared (printed, not a criterion result).
    cpu_rate("inclusion_verify_1M", 400_000, |n| {
        let (i, leaf, p) = &proofs[n % proofs.len()];
        verify_inclusion(leaf, LeafIndex(*i), size, p, &root).unwrap();
    });

    // Consistency from random old sizes to the full tree; old roots from a second pass.
    let olds: Vec<u64> = indices(64, BIG).into_iter().map(|o| o + 1).collect();
    let mut old_roots = Vec::new();
    let mut e = RightEdge::new();
    let mut sorted = olds.clone();
    sorted.sort_unstable();
    let mut next = 0;
    for &o in &sorted {
        while e.size().0 < o {
            e.append(store.0[0][next], &mut |_| {}).unwrap();
            next += 1;
        }
        old_roots.push((o, e.root()));
    }
    g.bench_function("consistency_proof_gen_1M", |b| {
        b.iter(|| {
            k = (k + 1) % sorted.len();
            consistency_proof(&store, TreeSize(sorted[k]), size).unwrap()
        })
    });
    let cons: Vec<(u64, Hash, Vec<Hash>)> = old_roots
        .iter()
        .map(|&(o, r)| (o, r, consistency_proof(&store, TreeSize(o), size).unwrap()))
        .collect();
    g.bench_function("consistency_verify_1M", |b| {
        b.iter(|| {
            k = (k + 1) % cons.len();
            let (o, r, p) = &cons[k];
            verify_consistency(TreeSize(*o), size, p, r, &root).unwrap()
        })
    });
    cpu_rate("consistency_verify_1M", 200_000, |n| {
        let (o, r, p) = &cons[n % cons.len()];
        verify_consistency(TreeSize(*o), size, p, r, &root).unwrap();
    });
    cpu_rate("leaf_hash_256B", 1_000_000, |_| {
        black_box(leaf_hash(black_box(&entry)));
    });
    g.finish();
}

criterion_group!(merkle, bench_merkle);

/// Signed notes, checkpoints and receipts (spec `note-and-checkpoint.md`, `receipt.md`).
fn bench_formats(c: &mut Criterion) {
    use verdict_core::checkpoint::Checkpoint;
    use verdict_core::note::{Note, Signer};
    use verdict_core::receipt::{Decision, Kind, Receipt, Statement, STATEMENT_VERSION};

    let log = Signer::new(
        "verdict.example/log",
        ed25519_dalek::SigningKey::from_bytes(&[0x4c; 32]),
    )
    .unwrap();
    let checkpoint = Checkpoint {
        origin: log.name().into(),
        size: TreeSize(1 << 20),
        root: Hash([7; 32]),
        extensions: vec![],
    };
    let signed = checkpoint.sign(&log).unwrap();
    let log_key = log.verifier();
    let mut group = c.benchmark_group("formats");
    group.throughput(Throughput::Elements(1));
    group.bench_function("note_parse_verify", |b| {
        b.iter(|| {
            Note::parse(black_box(&signed))
                .unwrap()
                .verify(std::slice::from_ref(&log_key))
                .unwrap()
        })
    });
    group.bench_function("checkpoint_open", |b| {
        b.iter(|| Checkpoint::open(black_box(&signed), &log_key, &[]).unwrap())
    });

    let checker = Signer::new(
        "verdict.example/checker",
        ed25519_dalek::SigningKey::from_bytes(&[0x43; 32]),
    )
    .unwrap();
    let statement = Statement {
        version: STATEMENT_VERSION,
        checker_key_id: checker.key_id(),
        policy_commitment: Hash([1; 32]),
        policy_version: "2026.11.3".into(),
        action_commitment: Hash([2; 32]),
        decision: Decision::Deny,
        kind: Kind::Check,
        fail_closed: false,
        violated_rules: vec![0, 3],
        matched_variables: vec!["amount".into(), "payee".into()],
        undetermined_variables: vec![],
        approvers: vec![],
        time_ms: 1_795_000_000_000,
        request_id: "req-0001".into(),
        checker_version: "verdict-checker 0.1.0".into(),
        solver_version: "z3 4.8.12".into(),
    };
    let receipt = Receipt::sign(&statement, &checker).unwrap();
    let checker_key = checker.verifier();
    group.bench_function("receipt_sign", |b| {
        b.iter(|| Receipt::sign(black_box(&statement), &checker).unwrap())
    });
    group.bench_function("receipt_decode", |b| {
        b.iter(|| Receipt::decode(black_box(&receipt)).unwrap())
    });
    group.bench_function("receipt_decode_verify", |b| {
        b.iter(|| Receipt::verify(black_box(&receipt), std::slice::from_ref(&checker_key)).unwrap())
    });
    group.finish();

    cpu_rate("formats: note parse+verify", 10_000, |_| {
        Note::parse(&signed)
            .unwrap()
            .verify(std::slice::from_ref(&log_key))
            .unwrap();
    });
    cpu_rate("formats: checkpoint open", 10_000, |_| {
        Checkpoint::open(&signed, &log_key, &[]).unwrap();
    });
    cpu_rate("formats: receipt sign", 20_000, |_| {
        Receipt::sign(&statement, &checker).unwrap();
    });
    cpu_rate("formats: receipt decode", 40_000, |_| {
        Receipt::decode(&receipt).unwrap();
    });
    cpu_rate("formats: receipt decode+verify", 10_000, |_| {
        Receipt::verify(&receipt, std::slice::from_ref(&checker_key)).unwrap();
    });
}

criterion_group!(formats, bench_formats);
criterion_main!(merkle, formats);
