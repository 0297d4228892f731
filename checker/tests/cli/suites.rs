//! Every example policy's suite passes through the real `verdict-policy test`.

use crate::{assert_no_panic, json, p, run, stdout};

/// The five example policies of issue 3.
pub const EXAMPLES: &[&str] = &[
    "customer-data-egress",
    "hipaa-phi",
    "payments-dual-approval",
    "eu-ai-act-human-review",
    "approved-vendors",
];

fn run_suite(name: &str) {
    let policy = p(&format!("{name}.toml"));
    let cases = p(&format!("{name}.cases.toml"));
    let o = run(&["test", &policy, "--cases", &cases]);
    assert_no_panic(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{name}:\n{}\n{}",
        stdout(&o),
        crate::stderr(&o)
    );
    let o = run(&["test", &policy, "--cases", &cases, "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let v = json(&o);
    let total = v["total"].as_u64().unwrap();
    assert!(total >= 15, "{name}: only {total} cases");
    assert_eq!(v["failed"], 0);
    let kinds: std::collections::BTreeSet<String> = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["expected"].as_str().unwrap().to_owned())
        .collect();
    for k in ["allow", "escalate"] {
        assert!(kinds.contains(k), "{name}: no {k} case");
    }
}

#[test]
fn customer_data_egress() {
    run_suite("customer-data-egress");
}

#[test]
fn hipaa_phi() {
    run_suite("hipaa-phi");
}

#[test]
fn payments_dual_approval() {
    run_suite("payments-dual-approval");
}

#[test]
fn eu_ai_act_human_review() {
    run_suite("eu-ai-act-human-review");
}

#[test]
fn approved_vendors() {
    run_suite("approved-vendors");
}

#[test]
fn every_example_has_deny_cases_somewhere() {
    let mut denies = 0;
    for name in EXAMPLES {
        let text = std::fs::read_to_string(p(&format!("{name}.cases.toml"))).unwrap();
        denies += text.matches("expect = \"deny\"").count();
    }
    assert!(denies >= 10);
}

#[test]
fn a_wrong_expectation_fails_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("bad.cases.toml");
    std::fs::write(
        &cases,
        r#"
[[case]]
name = "really an allow"
action = { amount = 500, currency = "eur", beneficiary_verified = true }
expect = "deny"

[[case]]
name = "right decision, wrong rule"
action = { amount = 100, currency = "eur", beneficiary_verified = false }
expect = "deny"
violated = ["single-transfer-cap"]

[[case]]
name = "passing case"
action = { amount = 100, currency = "eur", beneficiary_verified = false }
expect = "deny"
violated = ["beneficiary-verified"]
"#,
    )
    .unwrap();
    let o = run(&[
        "test",
        &p("payments-dual-approval.toml"),
        "--cases",
        cases.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v = json(&o);
    assert_eq!(v["failed"], 2);
    assert_eq!(v["passed"], 1);
    assert_eq!(v["cases"][0]["actual"], "allow");
    let m = v["cases"][1]["mismatches"][0].as_str().unwrap();
    assert!(m.contains("violated"), "{m}");
}

#[test]
fn approvals_need_the_private_key_files() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("c.cases.toml");
    std::fs::write(
        &cases,
        "[[case]]\nname = 'x'\naction = { amount = 1 }\napprovals = ['nobody']\nexpect = 'allow'\n",
    )
    .unwrap();
    let o = run(&[
        "test",
        &p("payments-dual-approval.toml"),
        "--cases",
        cases.to_str().unwrap(),
    ]);
    assert_no_panic(&o);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_malformed_suite_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("c.cases.toml");
    std::fs::write(&cases, "[[case]]\nname = 'x'\nexpect = 'sometimes'\n").unwrap();
    let o = run(&[
        "test",
        &p("hipaa-phi.toml"),
        "--cases",
        cases.to_str().unwrap(),
    ]);
    assert_no_panic(&o);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn json_suites_have_the_same_shape() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("c.cases.json");
    std::fs::write(
        &cases,
        r#"{"case": [
            {"name": "allowed", "action": {"amount": 20000, "currency": "eur", "beneficiary_verified": true},
             "approvals": ["alice", "carol"], "expect": "allow"},
            {"name": "capped", "action": {"amount": 9000000, "currency": "eur", "beneficiary_verified": true},
             "expect": "deny", "violated": ["single-transfer-cap"]}
        ]}"#,
    )
    .unwrap();
    let keys = p("keys");
    let o = run(&[
        "test",
        &p("payments-dual-approval.toml"),
        "--cases",
        cases.to_str().unwrap(),
        "--keys",
        &keys,
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(json(&o)["passed"], 2);
}
