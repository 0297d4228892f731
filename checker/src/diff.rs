//! Semantic diff of two policy versions (`spec/decision-semantics.md` §9): an action one version
//! decides differently from the other, or a proof (unsat) that they decide every action alike.
//!
//! Both policies are encoded into one solver over the union of their variables: a variable known
//! to one policy only is free (within its declared domain) in the other's formulas. A variable
//! declared by both must have the same kind (and, for enums, the same values); int bounds may
//! differ and both apply. Both encodings share one string universe (the union of their literals
//! and list items), so equal strings get equal ids. The query asks for a complete assignment whose
//! decision class differs (deny-class `¬V_deny`, allow-class `V_deny ∧ V_esc`); since the decision
//! of any action is a function of the classes of its completions, unsat proves equivalence on
//! every action. A found model is re-checked with the real [`Checker`] on each policy (keys
//! unknown to a policy are dropped for it and listed).

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::analyze::{passes, AnalyzeError, Smt};
use crate::ast::{Effect, Policy, VarType};
use crate::encode::{Encoding, Term};
use crate::{CheckRequest, Checker, CompiledPolicy};

/// Errors of a diff.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiffError {
    /// A variable is declared with different types in the two policies.
    #[error("variable `{name}` is `{old}` in the old policy and `{new}` in the new one")]
    TypeMismatch {
        /// Variable.
        name: String,
        /// Old type.
        old: String,
        /// New type.
        new: String,
    },
    /// Solver failure.
    #[error(transparent)]
    Solver(#[from] AnalyzeError),
}

/// How one policy decides the distinguishing action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SideDecision {
    /// Decision class of the complete assignment found by the solver.
    pub class: String,
    /// The real checker's decision on the action (or `error: ...`).
    pub checked: String,
    /// Rule ids the checker reports violated.
    pub violated: Vec<String>,
    /// Action keys dropped because this policy does not declare them.
    pub dropped_keys: Vec<String>,
}

/// Result of a diff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
#[expect(
    clippy::large_enum_variant,
    reason = "built once per diff, never stored in bulk"
)]
pub enum DiffResult {
    /// No complete action is decided differently.
    Equivalent {
        /// Whether the canonical forms are byte-identical too.
        same_canonical: bool,
    },
    /// An action decided differently.
    Different {
        /// The action (present variables; tokens as `"<token>"`).
        action: Value,
        /// Number of verified approvals the model assumes (0 unless only approvals differ).
        approvals: i64,
        /// Old decision class of the complete assignment.
        old_decision: String,
        /// New decision class.
        new_decision: String,
        /// Old policy detail.
        old: SideDecision,
        /// New policy detail.
        new: SideDecision,
    },
}

/// Compare two compiled policies.
///
/// # Errors
/// [`DiffError::TypeMismatch`]; [`DiffError::Solver`] on timeout.
pub fn diff(
    old: &CompiledPolicy,
    new: &CompiledPolicy,
    timeout: Duration,
) -> Result<DiffResult, DiffError> {
    let same_canonical = old.canonical() == new.canonical();
    let (a, b) = (old.ast(), new.ast());
    check_types(a, b)?;
    let (a2, b2) = (with_shared_universe(a, b), with_shared_universe(b, a));
    let (ea, eb) = (Encoding::new(&a2), Encoding::new(&b2));
    let smt = Smt::new(timeout);
    for d in ea.domain().iter().chain(eb.domain()) {
        smt.assert(d)?;
    }
    let deny_a = passes(&ea, &a2, Some(Effect::Deny));
    let deny_b = passes(&eb, &b2, Some(Effect::Deny));
    let all_a = passes(&ea, &a2, None);
    let all_b = passes(&eb, &b2, None);
    let xor = |x: &Term, y: &Term| {
        Term::Not(Box::new(Term::Eq(Box::new(x.clone()), Box::new(y.clone()))))
    };
    let differs = Term::Or(vec![xor(&deny_a, &deny_b), xor(&all_a, &all_b)]);
    let encs = [(&ea, &a2), (&eb, &b2)];
    // Prefer a counterexample that states every variable and needs no approvals, so the real
    // checker decides it exactly as the complete assignment is classified.
    let no_approvals = Term::Eq(
        Box::new(ea.value(crate::ast::APPROVALS)),
        Box::new(Term::Int(0)),
    );
    let all_present = Term::And(a2.variables.iter().map(|v| ea.presence(&v.name)).collect());
    let attempts = [
        vec![differs.clone(), no_approvals.clone(), all_present],
        vec![differs.clone(), no_approvals],
        vec![differs],
    ];
    let mut model = None;
    for terms in &attempts {
        model = smt.model_of(terms, &encs, "diff")?;
        if model.is_some() {
            break;
        }
    }
    let Some(m) = model else {
        return Ok(DiffResult::Equivalent { same_canonical });
    };
    let assignment = m.block.not();
    let class = |deny: &Term, all: &Term| -> Result<String, DiffError> {
        Ok(if !smt.entails(&assignment, deny)? {
            "deny"
        } else if smt.entails(&assignment, all)? {
            "allow"
        } else {
            "escalate"
        }
        .to_owned())
    };
    let old_class = class(&deny_a, &all_a)?;
    let new_class = class(&deny_b, &all_b)?;
    let old_side = recheck(old, &m.action, &old_class, timeout, m.approvals);
    let new_side = recheck(new, &m.action, &new_class, timeout, m.approvals);
    Ok(DiffResult::Different {
        action: m.action,
        approvals: m.approvals,
        old_decision: old_class,
        new_decision: new_class,
        old: old_side,
        new: new_side,
    })
}

