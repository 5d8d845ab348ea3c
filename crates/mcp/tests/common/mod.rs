//! Test harness: a catalog of small test tools (served in place of the
//! declared kinds, which live in airlock-tools), an in-process server, and
//! a raw HTTP/1.1 client that can send whatever an attacker would.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_config::{Config, Constraint, Tool};
use airlock_mcp::{
    ArgError, AuditSink, AuthRecord, CallCtx, CallRecord, Catalog, Catalogs, Declared, HttpOptions,
    HttpServer, Output, Served, Shared, SharedOptions,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const KEY_CI: &str = "ci-key-0123456789";
pub const KEY_REV: &str = "reviewer-key-0123456789";

/// `echo` and `deploy` are declared with a real kind; the test catalog
/// serves them as an echo tool whose schema takes `{text}` only.
pub fn yaml(ci_key_env: &str) -> String {
    format!(
        r#"
version: 1
tools:
  echo:
    kind: postgres.query
    dsn: "${{env:AIRLOCK_TEST_UNUSED_DSN}}"
    sql: SELECT $1
    params: [ {{ name: text, type: text }} ]
  deploy:
    kind: postgres.query
    dsn: "${{env:AIRLOCK_TEST_UNUSED_DSN}}"
    sql: SELECT $1
    params: [ {{ name: text, type: text }} ]
    approval: required
  secret_tool:
    kind: postgres.query
    dsn: "${{env:AIRLOCK_TEST_UNUSED_DSN}}"
    sql: SELECT $1
    params: [ {{ name: text, type: text }} ]
agents:
  ci:
    keys: ["${{env:{ci_key_env}}}"]
    allowed_tools: [echo, deploy]
  reviewer:
    keys: ["sha256:{rev}"]
    allowed_tools: [secret_tool]
"#,
        rev = sha256_hex(KEY_REV)
    )
}

pub fn sha256_hex(s: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, s.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn load(yaml: &str) -> Config {
    std::env::set_var("AIRLOCK_TEST_UNUSED_DSN", "postgres://unused");
    airlock_config::load_str(yaml, "test.yaml").expect("test config loads")
}

struct EchoCatalog;
struct EchoDeclared;
struct Echo;

impl Catalog for EchoCatalog {
    fn build(&self, _name: &str, _tool: &Tool) -> Result<Option<Arc<dyn Declared>>, String> {
        Ok(Some(Arc::new(EchoDeclared)))
    }
}

impl Declared for EchoDeclared {
    fn serve(&self, _tool: &Tool, _c: Option<&Constraint>) -> Result<Arc<dyn Served>, String> {
        Ok(Arc::new(Echo))
    }
}

#[async_trait::async_trait]
impl Served for Echo {
    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": { "text": { "type": "string", "maxLength": 1000 } },
            "required": ["text"],
            "additionalProperties": false
        })
    }
    fn canonicalize(&self, args: &Value) -> Result<Value, ArgError> {
        let invalid = |m: &str| ArgError::Invalid(m.to_string());
        let obj = args
            .as_object()
            .ok_or_else(|| invalid("arguments must be an object"))?;
        if let Some(k) = obj.keys().find(|k| *k != "text") {
            return Err(ArgError::Invalid(format!("unknown argument `{k}`")));
        }
        let text = obj
            .get("text")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("`text` (string) is required"))?;
        if text.len() > 1000 {
            return Err(invalid("`text` is longer than 1000 bytes"));
        }
        if text.contains("..") {
            return Err(ArgError::Denied("`..` is not allowed".into()));
        }
        Ok(json!({ "text": text }))
    }
    async fn call(&self, ctx: &CallCtx, args: Value) -> Result<Output, String> {
        let text = args["text"].as_str().unwrap_or_default();
        if text == "sleep" {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        // Three steps 150 ms apart, reported as they happen.
        if text == "steps" {
            for i in 1..=3u32 {
                tokio::time::sleep(Duration::from_millis(150)).await;
                if let Some(p) = &ctx.progress {
                    p.report(f64::from(i), Some(3.0), format!("step {i}")).await;
                }
            }
            // Not right on the heels of the last step: an SDK client may
            // drop a notification that reaches it in the same read as the
            // result (the TypeScript one does), which is not what the
            // interop tests are about.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Output {
            text: format!("{}: {text}", ctx.agent),
            structured: None,
            is_error: false,
        })
    }
}

