//! Exact reasoning over unbound variables without the solver (`spec/decision-semantics.md` §4.4).
//!
//! After an action binds some variables, a rule's truth depends only on its unbound variables.
//! Each unbound variable ranges over a finite set of *representatives* that realise every
//! distinguishable case of the atoms the policy writes about it:
//! - `bool`: `false`, `true`; `token`: present; `enum`: every declared value;
//! - `int` in `[lo, hi]` (its bounds, default the i64 range): `lo` and `c - 1`, `c`, `c + 1`
//!   (within the bounds) for every constant `c` the variable is compared with, the bound value of
//!   every variable it is compared with included. The constants cut the line into points and
//!   open intervals; every non-empty piece within the bounds holds one representative, and each
//!   comparison is constant on a piece;
//! - `string`: every literal, list item and bound partner value it is compared with, plus one
//!   string distinct from all of them (every atom on it is an equality with one of these);
//! - plus *absent*, for every type (presence is never constrained).
//!
//! The domain constraints are per variable (`spec/decision-semantics.md` §4.3), so the
//! completions of a set of rules are the product of the representatives of its unbound
//! variables, and enumerating that product decides exactly whether some completion violates a
//! rule, satisfies it, or satisfies a set of rules jointly. An unbound `int` or `string`
//! variable compared with another unbound variable has no fixed representatives: such questions, and products
//! above [`MAX_COMPLETIONS`], are left to the solver (`None`).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use crate::action::{Action, BoundValue};
use crate::ast::{Expr, Operand, Policy, Rule, VarType, APPROVALS};
use crate::eval::{eval, Env};

/// Most completions enumerated for one question before it is left to the solver.
pub const MAX_COMPLETIONS: usize = 1024;

#[derive(Debug, Clone)]
enum Open {
    /// Every value is a representative already (bool, token, enum).
    Closed,
    /// An int in `[lo, hi]` compared with `consts`.
    Int {
        lo: i64,
        hi: i64,
        consts: BTreeSet<i64>,
    },
    /// A string compared with `lits`.
    Str { lits: BTreeSet<String> },
}

#[derive(Debug, Clone)]
struct VarAbs {
    /// Representatives when no partner adds a value, `Absent` first.
    reps: Vec<BoundValue>,
    open: Open,
    /// Variables this one is compared with (`x op y`).
    partners: BTreeSet<String>,
}

/// Representatives of every declared variable of one policy (built once per checker).
#[derive(Debug, Clone)]
pub struct Abstraction {
    vars: BTreeMap<String, VarAbs>,
}

/// An action extended by values for some of its unbound variables.
struct Completion<'a> {
    action: &'a Action,
    names: &'a [&'a str],
    values: Vec<&'a BoundValue>,
}

impl Env for Completion<'_> {
    fn lookup(&self, name: &str) -> Option<&BoundValue> {
        match self.names.iter().position(|n| *n == name) {
            Some(i) => self.values.get(i).copied(),
            None => self.action.get(name),
        }
    }
}

fn int_reps(lo: i64, hi: i64, consts: &BTreeSet<i64>) -> Vec<BoundValue> {
    let mut out = BTreeSet::from([lo]);
    for &c in consts {
        for p in [c.checked_sub(1), Some(c), c.checked_add(1)]
            .into_iter()
            .flatten()
        {
            if (lo..=hi).contains(&p) {
                out.insert(p);
            }
        }
    }
    std::iter::once(BoundValue::Absent)
        .chain(out.into_iter().map(BoundValue::Int))
        .collect()
}

fn str_reps(lits: &BTreeSet<String>) -> Vec<BoundValue> {
    let mut fresh = String::from("other");
    while lits.contains(&fresh) {
        fresh.push('_');
    }
    std::iter::once(BoundValue::Absent)
        .chain(lits.iter().cloned().map(BoundValue::Str))
        .chain(std::iter::once(BoundValue::Str(fresh)))
        .collect()
}

