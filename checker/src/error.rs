//! Errors: [`PolicyError`] (compile time, located in the policy file) and [`CheckError`]
//! (check time: bad actions, approvals, solver setup).

use std::fmt;

/// What is wrong with a policy. Messages are lowercase, one line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyErrorKind {
    /// The policy text exceeds [`crate::parse::MAX_POLICY_BYTES`].
    #[error("policy of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Text length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// TOML syntax or shape error (unknown field, missing field, wrong type).
    #[error("{message}")]
    Toml {
        /// The TOML parser's message (first line).
        message: String,
    },
    /// A field value is invalid (bad name, version, id, effect, type name...).
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// Which field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// More than the allowed number of variables, rules, list items, approvers...
    #[error("too many {what} (limit {limit})")]
    TooMany {
        /// What was counted.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// Two rules share an id.
    #[error("duplicate rule id `{id}`")]
    DuplicateRule {
        /// The id.
        id: String,
    },
    /// Two approvers share a key id.
    #[error("duplicate approver key `{name}`")]
    DuplicateApprover {
        /// Approver name.
        name: String,
    },
    /// An approver's `name` differs from the name inside its verifier key
    /// (`spec/policy-language.md` §2).
    #[error("approver name `{name}` does not match the name `{key_name}` in its key")]
    ApproverNameMismatch {
        /// The `name` field.
        name: String,
        /// The name in the verifier key.
        key_name: String,
    },
    /// Two approvers share a name.
    #[error("duplicate approver name `{name}`")]
    DuplicateApproverName {
        /// The name.
        name: String,
    },
    /// An approver's name is another approver's hex key id, so an approval naming it would be
    /// ambiguous.
    #[error("approver name `{name}` is the key id of another approver")]
    AmbiguousApproverName {
        /// The name.
        name: String,
    },
    /// Expression syntax error.
    #[error("syntax error: {expected}")]
    Syntax {
        /// What was expected.
        expected: String,
    },
    /// Expression nesting deeper than [`crate::parse::MAX_DEPTH`].
    #[error("expression nested deeper than {limit}")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// A variable that is not declared.
    #[error("unknown variable `{name}`")]
    UnknownVariable {
        /// Name used.
        name: String,
    },
    /// A list that is not declared.
    #[error("unknown list `{name}`")]
    UnknownList {
        /// Name used.
        name: String,
    },
    /// An enum literal that is not one of the enum's values.
    #[error("`{value}` is not a value of enum `{var}`")]
    NotInEnum {
        /// Enum variable.
        var: String,
        /// The literal.
        value: String,
    },
    /// Ill-typed expression.
    #[error("type error: {reason}")]
    Type {
        /// Explanation.
        reason: String,
    },
    /// An `[[approvers]]` key that does not parse.
    #[error("invalid approver key for `{name}`: {reason}")]
    ApproverKey {
        /// Approver name.
        name: String,
        /// Parser message.
        reason: String,
    },
}

/// A located policy compile error. `Display` renders rustc style:
/// `file:line:col: error: message`, then the source line and a caret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    kind: PolicyErrorKind,
    line: usize,
    column: usize,
    source_line: String,
    file: Option<String>,
}

impl PolicyError {
    /// Build an error at byte `offset` of `source`.
    pub(crate) fn at(kind: PolicyErrorKind, source: &str, offset: usize) -> Self {
        // An offset mapped from an escaped TOML string can land inside a multi-byte character:
        // step back to its start so the error still names the right line.
        let offset = offset.min(source.len());
        let offset = (0..=offset)
            .rev()
            .find(|&i| source.is_char_boundary(i))
            .unwrap_or(0);
        let before = source.get(..offset).unwrap_or("");
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.matches('\n').count() + 1;
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        let rest = source.get(line_start..).unwrap_or("");
        let source_line = rest.lines().next().unwrap_or("").to_owned();
        Self {
            kind,
            line,
            column,
            source_line,
            file: None,
        }
    }

