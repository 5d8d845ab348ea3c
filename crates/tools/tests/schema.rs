//! The schemas tools/list advertises agree with what canonicalize accepts,
//! checked by an independent draft 2020-12 validator (PyPI `jsonschema`,
//! installed by scripts/setup.d/config-schema.sh): a schema never rejects
//! arguments the tool accepts, shape errors are rejected by both, and the
//! tool alone refuses what a schema cannot express (traversal, injection).

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use airlock_config::{
    Approval, ByteSize, Constraint, GitRepos, HttpRequest, HttpRoute, PostgresQuery, Secret,
    SqlParam, SqlType, Tool, ToolKind,
};
use airlock_tools::{build_tool, Limits};
use serde_json::{json, Value};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Expect {
    /// Valid for the schema and the tool.
    Both,
    /// Invalid for both.
    Shape,
    /// Schema-valid, refused by the tool's own checks.
    ToolOnly,
}
use Expect::*;

const VALIDATE: &str = r#"
import json, sys
from jsonschema import Draft202012Validator
cases = json.load(sys.stdin)
out = []
for c in cases:
    Draft202012Validator.check_schema(c["schema"])
    out.append(Draft202012Validator(c["schema"]).is_valid(c["instance"]))
json.dump(out, sys.stdout)
"#;

