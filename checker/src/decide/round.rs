//! One decision in progress on the solver ([`Round`]): steps 1–3 of the module docs of
//! [`super`] (`spec/decision-semantics.md` §4) with the deadline and cancellation of §5
//! ([`Stop`]), from the rules' solver-free statuses ([`Status`]) and, where they do not
//! decide, `check_assumptions` calls.

use std::time::Instant;

use verdict_core::receipt::Decision;
use z3::ast::Bool;
use z3::{Params, SatResult};

use super::{Checker, Outcome};
use crate::action::Action;
use crate::ast::Effect;
use crate::solver::lower_bool;

pub(super) enum Answer {
    Sat,
    Unsat,
}

/// The decision cannot be completed: a solver `unknown`, the deadline, a cancellation or an
/// ill-sorted term. The check fails closed.
pub(super) struct FailClosed;

/// When a decision must stop: a deadline and an optional cancellation test.
#[derive(Clone, Copy)]
pub(super) struct Stop<'a> {
    pub(super) deadline: Instant,
    pub(super) cancelled: Option<&'a dyn Fn() -> bool>,
}

impl Stop<'_> {
    pub(super) fn reached(&self) -> bool {
        Instant::now() >= self.deadline || self.cancelled.is_some_and(|c| c())
    }

    /// Milliseconds left, at least 1 (Z3 reads a timeout of 0 as "none").
    pub(super) fn remaining_ms(&self) -> u32 {
        let left = self.deadline.saturating_duration_since(Instant::now());
        u32::try_from(left.as_millis()).unwrap_or(u32::MAX).max(1)
    }
}

/// What is known of one rule under the action's bindings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Status {
    /// Satisfied in every completion.
    Holds,
    /// Violated in every completion.
    Violated,
    /// Violated in some completions and satisfied in others.
    Contingent,
    /// Not known without the solver.
    Unknown,
}

/// One check in progress: the statuses of the rules, solver witnesses, and whether the bindings
/// are asserted (pushed) on the solver.
pub(super) struct Round<'a> {
    checker: &'a Checker,
    action: &'a Action,
    approvals: i64,
    stop: Stop<'a>,
    status: Vec<Status>,
    /// Rule `i` is violated in some model seen so far.
    seen_violated: Vec<bool>,
    /// Rule `i` holds in some model seen so far.
    seen_holding: Vec<bool>,
    pub(super) pushed: bool,
}

impl<'a> Round<'a> {
    pub(super) fn new(
        checker: &'a Checker,
        action: &'a Action,
        approvals: i64,
        stop: Stop<'a>,
    ) -> Self {
        let n = checker.rule_vars.len();
        Self {
            checker,
            action,
            approvals,
            stop,
            status: Vec::with_capacity(n),
            seen_violated: vec![false; n],
            seen_holding: vec![false; n],
            pushed: false,
        }
    }

    fn status(&self, i: usize) -> Status {
        self.status.get(i).copied().unwrap_or(Status::Unknown)
    }

    /// A solver call under the action's bindings (asserted on first use). After a satisfiable
    /// call, the model's rule values are kept as witnesses ("rule i can be violated / can
    /// hold"), so the outcome does not depend on which model Z3 returns.
    fn sat(&mut self, assumptions: &[Bool]) -> Result<Answer, FailClosed> {
        let c = self.checker;
        if self.stop.reached() {
            return Err(FailClosed);
        }
        if !self.pushed {
            c.solver.push();
            self.pushed = true;
            for t in c.z3.encoding().bindings(self.action, Some(self.approvals)) {
                c.solver.assert(lower_bool(&t).map_err(|_| FailClosed)?);
            }
        }
        // The time left is this call's timeout: Z3's timer interrupts the search at the
        // decision's deadline.
        let mut params = Params::new();
        params.set_u32("timeout", self.stop.remaining_ms());
        c.solver.set_params(&params);
        match c.solver.check_assumptions(assumptions) {
            SatResult::Sat => {
                if let Some(model) = c.solver.get_model() {
                    for (i, lit) in c.z3.violated.iter().enumerate() {
                        let v = model.eval(lit, true).and_then(|b| b.as_bool());
                        let slot = match v {
                            Some(true) => self.seen_violated.get_mut(i),
                            Some(false) => self.seen_holding.get_mut(i),
                            None => None,
                        };
                        if let Some(s) = slot {
                            *s = true;
                        }
                    }
                }
                Ok(Answer::Sat)
            }
            SatResult::Unsat => Ok(Answer::Unsat),
            SatResult::Unknown => Err(FailClosed),
        }
    }