fn recheck(
    policy: &CompiledPolicy,
    action: &Value,
    class: &str,
    timeout: Duration,
    approvals: i64,
) -> SideDecision {
    let mut dropped = Vec::new();
    let mut obj = serde_json::Map::new();
    if let Value::Object(m) = action {
        for (k, v) in m {
            match policy.ast().variable(k) {
                None => dropped.push(k.clone()),
                Some(var) if matches!(var.ty, VarType::Token) => {
                    obj.insert(k.clone(), Value::String("token".to_owned()));
                }
                Some(_) => {
                    obj.insert(k.clone(), v.clone());
                }
            }
        }
    }
    let (checked, violated) = if approvals > 0 {
        (
            format!("not re-checked: needs {approvals} approvals"),
            Vec::new(),
        )
    } else {
        match Checker::new(policy, timeout).and_then(|mut c| {
            c.screen_and_check(&CheckRequest {
                action: Value::Object(obj),
                request_id: "diff".to_owned(),
                salt: Some(verdict_core::receipt::Salt([0; 32])),
                approvals: Vec::new(),
            })
        }) {
            Ok(o) => (
                crate::suite::Expect::of(o.decision).name().to_owned(),
                crate::suite::rule_ids(policy, &o.violated),
            ),
            Err(e) => (format!("error: {e}"), Vec::new()),
        }
    };
    SideDecision {
        class: class.to_owned(),
        checked,
        violated,
        dropped_keys: dropped,
    }
}

fn check_types(a: &Policy, b: &Policy) -> Result<(), DiffError> {
    for va in &a.variables {
        let Some(vb) = b.variable(&va.name) else {
            continue;
        };
        let same = match (&va.ty, &vb.ty) {
            (VarType::Int { .. }, VarType::Int { .. })
            | (VarType::String { .. }, VarType::String { .. }) => true,
            (VarType::Enum { values: x }, VarType::Enum { values: y }) => x == y,
            (x, y) => x == y,
        };
        if !same {
            return Err(DiffError::TypeMismatch {
                name: va.name.clone(),
                old: describe(&va.ty),
                new: describe(&vb.ty),
            });
        }
    }
    Ok(())
}

fn describe(t: &VarType) -> String {
    match t {
        VarType::Enum { values } => format!("enum [{}]", values.join(", ")),
        other => other.kind_name().to_owned(),
    }
}

/// A copy of `p` whose string universe also holds every literal and list item of `other`, and
/// which declares `other`'s extra variables (so both encodings share symbols and string ids).
fn with_shared_universe(p: &Policy, other: &Policy) -> Policy {
    let mut out = p.clone();
    let mut extra: std::collections::BTreeSet<String> =
        other.lists.values().flatten().cloned().collect();
    for r in other.rules.iter().chain(&p.rules) {
        for e in r.when.iter().chain(std::iter::once(&r.require)) {
            crate::encode::collect_strings(e, &mut extra);
        }
    }
    out.lists
        .insert("diff!universe".to_owned(), extra.into_iter().collect());
    for v in &other.variables {
        if out.variable(&v.name).is_none() {
            out.variables.push(v.clone());
        }
    }
    out.variables.sort_by(|x, y| x.name.cmp(&y.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use verdict_core::receipt::Salt;

    fn p(vars: &str, rules: &str) -> CompiledPolicy {
        crate::compile(
            &format!("name = \"t\"\nversion = \"1\"\n[variables]\n{vars}\n{rules}"),
            Salt([0; 32]),
        )
        .unwrap()
    }

    const R: &str =
        "[[rules]]\nid = \"r\"\ntext = \"t\"\nrequire = 'v in [\"a\", \"b\"]'\neffect = \"deny\"\n";

    #[test]
    fn string_ids_are_shared_across_versions() {
        let old = p("v = { type = \"string\" }", R);
        let new = p("v = { type = \"string\" }", &R.replace("\"b\"", "\"c\""));
        let DiffResult::Different {
            action,
            old: o,
            new: n,
            ..
        } = diff(&old, &new, Duration::from_secs(10)).unwrap()
        else {
            panic!("expected a difference")
        };
        let v = action["v"].as_str().unwrap();
        assert!(v == "b" || v == "c", "{action}");
        assert_ne!(o.checked, n.checked);
    }

    #[test]
    fn type_mismatch_is_an_error() {
        let old = p("v = { type = \"string\" }", R);
        let new = p("v = { type = \"int\" }", "");
        assert!(matches!(
            diff(&old, &new, Duration::from_secs(10)),
            Err(DiffError::TypeMismatch { .. })
        ));
    }

    #[test]
    fn a_new_variable_is_free_in_the_old_policy() {
        let old = p("v = { type = \"string\" }", R);
        let extra =
            "[[rules]]\nid = \"w\"\ntext = \"t\"\nrequire = 'w == true'\neffect = \"deny\"\n";
        let new = p(
            "v = { type = \"string\" }\nw = { type = \"bool\" }",
            &format!("{R}{extra}"),
        );
        let DiffResult::Different { action, old: o, .. } =
            diff(&old, &new, Duration::from_secs(10)).unwrap()
        else {
            panic!("expected a difference")
        };
        assert_eq!(action["w"], false);
        assert_eq!(o.dropped_keys, ["w"]);
    }
}
