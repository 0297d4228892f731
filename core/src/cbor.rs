//! Deterministic CBOR (RFC 8949 §4.2.1) of the decision statement. Spec: `spec/receipt.md` §3–§4.
//!
//! Encoding builds a `ciborium` value whose map keys are the integers 0..=15 in ascending order
//! (their one-byte encodings sort bytewise the same way) and lets `ciborium` write the shortest
//! heads with definite lengths. Decoding parses into a value, converts it field by field with
//! strict types, then re-encodes and demands identical bytes, which rejects every non-canonical
//! form: longer integer heads, indefinite lengths, unsorted or duplicate keys.

use ciborium::value::{Integer, Value};

use crate::merkle::Hash;
use crate::note::KeyId;
use crate::receipt::{
    Decision, Kind, ReceiptError, Statement, MAX_RECEIPT_SIZE, STATEMENT_VERSION,
};

/// Map keys of the statement (spec `receipt.md` §3, table 1).
mod key {
    pub const VERSION: u64 = 0;
    pub const CHECKER_KEY_ID: u64 = 1;
    pub const POLICY_COMMITMENT: u64 = 2;
    pub const POLICY_VERSION: u64 = 3;
    pub const ACTION_COMMITMENT: u64 = 4;
    pub const DECISION: u64 = 5;
    pub const KIND: u64 = 6;
    pub const FAIL_CLOSED: u64 = 7;
    pub const VIOLATED_RULES: u64 = 8;
    pub const MATCHED_VARIABLES: u64 = 9;
    pub const UNDETERMINED_VARIABLES: u64 = 10;
    pub const APPROVERS: u64 = 11;
    pub const TIME_MS: u64 = 12;
    pub const REQUEST_ID: u64 = 13;
    pub const CHECKER_VERSION: u64 = 14;
    pub const SOLVER_VERSION: u64 = 15;
    /// Number of keys; every key is required.
    pub const COUNT: u64 = 16;
}

/// Longest `request_id` in bytes (spec `receipt.md` §4).
pub const MAX_REQUEST_ID: usize = 64;
/// Longest other text field (versions, variable names) in bytes (spec `receipt.md` §4).
pub const MAX_TEXT: usize = 256;

fn malformed(reason: impl Into<String>) -> ReceiptError {
    ReceiptError::Malformed {
        reason: reason.into(),
    }
}

/// Wire code of a decision (spec `receipt.md` §3, table 2).
pub fn decision_code(decision: Decision) -> u64 {
    match decision {
        Decision::Allow => 0,
        Decision::Deny => 1,
        Decision::Escalate => 2,
        Decision::NotApplicable => 3,
        Decision::InScope => 4,
    }
}

fn decision_from(code: u64) -> Option<Decision> {
    Some(match code {
        0 => Decision::Allow,
        1 => Decision::Deny,
        2 => Decision::Escalate,
        3 => Decision::NotApplicable,
        4 => Decision::InScope,
        _ => return None,
    })
}

/// Wire code of a kind (spec `receipt.md` §3, table 3).
pub fn kind_code(kind: Kind) -> u64 {
    match kind {
        Kind::Screen => 0,
        Kind::Check => 1,
    }
}

fn kind_from(code: u64) -> Option<Kind> {
    Some(match code {
        0 => Kind::Screen,
        1 => Kind::Check,
        _ => return None,
    })
}

fn strictly_ascending<T: Ord>(items: &[T]) -> bool {
    items.windows(2).all(|w| matches!(w, [a, b] if a < b))
}

/// Field bounds and ordering rules of spec `receipt.md` §4, checked on both encode and decode.
fn validate(s: &Statement) -> Result<(), ReceiptError> {
    if s.version != STATEMENT_VERSION {
        return Err(malformed(format!(
            "unsupported statement version {}",
            s.version
        )));
    }
    if s.request_id.len() > MAX_REQUEST_ID {
        return Err(malformed("request id longer than 64 bytes"));
    }
    for (name, text) in [
        ("policy version", &s.policy_version),
        ("checker version", &s.checker_version),
        ("solver version", &s.solver_version),
    ] {
        if text.len() > MAX_TEXT {
            return Err(malformed(format!("{name} longer than {MAX_TEXT} bytes")));
        }
    }
    for (name, list) in [
        ("matched variables", &s.matched_variables),
        ("undetermined variables", &s.undetermined_variables),
    ] {
        if list.iter().any(|v| v.len() > MAX_TEXT) {
            return Err(malformed(format!(
                "a name in {name} is longer than {MAX_TEXT} bytes"
            )));
        }
        if !strictly_ascending(list) {
            return Err(malformed(format!("{name} not sorted and unique")));
        }
    }
    if !strictly_ascending(&s.violated_rules) {
        return Err(malformed("violated rules not ascending and unique"));
    }
    if !strictly_ascending(&s.approvers) {
        return Err(malformed("approvers not sorted and unique"));
    }
    if !s.decision.admitted_by(s.kind) {
        return Err(malformed(format!(
            "decision {} is not admitted for kind {}",
            s.decision.as_str(),
            s.kind.as_str()
        )));
    }
    Ok(())
}

