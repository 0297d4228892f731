//! From a tool call's arguments to a policy action (`docs/gateway-guide.md` §4 "How arguments
//! become an action").
//!
//! Each mapped variable takes a constant (`value`, or `absent = true` for an explicitly absent
//! value: JSON `null`, `spec/decision-semantics.md` §2), or the argument at a JSON pointer,
//! optionally through an exact value map or a longest-prefix map. An argument that is missing, or
//! whose value no map entry matches, takes the `default` if one is given and is otherwise left
//! out: the variable stays unbound, and the server decides by validity (allow only if every
//! completion passes). Arguments the mapping does not name do not enter the action.
//!
//! The action is typed against the policy here (the checker's [`verdict_checker::Action`]
//! parser) so that an argument of the wrong type is a JSON-RPC error to the caller rather than a
//! server round trip. The decision itself is always the server's.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use verdict_checker::ast::Policy;

/// One `[tools.<name>]` mapping, validated against its policy.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolMapping {
    /// The policy the tool's calls are checked against.
    pub policy: String,
    /// Variable name and where its value comes from.
    pub variables: Vec<(String, Source)>,
    /// 1-based line of the `[tools.<name>]` table, for errors found after loading.
    pub line: usize,
}

/// Where a variable's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A constant, already typed against the policy; `null` states the value is absent.
    Constant(Value),
    /// The argument at `pointer` (RFC 6901), through `transform`.
    Argument {
        /// JSON pointer into the arguments object.
        pointer: String,
        /// How the argument's value becomes the variable's value.
        transform: Transform,
        /// Used when the argument is missing or no map entry matches.
        default: Option<Value>,
    },
}

/// How an argument's value becomes a variable's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Transform {
    /// The value as given.
    Identity,
    /// `map`: exact match of the value (strings as they are, other scalars as JSON text).
    Map(BTreeMap<String, Value>),
    /// `prefix_map`: longest matching prefix of a string value. Values with `.` or `..` path
    /// segments are refused, so `/data/internal/../outbox/x` cannot borrow the mapping of
    /// `/data/internal/`.
    PrefixMap(Vec<(String, Value)>),
}

/// Why arguments could not become an action. Rendered as the message of a JSON-RPC
/// invalid-params error.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MappingError {
    /// A `prefix_map` argument is not a string.
    #[error("argument {pointer} must be a string")]
    NotAString {
        /// The pointer.
        pointer: String,
    },
    /// A `prefix_map` argument contains `.` or `..` segments.
    #[error("argument {pointer} must not contain . or .. path segments")]
    DotSegments {
        /// The pointer.
        pointer: String,
    },
    /// The action does not type-check against the policy.
    #[error("arguments do not fit policy `{policy}`: {detail}")]
    Ill {
        /// The policy.
        policy: String,
        /// The checker's message.
        detail: String,
    },
}

impl ToolMapping {
    /// Build the action for a call with `arguments`, typed against `policy`.
    ///
    /// # Errors
    /// [`MappingError`] for arguments that cannot become a well-typed action.
    pub fn action(&self, policy: &Policy, arguments: &Value) -> Result<Value, MappingError> {
        let mut action = Map::new();
        for (var, source) in &self.variables {
            if let Some(v) = value_of(source, arguments)? {
                action.insert(var.clone(), v);
            }
        }
        let action = Value::Object(action);
        verdict_checker::Action::from_value(policy, &action).map_err(|e| MappingError::Ill {
            policy: policy.name.clone(),
            detail: e.to_string(),
        })?;
        Ok(action)
    }
}

fn value_of(source: &Source, arguments: &Value) -> Result<Option<Value>, MappingError> {
    let (pointer, transform, default) = match source {
        Source::Constant(v) => return Ok(Some(v.clone())),
        Source::Argument {
            pointer,
            transform,
            default,
        } => (pointer, transform, default),
    };
    let Some(arg) = arguments.pointer(pointer) else {
        return Ok(default.clone());
    };
    let mapped = match transform {
        Transform::Identity => Some(arg.clone()),
        Transform::Map(map) => {
            let key = match arg {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            map.get(&key).cloned()
        }
        Transform::PrefixMap(entries) => {
            let s = arg.as_str().ok_or_else(|| MappingError::NotAString {
                pointer: pointer.clone(),
            })?;
            if s.split(['/', '\\']).any(|seg| seg == "." || seg == "..") {
                return Err(MappingError::DotSegments {
                    pointer: pointer.clone(),
                });
            }
            entries
                .iter()
                .find(|(prefix, _)| s.starts_with(prefix.as_str()))
                .map(|(_, v)| v.clone())
        }
    };
    Ok(mapped.or_else(|| default.clone()))
}

/// Check the top-level arguments against the tool's JSON Schema as far as `required` and each
/// property's `type` go (the upstream validates the rest). Returns a message for a JSON-RPC
/// invalid-params error.
///
/// # Errors
/// A one-line message naming the first offending argument.
pub fn check_schema(
    schema: &Map<String, Value>,
    arguments: &Map<String, Value>,
) -> Result<(), String> {
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if !arguments.contains_key(r) {
                return Err(format!("missing required argument `{r}`"));
            }
        }
    }
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Ok(());
    };
    for (name, value) in arguments {
        let Some(ty) = props.get(name).and_then(|p| p.get("type")) else {
            continue;
        };
        let ok = match ty {
            Value::String(t) => has_type(t, value),
            Value::Array(ts) => ts
                .iter()
                .filter_map(Value::as_str)
                .any(|t| has_type(t, value)),
            _ => true,
        };
        if !ok {
            return Err(format!("argument `{name}` must be of type {ty}"));
        }
    }
    Ok(())
}

