//! Strict reading of a tool's JSON arguments: an object, only known keys,
//! typed values, bounded lengths. Every message names the argument.

use serde_json::{Map, Value};

use crate::ToolError;

pub struct Args<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Args<'a> {
    /// `args` must be an object holding only `known` keys.
    pub fn new(args: &'a Value, known: &[&str]) -> Result<Args<'a>, ToolError> {
        let map = match args {
            Value::Object(m) => m,
            Value::Null => {
                static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
                EMPTY.get_or_init(Map::new)
            }
            _ => return Err(ToolError::invalid("arguments must be a JSON object")),
        };
        if let Some(k) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(ToolError::invalid(format!(
                "unknown argument `{}`; this tool takes: {}",
                clip(k, 64),
                known.join(", ")
            )));
        }
        Ok(Args { map })
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// An optional string of at most `max` bytes.
    pub fn opt_str(&self, key: &str, max: usize) -> Result<Option<&'a str>, ToolError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.len() <= max => Ok(Some(s)),
            Some(Value::String(s)) => Err(ToolError::invalid(format!(
                "`{key}` is {} bytes long; the most accepted is {max}",
                s.len()
            ))),
            Some(_) => Err(ToolError::invalid(format!("`{key}` must be a string"))),
        }
    }

    pub fn str(&self, key: &str, max: usize) -> Result<&'a str, ToolError> {
        self.opt_str(key, max)?
            .ok_or_else(|| ToolError::invalid(format!("the `{key}` argument is required")))
    }

    /// An optional non-negative integer no larger than `max`.
    pub fn opt_u32(&self, key: &str, max: u32) -> Result<Option<u32>, ToolError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match as_int(v) {
                Some(n) if n >= 1 && n <= i64::from(max) => Ok(Some(n as u32)),
                _ => Err(ToolError::invalid(format!(
                    "`{key}` must be an integer from 1 to {max}"
                ))),
            },
        }
    }
}

/// A JSON integer as JSON Schema defines it: any number with no fractional
/// part (`2` and `2.0` alike), exact only within ±2^53 for the float form.
pub fn as_int(v: &Value) -> Option<i64> {
    if let Some(n) = v.as_i64() {
        return Some(n);
    }
    let f = v.as_f64()?;
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    (f.fract() == 0.0 && f.abs() <= EXACT).then_some(f as i64)
}

/// At most `max` characters of `s`, for echoing input in messages.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}
