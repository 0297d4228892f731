//! Boundary scenarios (`spec/decision-semantics.md` §9): distinct actions found by enumerating
//! models of interesting targets with blocking clauses, printed as a suite skeleton
//! (`spec/policy-language.md` §9) for a reviewer to label.
//!
//! Targets, in order: every rule passes; each rule violated; each rule's `when` holding while its
//! `require` holds; for each int comparison with constant `c`, the variable at `c - 1`, `c` and
//! `c + 1`. Each target is first tried with every variable present (so the scenario decides
//! without escalating for missing data), then with presence free. Every found model is blocked,
//! so no two scenarios are the same action; the round-robin over targets repeats until `max`
//! scenarios or no target has a new model.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::analyze::{passes, AnalyzeError, Smt};
use crate::ast::{CmpOp, Expr, Operand, Policy, VarType, APPROVALS};
use crate::encode::{Encoding, Term};
use crate::suite::{rule_ids, Expect};
use crate::{CheckRequest, Checker, CompiledPolicy};

/// Hard ceiling on `max`.
pub const MAX_SCENARIOS: usize = 1000;

/// One generated scenario.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scenario {
    /// Case name (the target it was generated for, numbered).
    pub name: String,
    /// The action.
    pub action: Value,
    /// Approver names to sign with when the model needs approvals.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<String>,
    /// What the checker decides today (a hint for the reviewer, not an expectation).
    pub checker_says: String,
    /// Violated rule ids today.
    pub violated: Vec<String>,
    /// Undetermined variables today.
    pub undetermined: Vec<String>,
}

/// The generated skeleton.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Skeleton {
    /// Policy name.
    pub policy: String,
    /// Scenarios in generation order.
    pub scenarios: Vec<Scenario>,
}

/// Generate up to `max` distinct boundary scenarios.
///
/// # Errors
/// [`AnalyzeError`] on solver failure.
pub fn generate(
    policy: &CompiledPolicy,
    max: usize,
    timeout: Duration,
) -> Result<Skeleton, AnalyzeError> {
    let ast = policy.ast();
    let enc = Encoding::new(ast);
    let smt = Smt::new(timeout);
    for d in enc.domain() {
        smt.assert(d)?;
    }
    let targets = targets(&enc, ast);
    let all_present = Term::And(
        ast.variables
            .iter()
            .map(|v| enc.presence(&v.name))
            .collect(),
    );
    let encs = [(&enc, ast)];
    let max = max.min(MAX_SCENARIOS);
    let mut found = Vec::new();
    let mut progress = true;
    while found.len() < max && progress {
        progress = false;
        for (label, t) in &targets {
            if found.len() >= max {
                break;
            }
            let m = match smt.model_of(&[t.clone(), all_present.clone()], &encs, "scenarios")? {
                Some(m) => Some(m),
                None => smt.model_of(std::slice::from_ref(t), &encs, "scenarios")?,
            };
            let Some(m) = m else { continue };
            smt.assert_z3(&m.block);
            progress = true;
            found.push((
                format!("{} #{}", label, found.len() + 1),
                m.action,
                m.approvals,
            ));
        }
    }
    let mut checker = Checker::new(policy, timeout).ok();
    let scenarios = found
        .into_iter()
        .map(|(name, action, approvals)| {
            let approvers: Vec<String> = ast
                .approvers
                .iter()
                .take(usize::try_from(approvals).unwrap_or(0))
                .map(|a| a.name.clone())
                .collect();
            let action = tokens_as_strings(ast, action);
            let (says, violated, undetermined) = match checker.as_mut() {
                Some(c) if approvers.is_empty() => match c.screen_and_check(&CheckRequest {
                    action: action.clone(),
                    request_id: "scenario".to_owned(),
                    salt: Some(verdict_core::receipt::Salt([0; 32])),
                    approvals: Vec::new(),
                }) {
                    Ok(o) => (
                        Expect::of(o.decision).name().to_owned(),
                        rule_ids(policy, &o.violated),
                        o.undetermined,
                    ),
                    Err(e) => (format!("error: {e}"), Vec::new(), Vec::new()),
                },
                Some(_) => (
                    "needs approvals: run the suite".to_owned(),
                    Vec::new(),
                    Vec::new(),
                ),
                None => ("unchecked".to_owned(), Vec::new(), Vec::new()),
            };
            Scenario {
                name,
                action,
                approvals: approvers,
                checker_says: says,
                violated,
                undetermined,
            }
        })
        .collect();
    Ok(Skeleton {
        policy: policy.name().to_owned(),
        scenarios,
    })
}

/// Tokens come out of models as `"<token>"`; give them a plain placeholder value.
fn tokens_as_strings(policy: &Policy, action: Value) -> Value {
    match action {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| match policy.variable(&k).map(|x| &x.ty) {
                    Some(VarType::Token) => (k.clone(), Value::String(format!("{k}-value"))),
                    _ => (k, v),
                })
                .collect(),
        ),
        other => other,
    }
}

