//! Repeat one warm customer-data-egress decision N times, for instruction counts under
//! `valgrind --tool=callgrind` (load-independent, unlike wall-clock benches). The cost of one
//! decision is the difference between two runs with different N.
//!
//! Usage: `decide_count CASE N [--z3-only]` with CASE one of `allow`, `deny`,
//! `external-authorized`, `escalate-needs-solver`, `escalate-empty` (the actions of
//! `benches/checker.rs`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "measurement tool"
)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use verdict_checker::{compile, CheckRequest, Checker};
use verdict_core::receipt::Salt;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let case = args.get(1).map_or("escalate-needs-solver", String::as_str);
    let n: usize = args.get(2).map_or(1, |s| s.parse().unwrap());
    let z3_only = args.iter().any(|a| a == "--z3-only");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/policies/customer-data-egress.toml");
    let policy = compile(&std::fs::read_to_string(path).unwrap(), Salt([0; 32])).unwrap();
    let action = match case {
        "allow" => json!({"destination": "internal", "classification": "public",
                          "record_count": 120, "transfers_in_session": 0, "is_privileged": false}),
        "deny" => json!({"destination": "internal", "classification": "public",
                         "record_count": 50000, "transfers_in_session": 0, "is_privileged": false}),
        "external-authorized" => json!({"destination": "external", "classification": "restricted",
                   "record_count": 900, "transfers_in_session": 2, "is_privileged": true,
                   "approver_id": "j.doe", "authorization_token": "a",
                   "re_authorization_token": "b", "approval_token": "c"}),
        "escalate-needs-solver" => json!({"destination": "external", "classification": "public",
                   "record_count": 50, "transfers_in_session": 0, "is_privileged": false}),
        "escalate-empty" => json!({}),
        other => panic!("unknown case {other}"),
    };
    let mut checker = Checker::new(&policy, Duration::from_secs(5)).unwrap();
    checker.set_direct_evaluation(!z3_only);
    let req = CheckRequest {
        action,
        request_id: "bench".to_owned(),
        salt: Some(Salt([7; 32])),
        approvals: Vec::new(),
    };
    let first = checker.check(&req).unwrap();
    for _ in 0..n {
        black_box(checker.check(black_box(&req)).unwrap());
    }
    println!("{case}: {:?} {:?}", first.decision, first.undetermined);
}
