//! The typed policy AST (`spec/policy-language.md`).
//!
//! A [`Policy`] is what [`crate::compile`] produces after parsing and type checking: every
//! variable and list reference resolves, every comparison is well typed. Its `serde`
//! serialisation (field order as declared, maps sorted) is the canonical policy form
//! (`spec/policy-language.md` §6).

use std::collections::BTreeMap;

use serde::Serialize;

/// Name of the built-in read-only int variable counting verified distinct approvers.
pub const APPROVALS: &str = "approvals";

/// A compiled, type-checked policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Policy name, `[a-z0-9-]{1,64}`.
    pub name: String,
    /// Free-text version, at most 64 bytes.
    pub version: String,
    /// Optional description.
    pub description: Option<String>,
    /// Named string lists.
    pub lists: BTreeMap<String, Vec<String>>,
    /// Variables, sorted by name.
    pub variables: Vec<Variable>,
    /// Registered approvers, in file order.
    pub approvers: Vec<Approver>,
    /// Rules in file order; a rule's index is its position here (0-based).
    pub rules: Vec<Rule>,
}

impl Policy {
    /// The variable called `name` (not the built-in `approvals`).
    pub fn variable(&self, name: &str) -> Option<&Variable> {
        self.variables
            .binary_search_by(|v| v.name.as_str().cmp(name))
            .ok()
            .and_then(|i| self.variables.get(i))
    }
}

/// One declared variable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Variable {
    /// Identifier `[A-Za-z_][A-Za-z0-9_]*`, at most 64 bytes, not a keyword.
    pub name: String,
    /// Its type.
    pub ty: VarType,
    /// Declared `optional = true`: an action may state it absent with JSON `null`
    /// (`spec/decision-semantics.md` §3). Tokens may always be absent. Left out of the
    /// canonical form when false, so policies without it keep their commitments.
    #[serde(skip_serializing_if = "is_false")]
    pub optional: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Variable types.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VarType {
    /// `true` / `false`.
    Bool,
    /// A 64-bit signed integer with optional inclusive bounds.
    Int {
        /// Inclusive lower bound.
        min: Option<i64>,
        /// Inclusive upper bound.
        max: Option<i64>,
    },
    /// One of a fixed set of strings; encoded as the index into `values`.
    Enum {
        /// The allowed values, in file order (distinct).
        values: Vec<String>,
    },
    /// Any string.
    String {
        /// The named list it is documented to be checked against.
        list: Option<String>,
    },
    /// Presence-only secret; the value never enters a receipt or the canonical action.
    Token,
}

impl Variable {
    /// Whether an action may state this variable absent (`null`): a token, or declared
    /// `optional = true`.
    pub fn may_be_absent(&self) -> bool {
        self.optional || self.ty == VarType::Token
    }
}

impl VarType {
    /// Short type name as written in the policy file.
    pub fn kind_name(&self) -> &'static str {
        match self {
            VarType::Bool => "bool",
            VarType::Int { .. } => "int",
            VarType::Enum { .. } => "enum",
            VarType::String { .. } => "string",
            VarType::Token => "token",
        }
    }
}

/// A registered approver key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Approver {
    /// Human name from the file.
    pub name: String,
    /// C2SP signed-note verifier key string.
    pub key: String,
}

/// What violating a rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// The action is denied.
    Deny,
    /// The action needs human approval.
    Escalate,
}

/// One rule. Violated iff `when` holds and `require` does not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Unique id `[a-z0-9_-]{1,64}`.
    pub id: String,
    /// Human text.
    pub text: String,
    /// Optional guard; absent means always.
    pub when: Option<Expr>,
    /// The requirement.
    pub require: Expr,
    /// Effect of a violation.
    pub effect: Effect,
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    /// Apply to two ordered values.
    pub fn apply<T: Ord>(self, a: &T, b: &T) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
        }
    }
}

/// A comparison operand.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operand {
    /// A variable (or the built-in `approvals`).
    Var(String),
    /// Integer literal.
    Int(i64),
    /// Boolean literal.
    Bool(bool),
    /// String literal (string or enum value).
    Str(String),
}

/// A boolean expression. `And`/`Or` are n-ary so long chains stay shallow; nesting depth is
/// bounded by [`crate::parse::MAX_DEPTH`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expr {
    /// `true` / `false`.
    Const(bool),
    /// A bare bool variable: true iff present and true.
    Var(String),
    /// `present(x)`.
    Present(String),
    /// `not e`.
    Not(Box<Expr>),
    /// `a and b and ...`.
    And(Vec<Expr>),
    /// `a or b or ...`.
    Or(Vec<Expr>),
    /// `a => b`.
    Implies(Box<Expr>, Box<Expr>),
    /// `lhs op rhs`; false when a variable operand is absent.
    Cmp {
        /// Operator.
        op: CmpOp,
        /// Left operand.
        lhs: Operand,
        /// Right operand.
        rhs: Operand,
    },
    /// `x in listname`.
    InList {
        /// String variable.
        var: String,
        /// List name.
        list: String,
    },
    /// `x in ["a", "b"]`.
    InSet {
        /// String or enum variable.
        var: String,
        /// Literal values.
        values: Vec<String>,
    },
}

impl Expr {
    /// Variables this expression mentions (including `approvals`), pushed into `out`.
    pub fn collect_vars<'a>(&'a self, out: &mut std::collections::BTreeSet<&'a str>) {
        match self {
            Expr::Const(_) => {}
            Expr::Var(v) | Expr::Present(v) => {
                out.insert(v);
            }
            Expr::InList { var, .. } | Expr::InSet { var, .. } => {
                out.insert(var);
            }
            Expr::Not(e) => e.collect_vars(out),
            Expr::And(es) | Expr::Or(es) => es.iter().for_each(|e| e.collect_vars(out)),
            Expr::Implies(a, b) => {
                a.collect_vars(out);
                b.collect_vars(out);
            }
            Expr::Cmp { lhs, rhs, .. } => {
                for o in [lhs, rhs] {
                    if let Operand::Var(v) = o {
                        out.insert(v);
                    }
                }
            }
        }
    }
}

impl Rule {
    /// Variables the rule mentions, sorted.
    pub fn variables(&self) -> std::collections::BTreeSet<&str> {
        let mut out = std::collections::BTreeSet::new();
        if let Some(w) = &self.when {
            w.collect_vars(&mut out);
        }
        self.require.collect_vars(&mut out);
        out
    }
}
