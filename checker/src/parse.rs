//! Policy parsing: the TOML document (serde + `toml` 0.8, with byte spans) and the expression
//! language (winnow 0.7). Grammar: `spec/policy-language.md` §3.
//!
//! ```text
//! expr    := or ( "=>" expr )?                 (right-assoc, lowest)
//! or      := and ( "or" and )*
//! and     := not ( "and" not )*
//! not     := "not" not | primary
//! primary := "(" expr ")" | "present" "(" ident ")"
//!          | operand ( cmpop operand | "in" ( ident | "[" string ("," string)* "]" ) )?
//! operand := ident | int | string | "true" | "false"
//! ```
//! String literals are `"..."` without escapes. Nesting (parentheses, `not`, `=>` chains) is
//! bounded by [`MAX_DEPTH`], so deep input is an error, never a stack overflow.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;
use winnow::ascii::{digit1, multispace0};
use winnow::combinator::{alt, cut_err, delimited, fail, not, opt, peek, preceded, separated};
use winnow::error::{ContextError, ErrMode, ModalResult, StrContext, StrContextValue};
use winnow::token::{literal, one_of, take_while};
use winnow::Parser;

use crate::ast::{CmpOp, Expr, Operand};
use crate::error::{PolicyError, PolicyErrorKind};

/// Maximum policy text size in bytes (1 MiB).
pub const MAX_POLICY_BYTES: usize = 1 << 20;
/// Maximum number of variables.
pub const MAX_VARIABLES: usize = 1000;
/// Maximum number of rules.
pub const MAX_RULES: usize = 1000;
/// Maximum expression nesting depth.
pub const MAX_DEPTH: usize = 64;

const DEPTH_LABEL: &str = "nesting depth";

/// The policy document as written (before type checking).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    pub name: Spanned<String>,
    pub version: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub lists: BTreeMap<String, Spanned<Vec<String>>>,
    #[serde(default)]
    pub variables: BTreeMap<String, Spanned<RawVariable>>,
    #[serde(default)]
    pub approvers: Vec<Spanned<RawApprover>>,
    #[serde(default)]
    pub rules: Vec<Spanned<RawRule>>,
}

/// One `[variables]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVariable {
    #[serde(rename = "type")]
    pub ty: String,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub values: Option<Vec<String>>,
    pub list: Option<String>,
    /// `optional = true`: an action may state the variable absent with `null`.
    #[serde(default)]
    pub optional: bool,
}

/// One `[[approvers]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApprover {
    pub name: Spanned<String>,
    pub key: Spanned<String>,
}

/// One `[[rules]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub id: Spanned<String>,
    pub text: String,
    pub when: Option<Spanned<String>>,
    pub require: Spanned<String>,
    pub effect: Spanned<String>,
}

/// Parse the TOML document, enforcing the size bound first.
pub(crate) fn parse_toml(source: &str) -> Result<RawPolicy, PolicyError> {
    if source.len() > MAX_POLICY_BYTES {
        return Err(PolicyError::at(
            PolicyErrorKind::TooLarge {
                len: source.len(),
                limit: MAX_POLICY_BYTES,
            },
            source,
            0,
        ));
    }
    toml::from_str::<RawPolicy>(source).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        let message = e
            .message()
            .lines()
            .next()
            .unwrap_or("invalid toml")
            .to_owned();
        PolicyError::at(PolicyErrorKind::Toml { message }, source, offset)
    })
}

/// Byte offset in `source` where the content of the string value spanned by `span` starts.
/// Exact for literal strings (`'...'`, `'''...'''`) and for basic strings without escapes.
pub(crate) fn content_offset(source: &str, span: &std::ops::Range<usize>) -> usize {
    let raw = source.get(span.clone()).unwrap_or("");
    let mut off = span.start;
    if raw.starts_with("'''") || raw.starts_with("\"\"\"") {
        off += 3;
        // TOML trims a newline directly after the opening delimiter.
        let after = raw.get(3..).unwrap_or("");
        if after.starts_with("\r\n") {
            off += 2;
        } else if after.starts_with('\n') {
            off += 1;
        }
    } else if raw.starts_with('\'') || raw.starts_with('"') {
        off += 1;
    }
    off
}

