//! JSON body schemas of `http.request` routes: a small subset of JSON Schema
//! (draft 2020-12) that the loader checks when the file is read and the
//! tool enforces before a request is sent.
//!
//! The subset is validated exactly here rather than by a general JSON Schema
//! engine: every keyword has one meaning, an error names the field's path
//! and the rule it broke, and recursion follows the schema (whose depth the
//! loader bounds), never the body alone.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use serde_json::{json, Map, Number, Value};

/// Deepest nesting of arrays and objects accepted in a body, whatever the
/// schema says. Checked without recursion before anything else looks at
/// the body, so a hostile body cannot exhaust the stack.
pub const MAX_BODY_DEPTH: usize = 32;
/// Most errors reported for one body.
const MAX_ERRORS: usize = 8;
/// Compiled size limit of a `pattern` (the regex engine is linear-time;
/// this bounds its memory).
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// The JSON types a schema's `type` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonType {
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
    Null,
}

impl JsonType {
    pub const NAMES: &'static [&'static str] = &[
        "object", "array", "string", "integer", "number", "boolean", "null",
    ];

    pub fn parse(s: &str) -> Option<JsonType> {
        Some(match s {
            "object" => JsonType::Object,
            "array" => JsonType::Array,
            "string" => JsonType::String,
            "integer" => JsonType::Integer,
            "number" => JsonType::Number,
            "boolean" => JsonType::Boolean,
            "null" => JsonType::Null,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            JsonType::Object => "object",
            JsonType::Array => "array",
            JsonType::String => "string",
            JsonType::Integer => "integer",
            JsonType::Number => "number",
            JsonType::Boolean => "boolean",
            JsonType::Null => "null",
        }
    }

    /// Whether `v` is of this type; `integer` is any number without a
    /// fractional part (`2` and `2.0`), as JSON Schema defines it.
    pub fn admits(self, v: &Value) -> bool {
        match (self, v) {
            (JsonType::Object, Value::Object(_))
            | (JsonType::Array, Value::Array(_))
            | (JsonType::String, Value::String(_))
            | (JsonType::Number, Value::Number(_))
            | (JsonType::Boolean, Value::Bool(_))
            | (JsonType::Null, Value::Null) => true,
            (JsonType::Integer, Value::Number(n)) => is_integer(n),
            _ => false,
        }
    }
}

fn is_integer(n: &Number) -> bool {
    n.is_i64()
        || n.is_u64()
        || n.as_f64()
            .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
}

/// A `pattern`: the source as written and its compiled form (Rust `regex`
/// syntax, unanchored like JSON Schema's; no look-around or back-references,
/// and matching takes linear time).
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    re: regex::Regex,
}

impl Pattern {
    pub fn new(source: &str) -> Result<Pattern, String> {
        let re = regex::RegexBuilder::new(source)
            .size_limit(PATTERN_SIZE_LIMIT)
            .build()
            .map_err(|e| {
                e.to_string()
                    .lines()
                    .last()
                    .unwrap_or("")
                    .trim()
                    .to_string()
            })?;
        Ok(Pattern {
            source: source.to_string(),
            re,
        })
    }
    pub fn as_str(&self) -> &str {
        &self.source
    }
    pub fn is_match(&self, s: &str) -> bool {
        self.re.is_match(s)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// One schema of the subset. A schema with no `type` and no other keyword
/// (`{}`) accepts any JSON value; type-specific keywords require `type`
/// (the loader enforces this).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BodySchema {
    pub ty: Option<JsonType>,
    pub description: Option<String>,
    /// object: declared properties.
    pub properties: BTreeMap<String, BodySchema>,
    /// object: properties that must be present.
    pub required: Vec<String>,
    /// object: whether undeclared properties are accepted (with any value).
    /// `false` unless the file says `true`.
    pub additional_properties: bool,
    /// array: the schema of every item.
    pub items: Option<Box<BodySchema>>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    /// string: lengths in Unicode code points, as JSON Schema counts them.
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub pattern: Option<Pattern>,
    /// number/integer: inclusive bounds.
    pub minimum: Option<Number>,
    pub maximum: Option<Number>,
    /// Any type: the value must equal one of these (JSON equality: numbers
    /// by value, strings code point for code point, no normalisation).
    pub enum_values: Option<Vec<Value>>,
    pub const_value: Option<Value>,
}

/// Why a body was refused: where and which rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError {
    /// `body`, `body.items[2].name`, `body["odd key"]`.
    pub path: String,
    /// The schema keyword that failed (`type`, `maxLength`, …), or `depth`.
    pub rule: &'static str,
    pub message: String,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {} ({})", self.path, self.message, self.rule)
    }
}

