//! Actions: a JSON object binding policy variables, typed against the policy
//! (`spec/decision-semantics.md` §3).
//!
//! Parse, don't validate: [`Action::from_json_bytes`] is the entry point for action text (the
//! CLI's `--action`, a server's request body): it applies the size bound to the raw bytes, then
//! parses strictly ([`parse_json`]: nesting bound, duplicate keys rejected at any depth, every
//! string within [`MAX_STRING_BYTES`], `-0` read as the integer 0) and types the value against
//! the policy. [`Action::from_value`] types an already parsed value (its size bound applies to
//! the compact serialisation).
//!
//! A key binds its variable. JSON `null` states that the variable is *absent*, and is accepted
//! only for a `token` or a variable declared `optional = true`; for any other variable it is a
//! type error ([`CheckError::NullNotAllowed`]). An omitted key leaves the variable unbound. The
//! canonical action is compact JSON with sorted keys, only policy variables, token values
//! replaced by `true`, `null` kept.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::ast::{Policy, VarType, APPROVALS};
use crate::error::CheckError;

/// Maximum action size in bytes: the raw action text, or the compact serialisation of a parsed
/// value.
pub const MAX_ACTION_BYTES: usize = 64 * 1024;
/// Maximum bytes (UTF-8) of every JSON string in an action: string, enum and token values,
/// and keys.
pub const MAX_STRING_BYTES: usize = 4096;
/// Maximum JSON nesting accepted by [`parse_json`] before typing (values must be scalars,
/// so anything nested is a type error anyway; this bounds the parser's work).
pub const MAX_ACTION_DEPTH: usize = 8;

/// Parse action text strictly (`spec/decision-semantics.md` §3): at most [`MAX_ACTION_BYTES`]
/// raw bytes, nesting at most [`MAX_ACTION_DEPTH`], no key repeated in any object, every string
/// (keys included) at most [`MAX_STRING_BYTES`], one JSON value and nothing after it. The number
/// `-0` is read as the integer `0` (it is a JSON integer; serde_json alone would make it the
/// float `-0.0`).
///
/// # Errors
/// [`CheckError::TooLarge`] over the byte limit; [`CheckError::StringTooLong`] for a long
/// string; [`CheckError::Malformed`] for bad JSON, deep nesting or a duplicate key.
pub fn parse_json(bytes: &[u8]) -> Result<Value, CheckError> {
    if bytes.len() > MAX_ACTION_BYTES {
        return Err(CheckError::TooLarge {
            limit: MAX_ACTION_BYTES,
        });
    }
    let text = prescan(bytes)?;
    let mut de = serde_json::Deserializer::from_slice(&text);
    let StrictValue(value) = StrictValue::deserialize(&mut de).map_err(strict_error)?;
    de.end().map_err(strict_error)?;
    Ok(value)
}

/// One pass over the raw bytes outside strings: the nesting bound, and every `-0` number
/// token rewritten to ` 0` (same length, so parser positions stay right).
fn prescan(bytes: &[u8]) -> Result<Cow<'_, [u8]>, CheckError> {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    let mut neg_zero = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
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
            b'-' => {
                let next = |k: usize| bytes.get(i + k).copied();
                let ends = |c: Option<u8>| !matches!(c, Some(b'0'..=b'9' | b'.' | b'e' | b'E'));
                if next(1) == Some(b'0') && ends(next(2)) {
                    neg_zero.push(i);
                }
            }
            _ => {}
        }
    }
    if neg_zero.is_empty() {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut owned = bytes.to_vec();
    for i in neg_zero {
        if let Some(b) = owned.get_mut(i) {
            *b = b' ';
        }
    }
    Ok(Cow::Owned(owned))
}

/// Marker errors raised by [`StrictValue`] inside serde, mapped back by [`strict_error`].
const LONG_STRING: &str = "verdict: string too long";

fn strict_error(e: serde_json::Error) -> CheckError {
    let text = e.to_string();
    if let Some(rest) = text.strip_prefix(LONG_STRING) {
        // `<marker>: `key`` names the innermost key whose value is too long; a long key itself
        // has no name worth echoing.
        let var = rest
            .strip_prefix(": `")
            .and_then(|r| r.split_once('`'))
            .map_or_else(|| "<key>".to_owned(), |(k, _)| k.to_owned());
        CheckError::StringTooLong { var }
    } else {
        CheckError::Malformed {
            reason: e.to_string(),
        }
    }
}

/// A JSON value deserialised with duplicate keys rejected and strings bounded.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

