//! JSON Schema (draft 2020-12) of `airlock.yaml`, built from [`crate::spec`]
//! for editors (`airlock config schema`). The loader checks more than a
//! schema can say (cross-references, tightening); this is the shape only.

use serde_json::{json, Map, Value};

use crate::spec::{self, Field, Obj, Req, Ty};

pub fn json_schema() -> Value {
    let mut root = object(&spec::ROOT);
    let o = root.as_object_mut().expect("object schema");
    o.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    o.insert(
        "$id".into(),
        json!("https://airlock.dev/schema/airlock.yaml.json"),
    );
    o.insert("title".into(), json!("airlock.yaml"));
    root
}

fn object(obj: &Obj) -> Value {
    let mut v = fields_schema(obj.fields.iter());
    v["description"] = json!(obj.doc);
    v
}

fn fields_schema<'a>(fields: impl Iterator<Item = &'a Field>) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for f in fields {
        let mut s = ty(&f.ty);
        s["description"] = json!(f.doc);
        if let Req::Default(d) = f.req {
            s["default"] = default_value(&f.ty, d);
        }
        if f.req == Req::Required {
            required.push(json!(f.name));
        }
        props.insert(f.name.to_string(), s);
    }
    json!({
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": false,
    })
}

fn default_value(t: &Ty, d: &str) -> Value {
    match (t, d) {
        (_, "[]") => json!([]),
        (_, "{}") => json!({}),
        (Ty::Int { .. }, n) => n.parse::<u64>().map_or_else(|_| json!(n), |n| json!(n)),
        (Ty::Bool, b) => json!(b == "true"),
        (_, s) => json!(s),
    }
}

fn ty(t: &Ty) -> Value {
    match t {
        Ty::Str | Ty::Path => json!({ "type": "string" }),
        Ty::Int { min, max } => {
            let mut v = json!({ "type": "integer", "minimum": min });
            if *max < u64::MAX {
                v["maximum"] = json!(max);
            }
            v
        }
        Ty::Bool => json!({ "type": "boolean" }),
        Ty::Size => json!({ "oneOf": [
            { "type": "string", "pattern": "^[0-9]+ ?(B|KiB|MiB|GiB|TiB)?$" },
            { "type": "integer", "minimum": 0 },
        ]}),
        Ty::Duration => json!({ "type": "string", "pattern": "^([0-9]+(ms|s|m|h|d))+$" }),
        Ty::Host => json!({ "type": "string", "pattern": "^(\\*\\.)?[^*/]+$" }),
        Ty::Cidr => json!({ "type": "string", "pattern": "/[0-9]+$" }),
        Ty::Url => json!({ "type": "string", "format": "uri", "pattern": "^https?://" }),
        Ty::Secret => json!({ "type": "string", "pattern": "\\$\\{(env|file):[^}]+\\}" }),
        Ty::Addr => json!({ "type": "string", "pattern": ":[0-9]+$" }),
        Ty::Enum(values) => json!({ "enum": values }),
        Ty::List(item) => json!({ "type": "array", "items": ty(item) }),
        Ty::Map(value) => json!({ "type": "object", "additionalProperties": ty(value) }),
        Ty::Obj(o) => object(o),
        Ty::Tool => {
            let variants: Vec<Value> = spec::TOOL_KINDS
                .iter()
                .map(|k| {
                    let mut v = fields_schema(spec::TOOL_COMMON.iter().chain(k.fields));
                    v["properties"]["kind"] = json!({ "const": k.name, "description": k.doc });
                    v["title"] = json!(k.name);
                    v
                })
                .collect();
            json!({ "type": "object", "oneOf": variants })
        }
        Ty::Route => {
            let variants: Vec<Value> = spec::ROUTE_FORMS
                .iter()
                .map(|f| {
                    let mut v = ty(&f.ty);
                    v["description"] = json!(f.doc);
                    let mut props = Map::new();
                    props.insert(f.name.into(), v);
                    for o in spec::ROUTE_OPTIONS {
                        let mut v = ty(&o.ty);
                        v["description"] = json!(o.doc);
                        props.insert(o.name.into(), v);
                    }
                    json!({
                        "type": "object",
                        "properties": props,
                        "required": [f.name],
                        "additionalProperties": false,
                    })
                })
                .collect();
            json!({ "oneOf": variants })
        }
        Ty::AgentKey => {
            json!({ "type": "string", "pattern": "^sha256:[0-9a-fA-F]{64}$|\\$\\{(env|file):[^}]+\\}" })
        }
        // The loader checks the keywords; editors get the shape only.
        Ty::Schema => json!({ "type": "object" }),
        Ty::Json => json!({}),
        Ty::Number => json!({ "type": "number" }),
        Ty::RouteRef => {
            json!({ "type": "string", "pattern": "^(GET|HEAD|POST|PUT|PATCH|DELETE) /" })
        }
    }
}