fn collect(e: &Expr, policy: &Policy, vars: &mut BTreeMap<String, VarAbs>) {
    let mut lit = |var: &str, o: &Operand| {
        let Some(v) = vars.get_mut(var) else { return };
        match (&mut v.open, o) {
            (Open::Int { consts, .. }, Operand::Int(n)) => {
                consts.insert(*n);
            }
            (Open::Str { lits }, Operand::Str(s)) => {
                lits.insert(s.clone());
            }
            _ => {}
        }
    };
    match e {
        Expr::Const(_) | Expr::Var(_) | Expr::Present(_) => {}
        Expr::Not(x) => collect(x, policy, vars),
        Expr::And(xs) | Expr::Or(xs) => xs.iter().for_each(|x| collect(x, policy, vars)),
        Expr::Implies(a, b) => {
            collect(a, policy, vars);
            collect(b, policy, vars);
        }
        Expr::Cmp { lhs, rhs, .. } => match (lhs, rhs) {
            (Operand::Var(a), Operand::Var(b)) => {
                for (x, y) in [(a, b), (b, a)] {
                    if let Some(v) = vars.get_mut(x.as_str()) {
                        v.partners.insert(y.clone());
                    }
                }
            }
            (Operand::Var(a), o) | (o, Operand::Var(a)) => lit(a, o),
            _ => {}
        },
        Expr::InSet { var, values } => values
            .iter()
            .for_each(|s| lit(var, &Operand::Str(s.clone()))),
        Expr::InList { var, list } => policy
            .lists
            .get(list)
            .into_iter()
            .flatten()
            .for_each(|s| lit(var, &Operand::Str(s.clone()))),
    }
}

impl Abstraction {
    /// Collect the representatives of every variable of a type-checked policy.
    pub fn new(policy: &Policy) -> Self {
        let mut vars: BTreeMap<String, VarAbs> = policy
            .variables
            .iter()
            .map(|v| {
                let (reps, open) = match &v.ty {
                    VarType::Bool => (
                        vec![
                            BoundValue::Absent,
                            BoundValue::Bool(false),
                            BoundValue::Bool(true),
                        ],
                        Open::Closed,
                    ),
                    VarType::Token => (
                        vec![BoundValue::Absent, BoundValue::TokenPresent],
                        Open::Closed,
                    ),
                    VarType::Enum { values } => (
                        std::iter::once(BoundValue::Absent)
                            .chain(values.iter().enumerate().map(|(index, value)| {
                                BoundValue::Enum {
                                    index,
                                    value: value.clone(),
                                }
                            }))
                            .collect(),
                        Open::Closed,
                    ),
                    VarType::Int { min, max } => (
                        Vec::new(),
                        Open::Int {
                            lo: min.unwrap_or(i64::MIN),
                            hi: max.unwrap_or(i64::MAX),
                            consts: BTreeSet::new(),
                        },
                    ),
                    VarType::String { .. } => (
                        Vec::new(),
                        Open::Str {
                            lits: BTreeSet::new(),
                        },
                    ),
                };
                let abs = VarAbs {
                    reps,
                    open,
                    partners: BTreeSet::new(),
                };
                (v.name.clone(), abs)
            })
            .collect();
        for r in &policy.rules {
            for e in r.when.iter().chain(std::iter::once(&r.require)) {
                collect(e, policy, &mut vars);
            }
        }
        for v in vars.values_mut() {
            match &v.open {
                Open::Closed => {}
                Open::Int { lo, hi, consts } => v.reps = int_reps(*lo, *hi, consts),
                Open::Str { lits } => v.reps = str_reps(lits),
            }
        }
        Self { vars }
    }

