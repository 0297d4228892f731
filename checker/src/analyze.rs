//! Policy analysis (`spec/decision-semantics.md` §9): contradictions, rules that never fire,
//! redundant rules, unbounded variables and variables every allowed action must carry — each
//! finding with a counterexample action where one exists.
//!
//! Uses the engine's solver-independent [`Encoding`] and translates its terms to Z3 on the calling
//! thread ([`Smt`]). The given timeout bounds the whole analysis (every query shares one
//! deadline: [`AnalyzeError::Deadline`]), and an `unknown` answer is an error
//! ([`AnalyzeError::Unknown`]), never a silent "no finding".

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use z3::ast::Bool;

use crate::ast::{CmpOp, Effect, Expr, Operand, Policy, VarType, APPROVALS};
use crate::encode::{Encoding, Term};
use crate::CompiledPolicy;

mod smt;

pub use smt::{bool_of, ModelAction, Smt};

/// Magnitude of the extreme value tried for an int without a bound (2^62).
pub const EXTREME: i64 = 1 << 62;

/// Errors of the analyses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnalyzeError {
    /// The solver answered `unknown` (timeout or incompleteness): no conclusion is drawn.
    #[error("solver returned unknown during {query}: {reason}")]
    Unknown {
        /// Which query.
        query: String,
        /// Z3's reason.
        reason: String,
    },
    /// A term mixes sorts (an encoder bug; never expected for a type-checked policy).
    #[error("ill-sorted term in the encoding")]
    IllSorted,
    /// The analysis did not finish within its time budget: no conclusion is drawn, and a
    /// server must not register the policy (it answers 422).
    #[error("analysis did not finish within {limit_ms} ms")]
    Deadline {
        /// The budget in milliseconds.
        limit_ms: u64,
    },
}

/// How serious a finding is. Errors and warnings make `verdict-policy analyze` exit 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The policy is broken.
    Error,
    /// Probably a mistake.
    Warning,
    /// Worth knowing.
    Info,
}

impl Severity {
    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// Kinds of findings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// No action passes every deny rule, or no action can be allowed.
    Contradiction,
    /// A rule that can never be violated.
    NeverFires,
    /// A rule whose violation implies another rule's violation.
    Redundant,
    /// An int without a bound that an allowed action can push to an extreme.
    Unbounded,
    /// A variable that every allowed action must carry.
    MissingData,
    /// An optional variable (or token) whose stated absence (`null`) makes a rule's `when`
    /// false, so an action can switch the rule off by sending `null`.
    AbsenceDisablesRule,
}

impl FindingKind {
    /// Kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::Contradiction => "contradiction",
            FindingKind::NeverFires => "never-fires",
            FindingKind::Redundant => "redundant",
            FindingKind::Unbounded => "unbounded",
            FindingKind::MissingData => "missing-data",
            FindingKind::AbsenceDisablesRule => "absence-disables-rule",
        }
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    /// Kind.
    pub kind: FindingKind,
    /// Severity.
    pub severity: Severity,
    /// The rules concerned (ids): the conflicting set, the dead rule, the redundant rule followed
    /// by the rules implying it.
    pub rules: Vec<String>,
    /// The variable concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variable: Option<String>,
    /// One-line explanation.
    pub message: String,
    /// An action showing the finding, when one exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterexample: Option<Value>,
}

/// All findings for one policy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Policy name.
    pub policy: String,
    /// Findings in a stable order (by analysis, then rule order).
    pub findings: Vec<Finding>,
}

/// Conjunction of `¬violated_r` over the rules with effect `effect` (or all rules when `None`).
pub fn passes(enc: &Encoding, policy: &Policy, effect: Option<Effect>) -> Term {
    Term::And(
        policy
            .rules
            .iter()
            .zip(enc.violated())
            .filter(|(r, _)| effect.is_none_or(|e| r.effect == e))
            .map(|(_, v)| Term::Not(Box::new(v.clone())))
            .collect(),
    )
}

