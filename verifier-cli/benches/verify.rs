//! Criterion bench of offline `verify` on the tamper suite's valid bundle
//! (`testdata/bundles/valid.proof`): parse, checkpoint signature, inclusion, receipt signature.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench")]
#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use verdict_verifier::trust::Trust;
use verdict_verifier::verify::verify_bundle;

fn suite() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("testdata")
        .join("bundles")
}

fn bench_verify(c: &mut Criterion) {
    let dir = suite();
    let key = |f: &str| {
        std::fs::read_to_string(dir.join("keys").join(f))
            .unwrap()
            .trim()
            .to_owned()
    };
    let trust = Trust::load(&[key("log.vkey")], &[key("checker.vkey")], None).unwrap();
    let bundle = std::fs::read(dir.join("valid.proof")).unwrap();
    verify_bundle(&bundle, &trust, None).expect("the suite's valid bundle verifies");
    c.bench_function("verify_bundle", |b| {
        b.iter(|| verify_bundle(std::hint::black_box(&bundle), &trust, None).unwrap())
    });
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
