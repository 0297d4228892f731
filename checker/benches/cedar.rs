//! Criterion benchmark of Verdict against `cedar-policy` (`Authorizer::is_authorized`) on the
//! same customer-data-egress actions, in one run so the ratio shows. Figures:
//! `docs/benchmarks.md` "## checker".
//!
//! cedar-policy is a large dependency, so it is built only for this benchmark (feature `cedar`):
//! `cargo bench -p verdict-checker --features cedar --bench cedar -- --warm-up-time 1 --measurement-time 3`.
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
use std::str::FromStr;
use std::time::Duration;

use cedar_policy::{Authorizer, Context, Entities, EntityUid, PolicySet, Request};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use verdict_checker::Checker;

use common::{actions, egress, request};

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

criterion_group!(benches, bench_cedar);
criterion_main!(benches);
