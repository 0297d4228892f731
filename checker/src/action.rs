//! Actions: a JSON object binding policy variables, typed against the policy
//! (`spec/decision-semantics.md` §2).
//!
//! Parse, don't validate: [`Action::from_json`] checks the size bound before parsing,
//! [`Action::from_value`] checks the serialised size as it goes; both return typed bindings or a
//! [`CheckError`]. A key with value `null` binds the variable as explicitly *absent*; an omitted
//! key leaves it unbound. The canonical action is compact JSON with sorted keys, only policy
//! variables, token values replaced by `true`, `null` kept.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::ast::{Policy, VarType, APPROVALS};
use crate::error::CheckError;

/// Maximum action size in bytes (serialised JSON).
pub const MAX_ACTION_BYTES: usize = 64 * 1024;
/// Maximum bytes of one string value.
pub const MAX_STRING_BYTES: usize = 4096;
/// Maximum JSON nesting accepted by [`Action::from_json`] before typing (values must be scalars,
/// so anything nested is a type error anyway; this bounds the parser's work).
pub const MAX_ACTION_DEPTH: usize = 8;

/// A typed value bound by an action.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum BoundValue {
    /// A bool variable.
    Bool(bool),
    /// An int variable (within its bounds).
    Int(i64),
    /// An enum variable: index into the enum's values and the value.
    Enum {
        /// Index in the declared values.
        index: usize,
        /// The value.
        value: String,
    },
    /// A string variable.
    Str(String),
    /// A token was given (its value is dropped at once).
    TokenPresent,
    /// JSON `null`: the variable is explicitly absent (any type).
    Absent,
}

/// A typed action: bindings of policy variables, sorted by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    bindings: BTreeMap<String, BoundValue>,
}

impl Action {
    /// Parse JSON text: size bound first, then nesting bound, then typing.
    ///
    /// # Errors
    /// [`CheckError`] for oversize, malformed, unknown keys or ill-typed values.
    pub fn from_json(policy: &Policy, bytes: &[u8]) -> Result<Self, CheckError> {
        if bytes.len() > MAX_ACTION_BYTES {
            return Err(CheckError::TooLarge {
                limit: MAX_ACTION_BYTES,
            });
        }
        let mut depth = 0usize;
        let mut in_str = false;
        let mut escaped = false;
        for &b in bytes {
            if in_str {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_str = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_str = true,
                b'{' | b'[' => {
                    depth += 1;
                    if depth > MAX_ACTION_DEPTH {
                        return Err(CheckError::Malformed {
                            reason: format!("nested deeper than {MAX_ACTION_DEPTH}"),
                        });
                    }
                }
                b'}' | b']' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|e| CheckError::Malformed {
            reason: e.to_string(),
        })?;
        Self::from_value(policy, &value)
    }

    /// Type a parsed JSON value against the policy.
    ///
    /// # Errors
    /// [`CheckError`] for non-objects, oversize, unknown or reserved keys, ill-typed values.
    pub fn from_value(policy: &Policy, action: &Value) -> Result<Self, CheckError> {
        let obj = action.as_object().ok_or(CheckError::NotAnObject)?;
        let mut size = 2usize;
        let mut bindings = BTreeMap::new();
        for (key, value) in obj {
            size = size.saturating_add(key.len() + 4 + scalar_size(value));
            if size > MAX_ACTION_BYTES {
                return Err(CheckError::TooLarge {
                    limit: MAX_ACTION_BYTES,
                });
            }
            if key == APPROVALS {
                return Err(CheckError::ReservedKey);
            }
            let var = policy
                .variable(key)
                .ok_or_else(|| CheckError::UnknownKey { key: key.clone() })?;
            let wrong = |expected| CheckError::WrongType {
                var: key.clone(),
                expected,
            };
            let bound = match &var.ty {
                _ if value.is_null() => BoundValue::Absent,
                VarType::Bool => BoundValue::Bool(value.as_bool().ok_or_else(|| wrong("a bool"))?),
                VarType::Int { min, max } => {
                    if !value.is_number() {
                        return Err(wrong("an integer"));
                    }
                    let n = value.as_i64().ok_or_else(|| {
                        if value.is_u64() {
                            CheckError::OutOfBounds { var: key.clone() }
                        } else {
                            wrong("an integer")
                        }
                    })?;
                    if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
                        return Err(CheckError::OutOfBounds { var: key.clone() });
                    }
                    BoundValue::Int(n)
                }
                VarType::Enum { values } => {
                    let s = value
                        .as_str()
                        .ok_or_else(|| wrong("an enum value string"))?;
                    let index = values.iter().position(|v| v == s).ok_or_else(|| {
                        CheckError::NotInEnum {
                            var: key.clone(),
                            value: s.chars().take(64).collect(),
                        }
                    })?;
                    BoundValue::Enum {
                        index,
                        value: s.to_owned(),
                    }
                }
                VarType::String { .. } => {
                    let s = value.as_str().ok_or_else(|| wrong("a string"))?;
                    if s.len() > MAX_STRING_BYTES {
                        return Err(CheckError::StringTooLong { var: key.clone() });
                    }
                    BoundValue::Str(s.to_owned())
                }
                VarType::Token => {
                    value.as_str().ok_or_else(|| wrong("a token string"))?;
                    BoundValue::TokenPresent
                }
            };
            bindings.insert(key.clone(), bound);
        }
        Ok(Self { bindings })
    }

    /// The bindings, sorted by variable name.
    pub fn bindings(&self) -> &BTreeMap<String, BoundValue> {
        &self.bindings
    }