/// Collects audit records for assertions: tool calls, then refused
/// gateway identity assertions.
#[derive(Default)]
pub struct MemAudit(pub Mutex<Vec<CallRecord>>, pub Mutex<Vec<AuthRecord>>);

impl AuditSink for MemAudit {
    fn record(&self, rec: &CallRecord) {
        self.0.lock().unwrap().push(rec.clone());
    }
    fn auth(&self, rec: &AuthRecord) {
        self.1.lock().unwrap().push(rec.clone());
    }
}

pub fn catalogs() -> Catalogs {
    Catalogs(vec![Arc::new(EchoCatalog)])
}

pub struct TestServer {
    pub shared: Arc<Shared>,
    pub audit: Arc<MemAudit>,
    pub server: HttpServer,
    pub url: String,
    pub addr: std::net::SocketAddr,
    pub _dir: tempfile::TempDir,
}

pub async fn start(env: &str, opts: HttpOptions) -> TestServer {
    std::env::set_var(env, KEY_CI);
    let dir = tempfile::tempdir().unwrap();
    let audit = Arc::new(MemAudit::default());
    let shared = Shared::new(
        &load(&yaml(env)),
        catalogs(),
        SharedOptions {
            approvals: Some(dir.path().join("approvals.db")),
            audit: audit.clone(),
            http_keys: true,
        },
    )
    .expect("server state builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = HttpServer::start(shared.clone(), listener, opts).unwrap();
    let addr = server.local_addr;
    TestServer {
        shared,
        audit,
        url: format!("http://{addr}/mcp"),
        addr,
        server,
        _dir: dir,
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The JSON-RPC message in a JSON or SSE body that carries an `id`.
    pub fn rpc(&self) -> Value {
        if let Ok(v) = serde_json::from_str::<Value>(&self.body) {
            return v;
        }
        for line in self.body.lines() {
            if let Some(data) = line.strip_prefix("data:") {
                if let Ok(v) = serde_json::from_str::<Value>(data.trim()) {
                    if v.get("id").is_some() {
                        return v;
                    }
                }
            }
        }
        panic!(
            "no JSON-RPC response in body (status {}): {}",
            self.status, self.body
        )
    }
}

/// One HTTP/1.1 request on a fresh connection; reads to EOF.
pub async fn raw(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> Reply {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// A POST to /mcp with the given extra header lines.
pub async fn post(addr: std::net::SocketAddr, extra: &[(&str, &str)], body: &Value) -> Reply {
    let body = serde_json::to_vec(body).unwrap();
    let mut head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n",
        addr.port(),
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    raw(addr, &head, &body).await
}

pub fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// initialize (2025-11-25) + initialized; returns the session id.
pub async fn open_session(addr: std::net::SocketAddr, key: &str) -> String {
    let auth = bearer(key);
    let r = post(
        addr,
        &[("Authorization", &auth)],
        &json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
            "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}),
    )
    .await;
    assert_eq!(r.status, 200, "initialize: {}", r.body);
    let sid = r.header("mcp-session-id").expect("session id").to_string();
    let n = post(
        addr,
        &[
            ("Authorization", &auth),
            ("Mcp-Session-Id", &sid),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
        &json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .await;
    assert_eq!(n.status, 202, "initialized: {}", n.body);
    sid
}

/// A request inside a 2025-11-25 session.
pub async fn session_call(
    addr: std::net::SocketAddr,
    key: &str,
    sid: &str,
    id: u64,
    method: &str,
    params: Value,
) -> Reply {
    let auth = bearer(key);
    post(
        addr,
        &[
            ("Authorization", &auth),
            ("Mcp-Session-Id", sid),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
        &json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}),
    )
    .await
}

/// The text of the first content block of a tools/call result.
pub fn result_text(v: &Value) -> String {
    v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}
