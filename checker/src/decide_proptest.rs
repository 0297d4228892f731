//! Property test of the decision procedure against the direct evaluator ([`crate::eval`]).
//!
//! Random small policies (2–4 variables of the pool below, 1–4 rules from a small expression
//! generator, written as TOML text so the parser and type checker are exercised too) and random
//! actions where each variable is bound or left unbound. The oracle enumerates every completion
//! of the unbound variables over a finite domain that covers all distinguishable values (every
//! literal is in `-6..=6`, strings are compared against `x`, `y`, `z` only):
//! - no completion satisfies all deny rules ⇒ Deny;
//! - every completion violates nothing ⇒ Allow;
//! - otherwise ⇒ Escalate.
//!
//! Bound values include `null` (explicitly absent; every variable of the pool is declared
//! `optional = true` so that it may be). The reported rules and undetermined variables
//! must match a brute-force computation of `spec/decision-semantics.md` §4.1–4.2 over the same
//! completions, for partial actions too; the checker with its solver-free paths turned off (every
//! rule decided by Z3) must give the identical outcome. For fully bound actions the violated rule
//! lists must also match direct evaluation.
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use verdict_core::receipt::{Decision, Salt};

use crate::action::Action;
use crate::eval::{decide_concrete, violated_rules};
use crate::{CheckRequest, Checker};

