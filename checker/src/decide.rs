//! Decisions by validity on a warm Z3 solver (`spec/decision-semantics.md` §4).
//!
//! A [`Checker`] owns one Z3 solver for one policy on the current thread: the domain constraints
//! and the definitions `viol!i = when_i ∧ ¬require_i` are asserted once. Each check does
//! push → assert the action's bindings → `check_assumptions` calls → pop. With `D` the deny rules:
//!
//! 1. `bindings ∧ ⋁_r viol_r` unsat ⇒ **Allow** (all rules hold in every completion). Checked
//!    first because it is the common case (one solver call).
//! 2. Else `bindings ∧ ⋀_{r∈D} ¬viol_r` unsat ⇒ **Deny**. Reported rules (deterministic,
//!    independent of solver history): the deny rules violated in *every* completion
//!    (`bindings ∧ ¬viol_r` unsat); if there is none, the minimal unsat subset obtained by
//!    deleting rules from `D` in index order.
//! 3. Else **Escalate**: `violated` = escalate rules violated in every completion; `undetermined`
//!    = unbound variables of the rules violated in some but not all completions (sorted).
//!
//! Any `unknown` (timeout) ⇒ **Deny** with `fail_closed = true` and no rules listed.
//!
//! **Direct evaluation.** A rule is *determined* when three-valued evaluation on the bound values
//! ([`crate::eval::eval_partial`], same semantics as the encoding) fixes its violation in every
//! completion — always the case when all its variables are bound. Since the bindings are
//! validated against the domain, `D ∧ B` is satisfiable, so:
//! - if a determined deny rule is violated, step 2 is unsat (Deny); the reported rules are the
//!   determined violated deny rules plus, by one solver call each, the undetermined deny rules
//!   violated in every completion (the list is non-empty, so no subset search);
//! - else if every rule is determined, the outcome is Allow (nothing violated) or
//!   Escalate (the violated escalate rules, no undetermined variables), exactly what steps 1–3
//!   give;
//! - in steps 2–3, a determined rule needs no solver call.
//!
//! The bindings are asserted only when a solver call remains. Either way the decision, the
//! reported rules and the undetermined variables are those of steps 1–3.

use std::time::Duration;

use serde_json::Value;
use verdict_core::note::KeyId;
use verdict_core::receipt::{commit, CommitmentTag, Decision, Salt};
use verdict_core::Hash;
use z3::ast::Bool;
use z3::{Params, SatResult, Solver};

use crate::action::Action;
use crate::approval::{verify_approvals, Approval};
use crate::ast::{Effect, APPROVALS};
use crate::compile::CompiledPolicy;
use crate::encode::Encoding;
use crate::error::CheckError;
use crate::solver::Z3Encoding;

/// Maximum request id length in bytes.
pub const MAX_REQUEST_ID_BYTES: usize = 64;

/// One check request.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckRequest {
    /// The action (a JSON object of policy variables).
    pub action: Value,
    /// Request id, 1 to 64 bytes; part of the approval message and the receipt.
    pub request_id: String,
    /// Commitment salt; `None` draws a fresh one. A resubmission with approvals passes the
    /// salt of the escalated check so the action commitment is the same.
    pub salt: Option<Salt>,
    /// Approvals (for a resubmitted escalated action).
    pub approvals: Vec<Approval>,
}

/// The result of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Allow, deny or escalate (`NotApplicable` only for screens).
    pub decision: Decision,
    /// True when the deny comes from a solver timeout or unknown.
    pub fail_closed: bool,
    /// Violated rule indices (0-based, ascending).
    pub violated: Vec<u32>,
    /// Ids of the violated rules, same order.
    pub violated_ids: Vec<String>,
    /// For escalate: unbound variables that decide the outcome, sorted.
    pub undetermined: Vec<String>,
    /// Action keys that are policy variables, sorted.
    pub matched: Vec<String>,
    /// Key ids of verified approvers, sorted.
    pub approvers: Vec<KeyId>,
    /// Salted commitment to the canonical action.
    pub action_commitment: Hash,
    /// The salt used.
    pub salt: Salt,
    /// Canonical action bytes (tokens as `true`).
    pub canonical_action: Vec<u8>,
}

