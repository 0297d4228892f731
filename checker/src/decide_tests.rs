//! Unit tests of [`crate::decide`] on known policies and actions (allow, deny, escalate,
//! approvals, determinism, fail-closed).
use super::*;
use serde_json::json;
use verdict_core::note::Signer;

pub(crate) const EGRESS: &str = r#"
name = "customer-data-egress"
version = "1.0.0"

[variables]
destination = { type = "enum", values = ["internal", "external"] }
record_count = { type = "int", min = 0, max = 1000000 }
transfer_index = { type = "int", min = 0 }
classification = { type = "enum", values = ["public", "internal", "restricted"] }
is_privileged = { type = "bool" }
approver_id = { type = "string", optional = true }
authorization_token = { type = "token" }
re_authorization_token = { type = "token" }
approval_token = { type = "token" }

[[rules]]
id = "external-needs-auth"
text = "An external destination needs an authorization token."
when = 'destination == "external"'
require = 'present(authorization_token)'
effect = "deny"

[[rules]]
id = "reauth-after-first-transfer"
text = "Re-authorization after the first transfer in a session."
when = 'transfer_index > 0'
require = 'present(re_authorization_token)'
effect = "deny"

[[rules]]
id = "session-cap"
text = "At most 10000 records per session."
require = 'record_count <= 10000'
effect = "deny"

[[rules]]
id = "restricted-needs-approval"
text = "Restricted data needs an approval token."
when = 'classification == "restricted"'
require = 'present(approval_token)'
effect = "deny"

[[rules]]
id = "privileged-needs-approver"
text = "A privileged action needs an approver id."
when = 'is_privileged'
require = 'present(approver_id)'
effect = "escalate"
"#;

fn checker(src: &str) -> Checker {
    let p = crate::compile(src, Salt([0; 32])).unwrap();
    Checker::new(&p, Duration::from_secs(5)).unwrap()
}

fn req(action: Value) -> CheckRequest {
    CheckRequest {
        action,
        request_id: "req-1".into(),
        salt: Some(Salt([1; 32])),
        approvals: vec![],
    }
}

fn full() -> Value {
    json!({
        "destination": "external", "record_count": 50, "transfer_index": 0,
        "classification": "public", "is_privileged": false,
        "authorization_token": "tok-123"
    })
}

#[test]
fn allow_deny_escalate() {
    let mut c = checker(EGRESS);
    let o = c.check(&req(full())).unwrap();
    assert_eq!(o.decision, Decision::Allow, "{o:?}");
    assert!(o.violated.is_empty() && o.undetermined.is_empty() && !o.fail_closed);
    assert_eq!(o.matched.len(), 6);
    assert!(!String::from_utf8(o.canonical_action.clone())
        .unwrap()
        .contains("tok-123"));

    let mut a = full();
    a.as_object_mut().unwrap().remove("authorization_token");
    a["record_count"] = json!(20000);
    let o = c.check(&req(a)).unwrap();
    // An omitted token is unbound (it may be present), so only the cap is certainly violated.
    assert_eq!(o.decision, Decision::Deny);
    assert_eq!(o.violated, [2]);
    assert_eq!(o.violated_ids, ["session-cap"]);

    let mut a = full();
    a.as_object_mut().unwrap().remove("authorization_token");
    let o = c.check(&req(a)).unwrap();
    assert_eq!(o.decision, Decision::Escalate);
    assert_eq!(o.undetermined, ["authorization_token"]);

    // Partial: nothing bound → escalate, naming the variables that matter.
    let o = c.check(&req(json!({}))).unwrap();
    assert_eq!(o.decision, Decision::Escalate);
    assert!(o.violated.is_empty());
    assert_eq!(
        o.undetermined,
        [
            "approval_token",
            "approver_id",
            "authorization_token",
            "classification",
            "destination",
            "is_privileged",
            "re_authorization_token",
            "record_count",
            "transfer_index"
        ]
    );

    // Partial but decided: internal destination, unbound token does not matter.
    let mut a = full();
    a["destination"] = json!("internal");
    a.as_object_mut().unwrap().remove("authorization_token");
    assert_eq!(c.check(&req(a)).unwrap().decision, Decision::Allow);

    // Partial: only the classification is unknown.
    let mut a = full();
    a.as_object_mut().unwrap().remove("classification");
    let o = c.check(&req(a)).unwrap();
    assert_eq!(o.decision, Decision::Escalate);
    assert_eq!(o.undetermined, ["approval_token", "classification"]);

    // Privileged with approver unbound: the approver id decides.
    let mut a = full();
    a["is_privileged"] = json!(true);
    let o = c.check(&req(a.clone())).unwrap();
    assert_eq!(o.decision, Decision::Escalate);
    assert!(o.violated.is_empty());
    assert_eq!(o.undetermined, ["approver_id"]);
    // Explicitly absent (null): only the escalate-effect rule is violated.
    a["approver_id"] = Value::Null;
    let o = c.check(&req(a.clone())).unwrap();
    assert_eq!(o.decision, Decision::Escalate);
    assert_eq!(o.violated, [4]);
    assert!(o.undetermined.is_empty());
    // An explicitly absent token is a deny naming the rule.
    let mut b = full();
    b["authorization_token"] = Value::Null;
    let o = c.check(&req(b)).unwrap();
    assert_eq!((o.decision, o.violated), (Decision::Deny, vec![0]));
    a["approver_id"] = json!("bob");
    assert_eq!(c.check(&req(a)).unwrap().decision, Decision::Allow);

    // Absent record count violates the cap in every completion of the others: deny named.
    let o = c
        .check(&req(
            json!({"destination": "external", "record_count": 10001}),
        ))
        .unwrap();
    assert_eq!(o.decision, Decision::Deny);
    assert_eq!(o.violated, [2]);
}

