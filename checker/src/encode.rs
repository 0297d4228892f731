//! Encoding: typed AST → solver-independent terms ([`Term`]) → a [`Sink`] (Z3, or SMT-LIB text
//! for snapshot tests). `spec/decision-semantics.md` §3.
//!
//! Per variable `x` (SMT symbols):
//! - `p!x : Bool` — presence (not for the built-in `approvals`, which is always present);
//! - `v!x` — value: `Bool` for bool, `Int` for int, enum (index into the declared values) and
//!   string; tokens have no value.
//! - Strings are `Int` ids: the sorted set of all string literals and list items of the policy
//!   (the *universe*) gets ids `0..n`; a string outside the universe gets an id `>= n`, equal
//!   strings equal ids within one action. Domain: `p!x ⇒ v!x >= 0`.
//! - Domain constraints: int bounds (and the i64 range), enum range, `approvals` in
//!   `0..=#approvers`; an absent variable's value is fixed to `0`/`false` so models are canonical.
//! - A comparison is `presence(operands) ∧ (lhs op rhs)`; a bare bool variable is `p!x ∧ v!x`.
//! - Rule `r` is violated iff `when ∧ ¬require`: `viol!r`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::action::{Action, BoundValue};
use crate::ast::{CmpOp, Expr, Operand, Policy, VarType, APPROVALS};

/// Sorts used by the encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sort {
    /// SMT `Bool`.
    Bool,
    /// SMT `Int`.
    Int,
}

/// A solver-independent term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Term {
    /// Boolean constant.
    Bool(bool),
    /// Integer constant.
    Int(i64),
    /// A declared constant of the given sort.
    Const(String, Sort),
    /// Negation.
    Not(Box<Term>),
    /// Conjunction (empty = true).
    And(Vec<Term>),
    /// Disjunction (empty = false).
    Or(Vec<Term>),
    /// Implication.
    Implies(Box<Term>, Box<Term>),
    /// Equality of two terms of one sort.
    Eq(Box<Term>, Box<Term>),
    /// Integer `<`.
    Lt(Box<Term>, Box<Term>),
    /// Integer `<=`.
    Le(Box<Term>, Box<Term>),
}

/// A term whose sort does not fit its position: an encoder bug, never expected for a
/// type-checked policy. Every consumer of the encoding (the SMT-LIB writer, the Z3 lowering
/// of decisions and of analysis) rejects it; a decision that meets it fails closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("ill-sorted term in the encoding: expected {expected:?}")]
pub struct IllSorted {
    /// The sort the position needs.
    pub expected: Sort,
}

impl Term {
    /// The sort of a well-sorted term.
    ///
    /// # Errors
    /// [`IllSorted`] when the term or a sub-term has the wrong sort for its position.
    pub fn sort(&self) -> Result<Sort, IllSorted> {
        let want = |t: &Term, s: Sort| match t.sort()? {
            found if found == s => Ok(()),
            _ => Err(IllSorted { expected: s }),
        };
        match self {
            Term::Bool(_) | Term::Const(_, Sort::Bool) => Ok(Sort::Bool),
            Term::Int(_) | Term::Const(_, Sort::Int) => Ok(Sort::Int),
            Term::Not(a) => want(a, Sort::Bool).map(|()| Sort::Bool),
            Term::And(ts) | Term::Or(ts) => ts
                .iter()
                .try_for_each(|t| want(t, Sort::Bool))
                .map(|()| Sort::Bool),
            Term::Implies(a, b) => {
                want(a, Sort::Bool)?;
                want(b, Sort::Bool).map(|()| Sort::Bool)
            }
            Term::Eq(a, b) => {
                let s = a.sort()?;
                want(b, s).map(|()| Sort::Bool)
            }
            Term::Lt(a, b) | Term::Le(a, b) => {
                want(a, Sort::Int)?;
                want(b, Sort::Int).map(|()| Sort::Bool)
            }
        }
    }

