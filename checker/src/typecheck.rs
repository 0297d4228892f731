//! Type checking: [`RawPolicy`] → [`Policy`] (`spec/policy-language.md` §4).
//!
//! Every error is located in the policy file. Expression type errors point at the first whole-word
//! occurrence of the offending name inside the expression, else at the expression's start.

use std::collections::{BTreeMap, BTreeSet};

use toml::Spanned;
use verdict_core::note::Verifier;

use crate::ast::{
    Approver, CmpOp, Effect, Expr, Operand, Policy, Rule, VarType, Variable, APPROVALS,
};
use crate::error::{PolicyError, PolicyErrorKind};
use crate::parse::{
    content_offset, parse_spanned_expr, RawPolicy, RawVariable, KEYWORDS, MAX_RULES, MAX_VARIABLES,
};

/// Maximum number of named lists and of items per list.
pub const MAX_LIST_ITEMS: usize = 10_000;
/// Maximum number of registered approvers.
pub const MAX_APPROVERS: usize = 256;
/// Maximum bytes of a string literal, list item or enum value.
pub const MAX_LITERAL_BYTES: usize = 256;

/// Check the raw document and build the typed policy.
pub(crate) fn check_policy(source: &str, raw: RawPolicy) -> Result<Policy, PolicyError> {
    let err = |kind, span: std::ops::Range<usize>| PolicyError::at(kind, source, span.start);
    let invalid = |field: &'static str, reason: &str, span: std::ops::Range<usize>| {
        err(
            PolicyErrorKind::InvalidField {
                field,
                reason: reason.to_owned(),
            },
            span,
        )
    };

    let name = raw.name.get_ref();
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(invalid(
            "name",
            "must match [a-z0-9-]{1,64}",
            raw.name.span(),
        ));
    }
    let version = raw.version.get_ref();
    if version.is_empty() || version.len() > 64 || version.chars().any(char::is_control) {
        return Err(invalid(
            "version",
            "must be 1 to 64 bytes without control characters",
            raw.version.span(),
        ));
    }

    let mut lists = BTreeMap::new();
    if raw.lists.len() > MAX_LIST_ITEMS {
        return Err(err(
            PolicyErrorKind::TooMany {
                what: "lists",
                limit: MAX_LIST_ITEMS,
            },
            0..0,
        ));
    }
    for (lname, items) in &raw.lists {
        if !is_identifier(lname) {
            return Err(invalid("list name", "must be an identifier", items.span()));
        }
        if items.get_ref().len() > MAX_LIST_ITEMS {
            return Err(err(
                PolicyErrorKind::TooMany {
                    what: "list items",
                    limit: MAX_LIST_ITEMS,
                },
                items.span(),
            ));
        }
        if items.get_ref().iter().any(|s| s.len() > MAX_LITERAL_BYTES) {
            return Err(invalid("list item", "longer than 256 bytes", items.span()));
        }
        let set: BTreeSet<String> = items.get_ref().iter().cloned().collect();
        lists.insert(lname.clone(), set.into_iter().collect::<Vec<_>>());
    }

    if raw.variables.len() > MAX_VARIABLES {
        return Err(err(
            PolicyErrorKind::TooMany {
                what: "variables",
                limit: MAX_VARIABLES,
            },
            0..0,
        ));
    }
    let mut variables = Vec::with_capacity(raw.variables.len());
    for (vname, spanned) in &raw.variables {
        let span = spanned.span();
        if !is_identifier(vname) || vname == APPROVALS {
            return Err(invalid(
                "variable name",
                &format!("`{vname}` is not an identifier, is a keyword or is reserved"),
                span,
            ));
        }
        let ty =
            var_type(spanned.get_ref(), &lists).map_err(|r| invalid("variable type", &r, span))?;
        variables.push(Variable {
            name: vname.clone(),
            ty,
            optional: spanned.get_ref().optional,
        });
    }

    if raw.approvers.len() > MAX_APPROVERS {
        return Err(err(
            PolicyErrorKind::TooMany {
                what: "approvers",
                limit: MAX_APPROVERS,
            },
            0..0,
        ));
    }
    // spec/policy-language.md §2: each key parses, its name is the approver's name, and names
    // and key ids identify one approver each (an approval names its approver by either).
    let mut approvers = Vec::new();
    let mut key_ids = BTreeSet::new();
    let mut names = BTreeSet::new();
    let mut name_spans = Vec::new();
    let mut key_ids_in_order = Vec::new();
    for a in &raw.approvers {
        let a_ref = a.get_ref();
        let name = a_ref.name.get_ref();
        let kspan = a_ref.key.span();
        let name_at = content_offset(source, &a_ref.name.span());
        let v = Verifier::parse(a_ref.key.get_ref()).map_err(|e| {
            PolicyError::at(
                PolicyErrorKind::ApproverKey {
                    name: name.clone(),
                    reason: e.to_string(),
                },
                source,
                content_offset(source, &kspan),
            )
        })?;
        if v.name() != name {
            return Err(PolicyError::at(
                PolicyErrorKind::ApproverNameMismatch {
                    name: name.clone(),
                    key_name: v.name().to_owned(),
                },
                source,
                name_at,
            ));
        }
        if !key_ids.insert(v.key_id()) {
            return Err(err(
                PolicyErrorKind::DuplicateApprover { name: name.clone() },
                kspan,
            ));
        }
        if !names.insert(name.clone()) {
            return Err(PolicyError::at(
                PolicyErrorKind::DuplicateApproverName { name: name.clone() },
                source,
                name_at,
            ));
        }
        name_spans.push((name, name_at));
        key_ids_in_order.push(v.key_id());
        approvers.push(Approver {
            name: name.clone(),
            key: a_ref.key.get_ref().clone(),
        });
    }
    for (name, at) in &name_spans {
        let owner = key_ids.iter().find(|id| id.to_string() == **name);
        let own = approvers
            .iter()
            .position(|x| x.name == **name)
            .and_then(|i| key_ids_in_order.get(i));
        if owner.is_some() && owner != own {
            return Err(PolicyError::at(
                PolicyErrorKind::AmbiguousApproverName {
                    name: (*name).clone(),
                },
                source,
                *at,
            ));
        }
    }

    let mut policy = Policy {
        name: name.clone(),
        version: version.clone(),
        description: raw.description.clone(),
        lists,
        variables,
        approvers,
        rules: Vec::new(),
    };

    if raw.rules.len() > MAX_RULES {
        return Err(err(
            PolicyErrorKind::TooMany {
                what: "rules",
                limit: MAX_RULES,
            },
            0..0,
        ));
    }
    let mut ids = BTreeSet::new();
    for r in &raw.rules {
        let r = r.get_ref();
        let id = r.id.get_ref();
        if id.is_empty()
            || id.len() > 64
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(invalid(
                "rule id",
                "must match [a-z0-9_-]{1,64}",
                r.id.span(),
            ));
        }
        if !ids.insert(id.clone()) {
            return Err(err(
                PolicyErrorKind::DuplicateRule { id: id.clone() },
                r.id.span(),
            ));
        }
        let effect = match r.effect.get_ref().as_str() {
            "deny" => Effect::Deny,
            "escalate" => Effect::Escalate,
            _ => {
                return Err(invalid(
                    "effect",
                    "must be \"deny\" or \"escalate\"",
                    r.effect.span(),
                ))
            }
        };
        let when = match &r.when {
            Some(w) => Some(typed_expr(source, w, &policy)?),
            None => None,
        };
        let require = typed_expr(source, &r.require, &policy)?;
        policy.rules.push(Rule {
            id: id.clone(),
            text: r.text.clone(),
            when,
            require,
            effect,
        });
    }
    Ok(policy)
}

