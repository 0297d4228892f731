//! Checks run by the fuzz targets of `verdict-checker`'s parsers (`policy`, `expr`, `action`):
//! no input panics, bad input gets a typed error ([`PolicyError`], [`CheckError`]) that renders,
//! and the round trips below hold.
//!
//! - `policy`: a whole policy document (`spec/policy-language.md` §2–§6): parse, type check and
//!   compile. Compiling is deterministic (same canonical bytes, commitment, rule tree and rule
//!   proofs, or the same located error); a compiled policy printed back to TOML by
//!   [`print_policy`] compiles to identical canonical bytes and commitment.
//! - `expr`: one `when`/`require` expression (`spec/policy-language.md` §3): [`parse_expr`] alone
//!   (errors located inside the text; an accepted tree printed by [`print_expr`] parses back to
//!   the same tree), then the same text as a rule's `require` and as its `when` in a fixed policy,
//!   where compile must agree with [`parse_expr`].
//! - `action`: action JSON (`spec/decision-semantics.md` §2) bound against every example policy
//!   of `testdata/policies/`: `from_json_bytes` agrees with `from_value` and with screening, the
//!   canonical action re-parsed gives the same canonical bytes, and the size bound holds
//!   (trailing whitespace up to [`MAX_ACTION_BYTES`] changes nothing, one byte more is
//!   [`CheckError::TooLarge`]).
//!
//! This file is the crate's `checker` module, and is compiled into the stable test
//! `tests/tests/fuzz_corpus.rs`, which runs every seed (`fuzz/corpus/<target>/`) and every
//! regression (`fuzz/regressions/<target>/`) through the same checks. It depends on nothing but
//! `verdict_checker`, `verdict_core`, `serde_json` and `std`.

use std::fmt::Write as _;
use std::sync::OnceLock;

use serde_json::Value;
use verdict_checker::action::{Action, MAX_ACTION_BYTES};
use verdict_checker::ast::{Effect, Expr, Operand, Policy, VarType};
use verdict_checker::compile::CANONICAL_FORMAT;
use verdict_checker::encode::Encoding;
use verdict_checker::parse::parse_expr;
use verdict_checker::{compile, screen, CheckError, CompiledPolicy, PolicyError, PolicyErrorKind};
use verdict_core::receipt::{commit, CommitmentTag, Salt};

/// The salt every fuzzed policy is compiled with.
const SALT: Salt = Salt([0x5a; 32]);
/// A second salt: commitments change with it, canonical bytes do not.
const OTHER_SALT: Salt = Salt([0xa5; 32]);

/// The example policies of `testdata/policies/`, by file name.
pub const EXAMPLE_POLICIES: [(&str, &str); 5] = [
    (
        "approved-vendors",
        include_str!("../../testdata/policies/approved-vendors.toml"),
    ),
    (
        "customer-data-egress",
        include_str!("../../testdata/policies/customer-data-egress.toml"),
    ),
    (
        "eu-ai-act-human-review",
        include_str!("../../testdata/policies/eu-ai-act-human-review.toml"),
    ),
    (
        "hipaa-phi",
        include_str!("../../testdata/policies/hipaa-phi.toml"),
    ),
    (
        "payments-dual-approval",
        include_str!("../../testdata/policies/payments-dual-approval.toml"),
    ),
];

/// The example policies, compiled once.
pub fn examples() -> &'static [CompiledPolicy] {
    static POLICIES: OnceLock<Vec<CompiledPolicy>> = OnceLock::new();
    POLICIES.get_or_init(|| {
        EXAMPLE_POLICIES
            .iter()
            .map(|(name, text)| {
                compile(text, SALT).unwrap_or_else(|e| unreachable!("example policy {name}: {e}"))
            })
            .collect()
    })
}