fn has_type(ty: &str, v: &Value) -> bool {
    match ty {
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "null" => v.is_null(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn policy() -> Policy {
        let text = include_str!("../../testdata/policies/customer-data-egress.toml");
        verdict_checker::compile(text, verdict_core::receipt::Salt([0; 32]))
            .unwrap()
            .ast()
            .clone()
    }

    fn mapping() -> ToolMapping {
        ToolMapping {
            policy: "customer-data-egress".into(),
            line: 1,
            variables: vec![
                (
                    "destination".into(),
                    Source::Argument {
                        pointer: "/path".into(),
                        transform: Transform::PrefixMap(vec![
                            ("/data/outbox/".into(), json!("external")),
                            ("/data/".into(), json!("internal")),
                        ]),
                        default: None,
                    },
                ),
                (
                    "record_count".into(),
                    Source::Argument {
                        pointer: "/rows".into(),
                        transform: Transform::Identity,
                        default: Some(json!(1)),
                    },
                ),
                (
                    "classification".into(),
                    Source::Argument {
                        pointer: "/label".into(),
                        transform: Transform::Map(BTreeMap::from([(
                            "pii".into(),
                            json!("restricted"),
                        )])),
                        default: None,
                    },
                ),
                ("authorization_token".into(), Source::Constant(Value::Null)),
            ],
        }
    }

    #[test]
    fn arguments_become_the_action() {
        let p = policy();
        let m = mapping();
        let a = m
            .action(
                &p,
                &json!({"path": "/data/outbox/x.csv", "rows": 7, "label": "pii"}),
            )
            .unwrap();
        assert_eq!(
            a,
            json!({"destination": "external", "record_count": 7, "classification": "restricted", "authorization_token": null})
        );
        // Longest prefix wins; missing argument takes the default; unmatched map value is unbound.
        let a = m
            .action(&p, &json!({"path": "/data/notes.txt", "label": "other"}))
            .unwrap();
        assert_eq!(
            a,
            json!({"destination": "internal", "record_count": 1, "authorization_token": null})
        );
        // No prefix matches: unbound.
        let a = m.action(&p, &json!({"path": "/etc/passwd"})).unwrap();
        assert_eq!(a, json!({"record_count": 1, "authorization_token": null}));
    }

    #[test]
    fn bad_arguments_are_errors() {
        let p = policy();
        let m = mapping();
        assert!(matches!(
            m.action(&p, &json!({"path": "/data/internal/../outbox/x"})),
            Err(MappingError::DotSegments { .. })
        ));
        assert!(matches!(
            m.action(&p, &json!({"path": 5})),
            Err(MappingError::NotAString { .. })
        ));
        let e = m
            .action(&p, &json!({"path": "/data/a", "rows": "many"}))
            .unwrap_err();
        assert!(e.to_string().contains("record_count"), "{e}");
        let e = m
            .action(&p, &json!({"path": "/data/a", "rows": -1}))
            .unwrap_err();
        assert!(matches!(e, MappingError::Ill { .. }), "{e}");
    }

    #[test]
    fn schema_types_and_required_are_checked() {
        let schema = json!({"type": "object", "properties": {"path": {"type": "string"}, "n": {"type": ["integer", "null"]}}, "required": ["path"]});
        let schema = schema.as_object().unwrap();
        let args = |v: Value| v.as_object().unwrap().clone();
        assert!(check_schema(schema, &args(json!({"path": "a", "n": 3}))).is_ok());
        assert!(check_schema(schema, &args(json!({"path": "a", "n": null}))).is_ok());
        assert!(check_schema(schema, &args(json!({"path": 1})))
            .unwrap_err()
            .contains("`path`"));
        assert!(check_schema(schema, &args(json!({"path": "a", "n": 1.5})))
            .unwrap_err()
            .contains("`n`"));
        assert!(check_schema(schema, &args(json!({})))
            .unwrap_err()
            .contains("missing required"));
    }
}