/// Rough warm-solver latency (the criterion bench is authoritative).
#[test]
#[ignore = "timing only; run with --ignored --nocapture"]
fn warm_latency() {
    let mut c = checker(EGRESS);
    let r = req(full());
    let t = std::time::Instant::now();
    for _ in 0..2000 {
        c.check(&r).unwrap();
    }
    println!("warm allow check: {:?}", t.elapsed() / 2000);
    let r = req(json!({}));
    let t = std::time::Instant::now();
    for _ in 0..500 {
        c.check(&r).unwrap();
    }
    println!("warm escalate check (all unbound): {:?}", t.elapsed() / 500);
}

#[test]
fn solver_unknown_fails_closed() {
    // The authorization token is left unbound: the solver path decides it...
    let a = json!({"destination": "external", "record_count": 50, "transfer_index": 0,
                   "classification": "public", "is_privileged": false});
    let mut z3 = checker(EGRESS);
    z3.set_direct_evaluation(false);
    let expected = z3.check(&req(a.clone())).unwrap();
    assert_eq!(expected.decision, Decision::Escalate);
    assert_eq!(expected.undetermined, ["authorization_token"]);
    // ...and so does enumeration, without a solver call (the budget would fail closed)...
    let mut c = checker(EGRESS);
    c.set_resource_limit(1);
    assert_eq!(c.check(&req(a.clone())).unwrap(), expected);
    // ...while on the solver path the exhausted budget fails closed.
    c.set_direct_evaluation(false);
    let o = c.check(&req(a)).unwrap();
    assert_eq!(o.decision, Decision::Deny);
    assert!(o.fail_closed);
    assert!(o.violated.is_empty() && o.undetermined.is_empty());
}

/// A comparison between two unbound ints has no fixed representatives, so Z3 decides it, and
/// an exhausted solver budget is a fail-closed deny even with the solver-free paths on.
#[test]
fn unbound_comparison_goes_to_the_solver_and_fails_closed() {
    let src = r#"
name = "pair"
version = "1"
[variables]
x = { type = "int", min = 0, max = 100 }
y = { type = "int", min = 0, max = 100 }
n = { type = "int", min = 0, max = 100 }
[[rules]]
id = "ordered"
text = "x below y"
require = 'x < y'
effect = "deny"
[[rules]]
id = "cap"
text = "n at most 5"
require = 'n <= 5'
effect = "deny"
"#;
    let mut c = checker(src);
    let o = c.check(&req(json!({"n": 3}))).unwrap();
    assert_eq!(o.decision, Decision::Escalate);
    assert_eq!(o.undetermined, ["x", "y"]);
    let o = c.check(&req(json!({"n": 9}))).unwrap();
    assert_eq!((o.decision, o.violated), (Decision::Deny, vec![1]));
    let o = c.check(&req(json!({"x": 100, "n": 1}))).unwrap();
    assert_eq!((o.decision, o.violated), (Decision::Deny, vec![0]));
    c.set_resource_limit(1);
    let o = c.check(&req(json!({"n": 3}))).unwrap();
    assert!(o.fail_closed);
    assert_eq!(o.decision, Decision::Deny);
}