    fn not(t: Term) -> Term {
        Term::Not(Box::new(t))
    }
    fn eq(a: Term, b: Term) -> Term {
        Term::Eq(Box::new(a), Box::new(b))
    }
    fn le(a: Term, b: Term) -> Term {
        Term::Le(Box::new(a), Box::new(b))
    }
    fn lt(a: Term, b: Term) -> Term {
        Term::Lt(Box::new(a), Box::new(b))
    }

    /// Write as SMT-LIB 2 text.
    pub fn write_smtlib(&self, out: &mut String) {
        let bin = |out: &mut String, op: &str, a: &Term, b: &Term| {
            let _ = write!(out, "({op} ");
            a.write_smtlib(out);
            out.push(' ');
            b.write_smtlib(out);
            out.push(')');
        };
        match self {
            Term::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Term::Int(n) if *n < 0 => {
                let _ = write!(out, "(- {})", n.unsigned_abs());
            }
            Term::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Term::Const(name, _) => out.push_str(name),
            Term::Not(t) => {
                out.push_str("(not ");
                t.write_smtlib(out);
                out.push(')');
            }
            Term::And(ts) | Term::Or(ts) => {
                let (op, empty) = if matches!(self, Term::And(_)) {
                    ("and", "true")
                } else {
                    ("or", "false")
                };
                match ts.as_slice() {
                    [] => out.push_str(empty),
                    [one] => one.write_smtlib(out),
                    _ => {
                        let _ = write!(out, "({op}");
                        for t in ts {
                            out.push(' ');
                            t.write_smtlib(out);
                        }
                        out.push(')');
                    }
                }
            }
            Term::Implies(a, b) => bin(out, "=>", a, b),
            Term::Eq(a, b) => bin(out, "=", a, b),
            Term::Lt(a, b) => bin(out, "<", a, b),
            Term::Le(a, b) => bin(out, "<=", a, b),
        }
    }
}

/// Where an encoding is emitted: a solver ([`crate::solver`]), or SMT-LIB text
/// ([`SmtLibWriter`]) for snapshot tests. Every method rejects an ill-sorted term.
pub trait Sink {
    /// Declare a constant.
    ///
    /// # Errors
    /// [`IllSorted`] (not for declarations today; the signature is shared).
    fn declare(&mut self, name: &str, sort: Sort) -> Result<(), IllSorted>;
    /// Assert a formula.
    ///
    /// # Errors
    /// [`IllSorted`] when `term` is not a well-sorted Boolean term.
    fn assert(&mut self, term: &Term) -> Result<(), IllSorted>;
    /// Define a named boolean (`name = term`), used for per-rule violation literals.
    ///
    /// # Errors
    /// [`IllSorted`] when `term` is not a well-sorted Boolean term.
    fn define_bool(&mut self, name: &str, term: &Term) -> Result<(), IllSorted>;
}

fn boolean(term: &Term) -> Result<(), IllSorted> {
    match term.sort()? {
        Sort::Bool => Ok(()),
        Sort::Int => Err(IllSorted {
            expected: Sort::Bool,
        }),
    }
}

/// Collects SMT-LIB 2 text (for snapshots and debugging).
#[derive(Debug, Default)]
pub struct SmtLibWriter {
    /// The text so far.
    pub text: String,
}

impl Sink for SmtLibWriter {
    fn declare(&mut self, name: &str, sort: Sort) -> Result<(), IllSorted> {
        let s = match sort {
            Sort::Bool => "Bool",
            Sort::Int => "Int",
        };
        let _ = writeln!(self.text, "(declare-const {name} {s})");
        Ok(())
    }
    fn assert(&mut self, term: &Term) -> Result<(), IllSorted> {
        boolean(term)?;
        self.text.push_str("(assert ");
        term.write_smtlib(&mut self.text);
        self.text.push_str(")\n");
        Ok(())
    }
    fn define_bool(&mut self, name: &str, term: &Term) -> Result<(), IllSorted> {
        boolean(term)?;
        let _ = write!(self.text, "(define-fun {name} () Bool ");
        term.write_smtlib(&mut self.text);
        self.text.push_str(")\n");
        Ok(())
    }
}

