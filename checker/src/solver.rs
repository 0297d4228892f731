//! Z3 backend of the encoding: lowers [`Term`]s into the z3 crate's thread-local context.
//!
//! z3 0.22 uses an implicit thread-local `Context`; every object here is `!Send` and must be
//! created and used on one thread ([`crate::pool`] keeps one set per worker thread).

use std::collections::BTreeMap;

use serde_json::Value;
use z3::ast::{Bool, Dynamic, Int};
use z3::{Model, Solver};

use crate::ast::{Policy, VarType, APPROVALS};
use crate::encode::{violation_name, Encoding, Sink, Sort, Term};

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
    fn declare(&mut self, name: &str, sort: Sort) {
        let d = match sort {
            Sort::Bool => Dynamic::from_ast(&Bool::new_const(name)),
            Sort::Int => Dynamic::from_ast(&Int::new_const(name)),
        };
        self.0.consts.insert(name.to_owned(), d);
    }
    fn assert(&mut self, term: &Term) {
        let b = self.0.lower_bool(term);
        self.0.domain.push(b);
    }
    fn define_bool(&mut self, name: &str, term: &Term) {
        let lit = Bool::new_const(name);
        let body = self.0.lower_bool(term);
        self.0.definitions.push(lit.eq(&body));
        self.0.violated.push(lit);
        self.0.violated_terms.push(body);
    }
}

fn sort_of(t: &Term) -> Sort {
    match t {
        Term::Int(_) | Term::Const(_, Sort::Int) => Sort::Int,
        _ => Sort::Bool,
    }
}

impl Z3Encoding {
    /// Lower a policy encoding on the current thread.
    pub fn new(policy: &Policy, encoding: &Encoding) -> Self {
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
        encoding.emit(&mut Z3Sink(&mut z));
        debug_assert_eq!(
            z.violated.len(),
            policy.rules.len(),
            "{}",
            violation_name(0)
        );
        z
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
    pub fn presence(&self, name: &str) -> Bool {
        self.lower_bool(&self.encoding.presence(name))
    }

    /// Value term of a variable (`None` for tokens and unknown names).
    pub fn value(&self, name: &str) -> Option<Dynamic> {
        let sym = self.encoding.variables().get(name)?;
        let (n, _) = sym.value.as_ref()?;
        self.consts.get(n).cloned()
    }

    /// Lower a boolean term.
    pub fn lower_bool(&self, t: &Term) -> Bool {
        match t {
            Term::Bool(b) => Bool::from_bool(*b),
            Term::Const(n, Sort::Bool) => self
                .consts
                .get(n)
                .and_then(Dynamic::as_bool)
                .unwrap_or_else(|| Bool::new_const(n.as_str())),
            Term::Int(_) | Term::Const(_, Sort::Int) => Bool::from_bool(false),
            Term::Not(x) => self.lower_bool(x).not(),
            Term::And(xs) => {
                let v: Vec<Bool> = xs.iter().map(|x| self.lower_bool(x)).collect();
                Bool::and(&v)
            }
            Term::Or(xs) => {
                let v: Vec<Bool> = xs.iter().map(|x| self.lower_bool(x)).collect();
                Bool::or(&v)
            }
            Term::Implies(a, b) => self.lower_bool(a).implies(self.lower_bool(b)),
            Term::Eq(a, b) => match sort_of(a) {
                Sort::Bool => self.lower_bool(a).eq(self.lower_bool(b)),
                Sort::Int => self.lower_int(a).eq(self.lower_int(b)),
            },
            Term::Lt(a, b) => self.lower_int(a).lt(self.lower_int(b)),
            Term::Le(a, b) => self.lower_int(a).le(self.lower_int(b)),
        }
    }

    /// Lower an integer term.
    pub fn lower_int(&self, t: &Term) -> Int {
        match t {
            Term::Int(n) => Int::from_i64(*n),
            Term::Const(n, Sort::Int) => self
                .consts
                .get(n)
                .and_then(Dynamic::as_int)
                .unwrap_or_else(|| Int::new_const(n.as_str())),
            _ => Int::from_i64(0),
        }
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
            let present = model
                .eval(&self.presence(name), true)
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
