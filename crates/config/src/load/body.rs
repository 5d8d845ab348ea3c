//! `body:` of an `http.request` route: a JSON Schema subset, read from YAML
//! with every problem reported at its place. What is accepted here is what
//! `crate::body` enforces; nothing is read and then ignored.

use std::collections::BTreeMap;

use serde_json::{Map as JsonMap, Number, Value as Json};

use super::decode::fields;
use super::diag::list;
use super::read::{self, open, Cx};
use super::yaml::{Node, Value};
use crate::body::{num_cmp, BodySchema, JsonType, Pattern, MAX_BODY_DEPTH};
use crate::spec;

/// JSON Schema keywords outside the subset, named so the error says "not
/// supported" rather than only "unknown".
const UNSUPPORTED: &[&str] = &[
    "$schema",
    "$id",
    "$ref",
    "$defs",
    "definitions",
    "oneOf",
    "anyOf",
    "allOf",
    "not",
    "if",
    "then",
    "else",
    "format",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "patternProperties",
    "propertyNames",
    "dependentRequired",
    "dependentSchemas",
    "prefixItems",
    "contains",
    "default",
    "examples",
    "title",
    "nullable",
    "unevaluatedProperties",
];

/// Keywords that only apply to one type (number keywords to both numeric
/// types).
fn keyword_types(key: &str) -> Option<&'static [JsonType]> {
    Some(match key {
        "properties" | "required" | "additionalProperties" => &[JsonType::Object],
        "items" | "minItems" | "maxItems" => &[JsonType::Array],
        "minLength" | "maxLength" | "pattern" => &[JsonType::String],
        "minimum" | "maximum" => &[JsonType::Integer, JsonType::Number],
        _ => return None,
    })
}

/// Reads a route's `body:` schema.
pub(crate) fn schema(cx: &mut Cx, node: &Node) -> Option<BodySchema> {
    one(cx, node, 0)
}