fn uint(v: u64) -> Value {
    Value::Integer(Integer::from(v))
}

fn text_array(items: &[String]) -> Value {
    Value::Array(items.iter().cloned().map(Value::Text).collect())
}

/// Encode a statement (spec `receipt.md` §3).
pub fn encode_statement(s: &Statement) -> Result<Vec<u8>, ReceiptError> {
    validate(s)?;
    let entries = [
        (key::VERSION, uint(u64::from(s.version))),
        (
            key::CHECKER_KEY_ID,
            Value::Bytes(s.checker_key_id.0.to_vec()),
        ),
        (
            key::POLICY_COMMITMENT,
            Value::Bytes(s.policy_commitment.0.to_vec()),
        ),
        (key::POLICY_VERSION, Value::Text(s.policy_version.clone())),
        (
            key::ACTION_COMMITMENT,
            Value::Bytes(s.action_commitment.0.to_vec()),
        ),
        (key::DECISION, uint(decision_code(s.decision))),
        (key::KIND, uint(kind_code(s.kind))),
        (key::FAIL_CLOSED, Value::Bool(s.fail_closed)),
        (
            key::VIOLATED_RULES,
            Value::Array(
                s.violated_rules
                    .iter()
                    .map(|&r| uint(u64::from(r)))
                    .collect(),
            ),
        ),
        (key::MATCHED_VARIABLES, text_array(&s.matched_variables)),
        (
            key::UNDETERMINED_VARIABLES,
            text_array(&s.undetermined_variables),
        ),
        (
            key::APPROVERS,
            Value::Array(
                s.approvers
                    .iter()
                    .map(|k| Value::Bytes(k.0.to_vec()))
                    .collect(),
            ),
        ),
        (key::TIME_MS, uint(s.time_ms)),
        (key::REQUEST_ID, Value::Text(s.request_id.clone())),
        (key::CHECKER_VERSION, Value::Text(s.checker_version.clone())),
        (key::SOLVER_VERSION, Value::Text(s.solver_version.clone())),
    ];
    let map = Value::Map(entries.into_iter().map(|(k, v)| (uint(k), v)).collect());
    let mut out = Vec::new();
    ciborium::ser::into_writer(&map, &mut out)
        .map_err(|e| malformed(format!("cbor encoding failed: {e}")))?;
    if out.len() > MAX_RECEIPT_SIZE {
        return Err(ReceiptError::TooLarge { len: out.len() });
    }
    Ok(out)
}

/// Parse exactly one CBOR data item from `bytes`, rejecting trailing bytes.
pub fn read_one(bytes: &[u8]) -> Result<Value, ReceiptError> {
    let mut rest = bytes;
    let value: Value = ciborium::de::from_reader(&mut rest)
        .map_err(|e| malformed(format!("invalid cbor: {e}")))?;
    if !rest.is_empty() {
        return Err(ReceiptError::TrailingData);
    }
    Ok(value)
}