fn bounded<E: de::Error>(s: &str) -> Result<(), E> {
    if s.len() > MAX_STRING_BYTES {
        return Err(E::custom(LONG_STRING));
    }
    Ok(())
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        bounded(v)?;
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        bounded(&v)?;
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        StrictValue::deserialize(d).map(|v| v.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            bounded(&key)?;
            if out.contains_key(&key) {
                let shown: String = key.chars().take(64).collect();
                return Err(de::Error::custom(format_args!("duplicate key `{shown}`")));
            }
            let v = match map.next_value::<StrictValue>() {
                Ok(StrictValue(v)) => v,
                Err(e)
                    if e.to_string().starts_with(LONG_STRING) && !e.to_string().contains(": `") =>
                {
                    let shown: String = key.chars().take(64).collect();
                    return Err(de::Error::custom(format_args!("{LONG_STRING}: `{shown}`")));
                }
                Err(e) => return Err(e),
            };
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

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
    /// JSON `null`: the variable is explicitly absent (a token, or a variable declared
    /// `optional = true`).
    Absent,
}

/// A typed action: bindings of policy variables, sorted by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    bindings: BTreeMap<String, BoundValue>,
}

impl Action {
    /// Parse and type action text: the one entry point for raw action bytes (size bound on
    /// the raw bytes, strict parsing by [`parse_json`], then typing by [`Self::from_value`]).
    ///
    /// # Errors
    /// [`CheckError`] for oversize, malformed or duplicate-key JSON, unknown keys, ill-typed
    /// values and `null` where the policy does not allow absence.
    pub fn from_json_bytes(policy: &Policy, bytes: &[u8]) -> Result<Self, CheckError> {
        Self::from_value(policy, &parse_json(bytes)?)
    }