    /// Attach a file name for rendering.
    pub fn with_file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> &PolicyErrorKind {
        &self.kind
    }

    /// 1-based line in the policy file.
    pub fn line(&self) -> usize {
        self.line
    }

    /// 1-based column (in characters) in the policy file.
    pub fn column(&self) -> usize {
        self.column
    }

    /// The offending source line (without newline).
    pub fn source_line(&self) -> &str {
        &self.source_line
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.as_deref().unwrap_or("<policy>");
        writeln!(
            f,
            "{file}:{}:{}: error: {}",
            self.line, self.column, self.kind
        )?;
        let num = self.line.to_string();
        let pad = " ".repeat(num.len());
        writeln!(f, "{pad} |")?;
        writeln!(f, "{num} | {}", self.source_line)?;
        // Keep tabs so the caret lines up under tab-indented source.
        let lead: String = self
            .source_line
            .chars()
            .take(self.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        write!(f, "{pad} | {lead}^")
    }
}

impl std::error::Error for PolicyError {}

/// Errors at check time. None of them is a decision: the caller gets no receipt.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The action is not a JSON object.
    #[error("action must be a json object")]
    NotAnObject,
    /// The action exceeds [`crate::action::MAX_ACTION_BYTES`] or the key limit.
    #[error("action exceeds {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The action JSON text does not parse.
    #[error("malformed action json: {reason}")]
    Malformed {
        /// Parser message.
        reason: String,
    },
    /// An action key that is not a policy variable.
    #[error("unknown action key `{key}`")]
    UnknownKey {
        /// The key.
        key: String,
    },
    /// The reserved key `approvals` was set by the action.
    #[error("action key `approvals` is reserved")]
    ReservedKey,
    /// A value of the wrong JSON type for the variable.
    #[error("variable `{var}` expects {expected}")]
    WrongType {
        /// Variable.
        var: String,
        /// Expected type.
        expected: &'static str,
    },
    /// JSON `null` for a variable that may not be absent: only tokens and variables declared
    /// `optional = true` accept `null` (`spec/decision-semantics.md` §3).
    #[error("variable `{var}` is not optional: null is not allowed")]
    NullNotAllowed {
        /// Variable.
        var: String,
    },
    /// An enum value not in the enum.
    #[error("`{value}` is not a value of enum `{var}`")]
    NotInEnum {
        /// Variable.
        var: String,
        /// Value given.
        value: String,
    },
    /// An int outside the declared bounds (or outside i64).
    #[error("value of `{var}` is out of bounds")]
    OutOfBounds {
        /// Variable.
        var: String,
    },
    /// A string value longer than [`crate::action::MAX_STRING_BYTES`].
    #[error("value of `{var}` is too long")]
    StringTooLong {
        /// Variable.
        var: String,
    },
    /// The request id is empty or longer than 64 bytes.
    #[error("request id must be 1 to 64 bytes")]
    InvalidRequestId,
    /// An approval from an unknown approver, with a malformed or a bad signature.
    #[error("invalid approval from `{approver}`: {reason}")]
    InvalidApproval {
        /// The approver field as given.
        approver: String,
        /// Why.
        reason: &'static str,
    },
    /// Too many approvals in one request.
    #[error("too many approvals (limit {limit})")]
    TooManyApprovals {
        /// The limit.
        limit: usize,
    },
    /// A receipt could not be built or signed.
    #[error("receipt: {0}")]
    Receipt(#[from] verdict_core::receipt::ReceiptError),
    /// The worker pool is shut down or a worker died.
    #[error("checker pool unavailable")]
    PoolUnavailable,
    /// The policy's encoding is ill-sorted (an encoder bug; never expected for a compiled
    /// policy). No checker is built, so no decision is made.
    #[error("policy encoding: {0}")]
    Encoding(crate::encode::IllSorted),
    /// The policy's approver keys do not parse (only for policies not built by `compile`).
    #[error("policy approver key invalid: {reason}")]
    PolicyKey {
        /// Why.
        reason: String,
    },
}
