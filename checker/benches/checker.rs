//! Criterion benchmarks of the checker: screening, a decision on a warm solver, a decision plus
//! receipt signing, and compiling each example policy. The Cedar reference is `benches/cedar.rs`
//! (feature `cedar`). Figures: `docs/benchmarks.md` "## checker".
//!
//! Run: `cargo bench -p verdict-checker --bench checker -- --warm-up-time 1 --measurement-time 3`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "benchmark harness"
)]
#![allow(missing_docs, reason = "criterion macros generate undocumented items")]

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use serde_json::json;
use verdict_checker::{compile, issue_receipt, screen, Checker, Kind};
use verdict_core::note::Signer;
use verdict_core::receipt::Salt;

use common::{actions, egress, request, source};

const EXAMPLES: &[&str] = &[
    "customer-data-egress",
    "hipaa-phi",
    "payments-dual-approval",
    "eu-ai-act-human-review",
    "approved-vendors",
];

fn bench_screen(c: &mut Criterion) {
    let p = egress();
    let mut g = c.benchmark_group("screen");
    for (name, a) in actions() {
        g.bench_with_input(BenchmarkId::from_parameter(name), &a, |b, a| {
            b.iter(|| screen(&p, black_box(a)).unwrap())
        });
    }
    g.finish();
}

fn bench_decide(c: &mut Criterion) {
    let p = egress();
    let mut checker = Checker::new(&p, Duration::from_secs(5)).unwrap();
    let mut g = c.benchmark_group("decide_warm/customer-data-egress");
    // The fully specified actions are settled by three-valued evaluation. `escalate-needs-solver`
    // (name kept from earlier runs) leaves the authorization token unbound: the warm checker
    // decides it exactly by enumerating the token's presence; `escalate-empty` leaves every
    // variable unbound. The `/z3-only` variants turn the solver-free paths off, so Z3 decides
    // every rule on the warm solver (push, bindings, checks, pop).
    let unbound = [
        (
            "escalate-needs-solver",
            json!({"destination": "external", "classification": "public", "record_count": 50,
                   "transfers_in_session": 0, "is_privileged": false}),
        ),
        ("escalate-empty", json!({})),
    ];
    for (name, a) in actions().into_iter().chain(unbound.clone()) {
        let req = request(&a);
        g.bench_function(name, |b| b.iter(|| checker.check(black_box(&req)).unwrap()));
    }
    let mut z3_only = Checker::new(&p, Duration::from_secs(5)).unwrap();
    z3_only.set_direct_evaluation(false);
    for (name, a) in unbound {
        let req = request(&a);
        g.bench_function(format!("{name}/z3-only"), |b| {
            b.iter(|| z3_only.check(black_box(&req)).unwrap())
        });
    }
    g.finish();
}

fn bench_decide_and_sign(c: &mut Criterion) {
    let p = egress();
    let mut checker = Checker::new(&p, Duration::from_secs(5)).unwrap();
    let seed = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let signer = Signer::new("bench-checker", seed).unwrap();
    let req = request(&actions()[0].1);
    c.bench_function("decide_and_sign/customer-data-egress", |b| {
        b.iter(|| {
            let o = checker.check(black_box(&req)).unwrap();
            issue_receipt(&o, Kind::Check, &p, "bench", 1_700_000_000_000, &signer).unwrap()
        })
    });
}

fn bench_compile(c: &mut Criterion) {
    let mut g = c.benchmark_group("compile");
    for name in EXAMPLES {
        let src = source(name);
        g.bench_with_input(BenchmarkId::from_parameter(name), &src, |b, s| {
            b.iter(|| compile(black_box(s), Salt([0; 32])).unwrap())
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_screen,
    bench_decide,
    bench_decide_and_sign,
    bench_compile
);
criterion_main!(benches);