    /// The value bound to `name`, if any (including [`BoundValue::Absent`]).
    pub fn get(&self, name: &str) -> Option<&BoundValue> {
        self.bindings.get(name)
    }

    /// The value of `name` when the action gives one (bound and not `null`).
    pub fn value(&self, name: &str) -> Option<&BoundValue> {
        self.bindings
            .get(name)
            .filter(|v| **v != BoundValue::Absent)
    }

    /// Bound variable names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.bindings.keys().cloned().collect()
    }

    /// Canonical action bytes: compact JSON, sorted keys, tokens as `true`.
    pub fn canonical(&self) -> Vec<u8> {
        let map: BTreeMap<&str, Value> = self
            .bindings
            .iter()
            .map(|(k, v)| {
                let j = match v {
                    BoundValue::Bool(b) => Value::Bool(*b),
                    BoundValue::Int(n) => Value::from(*n),
                    BoundValue::Enum { value, .. } => Value::String(value.clone()),
                    BoundValue::Str(s) => Value::String(s.clone()),
                    BoundValue::TokenPresent => Value::Bool(true),
                    BoundValue::Absent => Value::Null,
                };
                (k.as_str(), j)
            })
            .collect();
        // Serialising a map of scalars cannot fail; fall back to "{}" rather than panic.
        serde_json::to_vec(&map).unwrap_or_else(|_| b"{}".to_vec())
    }
}

/// Serialised size of a JSON value, bounded: nested values count as large (they are type errors).
fn scalar_size(v: &Value) -> usize {
    match v {
        Value::Null => 4,
        Value::Bool(_) => 5,
        Value::Number(_) => 20,
        Value::String(s) => s.len().saturating_mul(2).saturating_add(2),
        Value::Array(a) => a.len().saturating_mul(2).saturating_add(2),
        Value::Object(o) => o.len().saturating_mul(4).saturating_add(2),
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]
mod tests {
    use super::*;
    use crate::ast::Variable;
    use serde_json::json;

    fn policy() -> Policy {
        let v = |name: &str, ty| Variable {
            name: name.into(),
            ty,
        };
        Policy {
            name: "p".into(),
            version: "1".into(),
            description: None,
            lists: BTreeMap::new(),
            variables: vec![
                v("b", VarType::Bool),
                v(
                    "d",
                    VarType::Enum {
                        values: vec!["internal".into(), "external".into()],
                    },
                ),
                v(
                    "n",
                    VarType::Int {
                        min: Some(0),
                        max: Some(10),
                    },
                ),
                v("s", VarType::String { list: None }),
                v("t", VarType::Token),
            ],
            approvers: vec![],
            rules: vec![],
        }
    }

    #[test]
    fn canonical_sorted_and_token_hidden() {
        let p = policy();
        let a = Action::from_value(
            &p,
            &json!({"t": "secret-value", "n": 3, "d": "external", "b": true, "s": "x"}),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(a.canonical()).unwrap(),
            r#"{"b":true,"d":"external","n":3,"s":"x","t":true}"#
        );
        let b = Action::from_json(
            &p,
            br#"{ "s":"x", "b":true,"n":3,"d":"external","t":"other"}"#,
        )
        .unwrap();
        assert_eq!(a.canonical(), b.canonical());
    }

    #[test]
    fn rejects_bad_actions() {
        let p = policy();
        let e = |v| Action::from_value(&p, &v).unwrap_err();
        assert_eq!(e(json!([1])), CheckError::NotAnObject);
        assert_eq!(
            e(json!({"zz": 1})),
            CheckError::UnknownKey { key: "zz".into() }
        );
        assert_eq!(e(json!({"approvals": 2})), CheckError::ReservedKey);
        assert!(matches!(e(json!({"n": "3"})), CheckError::WrongType { .. }));
        assert!(matches!(e(json!({"n": 3.5})), CheckError::WrongType { .. }));
        assert!(matches!(
            e(json!({"n": 11})),
            CheckError::OutOfBounds { .. }
        ));
        assert!(matches!(
            e(json!({"n": -1})),
            CheckError::OutOfBounds { .. }
        ));
        assert!(matches!(
            e(json!({"n": u64::MAX})),
            CheckError::OutOfBounds { .. }
        ));
        assert!(matches!(
            e(json!({"d": "elsewhere"})),
            CheckError::NotInEnum { .. }
        ));
        assert!(matches!(e(json!({"b": 1})), CheckError::WrongType { .. }));
        assert!(matches!(e(json!({"t": 5})), CheckError::WrongType { .. }));
        let absent = Action::from_value(&p, &json!({"t": null, "n": null})).unwrap();
        assert_eq!(absent.get("t"), Some(&BoundValue::Absent));
        assert_eq!(absent.value("t"), None);
        assert_eq!(absent.canonical(), br#"{"n":null,"t":null}"#);
        assert!(matches!(
            e(json!({"s": {"a": 1}})),
            CheckError::WrongType { .. }
        ));
        let big = "x".repeat(MAX_ACTION_BYTES);
        assert!(matches!(e(json!({"s": big})), CheckError::TooLarge { .. }));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(
            Action::from_json(&p, deep.as_bytes()).unwrap_err(),
            CheckError::Malformed { .. }
        ));
        assert!(Action::from_json(&p, br#"{"b":true} x"#).is_err());
        assert!(Action::from_json(&p, &vec![b' '; MAX_ACTION_BYTES + 1]).is_err());
    }
}
