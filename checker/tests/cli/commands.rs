//! `lint`, `decide`, `scenarios`, usage errors, and insta snapshots of stable `--json` outputs.

use crate::{assert_no_panic, json, p, run, stderr, stdout};

#[test]
fn lint_prints_commitment_and_is_deterministic() {
    let a = run(&["lint", &p("customer-data-egress.toml"), "--json"]);
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    let b = run(&["lint", &p("customer-data-egress.toml"), "--json"]);
    assert_eq!(a.stdout, b.stdout);
    let v = json(&a);
    assert_eq!(v["commitment"].as_str().unwrap().len(), 64);
    insta::assert_json_snapshot!("lint_customer_data_egress", v);
}

#[test]
fn lint_salt_changes_the_commitment() {
    let a = json(&run(&["lint", &p("hipaa-phi.toml"), "--json"]));
    let salt = "11".repeat(32);
    let b = json(&run(&[
        "lint",
        &p("hipaa-phi.toml"),
        "--json",
        "--salt",
        &salt,
    ]));
    assert_ne!(a["commitment"], b["commitment"]);
    let o = run(&["lint", &p("hipaa-phi.toml"), "--salt", "xyz"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn decide_outputs_each_decision_with_exit_0() {
    let policy = p("customer-data-egress.toml");
    let salt = "00".repeat(32);
    let cases = [
        (
            r#"{"destination":"internal","classification":"public","record_count":1,"transfers_in_session":0,"is_privileged":false}"#,
            "allow",
        ),
        (r#"{"destination":"internal","record_count":20000}"#, "deny"),
        (
            r#"{"destination":"external","classification":"public","record_count":1,"transfers_in_session":0,"is_privileged":false}"#,
            "escalate",
        ),
    ];
    for (action, want) in cases {
        let o = run(&[
            "decide",
            &policy,
            "--action",
            action,
            "--action-salt",
            &salt,
            "--json",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let v = json(&o);
        assert_eq!(v["decision"], want, "{action}");
        if want == "deny" {
            insta::assert_json_snapshot!("decide_deny", v);
        }
    }
}

#[test]
fn decide_reads_action_files_and_signs_approvals() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.json");
    std::fs::write(
        &f,
        r#"{"amount": 25000, "currency": "eur", "beneficiary_verified": true}"#,
    )
    .unwrap();
    let action = format!("@{}", f.display());
    let policy = p("payments-dual-approval.toml");
    let o = run(&["decide", &policy, "--action", &action, "--json"]);
    assert_eq!(json(&o)["decision"], "escalate");
    let o = run(&[
        "decide",
        &policy,
        "--action",
        &action,
        "--sign-with",
        &p("keys/alice.key"),
        "--sign-with",
        &p("keys/bob.key"),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["approvers"].as_array().unwrap().len(), 2);
    // The same approver twice counts once.
    let o = run(&[
        "decide",
        &policy,
        "--action",
        &action,
        "--sign-with",
        &p("keys/alice.key"),
        "--sign-with",
        &p("keys/alice.key"),
        "--json",
    ]);
    assert_eq!(json(&o)["decision"], "escalate");
    // An unregistered approver is an error, not a dropped approval.
    let o = run(&[
        "decide",
        &policy,
        "--action",
        &action,
        "--sign-with",
        &p("keys/mallory.key"),
    ]);
    assert_no_panic(&o);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn decide_rejects_bad_actions_with_exit_2() {
    let policy = p("customer-data-egress.toml");
    for action in [
        "not json",
        "[1,2]",
        r#"{"record_count":"x"}"#,
        // A key that is not a variable is an error once screening matched a variable (an action
        // with no variable at all is `not-applicable`: see `decide_screens_first`).
        r#"{"nope":1,"record_count":1}"#,
        "@/nonexistent",
    ] {
        let o = run(&["decide", &policy, "--action", action]);
        assert_no_panic(&o);
        assert_eq!(o.status.code(), Some(2), "{action}: {}", stdout(&o));
    }
}

/// `decide` screens first, as the server does (decision-semantics §6): `{}` and an action with
/// no policy variable are `not-applicable`, spelled with a hyphen in text and JSON.
#[test]
fn decide_screens_first() {
    let policy = p("customer-data-egress.toml");
    let salt = "00".repeat(32);
    for action in ["{}", r#"{"nope":1}"#] {
        let o = run(&[
            "decide",
            &policy,
            "--action",
            action,
            "--action-salt",
            &salt,
            "--json",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let v = json(&o);
        assert_eq!(v["decision"], "not-applicable", "{action}");
        if action == "{}" {
            insta::assert_json_snapshot!("decide_not_applicable", v);
        }
    }
    let o = run(&["decide", &policy, "--action", "{}", "--action-salt", &salt]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    insta::assert_snapshot!("decide_not_applicable_text", stdout(&o));
}

/// The input cases of issue 13's "measured" section, through the CLI: each is rejected with
/// exit 2 and a one-line message (or, for `-0`, accepted as 0).
#[test]
fn decide_rejects_the_measured_bad_inputs() {
    let vendors = p("approved-vendors.toml");
    let egress = p("customer-data-egress.toml");
    let long = "y".repeat(4097);
    let padded = format!(r#"{{"record_count":5{}}}"#, " ".repeat(65_537));
    let cases: Vec<(&str, String, &str)> = vec![
        // `null` no longer means "absent" for a variable that is not optional.
        (&vendors, r#"{"call_type":null}"#.into(), "not optional"),
        (
            &vendors,
            r#"{"call_type":null,"vendor":"evilcorp","sends_personal_data":true}"#.into(),
            "not optional",
        ),
        (
            &egress,
            r#"{"destination":null,"classification":"public","record_count":1,"transfers_in_session":0,"is_privileged":false}"#.into(),
            "not optional",
        ),
        // Repeated keys, in both orders.
        (&egress, r#"{"record_count":5,"record_count":50000}"#.into(), "duplicate key"),
        (&egress, r#"{"record_count":50000,"record_count":5}"#.into(), "duplicate key"),
        // The size bound is on the raw text.
        (&egress, padded, "exceeds 65536 bytes"),
        // Every string, tokens included, is bounded.
        (&egress, format!(r#"{{"authorization_token":"{long}"}}"#), "too long"),
    ];
    for (policy, action, message) in &cases {
        let o = run(&["decide", policy, "--action", action]);
        assert_no_panic(&o);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{}: {}",
            &action[..action.len().min(80)],
            stdout(&o)
        );
        let err = stderr(&o);
        assert!(
            err.contains(message),
            "{}: {err}",
            &action[..action.len().min(80)]
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    // A token of 32,758 bytes is "too long", not "action too large".
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.json");
    std::fs::write(
        &f,
        format!(r#"{{"authorization_token":"{}"}}"#, "z".repeat(32_758)),
    )
    .unwrap();
    let o = run(&["decide", &egress, "--action", &format!("@{}", f.display())]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("too long"), "{}", stderr(&o));
    // `-0` is the integer 0.
    let o = run(&[
        "decide",
        &egress,
        "--action",
        r#"{"destination":"internal","classification":"public","record_count":-0,"transfers_in_session":0,"is_privileged":false}"#,
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json(&o)["decision"], "allow");
    // A token may always be stated absent: here it makes the external transfer a deny.
    let o = run(&[
        "decide",
        &egress,
        "--action",
        r#"{"destination":"external","authorization_token":null}"#,
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json(&o)["decision"], "deny");
}

#[test]
fn scenarios_are_distinct_and_labelable() {
    let o = run(&[
        "scenarios",
        &p("customer-data-egress.toml"),
        "--max",
        "20",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    let s = v["scenarios"].as_array().unwrap();
    assert!(s.len() >= 10, "{}", s.len());
    assert!(s.len() <= 20);
    let distinct: std::collections::BTreeSet<String> =
        s.iter().map(|c| c["action"].to_string()).collect();
    assert_eq!(distinct.len(), s.len(), "duplicate scenarios");
    let says: std::collections::BTreeSet<&str> = s
        .iter()
        .map(|c| c["checker_says"].as_str().unwrap())
        .collect();
    assert!(says.contains("allow") && says.contains("deny"), "{says:?}");
    // Boundary values of `record_count <= 10000` appear.
    let counts: Vec<i64> = s
        .iter()
        .filter_map(|c| c["action"]["record_count"].as_i64())
        .collect();
    assert!(
        counts.contains(&10000) && counts.contains(&10001),
        "{counts:?}"
    );
}

#[test]
fn scenario_skeleton_round_trips_once_labelled() {
    let policy = p("customer-data-egress.toml");
    let o = run(&["scenarios", &policy, "--max", "12"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("expect = \"label-me\""));
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.cases.toml");
    std::fs::write(&raw, &text).unwrap();
    let unlabelled = run(&["test", &policy, "--cases", raw.to_str().unwrap()]);
    assert_eq!(unlabelled.status.code(), Some(2));
    // Label each case with what the checker says and the suite passes.
    let mut labelled = String::new();
    let mut says = String::new();
    for line in text.lines() {
        if let Some(s) = line.strip_prefix("# checker says: ") {
            says = s.split(';').next().unwrap().trim().to_owned();
        }
        if line == "expect = \"label-me\"" {
            let e = if says.starts_with("error") {
                "error".to_owned()
            } else {
                says.clone()
            };
            labelled.push_str(&format!("expect = \"{e}\"\n"));
        } else {
            labelled.push_str(line);
            labelled.push('\n');
        }
    }
    let f = dir.path().join("labelled.cases.toml");
    std::fs::write(&f, labelled).unwrap();
    let o = run(&["test", &policy, "--cases", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn usage_errors_are_exit_2_and_help_documents_exit_codes() {
    assert_eq!(run(&[]).status.code(), Some(2));
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(run(&["test", &p("hipaa-phi.toml")]).status.code(), Some(2));
    let h = run(&["--help"]);
    assert_eq!(h.status.code(), Some(0));
    let text = stdout(&h);
    assert!(text.contains("EXIT CODES"), "{text}");
    for sub in ["lint", "test", "analyze", "diff", "scenarios", "decide"] {
        assert!(text.contains(sub), "{sub}");
        let o = run(&[sub, "--help"]);
        assert!(stdout(&o).contains("--json"), "{sub} lacks --json");
    }
}