/// Parse an expression held in a spanned TOML string; errors are located in `source`.
pub(crate) fn parse_spanned_expr(
    source: &str,
    text: &Spanned<String>,
) -> Result<Expr, PolicyError> {
    let base = content_offset(source, &text.span());
    parse_expr(text.get_ref()).map_err(|(off, kind)| PolicyError::at(kind, source, base + off))
}

/// Parse one expression (untyped). On error returns the byte offset in `text` and the kind.
pub fn parse_expr(text: &str) -> Result<Expr, (usize, PolicyErrorKind)> {
    let mut parser = delimited(ws, |i: &mut &str| implies(i, 0), ws);
    parser.parse(text).map_err(|e| {
        let offset = e.offset();
        let inner: &ContextError = e.inner();
        let mut label = None;
        let mut expected = Vec::new();
        for c in inner.context() {
            match c {
                StrContext::Label(l) => label = label.or(Some(*l)),
                StrContext::Expected(v) => expected.push(v.to_string()),
                _ => {}
            }
        }
        let kind = if label == Some(DEPTH_LABEL) {
            PolicyErrorKind::TooDeep { limit: MAX_DEPTH }
        } else if let Some(l) = label {
            PolicyErrorKind::Syntax {
                expected: format!("invalid {l}"),
            }
        } else if !expected.is_empty() {
            PolicyErrorKind::Syntax {
                expected: format!("expected {}", expected.join(" or ")),
            }
        } else if offset >= text.len() {
            PolicyErrorKind::Syntax {
                expected: "unexpected end of expression".to_owned(),
            }
        } else {
            PolicyErrorKind::Syntax {
                expected: "unexpected input".to_owned(),
            }
        };
        (offset, kind)
    })
}

fn ws(i: &mut &str) -> ModalResult<()> {
    multispace0.void().parse_next(i)
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Words that cannot be variable names.
pub const KEYWORDS: &[&str] = &["and", "or", "not", "in", "present", "true", "false"];

fn keyword<'i>(kw: &'static str) -> impl Parser<&'i str, (), ErrMode<ContextError>> {
    (literal(kw), not(one_of(is_ident_char))).void()
}

fn ident<'i>(i: &mut &'i str) -> ModalResult<&'i str> {
    (
        one_of(|c: char| c.is_ascii_alphabetic() || c == '_'),
        take_while(0.., is_ident_char),
    )
        .take()
        .verify(|s: &str| !KEYWORDS.contains(&s))
        .context(StrContext::Expected(StrContextValue::Description(
            "identifier",
        )))
        .parse_next(i)
}

fn string_lit(i: &mut &str) -> ModalResult<String> {
    preceded(
        '"',
        cut_err((
            take_while(0.., |c: char| c != '"' && c != '\\' && c != '\n'),
            '"'.context(StrContext::Expected(StrContextValue::Description(
                "closing quote",
            ))),
        )),
    )
    .map(|(s, _): (&str, char)| s.to_owned())
    .parse_next(i)
}

fn int_lit(i: &mut &str) -> ModalResult<i64> {
    // Once it looks like an integer, commit: an out-of-range literal is reported at its start.
    preceded(
        peek((opt('-'), digit1)),
        cut_err(
            (opt('-'), digit1)
                .take()
                .try_map(str::parse::<i64>)
                .context(StrContext::Label("integer (out of i64 range)")),
        ),
    )
    .parse_next(i)
}

fn operand(i: &mut &str) -> ModalResult<Operand> {
    alt((
        keyword("true").value(Operand::Bool(true)),
        keyword("false").value(Operand::Bool(false)),
        int_lit.map(Operand::Int),
        string_lit.map(Operand::Str),
        ident.map(|s| Operand::Var(s.to_owned())),
    ))
    .context(StrContext::Expected(StrContextValue::Description(
        "operand",
    )))
    .parse_next(i)
}

fn cmp_op(i: &mut &str) -> ModalResult<CmpOp> {
    alt((
        "==".value(CmpOp::Eq),
        "!=".value(CmpOp::Ne),
        "<=".value(CmpOp::Le),
        ">=".value(CmpOp::Ge),
        "<".value(CmpOp::Lt),
        ">".value(CmpOp::Gt),
    ))
    .parse_next(i)
}

