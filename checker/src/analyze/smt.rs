//! The Z3 side of the analyses: a solver on the calling thread, translation of the engine's
//! [`Term`]s into Z3, entailment checks and reading models back as actions (with a blocking clause
//! so enumerations never repeat a model).

use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use z3::ast::{Bool, Int};
use z3::{Params, SatResult, Solver};

use super::AnalyzeError;
use crate::ast::{Policy, VarType, APPROVALS};
use crate::encode::{Encoding, Sort, Term};

/// A Z3 solver over one or more encodings on the current thread, with one deadline for all its
/// queries: each check gets the time left as its Z3 timeout (Z3's timer interrupts the search
/// at the deadline), and no check starts after it ([`AnalyzeError::Deadline`]).
pub struct Smt {
    solver: Solver,
    deadline: Instant,
    budget: Duration,
}

impl Smt {
    /// A fresh solver whose queries together must finish within `budget` from now.
    pub fn new(budget: Duration) -> Self {
        let solver = Solver::new();
        Self {
            solver,
            deadline: Instant::now() + budget,
            budget,
        }
    }

    fn deadline_error(&self) -> AnalyzeError {
        AnalyzeError::Deadline {
            limit_ms: u64::try_from(self.budget.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Assert a term.
    ///
    /// # Errors
    /// [`AnalyzeError::IllSorted`].
    pub fn assert(&self, t: &Term) -> Result<(), AnalyzeError> {
        self.solver.assert(&bool_of(t)?);
        Ok(())
    }

    /// Assert a Z3 formula.
    pub fn assert_z3(&self, b: &Bool) {
        self.solver.assert(b);
    }

    /// Check under assumptions; `true` = sat, `false` = unsat.
    ///
    /// # Errors
    /// [`AnalyzeError::Unknown`] naming `query`; [`AnalyzeError::Deadline`] once the budget is
    /// spent.
    pub fn check(&self, assumptions: &[Bool], query: &str) -> Result<bool, AnalyzeError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.deadline_error());
        }
        let mut params = Params::new();
        params.set_u32(
            "timeout",
            u32::try_from(left.as_millis()).unwrap_or(u32::MAX).max(1),
        );
        self.solver.set_params(&params);
        match self.solver.check_assumptions(assumptions) {
            SatResult::Sat => Ok(true),
            SatResult::Unsat => Ok(false),
            SatResult::Unknown if Instant::now() >= self.deadline => Err(self.deadline_error()),
            SatResult::Unknown => Err(AnalyzeError::Unknown {
                query: query.to_owned(),
                reason: self.solver.get_reason_unknown().unwrap_or_default(),
            }),
        }
    }

    /// Check the conjunction of `terms` in a push/pop scope; on sat, return the action read from
    /// the model over `encodings`' variables.
    ///
    /// # Errors
    /// [`AnalyzeError`].
    pub fn model_of(
        &self,
        terms: &[Term],
        encodings: &[(&Encoding, &Policy)],
        query: &str,
    ) -> Result<Option<ModelAction>, AnalyzeError> {
        self.solver.push();
        let r = self.scoped(terms, encodings, query);
        self.solver.pop(1);
        r
    }

    fn scoped(
        &self,
        terms: &[Term],
        encodings: &[(&Encoding, &Policy)],
        query: &str,
    ) -> Result<Option<ModelAction>, AnalyzeError> {
        for t in terms {
            self.assert(t)?;
        }
        if !self.check(&[], query)? {
            return Ok(None);
        }
        Ok(self.read_model(encodings))
    }

    /// The unsat core of the last `check` (a subset of its assumptions).
    pub fn unsat_core(&self) -> Vec<Bool> {
        self.solver.get_unsat_core()
    }

    /// Does `assumption` entail `t` (is `assumption ∧ ¬t` unsat)? Runs in a push/pop scope.
    ///
    /// # Errors
    /// [`AnalyzeError`].
    pub fn entails(&self, assumption: &Bool, t: &Term) -> Result<bool, AnalyzeError> {
        let neg = bool_of(t)?.not();
        self.solver.push();
        self.solver.assert(assumption);
        self.solver.assert(&neg);
        let r = self.check(&[], "entailment");
        self.solver.pop(1);
        r.map(|sat| !sat)
    }

    /// Read the current model as an action (present variables only).
    pub fn read_model(&self, encodings: &[(&Encoding, &Policy)]) -> Option<ModelAction> {
        let model = self.solver.get_model()?;
        let mut action = Map::new();
        let mut approvals = 0;
        let mut block = Vec::new();
        for (enc, policy) in encodings {
            for (name, syms) in enc.variables() {
                if action.contains_key(name) {
                    continue;
                }
                if name == APPROVALS {
                    let a = Int::new_const(format!("v!{APPROVALS}"));
                    approvals = model.eval(&a, true)?.as_i64()?;
                    block.push(a.eq(Int::from_i64(approvals)));
                    continue;
                }
                let p = syms.presence.as_ref()?;
                let pb = Bool::new_const(p.as_str());
                let present = model.eval(&pb, true)?.as_bool()?;
                block.push(pb.eq(Bool::from_bool(present)));
                if !present {
                    continue;
                }
                let value = match (&syms.value, &syms.ty) {
                    (None, _) => Value::String("<token>".to_owned()),
                    (Some((v, Sort::Bool)), _) => {
                        let b = model.eval(&Bool::new_const(v.as_str()), true)?.as_bool()?;
                        block.push(Bool::new_const(v.as_str()).eq(Bool::from_bool(b)));
                        Value::Bool(b)
                    }
                    (Some((v, Sort::Int)), ty) => {
                        let n = model.eval(&Int::new_const(v.as_str()), true)?.as_i64()?;
                        block.push(Int::new_const(v.as_str()).eq(Int::from_i64(n)));
                        int_value(n, ty.as_ref(), enc.universe(), policy)
                    }
                };
                action.insert(name.clone(), value);
            }
        }
        Some(ModelAction {
            action: Value::Object(action),
            approvals,
            block: Bool::and(&block).not(),
        })
    }
}

/// An action read from a model, with the `approvals` count and a clause excluding this model.
pub struct ModelAction {
    /// The action (present variables only; tokens as `"<token>"`).
    pub action: Value,
    /// The model's value of the built-in `approvals`.
    pub approvals: i64,
    /// `¬(this assignment)`: assert it to get a different model next time.
    pub block: Bool,
}

fn int_value(n: i64, ty: Option<&VarType>, universe: &[String], _policy: &Policy) -> Value {
    match ty {
        Some(VarType::Enum { values }) => usize::try_from(n)
            .ok()
            .and_then(|i| values.get(i))
            .map_or(Value::Null, |s| Value::String(s.clone())),
        Some(VarType::String { .. }) => usize::try_from(n)
            .ok()
            .and_then(|i| universe.get(i))
            .map_or_else(
                || Value::String(format!("other-{}", n.saturating_sub(universe.len() as i64))),
                |s| Value::String(s.clone()),
            ),
        _ => Value::from(n),
    }
}

/// Translate a Boolean term through the one lowering of [`crate::solver`].
///
/// # Errors
/// [`AnalyzeError::IllSorted`].
pub fn bool_of(t: &Term) -> Result<Bool, AnalyzeError> {
    crate::solver::lower_bool(t).map_err(|_| AnalyzeError::IllSorted)
}