/// Head of the policy that the `expr` target puts its input into: one variable of every type
/// and two lists, so that well-typed expressions compile.
pub const EXPR_TEMPLATE: &str = r#"name = "fuzz-expr"
version = "1"
[lists]
vendors = ["acme", "globex", "initech"]
regions = ["eu", "us"]
[variables]
b = { type = "bool" }
c = { type = "bool" }
n = { type = "int", min = -10, max = 10 }
m = { type = "int" }
e = { type = "enum", values = ["low", "mid", "high"] }
f = { type = "enum", values = ["low", "other"] }
s = { type = "string", list = "vendors" }
u = { type = "string" }
t = { type = "token" }
[[rules]]
id = "fuzzed"
text = "the fuzzed expression"
effect = "deny"
"#;

/// Whole policy documents.
pub fn policy(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let first = compile(source, SALT);
    let second = compile(source, SALT);
    match (&first, &second) {
        (Ok(a), Ok(b)) => assert_same_compiled(a, b),
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "compile errors differ between two runs");
            check_policy_error(source, a);
        }
        _ => panic!("compile is not deterministic: {first:?} vs {second:?}"),
    }
    if let Ok(compiled) = &first {
        check_compiled(compiled);
    }
}

/// One `when`/`require` expression, alone and inside [`EXPR_TEMPLATE`].
pub fn expr(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse_expr(text);
    match &parsed {
        Ok(tree) => {
            let printed = print_expr(tree);
            assert_eq!(
                parse_expr(&printed).as_ref(),
                Ok(tree),
                "printed expression {printed:?} does not parse back to the same tree"
            );
        }
        Err((offset, kind)) => {
            assert!(
                *offset <= text.len() && text.is_char_boundary(*offset),
                "error offset {offset} is not a character boundary of the text"
            );
            assert!(
                matches!(
                    kind,
                    PolicyErrorKind::Syntax { .. } | PolicyErrorKind::TooDeep { .. }
                ),
                "parse_expr returned a non-syntax error: {kind:?}"
            );
            assert!(!kind.to_string().is_empty());
        }
    }
    for slot in ["require", "when"] {
        let mut source = EXPR_TEMPLATE.to_owned();
        let (when, require) = if slot == "when" {
            (text, "true")
        } else {
            ("true", text)
        };
        let _ = writeln!(source, "when = {}", toml_string(when));
        let _ = writeln!(source, "require = {}", toml_string(require));
        let compiled = compile(&source, SALT);
        match (&parsed, &compiled) {
            (Err((_, kind)), Err(e)) => {
                assert_eq!(e.kind(), kind, "compile and parse_expr disagree ({slot})");
                check_policy_error(&source, e);
            }
            (Err(_), Ok(_)) => panic!("compile accepted a {slot} that parse_expr rejects"),
            (Ok(tree), Ok(p)) => {
                let rule = p.ast().rules.first();
                let got = rule.and_then(|r| {
                    if slot == "when" {
                        r.when.as_ref()
                    } else {
                        Some(&r.require)
                    }
                });
                assert_eq!(
                    got,
                    Some(tree),
                    "compiled {slot} differs from parse_expr's tree"
                );
                // The whole-policy properties are the `policy` target's; here only the encoder.
                // A type-checked policy never encodes to an ill-sorted term.
                if let Err(e) = Encoding::new(p.ast()).to_smtlib() {
                    panic!("compiled policy has an ill-sorted encoding: {e}");
                }
            }
            (Ok(_), Err(e)) => {
                assert!(
                    matches!(
                        e.kind(),
                        PolicyErrorKind::UnknownVariable { .. }
                            | PolicyErrorKind::UnknownList { .. }
                            | PolicyErrorKind::NotInEnum { .. }
                            | PolicyErrorKind::Type { .. }
                    ),
                    "a parsed {slot} failed with a non-type error: {e}"
                );
                check_policy_error(&source, e);
            }
        }
    }
}