/// (name, declaration, kind)
const POOL: &[(&str, &str, &str)] = &[
    (
        "i0",
        r#"{ type = "int", min = -3, max = 3, optional = true }"#,
        "int",
    ),
    ("i1", r#"{ type = "int", min = 0, optional = true }"#, "int"),
    ("b0", r#"{ type = "bool", optional = true }"#, "bool"),
    (
        "e0",
        r#"{ type = "enum", values = ["a", "b", "c"], optional = true }"#,
        "enum",
    ),
    (
        "s0",
        r#"{ type = "string", list = "l", optional = true }"#,
        "string",
    ),
    ("s1", r#"{ type = "string", optional = true }"#, "string"),
    ("t0", r#"{ type = "token" }"#, "token"),
];

/// Values a completion may take (absence is tried separately).
fn domain(kind: &str, name: &str) -> Vec<Value> {
    match (kind, name) {
        ("int", "i0") => (-3..=3).map(Value::from).collect(),
        ("int", _) => (0..=7).map(Value::from).collect(),
        ("bool", _) => vec![json!(true), json!(false)],
        ("enum", _) => vec![json!("a"), json!("b"), json!("c")],
        ("string", _) => vec![json!("x"), json!("y"), json!("z"), json!("q1"), json!("q2")],
        _ => vec![json!("tok")],
    }
}

fn leaf(vars: &[usize]) -> BoxedStrategy<String> {
    let vars = vars.to_vec();
    (
        0..vars.len(),
        0..6usize,
        -6i64..=6,
        any::<prop::sample::Index>(),
    )
        .prop_map(move |(vi, form, k, pick)| {
            let (name, _, kind) = POOL[vars[vi]];
            let ops = ["==", "!=", "<", "<=", ">", ">="];
            let op = ops[pick.index(ops.len())];
            let same_kind: Vec<&str> = vars
                .iter()
                .map(|&j| POOL[j])
                .filter(|(n, _, kd)| *kd == kind && *n != name)
                .map(|(n, _, _)| n)
                .collect();
            match (kind, form) {
                (_, 0) => format!("present({name})"),
                ("int", 1) if !same_kind.is_empty() => {
                    format!("{name} {op} {}", same_kind[pick.index(same_kind.len())])
                }
                ("int", _) => format!("{name} {op} {k}"),
                ("bool", 1) => name.to_owned(),
                ("bool", _) => format!("{name} {} {}", ["==", "!="][form % 2], k % 2 == 0),
                ("enum", 1) => format!(r#"{name} in ["a", "c"]"#),
                ("enum", _) => format!(
                    r#"{name} {} "{}""#,
                    ["==", "!="][form % 2],
                    ["a", "b", "c"][pick.index(3)]
                ),
                ("string", 1) => format!("{name} in l"),
                ("string", 2) if !same_kind.is_empty() => format!("{name} == {}", same_kind[0]),
                ("string", 3) => format!(r#"{name} in ["x", "z"]"#),
                ("string", _) => {
                    format!(
                        r#"{name} {} "{}""#,
                        ["==", "!="][form % 2],
                        ["x", "y", "z"][pick.index(3)]
                    )
                }
                _ => format!("present({name})"),
            }
        })
        .boxed()
}

fn expr(vars: &[usize]) -> BoxedStrategy<String> {
    leaf(vars)
        .prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                inner.clone().prop_map(|e| format!("not ({e})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) or ({b})")),
                (inner.clone(), inner).prop_map(|(a, b)| format!("({a}) => ({b})")),
            ]
        })
        .boxed()
}

#[derive(Debug, Clone)]
struct Case {
    toml: String,
    vars: Vec<usize>,
    action: Map<String, Value>,
}

fn case() -> impl Strategy<Value = Case> {
    prop::sample::subsequence((0..POOL.len()).collect::<Vec<_>>(), 2..=4).prop_flat_map(|vars| {
        let rule = (
            proptest::option::of(expr(&vars)),
            expr(&vars),
            any::<bool>(),
        );
        let binding = vars
            .iter()
            .map(|&i| {
                let (name, _, kind) = POOL[i];
                let mut vals = domain(kind, name);
                vals.push(Value::Null);
                proptest::option::weighted(0.6, prop::sample::select(vals))
            })
            .collect::<Vec<_>>();
        (
            Just(vars.clone()),
            prop::collection::vec(rule, 1..=4),
            binding,
        )
            .prop_map(|(vars, rules, binding)| {
                let mut toml = String::from(
                    "name = \"prop\"\nversion = \"1\"\n[lists]\nl = [\"x\", \"y\"]\n[variables]\n",
                );
                for &i in &vars {
                    toml.push_str(&format!("{} = {}\n", POOL[i].0, POOL[i].1));
                }
                for (n, (when, require, deny)) in rules.iter().enumerate() {
                    toml.push_str(&format!("[[rules]]\nid = \"r{n}\"\ntext = \"t\"\n"));
                    if let Some(w) = when {
                        toml.push_str(&format!("when = '{w}'\n"));
                    }
                    toml.push_str(&format!(
                        "require = '{require}'\neffect = \"{}\"\n",
                        if *deny { "deny" } else { "escalate" }
                    ));
                }
                let mut action = Map::new();
                for (&i, v) in vars.iter().zip(binding) {
                    if let Some(v) = v {
                        action.insert(POOL[i].0.to_owned(), v);
                    }
                }
                Case { toml, vars, action }
            })
    })
}

/// All completions of the unbound variables (absent or any domain value).
fn completions(case: &Case) -> Vec<Map<String, Value>> {
    let mut out = vec![case.action.clone()];
    for &i in &case.vars {
        let (name, _, kind) = POOL[i];
        if case.action.contains_key(name) {
            continue;
        }
        let mut next = Vec::new();
        for c in &out {
            next.push(c.clone());
            for v in domain(kind, name) {
                let mut c2 = c.clone();
                c2.insert(name.to_owned(), v);
                next.push(c2);
            }
        }
        out = next;
    }
    out
}

/// The full outcome by brute force over every completion (`spec/decision-semantics.md` §4):
/// decision, reported rules (§4.1) and undetermined variables (§4.2).
fn oracle(case: &Case, ast: &crate::ast::Policy) -> (Decision, Vec<u32>, Vec<String>) {
    let viol: Vec<Vec<bool>> = completions(case)
        .into_iter()
        .map(|c| {
            let a = Action::from_value(ast, &Value::Object(c)).unwrap();
            let v = violated_rules(ast, &a, 0);
            (0..ast.rules.len())
                .map(|i| v.contains(&(i as u32)))
                .collect()
        })
        .collect();
    let of = |effect| -> Vec<usize> {
        (0..ast.rules.len())
            .filter(|&i| ast.rules[i].effect == effect)
            .collect()
    };
    let jointly = |set: &[usize]| viol.iter().any(|v| set.iter().all(|&r| !v[r]));
    let everywhere = |r: usize| viol.iter().all(|v| v[r]);
    let somewhere = |r: usize| viol.iter().any(|v| v[r]);
    let deny = of(crate::ast::Effect::Deny);
    if !jointly(&deny) {
        let forced: Vec<usize> = deny.iter().copied().filter(|&r| everywhere(r)).collect();
        let rules = if forced.is_empty() {
            let mut keep = deny.clone();
            let mut k = 0;
            while k < keep.len() {
                let mut trial = keep.clone();
                trial.remove(k);
                if jointly(&trial) {
                    k += 1;
                } else {
                    keep = trial;
                }
            }
            keep
        } else {
            forced
        };
        return (
            Decision::Deny,
            rules.into_iter().map(|r| r as u32).collect(),
            vec![],
        );
    }
    if (0..ast.rules.len()).all(|r| !somewhere(r)) {
        return (Decision::Allow, vec![], vec![]);
    }
    let violated = of(crate::ast::Effect::Escalate)
        .into_iter()
        .filter(|&r| everywhere(r))
        .map(|r| r as u32)
        .collect();
    let mut undetermined = std::collections::BTreeSet::new();
    for (r, rule) in ast.rules.iter().enumerate() {
        if somewhere(r) && !everywhere(r) {
            undetermined.extend(
                rule.variables()
                    .into_iter()
                    .filter(|v| *v != crate::ast::APPROVALS && !case.action.contains_key(*v))
                    .map(str::to_owned),
            );
        }
    }
    (
        Decision::Escalate,
        violated,
        undetermined.into_iter().collect(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn z3_decision_matches_direct_evaluation(case in case()) {
        let policy = crate::compile(&case.toml, Salt([0; 32])).unwrap();
        let ast = policy.ast();
        let req = CheckRequest {
            action: Value::Object(case.action.clone()),
            request_id: "p".into(),
            salt: Some(Salt([1; 32])),
            approvals: vec![],
        };
        let mut checker = Checker::new(&policy, Duration::from_secs(10)).unwrap();
        let out = checker.check(&req).unwrap();
        prop_assert!(!out.fail_closed);
        // The solver-only path (every rule decided by Z3) gives the same outcome.
        let mut z3_only = Checker::new(&policy, Duration::from_secs(10)).unwrap();
        z3_only.set_direct_evaluation(false);
        let by_z3 = z3_only.check(&req).unwrap();
        prop_assert_eq!(&by_z3, &out, "policy:\n{}\naction: {:?}", case.toml, case.action);
        // Decision, reported rules and undetermined variables by brute force (partial actions
        // included).
        let (d, violated, undetermined) = oracle(&case, ast);
        prop_assert_eq!(
            (out.decision, &out.violated, &out.undetermined),
            (d, &violated, &undetermined),
            "policy:\n{}\naction: {:?}",
            case.toml,
            case.action
        );

        let mut any_deny_ok = false;
        let mut all_clean = true;
        for c in completions(&case) {
            let a = Action::from_value(ast, &Value::Object(c)).unwrap();
            let (d, _) = decide_concrete(ast, &a, 0);
            any_deny_ok |= d != Decision::Deny;
            all_clean &= violated_rules(ast, &a, 0).is_empty();
        }
        let expected = if !any_deny_ok {
            Decision::Deny
        } else if all_clean {
            Decision::Allow
        } else {
            Decision::Escalate
        };
        prop_assert_eq!(out.decision, expected, "policy:\n{}\naction: {:?}\n{:?}", case.toml, case.action, out);

        if out.decision == Decision::Escalate {
            // An escalation always says why: a rule or a variable to supply.
            prop_assert!(!out.violated.is_empty() || !out.undetermined.is_empty(), "{:?}", out);
        }
        if case.action.len() == case.vars.len() {
            let a = Action::from_value(ast, &Value::Object(case.action.clone())).unwrap();
            let (d, violated) = decide_concrete(ast, &a, 0);
            prop_assert_eq!(out.decision, d);
            prop_assert_eq!(&out.violated, &violated);
            prop_assert!(out.undetermined.is_empty());
        }
    }
}
