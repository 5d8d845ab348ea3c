//! Interoperability: the official MCP SDK clients (PyPI `mcp`, npm
//! `@modelcontextprotocol/sdk`) against the server over Streamable HTTP, at
//! both protocol generations. Missing SDKs skip the test on a developer
//! machine and fail it under scripts/test.sh (AIRLOCK_REQUIRE_SDKS=1).

mod common;

use std::path::PathBuf;
use std::process::Stdio;

use airlock_mcp::HttpOptions;
use common::*;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk")
}

fn skip_or_fail(what: &str) -> bool {
    if std::env::var_os("AIRLOCK_REQUIRE_SDKS").is_some() {
        panic!("{what} is required under AIRLOCK_REQUIRE_SDKS (run scripts/setup.sh)");
    }
    eprintln!("skipped: {what} not installed");
    true
}

fn python_sdk() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import mcp, httpx2"])
        .status()
        .is_ok_and(|s| s.success())
}

fn ts_sdk() -> bool {
    sdk_dir()
        .join("node_modules/@modelcontextprotocol/sdk")
        .exists()
}

/// Runs a client script with `calls` on stdin; its JSON line.
async fn run_client(program: &str, args: &[String], calls: &Value) -> Value {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(sdk_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("client starts");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(calls.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("client finishes within 60s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("bad client output ({e}): {stdout}"))
}

fn calls() -> Value {
    json!([
        {"name": "echo", "args": {"text": "hello"}, "meta": {"airlock/intent": "greet"}},
        {"name": "secret_tool", "args": {"text": "x"}},
        {"name": "echo", "args": {"text": 42}},
        {"name": "deploy", "args": {"text": "prod"}},
        {"name": "echo", "args": {"text": "steps"}, "progress": true}
    ])
}

fn check(out: &Value, label: &str) {
    assert_eq!(out["tools"], json!(["echo", "deploy"]), "{label}: {out}");
    let c = &out["calls"];
    assert_eq!(c[0][0], json!(false), "{label}: {out}");
    assert_eq!(c[0][1], json!("ci: hello"), "{label}: {out}");
    assert_eq!(c[0][2], json!([]), "no progress asked, none sent: {out}");
    assert_eq!(c[1][0], json!(true), "{label}: {out}");
    assert!(
        c[1][1]
            .as_str()
            .unwrap()
            .contains("not allowed for agent `ci`"),
        "{label}: {out}"
    );
    assert_eq!(c[2][0], json!(true), "{label}: {out}");
    assert!(
        c[2][1].as_str().unwrap().starts_with("invalid arguments"),
        "{label}: {out}"
    );
    assert_eq!(c[3][0], json!(true), "{label}: {out}");
    assert!(
        c[3][1].as_str().unwrap().starts_with("needs approval"),
        "{label}: {out}"
    );
    // The SDK's progress callback saw the tool's three steps, in order,
    // spread over its run (150 ms apart on the server), before the result.
    assert_eq!(c[4][1], json!("ci: steps"), "{label}: {out}");
    let p = c[4][2].as_array().unwrap();
    let got: Vec<(f64, f64, String)> = p
        .iter()
        .map(|e| {
            (
                e[1].as_f64().unwrap(),
                e[2].as_f64().unwrap(),
                e[3].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1.0, 3.0, "step 1".to_string()),
            (2.0, 3.0, "step 2".to_string()),
            (3.0, 3.0, "step 3".to_string())
        ],
        "{label}: {out}"
    );
    let at = |i: usize| p[i][0].as_f64().unwrap();
    assert!(at(2) - at(0) >= 200.0, "{label}: bunched: {out}");
    assert!(at(2) <= c[4][3].as_f64().unwrap(), "{label}: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_http_at_both_protocol_generations() {
    if !python_sdk() && skip_or_fail("python3 module `mcp` (PyPI mcp 2.x)") {
        return;
    }
    let t = start("AIRLOCK_T_SDK_PY", HttpOptions::default()).await;
    for mode in ["legacy", "2026-07-28", "auto"] {
        let args: Vec<String> = ["client.py", "http", &t.url, KEY_CI, mode]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let out = run_client("python3", &args, &calls()).await;
        check(&out, mode);
        let expect = if mode == "legacy" {
            "2025-11-25"
        } else {
            "2026-07-28"
        };
        assert_eq!(out["protocol"], json!(expect), "{out}");
        assert_eq!(out["schemas"]["echo"]["required"], json!(["text"]));
    }
    // The intent reached the audit record, with the session for the legacy run.
    let recs = t.audit.0.lock().unwrap().clone();
    assert_eq!(recs.len(), 15);
    assert_eq!(recs[0].intent.as_deref(), Some("greet"));
    assert!(recs[0].session.is_some(), "legacy run has a session");
    assert_eq!(recs[5].intent.as_deref(), Some("greet"));
    assert!(recs[5].session.is_none(), "2026-07-28 is stateless");

    // Without a key the SDK gets nothing.
    let args: Vec<String> = ["-c", "import sys,runpy; sys.argv=['client.py','http',sys.argv[1],'','legacy']; runpy.run_path('client.py', run_name='__main__')", &t.url]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let out = tokio::process::Command::new("python3")
        .args(&args)
        .current_dir(sdk_dir())
        .stdin(Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "a keyless client must fail");
    t.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_over_http() {
    if !ts_sdk() && skip_or_fail("npm @modelcontextprotocol/sdk in crates/mcp/tests/sdk") {
        return;
    }
    let t = start("AIRLOCK_T_SDK_TS", HttpOptions::default()).await;
    let args: Vec<String> = ["client.mjs", "http", &t.url, KEY_CI]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let out = run_client("node", &args, &calls()).await;
    check(&out, "typescript");
    assert_eq!(
        t.audit.0.lock().unwrap()[0].intent.as_deref(),
        Some("greet")
    );
    t.server.shutdown().await;
}