/// A warm, thread-bound checker for one policy. Not `Send`: create it on the thread that uses it.
#[derive(Debug)]
pub struct Checker {
    policy: CompiledPolicy,
    z3: Z3Encoding,
    solver: Solver,
    any_violated: Bool,
    deny_rules: Vec<usize>,
    /// `¬viol!i` per rule (built once).
    holds: Vec<Bool>,
    /// `¬viol!r` for the deny rules `r` (the step 2 assumptions, built once).
    deny_holds: Vec<Bool>,
    rule_vars: Vec<Vec<String>>,
}

enum Answer {
    Sat,
    Unsat,
}

struct FailClosed;

impl Checker {
    /// Encode the policy and assert it once into a fresh solver with the given timeout.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for solver setup failures.
    pub fn new(policy: &CompiledPolicy, timeout: Duration) -> Result<Self, CheckError> {
        let ast = policy.ast();
        let encoding = Encoding::new(ast);
        let z3 = Z3Encoding::new(ast, &encoding);
        let solver = Solver::new();
        let mut params = Params::new();
        let ms = u32::try_from(timeout.as_millis())
            .unwrap_or(u32::MAX)
            .max(1);
        params.set_u32("timeout", ms);
        solver.set_params(&params);
        z3.assert_into(&solver);
        let any_violated = Bool::new_const("any!violated");
        solver.assert(any_violated.eq(Bool::or(&z3.violated)));
        let deny_rules: Vec<usize> = ast
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.effect == Effect::Deny)
            .map(|(i, _)| i)
            .collect();
        let holds: Vec<Bool> = z3.violated.iter().map(Bool::not).collect();
        let deny_holds = deny_rules
            .iter()
            .filter_map(|&i| holds.get(i).cloned())
            .collect();
        let rule_vars = ast
            .rules
            .iter()
            .map(|r| r.variables().into_iter().map(str::to_owned).collect())
            .collect();
        Ok(Self {
            policy: policy.clone(),
            z3,
            solver,
            any_violated,
            deny_rules,
            holds,
            deny_holds,
            rule_vars,
        })
    }

    /// Set a deterministic resource budget (Z3 `rlimit`) per solver call, in addition to the
    /// timeout. Exhausting it gives `unknown`, i.e. a fail-closed deny.
    pub fn set_resource_limit(&mut self, rlimit: u32) {
        let mut params = Params::new();
        params.set_u32("rlimit", rlimit);
        self.solver.set_params(&params);
    }

    /// The policy this checker decides.
    pub fn policy(&self) -> &CompiledPolicy {
        &self.policy
    }

    /// The Z3 encoding (for tools that need models over the same terms).
    pub fn z3(&self) -> &Z3Encoding {
        &self.z3
    }

    /// Check one action.
    ///
    /// # Errors
    /// [`CheckError`] for a bad request id, an ill-typed action or an invalid approval; these are
    /// not decisions.
    pub fn check(&mut self, req: &CheckRequest) -> Result<Outcome, CheckError> {
        if req.request_id.is_empty() || req.request_id.len() > MAX_REQUEST_ID_BYTES {
            return Err(CheckError::InvalidRequestId);
        }
        let action = Action::from_value(self.policy.ast(), &req.action)?;
        let canonical_action = action.canonical();
        let salt = req.salt.unwrap_or_else(Salt::random);
        let action_commitment = commit(CommitmentTag::Action, &salt, &canonical_action);
        let approvers = verify_approvals(
            self.policy.approvers(),
            &req.approvals,
            &action_commitment,
            &req.request_id,
        )?;
        let count = i64::try_from(approvers.len()).unwrap_or(i64::MAX);
        let mut outcome = Outcome {
            decision: Decision::Deny,
            fail_closed: false,
            violated: Vec::new(),
            violated_ids: Vec::new(),
            undetermined: Vec::new(),
            matched: action.names(),
            approvers,
            action_commitment,
            salt,
            canonical_action,
        };
        let determined: Vec<Option<bool>> = (0..self.rule_vars.len())
            .map(|i| self.determined(i, &action, count))
            .collect();
        let deny_forced = self
            .deny_rules
            .iter()
            .any(|&i| determined.get(i).copied().flatten() == Some(true));
        // Every rule's violation is fixed by the bound values alone (three-valued evaluation is
        // exact: `Some` only when every completion agrees), so no completion can change the
        // outcome and the solver is not needed (spec/decision-semantics.md §4).
        let all_bound = determined.iter().all(Option::is_some);
        let needs_solver = if deny_forced {
            self.deny_rules
                .iter()
                .any(|&i| determined.get(i).is_none_or(Option::is_none))
        } else {
            !all_bound
        };
        let result = if needs_solver {
            self.solver.push();
            for t in self.z3.encoding().bindings(&action, Some(count)) {
                self.solver.assert(self.z3.lower_bool(&t));
            }
            let result = self.decide(&determined, deny_forced, all_bound, &action, &mut outcome);
            self.solver.pop(1);
            result
        } else {
            self.decide(&determined, deny_forced, all_bound, &action, &mut outcome)
        };
        if result.is_err() {
            tracing::warn!(
                policy = self.policy.name(),
                "solver unknown or timeout: fail closed"
            );
            outcome.decision = Decision::Deny;
            outcome.fail_closed = true;
            outcome.violated.clear();
            outcome.undetermined.clear();
        }
        outcome.violated_ids = outcome
            .violated
            .iter()
            .filter_map(|&i| {
                self.policy
                    .ast()
                    .rules
                    .get(i as usize)
                    .map(|r| r.id.clone())
            })
            .collect();
        Ok(outcome)
    }

    /// Rule `i`'s violation when the bound values fix it in every completion (always when every
    /// variable of the rule is bound): three-valued `when ∧ ¬require` (see
    /// [`crate::eval::eval_partial`]), instead of asking the solver.
    fn determined(&self, i: usize, action: &Action, approvals: i64) -> Option<bool> {
        let ast = self.policy.ast();
        let rule = ast.rules.get(i)?;
        let when = rule.when.as_ref().map_or(Some(true), |w| {
            crate::eval::eval_partial(w, ast, action, approvals)
        });
        if when == Some(false) {
            return Some(false);
        }
        let violated = crate::eval::eval_partial(&rule.require, ast, action, approvals).map(|r| !r);
        match (when, violated) {
            (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        }
    }

    fn sat(&self, assumptions: &[Bool]) -> Result<Answer, FailClosed> {
        match self.solver.check_assumptions(assumptions) {
            SatResult::Sat => Ok(Answer::Sat),
            SatResult::Unsat => Ok(Answer::Unsat),
            SatResult::Unknown => Err(FailClosed),
        }
    }

    /// Per rule: is `viol_i == value` in the model of the last satisfiable call?
    fn witness(&self, value: bool) -> Vec<bool> {
        let Some(model) = self.solver.get_model() else {
            return Vec::new();
        };
        self.z3
            .violated
            .iter()
            .map(|lit| {
                model
                    .eval(lit, true)
                    .and_then(|b| b.as_bool())
                    .is_some_and(|b| b == value)
            })
            .collect()
    }

    fn holds(&self, i: usize) -> Option<&Bool> {
        self.holds.get(i)
    }

    fn violated_lit(&self, i: usize) -> Option<Bool> {
        self.z3.violated.get(i).cloned()
    }

    /// Steps 1–3 of the module docs. `determined[i]` is rule `i`'s violation when the bound
    /// values fix it; `deny_forced` says a determined deny rule is violated; `all_bound` that
    /// every variable of every rule is bound. The solver is called only when the bindings are
    /// asserted (see [`Self::check`]).
    fn decide(
        &self,
        determined: &[Option<bool>],
        deny_forced: bool,
        all_bound: bool,
        action: &Action,
        out: &mut Outcome,
    ) -> Result<(), FailClosed> {
        let det = |i: usize| determined.get(i).copied().flatten();
        if deny_forced {
            out.decision = Decision::Deny;
            out.violated = self.explain_deny(determined)?;
            return Ok(());
        }
        if all_bound {
            // No deny rule is violated (else `deny_forced`): allow, or escalate naming the
            // violated escalate rules; nothing is undetermined.
            out.violated = (0..determined.len())
                .filter(|&i| det(i) == Some(true))
                .map(index_u32)
                .collect();
            out.decision = if out.violated.is_empty() {
                Decision::Allow
            } else {
                Decision::Escalate
            };
            return Ok(());
        }
        // Allow first: the common case costs one solver call. Bindings are validated against the
        // domain, so `bindings ∧ domain` is satisfiable and "no completion violates any rule"
        // implies the deny check below would pass.
        if let Answer::Unsat = self.sat(std::slice::from_ref(&self.any_violated))? {
            out.decision = Decision::Allow;
            return Ok(());
        }
        // Models are used only as witnesses ("rule i can be violated / can hold"), so the
        // outcome does not depend on which model Z3 returns.
        let can_violate = self.witness(true);
        if let Answer::Unsat = self.sat(&self.deny_holds)? {
            out.decision = Decision::Deny;
            out.violated = self.explain_deny(determined)?;
            return Ok(());
        }
        let can_hold = self.witness(false);
        out.decision = Decision::Escalate;
        let mut undetermined = std::collections::BTreeSet::new();
        for (i, rule) in self.policy.ast().rules.iter().enumerate() {
            let (Some(v), Some(h)) = (self.violated_lit(i), self.holds(i)) else {
                continue;
            };
            let forced = match det(i) {
                Some(false) => continue,
                Some(true) => true,
                None => {
                    let witnessed = |w: &[bool]| w.get(i).copied().unwrap_or(false);
                    if !witnessed(&can_violate) && matches!(self.sat(&[v])?, Answer::Unsat) {
                        continue;
                    }
                    !witnessed(&can_hold)
                        && matches!(self.sat(std::slice::from_ref(h))?, Answer::Unsat)
                }
            };
            if forced {
                if rule.effect == Effect::Escalate {
                    out.violated.push(index_u32(i));
                }
            } else {
                for var in self.rule_vars.get(i).into_iter().flatten() {
                    if var != APPROVALS && action.get(var).is_none() {
                        undetermined.insert(var.clone());
                    }
                }
            }
        }
        out.undetermined = undetermined.into_iter().collect();
        Ok(())
    }

    /// Deterministic explanation of a deny (see the module docs).
    fn explain_deny(&self, determined: &[Option<bool>]) -> Result<Vec<u32>, FailClosed> {
        let mut forced = Vec::new();
        for &i in &self.deny_rules {
            let Some(h) = self.holds(i) else { continue };
            let violated_everywhere = match determined.get(i).copied().flatten() {
                Some(v) => v,
                None => matches!(self.sat(std::slice::from_ref(h))?, Answer::Unsat),
            };
            if violated_everywhere {
                forced.push(index_u32(i));
            }
        }
        if !forced.is_empty() {
            return Ok(forced);
        }
        let mut keep: Vec<usize> = self.deny_rules.clone();
        let mut k = 0;
        while k < keep.len() {
            let trial: Vec<Bool> = keep
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != k)
                .filter_map(|(_, &i)| self.holds(i).cloned())
                .collect();
            if let Answer::Unsat = self.sat(&trial)? {
                keep.remove(k);
            } else {
                k += 1;
            }
        }
        Ok(keep.into_iter().map(index_u32).collect())
    }
}

fn index_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

#[cfg(test)]
#[path = "decide_proptest.rs"]
mod proptests;

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
