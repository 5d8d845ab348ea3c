//! `body:` schemas of `http.request` routes: what the loader refuses (with
//! place and fix), and what the validator accepts and refuses, keyword by
//! keyword.

use airlock_config::{load_str, BodySchema, ToolKind};
use serde_json::{json, Value};

fn tool(routes: &str) -> String {
    format!(
        "version: 1\ntools:\n  api:\n    kind: http.request\n    base_url: https://api.example.com\n    routes:\n{routes}"
    )
}

/// The body schema of the only route of a file built from `body` (indented
/// under `body:`).
fn schema(body: &str) -> BodySchema {
    let src = tool(&format!(
        "      - method: POST\n        path: /x\n        body:\n{}",
        indent(body, 10)
    ));
    let c = load_str(&src, "airlock.yaml").unwrap_or_else(|d| panic!("{d}\n{src}"));
    let ToolKind::HttpRequest(h) = &c.tools["api"].kind else {
        panic!()
    };
    h.routes[0].body.clone().expect("a body schema")
}

fn indent(s: &str, n: usize) -> String {
    s.lines()
        .map(|l| format!("{}{l}\n", " ".repeat(n)))
        .collect()
}

/// The errors (line, column, message, help) of a file whose only route has
/// `body` as its schema; the schema starts on line 10.
fn errors(body: &str) -> Vec<(usize, usize, String, String)> {
    let src = tool(&format!(
        "      - method: POST\n        path: /x\n        body:\n{}",
        indent(body, 10)
    ));
    match load_str(&src, "airlock.yaml") {
        Ok(_) => panic!("accepted:\n{src}"),
        Err(d) => d
            .items
            .iter()
            .map(|d| (d.line, d.column, d.message.clone(), d.help.clone()))
            .collect(),
    }
}

fn one_error(body: &str) -> (usize, usize, String, String) {
    let mut e = errors(body);
    assert_eq!(e.len(), 1, "{e:?}");
    e.remove(0)
}

/// The rules that failed, as `path rule`.
fn refused(s: &BodySchema, v: Value) -> Vec<String> {
    match s.validate(&v) {
        Ok(()) => panic!("accepted: {v}"),
        Err(e) => e.iter().map(|e| format!("{} {}", e.path, e.rule)).collect(),
    }
}

fn accepted(s: &BodySchema, v: Value) {
    if let Err(e) = s.validate(&v) {
        panic!("refused {v}: {e:?}");
    }
}

#[test]
fn a_route_without_body_has_none_and_an_empty_schema_accepts_anything() {
    let c = load_str(
        &tool("      - { method: POST, path: /a }\n      - { method: POST, path: /b, body: {} }\n"),
        "airlock.yaml",
    )
    .unwrap();
    let ToolKind::HttpRequest(h) = &c.tools["api"].kind else {
        panic!()
    };
    assert!(h.routes[0].body.is_none());
    let any = h.routes[1].body.as_ref().unwrap();
    for v in [
        json!(null),
        json!(1),
        json!("s"),
        json!([1, {"a": 2}]),
        json!({"x": {"y": 1}}),
    ] {
        accepted(any, v);
    }
    assert_eq!(any.to_json(), json!({}));
}

#[test]
fn the_example_declares_a_body() {
    let c = load_str(airlock_config::EXAMPLE, "airlock.yaml").unwrap();
    let ToolKind::HttpRequest(h) = &c.tools["call_internal_api"].kind else {
        panic!()
    };
    let s = h.routes[0].body.as_ref().unwrap();
    accepted(s, json!({"service": "web", "version": "v1.2.3"}));
    assert_eq!(
        refused(s, json!({"service": "web", "version": "1.2"})),
        ["body.version pattern"]
    );
}

#[test]
fn get_and_head_routes_cannot_declare_a_body() {
    for m in ["GET", "HEAD"] {
        let src = tool(&format!(
            "      - method: {m}\n        path: /x\n        body: {{ type: object }}\n"
        ));
        let d = load_str(&src, "airlock.yaml").unwrap_err();
        assert_eq!(d.len(), 1, "{d}");
        assert_eq!((d.items[0].line, d.items[0].column), (9, 9));
        assert_eq!(
            d.items[0].message,
            format!("a `{m}` route cannot take a body")
        );
    }
    // DELETE may, when it says so.
    let src = tool("      - { method: DELETE, path: /x, body: { type: object } }\n");
    load_str(&src, "airlock.yaml").unwrap();
}