    /// Representatives of unbound `var` under `action`; `None` when it is an `int` or `string`
    /// compared with another unbound variable.
    fn reps(&self, var: &str, action: &Action, approvals: i64) -> Option<Cow<'_, [BoundValue]>> {
        let v = self.vars.get(var)?;
        if matches!(v.open, Open::Closed) || v.partners.is_empty() {
            return Some(Cow::Borrowed(&v.reps));
        }
        let mut extra = Vec::new();
        for p in &v.partners {
            if p == APPROVALS {
                extra.push(BoundValue::Int(approvals));
                continue;
            }
            match action.get(p)? {
                BoundValue::Absent => {}
                b => extra.push(b.clone()),
            }
        }
        Some(Cow::Owned(match &v.open {
            Open::Int { lo, hi, consts } => {
                let mut all = consts.clone();
                all.extend(extra.iter().filter_map(|b| match b {
                    BoundValue::Int(n) => Some(*n),
                    _ => None,
                }));
                int_reps(*lo, *hi, &all)
            }
            Open::Str { lits } => {
                let mut all = lits.clone();
                all.extend(extra.into_iter().filter_map(|b| match b {
                    BoundValue::Str(s) => Some(s),
                    BoundValue::Enum { value, .. } => Some(value),
                    _ => None,
                }));
                str_reps(&all)
            }
            Open::Closed => v.reps.clone(),
        }))
    }

    /// Visit every completion of the unbound variables `names` until `visit` returns `true`.
    /// `None` when a variable has no fixed representatives, there are too many completions, or
    /// `deadline` passes first (the caller then asks the solver, which fails closed past the
    /// deadline).
    fn search(
        &self,
        names: &[&str],
        action: &Action,
        approvals: i64,
        deadline: Instant,
        mut visit: impl FnMut(&Completion<'_>) -> bool,
    ) -> Option<()> {
        let reps: Vec<Cow<'_, [BoundValue]>> = names
            .iter()
            .map(|n| self.reps(n, action, approvals))
            .collect::<Option<_>>()?;
        let mut total = 1usize;
        for r in &reps {
            total = total.checked_mul(r.len())?;
        }
        if total > MAX_COMPLETIONS {
            return None;
        }
        let mut idx = vec![0usize; reps.len()];
        let first: Vec<&BoundValue> = reps.iter().map(|r| r.first()).collect::<Option<_>>()?;
        let mut completion = Completion {
            action,
            names,
            values: first,
        };
        let mut visited = 0u32;
        loop {
            visited = visited.wrapping_add(1);
            if visited.is_multiple_of(64) && Instant::now() >= deadline {
                return None;
            }
            if visit(&completion) {
                return Some(());
            }
            // Odometer step.
            let mut k = 0;
            loop {
                let (Some(i), Some(r), Some(slot)) =
                    (idx.get_mut(k), reps.get(k), completion.values.get_mut(k))
                else {
                    return Some(());
                };
                *i += 1;
                if let Some(v) = r.get(*i) {
                    *slot = v;
                    break;
                }
                *i = 0;
                *slot = r.first()?;
                k += 1;
            }
        }
    }

    /// For one rule with unbound variables `names`: `(some completion violates it, some
    /// completion satisfies it)`, or `None` when left to the solver (or past `deadline`).
    pub fn classify(
        &self,
        policy: &Policy,
        rule: &Rule,
        names: &[&str],
        action: &Action,
        approvals: i64,
        deadline: Instant,
    ) -> Option<(bool, bool)> {
        let (mut can_violate, mut can_hold) = (false, false);
        self.search(names, action, approvals, deadline, |c| {
            if violated(policy, rule, c, approvals) {
                can_violate = true;
            } else {
                can_hold = true;
            }
            can_violate && can_hold
        })?;
        Some((can_violate, can_hold))
    }

    /// Whether some completion of the unbound variables `names` satisfies every rule of
    /// `rules` at once, or `None` when left to the solver (or past `deadline`).
    pub fn jointly_hold(
        &self,
        policy: &Policy,
        rules: &[&Rule],
        names: &[&str],
        action: &Action,
        approvals: i64,
        deadline: Instant,
    ) -> Option<bool> {
        let mut found = false;
        self.search(names, action, approvals, deadline, |c| {
            found = rules.iter().all(|r| !violated(policy, r, c, approvals));
            found
        })?;
        Some(found)
    }
}

fn violated(policy: &Policy, rule: &Rule, env: &Completion<'_>, approvals: i64) -> bool {
    rule.when
        .as_ref()
        .is_none_or(|w| eval(w, policy, env, approvals))
        && !eval(&rule.require, policy, env, approvals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_representatives_cover_every_piece_within_bounds() {
        let c = BTreeSet::from([0, 5, 6]);
        let reps = int_reps(-2, 7, &c);
        let ints: Vec<i64> = reps
            .iter()
            .filter_map(|b| match b {
                BoundValue::Int(n) => Some(*n),
                _ => None,
            })
            .collect();
        assert_eq!(reps[0], BoundValue::Absent);
        assert_eq!(ints, [-2, -1, 0, 1, 4, 5, 6, 7]);
        // Bounds at the i64 extremes do not overflow.
        let reps = int_reps(i64::MIN, i64::MAX, &BTreeSet::from([i64::MAX, i64::MIN]));
        assert_eq!(reps.len(), 5);
    }

    #[test]
    fn fresh_string_differs_from_every_literal() {
        let lits = BTreeSet::from(["other".to_owned(), "other_".to_owned()]);
        let reps = str_reps(&lits);
        assert_eq!(reps.last(), Some(&BoundValue::Str("other__".to_owned())));
    }
}