fn validate(cases: &[(Value, Value)]) -> Vec<bool> {
    let input: Vec<Value> = cases
        .iter()
        .map(|(s, i)| json!({"schema": s, "instance": i}))
        .collect();
    let mut child = Command::new("python3")
        .args(["-c", VALIDATE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(Value::Array(input).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "validator failed (run scripts/setup.sh for PyPI jsonschema)"
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A tool, the agent's constraint, and argument samples with their verdicts.
type Case = (Tool, Option<Constraint>, Vec<(Value, Expect)>);

fn tools() -> Vec<Case> {
    let mut repos = BTreeMap::new();
    repos.insert("svc".to_string(), "/nonexistent/svc.git".into());
    repos.insert("docs".to_string(), "/nonexistent/docs".into());
    let g = GitRepos {
        repos,
        max_file_size: ByteSize::kib(64),
        max_entries: 50,
    };
    let t = |kind| Tool {
        description: None,
        approval: Approval::None,
        kind,
    };
    let only_svc = Constraint {
        repos: Some(vec!["svc".into()]),
        max_entries: Some(10),
        ..Default::default()
    };
    let pg = PostgresQuery {
        dsn: Secret::parse("${env:AIRLOCK_SCHEMA_TEST_DSN}").unwrap(),
        sql: "SELECT 1 WHERE $1::int > 0".into(),
        params: vec![
            SqlParam {
                name: "id".into(),
                ty: SqlType::Integer,
                description: Some("Customer id".into()),
            },
            SqlParam {
                name: "big".into(),
                ty: SqlType::BigInt,
                description: None,
            },
            SqlParam {
                name: "name".into(),
                ty: SqlType::Text,
                description: None,
            },
            SqlParam {
                name: "ok".into(),
                ty: SqlType::Boolean,
                description: None,
            },
            SqlParam {
                name: "f".into(),
                ty: SqlType::Float,
                description: None,
            },
            SqlParam {
                name: "u".into(),
                ty: SqlType::Uuid,
                description: None,
            },
            SqlParam {
                name: "at".into(),
                ty: SqlType::Timestamp,
                description: None,
            },
            SqlParam {
                name: "day".into(),
                ty: SqlType::Date,
                description: None,
            },
        ],
        max_rows: 10,
        timeout: Duration::from_secs(5),
    };
    let pg_ok = json!({"id": 1, "big": 1i64 << 40, "name": "x", "ok": true, "f": 1.5,
        "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "at": "2024-01-01T00:00:00Z", "day": "2024-01-01"});
    let with = |k: &str, v: Value| {
        let mut o = pg_ok.clone();
        o[k] = v;
        o
    };
    let http = HttpRequest {
        base_url: "https://api.internal/v1".parse().unwrap(),
        routes: vec![
            HttpRoute {
                method: "GET".into(),
                path: "/items/{id}".into(),
                body: None,
            },
            HttpRoute {
                method: "POST".into(),
                path: "/deploy".into(),
                body: Some(Default::default()),
            },
        ],
        auth: None,
        max_response_size: ByteSize::kib(64),
        timeout: Duration::from_secs(5),
    };
    vec![
        (
            t(ToolKind::GitReadFile(g.clone())),
            None,
            vec![
                (json!({"repo": "svc", "path": "src/a.rs"}), Both),
                (json!({"repo": "docs", "path": "a.md", "ref": "v1.0"}), Both),
                (json!({"repo": "svc"}), Shape),
                (json!({"repo": "other", "path": "a"}), Shape),
                (json!({"repo": "svc", "path": "a", "x": 1}), Shape),
                (json!({"repo": "svc", "path": 1}), Shape),
                (
                    json!({"repo": "svc", "path": "a", "ref": "--upload-pack=x"}),
                    Shape,
                ),
                (json!({"repo": "svc", "path": "../x"}), ToolOnly),
                (json!({"repo": "svc", "path": ".git/config"}), ToolOnly),
                (json!({"repo": "svc", "path": "a", "ref": "a..b"}), ToolOnly),
            ],
        ),
        (
            t(ToolKind::GitListFiles(g.clone())),
            Some(only_svc.clone()),
            vec![
                (json!({"repo": "svc"}), Both),
                (
                    json!({"repo": "svc", "path": "src/", "recursive": true}),
                    Both,
                ),
                (json!({"repo": "docs"}), Shape),
                (json!({"repo": "svc", "recursive": "yes"}), Shape),
            ],
        ),
        (
            t(ToolKind::GitLog(g)),
            Some(only_svc),
            vec![
                (json!({"repo": "svc", "max_entries": 10}), Both),
                (json!({"repo": "svc", "max_entries": 10.0}), Both),
                (json!({"repo": "svc", "path": "src", "ref": "main"}), Both),
                (json!({"repo": "svc", "max_entries": 11}), Shape),
                (json!({"repo": "svc", "max_entries": 0}), Shape),
                (json!({"repo": "svc", "max_entries": 2.5}), Shape),
            ],
        ),
        (
            t(ToolKind::PostgresQuery(pg)),
            None,
            vec![
                (pg_ok.clone(), Both),
                (with("id", json!(-2147483648i64)), Both),
                (with("f", json!(3)), Both),
                (with("id", json!(2.0)), Both),
                (with("id", json!(2147483648i64)), Shape),
                (with("id", json!("1")), Shape),
                (with("id", json!(1.5)), Shape),
                (with("ok", json!("true")), Shape),
                (with("name", json!(null)), Shape),
                (with("extra", json!(1)), Shape),
                (json!({"id": 1}), Shape),
                (with("u", json!("not-a-uuid")), ToolOnly),
                (with("at", json!("yesterday")), ToolOnly),
                (with("day", json!("2024-13-01")), ToolOnly),
                (with("name", json!("a\u{0}b")), ToolOnly),
            ],
        ),
        (
            t(ToolKind::HttpRequest(http)),
            None,
            vec![
                (json!({"method": "GET", "path": "/items/1"}), Both),
                (
                    json!({"method": "POST", "path": "/deploy", "body": {"a": [1]}, "query": {"x": 1, "y": "z", "b": true}}),
                    Both,
                ),
                (json!({"method": "DELETE", "path": "/items/1"}), Shape),
                (json!({"method": "GET"}), Shape),
                (json!({"method": "GET", "path": "items/1"}), Shape),
                (
                    json!({"method": "GET", "path": "/items/1", "headers": {}}),
                    Shape,
                ),
                (
                    json!({"method": "GET", "path": "/items/1", "query": {"a": [1]}}),
                    Shape,
                ),
                (json!({"method": "GET", "path": "/items/%2e%2e"}), ToolOnly),
                (json!({"method": "GET", "path": "/deploy"}), ToolOnly),
                (
                    json!({"method": "GET", "path": "/items/1", "body": {}}),
                    ToolOnly,
                ),
            ],
        ),
    ]
}

#[test]
fn schemas_agree_with_canonicalize() {
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for (tool, constraint, samples) in tools() {
        let imp = build_tool("t", &tool).unwrap().unwrap();
        let limits = Limits::effective(&tool, constraint.as_ref());
        let schema = imp.input_schema(&limits);
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        for (args, expect) in samples {
            let canon = imp.canonicalize(&args, &limits);
            let tool_ok = canon.is_ok();
            // The canonical form is a fixed point: call() re-canonicalises it.
            if let Ok(c) = canon {
                assert_eq!(imp.canonicalize(&c, &limits).as_ref(), Ok(&c), "{args}");
            }
            cases.push((schema.clone(), args.clone()));
            expected.push((tool.kind.name(), args, expect, tool_ok));
        }
    }
    let schema_ok = validate(&cases);
    for ((kind, args, expect, tool_ok), schema_ok) in expected.into_iter().zip(schema_ok) {
        let got = match (schema_ok, tool_ok) {
            (true, true) => Both,
            (false, false) => Shape,
            (true, false) => ToolOnly,
            (false, true) => panic!("{kind}: the schema rejects {args}, which the tool accepts"),
        };
        assert_eq!(got, expect, "{kind}: {args}");
    }
}