/// Two deny rules that share an unbound variable and cannot both hold: deny by enumeration,
/// without a single solver call (an exhausted budget would fail closed), with the minimal subset.
#[test]
fn joint_deny_by_enumeration() {
    let src = r#"
name = "joint"
version = "1"
[variables]
x = { type = "int", min = 0, max = 100 }
t = { type = "token" }
[[rules]]
id = "low"
text = "t"
require = 'x < 5'
effect = "deny"
[[rules]]
id = "token"
text = "t"
require = 'present(t)'
effect = "escalate"
[[rules]]
id = "high"
text = "t"
require = 'x > 7'
effect = "deny"
"#;
    let mut c = checker(src);
    c.set_resource_limit(1);
    let o = c.check(&req(json!({}))).unwrap();
    assert!(!o.fail_closed);
    assert_eq!((o.decision, o.violated), (Decision::Deny, vec![0, 2]));
    let o = c.check(&req(json!({"x": 3}))).unwrap();
    assert_eq!((o.decision, o.violated), (Decision::Deny, vec![2]));
    c.set_direct_evaluation(false);
    c.set_resource_limit(u32::MAX);
    let o = c.check(&req(json!({}))).unwrap();
    assert_eq!((o.decision, o.violated), (Decision::Deny, vec![0, 2]));
}

#[test]
fn deterministic_across_history() {
    let mut c = checker(EGRESS);
    let first = c.check(&req(json!({"destination": "external"}))).unwrap();
    for a in [full(), json!({}), json!({"record_count": 99999})] {
        c.check(&req(a)).unwrap();
    }
    let again = c.check(&req(json!({"destination": "external"}))).unwrap();
    assert_eq!(first, again);
    let mut fresh = checker(EGRESS);
    assert_eq!(
        fresh
            .check(&req(json!({"destination": "external"})))
            .unwrap(),
        first
    );
}

#[test]
fn deny_without_forced_rule_is_minimal_subset() {
    let src = r#"
name = "contra"
version = "1"
[variables]
a = { type = "bool" }
c = { type = "bool" }
[[rules]]
id = "unrelated"
text = "t"
require = 'present(c) or not present(c)'
effect = "deny"
[[rules]]
id = "needs-a"
text = "t"
require = 'a'
effect = "deny"
[[rules]]
id = "needs-not-a"
text = "t"
require = 'not a'
effect = "deny"
"#;
    let mut c = checker(src);
    let o = c.check(&req(json!({}))).unwrap();
    assert_eq!(o.decision, Decision::Deny);
    assert_eq!(o.violated, [1, 2]);
    let o = c.check(&req(json!({"a": true}))).unwrap();
    assert_eq!(o.violated, [2]);
}

#[test]
fn approvals_count_distinct_verified_signers() {
    let alice = Signer::new("alice", ed25519_dalek::SigningKey::from_bytes(&[1; 32])).unwrap();
    let bob = Signer::new("bob", ed25519_dalek::SigningKey::from_bytes(&[2; 32])).unwrap();
    let src = format!(
        r#"
name = "payments-dual-approval"
version = "1"
[variables]
amount = {{ type = "int", min = 0 }}
[[approvers]]
name = "alice"
key = "{}"
[[approvers]]
name = "bob"
key = "{}"
[[rules]]
id = "dual-approval"
text = "Above 10000 needs two approvers."
when = 'amount > 10000'
require = 'approvals >= 2'
effect = "escalate"
"#,
        alice.verifier(),
        bob.verifier()
    );
    let mut c = checker(&src);
    let mut r = req(json!({"amount": 20000}));
    let o = c.check(&r).unwrap();
    assert_eq!(o.decision, Decision::Escalate);
    assert_eq!(o.violated, [0]);
    assert!(o.undetermined.is_empty());
    let a = Approval::sign(&alice, &o.action_commitment, "req-1");
    r.approvals = vec![a.clone(), a.clone()];
    let o1 = c.check(&r).unwrap();
    assert_eq!(o1.decision, Decision::Escalate);
    assert_eq!(o1.approvers, [alice.verifier().key_id()]);
    r.approvals
        .push(Approval::sign(&bob, &o.action_commitment, "req-1"));
    let o2 = c.check(&r).unwrap();
    assert_eq!(o2.decision, Decision::Allow);
    assert_eq!(o2.approvers.len(), 2);
    // A signature over another request id is rejected, not dropped.
    r.approvals
        .push(Approval::sign(&bob, &o.action_commitment, "req-2"));
    assert!(matches!(
        c.check(&r),
        Err(CheckError::InvalidApproval { .. })
    ));
    // Different salt ⇒ different commitment ⇒ approvals do not verify.
    r.approvals.pop();
    r.salt = Some(Salt([9; 32]));
    assert!(c.check(&r).is_err());
}