#[test]
fn unknown_keywords_are_errors_with_did_you_mean() {
    let (line, col, msg, help) = one_error("type: string\nmaxLenght: 3\n");
    assert_eq!((line, col), (11, 11));
    assert_eq!(msg, "unknown key `maxLenght` in a body schema");
    assert!(help.starts_with("did you mean `maxLength`?"), "{help}");

    let (_, _, msg, help) = one_error("type: object\nadditionalProperites: true\n");
    assert_eq!(msg, "unknown key `additionalProperites` in a body schema");
    assert!(
        help.starts_with("did you mean `additionalProperties`?"),
        "{help}"
    );

    // Real JSON Schema keywords outside the subset say so.
    let (_, _, msg, help) = one_error("oneOf: []\n");
    assert_eq!(msg, "unknown key `oneOf` in a body schema");
    assert!(
        help.starts_with(
            "`oneOf` is a JSON Schema keyword that airlock's body schemas do not support"
        ),
        "{help}"
    );
    // Nested schemas are checked the same way, at their own line.
    let (line, col, msg, _) =
        one_error("type: object\nproperties:\n  a: { type: string, format: email }\n");
    assert_eq!((line, col), (12, 32));
    assert_eq!(msg, "unknown key `format` in a body schema");
}

#[test]
fn keywords_need_their_type() {
    let (line, col, msg, help) = one_error("type: integer\nmaxLength: 3\n");
    assert_eq!((line, col), (11, 11));
    assert_eq!(
        msg,
        "`maxLength` applies to string values, but this schema's `type` is `integer`"
    );
    assert_eq!(help, "set `type: string` or remove `maxLength`");
    let (_, _, msg, _) = one_error("properties: { a: { type: string } }\n");
    assert_eq!(
        msg,
        "`properties` applies to object values, but this schema has no `type`"
    );
    let (_, _, msg, _) = one_error("type: string\nminimum: 1\n");
    assert_eq!(
        msg,
        "`minimum` applies to integer and number values, but this schema's `type` is `string`"
    );
    let (line, _, msg, help) = one_error("type: array\nmaxItems: 3\n");
    assert_eq!(line, 10);
    assert_eq!(msg, "an array schema must say what its items are");
    assert!(help.contains("`items: {}`"), "{help}");
}

#[test]
fn impossible_schemas_are_errors() {
    let (_, _, msg, _) = one_error("type: string\nminLength: 5\nmaxLength: 2\n");
    assert_eq!(msg, "`minLength` (5) is more than `maxLength` (2)");
    let (_, _, msg, _) = one_error("type: array\nitems: {}\nminItems: 5\nmaxItems: 2\n");
    assert_eq!(msg, "`minItems` (5) is more than `maxItems` (2)");
    let (_, _, msg, _) = one_error("type: number\nminimum: 2.5\nmaximum: -1\n");
    assert_eq!(msg, "`minimum` (2.5) is more than `maximum` (-1)");
    let (line, col, msg, _) =
        one_error("type: object\nproperties: { a: { type: string } }\nrequired: [a, b]\n");
    assert_eq!((line, col), (12, 25));
    assert_eq!(msg, "`b` is required but not declared under `properties`");
    let (_, _, msg, _) =
        one_error("type: object\nproperties: { a: { type: string } }\nrequired: [a, a]\n");
    assert_eq!(msg, "`a` is listed twice in `required`");
    let (_, _, msg, _) = one_error("type: string\nenum: []\n");
    assert_eq!(msg, "`enum` is empty");
    let (line, col, msg, help) = one_error("type: string\nenum: [a, 1]\n");
    assert_eq!((line, col), (11, 21));
    assert_eq!(
        msg,
        "this `enum` value is the number `1`, not of the schema's `type`"
    );
    assert!(help.starts_with("quote it"), "{help}");
    let (_, _, msg, _) = one_error("type: integer\nconst: abc\n");
    assert_eq!(
        msg,
        "the `const` value is the string `abc`, not of the schema's `type`"
    );
    let (_, _, msg, _) = one_error("type: integer\nminimum: ten\n");
    assert_eq!(msg, "`minimum` must be a number, found the string `ten`");
    let (_, _, msg, _) = one_error("type: string\npattern: \"(unclosed\"\n");
    assert!(
        msg.starts_with("`pattern` is not a valid regular expression"),
        "{msg}"
    );
    let (_, _, msg, _) = one_error("type: string\npattern: \"(?=look)ahead\"\n");
    assert!(
        msg.starts_with("`pattern` is not a valid regular expression"),
        "{msg}"
    );
    let (_, _, msg, _) = one_error("type: string\nmaxLength: -1\n");
    assert_eq!(msg, "expected a whole number ≥ 0, found the number `-1`");
    let (_, _, msg, _) = one_error("type:\n");
    assert!(msg.starts_with("expected one of `object`"), "{msg}");
    // An empty value is not silently "anything".
    let src = tool("      - method: POST\n        path: /x\n        body:\n");
    let d = load_str(&src, "airlock.yaml").unwrap_err();
    assert_eq!(d.items[0].message, "an empty body schema", "{d}");
    let (line, col, msg, _) = one_error("type: object\nproperties:\n  a:\n");
    assert_eq!((line, col, msg.as_str()), (12, 14, "an empty body schema"));
    let (_, _, msg, _) = one_error("type: strin\n");
    assert_eq!(msg, "`strin` is not a valid value here");
    // Every problem is reported, not only the first.
    assert_eq!(
        errors("type: object\nproperties:\n  a: { type: string, maxLenght: 1 }\n  b: { type: integer, pattern: x }\n").len(),
        2
    );
}

