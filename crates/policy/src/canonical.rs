//! Canonical JSON and the call hash an approval names.
//!
//! The hash must not depend on key order or whitespace the client chose, so
//! objects are written with their keys sorted (independently of whether
//! serde_json preserves insertion order in this build).

use std::fmt;

use serde_json::Value;

/// SHA-256 of `tool`, a NUL byte and the canonical JSON of the arguments.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallHash(pub [u8; 32]);

impl CallHash {
    /// Lower-case hex, as printed to operators and stored.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
            s.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
        }
        s
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<CallHash> {
        let s = s.trim();
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let hi = (chunk[0] as char).to_digit(16)?;
            let lo = (chunk[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(CallHash(out))
    }
}

impl fmt::Display for CallHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for CallHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CallHash({})", self.to_hex())
    }
}

/// The hash of one exact call.
pub fn call_hash(tool: &str, canonical_args: &Value) -> CallHash {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(tool.as_bytes());
    ctx.update(&[0]);
    ctx.update(canonical_json(canonical_args).as_bytes());
    let digest = ctx.finish();
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    CallHash(out)
}

/// JSON with object keys sorted by their UTF-8 bytes and no whitespace.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_value(v, &mut out);
    out
}

fn write_value(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_value(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_and_whitespace_do_not_change_the_hash() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": {"y": [1, 2], "x": "s"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":"s","y":[1,2]},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), r#"{"a":{"x":"s","y":[1,2]},"b":1}"#);
        assert_eq!(call_hash("t", &a), call_hash("t", &b));
    }

    #[test]
    fn any_change_to_tool_or_args_changes_the_hash() {
        let base = call_hash("deploy", &json!({"env": "staging"}));
        assert_ne!(base, call_hash("deploy", &json!({"env": "prod"})));
        assert_ne!(base, call_hash("deploy2", &json!({"env": "staging"})));
        assert_ne!(
            base,
            call_hash("deploy", &json!({"env": "staging", "x": null}))
        );
        // The separator keeps tool and arguments from sliding into each other.
        assert_ne!(call_hash("a", &json!("b")), call_hash("a\"", &json!("")));
    }

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        let h = call_hash("t", &json!({}));
        assert_eq!(CallHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(CallHash::from_hex(&h.to_hex().to_uppercase()), Some(h));
        assert_eq!(CallHash::from_hex("zz"), None);
        assert_eq!(CallHash::from_hex(&"g".repeat(64)), None);
        assert_eq!(CallHash::from_hex(&"é".repeat(32)), None);
    }
}