/// Symbols of one variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VarSymbols {
    /// Presence constant (`None` for `approvals`, always present).
    pub presence: Option<String>,
    /// Value constant and its sort (`None` for tokens).
    pub value: Option<(String, Sort)>,
    /// The variable's type (`None` for `approvals`).
    pub ty: Option<VarType>,
}

/// The encoding of one policy: symbols, domain constraints and per-rule violation terms.
#[derive(Clone, Debug)]
pub struct Encoding {
    vars: BTreeMap<String, VarSymbols>,
    universe: Vec<String>,
    domain: Vec<Term>,
    violated: Vec<Term>,
    when: Vec<Term>,
    require: Vec<Term>,
}

/// Name of the violation literal of rule `i`.
pub fn violation_name(i: usize) -> String {
    format!("viol!{i}")
}

impl Encoding {
    /// Encode a type-checked policy.
    pub fn new(policy: &Policy) -> Self {
        let mut universe = BTreeSet::new();
        for items in policy.lists.values() {
            universe.extend(items.iter().cloned());
        }
        for r in &policy.rules {
            for e in r.when.iter().chain(std::iter::once(&r.require)) {
                collect_strings(e, &mut universe);
            }
        }
        let universe: Vec<String> = universe.into_iter().collect();
        let mut vars = BTreeMap::new();
        let mut domain = Vec::new();
        for v in &policy.variables {
            let p = format!("p!{}", v.name);
            let val = format!("v!{}", v.name);
            let pt = Term::Const(p.clone(), Sort::Bool);
            let (value, dom) = match &v.ty {
                VarType::Bool => (Some((val.clone(), Sort::Bool)), Vec::new()),
                VarType::Int { min, max } => {
                    let x = Term::Const(val.clone(), Sort::Int);
                    (
                        Some((val.clone(), Sort::Int)),
                        vec![
                            Term::le(Term::Int(min.unwrap_or(i64::MIN)), x.clone()),
                            Term::le(x, Term::Int(max.unwrap_or(i64::MAX))),
                        ],
                    )
                }
                VarType::Enum { values } => {
                    let x = Term::Const(val.clone(), Sort::Int);
                    let n = i64::try_from(values.len()).unwrap_or(i64::MAX);
                    (
                        Some((val.clone(), Sort::Int)),
                        vec![Term::le(Term::Int(0), x.clone()), Term::lt(x, Term::Int(n))],
                    )
                }
                VarType::String { .. } => {
                    let x = Term::Const(val.clone(), Sort::Int);
                    (
                        Some((val.clone(), Sort::Int)),
                        vec![Term::le(Term::Int(0), x)],
                    )
                }
                VarType::Token => (None, Vec::new()),
            };
            if !dom.is_empty() {
                domain.push(Term::Implies(
                    Box::new(pt.clone()),
                    Box::new(Term::And(dom)),
                ));
            }
            if let Some((name, sort)) = &value {
                let zero = match sort {
                    Sort::Bool => Term::Bool(false),
                    Sort::Int => Term::Int(0),
                };
                domain.push(Term::Implies(
                    Box::new(Term::not(pt.clone())),
                    Box::new(Term::eq(Term::Const(name.clone(), *sort), zero)),
                ));
            }
            vars.insert(
                v.name.clone(),
                VarSymbols {
                    presence: Some(p),
                    value,
                    ty: Some(v.ty.clone()),
                },
            );
        }
        let approvals = format!("v!{APPROVALS}");
        let a = Term::Const(approvals.clone(), Sort::Int);
        let n_appr = i64::try_from(policy.approvers.len()).unwrap_or(i64::MAX);
        domain.push(Term::And(vec![
            Term::le(Term::Int(0), a.clone()),
            Term::le(a, Term::Int(n_appr)),
        ]));
        vars.insert(
            APPROVALS.to_owned(),
            VarSymbols {
                presence: None,
                value: Some((approvals, Sort::Int)),
                ty: None,
            },
        );
        let mut enc = Self {
            vars,
            universe,
            domain,
            violated: Vec::new(),
            when: Vec::new(),
            require: Vec::new(),
        };
        for r in &policy.rules {
            let when = r
                .when
                .as_ref()
                .map_or(Term::Bool(true), |w| enc.expr(w, policy));
            let require = enc.expr(&r.require, policy);
            enc.violated
                .push(Term::And(vec![when.clone(), Term::not(require.clone())]));
            enc.when.push(when);
            enc.require.push(require);
        }
        enc
    }