#[test]
fn type_and_integer_semantics() {
    let s = schema("type: integer\n");
    accepted(&s, json!(3));
    accepted(&s, json!(-3));
    accepted(&s, json!(3.0));
    accepted(&s, json!(u64::MAX));
    assert_eq!(refused(&s, json!(3.5)), ["body type"]);
    assert_eq!(refused(&s, json!("3")), ["body type"]);
    assert_eq!(refused(&s, json!(true)), ["body type"]);
    assert_eq!(refused(&s, json!(null)), ["body type"]);
    let e = s.validate(&json!("3")).unwrap_err();
    assert_eq!(
        e[0].to_string(),
        "`body`: expected an integer, found a string (type)"
    );
    let s = schema("type: number\n");
    accepted(&s, json!(3));
    accepted(&s, json!(3.5));
    assert_eq!(refused(&s, json!("3.5")), ["body type"]);
    for (t, ok, bad) in [
        ("string", json!("x"), json!(1)),
        ("boolean", json!(false), json!("false")),
        ("null", json!(null), json!(0)),
        ("\"null\"", json!(null), json!("null")),
        ("object", json!({}), json!([])),
    ] {
        let s = schema(&format!("type: {t}\n"));
        accepted(&s, ok);
        assert_eq!(refused(&s, bad), ["body type"], "{t}");
    }
    let s = schema("type: array\nitems: {}\n");
    accepted(&s, json!([1, "a", {}]));
    assert_eq!(refused(&s, json!({"0": 1})), ["body type"]);
}

#[test]
fn objects_properties_required_and_additional_properties() {
    let s = schema(
        "type: object\nrequired: [id]\nproperties:\n  id: { type: integer }\n  name: { type: string }\n  meta:\n    type: object\n    properties: { tag: { type: string } }\n",
    );
    accepted(&s, json!({"id": 1}));
    accepted(&s, json!({"id": 1, "name": "n", "meta": {"tag": "t"}}));
    assert_eq!(refused(&s, json!({"name": "n"})), ["body required"]);
    // Type confusion at any depth names the field.
    assert_eq!(refused(&s, json!({"id": "1"})), ["body.id type"]);
    assert_eq!(refused(&s, json!({"id": {"$gt": 0}})), ["body.id type"]);
    assert_eq!(refused(&s, json!({"id": [1]})), ["body.id type"]);
    assert_eq!(
        refused(&s, json!({"id": 1, "meta": {"tag": {"nested": "x"}}})),
        ["body.meta.tag type"]
    );
    // Extra properties, at the top and nested, are refused by default.
    assert_eq!(
        refused(&s, json!({"id": 1, "admin": true})),
        ["body.admin additionalProperties"]
    );
    assert_eq!(
        refused(&s, json!({"id": 1, "meta": {"tag": "t", "x": 1}})),
        ["body.meta.x additionalProperties"]
    );
    // Odd keys are quoted in the path, with invisible characters shown.
    assert_eq!(
        refused(&s, json!({"id": 1, "i\u{200b}d": 1})),
        ["body[\"i\\u{200b}d\"] additionalProperties"]
    );
    // Several problems at once.
    assert_eq!(
        refused(&s, json!({"name": 5, "x": 1})),
        [
            "body required",
            "body.name type",
            "body.x additionalProperties"
        ]
    );
    let open =
        schema("type: object\nadditionalProperties: true\nproperties: { a: { type: integer } }\n");
    accepted(&open, json!({"a": 1, "b": {"c": [1]}}));
    assert_eq!(refused(&open, json!({"a": "x", "b": 1})), ["body.a type"]);
    let closed_empty = schema("type: object\n");
    accepted(&closed_empty, json!({}));
    assert_eq!(
        refused(&closed_empty, json!({"a": 1})),
        ["body.a additionalProperties"]
    );
}

