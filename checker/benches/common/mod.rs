#![allow(dead_code, reason = "each benchmark uses a part of it")]
//! What both checker benchmarks use (`benches/checker.rs`, `benches/cedar.rs`): the
//! customer-data-egress policy and its fully specified actions.

use std::path::PathBuf;

use serde_json::{json, Value};
use verdict_checker::{compile, CheckRequest, CompiledPolicy};
use verdict_core::receipt::Salt;

pub fn source(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/policies")
        .join(format!("{name}.toml"));
    std::fs::read_to_string(path).unwrap()
}

pub fn egress() -> CompiledPolicy {
    compile(&source("customer-data-egress"), Salt([0; 32])).unwrap()
}

/// Fully specified egress actions: allow, deny (record cap) and deny-class (external, no token,
/// which Verdict escalates and Cedar forbids).
pub fn actions() -> Vec<(&'static str, Value)> {
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

pub fn request(action: &Value) -> CheckRequest {
    CheckRequest {
        action: action.clone(),
        request_id: "bench".to_owned(),
        salt: Some(Salt([7; 32])),
        approvals: Vec::new(),
    }
}
