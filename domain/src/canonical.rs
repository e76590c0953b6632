//! Canonical JSON: object keys sorted, no insignificant whitespace. The same value gives
//! the same bytes on every server and in the browser, whatever map order serde_json was
//! built with, which is what makes content hashes comparable.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Writes `value` canonically.
pub fn to_canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(out, key);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::String(s) => write_json_string(out, s),
        // null, booleans and numbers print canonically already (shortest round-trip form).
        other => out.push_str(&other.to_string()),
    }
}

/// Appends `s` as a JSON string literal.
pub fn write_json_string(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).expect("a string always serialises"));
}

/// `sha256:` followed by the lowercase hex digest of `bytes`.
pub fn sha256_tagged(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_at_every_depth() {
        let v = json!({"b": 1, "a": {"z": [1, {"y": true, "x": null}], "c": "é\"\n"}});
        assert_eq!(to_canonical_json(&v), r#"{"a":{"c":"é\"\n","z":[1,{"x":null,"y":true}]},"b":1}"#);
    }

    #[test]
    fn numbers_keep_their_shortest_form() {
        assert_eq!(to_canonical_json(&json!([0.2, 1.0, -3, 1e300])), "[0.2,1.0,-3,1e+300]");
    }

    #[test]
    fn digest_is_tagged_hex() {
        assert_eq!(sha256_tagged(b""), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