fn too_deep(i: &mut &str) -> ModalResult<Expr> {
    cut_err(fail.context(StrContext::Label(DEPTH_LABEL))).parse_next(i)
}

fn implies(i: &mut &str, depth: usize) -> ModalResult<Expr> {
    if depth > MAX_DEPTH {
        return too_deep(i);
    }
    let lhs = or_expr(i, depth)?;
    ws(i)?;
    if opt("=>").parse_next(i)?.is_some() {
        ws(i)?;
        let rhs = cut_err(|i: &mut &str| implies(i, depth + 1)).parse_next(i)?;
        Ok(Expr::Implies(Box::new(lhs), Box::new(rhs)))
    } else {
        Ok(lhs)
    }
}

fn or_expr(i: &mut &str, depth: usize) -> ModalResult<Expr> {
    let first = and_expr(i, depth)?;
    let mut items = vec![first];
    loop {
        ws(i)?;
        if opt(keyword("or")).parse_next(i)?.is_none() {
            break;
        }
        ws(i)?;
        items.push(cut_err(|i: &mut &str| and_expr(i, depth)).parse_next(i)?);
    }
    Ok(if items.len() == 1 {
        items.pop().unwrap_or(Expr::Const(false))
    } else {
        Expr::Or(items)
    })
}

fn and_expr(i: &mut &str, depth: usize) -> ModalResult<Expr> {
    let first = not_expr(i, depth)?;
    let mut items = vec![first];
    loop {
        ws(i)?;
        if opt(keyword("and")).parse_next(i)?.is_none() {
            break;
        }
        ws(i)?;
        items.push(cut_err(|i: &mut &str| not_expr(i, depth)).parse_next(i)?);
    }
    Ok(if items.len() == 1 {
        items.pop().unwrap_or(Expr::Const(true))
    } else {
        Expr::And(items)
    })
}

fn not_expr(i: &mut &str, depth: usize) -> ModalResult<Expr> {
    if depth > MAX_DEPTH {
        return too_deep(i);
    }
    ws(i)?;
    if opt(keyword("not")).parse_next(i)?.is_some() {
        ws(i)?;
        let e = cut_err(|i: &mut &str| not_expr(i, depth + 1)).parse_next(i)?;
        return Ok(Expr::Not(Box::new(e)));
    }
    primary(i, depth)
}

