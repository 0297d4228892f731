//! Direct evaluation of rules on a *fully known* action: the reference semantics the Z3 decision
//! is tested against (`spec/decision-semantics.md` §3). An absent variable makes every comparison
//! on it false; `present(x)` tests presence.

use verdict_core::receipt::Decision;

use crate::action::{Action, BoundValue};
use crate::ast::{Effect, Expr, Operand, Policy, APPROVALS};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Val<'a> {
    Int(i64),
    Bool(bool),
    Str(&'a str),
}

fn operand<'a>(o: &'a Operand, action: &'a Action, approvals: i64) -> Option<Val<'a>> {
    match o {
        Operand::Int(n) => Some(Val::Int(*n)),
        Operand::Bool(b) => Some(Val::Bool(*b)),
        Operand::Str(s) => Some(Val::Str(s)),
        Operand::Var(v) if v == APPROVALS => Some(Val::Int(approvals)),
        Operand::Var(v) => match action.value(v)? {
            BoundValue::Bool(b) => Some(Val::Bool(*b)),
            BoundValue::Int(n) => Some(Val::Int(*n)),
            BoundValue::Enum { value, .. } => Some(Val::Str(value)),
            BoundValue::Str(s) => Some(Val::Str(s)),
            BoundValue::TokenPresent | BoundValue::Absent => None,
        },
    }
}

fn string_of<'a>(action: &'a Action, var: &str) -> Option<&'a str> {
    match action.value(var)? {
        BoundValue::Enum { value, .. } => Some(value),
        BoundValue::Str(s) => Some(s),
        _ => None,
    }
}

/// Evaluate a type-checked expression.
pub fn eval(e: &Expr, policy: &Policy, action: &Action, approvals: i64) -> bool {
    match e {
        Expr::Const(b) => *b,
        Expr::Var(v) => matches!(action.value(v), Some(BoundValue::Bool(true))),
        Expr::Present(v) => v == APPROVALS || action.value(v).is_some(),
        Expr::Not(x) => !eval(x, policy, action, approvals),
        Expr::And(xs) => xs.iter().all(|x| eval(x, policy, action, approvals)),
        Expr::Or(xs) => xs.iter().any(|x| eval(x, policy, action, approvals)),
        Expr::Implies(a, b) => {
            !eval(a, policy, action, approvals) || eval(b, policy, action, approvals)
        }
        Expr::InList { var, list } => string_of(action, var).is_some_and(|s| {
            policy
                .lists
                .get(list)
                .is_some_and(|items| items.iter().any(|i| i == s))
        }),
        Expr::InSet { var, values } => {
            string_of(action, var).is_some_and(|s| values.iter().any(|v| v == s))
        }
        Expr::Cmp { op, lhs, rhs } => {
            match (
                operand(lhs, action, approvals),
                operand(rhs, action, approvals),
            ) {
                (Some(a), Some(b)) => match (a, b) {
                    (Val::Int(a), Val::Int(b)) => op.apply(&a, &b),
                    (Val::Bool(a), Val::Bool(b)) => op.apply(&a, &b),
                    (Val::Str(a), Val::Str(b)) => op.apply(&a, &b),
                    _ => false,
                },
                _ => false,
            }
        }
    }
}

/// Indices of the rules the action violates.
pub fn violated_rules(policy: &Policy, action: &Action, approvals: i64) -> Vec<u32> {
    policy
        .rules
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.when
                .as_ref()
                .is_none_or(|w| eval(w, policy, action, approvals))
                && !eval(&r.require, policy, action, approvals)
        })
        .map(|(i, _)| u32::try_from(i).unwrap_or(u32::MAX))
        .collect()
}

/// The decision for a fully known action and the rules it reports: deny (violated deny rules)
/// if any deny rule is violated, else escalate (violated escalate rules) if any, else allow.
pub fn decide_concrete(policy: &Policy, action: &Action, approvals: i64) -> (Decision, Vec<u32>) {
    let violated = violated_rules(policy, action, approvals);
    let of = |effect| -> Vec<u32> {
        violated
            .iter()
            .copied()
            .filter(|&i| {
                policy
                    .rules
                    .get(i as usize)
                    .is_some_and(|r| r.effect == effect)
            })
            .collect()
    };
    let deny = of(Effect::Deny);
    if !deny.is_empty() {
        return (Decision::Deny, deny);
    }
    let esc = of(Effect::Escalate);
    if !esc.is_empty() {
        return (Decision::Escalate, esc);
    }
    (Decision::Allow, Vec::new())
}
