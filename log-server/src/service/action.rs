//! The canonical form of an action and the fingerprint of a request: shared by the check use
//! case, the answers to logged decisions and the request-id window (so none of them imports
//! another for it).

use sha2::{Digest as _, Sha256};

/// SHA-256 of the policy commitment and the canonical JSON of the raw action: what a replayed
/// request id must match (also recomputed from private records at start, see
/// [`super::request_ids::RequestIds::restore`]).
pub(crate) fn fingerprint_of(commitment: &[u8], action: &serde_json::Value) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(commitment);
    h.update(canonical_json(action).as_bytes());
    h.finalize().into()
}

/// The action with every non-null value of a `token` variable replaced by `true` (its
/// presence), as the canonical action has it (`spec/receipt.md`: tokens enter the commitment as
/// `true`): what the private record and the request-id fingerprint keep
/// (`spec/policy-language.md`: a token's value is never stored).
pub(crate) fn redact_tokens(
    policy: &verdict_checker::CompiledPolicy,
    action: &serde_json::Value,
) -> serde_json::Value {
    let mut stored = action.clone();
    if let serde_json::Value::Object(map) = &mut stored {
        for (key, value) in map.iter_mut() {
            if is_token(policy, key) && !value.is_null() {
                *value = serde_json::Value::Bool(true);
            }
        }
    }
    stored
}

/// The inverse of [`redact_tokens`], for deciding again from a stored action (an escalation's
/// final decision, spec `approval.md` §4): a token kept as its presence (`true`) becomes an
/// empty token string. The checker reads every token value as its presence only
/// (`BoundValue::TokenPresent`), so the decision is the one the original value gave, and no
/// value is needed to reach it.
pub(crate) fn decidable(
    policy: &verdict_checker::CompiledPolicy,
    stored: &serde_json::Value,
) -> serde_json::Value {
    let mut action = stored.clone();
    if let serde_json::Value::Object(map) = &mut action {
        for (key, value) in map.iter_mut() {
            if is_token(policy, key) && *value == serde_json::Value::Bool(true) {
                *value = serde_json::Value::String(String::new());
            }
        }
    }
    action
}

fn is_token(policy: &verdict_checker::CompiledPolicy, key: &str) -> bool {
    policy
        .ast()
        .variable(key)
        .is_some_and(|v| v.ty == verdict_checker::ast::VarType::Token)
}

/// Canonical JSON: object keys sorted, no whitespace (independent of serde_json features).
pub fn canonical_json(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    let v = map.get(k).map_or_else(|| "null".to_owned(), canonical_json);
                    format!("{}:{v}", serde_json::Value::String(k.clone()))
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        serde_json::Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", parts.join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_recursively_without_whitespace() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{ "b": [ {"z": 1, "a": "x\"y"} ], "a": true, "c": null }"#)
                .unwrap();
        assert_eq!(
            canonical_json(&v),
            r#"{"a":true,"b":[{"a":"x\"y","z":1}],"c":null}"#
        );
    }
}