/// Action JSON against every example policy, and the size bound.
pub fn action(data: &[u8]) {
    for (i, policy) in examples().iter().enumerate() {
        match Action::from_json_bytes(policy.ast(), data) {
            Ok(action) => {
                check_action(policy, data, &action);
                if i == 0 {
                    check_whitespace_to_bound(policy.ast(), data, &action);
                }
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    // One byte over the bound is too large, whatever the content.
    if let (Some(first), true) = (examples().first(), data.len() <= MAX_ACTION_BYTES) {
        let mut over = data.to_vec();
        over.resize(MAX_ACTION_BYTES + 1, b' ');
        assert_eq!(
            Action::from_json_bytes(first.ast(), &over),
            Err(CheckError::TooLarge {
                limit: MAX_ACTION_BYTES
            })
        );
    }
}

/// Trailing whitespace up to exactly [`MAX_ACTION_BYTES`] leaves an action unchanged.
fn check_whitespace_to_bound(ast: &Policy, data: &[u8], action: &Action) {
    if data.len() <= MAX_ACTION_BYTES {
        let mut padded = data.to_vec();
        padded.resize(MAX_ACTION_BYTES, b' ');
        assert_eq!(
            Action::from_json_bytes(ast, &padded).as_ref(),
            Ok(action),
            "trailing whitespace up to the size bound changed the action"
        );
    }
}

fn check_action(policy: &CompiledPolicy, data: &[u8], action: &Action) {
    let ast = policy.ast();
    let value: Value = verdict_checker::action::parse_json(data)
        .unwrap_or_else(|e| panic!("from_json_bytes accepted JSON that parse_json rejects: {e}"));
    // Strict parsing agrees with serde_json wherever serde_json reads the same value (it reads
    // `-0` as a float, and keeps the last of repeated keys, which parse_json rejects).
    if let Ok(loose) = serde_json::from_slice::<Value>(data) {
        if !data.windows(2).any(|w| w == b"-0") {
            assert_eq!(
                loose, value,
                "parse_json and serde_json read different values"
            );
        }
    }
    assert_eq!(
        Action::from_value(ast, &value).as_ref(),
        Ok(action),
        "from_json_bytes and from_value disagree"
    );
    let screened = screen(policy, &value)
        .unwrap_or_else(|e| panic!("screen rejects an action that binds: {e}"));
    assert_eq!(
        screened.matched,
        action.names(),
        "screen and binding disagree"
    );
    assert!(screened.unknown_keys.is_empty());
    assert_eq!(screened.should_check, !action.names().is_empty());
    // The canonical action is JSON of the bound variables; tokens are `true` in it, so give them
    // a string again before re-parsing.
    let canonical = action.canonical();
    let mut back: Value = serde_json::from_slice(&canonical)
        .unwrap_or_else(|e| panic!("canonical action is not JSON: {e}"));
    let obj = back
        .as_object_mut()
        .unwrap_or_else(|| panic!("canonical action is not an object"));
    assert_eq!(
        obj.keys().cloned().collect::<Vec<_>>(),
        action.names(),
        "canonical action keys differ from the bindings"
    );
    for (key, v) in obj.iter_mut() {
        let is_token = ast
            .variable(key)
            .is_some_and(|var| var.ty == VarType::Token);
        if is_token && *v == Value::Bool(true) {
            *v = Value::String("token".to_owned());
        }
    }
    let rebuilt = serde_json::to_vec(&back).unwrap_or_default();
    let again = Action::from_json_bytes(ast, &rebuilt)
        .unwrap_or_else(|e| panic!("canonical action does not parse back: {e}"));
    assert_eq!(
        &again, action,
        "canonical action parses to a different action"
    );
    assert_eq!(
        again.canonical(),
        canonical,
        "canonical bytes are not stable"
    );
}

/// Two compilations of the same text with the same salt are identical.
fn assert_same_compiled(a: &CompiledPolicy, b: &CompiledPolicy) {
    assert_eq!(a.ast(), b.ast());
    assert_eq!(a.canonical(), b.canonical(), "canonical bytes differ");
    assert_eq!(a.commitment(), b.commitment(), "commitments differ");
    assert_eq!(a.rule_tree_root(), b.rule_tree_root(), "rule roots differ");
    assert_eq!(a.approvers(), b.approvers());
    for i in 0..=a.ast().rules.len() {
        assert_eq!(a.rule_proof(i), b.rule_proof(i), "rule proof {i} differs");
    }
}

/// Properties of one compiled policy: canonical JSON, salts, rule proofs, the TOML round trip
/// and the solver-independent encoding.
fn check_compiled(p: &CompiledPolicy) {
    let doc: Value = serde_json::from_slice(p.canonical())
        .unwrap_or_else(|e| panic!("canonical policy is not JSON: {e}"));
    assert_eq!(doc["format"], CANONICAL_FORMAT);
    assert_eq!(
        p.commitment(),
        commit(CommitmentTag::Policy, &p.salt(), p.canonical())
    );
    let resalted = CompiledPolicy::from_policy(p.ast().clone(), OTHER_SALT)
        .unwrap_or_else(|e| panic!("a compiled policy does not rebuild: {e}"));
    assert_eq!(
        resalted.canonical(),
        p.canonical(),
        "canonical bytes depend on the salt"
    );
    let root = p.rule_tree_root();
    let rules = p.ast().rules.len();
    for i in 0..rules {
        let proof = p
            .rule_proof(i)
            .unwrap_or_else(|| panic!("no proof for rule {i} of {rules}"));
        let verified = proof
            .verify(&root)
            .unwrap_or_else(|e| panic!("rule proof {i}: {e}"));
        assert_eq!(verified.index, i);
    }
    assert!(p.rule_proof(rules).is_none());

    let printed = print_policy(p.ast());
    let again = compile(&printed, p.salt())
        .unwrap_or_else(|e| panic!("printed policy does not compile:\n{e}\n---\n{printed}"));
    assert_eq!(
        again.canonical(),
        p.canonical(),
        "printed policy compiles to other canonical bytes:\n{printed}"
    );
    assert_eq!(again.commitment(), p.commitment());
    assert_eq!(again.rule_tree_root(), root);
    assert_eq!(
        print_policy(again.ast()),
        printed,
        "printing is not a fixed point"
    );

    if let Err(e) = Encoding::new(p.ast()).to_smtlib() {
        panic!("compiled policy has an ill-sorted encoding: {e}");
    }
}

/// A compile error is located inside the source and renders.
fn check_policy_error(source: &str, e: &PolicyError) {
    let lines = source.matches('\n').count() + 1;
    assert!(
        (1..=lines).contains(&e.line()),
        "error line {} outside 1..={lines}",
        e.line()
    );
    let line_text = source.lines().nth(e.line() - 1).unwrap_or("");
    assert_eq!(
        e.source_line(),
        line_text,
        "error source line is not line {}",
        e.line()
    );
    let raw_line = source.split('\n').nth(e.line() - 1).unwrap_or("");
    assert!(
        (1..=raw_line.chars().count() + 1).contains(&e.column()),
        "error column {} outside line {:?}",
        e.column(),
        raw_line
    );
    assert!(!e.to_string().is_empty());
}

/// A TOML basic string holding exactly `s`.
pub fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push('\t'),
            c if c.is_control() && (c as u32) < 0x80 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Print a type-checked policy as a TOML policy file that compiles back to it.
pub fn print_policy(p: &Policy) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "name = {}", toml_string(&p.name));
    let _ = writeln!(out, "version = {}", toml_string(&p.version));
    if let Some(d) = &p.description {
        let _ = writeln!(out, "description = {}", toml_string(d));
    }
    out.push_str("[lists]\n");
    for (name, items) in &p.lists {
        let items: Vec<String> = items.iter().map(|i| toml_string(i)).collect();
        let _ = writeln!(out, "{} = [{}]", toml_string(name), items.join(", "));
    }
    out.push_str("[variables]\n");
    for v in &p.variables {
        let ty = match &v.ty {
            VarType::Bool => "type = \"bool\"".to_owned(),
            VarType::Token => "type = \"token\"".to_owned(),
            VarType::Int { min, max } => {
                let mut s = "type = \"int\"".to_owned();
                if let Some(m) = min {
                    let _ = write!(s, ", min = {m}");
                }
                if let Some(m) = max {
                    let _ = write!(s, ", max = {m}");
                }
                s
            }
            VarType::Enum { values } => {
                let values: Vec<String> = values.iter().map(|i| toml_string(i)).collect();
                format!("type = \"enum\", values = [{}]", values.join(", "))
            }
            VarType::String { list } => match list {
                Some(l) => format!("type = \"string\", list = {}", toml_string(l)),
                None => "type = \"string\"".to_owned(),
            },
        };
        let optional = if v.optional { ", optional = true" } else { "" };
        let _ = writeln!(out, "{} = {{ {ty}{optional} }}", toml_string(&v.name));
    }
    for a in &p.approvers {
        out.push_str("[[approvers]]\n");
        let _ = writeln!(out, "name = {}", toml_string(&a.name));
        let _ = writeln!(out, "key = {}", toml_string(&a.key));
    }
    for r in &p.rules {
        out.push_str("[[rules]]\n");
        let _ = writeln!(out, "id = {}", toml_string(&r.id));
        let _ = writeln!(out, "text = {}", toml_string(&r.text));
        if let Some(w) = &r.when {
            let _ = writeln!(out, "when = {}", toml_string(&print_expr(w)));
        }
        let _ = writeln!(out, "require = {}", toml_string(&print_expr(&r.require)));
        let effect = match r.effect {
            Effect::Deny => "deny",
            Effect::Escalate => "escalate",
        };
        let _ = writeln!(out, "effect = \"{effect}\"");
    }
    out
}

/// How loosely a position binds: what may appear there without parentheses
/// (`spec/policy-language.md` §3: `=>` < `or` < `and` < `not` and primaries).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Implies,
    Or,
    And,
    Not,
}