    /// Symbols per variable (including `approvals`).
    pub fn variables(&self) -> &BTreeMap<String, VarSymbols> {
        &self.vars
    }

    /// The string universe (id = index).
    pub fn universe(&self) -> &[String] {
        &self.universe
    }

    /// Domain constraints.
    pub fn domain(&self) -> &[Term] {
        &self.domain
    }

    /// Per-rule violation terms (`when ∧ ¬require`).
    pub fn violated(&self) -> &[Term] {
        &self.violated
    }

    /// Per-rule `when` terms (`true` when absent).
    pub fn when(&self) -> &[Term] {
        &self.when
    }

    /// Per-rule `require` terms.
    pub fn require(&self) -> &[Term] {
        &self.require
    }

    /// Presence term of a variable (`true` for `approvals` and unknown names).
    pub fn presence(&self, name: &str) -> Term {
        match self.vars.get(name).and_then(|s| s.presence.clone()) {
            Some(p) => Term::Const(p, Sort::Bool),
            None => Term::Bool(true),
        }
    }

    /// Value term of a variable (`0` for tokens and unknown names).
    pub fn value(&self, name: &str) -> Term {
        match self.vars.get(name).and_then(|s| s.value.clone()) {
            Some((n, s)) => Term::Const(n, s),
            None => Term::Int(0),
        }
    }

    /// Emit declarations, domain constraints and the definitions `viol!i`.
    ///
    /// # Errors
    /// [`IllSorted`] from the sink.
    pub fn emit(&self, sink: &mut impl Sink) -> Result<(), IllSorted> {
        for s in self.vars.values() {
            if let Some(p) = &s.presence {
                sink.declare(p, Sort::Bool)?;
            }
            if let Some((v, sort)) = &s.value {
                sink.declare(v, *sort)?;
            }
        }
        for d in &self.domain {
            sink.assert(d)?;
        }
        for (i, t) in self.violated.iter().enumerate() {
            sink.define_bool(&violation_name(i), t)?;
        }
        Ok(())
    }

    /// SMT-LIB 2 text of the whole encoding.
    ///
    /// # Errors
    /// [`IllSorted`] when a term is ill-sorted.
    pub fn to_smtlib(&self) -> Result<String, IllSorted> {
        let mut w = SmtLibWriter::default();
        self.emit(&mut w)?;
        Ok(w.text)
    }

    /// Id of a string value: its universe index, else `n + rank` among `extra` (sorted).
    fn string_id(&self, s: &str, extra: &BTreeSet<&str>) -> i64 {
        let id = match self.universe.binary_search_by(|u| u.as_str().cmp(s)) {
            Ok(i) => i,
            Err(_) => self.universe.len() + extra.iter().position(|e| *e == s).unwrap_or(0),
        };
        i64::try_from(id).unwrap_or(i64::MAX)
    }

    /// Formulas fixing the bound variables of `action` and `approvals` (when given).
    pub fn bindings(&self, action: &Action, approvals: Option<i64>) -> Vec<Term> {
        let extra: BTreeSet<&str> = action
            .bindings()
            .values()
            .filter_map(|v| match v {
                BoundValue::Str(s) if self.universe.binary_search(s).is_err() => Some(s.as_str()),
                _ => None,
            })
            .collect();
        let mut out = Vec::new();
        for (name, v) in action.bindings() {
            if *v == BoundValue::Absent {
                out.push(Term::not(self.presence(name)));
                continue;
            }
            out.push(self.presence(name));
            let val = self.value(name);
            let c = match v {
                BoundValue::Bool(b) => Some(Term::Bool(*b)),
                BoundValue::Int(n) => Some(Term::Int(*n)),
                BoundValue::Enum { index, .. } => {
                    Some(Term::Int(i64::try_from(*index).unwrap_or(i64::MAX)))
                }
                BoundValue::Str(s) => Some(Term::Int(self.string_id(s, &extra))),
                BoundValue::TokenPresent | BoundValue::Absent => None,
            };
            if let Some(c) = c {
                out.push(Term::eq(val, c));
            }
        }
        if let Some(a) = approvals {
            out.push(Term::eq(self.value(APPROVALS), Term::Int(a)));
        }
        out
    }