/// Is `s` a valid variable or list identifier (not a keyword)?
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok
        && s.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.contains(&s)
}

fn var_type(raw: &RawVariable, lists: &BTreeMap<String, Vec<String>>) -> Result<VarType, String> {
    let only = |allowed: &[&str]| -> Result<(), String> {
        let present = [
            ("min", raw.min.is_some()),
            ("max", raw.max.is_some()),
            ("values", raw.values.is_some()),
            ("list", raw.list.is_some()),
        ];
        match present.iter().find(|(k, set)| *set && !allowed.contains(k)) {
            Some((k, _)) => Err(format!("field `{k}` is not allowed for type {}", raw.ty)),
            None => Ok(()),
        }
    };
    match raw.ty.as_str() {
        "bool" => only(&[]).map(|()| VarType::Bool),
        "token" => only(&[]).map(|()| VarType::Token),
        "int" => {
            only(&["min", "max"])?;
            if let (Some(a), Some(b)) = (raw.min, raw.max) {
                if a > b {
                    return Err("min is greater than max".to_owned());
                }
            }
            Ok(VarType::Int {
                min: raw.min,
                max: raw.max,
            })
        }
        "enum" => {
            only(&["values"])?;
            let values = raw.values.clone().unwrap_or_default();
            if values.is_empty() {
                return Err("enum needs a non-empty `values` list".to_owned());
            }
            if values.len() > MAX_LIST_ITEMS || values.iter().any(|v| v.len() > MAX_LITERAL_BYTES) {
                return Err("enum values too many or too long".to_owned());
            }
            let distinct: BTreeSet<&String> = values.iter().collect();
            if distinct.len() != values.len() {
                return Err("enum values must be distinct".to_owned());
            }
            Ok(VarType::Enum { values })
        }
        "string" => {
            only(&["list"])?;
            if let Some(l) = &raw.list {
                if !lists.contains_key(l) {
                    return Err(format!("unknown list `{l}`"));
                }
            }
            Ok(VarType::String {
                list: raw.list.clone(),
            })
        }
        other => Err(format!(
            "unknown type `{other}` (expected bool, int, enum, string or token)"
        )),
    }
}

