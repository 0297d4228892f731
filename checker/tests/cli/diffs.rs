//! `verdict-policy diff` finds a counterexample for a one-rule change and proves equivalence.

use crate::{assert_no_panic, json, p, run};

#[test]
fn one_rule_change_has_a_counterexample() {
    let o = run(&["diff", &p("diff/old.toml"), &p("diff/new.toml"), "--json"]);
    assert_no_panic(&o);
    assert_eq!(o.status.code(), Some(1), "{}", crate::stderr(&o));
    let v = json(&o);
    assert_eq!(v["result"], "different");
    let amount = v["action"]["amount"].as_i64().unwrap();
    assert!((10001..=20000).contains(&amount), "{v:#}");
    assert_eq!(v["action"]["verified"], false, "{v:#}");
    assert_eq!(v["old_decision"], "deny");
    assert_eq!(v["new_decision"], "allow");
    // The real checker agrees on the counterexample.
    assert_eq!(v["old"]["checked"], "deny");
    assert_eq!(v["new"]["checked"], "allow");
    assert_eq!(v["old"]["violated"][0], "large-needs-verification");
}

#[test]
fn reversed_diff_swaps_the_decisions() {
    let o = run(&["diff", &p("diff/new.toml"), &p("diff/old.toml"), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!(v["old_decision"], "allow");
    assert_eq!(v["new_decision"], "deny");
}

#[test]
fn whitespace_different_files_are_equivalent_with_equal_commitments() {
    let o = run(&[
        "diff",
        &p("diff/old.toml"),
        &p("diff/old-reformatted.toml"),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", crate::stdout(&o));
    let v = json(&o);
    assert_eq!(v["result"], "equivalent");
    assert_eq!(v["same_canonical"], true);
    let a = json(&run(&["lint", &p("diff/old.toml"), "--json"]));
    let b = json(&run(&["lint", &p("diff/old-reformatted.toml"), "--json"]));
    assert_eq!(a["commitment"], b["commitment"]);
    assert_eq!(a["rule_tree_root"], b["rule_tree_root"]);
}

#[test]
fn differently_written_equivalent_rules_are_proved_equivalent() {
    let o = run(&[
        "diff",
        &p("diff/old.toml"),
        &p("diff/implication.toml"),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", crate::stdout(&o));
    let v = json(&o);
    assert_eq!(v["result"], "equivalent");
    assert_eq!(v["same_canonical"], false);
}

#[test]
fn a_policy_is_equivalent_to_itself() {
    for name in crate::suites::EXAMPLES {
        let f = p(&format!("{name}.toml"));
        let o = run(&["diff", &f, &f]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", crate::stdout(&o));
    }
}

#[test]
fn adding_a_variable_and_rule_is_a_difference() {
    let o = run(&[
        "diff",
        &p("approved-vendors.toml"),
        &p("customer-data-egress.toml"),
        "--json",
    ]);
    assert_no_panic(&o);
    let code = o.status.code();
    // Variables with the same name but different types are a usage error; otherwise different.
    assert!(code == Some(1) || code == Some(2), "{code:?}");
}