#[test]
fn arrays_items_and_counts() {
    let s =
        schema("type: array\nminItems: 1\nmaxItems: 3\nitems: { type: string, maxLength: 2 }\n");
    accepted(&s, json!(["a", "bb"]));
    assert_eq!(refused(&s, json!([])), ["body minItems"]);
    assert_eq!(refused(&s, json!(["a", "b", "c", "d"])), ["body maxItems"]);
    assert_eq!(
        refused(&s, json!(["a", 1, "ccc"])),
        ["body[1] type", "body[2] maxLength"]
    );
    // A huge array stops at the count, not after walking every item.
    let huge: Vec<Value> = (0..100_000).map(|_| json!(1)).collect();
    assert_eq!(refused(&s, Value::Array(huge)), ["body maxItems"]);
    // At most eight errors come back.
    let many: Vec<Value> = (0..3).map(|_| json!(1)).collect();
    assert_eq!(refused(&s, Value::Array(many)).len(), 3);
    let s = schema("type: array\nitems: { type: integer }\n");
    let many: Vec<Value> = (0..50).map(|_| json!("x")).collect();
    assert_eq!(refused(&s, Value::Array(many)).len(), 8);
}

#[test]
fn strings_lengths_count_code_points_and_pattern_is_unanchored() {
    let s = schema("type: string\nminLength: 2\nmaxLength: 3\n");
    accepted(&s, json!("ab"));
    accepted(&s, json!("ééé")); // 3 code points, 6 bytes
    assert_eq!(refused(&s, json!("a")), ["body minLength"]);
    assert_eq!(refused(&s, json!("abcd")), ["body maxLength"]);
    assert_eq!(refused(&s, json!("x".repeat(1 << 20))), ["body maxLength"]);
    let s = schema("type: string\npattern: \"[0-9]+\"\n");
    accepted(&s, json!("abc123"));
    assert_eq!(refused(&s, json!("abc")), ["body pattern"]);
    let s = schema("type: string\npattern: \"^[a-z]+$\"\n");
    accepted(&s, json!("abc"));
    assert_eq!(refused(&s, json!("abc\n")), ["body pattern"]);
    assert_eq!(refused(&s, json!("abc; rm")), ["body pattern"]);
}

#[test]
fn numbers_minimum_and_maximum_are_inclusive_and_exact() {
    let s = schema("type: integer\nminimum: 1\nmaximum: 10\n");
    accepted(&s, json!(1));
    accepted(&s, json!(10));
    assert_eq!(refused(&s, json!(0)), ["body minimum"]);
    assert_eq!(refused(&s, json!(11)), ["body maximum"]);
    assert_eq!(
        refused(&s, json!(-9_223_372_036_854_775_808i64)),
        ["body minimum"]
    );
    assert_eq!(refused(&s, json!(u64::MAX)), ["body maximum"]);
    let s = schema("type: number\nminimum: -0.5\nmaximum: 0.5\n");
    accepted(&s, json!(0.5));
    accepted(&s, json!(0));
    assert_eq!(refused(&s, json!(0.5000001)), ["body maximum"]);
    // Exact for integers beyond 2^53, where floats would round.
    let s = schema("type: integer\nmaximum: 9007199254740992\n");
    accepted(&s, json!(9_007_199_254_740_992u64));
    assert_eq!(
        refused(&s, json!(9_007_199_254_740_993u64)),
        ["body maximum"]
    );
}