    /// Steps 1–3 of the module docs on the rule statuses; the solver answers what they leave
    /// open.
    pub(super) fn decide(&mut self, out: &mut Outcome) -> Result<(), FailClosed> {
        let c = self.checker;
        for i in 0..c.rule_vars.len() {
            if self.stop.reached() {
                return Err(FailClosed);
            }
            let s = c.status(i, self.action, self.approvals, &self.stop);
            self.status.push(s);
        }
        let deny_rules = c.deny_rules.as_slice();
        if deny_rules
            .iter()
            .any(|&i| self.status(i) == Status::Violated)
        {
            out.decision = Decision::Deny;
            out.violated = self.explain_deny()?;
            return Ok(());
        }
        // Step 1, allow: no rule can be violated.
        let maybe_violated = self
            .status
            .iter()
            .any(|s| matches!(s, Status::Violated | Status::Contingent));
        if !maybe_violated {
            let open = self.status.contains(&Status::Unknown);
            if !open
                || matches!(
                    self.sat(std::slice::from_ref(&c.any_violated))?,
                    Answer::Unsat
                )
            {
                out.decision = Decision::Allow;
                return Ok(());
            }
        }
        // Step 2, deny: no completion satisfies every deny rule.
        if !self.deny_satisfiable(deny_rules)? {
            out.decision = Decision::Deny;
            out.violated = self.explain_deny()?;
            return Ok(());
        }
        // Step 3, escalate: settle the open rules, one or two solver calls each at most.
        out.decision = Decision::Escalate;
        for i in 0..self.status.len() {
            if self.status(i) != Status::Unknown {
                continue;
            }
            if self.stop.reached() {
                return Err(FailClosed);
            }
            let (Some(v), Some(h)) = (c.z3.violated.get(i), c.holds.get(i)) else {
                continue;
            };
            let seen = |w: &[bool]| w.get(i).copied().unwrap_or(false);
            let can_violate = seen(&self.seen_violated)
                || matches!(self.sat(std::slice::from_ref(v))?, Answer::Sat);
            let s = if !can_violate {
                Status::Holds
            } else if seen(&self.seen_holding)
                || matches!(self.sat(std::slice::from_ref(h))?, Answer::Sat)
            {
                Status::Contingent
            } else {
                Status::Violated
            };
            if let Some(slot) = self.status.get_mut(i) {
                *slot = s;
            }
        }
        let ast = c.policy.ast();
        let mut undetermined = std::collections::BTreeSet::new();
        for (i, rule) in ast.rules.iter().enumerate() {
            match self.status(i) {
                Status::Violated if rule.effect == Effect::Escalate => {
                    out.violated.push(index_u32(i));
                }
                Status::Contingent => {
                    undetermined.extend(c.unbound(i, self.action).into_iter().map(str::to_owned));
                }
                _ => {}
            }
        }
        out.undetermined = undetermined.into_iter().collect();
        Ok(())
    }

    /// Is `D ∧ B ∧ ⋀_{r ∈ rules} ¬viol_r` satisfiable? Rules that share no unbound variable
    /// are independent (the domain constraints are per variable), so the open rules are split
    /// into groups connected by shared unbound variables: a single contingent rule holds in some
    /// completion; a group is enumerated when it can be; the remaining groups go to the solver
    /// in one call.
    fn deny_satisfiable(&mut self, rules: &[usize]) -> Result<bool, FailClosed> {
        let c = self.checker;
        if self.stop.reached() {
            return Err(FailClosed);
        }
        let mut live = Vec::new();
        for &i in rules {
            match self.status(i) {
                Status::Holds => {}
                Status::Violated => return Ok(false),
                Status::Contingent | Status::Unknown => live.push(i),
            }
        }
        let mut groups: Vec<(Vec<usize>, Vec<&str>)> = Vec::new();
        for &i in &live {
            let mut names = c.unbound(i, self.action);
            let mut members = vec![i];
            let mut k = 0;
            while k < groups.len() {
                let shares = groups
                    .get(k)
                    .is_some_and(|(_, g)| g.iter().any(|n| names.contains(n)));
                if shares {
                    let (m, g) = groups.swap_remove(k);
                    members.extend(m);
                    names.extend(g);
                } else {
                    k += 1;
                }
            }
            members.sort_unstable();
            names.sort_unstable();
            names.dedup();
            groups.push((members, names));
        }
        let ast = c.policy.ast();
        let mut to_solver = Vec::new();
        for (members, names) in groups {
            let open = members.iter().any(|&i| self.status(i) == Status::Unknown);
            if !open && members.len() == 1 {
                continue;
            }
            let joint = if open {
                None
            } else {
                let rs: Vec<_> = members.iter().filter_map(|&i| ast.rules.get(i)).collect();
                c.abstraction.jointly_hold(
                    ast,
                    &rs,
                    &names,
                    self.action,
                    self.approvals,
                    self.stop.deadline,
                )
            };
            match joint {
                Some(true) => {}
                Some(false) => return Ok(false),
                None => to_solver.extend(members),
            }
        }
        if to_solver.is_empty() {
            return Ok(true);
        }
        to_solver.sort_unstable();
        let assumptions: Vec<Bool> = to_solver
            .iter()
            .filter_map(|&i| c.holds.get(i).cloned())
            .collect();
        Ok(matches!(self.sat(&assumptions)?, Answer::Sat))
    }

    /// Deterministic explanation of a deny (module docs, step 2): the deny rules violated in
    /// every completion; if none is, the minimal unsatisfiable subset by deletion in index order.
    fn explain_deny(&mut self) -> Result<Vec<u32>, FailClosed> {
        let c = self.checker;
        let mut forced = Vec::new();
        for &i in &c.deny_rules {
            let violated_everywhere = match self.status(i) {
                Status::Violated => true,
                Status::Holds | Status::Contingent => false,
                Status::Unknown => match c.holds.get(i) {
                    Some(h) => matches!(self.sat(std::slice::from_ref(h))?, Answer::Unsat),
                    None => false,
                },
            };
            if violated_everywhere {
                forced.push(index_u32(i));
            }
        }
        if !forced.is_empty() {
            return Ok(forced);
        }
        let mut keep: Vec<usize> = c.deny_rules.clone();
        let mut k = 0;
        while k < keep.len() {
            let trial: Vec<usize> = keep
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != k)
                .map(|(_, &i)| i)
                .collect();
            if self.deny_satisfiable(&trial)? {
                k += 1;
            } else {
                keep.remove(k);
            }
        }
        Ok(keep.into_iter().map(index_u32).collect())
    }
}

fn index_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}
