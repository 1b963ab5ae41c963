//! Canonical JSON: the byte encoding that is signed and hashed.
//!
//! Rules (docs/PROTOCOL.md §4): UTF-8, no white space, object keys sorted by byte value, no
//! duplicate keys, numbers are non-negative integers up to 2^53-1 written in shortest decimal
//! form, no `null`, strings escaped exactly as ECMAScript `JSON.stringify` does (`\"`, `\\`,
//! `\b \f \n \r \t`, other controls as `\u00xx` lower-case, everything else literal). A browser
//! reproduces it with `JSON.stringify` over key-sorted objects; see web-client.

use serde_json::Value;

use crate::{Error, Result};

/// Largest integer a canonical document may hold: the largest integer a JavaScript number holds exactly.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Encode a JSON value canonically. Fails on floats, negative numbers, integers above 2^53-1 and `null`.
pub fn to_canonical(value: &Value) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(512);
    write_value(value, &mut out, 0)?;
    Ok(out)
}

/// Parse bytes that must already be canonical JSON. Returns the value; rejects anything whose
/// canonical re-encoding differs from the input (extra white space, unsorted keys, duplicate
/// keys, `1.0`, escaped `/`, ...): one object has exactly one encoding, so one hash.
pub fn from_canonical(bytes: &[u8]) -> Result<Value> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| Error::Malformed(format!("JSON: {e}")))?;
    let again = to_canonical(&value)?;
    if again != bytes {
        return Err(Error::NonCanonical(
            "re-encoding differs from the bytes received".into(),
        ));
    }
    Ok(value)
}

const MAX_DEPTH: usize = 16;

fn write_value(value: &Value, out: &mut Vec<u8>, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::oversize("nesting depth", depth, MAX_DEPTH));
    }
    match value {
        Value::Null => return Err(Error::NonCanonical("null is not allowed".into())),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => match n.as_u64() {
            Some(v) if v <= MAX_SAFE_INTEGER => out.extend_from_slice(v.to_string().as_bytes()),
            _ => {
                return Err(Error::NonCanonical(format!(
                    "number {n} is not an integer in 0..=2^53-1"
                )));
            }
        },
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out, depth + 1)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_value(&map[key], out, depth + 1)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for ch in s.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{08}' => out.extend_from_slice(b"\\b"),
            '\u{0c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_escapes_like_json_stringify() {
        let v = json!({"b": 1, "a": [true, "x\"y\\z\n\u{1}é"], "A": {"z": 0, "y": 9007199254740991u64}});
        let bytes = to_canonical(&v).unwrap();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"A":{"y":9007199254740991,"z":0},"a":[true,"x\"y\\z\n\u0001é"],"b":1}"#
        );
        assert_eq!(from_canonical(&bytes).unwrap(), v);
    }

    #[test]
    fn rejects_what_has_no_single_encoding() {
        for bad in [
            &b"{\"a\": 1}"[..],
            b"{\"b\":1,\"a\":2}",
            b"{\"a\":1.0}",
            b"{\"a\":1,\"a\":1}",
            b"{\"a\":\"\\/\"}",
        ] {
            assert_eq!(
                from_canonical(bad).unwrap_err().code(),
                "non_canonical",
                "{:?}",
                std::str::from_utf8(bad)
            );
        }
        for bad in [json!(null), json!(-1), json!(1.5), json!(9007199254740992u64)] {
            assert_eq!(to_canonical(&bad).unwrap_err().code(), "non_canonical");
        }
        assert_eq!(from_canonical(b"{\"a\":").unwrap_err().code(), "malformed");
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut s = String::new();
        for _ in 0..20 {
            s.push('[');
        }
        for _ in 0..20 {
            s.push(']');
        }
        assert_eq!(from_canonical(s.as_bytes()).unwrap_err().code(), "oversize");
    }
}