/// How deep `v` nests (a scalar is 0, `[]` is 1), stopping early once it
/// passes `cap`. Iterative: safe on any input.
pub fn nesting_depth(v: &Value, cap: usize) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(v, 0)];
    while let Some((v, d)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(a) => Box::new(a.iter()),
            Value::Object(o) => Box::new(o.values()),
            _ => continue,
        };
        deepest = deepest.max(d + 1);
        if deepest > cap {
            return deepest;
        }
        stack.extend(children.map(|c| (c, d + 1)));
    }
    deepest
}

impl BodySchema {
    /// Checks `body` (the value of the `body` argument). The depth check
    /// runs first, so the rest only ever walks a shallow value.
    pub fn validate(&self, body: &Value) -> Result<(), Vec<BodyError>> {
        let depth = nesting_depth(body, MAX_BODY_DEPTH);
        if depth > MAX_BODY_DEPTH {
            return Err(vec![BodyError {
                path: "body".into(),
                rule: "depth",
                message: format!("nests deeper than {MAX_BODY_DEPTH} levels of arrays and objects"),
            }]);
        }
        let mut errors = Vec::new();
        self.check(body, &mut "body".to_string(), &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn check(&self, v: &Value, path: &mut String, errors: &mut Vec<BodyError>) {
        if errors.len() >= MAX_ERRORS {
            return;
        }
        let mut fail = |rule: &'static str, message: String| {
            errors.push(BodyError {
                path: path.clone(),
                rule,
                message,
            })
        };
        if let Some(t) = self.ty {
            if !t.admits(v) {
                fail(
                    "type",
                    format!("expected {}, found {}", article(t), describe(v)),
                );
                return;
            }
        }
        if let Some(c) = &self.const_value {
            if !json_eq(c, v) {
                fail("const", format!("must be exactly {}", short(c)));
                return;
            }
        }
        if let Some(list) = &self.enum_values {
            if !list.iter().any(|e| json_eq(e, v)) {
                let shown: Vec<String> = list.iter().take(10).map(short).collect();
                fail(
                    "enum",
                    format!("{} is not one of {}", short(v), shown.join(", ")),
                );
                return;
            }
        }
        match v {
            Value::String(s) => {
                let n = s.chars().count() as u64;
                if let Some(min) = self.min_length.filter(|m| n < *m) {
                    fail(
                        "minLength",
                        format!("is {n} characters; the least accepted is {min}"),
                    );
                }
                if let Some(max) = self.max_length.filter(|m| n > *m) {
                    fail(
                        "maxLength",
                        format!("is {n} characters; the most accepted is {max}"),
                    );
                }
                if let Some(p) = &self.pattern {
                    if !p.is_match(s) {
                        fail(
                            "pattern",
                            format!("does not match the pattern `{}`", p.as_str()),
                        );
                    }
                }
            }
            Value::Number(n) => {
                if let Some(min) = &self.minimum {
                    if num_cmp(n, min) == Some(Ordering::Less) {
                        fail("minimum", format!("{n} is less than the minimum {min}"));
                    }
                }
                if let Some(max) = &self.maximum {
                    if num_cmp(n, max) == Some(Ordering::Greater) {
                        fail("maximum", format!("{n} is more than the maximum {max}"));
                    }
                }
            }
            Value::Array(items) => {
                let n = items.len() as u64;
                if let Some(min) = self.min_items.filter(|m| n < *m) {
                    fail(
                        "minItems",
                        format!("has {n} items; the least accepted is {min}"),
                    );
                }
                if let Some(max) = self.max_items.filter(|m| n > *m) {
                    fail(
                        "maxItems",
                        format!("has {n} items; the most accepted is {max}"),
                    );
                    // Do not walk a list that is already too long.
                    return;
                }
                if let Some(item) = &self.items {
                    for (i, x) in items.iter().enumerate() {
                        let len = path.len();
                        path.push_str(&format!("[{i}]"));
                        item.check(x, path, errors);
                        path.truncate(len);
                        if errors.len() >= MAX_ERRORS {
                            return;
                        }
                    }
                }
            }
            Value::Object(m) => {
                if self.ty == Some(JsonType::Object) {
                    self.check_object(m, path, errors);
                }
            }
            Value::Bool(_) | Value::Null => {}
        }
    }

    fn check_object(&self, m: &Map<String, Value>, path: &mut String, errors: &mut Vec<BodyError>) {
        for r in &self.required {
            if !m.contains_key(r) {
                errors.push(BodyError {
                    path: path.clone(),
                    rule: "required",
                    message: format!("is missing the required property {}", quote_key(r)),
                });
            }
        }
        for (k, x) in m {
            if errors.len() >= MAX_ERRORS {
                return;
            }
            let len = path.len();
            push_key(path, k);
            match self.properties.get(k) {
                Some(s) => s.check(x, path, errors),
                None if self.additional_properties => {}
                None => {
                    let declared: Vec<&str> = self.properties.keys().map(String::as_str).collect();
                    errors.push(BodyError {
                        path: path.clone(),
                        rule: "additionalProperties",
                        message: if declared.is_empty() {
                            "is not a declared property; this object takes none".to_string()
                        } else {
                            format!(
                                "is not a declared property; declared: {}",
                                declared.join(", ")
                            )
                        },
                    });
                }
            }
            path.truncate(len);
        }
    }

    /// The schema as JSON Schema (draft 2020-12), for `tools/list`: every
    /// keyword the validator applies, with `additionalProperties` written
    /// out so clients see the same closed objects.
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        if let Some(t) = self.ty {
            o.insert("type".into(), json!(t.name()));
        }
        if let Some(d) = &self.description {
            o.insert("description".into(), json!(d));
        }
        if self.ty == Some(JsonType::Object) {
            let props: Map<String, Value> = self
                .properties
                .iter()
                .map(|(k, s)| (k.clone(), s.to_json()))
                .collect();
            o.insert("properties".into(), Value::Object(props));
            if !self.required.is_empty() {
                o.insert("required".into(), json!(self.required));
            }
            o.insert(
                "additionalProperties".into(),
                json!(self.additional_properties),
            );
        }
        if let Some(i) = &self.items {
            o.insert("items".into(), i.to_json());
        }
        let mut num = |k: &str, v: &Option<u64>| {
            if let Some(v) = v {
                o.insert(k.into(), json!(v));
            }
        };
        num("minItems", &self.min_items);
        num("maxItems", &self.max_items);
        num("minLength", &self.min_length);
        num("maxLength", &self.max_length);
        if let Some(p) = &self.pattern {
            o.insert("pattern".into(), json!(p.as_str()));
        }
        if let Some(n) = &self.minimum {
            o.insert("minimum".into(), Value::Number(n.clone()));
        }
        if let Some(n) = &self.maximum {
            o.insert("maximum".into(), Value::Number(n.clone()));
        }
        if let Some(e) = &self.enum_values {
            o.insert("enum".into(), Value::Array(e.clone()));
        }
        if let Some(c) = &self.const_value {
            o.insert("const".into(), c.clone());
        }
        Value::Object(o)
    }
}