    /// Type a parsed JSON value against the policy. The size bound applies to the value's
    /// compact serialisation.
    ///
    /// # Errors
    /// [`CheckError`] for non-objects, oversize, unknown or reserved keys, ill-typed values,
    /// over-long strings and `null` where the policy does not allow absence.
    pub fn from_value(policy: &Policy, action: &Value) -> Result<Self, CheckError> {
        let obj = action.as_object().ok_or(CheckError::NotAnObject)?;
        if compact_len(action) > MAX_ACTION_BYTES {
            return Err(CheckError::TooLarge {
                limit: MAX_ACTION_BYTES,
            });
        }
        let mut bindings = BTreeMap::new();
        for (key, value) in obj {
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
            if let Value::String(s) = value {
                if s.len() > MAX_STRING_BYTES {
                    return Err(CheckError::StringTooLong { var: key.clone() });
                }
            }
            let bound = match &var.ty {
                _ if value.is_null() && var.may_be_absent() => BoundValue::Absent,
                _ if value.is_null() => {
                    return Err(CheckError::NullNotAllowed { var: key.clone() })
                }
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

/// Length of the compact JSON serialisation of `v` (counted, not built).
fn compact_len(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    match serde_json::to_writer(&mut c, v) {
        Ok(()) => c.0,
        Err(_) => usize::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::Variable;
    use serde_json::json;

    fn policy() -> Policy {
        let v = |name: &str, ty| Variable {
            name: name.into(),
            ty,
            optional: false,
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
                Variable {
                    optional: true,
                    ..v(
                        "o",
                        VarType::Int {
                            min: None,
                            max: None,
                        },
                    )
                },
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
        let b = Action::from_json_bytes(
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
        let absent = Action::from_value(&p, &json!({"t": null, "o": null})).unwrap();
        assert_eq!(absent.get("t"), Some(&BoundValue::Absent));
        assert_eq!(absent.value("t"), None);
        assert_eq!(absent.canonical(), br#"{"o":null,"t":null}"#);
        assert!(matches!(
            e(json!({"s": {"a": 1}})),
            CheckError::WrongType { .. }
        ));
        let big = "x".repeat(MAX_ACTION_BYTES);
        assert!(matches!(e(json!({"s": big})), CheckError::TooLarge { .. }));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(
            Action::from_json_bytes(&p, deep.as_bytes()).unwrap_err(),
            CheckError::Malformed { .. }
        ));
        assert!(Action::from_json_bytes(&p, br#"{"b":true} x"#).is_err());
        assert!(Action::from_json_bytes(&p, &vec![b' '; MAX_ACTION_BYTES + 1]).is_err());
    }

    // The cases below reproduce issue 13's "measured" section.

    /// `null` only where the policy allows absence: tokens and `optional = true` variables.
    #[test]
    fn null_only_for_tokens_and_optional_variables() {
        let p = policy();
        for var in ["b", "d", "n", "s"] {
            let text = format!(r#"{{"{var}": null}}"#);
            assert_eq!(
                Action::from_json_bytes(&p, text.as_bytes()).unwrap_err(),
                CheckError::NullNotAllowed { var: var.into() },
                "{var}"
            );
        }
        let a = Action::from_json_bytes(&p, br#"{"t": null, "o": null, "n": 1}"#).unwrap();
        assert_eq!(a.get("t"), Some(&BoundValue::Absent));
        assert_eq!(a.get("o"), Some(&BoundValue::Absent));
        assert_eq!(a.value("n"), Some(&BoundValue::Int(1)));
    }

    /// A repeated key is rejected in either order and at any depth (serde_json alone keeps the
    /// last value, so `{"n":5,"n":50000}` and its reverse were two different actions).
    #[test]
    fn duplicate_keys_rejected_at_any_depth() {
        let p = policy();
        for text in [
            r#"{"n":5,"n":10}"#,
            r#"{"n":10,"n":5}"#,
            r#"{"n":5, "b":true, "n":5}"#,
            r#"{"s":{"a":1,"a":2}}"#,
            r#"{"s":[{"x":[{"k":1,"k":1}]}]}"#,
        ] {
            let e = Action::from_json_bytes(&p, text.as_bytes()).unwrap_err();
            assert!(
                matches!(&e, CheckError::Malformed { reason } if reason.contains("duplicate key")),
                "{text}: {e:?}"
            );
        }
        // The same keys in different objects are fine (the nested value is then a type error).
        assert!(matches!(
            Action::from_json_bytes(&p, br#"{"s":[{"k":1},{"k":2}]}"#).unwrap_err(),
            CheckError::WrongType { .. }
        ));
    }

    /// The 64 KiB limit applies to the raw text: padding counts.
    #[test]
    fn size_limit_applies_to_raw_bytes() {
        let p = policy();
        let pad = |n: usize| {
            let mut t = br#"{"n":1"#.to_vec();
            t.resize(t.len() + n, b' ');
            t.push(b'}');
            t
        };
        let exact = pad(MAX_ACTION_BYTES - 7);
        assert_eq!(exact.len(), MAX_ACTION_BYTES);
        assert!(Action::from_json_bytes(&p, &exact).is_ok());
        for text in [pad(MAX_ACTION_BYTES - 6), pad(65_537), pad(2 << 20)] {
            assert_eq!(
                Action::from_json_bytes(&p, &text).unwrap_err(),
                CheckError::TooLarge {
                    limit: MAX_ACTION_BYTES
                }
            );
        }
    }

    /// Every string value has the same limit, tokens included; a long token is "too long",
    /// not "action too large".
    #[test]
    fn every_string_has_the_string_limit() {
        let p = policy();
        let at = "x".repeat(MAX_STRING_BYTES);
        let over = "x".repeat(MAX_STRING_BYTES + 1);
        for var in ["s", "t"] {
            let ok = format!(r#"{{"{var}":"{at}"}}"#);
            assert!(Action::from_json_bytes(&p, ok.as_bytes()).is_ok(), "{var}");
            let bad = format!(r#"{{"{var}":"{over}"}}"#);
            assert!(
                matches!(
                    Action::from_json_bytes(&p, bad.as_bytes()).unwrap_err(),
                    CheckError::StringTooLong { .. }
                ),
                "{var}"
            );
            assert_eq!(
                Action::from_value(&p, &json!({ var: over })).unwrap_err(),
                CheckError::StringTooLong { var: var.into() }
            );
        }
        let token = format!(r#"{{"t":"{}"}}"#, "y".repeat(32_758));
        assert!(token.len() < MAX_ACTION_BYTES);
        assert!(matches!(
            Action::from_json_bytes(&p, token.as_bytes()).unwrap_err(),
            CheckError::StringTooLong { .. }
        ));
    }

    /// `-0` is a JSON integer: it binds 0. `-0.0` stays a float, and `-0` inside a string is
    /// text.
    #[test]
    fn minus_zero_is_the_integer_zero() {
        let p = policy();
        for text in [r#"{"n":-0}"#, r#"{"n": -0 }"#, r#"{"n":-0,"b":true}"#] {
            let a = Action::from_json_bytes(&p, text.as_bytes()).unwrap();
            assert_eq!(a.value("n"), Some(&BoundValue::Int(0)), "{text}");
        }
        for text in [r#"{"n":-0.0}"#, r#"{"n":-0e1}"#] {
            assert!(matches!(
                Action::from_json_bytes(&p, text.as_bytes()).unwrap_err(),
                CheckError::WrongType { .. }
            ));
        }
        assert!(Action::from_json_bytes(&p, br#"{"n":-01}"#).is_err());
        let a = Action::from_json_bytes(&p, br#"{"s":"-0","n":-1}"#);
        assert!(matches!(a.unwrap_err(), CheckError::OutOfBounds { .. }));
        let a = Action::from_json_bytes(&p, br#"{"s":"a\"-0"}"#).unwrap();
        assert_eq!(a.value("s"), Some(&BoundValue::Str("a\"-0".into())));
    }
}