    fn literal_id(&self, var: &str, s: &str, policy: &Policy) -> i64 {
        match policy.variable(var).map(|v| &v.ty) {
            Some(VarType::Enum { values }) => values
                .iter()
                .position(|v| v == s)
                .and_then(|i| i64::try_from(i).ok())
                .unwrap_or(-1),
            _ => self.string_id(s, &BTreeSet::new()),
        }
    }

    /// Encode an expression (type-checked against `policy`).
    pub fn expr(&self, e: &Expr, policy: &Policy) -> Term {
        match e {
            Expr::Const(b) => Term::Bool(*b),
            Expr::Var(v) => Term::And(vec![self.presence(v), self.value(v)]),
            Expr::Present(v) => self.presence(v),
            Expr::Not(x) => Term::not(self.expr(x, policy)),
            Expr::And(xs) => Term::And(xs.iter().map(|x| self.expr(x, policy)).collect()),
            Expr::Or(xs) => Term::Or(xs.iter().map(|x| self.expr(x, policy)).collect()),
            Expr::Implies(a, b) => Term::Implies(
                Box::new(self.expr(a, policy)),
                Box::new(self.expr(b, policy)),
            ),
            Expr::InList { var, list } => {
                let items = policy.lists.get(list).map(Vec::as_slice).unwrap_or(&[]);
                self.member(var, items.iter().map(String::as_str), policy)
            }
            Expr::InSet { var, values } => {
                self.member(var, values.iter().map(String::as_str), policy)
            }
            Expr::Cmp { op, lhs, rhs } => {
                let other_var = match (lhs, rhs) {
                    (Operand::Var(v), _) | (_, Operand::Var(v)) => v.as_str(),
                    _ => "",
                };
                let mut conj = Vec::new();
                let mut side = |o: &Operand| match o {
                    Operand::Var(v) => {
                        if v != APPROVALS {
                            conj.push(self.presence(v));
                        }
                        self.value(v)
                    }
                    Operand::Int(n) => Term::Int(*n),
                    Operand::Bool(b) => Term::Bool(*b),
                    Operand::Str(s) => Term::Int(self.literal_id(other_var, s, policy)),
                };
                let (a, b) = (side(lhs), side(rhs));
                conj.push(match op {
                    CmpOp::Eq => Term::eq(a, b),
                    CmpOp::Ne => Term::not(Term::eq(a, b)),
                    CmpOp::Lt => Term::lt(a, b),
                    CmpOp::Le => Term::le(a, b),
                    CmpOp::Gt => Term::lt(b, a),
                    CmpOp::Ge => Term::le(b, a),
                });
                Term::And(conj)
            }
        }
    }

    fn member<'a>(&self, var: &str, items: impl Iterator<Item = &'a str>, policy: &Policy) -> Term {
        let x = self.value(var);
        let alts = items
            .map(|s| Term::eq(x.clone(), Term::Int(self.literal_id(var, s, policy))))
            .collect();
        Term::And(vec![self.presence(var), Term::Or(alts)])
    }
}

