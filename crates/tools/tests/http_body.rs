//! http.request body schemas against a real HTTP server that counts every
//! request: a body that breaks its route's schema never leaves airlock,
//! the error names the field and the rule, and the schema tools/list shows
//! agrees with an independent draft 2020-12 validator (PyPI `jsonschema`).

use std::convert::Infallible;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use airlock_config::{load_str, BodySchema, Constraint, HttpRoute, Tool, ToolKind};
use airlock_tools::{build_tool, CallContext, Limits, ToolError};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// Bodies the server received, in order.
type Seen = Arc<Mutex<Vec<Vec<u8>>>>;

async fn server() -> (u16, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = s2.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |r: Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let b = r.into_body().collect().await.unwrap().to_bytes().to_vec();
                        seen.lock().unwrap().push(b);
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (port, seen)
}

const ROUTES: &str = r#"
      - { method: GET, path: "/items/{id}" }
      - { method: POST, path: /nobody }
      - method: POST
        path: /deploy
        body:
          type: object
          description: one deployment
          required: [service, version]
          properties:
            service: { type: string, enum: [web, worker] }
            version: { type: string, pattern: "^v[0-9]+\\.[0-9]+$", maxLength: 16 }
            replicas: { type: integer, minimum: 1, maximum: 10 }
            tags: { type: array, maxItems: 3, items: { type: string, maxLength: 20 } }
            meta:
              type: object
              properties:
                note: { type: string }
                extra: {}
      - method: PUT
        path: "/items/{id}"
        body: { type: object, additionalProperties: true }
"#;

/// A tool loaded from YAML, as an operator would write it.
fn tool(port: u16, routes: &str) -> Tool {
    let src = format!(
        "version: 1\ntools:\n  api:\n    kind: http.request\n    base_url: http://127.0.0.1:{port}/v1\n    routes:{routes}"
    );
    let c = load_str(&src, "airlock.yaml").unwrap_or_else(|d| panic!("{d}"));
    c.tools["api"].clone()
}

async fn run(t: &Tool, c: Option<&Constraint>, args: Value) -> Result<String, ToolError> {
    let imp = build_tool("api", t).unwrap().unwrap();
    let limits = Limits::effective(t, c);
    let canon = imp.canonicalize(&args, &limits)?;
    let cx = CallContext {
        agent: "a".into(),
        session: None,
        cancel: CancellationToken::new(),
    };
    Ok(imp.call(&cx, canon, &limits).await?.text)
}

fn deploy(body: Value) -> Value {
    json!({"method": "POST", "path": "/deploy", "body": body})
}

/// The message of an invalid-arguments error.
async fn invalid(t: &Tool, args: Value) -> String {
    match run(t, None, args.clone()).await {
        Err(ToolError::InvalidArguments(m)) => m,
        other => panic!("{args}: expected invalid arguments, got {other:?}"),
    }
}

#[tokio::test]
async fn valid_bodies_are_sent_as_validated() {
    let (port, seen) = server().await;
    let t = tool(port, ROUTES);
    let body = json!({"service": "web", "version": "v1.2", "replicas": 3,
        "tags": ["a", "b"], "meta": {"note": "n", "extra": {"any": [1, null]}}});
    run(&t, None, deploy(body.clone())).await.unwrap();
    run(
        &t,
        None,
        deploy(json!({"service": "worker", "version": "v10.0", "replicas": 10.0})),
    )
    .await
    .unwrap();
    run(
        &t,
        None,
        json!({"method": "PUT", "path": "/items/7", "body": {"free": {"form": 1}}}),
    )
    .await
    .unwrap();
    run(&t, None, json!({"method": "POST", "path": "/nobody"}))
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    assert_eq!(serde_json::from_slice::<Value>(&seen[0]).unwrap(), body);
    assert!(seen[3].is_empty());
}