fn level(e: &Expr) -> Level {
    match e {
        Expr::Implies(..) => Level::Implies,
        Expr::Or(_) => Level::Or,
        Expr::And(_) => Level::And,
        _ => Level::Not,
    }
}

/// Print an expression so that [`parse_expr`] gives back the same tree. Parentheses appear only
/// where the tree cannot have come from source without them, so the printed nesting depth is
/// never above the source's.
pub fn print_expr(e: &Expr) -> String {
    let mut out = String::new();
    write_expr(e, Level::Implies, &mut out);
    out
}

fn write_expr(e: &Expr, position: Level, out: &mut String) {
    let paren = level(e) < position;
    if paren {
        out.push('(');
    }
    match e {
        Expr::Const(b) => out.push_str(if *b { "true" } else { "false" }),
        Expr::Var(v) => out.push_str(v),
        Expr::Present(v) => {
            let _ = write!(out, "present({v})");
        }
        Expr::Not(x) => {
            out.push_str("not ");
            write_expr(x, Level::Not, out);
        }
        Expr::And(items) | Expr::Or(items) => {
            let (sep, inner) = if matches!(e, Expr::And(_)) {
                (" and ", Level::Not)
            } else {
                (" or ", Level::And)
            };
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                write_expr(item, inner, out);
            }
        }
        Expr::Implies(a, b) => {
            write_expr(a, Level::Or, out);
            out.push_str(" => ");
            write_expr(b, Level::Implies, out);
        }
        Expr::Cmp { op, lhs, rhs } => {
            write_operand(lhs, out);
            let _ = write!(out, " {} ", op.symbol());
            write_operand(rhs, out);
        }
        Expr::InList { var, list } => {
            let _ = write!(out, "{var} in {list}");
        }
        Expr::InSet { var, values } => {
            let values: Vec<String> = values.iter().map(|v| format!("\"{v}\"")).collect();
            let _ = write!(out, "{var} in [{}]", values.join(", "));
        }
    }
    if paren {
        out.push(')');
    }
}

fn write_operand(o: &Operand, out: &mut String) {
    let _ = match o {
        Operand::Var(v) => write!(out, "{v}"),
        Operand::Int(n) => write!(out, "{n}"),
        Operand::Bool(b) => write!(out, "{b}"),
        Operand::Str(s) => write!(out, "\"{s}\""),
    };
}