#[test]
fn enum_and_const_are_exact() {
    let s = schema("type: string\nenum: [admin, user]\n");
    accepted(&s, json!("user"));
    // Look-alikes and invisible characters are different strings.
    for trick in [
        "Admin",
        "admin ",
        "adm\u{0131}n",  // dotless i
        "\u{ff41}dmin",  // fullwidth a
        "admin\u{200b}", // zero-width space
        "a\u{0301}dmin", // combining accent
        "\u{0430}dmin",  // Cyrillic a
        "admin\u{0000}",
    ] {
        let e = s.validate(&json!(trick)).unwrap_err();
        assert_eq!(e[0].rule, "enum", "{trick:?}");
        assert!(e[0].message.is_ascii(), "shown escaped: {}", e[0].message);
    }
    let e = s.validate(&json!("adm\u{0131}n")).unwrap_err();
    assert_eq!(
        e[0].message,
        "\"adm\\u{131}n\" is not one of \"admin\", \"user\""
    );
    // NFC and NFD forms of the same text are different values too.
    let s = schema("type: string\nenum: [\"caf\\u00e9\"]\n");
    accepted(&s, json!("caf\u{e9}"));
    assert_eq!(refused(&s, json!("cafe\u{301}")), ["body enum"]);
    // Numbers compare by value.
    let s = schema("type: number\nenum: [1, 2.5]\n");
    accepted(&s, json!(1.0));
    accepted(&s, json!(2.5));
    assert_eq!(refused(&s, json!(2)), ["body enum"]);
    // Quoted YAML scalars are strings, plain ones are typed.
    let s = schema("enum: [\"1\", true, null]\n");
    accepted(&s, json!("1"));
    accepted(&s, json!(true));
    accepted(&s, json!(null));
    assert_eq!(refused(&s, json!(1)), ["body enum"]);
    assert_eq!(refused(&s, json!("true")), ["body enum"]);
    let s = schema("type: object\nproperties:\n  kind: { const: deploy }\n");
    accepted(&s, json!({"kind": "deploy"}));
    assert_eq!(refused(&s, json!({"kind": "Deploy"})), ["body.kind const"]);
    let s = schema("const: { a: [1, 2] }\n");
    accepted(&s, json!({"a": [1.0, 2]}));
    assert_eq!(refused(&s, json!({"a": [2, 1]})), ["body const"]);
}

#[test]
fn deep_nesting_is_refused_without_recursion() {
    let s = schema("{}\n");
    let mut v = json!(1);
    for _ in 0..32 {
        v = json!([v]);
    }
    accepted(&s, v.clone());
    let v = json!({ "a": v });
    let e = s.validate(&v).unwrap_err();
    assert_eq!(
        e[0].to_string(),
        "`body`: nests deeper than 32 levels of arrays and objects (depth)"
    );
    // Far deeper than any stack would survive walking recursively.
    let mut v = json!(null);
    for _ in 0..100_000 {
        v = Value::Array(vec![v]);
    }
    assert_eq!(s.validate(&v).unwrap_err()[0].rule, "depth");
    // Dropping a value this deep recurses in serde_json; unwind by hand.
    let mut cur = v;
    while let Value::Array(mut a) = cur {
        cur = a.pop().unwrap_or(Value::Null);
    }
    // A schema nested deeper than bodies may be is refused at load.
    let mut deep = String::from("{}");
    for _ in 0..34 {
        deep = format!("{{ type: array, items: {deep} }}");
    }
    let (_, _, msg, _) = one_error(&format!("{deep}\n"));
    assert_eq!(msg, "the body schema nests deeper than 32 levels");
}

#[test]
fn to_json_is_the_schema_clients_see() {
    let s = schema(
        "type: object\ndescription: a deploy\nrequired: [v]\nproperties:\n  v: { type: string, pattern: \"^v\", maxLength: 8 }\n  n: { type: integer, minimum: 0 }\n  tags: { type: array, items: { type: string, enum: [a, b] }, maxItems: 2 }\n",
    );
    assert_eq!(
        s.to_json(),
        json!({
            "type": "object",
            "description": "a deploy",
            "required": ["v"],
            "additionalProperties": false,
            "properties": {
                "v": {"type": "string", "pattern": "^v", "maxLength": 8},
                "n": {"type": "integer", "minimum": 0},
                "tags": {"type": "array", "maxItems": 2,
                         "items": {"type": "string", "enum": ["a", "b"]}},
            },
        })
    );
}
