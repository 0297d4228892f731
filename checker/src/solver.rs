//! Z3 backend of the encoding: the one lowering of [`Term`]s into the z3 crate's thread-local
//! context, shared by decisions ([`crate::Checker`]) and analysis ([`crate::analyze`]).
//!
//! A term whose sort does not fit its position (an `Int` where a `Bool` is needed, an `Eq` of
//! two sorts) is an [`IllSorted`] error, never silently replaced by `false` or `0`: an encoder
//! bug must not turn into a decision (`spec/decision-semantics.md` §4.3, §5).
//!
//! z3 0.22 uses an implicit thread-local `Context`; every object here is `!Send` and must be
//! created and used on one thread ([`crate::pool`] keeps one set per worker thread).

use std::collections::BTreeMap;

use serde_json::Value;
use z3::ast::{Bool, Dynamic, Int};
use z3::{Model, Solver};

use crate::ast::{Policy, VarType, APPROVALS};
use crate::encode::{Encoding, IllSorted, Sink, Sort, Term};

/// Z3 terms of a policy encoding, for decisions ([`crate::Checker`]) and analysis tools.
#[derive(Debug)]
pub struct Z3Encoding {
    consts: BTreeMap<String, Dynamic>,
    /// Domain constraints (assert them).
    pub domain: Vec<Bool>,
    /// Per-rule violation literal `viol!i` (constant, defined by [`Self::definitions`]).
    pub violated: Vec<Bool>,
    /// Per-rule violation formula (`when ∧ ¬require`) over the variables.
    pub violated_terms: Vec<Bool>,
    /// `viol!i = violated_terms[i]` (assert them to use the literals).
    pub definitions: Vec<Bool>,
    encoding: Encoding,
    types: BTreeMap<String, VarType>,
}

struct Z3Sink<'a>(&'a mut Z3Encoding);

impl Sink for Z3Sink<'_> {
    fn declare(&mut self, name: &str, sort: Sort) -> Result<(), IllSorted> {
        let d = match sort {
            Sort::Bool => Dynamic::from_ast(&Bool::new_const(name)),
            Sort::Int => Dynamic::from_ast(&Int::new_const(name)),
        };
        self.0.consts.insert(name.to_owned(), d);
        Ok(())
    }
    fn assert(&mut self, term: &Term) -> Result<(), IllSorted> {
        let b = lower_bool(term)?;
        self.0.domain.push(b);
        Ok(())
    }
    fn define_bool(&mut self, name: &str, term: &Term) -> Result<(), IllSorted> {
        let lit = Bool::new_const(name);
        let body = lower_bool(term)?;
        self.0.definitions.push(lit.eq(&body));
        self.0.violated.push(lit);
        self.0.violated_terms.push(body);
        Ok(())
    }
}

/// A lowered term of either sort.
enum Lowered {
    Bool(Bool),
    Int(Int),
}

/// Lower a Boolean term into the thread-local Z3 context. Constants are Z3 constants of the
/// same name and sort, so terms lowered separately share their variables.
///
/// # Errors
/// [`IllSorted`] when the term, or a sub-term, has the wrong sort for its position.
pub fn lower_bool(t: &Term) -> Result<Bool, IllSorted> {
    match lower(t)? {
        Lowered::Bool(b) => Ok(b),
        Lowered::Int(_) => Err(IllSorted {
            expected: Sort::Bool,
        }),
    }
}

/// Lower an integer term (see [`lower_bool`]).
///
/// # Errors
/// [`IllSorted`].
pub fn lower_int(t: &Term) -> Result<Int, IllSorted> {
    match lower(t)? {
        Lowered::Int(i) => Ok(i),
        Lowered::Bool(_) => Err(IllSorted {
            expected: Sort::Int,
        }),
    }
}