fn primary(i: &mut &str, depth: usize) -> ModalResult<Expr> {
    ws(i)?;
    if opt('(').parse_next(i)?.is_some() {
        ws(i)?;
        let e = cut_err(|i: &mut &str| implies(i, depth + 1)).parse_next(i)?;
        ws(i)?;
        cut_err(')'.context(StrContext::Expected(StrContextValue::CharLiteral(')'))))
            .parse_next(i)?;
        return Ok(e);
    }
    if opt(keyword("present")).parse_next(i)?.is_some() {
        let name = cut_err(delimited(
            (ws, '(', ws).context(StrContext::Expected(StrContextValue::CharLiteral('('))),
            ident,
            (ws, ')').context(StrContext::Expected(StrContextValue::CharLiteral(')'))),
        ))
        .parse_next(i)?;
        return Ok(Expr::Present(name.to_owned()));
    }
    let lhs = operand(i)?;
    ws(i)?;
    if let Some(op) = opt(cmp_op).parse_next(i)? {
        ws(i)?;
        let rhs = cut_err(operand).parse_next(i)?;
        return Ok(Expr::Cmp { op, lhs, rhs });
    }
    if opt(keyword("in")).parse_next(i)?.is_some() {
        ws(i)?;
        let Operand::Var(var) = lhs else {
            let mut e = ContextError::new();
            e.push(StrContext::Label("`in`: left side must be a variable"));
            return Err(ErrMode::Cut(e));
        };
        let set = cut_err(
            alt((
                delimited(
                    ('[', ws),
                    separated(1.., string_lit, (ws, ',', ws)),
                    (ws, opt((',', ws)), ']'),
                )
                .map(|values: Vec<String>| Expr::InSet {
                    var: var.clone(),
                    values,
                }),
                ident.map(|list| Expr::InList {
                    var: var.clone(),
                    list: list.to_owned(),
                }),
            ))
            .context(StrContext::Expected(StrContextValue::Description(
                "list name or [\"literal\", ...]",
            ))),
        )
        .parse_next(i)?;
        return Ok(set);
    }
    match lhs {
        Operand::Var(v) => Ok(Expr::Var(v)),
        Operand::Bool(b) => Ok(Expr::Const(b)),
        Operand::Int(_) | Operand::Str(_) => {
            let mut e = ContextError::new();
            e.push(StrContext::Expected(StrContextValue::Description(
                "comparison operator",
            )));
            Err(ErrMode::Cut(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Expr {
        parse_expr(s).unwrap()
    }

    #[test]
    fn precedence() {
        let e = p("a or b and not c => d");
        let Expr::Implies(l, r) = e else { panic!() };
        assert_eq!(*r, Expr::Var("d".into()));
        let Expr::Or(items) = *l else { panic!() };
        assert_eq!(items.len(), 2);
        assert!(matches!(&items[1], Expr::And(v) if matches!(v[1], Expr::Not(_))));
    }

    #[test]
    fn implies_right_assoc() {
        let e = p("a => b => c");
        let Expr::Implies(_, r) = e else { panic!() };
        assert!(matches!(*r, Expr::Implies(_, _)));
    }

    #[test]
    fn comparisons_and_sets() {
        assert_eq!(
            p("x <= -5"),
            Expr::Cmp {
                op: CmpOp::Le,
                lhs: Operand::Var("x".into()),
                rhs: Operand::Int(-5)
            }
        );
        assert_eq!(
            p(r#"d in ["a", "b",]"#),
            Expr::InSet {
                var: "d".into(),
                values: vec!["a".into(), "b".into()]
            }
        );
        assert_eq!(
            p("v in vendors"),
            Expr::InList {
                var: "v".into(),
                list: "vendors".into()
            }
        );
        assert_eq!(p("present( tok )"), Expr::Present("tok".into()));
        assert_eq!(p("(true)"), Expr::Const(true));
        assert!(matches!(p("android and order"), Expr::And(_)));
    }

    #[test]
    fn errors_are_located() {
        let (off, k) = parse_expr("a and").unwrap_err();
        assert_eq!(off, 5);
        assert!(matches!(k, PolicyErrorKind::Syntax { .. }));
        let (off, _) = parse_expr("x == ").unwrap_err();
        assert_eq!(off, 5);
        let (off, _) = parse_expr("(a and b").unwrap_err();
        assert_eq!(off, 8);
        assert!(parse_expr("").is_err());
        assert!(parse_expr("5").is_err());
        assert!(parse_expr("x == \"abc").is_err());
        let (off, k) = parse_expr("x == 99999999999999999999").unwrap_err();
        assert_eq!(off, 5);
        assert_eq!(
            k,
            PolicyErrorKind::Syntax {
                expected: "invalid integer (out of i64 range)".into()
            }
        );
        assert!(parse_expr("a b").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_overflow() {
        let deep = format!("{}a{}", "(".repeat(100_000), ")".repeat(100_000));
        let (_, k) = parse_expr(&deep).unwrap_err();
        assert_eq!(k, PolicyErrorKind::TooDeep { limit: MAX_DEPTH });
        let nots = format!("{}a", "not ".repeat(10_000));
        assert!(matches!(
            parse_expr(&nots).unwrap_err().1,
            PolicyErrorKind::TooDeep { .. }
        ));
        let imps = format!("{}a", "a => ".repeat(10_000));
        assert!(parse_expr(&imps).is_err());
        let ok = format!("{}a{}", "(".repeat(60), ")".repeat(60));
        assert!(parse_expr(&ok).is_ok());
        // Long flat chains stay flat.
        let chain = vec!["a"; 20_000].join(" and ");
        assert!(matches!(p(&chain), Expr::And(v) if v.len() == 20_000));
    }

    #[test]
    fn toml_offsets() {
        let src = "a = '''\nxyz'''\nb = \"q\"\n";
        let v: BTreeMap<String, Spanned<String>> = toml::from_str(src).unwrap();
        let a = &v["a"];
        assert_eq!(&src[content_offset(src, &a.span())..][..3], "xyz");
        let b = &v["b"];
        assert_eq!(&src[content_offset(src, &b.span())..][..1], "q");
    }
}