/// A type error plus the name to point at.
struct TypeErr {
    kind: PolicyErrorKind,
    near: Option<String>,
}

fn typed_expr(source: &str, text: &Spanned<String>, policy: &Policy) -> Result<Expr, PolicyError> {
    let expr = parse_spanned_expr(source, text)?;
    check_expr(&expr, policy).map_err(|te| {
        let base = content_offset(source, &text.span());
        let off = te
            .near
            .as_deref()
            .and_then(|n| find_word(text.get_ref(), n))
            .unwrap_or(0);
        PolicyError::at(te.kind, source, base + off)
    })?;
    Ok(expr)
}

fn find_word(hay: &str, word: &str) -> Option<usize> {
    hay.match_indices(word).map(|(i, _)| i).find(|&i| {
        let before = hay.get(..i).and_then(|s| s.chars().next_back());
        let after = hay.get(i + word.len()..).and_then(|s| s.chars().next());
        let boundary = |c: Option<char>| !c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        boundary(before) && boundary(after)
    })
}

/// Type of an operand for comparison purposes.
#[derive(Clone, Debug, PartialEq)]
enum OpTy<'a> {
    Int,
    Bool,
    Enum(&'a [String]),
    Str,
    StrLit(&'a str),
}

fn type_err(reason: String, near: Option<&str>) -> TypeErr {
    TypeErr {
        kind: PolicyErrorKind::Type { reason },
        near: near.map(str::to_owned),
    }
}

fn lookup<'p>(policy: &'p Policy, name: &str) -> Result<Option<&'p VarType>, TypeErr> {
    if name == APPROVALS {
        return Ok(None);
    }
    policy
        .variable(name)
        .map(|v| Some(&v.ty))
        .ok_or_else(|| TypeErr {
            kind: PolicyErrorKind::UnknownVariable {
                name: name.to_owned(),
            },
            near: Some(name.to_owned()),
        })
}

fn operand_ty<'a>(o: &'a Operand, policy: &'a Policy) -> Result<OpTy<'a>, TypeErr> {
    Ok(match o {
        Operand::Int(_) => OpTy::Int,
        Operand::Bool(_) => OpTy::Bool,
        Operand::Str(s) => OpTy::StrLit(s),
        Operand::Var(v) => match lookup(policy, v)? {
            None | Some(VarType::Int { .. }) => OpTy::Int,
            Some(VarType::Bool) => OpTy::Bool,
            Some(VarType::Enum { values }) => OpTy::Enum(values),
            Some(VarType::String { .. }) => OpTy::Str,
            Some(VarType::Token) => {
                return Err(type_err(
                    format!("token `{v}` can only be used in present()"),
                    Some(v),
                ))
            }
        },
    })
}