/// Decode a statement, rejecting unknown keys, wrong types, bounds and non-canonical bytes.
pub fn decode_statement(bytes: &[u8]) -> Result<Statement, ReceiptError> {
    if bytes.len() > MAX_RECEIPT_SIZE {
        return Err(ReceiptError::TooLarge { len: bytes.len() });
    }
    let Value::Map(entries) = read_one(bytes)? else {
        return Err(malformed("statement is not a map"));
    };
    let mut fields: [Option<Value>; key::COUNT as usize] = Default::default();
    for (k, v) in entries {
        let k = match k {
            Value::Integer(i) => u64::try_from(i).ok(),
            _ => None,
        };
        let Some(k) = k else {
            return Err(ReceiptError::UnknownCritical {
                field: "statement key that is not an unsigned integer".into(),
            });
        };
        let Some(slot) = usize::try_from(k).ok().and_then(|i| fields.get_mut(i)) else {
            return Err(ReceiptError::UnknownCritical {
                field: format!("statement key {k}"),
            });
        };
        if slot.replace(v).is_some() {
            return Err(malformed(format!("duplicate statement key {k}")));
        }
    }
    let mut f = Fields(fields);
    let statement = Statement {
        version: u8::try_from(f.uint(key::VERSION)?)
            .map_err(|_| malformed("statement version out of range"))?,
        checker_key_id: KeyId(f.fixed::<4>(key::CHECKER_KEY_ID)?),
        policy_commitment: Hash(f.fixed::<32>(key::POLICY_COMMITMENT)?),
        policy_version: f.text(key::POLICY_VERSION)?,
        action_commitment: Hash(f.fixed::<32>(key::ACTION_COMMITMENT)?),
        decision: decision_from(f.uint(key::DECISION)?).ok_or(malformed("unknown decision"))?,
        kind: kind_from(f.uint(key::KIND)?).ok_or(malformed("unknown kind"))?,
        fail_closed: match f.take(key::FAIL_CLOSED)? {
            Value::Bool(b) => b,
            _ => return Err(malformed("statement key 7 is not a bool")),
        },
        violated_rules: f
            .array(key::VIOLATED_RULES)?
            .into_iter()
            .map(|v| match v {
                Value::Integer(i) => u32::try_from(i).ok(),
                _ => None,
            })
            .collect::<Option<_>>()
            .ok_or(malformed("violated rule is not a u32"))?,
        matched_variables: text_items(f.array(key::MATCHED_VARIABLES)?)?,
        undetermined_variables: text_items(f.array(key::UNDETERMINED_VARIABLES)?)?,
        approvers: f
            .array(key::APPROVERS)?
            .into_iter()
            .map(|v| match v {
                Value::Bytes(b) => <[u8; 4]>::try_from(b.as_slice()).ok().map(KeyId),
                _ => None,
            })
            .collect::<Option<_>>()
            .ok_or(malformed("approver is not a 4-byte key id"))?,
        time_ms: f.uint(key::TIME_MS)?,
        request_id: f.text(key::REQUEST_ID)?,
        checker_version: f.text(key::CHECKER_VERSION)?,
        solver_version: f.text(key::SOLVER_VERSION)?,
    };
    if encode_statement(&statement)? != bytes {
        return Err(malformed("statement is not in deterministic cbor"));
    }
    Ok(statement)
}

fn text_items(items: Vec<Value>) -> Result<Vec<String>, ReceiptError> {
    items
        .into_iter()
        .map(|v| match v {
            Value::Text(t) => Some(t),
            _ => None,
        })
        .collect::<Option<_>>()
        .ok_or(malformed("variable name is not a text string"))
}

/// The statement's fields by key, each taken once.
struct Fields([Option<Value>; key::COUNT as usize]);

impl Fields {
    fn take(&mut self, k: u64) -> Result<Value, ReceiptError> {
        usize::try_from(k)
            .ok()
            .and_then(|i| self.0.get_mut(i))
            .and_then(Option::take)
            .ok_or(malformed(format!("missing statement key {k}")))
    }

    fn uint(&mut self, k: u64) -> Result<u64, ReceiptError> {
        match self.take(k)? {
            Value::Integer(i) => u64::try_from(i).ok(),
            _ => None,
        }
        .ok_or(malformed(format!(
            "statement key {k} is not an unsigned integer"
        )))
    }

    fn text(&mut self, k: u64) -> Result<String, ReceiptError> {
        match self.take(k)? {
            Value::Text(t) => Ok(t),
            _ => Err(malformed(format!("statement key {k} is not a text string"))),
        }
    }

    fn fixed<const N: usize>(&mut self, k: u64) -> Result<[u8; N], ReceiptError> {
        match self.take(k)? {
            Value::Bytes(b) => <[u8; N]>::try_from(b.as_slice()).ok(),
            _ => None,
        }
        .ok_or(malformed(format!("statement key {k} is not {N} bytes")))
    }

    fn array(&mut self, k: u64) -> Result<Vec<Value>, ReceiptError> {
        match self.take(k)? {
            Value::Array(a) => Ok(a),
            _ => Err(malformed(format!("statement key {k} is not an array"))),
        }
    }
}