#[test]
fn bad_requests_are_errors() {
    let mut c = checker(EGRESS);
    assert!(matches!(
        c.check(&req(json!({"destination": "mars"}))),
        Err(CheckError::NotInEnum { .. })
    ));
    assert!(matches!(
        c.check(&req(json!({"approvals": 3}))),
        Err(CheckError::ReservedKey)
    ));
    assert!(matches!(
        c.check(&req(json!({"nope": 1}))),
        Err(CheckError::UnknownKey { .. })
    ));
    let mut r = req(json!({}));
    r.request_id = "x".repeat(65);
    assert_eq!(c.check(&r), Err(CheckError::InvalidRequestId));
    // The checker still works after errors.
    assert_eq!(c.check(&req(full())).unwrap().decision, Decision::Allow);
}

#[test]
fn string_values_outside_the_universe() {
    let src = r#"
name = "vendors"
version = "1"
[lists]
approved = ["acme", "globex"]
[variables]
vendor = { type = "string", list = "approved" }
other = { type = "string" }
[[rules]]
id = "approved-only"
text = "t"
require = 'vendor in approved'
effect = "deny"
[[rules]]
id = "same"
text = "t"
when = 'present(other)'
require = 'vendor == other'
effect = "deny"
"#;
    let mut c = checker(src);
    let d = |c: &mut Checker, a| c.check(&req(a)).unwrap().decision;
    assert_eq!(d(&mut c, json!({"vendor": "acme"})), Decision::Escalate);
    assert_eq!(d(&mut c, json!({"vendor": "evil"})), Decision::Deny);
    assert_eq!(
        d(&mut c, json!({"vendor": "acme", "other": "acme"})),
        Decision::Allow
    );
    assert_eq!(
        d(&mut c, json!({"vendor": "acme", "other": "zed"})),
        Decision::Deny
    );
    assert_eq!(
        d(&mut c, json!({"vendor": "q", "other": "q"})),
        Decision::Deny
    );
}

/// Partners the property test does not generate: `approvals` as a comparison partner, a string
/// compared with a bound string outside the universe, a wide int range. The solver-free paths
/// and the solver-only path agree on every action.
#[test]
fn direct_and_solver_paths_agree_on_partner_comparisons() {
    let src = r#"
name = "partners"
version = "1"
[lists]
vendors = ["acme"]
[variables]
n = { type = "int" }
v = { type = "string", list = "vendors" }
w = { type = "string", optional = true }
k = { type = "enum", values = ["a", "b", "c"], optional = true }
[[rules]]
id = "n-vs-approvals"
text = "t"
when = 'k != "c"'
require = 'n <= approvals and n > -2'
effect = "escalate"
[[rules]]
id = "same-vendor"
text = "t"
when = 'present(w)'
require = 'v == w and not (v in vendors)'
effect = "deny"
[[rules]]
id = "k-set"
text = "t"
require = 'k in ["a", "b"] or n == 9223372036854775807'
effect = "deny"
"#;
    let actions = [
        json!({}),
        json!({"n": 0}),
        json!({"n": -5, "k": "a"}),
        json!({"w": "zed"}),
        json!({"w": "acme"}),
        json!({"v": "zed", "w": null}),
        json!({"v": "acme"}),
        json!({"k": "c"}),
        json!({"k": "c", "n": 3}),
        json!({"k": null, "w": "q", "v": "q"}),
    ];
    let mut direct = checker(src);
    let mut z3 = checker(src);
    z3.set_direct_evaluation(false);
    for a in actions {
        let d = direct.check(&req(a.clone())).unwrap();
        assert!(!d.fail_closed, "{a}");
        assert_eq!(d, z3.check(&req(a.clone())).unwrap(), "{a}");
    }
}

