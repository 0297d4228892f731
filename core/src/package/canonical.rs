//! Canonical JSON of evidence packages (spec `evidence-package.md` §2): serde_json compact output
//! with the keys of every object sorted bytewise, recursively. Independent of serde_json's
//! `preserve_order` feature: keys are sorted here, never taken in map order.

use serde_json::Value;

/// The canonical encoding of `value` (spec `evidence-package.md` §2).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

/// Parse `bytes` as JSON and require that they are exactly its canonical encoding.
///
/// # Errors
/// A one-line reason when the bytes are not JSON or not canonical.
pub fn parse_canonical(bytes: &[u8]) -> Result<Value, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    if canonical_json(&value).as_bytes() != bytes {
        return Err("not in canonical JSON (compact, keys sorted)".to_owned());
    }
    Ok(value)
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                if let Some(v) = map.get(k) {
                    write_value(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(v, out);
            }
            out.push(']');
        }
        // Scalars: serde_json's own compact form (minimal escapes, shortest numbers).
        other => out.push_str(&other.to_string()),
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push_str(&Value::String(s.to_owned()).to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_keys_recursively_and_refuses_other_bytes() {
        let v: Value =
            serde_json::from_str(r#"{"b":1,"a":{"d":[1,{"f":2,"e":"é"}],"c":null}}"#).unwrap();
        let c = canonical_json(&v);
        assert_eq!(c, r#"{"a":{"c":null,"d":[1,{"e":"é","f":2}]},"b":1}"#);
        assert!(parse_canonical(c.as_bytes()).is_ok());
        assert!(parse_canonical(br#"{"b":1,"a":2}"#).is_err());
        assert!(parse_canonical(br#"{"a": 2}"#).is_err());
        assert!(parse_canonical(br#"{"a":"\u00e9"}"#).is_err());
        assert!(parse_canonical(b"{\"a\":1}\n").is_err());
    }
}