/// Run every analysis on the calling thread, all of it within `timeout`.
///
/// # Errors
/// [`AnalyzeError::Deadline`] when the analysis cannot finish within `timeout`;
/// [`AnalyzeError::Unknown`] when a query is undecided; [`AnalyzeError::IllSorted`].
pub fn analyze(policy: &CompiledPolicy, timeout: Duration) -> Result<Report, AnalyzeError> {
    let ast = policy.ast();
    let enc = Encoding::new(ast);
    let smt = Smt::new(timeout);
    for d in enc.domain() {
        smt.assert(d)?;
    }
    let encs = [(&enc, ast)];
    let mut findings = Vec::new();
    contradictions(&smt, &enc, ast, &mut findings)?;
    let dead = never_fires(&smt, &enc, ast, &mut findings)?;
    redundant(&smt, &enc, ast, &dead, &mut findings)?;
    unbounded(&smt, &enc, ast, &encs, &mut findings)?;
    missing_data(&smt, &enc, ast, &encs, &mut findings)?;
    absence_disables(&smt, &enc, ast, &encs, &mut findings)?;
    Ok(Report {
        policy: policy.name().to_owned(),
        findings,
    })
}

/// Minimal unsat subset of `candidates` (rule indices) given `guard(i)` formulas: deletion-based
/// minimisation of the solver's unsat core.
fn minimal_core(
    smt: &Smt,
    candidates: &[usize],
    guard: &dyn Fn(usize) -> Result<Bool, AnalyzeError>,
    query: &str,
) -> Result<Option<Vec<usize>>, AnalyzeError> {
    let lits = candidates
        .iter()
        .map(|&i| guard(i))
        .collect::<Result<Vec<_>, _>>()?;
    if smt.check(&lits, query)? {
        return Ok(None);
    }
    let core = smt.unsat_core();
    let mut keep: Vec<usize> = candidates
        .iter()
        .zip(&lits)
        .filter(|(_, l)| core.iter().any(|c| c == *l))
        .map(|(&i, _)| i)
        .collect();
    if keep.is_empty() {
        return Ok(Some(keep));
    }
    let mut k = 0;
    while k < keep.len() {
        let trial: Vec<usize> = keep
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != k)
            .map(|(_, &i)| i)
            .collect();
        let trial_lits = trial
            .iter()
            .map(|&i| guard(i))
            .collect::<Result<Vec<_>, _>>()?;
        if smt.check(&trial_lits, query)? {
            k += 1;
        } else {
            keep = trial;
        }
    }
    Ok(Some(keep))
}

/// An assumption literal `a ⇒ t`, asserted, returned as `a`.
fn tracked(smt: &Smt, name: &str, t: &Term) -> Result<Bool, AnalyzeError> {
    let a = Bool::new_const(name);
    smt.assert_z3(&a.implies(bool_of(t)?));
    Ok(a)
}

fn ids(policy: &Policy, idx: &[usize]) -> Vec<String> {
    idx.iter()
        .filter_map(|&i| policy.rules.get(i).map(|r| r.id.clone()))
        .collect()
}

fn contradictions(
    smt: &Smt,
    enc: &Encoding,
    policy: &Policy,
    out: &mut Vec<Finding>,
) -> Result<(), AnalyzeError> {
    let mut pass = BTreeMap::new();
    for (i, v) in enc.violated().iter().enumerate() {
        pass.insert(
            i,
            tracked(
                smt,
                &format!("analyze!pass!{i}"),
                &Term::Not(Box::new(v.clone())),
            )?,
        );
    }
    let lit = |i: usize| pass.get(&i).cloned().ok_or(AnalyzeError::IllSorted);
    let deny: Vec<usize> = (0..policy.rules.len())
        .filter(|&i| {
            policy
                .rules
                .get(i)
                .is_some_and(|r| r.effect == Effect::Deny)
        })
        .collect();
    if let Some(core) = minimal_core(smt, &deny, &lit, "contradiction (deny rules)")? {
        out.push(Finding {
            kind: FindingKind::Contradiction,
            severity: Severity::Error,
            rules: ids(policy, &core),
            variable: None,
            message: format!(
                "every action is denied: no action satisfies deny rules [{}] together",
                ids(policy, &core).join(", ")
            ),
            counterexample: None,
        });
        return Ok(());
    }
    let all: Vec<usize> = (0..policy.rules.len()).collect();
    if let Some(core) = minimal_core(smt, &all, &lit, "contradiction (all rules)")? {
        out.push(Finding {
            kind: FindingKind::Contradiction,
            severity: Severity::Error,
            rules: ids(policy, &core),
            variable: None,
            message: format!(
                "no action can be allowed: rules [{}] cannot all hold (best outcome is escalate)",
                ids(policy, &core).join(", ")
            ),
            counterexample: None,
        });
    }
    Ok(())
}