#[tokio::test]
async fn invalid_bodies_never_reach_the_server() {
    let (port, seen) = server().await;
    let t = tool(port, ROUTES);
    let ok = || json!({"service": "web", "version": "v1.2"});
    let with = |k: &str, v: Value| {
        let mut o = ok();
        o[k] = v;
        o
    };
    // (body, the part of the message that names the field and the rule)
    let cases: Vec<(Value, &str)> = vec![
        // Type confusion.
        (with("replicas", json!("3")), "`body.replicas`: expected an integer, found a string (type)"),
        (with("replicas", json!(2.5)), "`body.replicas`: expected an integer, found a number with a fraction (type)"),
        (with("replicas", json!({"$gt": 0})), "`body.replicas`: expected an integer, found an object (type)"),
        (with("service", json!(["web"])), "`body.service`: expected a string, found an array (type)"),
        (with("meta", json!("x")), "`body.meta`: expected an object, found a string (type)"),
        (with("meta", json!({"note": {"deep": 1}})), "`body.meta.note`: expected a string, found an object (type)"),
        (json!("web"), "`body`: expected an object, found a string (type)"),
        (json!([ok()]), "`body`: expected an object, found an array (type)"),
        // Extra properties, top level and nested.
        (with("admin", json!(true)), "`body.admin`: is not a declared property; declared: meta, replicas, service, tags, version (additionalProperties)"),
        (with("meta", json!({"note": "n", "x": 1})), "`body.meta.x`: is not a declared property"),
        (with("__proto__", json!({})), "`body.__proto__`: is not a declared property"),
        // Required.
        (json!({"service": "web"}), "`body`: is missing the required property `version` (required)"),
        // Bounds.
        (with("replicas", json!(0)), "`body.replicas`: 0 is less than the minimum 1 (minimum)"),
        (with("replicas", json!(11)), "`body.replicas`: 11 is more than the maximum 10 (maximum)"),
        (with("replicas", json!(u64::MAX)), "(maximum)"),
        (with("tags", json!(vec!["t"; 100_000])), "`body.tags`: has 100000 items; the most accepted is 3 (maxItems)"),
        (with("tags", json!(["x".repeat(21)])), "`body.tags[0]`: is 21 characters; the most accepted is 20 (maxLength)"),
        (with("version", json!(format!("v1.{}", "1".repeat(500_000)))), "`body.version`: is 500003 characters; the most accepted is 16 (maxLength)"),
        (with("version", json!("v1.2\n")), "`body.version`: does not match the pattern `^v[0-9]+\\.[0-9]+$` (pattern)"),
        (with("version", json!("1.2; rm -rf /")), "(pattern)"),
        // Unicode look-alikes of enum values.
        (with("service", json!("w\u{0435}b")), "`body.service`: \"w\\u{435}b\" is not one of \"web\", \"worker\" (enum)"),
        (with("service", json!("web\u{200b}")), "(enum)"),
        (with("service", json!("\u{ff57}eb")), "(enum)"),
        (with("service", json!("WEB")), "(enum)"),
        (with("service", json!("we\u{301}b")), "(enum)"),
    ];
    for (body, want) in cases {
        let m = invalid(&t, deploy(body.clone())).await;
        assert!(
            m.starts_with("`body` does not match the schema of `POST /deploy`: "),
            "{m}"
        );
        assert!(m.contains(want), "{body}:\n{m}\nwanted {want}");
    }
    // Several problems are reported together.
    let m = invalid(&t, deploy(json!({"service": 1, "replicas": "x", "z": 0}))).await;
    assert!(
        m.contains("(required)")
            && m.contains("`body.service`")
            && m.contains("`body.replicas`")
            && m.contains("`body.z`"),
        "{m}"
    );
    // A route that declares a body needs one; one that declares none refuses one.
    let m = invalid(&t, json!({"method": "POST", "path": "/deploy"})).await;
    assert_eq!(
        m,
        "`POST /deploy` needs a JSON `body`; see the `body` schema of this tool"
    );
    let m = invalid(&t, json!({"method": "POST", "path": "/nobody", "body": {}})).await;
    assert_eq!(
        m,
        "`POST /nobody` takes no `body`; send the request without one"
    );
    let m = invalid(
        &t,
        json!({"method": "GET", "path": "/items/1", "body": "x"}),
    )
    .await;
    assert_eq!(
        m,
        "`GET /items/{id}` takes no `body`; send the request without one"
    );
    let m = invalid(&t, json!({"method": "PUT", "path": "/items/1", "body": []})).await;
    assert!(
        m.contains("`body`: expected an object, found an array (type)"),
        "{m}"
    );

    assert_eq!(
        seen.lock().unwrap().len(),
        0,
        "a refused body reached the server"
    );
}

