//! `airlock mcp` end to end with an `http.request` route that declares a
//! body schema: tools/list shows it, a body that breaks it is an MCP tool
//! error naming field and rule, is audited as an invalid call, and never
//! reaches the real upstream (which counts requests).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

const KEY: &str = "http-body-cli-key-0123456789";

/// An upstream that answers 200 to every request and counts them.
fn upstream() -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            n2.fetch_add(1, Ordering::SeqCst);
            let mut b = [0u8; 8192];
            let _ = s.read(&mut b);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}",
            );
        }
    });
    (port, n)
}

struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One stateless (2026-07-28) JSON-RPC request.
fn call(addr: &str, method: &str, params: Value) -> Value {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let mut head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: {method}\r\nAuthorization: Bearer {KEY}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(n) = name {
        head.push_str(&format!("Mcp-Name: {n}\r\n"));
    }
    head.push_str("\r\n");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let body = out.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {out}"))
}

#[test]
fn invalid_bodies_are_tool_errors_audited_and_never_sent() {
    let (port, hits) = upstream();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit");
    let config = dir.path().join("airlock.yaml");
    std::fs::write(
        &config,
        format!(
            r#"version: 1
tools:
  deploy:
    kind: http.request
    base_url: http://127.0.0.1:{port}/v1
    routes:
      - method: POST
        path: /deploy
        body:
          type: object
          required: [service]
          properties:
            service: {{ type: string, enum: [web, worker] }}
            replicas: {{ type: integer, minimum: 1, maximum: 5 }}
agents:
  ci:
    keys: ["${{env:HTTP_BODY_CLI_KEY}}"]
    allowed_tools: [deploy]
audit:
  dir: {}
"#,
            log.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["mcp", "--config"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .env("HTTP_BODY_CLI_KEY", KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|s| s.strip_suffix("/mcp"))
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    let mut s = Server(child, addr);

    // tools/list carries the route's schema, closed.
    let v = call(&s.1, "tools/list", json!({}));
    let body = &v["result"]["tools"][0]["inputSchema"]["properties"]["body"];
    assert_eq!(body["additionalProperties"], false, "{v}");
    assert_eq!(body["properties"]["replicas"]["maximum"], 5, "{v}");

    let deploy = |b: Value| json!({"name": "deploy", "arguments": {"method": "POST", "path": "/deploy", "body": b}});
    for (b, want) in [
        (
            json!({"service": "web", "replicas": "3"}),
            "`body.replicas`: expected an integer, found a string (type)",
        ),
        (
            json!({"service": "web", "replicas": 9}),
            "`body.replicas`: 9 is more than the maximum 5 (maximum)",
        ),
        (json!({"service": "w\u{0435}b"}), "(enum)"),
        (
            json!({"service": "web", "admin": true}),
            "`body.admin`: is not a declared property",
        ),
    ] {
        let v = call(&s.1, "tools/call", deploy(b.clone()));
        assert_eq!(v["result"]["isError"], true, "{v}");
        let t = v["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default();
        assert!(t.contains(want), "{b}: {t}");
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a refused body reached the upstream"
    );
    let v = call(
        &s.1,
        "tools/call",
        deploy(json!({"service": "web", "replicas": 2})),
    );
    assert_ne!(v["result"]["isError"], true, "{v}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // A graceful stop flushes the log; the refusals are `invalid` calls.
    let st = Command::new("kill")
        .args(["-TERM", &s.0.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let _ = s.0.wait();
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["audit", "query"])
        .arg(&log)
        .args(["--kind", "tool_call", "--format", "jsonl"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let recs: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 5, "{stdout}");
    let invalid: Vec<&Value> = recs
        .iter()
        .filter(|r| r.to_string().contains("\"invalid\""))
        .collect();
    assert_eq!(invalid.len(), 4, "{stdout}");
    assert!(
        invalid
            .iter()
            .all(|r| r.to_string().contains("tools.deploy.schema")),
        "{stdout}"
    );
    assert!(stdout.contains("(maximum)"), "{stdout}");
}