fn never_fires(
    smt: &Smt,
    enc: &Encoding,
    policy: &Policy,
    out: &mut Vec<Finding>,
) -> Result<Vec<usize>, AnalyzeError> {
    let mut dead = Vec::new();
    for (i, v) in enc.violated().iter().enumerate() {
        let lit = tracked(smt, &format!("analyze!viol!{i}"), v)?;
        if !smt.check(&[lit], "never-fires")? {
            dead.push(i);
            let id = ids(policy, &[i]);
            out.push(Finding {
                kind: FindingKind::NeverFires,
                severity: Severity::Error,
                message: format!(
                    "rule `{}` can never be violated under the variables' domains",
                    id.join("")
                ),
                rules: id,
                variable: None,
                counterexample: None,
            });
        }
    }
    Ok(dead)
}

fn redundant(
    smt: &Smt,
    enc: &Encoding,
    policy: &Policy,
    dead: &[usize],
    out: &mut Vec<Finding>,
) -> Result<(), AnalyzeError> {
    let mut removed: Vec<usize> = dead.to_vec();
    let pass = |i: usize| Ok(Bool::new_const(format!("analyze!pass!{i}")));
    for (r, rule) in policy.rules.iter().enumerate() {
        if removed.contains(&r) {
            continue;
        }
        // Others that can stand in for r: same or stronger effect (deny ⪰ escalate).
        let others: Vec<usize> = policy
            .rules
            .iter()
            .enumerate()
            .filter(|(s, o)| {
                *s != r
                    && !removed.contains(s)
                    && (o.effect == Effect::Deny || rule.effect == Effect::Escalate)
            })
            .map(|(s, _)| s)
            .collect();
        let viol_r = Bool::new_const(format!("analyze!viol!{r}"));
        let guard = |i: usize| {
            if i == usize::MAX {
                Ok(viol_r.clone())
            } else {
                pass(i)
            }
        };
        let mut cands = others.clone();
        cands.push(usize::MAX);
        let Some(core) = minimal_core(smt, &cands, &guard, "redundant")? else {
            continue;
        };
        if !core.contains(&usize::MAX) {
            continue; // the others alone conflict: reported as a contradiction
        }
        let by: Vec<usize> = core.into_iter().filter(|&i| i != usize::MAX).collect();
        let mut rules = ids(policy, &[r]);
        rules.extend(ids(policy, &by));
        out.push(Finding {
            kind: FindingKind::Redundant,
            severity: Severity::Warning,
            message: format!(
                "rule `{}` is redundant: whenever it is violated, [{}] is violated too",
                rule.id,
                ids(policy, &by).join(", ")
            ),
            rules,
            variable: None,
            counterexample: None,
        });
        removed.push(r);
    }
    let _ = enc;
    Ok(())
}

