//! `verdict-policy analyze` finds the planted contradiction, dead rule, redundant rule and
//! unbounded variable, and reports no error or warning on the example policies.

use serde_json::Value;

use crate::suites::EXAMPLES;
use crate::{assert_no_panic, json, p, run, stdout};

fn analyze(rel: &str) -> (Option<i32>, Value) {
    let o = run(&["analyze", &p(rel), "--json"]);
    assert_no_panic(&o);
    (o.status.code(), json(&o))
}

fn findings<'a>(v: &'a Value, kind: &str) -> Vec<&'a Value> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == kind)
        .collect()
}

fn rules(f: &Value) -> Vec<String> {
    f["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn planted_contradiction() {
    let (code, v) = analyze("analysis/contradiction.toml");
    assert_eq!(code, Some(1));
    let c = findings(&v, "contradiction");
    assert_eq!(c.len(), 1, "{v:#}");
    assert_eq!(c[0]["severity"], "error");
    let mut r = rules(c[0]);
    r.sort();
    assert_eq!(r, ["maximum-amount", "minimum-amount"]);
    assert!(findings(&v, "redundant").is_empty(), "{v:#}");
    assert!(findings(&v, "never-fires").is_empty(), "{v:#}");
}

#[test]
fn planted_redundant_rule() {
    let (code, v) = analyze("analysis/redundant.toml");
    assert_eq!(code, Some(1));
    let r = findings(&v, "redundant");
    assert_eq!(r.len(), 1, "{v:#}");
    assert_eq!(rules(r[0]), ["cap-5000", "cap-1000"]);
    assert!(findings(&v, "contradiction").is_empty());
}

#[test]
fn planted_never_firing_rule() {
    let (code, v) = analyze("analysis/never-fires.toml");
    assert_eq!(code, Some(1));
    let d = findings(&v, "never-fires");
    assert_eq!(d.len(), 1, "{v:#}");
    assert_eq!(rules(d[0]), ["huge-amount-needs-token"]);
}

#[test]
fn planted_unbounded_variable_with_counterexample() {
    let (code, v) = analyze("analysis/unbounded.toml");
    assert_eq!(code, Some(1));
    let u = findings(&v, "unbounded");
    assert_eq!(u.len(), 1, "{v:#}");
    assert_eq!(u[0]["variable"], "risk_score");
    let score = u[0]["counterexample"]["risk_score"].as_i64().unwrap();
    assert!(score >= 1 << 62, "{score}");
    // The counterexample really is allowed by the checker.
    let mut action = u[0]["counterexample"].clone();
    if action.get("token").is_some() {
        action["token"] = "t".into();
    }
    let o = run(&[
        "decide",
        &p("analysis/unbounded.toml"),
        "--action",
        &action.to_string(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", crate::stderr(&o));
    assert_eq!(json(&o)["decision"], "allow");
}

#[test]
fn missing_data_is_information_with_an_allowed_example() {
    let (_, v) = analyze("customer-data-egress.toml");
    let m = findings(&v, "missing-data");
    let vars: Vec<&str> = m.iter().map(|f| f["variable"].as_str().unwrap()).collect();
    assert!(vars.contains(&"record_count"), "{v:#}");
    assert!(!vars.contains(&"authorization_token"), "{v:#}");
    for f in m {
        assert_eq!(f["severity"], "info");
    }
}

#[test]
fn examples_have_no_errors_or_warnings() {
    for name in EXAMPLES {
        let (code, v) = analyze(&format!("{name}.toml"));
        assert_eq!(code, Some(0), "{name}: {v:#}");
    }
}

#[test]
fn text_output_names_the_rules() {
    let o = run(&["analyze", &p("analysis/contradiction.toml")]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("contradiction"), "{out}");
    assert!(out.contains("minimum-amount"), "{out}");
}