/// Every string literal of `e` (comparison operands and literal sets), into `out`.
pub(crate) fn collect_strings(e: &Expr, out: &mut BTreeSet<String>) {
    match e {
        Expr::Const(_) | Expr::Var(_) | Expr::Present(_) | Expr::InList { .. } => {}
        Expr::Not(x) => collect_strings(x, out),
        Expr::And(xs) | Expr::Or(xs) => xs.iter().for_each(|x| collect_strings(x, out)),
        Expr::Implies(a, b) => {
            collect_strings(a, out);
            collect_strings(b, out);
        }
        Expr::InSet { values, .. } => out.extend(values.iter().cloned()),
        Expr::Cmp { lhs, rhs, .. } => {
            for o in [lhs, rhs] {
                if let Operand::Str(s) = o {
                    out.insert(s.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use verdict_core::receipt::Salt;

    use super::*;

    const SMALL_EGRESS: &str = r#"
name = "customer-data-egress"
version = "1.0.0"
[lists]
approved_vendors = ["acme", "globex"]
[variables]
destination = { type = "enum", values = ["internal", "external"] }
record_count = { type = "int", min = 0, max = 1000000 }
is_privileged = { type = "bool" }
vendor = { type = "string", list = "approved_vendors" }
authorization_token = { type = "token" }
[[rules]]
id = "external-needs-auth"
text = "An external destination needs an authorization token."
when = 'destination == "external"'
require = 'present(authorization_token)'
effect = "deny"
[[rules]]
id = "session-cap"
text = "At most 10000 records."
require = 'record_count <= 10000 and record_count >= -1'
effect = "deny"
[[rules]]
id = "vendor"
text = "Approved vendors only."
when = 'present(vendor)'
require = 'vendor in approved_vendors and not (vendor == "globex" => is_privileged)'
effect = "escalate"
"#;

    #[test]
    fn smtlib_snapshot_of_egress_encoding() {
        let p = crate::compile(SMALL_EGRESS, Salt([0; 32])).unwrap();
        let enc = Encoding::new(p.ast());
        assert_eq!(enc.universe(), ["acme", "external", "globex"]);
        insta::assert_snapshot!(enc.to_smtlib().unwrap());
    }

    #[test]
    fn bindings_give_fresh_ids_to_unknown_strings() {
        let p = crate::compile(SMALL_EGRESS, Salt([0; 32])).unwrap();
        let enc = Encoding::new(p.ast());
        let a = Action::from_value(
            p.ast(),
            &serde_json::json!({"vendor": "zeta", "destination": "external", "authorization_token": "s"}),
        )
        .unwrap();
        let mut s = String::new();
        for t in enc.bindings(&a, Some(0)) {
            t.write_smtlib(&mut s);
            s.push('\n');
        }
        assert_eq!(
            s,
            "p!authorization_token\np!destination\n(= v!destination 1)\np!vendor\n(= v!vendor 3)\n(= v!approvals 0)\n"
        );
    }

    /// Ill-sorted terms are errors in every consumer: the sort check, the SMT-LIB writer and
    /// the Z3 lowering used by decisions and analysis (issue 10: the decision lowering used to
    /// turn them into `false`/`0`).
    #[test]
    fn ill_sorted_terms_are_errors_everywhere() {
        let int = Term::Const("v!n".into(), Sort::Int);
        let bad = [
            int.clone(),
            Term::not(Term::Int(3)),
            Term::And(vec![Term::Bool(true), int.clone()]),
            Term::eq(Term::Bool(true), int.clone()),
            Term::lt(Term::Bool(false), int.clone()),
            Term::Implies(Box::new(int.clone()), Box::new(Term::Bool(true))),
        ];
        for t in &bad {
            let mut w = SmtLibWriter::default();
            assert!(w.assert(t).is_err(), "{t:?}");
            assert!(w.define_bool("x", t).is_err(), "{t:?}");
            assert!(crate::solver::lower_bool(t).is_err(), "{t:?}");
            assert!(crate::analyze::bool_of(t).is_err(), "{t:?}");
        }
        assert!(crate::solver::lower_int(&Term::Bool(true)).is_err());
        assert_eq!(Term::eq(int.clone(), Term::Int(1)).sort(), Ok(Sort::Bool));
        assert!(crate::solver::lower_bool(&Term::le(int, Term::Int(1))).is_ok());
    }
}
