//! Criterion benchmarks of the checker: screening, a decision on a warm solver, a decision plus
//! receipt signing, compiling each example policy, and the same customer-data-egress actions
//! through `cedar-policy` (`Authorizer::is_authorized`) as a reference, in one run so the ratio
//! shows. Figures: `docs/benchmarks.md` "## checker".
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

use std::hint::black_box;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use cedar_policy::{Authorizer, Context, Entities, EntityUid, PolicySet, Request};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use serde_json::{json, Value};
use verdict_checker::{
    compile, issue_receipt, screen, CheckRequest, Checker, CompiledPolicy, Kind,
};
use verdict_core::note::Signer;
use verdict_core::receipt::Salt;

const EXAMPLES: &[&str] = &[
    "customer-data-egress",
    "hipaa-phi",
    "payments-dual-approval",
    "eu-ai-act-human-review",
    "approved-vendors",
];

fn source(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/policies")
        .join(format!("{name}.toml"));
    std::fs::read_to_string(path).unwrap()
}

fn egress() -> CompiledPolicy {
    compile(&source("customer-data-egress"), Salt([0; 32])).unwrap()
}

/// Fully specified egress actions: allow, deny (record cap) and deny-class (external, no token,
/// which Verdict escalates and Cedar forbids).
fn actions() -> Vec<(&'static str, Value)> {
    vec![
        (
            "allow",
            json!({"destination": "internal", "classification": "public", "record_count": 120,
                   "transfers_in_session": 0, "is_privileged": false}),
        ),
        (
            "deny",
            json!({"destination": "internal", "classification": "public", "record_count": 50000,
                   "transfers_in_session": 0, "is_privileged": false}),
        ),
        (
            "external-authorized",
            json!({"destination": "external", "classification": "restricted", "record_count": 900,
                   "transfers_in_session": 2, "is_privileged": true, "approver_id": "j.doe",
                   "authorization_token": "a", "re_authorization_token": "b", "approval_token": "c"}),
        ),
    ]
}

fn request(action: &Value) -> CheckRequest {
    CheckRequest {
        action: action.clone(),
        request_id: "bench".to_owned(),
        salt: Some(Salt([7; 32])),
        approvals: Vec::new(),
    }
}

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

/// customer-data-egress in Cedar: schema-less, the action's attributes in the context, one
/// `forbid` per rule and a blanket `permit`. Cedar evaluates the concrete context only (a missing
/// attribute is absent, not unknown), so it answers a narrower question than Verdict's validity.
const CEDAR_EGRESS: &str = r#"
permit(principal, action, resource);

@id("external-needs-authorization")
forbid(principal, action, resource)
when { context has destination && context.destination == "external" }
unless { context has authorization_token };

@id("re-authorization-after-first-transfer")
forbid(principal, action, resource)
when { context has transfers_in_session && context.transfers_in_session >= 1 }
unless { context has re_authorization_token };

@id("session-record-cap")
forbid(principal, action, resource)
unless { context has record_count && context.record_count <= 10000 };

@id("restricted-needs-approval")
forbid(principal, action, resource)
when { context has classification && context.classification == "restricted" }
unless { context has approval_token };

@id("privileged-needs-approver")
forbid(principal, action, resource)
when { context has is_privileged && context.is_privileged }
unless { context has approver_id };
"#;

fn bench_cedar(c: &mut Criterion) {
    let policies = PolicySet::from_str(CEDAR_EGRESS).unwrap();
    let entities = Entities::empty();
    let authorizer = Authorizer::new();
    let principal = EntityUid::from_str(r#"Agent::"agent-1""#).unwrap();
    let action = EntityUid::from_str(r#"Action::"egress""#).unwrap();
    let resource = EntityUid::from_str(r#"Dataset::"customers""#).unwrap();
    let p = egress();
    let mut checker = Checker::new(&p, Duration::from_secs(5)).unwrap();
    let mut g = c.benchmark_group("reference/customer-data-egress");
    for (name, a) in actions() {
        let ctx = Context::from_json_value(a.clone(), None).unwrap();
        let req = Request::new(
            principal.clone(),
            action.clone(),
            resource.clone(),
            ctx,
            None,
        )
        .unwrap();
        g.bench_function(BenchmarkId::new("cedar", name), |b| {
            b.iter(|| authorizer.is_authorized(black_box(&req), &policies, &entities))
        });
        // Context construction is part of a Cedar request from JSON, as parsing is for Verdict.
        g.bench_function(BenchmarkId::new("cedar_with_context", name), |b| {
            b.iter(|| {
                let ctx = Context::from_json_value(black_box(&a).clone(), None).unwrap();
                let req = Request::new(
                    principal.clone(),
                    action.clone(),
                    resource.clone(),
                    ctx,
                    None,
                )
                .unwrap();
                authorizer.is_authorized(&req, &policies, &entities)
            })
        });
        let vreq = request(&a);
        g.bench_function(BenchmarkId::new("verdict", name), |b| {
            b.iter(|| checker.check(black_box(&vreq)).unwrap())
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_screen,
    bench_decide,
    bench_decide_and_sign,
    bench_compile,
    bench_cedar
);
criterion_main!(benches);