/// JSON equality as JSON Schema's `enum` and `const` use it: numbers by
/// value (`1` equals `1.0`), everything else structurally and exactly.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, a)| y.get(k).is_some_and(|b| json_eq(a, b)))
        }
        _ => a == b,
    }
}

/// Compares two JSON numbers exactly when both are integers (as i128),
/// as floats otherwise.
pub fn num_cmp(a: &Number, b: &Number) -> Option<Ordering> {
    let int = |n: &Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (int(a), int(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

fn article(t: JsonType) -> &'static str {
    match t {
        JsonType::Object => "an object",
        JsonType::Array => "an array",
        JsonType::String => "a string",
        JsonType::Integer => "an integer",
        JsonType::Number => "a number",
        JsonType::Boolean => "a boolean",
        JsonType::Null => "null",
    }
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "an object",
        Value::Array(_) => "an array",
        Value::String(_) => "a string",
        Value::Number(n) if is_integer(n) => "an integer",
        Value::Number(_) => "a number with a fraction",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
    }
}

/// A value for a message: JSON text, cut at 60 characters. Strings are
/// shown JSON-escaped so invisible and look-alike characters are visible.
fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => {
            let escaped: String = s
                .chars()
                .flat_map(|c| {
                    if c.is_ascii_graphic() || c == ' ' {
                        vec![c]
                    } else {
                        format!("\\u{{{:x}}}", c as u32).chars().collect()
                    }
                })
                .collect();
            format!("\"{escaped}\"")
        }
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
        other => other.to_string(),
    };
    if s.chars().count() > 60 {
        let mut c: String = s.chars().take(60).collect();
        c.push('…');
        c
    } else {
        s
    }
}

fn is_ident(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 64
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn push_key(path: &mut String, k: &str) {
    if is_ident(k) {
        path.push('.');
        path.push_str(k);
    } else {
        path.push_str(&format!("[{}]", short(&Value::String(k.to_string()))));
    }
}

fn quote_key(k: &str) -> String {
    if is_ident(k) {
        format!("`{k}`")
    } else {
        short(&Value::String(k.to_string()))
    }
}