fn one(cx: &mut Cx, node: &Node, depth: usize) -> Option<BodySchema> {
    if depth > MAX_BODY_DEPTH {
        cx.err(
            node.pos,
            format!("the body schema nests deeper than {MAX_BODY_DEPTH} levels"),
            format!(
                "bodies deeper than {MAX_BODY_DEPTH} levels are refused anyway; flatten the schema"
            ),
        );
        return None;
    }
    if node.is_null() {
        // An empty value would open as `{}`, which accepts anything: say so
        // explicitly or not at all.
        cx.err(
            node.pos,
            "an empty body schema",
            "write `{}` to accept any JSON value here, or the schema (like `{ type: object, properties: {…} }`)",
        );
        return None;
    }
    let elsewhere = |key: &str| {
        UNSUPPORTED.contains(&key).then(|| {
            format!("`{key}` is a JSON Schema keyword that airlock's body schemas do not support")
        })
    };
    let m = open(
        cx,
        node,
        node.pos,
        "a body schema",
        fields(&spec::BODY_SCHEMA),
        &elsewhere,
    )?;
    let mut ok = true;
    let ty = match m.entry("type", |_| true) {
        // `type: null` is YAML's null, but written out it can only mean
        // the JSON type (an empty `type:` is still an error).
        Some(e) if matches!(&e.value.value, Value::Scalar { text, plain: true } if text == "null") => {
            Some(JsonType::Null)
        }
        Some(e) => match read::choice(cx, &e.value, JsonType::NAMES) {
            Some(t) => JsonType::parse(t),
            None => {
                ok = false;
                None
            }
        },
        None => None,
    };
    // Type-specific keywords need their type.
    for key in [
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
    ] {
        let Some(e) = m.entry(key, |_| true) else {
            continue;
        };
        let wanted = keyword_types(key).unwrap_or(&[]);
        if ty.is_some_and(|t| wanted.contains(&t)) {
            continue;
        }
        let names: Vec<&str> = wanted.iter().map(|t| t.name()).collect();
        let msg = match ty {
            Some(t) => format!(
                "`{key}` applies to {} values, but this schema's `type` is `{}`",
                names.join(" and "),
                t.name()
            ),
            None => format!(
                "`{key}` applies to {} values, but this schema has no `type`",
                names.join(" and ")
            ),
        };
        cx.err(
            e.key_pos,
            msg,
            format!("set `type: {}` or remove `{key}`", names[0]),
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    let description = m.string(cx, "description");

    let mut properties = BTreeMap::new();
    if let Some(entries) = m.map(cx, "properties") {
        for e in entries {
            match one(cx, &e.value, depth + 1) {
                Some(s) => {
                    properties.insert(e.key.clone(), s);
                }
                None => ok = false,
            }
        }
    }
    let additional_properties = m.boolean(cx, "additionalProperties").unwrap_or(false);
    let mut required = Vec::new();
    if let Some(n) = m.node("required", |_| true) {
        match read::seq(cx, n) {
            Some(items) => {
                for item in items {
                    let Some(name) = read::string(cx, item) else {
                        ok = false;
                        continue;
                    };
                    if required.contains(&name) {
                        cx.err(
                            item.pos,
                            format!("`{name}` is listed twice in `required`"),
                            "remove the duplicate",
                        );
                        ok = false;
                    } else if !additional_properties && !properties.contains_key(&name) {
                        cx.err(
                            item.pos,
                            format!("`{name}` is required but not declared under `properties`"),
                            format!(
                                "undeclared properties are refused, so no body could pass; declare `{name}` under `properties` (declared: {})",
                                list(properties.keys())
                            ),
                        );
                        ok = false;
                    } else {
                        required.push(name);
                    }
                }
            }
            None => ok = false,
        }
    }

    let items = match m.node("items", |_| true) {
        Some(n) => match one(cx, n, depth + 1) {
            Some(s) => Some(Box::new(s)),
            None => {
                ok = false;
                None
            }
        },
        None => None,
    };
    if ty == Some(JsonType::Array) && items.is_none() && ok {
        cx.err(
            m.at,
            "an array schema must say what its items are",
            "add `items:` with the items' schema (`items: {}` accepts any item)",
        );
        ok = false;
    }

    let count = |cx: &mut Cx, key: &str| m.int(cx, key);
    let min_items = count(cx, "minItems");
    let max_items = count(cx, "maxItems");
    let min_length = count(cx, "minLength");
    let max_length = count(cx, "maxLength");
    for (lo, hi, lo_key, hi_key) in [
        (min_items, max_items, "minItems", "maxItems"),
        (min_length, max_length, "minLength", "maxLength"),
    ] {
        if let (Some(l), Some(h)) = (lo, hi) {
            if l > h {
                let pos = m.entry(lo_key, |_| true).map_or(m.at, |e| e.key_pos);
                cx.err(
                    pos,
                    format!("`{lo_key}` ({l}) is more than `{hi_key}` ({h})"),
                    "no value could pass; correct one of them",
                );
                ok = false;
            }
        }
    }

    let pattern = match m.node("pattern", |_| true) {
        Some(n) => match read::string(cx, n) {
            Some(src) => match Pattern::new(&src) {
                Ok(p) => Some(p),
                Err(e) => {
                    cx.err(
                        n.pos,
                        format!("`pattern` is not a valid regular expression: {e}"),
                        "write a Rust `regex` expression (no look-around or back-references)",
                    );
                    ok = false;
                    None
                }
            },
            None => {
                ok = false;
                None
            }
        },
        None => None,
    };

    let mut number = |cx: &mut Cx, key: &str| -> Option<Number> {
        let n = m.node(key, |_| true)?;
        match to_json(n) {
            Json::Number(x) => Some(x),
            _ => {
                cx.err(
                    n.pos,
                    format!("`{key}` must be a number, found {}", n.describe()),
                    format!("write a number like `{key}: 0`"),
                );
                ok = false;
                None
            }
        }
    };
    let minimum = number(cx, "minimum");
    let maximum = number(cx, "maximum");
    if let (Some(l), Some(h)) = (&minimum, &maximum) {
        if num_cmp(l, h) == Some(std::cmp::Ordering::Greater) {
            let pos = m.entry("minimum", |_| true).map_or(m.at, |e| e.key_pos);
            cx.err(
                pos,
                format!("`minimum` ({l}) is more than `maximum` ({h})"),
                "no value could pass; correct one of them",
            );
            ok = false;
        }
    }

    let admits = |v: &Json| ty.is_none_or(|t| t.admits(v));
    let type_help = |v: &Json| match (ty, v) {
        (Some(JsonType::String), Json::Number(_) | Json::Bool(_) | Json::Null) => {
            "quote it, like `\"1\"`, to make it a string".to_string()
        }
        (Some(t), _) => format!("write a value of type `{}`", t.name()),
        (None, _) => String::new(),
    };
    let enum_values = match m.node("enum", |_| true) {
        Some(n) => match read::seq(cx, n) {
            Some([]) => {
                cx.err(
                    n.pos,
                    "`enum` is empty",
                    "list at least one value; no body could pass otherwise",
                );
                ok = false;
                None
            }
            Some(items) => {
                let mut vals = Vec::with_capacity(items.len());
                for item in items {
                    let v = to_json(item);
                    if !admits(&v) {
                        cx.err(
                            item.pos,
                            format!(
                                "this `enum` value is {}, not of the schema's `type`",
                                item.describe()
                            ),
                            type_help(&v),
                        );
                        ok = false;
                    }
                    vals.push(v);
                }
                Some(vals)
            }
            None => {
                ok = false;
                None
            }
        },
        None => None,
    };
    let const_value = match m.node("const", |_| true) {
        Some(n) => {
            let v = to_json(n);
            if !admits(&v) {
                cx.err(
                    n.pos,
                    format!(
                        "the `const` value is {}, not of the schema's `type`",
                        n.describe()
                    ),
                    type_help(&v),
                );
                ok = false;
            }
            Some(v)
        }
        None => None,
    };

    ok.then_some(BodySchema {
        ty,
        description,
        properties,
        required,
        additional_properties,
        items,
        min_items,
        max_items,
        min_length,
        max_length,
        pattern,
        minimum,
        maximum,
        enum_values,
        const_value,
    })
}

/// A YAML value as JSON: plain scalars are typed as YAML 1.2's core schema
/// types them (null, booleans, numbers), quoted ones are strings.
fn to_json(node: &Node) -> Json {
    match &node.value {
        _ if node.is_null() => Json::Null,
        Value::Scalar { text, plain: false } => Json::String(text.clone()),
        Value::Scalar { text, plain: true } => match text.as_str() {
            "true" | "True" | "TRUE" => Json::Bool(true),
            "false" | "False" | "FALSE" => Json::Bool(false),
            t => number(t).map_or_else(|| Json::String(t.to_string()), Json::Number),
        },
        Value::Seq(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|e| (e.key.clone(), to_json(&e.value)))
                .collect::<JsonMap<_, _>>(),
        ),
    }
}

/// A decimal number as YAML writes one (`42`, `-1`, `2.5`, `1e3`); `inf`,
/// `nan`, hex and `1_000` stay strings.
fn number(t: &str) -> Option<Number> {
    let numeric = !t.is_empty()
        && t.bytes().any(|b| b.is_ascii_digit())
        && t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
    if !numeric {
        return None;
    }
    if let Ok(i) = t.parse::<i64>() {
        return Some(i.into());
    }
    if let Ok(u) = t.parse::<u64>() {
        return Some(u.into());
    }
    t.parse::<f64>().ok().and_then(Number::from_f64)
}
