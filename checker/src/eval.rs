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

/// Where evaluation looks up variables: an [`Action`], or an action extended by a completion of
/// some unbound variables ([`crate::residual`]).
pub trait Env {
    /// The binding of `name`: `None` when unbound, [`BoundValue::Absent`] when explicitly absent.
    fn lookup(&self, name: &str) -> Option<&BoundValue>;

    /// The value of `name` when it is bound and present.
    fn present_value(&self, name: &str) -> Option<&BoundValue> {
        self.lookup(name).filter(|v| **v != BoundValue::Absent)
    }
}

impl Env for Action {
    fn lookup(&self, name: &str) -> Option<&BoundValue> {
        self.get(name)
    }
}

fn operand<'a, E: Env + ?Sized>(o: &'a Operand, action: &'a E, approvals: i64) -> Option<Val<'a>> {
    match o {
        Operand::Int(n) => Some(Val::Int(*n)),
        Operand::Bool(b) => Some(Val::Bool(*b)),
        Operand::Str(s) => Some(Val::Str(s)),
        Operand::Var(v) if v == APPROVALS => Some(Val::Int(approvals)),
        Operand::Var(v) => match action.present_value(v)? {
            BoundValue::Bool(b) => Some(Val::Bool(*b)),
            BoundValue::Int(n) => Some(Val::Int(*n)),
            BoundValue::Enum { value, .. } => Some(Val::Str(value)),
            BoundValue::Str(s) => Some(Val::Str(s)),
            BoundValue::TokenPresent | BoundValue::Absent => None,
        },
    }
}

fn string_of<'a, E: Env + ?Sized>(action: &'a E, var: &str) -> Option<&'a str> {
    match action.present_value(var)? {
        BoundValue::Enum { value, .. } => Some(value),
        BoundValue::Str(s) => Some(s),
        _ => None,
    }
}

/// Evaluate a type-checked expression on a fully known action (or completion).
pub fn eval<E: Env + ?Sized>(e: &Expr, policy: &Policy, action: &E, approvals: i64) -> bool {
    match e {
        Expr::Const(b) => *b,
        Expr::Var(v) => matches!(action.present_value(v), Some(BoundValue::Bool(true))),
        Expr::Present(v) => v == APPROVALS || action.present_value(v).is_some(),
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

fn bound(o: &Operand, action: &Action) -> bool {
    match o {
        Operand::Var(v) => v == APPROVALS || action.get(v).is_some(),
        _ => true,
    }
}

/// Evaluate a type-checked expression on a *partial* action (Kleene three-valued logic):
/// `Some(b)` when the expression is `b` in every completion of the unbound variables (variables
/// with no binding, [`Action::get`] `None`; `approvals` is always bound), `None` when it may
/// depend on them. Sound, not complete: `None` does not imply that it depends on them. Atoms
/// whose variables are all bound are evaluated by [`eval`], so a `Some` agrees with the encoding
/// (`spec/decision-semantics.md` §4.3) on every completion.
pub fn eval_partial(e: &Expr, policy: &Policy, action: &Action, approvals: i64) -> Option<bool> {
    let is_bound = |v: &str| v == APPROVALS || action.get(v).is_some();
    match e {
        Expr::Const(b) => Some(*b),
        Expr::Var(v)
        | Expr::Present(v)
        | Expr::InList { var: v, .. }
        | Expr::InSet { var: v, .. } => is_bound(v).then(|| eval(e, policy, action, approvals)),
        Expr::Not(x) => eval_partial(x, policy, action, approvals).map(|b| !b),
        Expr::And(xs) => {
            let mut all = Some(true);
            for x in xs {
                match eval_partial(x, policy, action, approvals) {
                    Some(false) => return Some(false),
                    Some(true) => {}
                    None => all = None,
                }
            }
            all
        }
        Expr::Or(xs) => {
            let mut any = Some(false);
            for x in xs {
                match eval_partial(x, policy, action, approvals) {
                    Some(true) => return Some(true),
                    Some(false) => {}
                    None => any = None,
                }
            }
            any
        }
        Expr::Implies(a, b) => match (
            eval_partial(a, policy, action, approvals),
            eval_partial(b, policy, action, approvals),
        ) {
            (Some(false), _) | (_, Some(true)) => Some(true),
            (Some(true), Some(false)) => Some(false),
            _ => None,
        },
        Expr::Cmp { lhs, rhs, .. } => {
            (bound(lhs, action) && bound(rhs, action)).then(|| eval(e, policy, action, approvals))
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