fn lower(t: &Term) -> Result<Lowered, IllSorted> {
    let bools = |ts: &[Term]| ts.iter().map(lower_bool).collect::<Result<Vec<_>, _>>();
    Ok(match t {
        Term::Bool(b) => Lowered::Bool(Bool::from_bool(*b)),
        Term::Int(n) => Lowered::Int(Int::from_i64(*n)),
        Term::Const(name, Sort::Bool) => Lowered::Bool(Bool::new_const(name.as_str())),
        Term::Const(name, Sort::Int) => Lowered::Int(Int::new_const(name.as_str())),
        Term::Not(a) => Lowered::Bool(lower_bool(a)?.not()),
        Term::And(ts) => Lowered::Bool(Bool::and(&bools(ts)?)),
        Term::Or(ts) => Lowered::Bool(Bool::or(&bools(ts)?)),
        Term::Implies(a, b) => Lowered::Bool(lower_bool(a)?.implies(lower_bool(b)?)),
        Term::Eq(a, b) => match (lower(a)?, lower(b)?) {
            (Lowered::Bool(x), Lowered::Bool(y)) => Lowered::Bool(x.eq(y)),
            (Lowered::Int(x), Lowered::Int(y)) => Lowered::Bool(x.eq(y)),
            (Lowered::Bool(_), Lowered::Int(_)) => {
                return Err(IllSorted {
                    expected: Sort::Bool,
                })
            }
            (Lowered::Int(_), Lowered::Bool(_)) => {
                return Err(IllSorted {
                    expected: Sort::Int,
                })
            }
        },
        Term::Lt(a, b) => Lowered::Bool(lower_int(a)?.lt(lower_int(b)?)),
        Term::Le(a, b) => Lowered::Bool(lower_int(a)?.le(lower_int(b)?)),
    })
}

impl Z3Encoding {
    /// Lower a policy encoding on the current thread.
    ///
    /// # Errors
    /// [`IllSorted`] when a term of the encoding is ill-sorted (an encoder bug).
    pub fn new(policy: &Policy, encoding: &Encoding) -> Result<Self, IllSorted> {
        let mut z = Self {
            consts: BTreeMap::new(),
            domain: Vec::new(),
            violated: Vec::new(),
            violated_terms: Vec::new(),
            definitions: Vec::new(),
            encoding: encoding.clone(),
            types: policy
                .variables
                .iter()
                .map(|v| (v.name.clone(), v.ty.clone()))
                .collect(),
        };
        encoding.emit(&mut Z3Sink(&mut z))?;
        Ok(z)
    }

    /// The solver-independent encoding.
    pub fn encoding(&self) -> &Encoding {
        &self.encoding
    }

    /// Assert the domain constraints and violation definitions into `solver`.
    pub fn assert_into(&self, solver: &Solver) {
        for b in self.domain.iter().chain(&self.definitions) {
            solver.assert(b);
        }
    }

    /// Presence literal of a variable (`true` for `approvals`).
    ///
    /// # Errors
    /// [`IllSorted`] (never for a well-formed encoding).
    pub fn presence(&self, name: &str) -> Result<Bool, IllSorted> {
        lower_bool(&self.encoding.presence(name))
    }

    /// Value term of a variable (`None` for tokens and unknown names).
    pub fn value(&self, name: &str) -> Option<Dynamic> {
        let sym = self.encoding.variables().get(name)?;
        let (n, _) = sym.value.as_ref()?;
        self.consts.get(n).cloned()
    }

    /// The value of `approvals` in a model.
    pub fn model_approvals(&self, model: &Model) -> Option<i64> {
        let v = self.value(APPROVALS)?.as_int()?;
        model.eval(&v, true)?.as_i64()
    }

    /// The action a model describes: present variables with their values. Tokens become the
    /// string `"token"`; a string outside the universe becomes `"other-<id>"` (never a universe
    /// member).
    pub fn model_to_action(&self, model: &Model) -> Value {
        let universe = self.encoding.universe();
        let mut obj = serde_json::Map::new();
        for (name, ty) in &self.types {
            let present = self
                .presence(name)
                .ok()
                .and_then(|p| model.eval(&p, true))
                .and_then(|b| b.as_bool())
                .unwrap_or(false);
            if !present {
                continue;
            }
            let int = || {
                self.value(name)
                    .and_then(|d| d.as_int())
                    .and_then(|i| model.eval(&i, true))
                    .and_then(|i| i.as_i64())
            };
            let v = match ty {
                VarType::Token => Some(Value::String("token".to_owned())),
                VarType::Bool => self
                    .value(name)
                    .and_then(|d| d.as_bool())
                    .and_then(|b| model.eval(&b, true))
                    .and_then(|b| b.as_bool())
                    .map(Value::Bool),
                VarType::Int { .. } => int().map(Value::from),
                VarType::Enum { values } => int()
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| values.get(i))
                    .map(|s| Value::String(s.clone())),
                VarType::String { .. } => int().map(|i| {
                    let known = usize::try_from(i).ok().and_then(|i| universe.get(i));
                    Value::String(known.cloned().unwrap_or_else(|| {
                        let mut s = format!("other-{i}");
                        while universe.binary_search(&s).is_ok() {
                            s.push('_');
                        }
                        s
                    }))
                }),
            };
            if let Some(v) = v {
                obj.insert(name.clone(), v);
            }
        }
        Value::Object(obj)
    }
}
