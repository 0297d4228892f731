//! Decisions by validity on a warm Z3 solver (`spec/decision-semantics.md` §4).
//!
//! A [`Checker`] owns one Z3 solver for one policy on the current thread: the domain constraints
//! and the definitions `viol!i = when_i ∧ ¬require_i` are asserted once. A check that needs the
//! solver does push → assert the action's bindings → `check_assumptions` calls → pop. With `D`
//! the deny rules, the decision is defined by:
//!
//! 1. `bindings ∧ ⋁_r viol_r` unsat ⇒ **Allow** (all rules hold in every completion).
//! 2. Else `bindings ∧ ⋀_{r∈D} ¬viol_r` unsat ⇒ **Deny**. Reported rules (deterministic,
//!    independent of solver history): the deny rules violated in *every* completion
//!    (`bindings ∧ ¬viol_r` unsat); if there is none, the minimal unsat subset obtained by
//!    deleting rules from `D` in index order.
//! 3. Else **Escalate**: `violated` = escalate rules violated in every completion; `undetermined`
//!    = unbound variables of the rules violated in some but not all completions (sorted).
//!
//! Any `unknown` (timeout) ⇒ **Deny** with `fail_closed = true` and no rules listed.
//!
//! **One deadline per decision** (`spec/decision-semantics.md` §5). The checker's timeout bounds
//! the whole decision: the solver-free enumeration checks the deadline as it goes, and every
//! solver call gets the time that is left as its Z3 `timeout`, so Z3's timer interrupts the
//! search at the deadline (the same cancel path as `Z3_interrupt`) and the call returns
//! `unknown`. Past the deadline no further solver call is made: the decision fails closed.
//! [`Checker::check_until`] takes an explicit deadline and a cancellation test (the pool uses
//! it to stop work whose caller has gone).
//!
//! **Without the solver.** Each rule first gets a status from the bound values alone: *holds* or
//! *violated* in every completion, *contingent* (both occur), or *unknown*. Three-valued
//! evaluation ([`crate::eval::eval_partial`]; decisive whenever every variable of the rule is
//! bound) comes first, then the enumeration of the finitely many representatives of the rule's
//! unbound variables ([`crate::residual`], exact). Since the bindings are validated against the
//! domain, `D ∧ B` is satisfiable and the domain constraints are per variable, so:
//! - step 1: allow iff every rule holds in every completion (validity of a conjunction is
//!   validity of each conjunct); a violated or contingent rule rules allow out;
//! - step 2: a violated deny rule means deny; otherwise the deny rules that may be violated are
//!   grouped by shared unbound variables, and `⋀ ¬viol_r` is satisfiable iff each group is: a
//!   single contingent rule is; a larger group is enumerated;
//! - step 3: the statuses give the violated escalate rules and the undetermined variables.
//!
//! Only what stays unknown (an unbound `int` or `string` compared with another unbound variable, or
//! more than [`crate::residual::MAX_COMPLETIONS`] completions) goes to Z3, with the bindings
//! asserted on the first such call. Either way the decision, the reported rules and the
//! undetermined variables are those of steps 1–3 (`spec/decision-semantics.md` §4.4).

mod round;

use std::time::{Duration, Instant};

use serde_json::Value;
use verdict_core::note::KeyId;
use verdict_core::receipt::{commit, CommitmentTag, Decision, Salt};
use verdict_core::Hash;
use z3::ast::Bool;
use z3::{Params, Solver};

use crate::action::Action;
use crate::approval::{verify_approvals, Approval};
use crate::ast::{Effect, APPROVALS};
use crate::compile::CompiledPolicy;
use crate::encode::Encoding;
use crate::error::CheckError;
use crate::residual::Abstraction;
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
    rule_vars: Vec<Vec<String>>,
    abstraction: Abstraction,
    /// Use the solver-free paths (three-valued evaluation, enumeration of representatives).
    direct: bool,
    /// Bound of one whole decision.
    timeout: Duration,
}

use round::{Round, Status, Stop};