/// Int variables used in an ordering comparison.
fn ordered_ints(policy: &Policy) -> Vec<String> {
    fn walk(e: &Expr, out: &mut Vec<String>) {
        match e {
            Expr::Not(x) => walk(x, out),
            Expr::And(xs) | Expr::Or(xs) => xs.iter().for_each(|x| walk(x, out)),
            Expr::Implies(a, b) => {
                walk(a, out);
                walk(b, out);
            }
            Expr::Cmp { op, lhs, rhs } if !matches!(op, CmpOp::Eq | CmpOp::Ne) => {
                for o in [lhs, rhs] {
                    if let Operand::Var(v) = o {
                        if v != APPROVALS && !out.contains(v) {
                            out.push(v.clone());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for r in &policy.rules {
        if let Some(w) = &r.when {
            walk(w, &mut out);
        }
        walk(&r.require, &mut out);
    }
    out.sort();
    out
}

fn unbounded(
    smt: &Smt,
    enc: &Encoding,
    policy: &Policy,
    encs: &[(&Encoding, &Policy)],
    out: &mut Vec<Finding>,
) -> Result<(), AnalyzeError> {
    let all_pass = passes(enc, policy, None);
    for name in ordered_ints(policy) {
        let Some(VarType::Int { min, max }) = policy.variable(&name).map(|v| &v.ty) else {
            continue;
        };
        let extremes = [
            (
                max.is_none(),
                Term::Le(Box::new(Term::Int(EXTREME)), Box::new(enc.value(&name))),
                "max",
                EXTREME,
            ),
            (
                min.is_none(),
                Term::Le(Box::new(enc.value(&name)), Box::new(Term::Int(-EXTREME))),
                "min",
                -EXTREME,
            ),
        ];
        for (missing, extreme, bound, at) in extremes {
            if !missing {
                continue;
            }
            let terms = [enc.presence(&name), extreme, all_pass.clone()];
            if let Some(m) = complete_model(smt, enc, policy, &terms, encs, "unbounded")? {
                out.push(Finding {
                    kind: FindingKind::Unbounded,
                    severity: Severity::Warning,
                    rules: Vec::new(),
                    message: format!(
                        "int `{name}` has no `{bound}` and an action with `{name}` = {at} or beyond passes every rule"
                    ),
                    variable: Some(name.clone()),
                    counterexample: Some(m.action),
                });
            }
        }
    }
    Ok(())
}

/// A model of `terms`, preferring one where every variable is present, so that the action stated
/// in full is decided by the checker exactly as the model is classified.
fn complete_model(
    smt: &Smt,
    enc: &Encoding,
    policy: &Policy,
    terms: &[Term],
    encs: &[(&Encoding, &Policy)],
    query: &str,
) -> Result<Option<ModelAction>, AnalyzeError> {
    let mut all: Vec<Term> = terms.to_vec();
    all.extend(policy.variables.iter().map(|v| enc.presence(&v.name)));
    match smt.model_of(&all, encs, query)? {
        Some(m) => Ok(Some(m)),
        None => smt.model_of(terms, encs, query),
    }
}

fn missing_data(
    smt: &Smt,
    enc: &Encoding,
    policy: &Policy,
    encs: &[(&Encoding, &Policy)],
    out: &mut Vec<Finding>,
) -> Result<(), AnalyzeError> {
    let all_pass = passes(enc, policy, None);
    if smt
        .model_of(std::slice::from_ref(&all_pass), encs, "missing-data")?
        .is_none()
    {
        return Ok(()); // nothing is ever allowed: already a contradiction
    }
    for v in &policy.variables {
        let absent = Term::Not(Box::new(enc.presence(&v.name)));
        if smt
            .model_of(&[absent, all_pass.clone()], encs, "missing-data")?
            .is_some()
        {
            continue;
        }
        let example = complete_model(
            smt,
            enc,
            policy,
            &[enc.presence(&v.name), all_pass.clone()],
            encs,
            "missing-data",
        )?;
        out.push(Finding {
            kind: FindingKind::MissingData,
            severity: Severity::Info,
            rules: Vec::new(),
            message: format!(
                "an action that omits `{}` is never allowed (it escalates or is denied); an allowed action must state it",
                v.name
            ),
            variable: Some(v.name.clone()),
            counterexample: example.map(|m| m.action),
        });
    }
    Ok(())
}

/// `absence-disables-rule`: for a rule whose `when` can hold, and a variable of that `when`
/// that an action may state absent (a token, or declared `optional = true`): if
/// `D ∧ ¬p_v ∧ when_r` is unsatisfiable, sending `"v": null` makes the rule vacuous. That is
/// the pattern by which `null` once turned escalations into allows (issue 13), now possible
/// only where the policy author allowed absence, so it is a warning.
fn absence_disables(
    smt: &Smt,
    enc: &Encoding,
    policy: &Policy,
    encs: &[(&Encoding, &Policy)],
    out: &mut Vec<Finding>,
) -> Result<(), AnalyzeError> {
    for (i, rule) in policy.rules.iter().enumerate() {
        let (Some(when), Some(when_t)) = (&rule.when, enc.when().get(i)) else {
            continue;
        };
        let mut names = std::collections::BTreeSet::new();
        when.collect_vars(&mut names);
        let optional: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| policy.variable(n).is_some_and(|v| v.may_be_absent()))
            .collect();
        if optional.is_empty()
            || smt
                .model_of(std::slice::from_ref(when_t), encs, "absence-disables-rule")?
                .is_none()
        {
            continue;
        }
        for v in optional {
            let absent = Term::Not(Box::new(enc.presence(v)));
            if smt
                .model_of(&[absent, when_t.clone()], encs, "absence-disables-rule")?
                .is_some()
            {
                continue;
            }
            out.push(Finding {
                kind: FindingKind::AbsenceDisablesRule,
                severity: Severity::Warning,
                rules: vec![rule.id.clone()],
                variable: Some(v.to_owned()),
                message: format!(
                    "`{v}` may be stated absent (null), and then the `when` of rule `{}` is false: an action can switch the rule off by sending `\"{v}\": null`",
                    rule.id
                ),
                counterexample: Some(serde_json::json!({ v: null })),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use verdict_core::receipt::Salt;

    #[test]
    fn warns_when_absence_of_an_optional_variable_disables_a_rule() {
        let src = "name = \"t\"\nversion = \"1\"\n[variables]\nkind = { type = \"enum\", values = [\"a\", \"b\"], optional = true }\nk2 = { type = \"enum\", values = [\"a\", \"b\"] }\nn = { type = \"int\", min = 0, max = 9 }\ntok = { type = \"token\" }\n"
            .to_owned()
            + &rule("r0", Some("kind == \"b\""), "n <= 5", "deny")
            + &rule("r1", Some("k2 == \"b\""), "n <= 5", "deny")
            + &rule("r2", Some("not (kind == \"a\")"), "n <= 6", "deny")
            + &rule("r3", Some("present(tok)"), "n <= 7", "escalate");
        let r = report(&src);
        let found: Vec<(String, String)> = r
            .findings
            .iter()
            .filter(|f| f.kind == FindingKind::AbsenceDisablesRule)
            .map(|f| (f.rules.join(","), f.variable.clone().unwrap_or_default()))
            .collect();
        // r0: `kind` absent makes `kind == "b"` false. r1: `k2` is not optional. r2: absence
        // makes `not (kind == "a")` true, not vacuous. r3: a token may always be absent.
        assert_eq!(
            found,
            [
                ("r0".to_owned(), "kind".to_owned()),
                ("r3".to_owned(), "tok".to_owned())
            ]
        );
        assert!(r
            .findings
            .iter()
            .filter(|f| f.kind == FindingKind::AbsenceDisablesRule)
            .all(|f| f.severity == Severity::Warning));
    }

    fn report(src: &str) -> Report {
        let p = crate::compile(src, Salt([0; 32])).unwrap();
        analyze(&p, Duration::from_secs(10)).unwrap()
    }

    const HEAD: &str = "name = \"t\"\nversion = \"1\"\n[variables]\nx = { type = \"int\", min = 0, max = 100 }\nb = { type = \"bool\" }\n";

    fn rule(id: &str, when: Option<&str>, req: &str, effect: &str) -> String {
        let w = when.map(|w| format!("when = '{w}'\n")).unwrap_or_default();
        format!(
            "[[rules]]\nid = \"{id}\"\ntext = \"t\"\n{w}require = '{req}'\neffect = \"{effect}\"\n"
        )
    }

    #[test]
    fn clean_policy_has_only_information() {
        let r = report(&format!(
            "{HEAD}{}",
            rule("a", Some("b == true"), "x <= 50", "deny")
        ));
        assert!(
            r.findings.iter().all(|f| f.severity == Severity::Info),
            "{r:?}"
        );
    }

    #[test]
    fn escalate_only_contradiction_is_reported_as_no_allow() {
        let r = report(&format!(
            "{HEAD}{}{}",
            rule("low", None, "x < 10", "escalate"),
            rule("high", None, "x > 20", "escalate")
        ));
        let c: Vec<_> = r
            .findings
            .iter()
            .filter(|f| f.kind == FindingKind::Contradiction)
            .collect();
        assert_eq!(c.len(), 1);
        assert!(c[0].message.contains("no action can be allowed"));
    }

    #[test]
    fn redundancy_respects_effect_strength() {
        // `esc` (escalate, x <= 50) is violated only when `den` (deny, x <= 10) is: redundant.
        let r = report(&format!(
            "{HEAD}{}{}",
            rule("esc", None, "x <= 50", "escalate"),
            rule("den", None, "x <= 10", "deny")
        ));
        let red: Vec<_> = r
            .findings
            .iter()
            .filter(|f| f.kind == FindingKind::Redundant)
            .collect();
        assert_eq!(red.len(), 1, "{r:?}");
        assert_eq!(red[0].rules, ["esc", "den"]);
        // Swapped effects: the deny rule is implied only by a weaker escalate rule, so removing
        // it would turn denies into escalations: not redundant.
        let r = report(&format!(
            "{HEAD}{}{}",
            rule("esc", None, "x <= 10", "escalate"),
            rule("den", None, "x <= 50", "deny")
        ));
        assert!(
            !r.findings.iter().any(|f| f.kind == FindingKind::Redundant),
            "{r:?}"
        );
    }

    #[test]
    fn identical_rules_are_reported_once() {
        let r = report(&format!(
            "{HEAD}{}{}",
            rule("one", None, "x <= 10", "deny"),
            rule("two", None, "x <= 10", "deny")
        ));
        let red: Vec<_> = r
            .findings
            .iter()
            .filter(|f| f.kind == FindingKind::Redundant)
            .collect();
        assert_eq!(red.len(), 1, "{r:?}");
    }
}