fn check_expr(e: &Expr, policy: &Policy) -> Result<(), TypeErr> {
    match e {
        Expr::Const(_) => Ok(()),
        Expr::Var(v) => match lookup(policy, v)? {
            Some(VarType::Bool) => Ok(()),
            Some(t) => Err(type_err(
                format!(
                    "`{v}` is {} and cannot be used as a condition",
                    t.kind_name()
                ),
                Some(v),
            )),
            None => Err(type_err(
                format!("`{v}` is int and cannot be used as a condition"),
                Some(v),
            )),
        },
        Expr::Present(v) => lookup(policy, v).map(|_| ()),
        Expr::Not(x) => check_expr(x, policy),
        Expr::And(xs) | Expr::Or(xs) => xs.iter().try_for_each(|x| check_expr(x, policy)),
        Expr::Implies(a, b) => {
            check_expr(a, policy)?;
            check_expr(b, policy)
        }
        Expr::InList { var, list } => {
            match lookup(policy, var)? {
                Some(VarType::String { .. }) => {}
                _ => {
                    return Err(type_err(
                        format!("`{var} in {list}` needs a string variable"),
                        Some(var),
                    ))
                }
            }
            if policy.lists.contains_key(list) {
                Ok(())
            } else {
                Err(TypeErr {
                    kind: PolicyErrorKind::UnknownList { name: list.clone() },
                    near: Some(list.clone()),
                })
            }
        }
        Expr::InSet { var, values } => match lookup(policy, var)? {
            Some(VarType::String { .. }) => check_literals(values, var),
            Some(VarType::Enum { values: allowed }) => {
                check_literals(values, var)?;
                match values.iter().find(|v| !allowed.contains(v)) {
                    Some(bad) => Err(not_in_enum(var, bad)),
                    None => Ok(()),
                }
            }
            _ => Err(type_err(
                format!("`{var} in [...]` needs a string or enum variable"),
                Some(var),
            )),
        },
        Expr::Cmp { op, lhs, rhs } => check_cmp(*op, lhs, rhs, policy),
    }
}

fn check_literals(values: &[String], var: &str) -> Result<(), TypeErr> {
    if values.iter().any(|v| v.len() > MAX_LITERAL_BYTES) {
        return Err(type_err(
            "string literal longer than 256 bytes".to_owned(),
            Some(var),
        ));
    }
    Ok(())
}

fn not_in_enum(var: &str, value: &str) -> TypeErr {
    TypeErr {
        kind: PolicyErrorKind::NotInEnum {
            var: var.to_owned(),
            value: value.to_owned(),
        },
        near: Some(value.to_owned()),
    }
}

fn check_cmp(op: CmpOp, lhs: &Operand, rhs: &Operand, policy: &Policy) -> Result<(), TypeErr> {
    let var_name = |o: &Operand| match o {
        Operand::Var(v) => Some(v.clone()),
        _ => None,
    };
    let near = var_name(lhs).or_else(|| var_name(rhs));
    if near.is_none() {
        return Err(type_err("comparison between two literals".to_owned(), None));
    }
    let lt = operand_ty(lhs, policy)?;
    let rt = operand_ty(rhs, policy)?;
    let ordering = !matches!(op, CmpOp::Eq | CmpOp::Ne);
    let name = |t: &OpTy<'_>| match t {
        OpTy::Int => "int",
        OpTy::Bool => "bool",
        OpTy::Enum(_) => "enum",
        OpTy::Str => "string",
        OpTy::StrLit(_) => "string literal",
    };
    let ok = match (&lt, &rt) {
        (OpTy::Int, OpTy::Int) => true,
        _ if ordering => {
            return Err(type_err(
                format!("`{}` needs int operands", op.symbol()),
                near.as_deref(),
            ))
        }
        (OpTy::Bool, OpTy::Bool) => true,
        (OpTy::Enum(a), OpTy::Enum(b)) => a == b,
        (OpTy::Enum(values), OpTy::StrLit(s)) | (OpTy::StrLit(s), OpTy::Enum(values)) => {
            if s.len() > MAX_LITERAL_BYTES || !values.iter().any(|v| v == s) {
                let var = near.clone().unwrap_or_default();
                return Err(not_in_enum(&var, s));
            }
            true
        }
        (OpTy::Str, OpTy::Str) => true,
        (OpTy::Str, OpTy::StrLit(s)) | (OpTy::StrLit(s), OpTy::Str) => s.len() <= MAX_LITERAL_BYTES,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(type_err(
            format!("cannot compare {} with {}", name(&lt), name(&rt)),
            near.as_deref(),
        ))
    }
}

#[cfg(test)]
#[path = "typecheck_tests.rs"]
mod tests;