#[tokio::test]
async fn deep_nesting_fails_closed_without_overflowing() {
    let (port, seen) = server().await;
    let t = tool(port, ROUTES);
    let want = "`body` nests deeper than 32 levels of arrays and objects";
    // As a client would send it: JSON text, parsed by serde_json (whose own
    // recursion limit of 128 stops anything deeper at the MCP layer).
    let text = format!(
        "{{\"method\":\"PUT\",\"path\":\"/items/1\",\"body\":{{\"a\":{}1{}}}}}",
        "[".repeat(100),
        "]".repeat(100)
    );
    let args: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(invalid(&t, args).await, want);
    // Built in memory, far deeper than a recursive walk would survive on a
    // test thread's stack; refused before anything recurses.
    let mut deep = json!(1);
    for _ in 0..200_000 {
        deep = Value::Array(vec![deep]);
    }
    let mut args = json!({"method": "PUT", "path": "/items/1"});
    args["body"] = json!({});
    args["body"]["a"] = deep;
    let imp = build_tool("api", &t).unwrap().unwrap();
    let limits = Limits::effective(&t, None);
    match imp.canonicalize(&args, &limits) {
        Err(ToolError::InvalidArguments(m)) => assert_eq!(m, want),
        other => panic!("{other:?}"),
    }
    // serde_json drops values recursively: take this one apart by hand.
    let mut cur = args["body"]["a"].take();
    while let Value::Array(mut a) = cur {
        cur = a.pop().unwrap_or(Value::Null);
    }
    // 32 levels are fine.
    let mut ok = json!(1);
    for _ in 0..31 {
        ok = json!([ok]);
    }
    run(
        &t,
        None,
        json!({"method": "PUT", "path": "/items/1", "body": {"a": ok}}),
    )
    .await
    .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn duplicate_keys_cannot_smuggle_a_second_value() {
    let (port, seen) = server().await;
    let t = tool(port, ROUTES);
    // serde_json (as the MCP layer parses) keeps the last of duplicate keys;
    // the body sent is re-serialised from the value that was validated, so
    // the server can never see the other one.
    let text = r#"{"method":"POST","path":"/deploy","body":{"service":"evil","version":"v1.0","service":"web"}}"#;
    run(&t, None, serde_json::from_str(text).unwrap())
        .await
        .unwrap();
    let text = r#"{"method":"POST","path":"/deploy","body":{"service":"web","version":"v1.0","service":"evil"}}"#;
    let m = invalid(&t, serde_json::from_str(text).unwrap()).await;
    assert!(m.contains("`body.service`: \"evil\" is not one of"), "{m}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let sent = String::from_utf8(seen[0].clone()).unwrap();
    assert_eq!(sent.matches("\"service\"").count(), 1, "{sent}");
    assert!(!sent.contains("evil"), "{sent}");
}

#[tokio::test]
async fn constraints_keep_the_routes_schema() {
    let (port, seen) = server().await;
    let t = tool(port, ROUTES);
    // A constraint names routes as `METHOD /path`; the tool's schema stays.
    let c = Constraint {
        routes: Some(vec![HttpRoute {
            method: "POST".into(),
            path: "/deploy".into(),
            body: None,
        }]),
        ..Default::default()
    };
    match run(
        &t,
        Some(&c),
        deploy(json!({"service": "web", "version": "v1.0", "x": 1})),
    )
    .await
    {
        Err(ToolError::InvalidArguments(m)) => assert!(m.contains("`body.x`"), "{m}"),
        other => panic!("{other:?}"),
    }
    run(
        &t,
        Some(&c),
        deploy(json!({"service": "web", "version": "v1.0"})),
    )
    .await
    .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
    // And tools/list for that agent shows exactly that schema.
    let imp = build_tool("api", &t).unwrap().unwrap();
    let s = imp.input_schema(&Limits::effective(&t, Some(&c)));
    let ToolKind::HttpRequest(h) = &t.kind else {
        panic!()
    };
    let mut want = h.routes[2].body.as_ref().unwrap().to_json();
    assert_eq!(s["properties"]["body"]["additionalProperties"], false);
    assert_eq!(
        s["properties"]["body"]["required"],
        json!(["service", "version"])
    );
    want["description"] = s["properties"]["body"]["description"].clone();
    assert_eq!(s["properties"]["body"], want);
    assert!(s["properties"]["body"]["description"]
        .as_str()
        .unwrap()
        .starts_with("one deployment. JSON request body"));
}

#[test]
fn input_schema_shows_the_body_schemas() {
    let t = tool(
        1,
        "\n      - { method: GET, path: /a }\n      - { method: DELETE, path: /b }\n",
    );
    let imp = build_tool("api", &t).unwrap().unwrap();
    let s = imp.input_schema(&Limits::effective(&t, None));
    // No route takes a body: the property is not offered at all (and
    // additionalProperties is false), so clients do not send one.
    assert!(s["properties"].get("body").is_none(), "{s}");
    assert_eq!(s["additionalProperties"], false);

    let t = tool(1, ROUTES);
    let imp = build_tool("api", &t).unwrap().unwrap();
    let s = imp.input_schema(&Limits::effective(&t, None));
    let b = &s["properties"]["body"];
    let variants = b["anyOf"].as_array().unwrap();
    assert_eq!(variants.len(), 2);
    assert_eq!(variants[0]["title"], "POST /deploy");
    assert_eq!(variants[1]["title"], "PUT /items/{id}");
    assert_eq!(variants[1]["additionalProperties"], true);
    let d = b["description"].as_str().unwrap();
    assert!(
        d.contains("these routes take no body: GET /items/{id}, POST /nobody"),
        "{d}"
    );
}

/// Our validator and PyPI `jsonschema` (draft 2020-12, on the schema as
/// tools/list shows it) agree on every keyword of the subset.
#[test]
fn the_validator_agrees_with_an_independent_one() {
    let schemas: Vec<(&str, Vec<Value>)> = vec![
        (
            "type: integer",
            vec![
                json!(1),
                json!(1.0),
                json!(1.5),
                json!("1"),
                json!(null),
                json!(-9_007_199_254_740_993i64),
            ],
        ),
        (
            "type: number",
            vec![json!(1), json!(1.5), json!("1.5"), json!(true)],
        ),
        ("type: string", vec![json!("a"), json!(1), json!(["a"])]),
        ("type: boolean", vec![json!(true), json!(0), json!("true")]),
        ("type: \"null\"", vec![json!(null), json!(0), json!("")]),
        ("type: object", vec![json!({}), json!({"a": 1}), json!([])]),
        (
            "{ type: object, additionalProperties: true }",
            vec![json!({"a": 1}), json!([])],
        ),
        (
            "{ type: object, properties: { a: { type: integer } }, required: [a] }",
            vec![
                json!({"a": 1}),
                json!({}),
                json!({"a": "1"}),
                json!({"a": 1, "b": 2}),
            ],
        ),
        (
            "{ type: array, items: { type: string } }",
            vec![json!([]), json!(["a"]), json!(["a", 1]), json!({})],
        ),
        (
            "{ type: array, items: {}, minItems: 1, maxItems: 2 }",
            vec![json!([]), json!([1]), json!([1, 2, 3])],
        ),
        (
            "{ type: string, minLength: 2, maxLength: 3 }",
            vec![
                json!("a"),
                json!("ab"),
                json!("abcd"),
                json!("ééé"),
                json!("😀😀😀"),
                json!("😀😀😀😀"),
            ],
        ),
        (
            "{ type: string, pattern: \"^[a-z]+$\" }",
            vec![json!("abc"), json!("ab1"), json!("")],
        ),
        (
            "{ type: string, pattern: \"[0-9]\" }",
            vec![json!("a1b"), json!("ab")],
        ),
        (
            "{ type: integer, minimum: -2, maximum: 5 }",
            vec![json!(-2), json!(-3), json!(5), json!(6), json!(5.0)],
        ),
        (
            "{ type: number, minimum: 0.5, maximum: 1.5 }",
            vec![json!(0.5), json!(0.49), json!(1.5), json!(1.51)],
        ),
        (
            "{ type: string, enum: [a, b] }",
            vec![json!("a"), json!("c"), json!("A"), json!("a\u{200b}")],
        ),
        (
            "{ enum: [1, \"1\", null] }",
            vec![json!(1), json!(1.0), json!("1"), json!(null), json!(2)],
        ),
        (
            "{ const: { a: [1, 2] } }",
            vec![
                json!({"a": [1, 2]}),
                json!({"a": [1.0, 2]}),
                json!({"a": [2, 1]}),
                json!({"a": [1, 2], "b": 0}),
            ],
        ),
        ("{}", vec![json!(1), json!({"x": [null]})]),
    ];
    let mut cases = Vec::new();
    let mut ours = Vec::new();
    for (yaml, instances) in &schemas {
        let s = body_schema(yaml);
        for i in instances {
            cases.push(json!({"schema": s.to_json(), "instance": i}));
            ours.push((yaml, i.clone(), s.validate(i).is_ok()));
        }
    }
    let theirs = validate(&cases);
    assert_eq!(theirs.len(), ours.len());
    for ((yaml, i, ok), expected) in ours.into_iter().zip(theirs) {
        assert_eq!(
            ok, expected,
            "schema {yaml}, instance {i}: ours {ok}, jsonschema {expected}"
        );
    }
}

fn body_schema(yaml: &str) -> BodySchema {
    let yaml = if yaml.starts_with('{') {
        yaml.to_string()
    } else {
        format!("{{ {yaml} }}")
    };
    let routes = format!("\n      - method: POST\n        path: /x\n        body: {yaml}\n");
    let ToolKind::HttpRequest(h) = tool(1, &routes).kind else {
        panic!()
    };
    h.routes[0].body.clone().unwrap()
}

const VALIDATE: &str = r#"
import json, sys
from jsonschema import Draft202012Validator
out = []
for c in json.load(sys.stdin):
    Draft202012Validator.check_schema(c["schema"])
    out.append(Draft202012Validator(c["schema"]).is_valid(c["instance"]))
json.dump(out, sys.stdout)
"#;

fn validate(cases: &[Value]) -> Vec<bool> {
    let mut child = Command::new("python3")
        .args(["-c", VALIDATE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with jsonschema (scripts/setup.d/config-schema.sh)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(cases).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "jsonschema failed");
    serde_json::from_slice(&out.stdout).unwrap()
}