/// Every action of the example battle-test suites (`testdata/policies/*.cases.toml`, without
/// their approvals) gets the identical outcome from the solver-free paths and from Z3 alone.
#[test]
fn example_suites_agree_with_the_solver_path() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/policies");
    let mut checked = 0;
    for name in [
        "customer-data-egress",
        "hipaa-phi",
        "payments-dual-approval",
        "eu-ai-act-human-review",
        "approved-vendors",
    ] {
        let src = std::fs::read_to_string(dir.join(format!("{name}.toml"))).unwrap();
        let suite = crate::suite::Suite::load(&dir.join(format!("{name}.cases.toml"))).unwrap();
        let mut direct = checker(&src);
        let mut z3 = checker(&src);
        z3.set_direct_evaluation(false);
        for case in &suite.cases {
            let r = req(case.action.clone());
            let d = direct.check(&r);
            assert_eq!(d, z3.check(&r), "{name}: {}", case.name);
            if let Ok(d) = d {
                assert!(!d.fail_closed, "{name}: {}", case.name);
                checked += 1;
            }
        }
    }
    assert!(checked >= 75, "{checked}");
}

/// `null` is rejected, not a decision, for a variable that is neither a token nor optional
/// (issue 13: `{"call_type": null}` used to be allowed).
#[test]
fn null_for_a_required_variable_is_an_error() {
    let mut c = checker(EGRESS);
    for var in [
        "destination",
        "record_count",
        "is_privileged",
        "classification",
    ] {
        let mut a = full();
        a[var] = Value::Null;
        assert_eq!(
            c.check(&req(a)).unwrap_err(),
            CheckError::NullNotAllowed { var: var.into() }
        );
    }
}

fn chain(n: usize) -> String {
    let mut s = String::from("name = \"chain\"\nversion = \"1\"\n[variables]\n");
    for i in 0..n {
        s.push_str(&format!(
            "v{i} = {{ type = \"int\", min = 0, max = 1000000 }}\n"
        ));
    }
    for i in 1..n {
        s.push_str(&format!(
            "[[rules]]\nid = \"l{i}\"\ntext = \"t\"\nrequire = 'v{} < v{i}'\neffect = \"deny\"\n",
            i - 1
        ));
    }
    s
}

/// The checker's timeout bounds the whole decision (every solver call together), and the
/// decision fails closed at the deadline (`spec/decision-semantics.md` §5).
#[test]
fn deadline_bounds_the_whole_decision() {
    let policy = crate::compile(&chain(300), Salt([0; 32])).unwrap();
    let mut c = Checker::new(&policy, Duration::from_millis(100)).unwrap();
    let t = std::time::Instant::now();
    let o = c.check(&req(json!({"v0": 1}))).unwrap();
    let took = t.elapsed();
    assert!(o.fail_closed, "{o:?}");
    assert_eq!(o.decision, Decision::Deny);
    assert!(o.violated.is_empty() && o.undetermined.is_empty());
    // Generous: the bound is 100 ms; a per-call timeout would take hundreds of calls.
    assert!(took < Duration::from_secs(2), "{took:?}");
    // With enough time the same action is decided normally.
    let mut c = Checker::new(&policy, Duration::from_secs(600)).unwrap();
    let r = req(json!({"v0": 1, "v1": 0}));
    let o = c.check(&r).unwrap();
    assert_eq!((o.decision, o.fail_closed), (Decision::Deny, false));
}

/// A deadline already past, or a cancelled caller, fails closed even where no solver call
/// would be needed; the checker stays usable.
#[test]
fn past_deadline_or_cancellation_fails_closed() {
    let mut c = checker(EGRESS);
    let r = req(full());
    assert_eq!(c.check(&r).unwrap().decision, Decision::Allow);
    let past = std::time::Instant::now();
    let o = c.check_until(&r, past, None).unwrap();
    assert_eq!((o.decision, o.fail_closed), (Decision::Deny, true));
    let far = std::time::Instant::now() + Duration::from_secs(60);
    let o = c.check_until(&r, far, Some(&|| true)).unwrap();
    assert_eq!((o.decision, o.fail_closed), (Decision::Deny, true));
    let o = c.check_until(&r, far, Some(&|| false)).unwrap();
    assert_eq!((o.decision, o.fail_closed), (Decision::Allow, false));
}
