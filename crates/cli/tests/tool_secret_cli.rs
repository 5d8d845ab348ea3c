//! A tool whose secret cannot be resolved: the agent hears only that the
//! credential is not available, and the operator's log names the tool and
//! the reference to fix (never a value).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

#[test]
fn a_missing_tool_secret_is_named_in_the_log_not_to_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("airlock.yaml");
    // Port 9 (discard) is never contacted: the credential fails first.
    std::fs::write(
        &config,
        r#"version: 1
tools:
  items:
    kind: http.request
    base_url: http://127.0.0.1:9/v1
    routes: [ { method: GET, path: "/items/{id}" } ]
    auth: { header: Authorization, value: "Bearer ${env:TOOL_SECRET_CLI_UNSET_TOKEN}" }
agents:
  ci:
    allowed_tools: [items]
"#,
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["mcp", "--config"])
        .arg(&config)
        .args(["--stdio", "--agent", "ci"])
        .env_remove("TOOL_SECRET_CLI_UNSET_TOKEN")
        .env("AIRLOCK_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut send = |v: Value| {
        stdin.write_all(format!("{v}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    };
    send(
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},
        "clientInfo":{"name":"t","version":"1"}}}),
    );
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("\"id\":1"), "{line}");
    send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
    send(
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{
        "name":"items","arguments":{"method":"GET","path":"/items/1"}}}),
    );
    line.clear();
    out.read_line(&mut line).unwrap();
    let reply: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(reply["result"]["isError"], json!(true), "{reply}");
    let text = reply["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("credential is not available"), "{text}");
    // The agent is not told which variable, or how the secret is stored.
    assert!(!text.contains("TOOL_SECRET_CLI_UNSET_TOKEN"), "{text}");
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    let warn = err
        .lines()
        .find(|l| l.contains("WARN") && l.contains("credential"))
        .unwrap_or_else(|| panic!("no WARN line about the credential:\n{err}"));
    assert!(
        warn.contains("tool `items`") && warn.contains("${env:TOOL_SECRET_CLI_UNSET_TOKEN}"),
        "{warn}"
    );
}