fn targets(enc: &Encoding, policy: &Policy) -> Vec<(String, Term)> {
    let mut out = vec![("every rule passes".to_owned(), passes(enc, policy, None))];
    for (i, r) in policy.rules.iter().enumerate() {
        if let Some(v) = enc.violated().get(i) {
            out.push((format!("violates {}", r.id), v.clone()));
        }
        if let (Some(w), Some(q)) = (enc.when().get(i), enc.require().get(i)) {
            if r.when.is_some() {
                out.push((
                    format!("{} applies and holds", r.id),
                    Term::And(vec![w.clone(), q.clone()]),
                ));
            }
        }
    }
    let mut seen = Vec::new();
    for r in &policy.rules {
        for e in r.when.iter().chain(std::iter::once(&r.require)) {
            boundaries(e, &mut seen);
        }
    }
    for (var, c) in seen {
        for k in [c.checked_sub(1), Some(c), c.checked_add(1)]
            .into_iter()
            .flatten()
        {
            let t = Term::And(vec![
                enc.presence(&var),
                Term::Eq(Box::new(enc.value(&var)), Box::new(Term::Int(k))),
            ]);
            out.push((format!("{var} = {k}"), t));
        }
    }
    out
}

/// (int variable, constant) pairs of ordering and equality comparisons.
fn boundaries(e: &Expr, out: &mut Vec<(String, i64)>) {
    match e {
        Expr::Not(x) => boundaries(x, out),
        Expr::And(xs) | Expr::Or(xs) => xs.iter().for_each(|x| boundaries(x, out)),
        Expr::Implies(a, b) => {
            boundaries(a, out);
            boundaries(b, out);
        }
        Expr::Cmp { op, lhs, rhs } => {
            let _: CmpOp = *op;
            if let (Operand::Var(v), Operand::Int(c)) | (Operand::Int(c), Operand::Var(v)) =
                (lhs, rhs)
            {
                if v != APPROVALS && !out.iter().any(|(x, y)| x == v && y == c) {
                    out.push((v.clone(), *c));
                }
            }
        }
        _ => {}
    }
}

/// Render a skeleton as a suite file whose `expect` fields a reviewer must fill in (an
/// unlabelled skeleton does not parse as a suite, on purpose).
///
/// # Errors
/// A serialisation error message.
pub fn to_toml(s: &Skeleton, policy_file: &str) -> Result<String, String> {
    let mut out = format!(
        "# Scenario skeleton for {} generated by `verdict-policy scenarios`.\n\
         # Label every case: replace `expect = \"label-me\"` by allow, deny, escalate or error.\n\
         policy = {}\n",
        s.policy,
        toml_str(policy_file)
    );
    for c in &s.scenarios {
        out.push_str("\n[[case]]\n");
        out.push_str(&format!("name = {}\n", toml_str(&c.name)));
        out.push_str(&format!("action = {}\n", inline_table(&c.action)?));
        if !c.approvals.is_empty() {
            let names: Vec<String> = c.approvals.iter().map(|a| toml_str(a)).collect();
            out.push_str(&format!("approvals = [{}]\n", names.join(", ")));
        }
        let mut hint = format!("# checker says: {}", c.checker_says);
        if !c.violated.is_empty() {
            hint.push_str(&format!("; violated: {}", c.violated.join(", ")));
        }
        if !c.undetermined.is_empty() {
            hint.push_str(&format!("; undetermined: {}", c.undetermined.join(", ")));
        }
        out.push_str(&hint);
        out.push_str("\nexpect = \"label-me\"\n");
    }
    Ok(out)
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn inline_table(v: &Value) -> Result<String, String> {
    let Value::Object(m) = v else {
        return Err("action is not an object".to_owned());
    };
    let mut parts = Vec::new();
    for (k, v) in m {
        let val = match v {
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::String(s) => toml_str(s),
            other => return Err(format!("unsupported value {other}")),
        };
        parts.push(format!("{k} = {val}"));
    }
    Ok(format!("{{ {} }}", parts.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use verdict_core::receipt::Salt;

    #[test]
    fn boundaries_and_distinct_actions() {
        let p = crate::compile(
            "name = \"t\"\nversion = \"1\"\n[variables]\nx = { type = \"int\", min = 0, max = 100 }\n\
             [[rules]]\nid = \"cap\"\ntext = \"t\"\nrequire = 'x <= 50'\neffect = \"deny\"\n",
            Salt([0; 32]),
        )
        .unwrap();
        let s = generate(&p, 50, Duration::from_secs(10)).unwrap();
        let xs: Vec<Option<i64>> = s.scenarios.iter().map(|c| c.action["x"].as_i64()).collect();
        for want in [49, 50, 51] {
            assert!(xs.contains(&Some(want)), "{xs:?}");
        }
        let distinct: std::collections::BTreeSet<String> =
            s.scenarios.iter().map(|c| c.action.to_string()).collect();
        assert_eq!(distinct.len(), s.scenarios.len());
        let toml = to_toml(&s, "t.toml").unwrap();
        assert!(
            crate::suite::Suite::parse(&toml, false).is_err(),
            "unlabelled must not load"
        );
        let labelled = toml.replace("\"label-me\"", "\"allow\"");
        assert_eq!(
            crate::suite::Suite::parse(&labelled, false)
                .unwrap()
                .cases
                .len(),
            s.scenarios.len()
        );
    }

    #[test]
    fn max_is_respected() {
        let p = crate::compile(
            "name = \"t\"\nversion = \"1\"\n[variables]\nx = { type = \"int\" }\n\
             [[rules]]\nid = \"cap\"\ntext = \"t\"\nrequire = 'x <= 50'\neffect = \"deny\"\n",
            Salt([0; 32]),
        )
        .unwrap();
        assert_eq!(
            generate(&p, 3, Duration::from_secs(10))
                .unwrap()
                .scenarios
                .len(),
            3
        );
        assert!(generate(&p, 0, Duration::from_secs(10))
            .unwrap()
            .scenarios
            .is_empty());
    }
}