impl Checker {
    /// Encode the policy and assert it once into a fresh solver. `timeout` bounds each whole
    /// decision of [`Self::check`] (every solver call and the enumeration included).
    ///
    /// # Errors
    /// [`CheckError::Encoding`] when the encoding is ill-sorted (an encoder bug).
    pub fn new(policy: &CompiledPolicy, timeout: Duration) -> Result<Self, CheckError> {
        let ast = policy.ast();
        let encoding = Encoding::new(ast);
        let z3 = Z3Encoding::new(ast, &encoding).map_err(CheckError::Encoding)?;
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
            rule_vars,
            abstraction: Abstraction::new(ast),
            direct: true,
            timeout,
        })
    }

    /// Set a deterministic resource budget (Z3 `rlimit`) per solver call, in addition to the
    /// timeout. Exhausting it gives `unknown`, i.e. a fail-closed deny.
    pub fn set_resource_limit(&mut self, rlimit: u32) {
        let mut params = Params::new();
        params.set_u32("rlimit", rlimit);
        self.solver.set_params(&params);
    }

    /// Turn the solver-free paths on (the default) or off. Off, every rule is decided by Z3
    /// calls (steps 1–3 of the module docs): the same decisions, for testing the encoding and for
    /// measuring the solver path.
    pub fn set_direct_evaluation(&mut self, on: bool) {
        self.direct = on;
    }

    /// The policy this checker decides.
    pub fn policy(&self) -> &CompiledPolicy {
        &self.policy
    }

    /// The Z3 encoding (for tools that need models over the same terms).
    pub fn z3(&self) -> &Z3Encoding {
        &self.z3
    }

    /// Screen, then check, as the server does (`spec/decision-semantics.md` §6): an action none
    /// of whose keys is a policy variable is out of scope, decided `not-applicable`
    /// ([`crate::screen::not_applicable_outcome`]) without typing its values; any other action
    /// goes to [`Self::check`] (where a key that is not a variable is an error).
    ///
    /// # Errors
    /// As [`crate::screen::screen`] and [`Self::check`].
    pub fn screen_and_check(&mut self, req: &CheckRequest) -> Result<Outcome, CheckError> {
        let deadline = Instant::now() + self.timeout;
        self.screen_and_check_until(req, deadline, None)
    }

    /// [`Self::screen_and_check`] with an explicit deadline and cancellation test, as
    /// [`Self::check_until`].
    ///
    /// # Errors
    /// As [`Self::screen_and_check`].
    pub fn screen_and_check_until(
        &mut self,
        req: &CheckRequest,
        deadline: Instant,
        cancelled: Option<&dyn Fn() -> bool>,
    ) -> Result<Outcome, CheckError> {
        let screened = crate::screen::screen(&self.policy, &req.action)?;
        if !screened.should_check {
            return Ok(crate::screen::not_applicable_outcome(
                req.salt.unwrap_or_else(Salt::random),
            ));
        }
        self.check_until(req, deadline, cancelled)
    }

    /// Check one action within the checker's timeout (from now).
    ///
    /// # Errors
    /// [`CheckError`] for a bad request id, an ill-typed action or an invalid approval; these are
    /// not decisions.
    pub fn check(&mut self, req: &CheckRequest) -> Result<Outcome, CheckError> {
        let deadline = Instant::now() + self.timeout;
        self.check_until(req, deadline, None)
    }

    /// Check one action that must be decided by `deadline`. When the deadline passes, or
    /// `cancelled` returns true (it is polled between steps and solver calls), the running
    /// solver call is cut off and the decision fails closed: **Deny** with
    /// `fail_closed = true` and no rules (`spec/decision-semantics.md` §5).
    ///
    /// # Errors
    /// As [`Self::check`].
    pub fn check_until(
        &mut self,
        req: &CheckRequest,
        deadline: Instant,
        cancelled: Option<&dyn Fn() -> bool>,
    ) -> Result<Outcome, CheckError> {
        self.check_with(req, None, deadline, cancelled)
    }

    /// As [`Self::check_until`], with approvers whose approvals the caller has already verified
    /// (escalation approvals, `spec/approval.md` §4) instead of `req.approvals`, which must be
    /// empty. Key ids that are not among the policy's approvers are dropped, duplicates counted
    /// once.
    ///
    /// # Errors
    /// As [`Self::check`].
    pub fn check_approved_until(
        &mut self,
        req: &CheckRequest,
        approvers: &[KeyId],
        deadline: Instant,
        cancelled: Option<&dyn Fn() -> bool>,
    ) -> Result<Outcome, CheckError> {
        let registered: std::collections::BTreeSet<KeyId> = approvers
            .iter()
            .copied()
            .filter(|id| self.policy.approvers().iter().any(|v| v.key_id() == *id))
            .collect();
        self.check_with(
            req,
            Some(registered.into_iter().collect()),
            deadline,
            cancelled,
        )
    }

    fn check_with(
        &mut self,
        req: &CheckRequest,
        verified: Option<Vec<KeyId>>,
        deadline: Instant,
        cancelled: Option<&dyn Fn() -> bool>,
    ) -> Result<Outcome, CheckError> {
        if req.request_id.is_empty() || req.request_id.len() > MAX_REQUEST_ID_BYTES {
            return Err(CheckError::InvalidRequestId);
        }
        let action = Action::from_value(self.policy.ast(), &req.action)?;
        let canonical_action = action.canonical();
        let salt = req.salt.unwrap_or_else(Salt::random);
        let action_commitment = commit(CommitmentTag::Action, &salt, &canonical_action);
        let approvers = match verified {
            Some(ids) if req.approvals.is_empty() => ids,
            Some(_) => {
                return Err(CheckError::InvalidApproval {
                    approver: String::new(),
                    reason: "approvals given twice",
                })
            }
            None => verify_approvals(
                self.policy.approvers(),
                &req.approvals,
                &action_commitment,
                &req.request_id,
            )?,
        };
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
        let stop = Stop {
            deadline,
            cancelled,
        };
        let mut round = Round::new(self, &action, count, stop);
        let result = round.decide(&mut outcome);
        if round.pushed {
            self.solver.pop(1);
        }
        if result.is_err() {
            tracing::warn!(
                policy = self.policy.name(),
                "solver unknown, deadline or cancellation: fail closed"
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

    /// Unbound variables of rule `i` (never `approvals`), sorted.
    fn unbound<'a>(&'a self, i: usize, action: &Action) -> Vec<&'a str> {
        self.rule_vars
            .get(i)
            .into_iter()
            .flatten()
            .filter(|v| *v != APPROVALS && action.get(v).is_none())
            .map(String::as_str)
            .collect()
    }

    /// What the bound values say about rule `i` without the solver: three-valued evaluation of
    /// `when ∧ ¬require` ([`crate::eval::eval_partial`]; always decisive when every variable of
    /// the rule is bound), then enumeration of the representatives of its unbound variables
    /// ([`Abstraction::classify`]).
    fn status(&self, i: usize, action: &Action, approvals: i64, stop: &Stop<'_>) -> Status {
        let ast = self.policy.ast();
        let Some(rule) = ast.rules.get(i) else {
            return Status::Unknown;
        };
        if !self.direct {
            return Status::Unknown;
        }
        let when = rule.when.as_ref().map_or(Some(true), |w| {
            crate::eval::eval_partial(w, ast, action, approvals)
        });
        if when == Some(false) {
            return Status::Holds;
        }
        let violated = crate::eval::eval_partial(&rule.require, ast, action, approvals).map(|r| !r);
        match (when, violated) {
            (_, Some(false)) => return Status::Holds,
            (Some(true), Some(true)) => return Status::Violated,
            _ => {}
        }
        let names = self.unbound(i, action);
        match self
            .abstraction
            .classify(ast, rule, &names, action, approvals, stop.deadline)
        {
            Some((false, _)) => Status::Holds,
            Some((true, false)) => Status::Violated,
            Some((true, true)) => Status::Contingent,
            None => Status::Unknown,
        }
    }
}

#[cfg(test)]
#[path = "decide_proptest.rs"]
mod proptests;

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
