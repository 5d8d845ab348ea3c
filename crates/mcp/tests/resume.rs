//! Resumable SSE (2025-11-25) and `subscriptions/listen` (2026-07-28), on
//! the wire: a client whose `tools/call` stream drops after the first
//! progress event reconnects with `GET` + `Last-Event-ID` and gets the rest
//! of that stream, each event once; another agent's key cannot resume (or
//! otherwise touch) the session; a malformed or unknown `Last-Event-ID`
//! gets a clear answer; `subscriptions/listen` on a server that offers no
//! list-changed notifications is "method not found".

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use airlock_mcp::HttpOptions;
use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One SSE event: its `id:` (if any) and its `data:` parsed as JSON (if
/// it is JSON; the priming event has empty data).
#[derive(Debug, Clone)]
struct Event {
    id: Option<String>,
    data: Option<Value>,
    retry: Option<u64>,
}

/// A response read incrementally.
struct Sse {
    s: TcpStream,
    status: u16,
    headers: String,
    raw: Vec<u8>,
    body: Vec<u8>,
    chunked: bool,
    eof: bool,
}

impl Sse {
    async fn send(addr: SocketAddr, head: String, body: &[u8]) -> Sse {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(body).await.unwrap();
        let mut r = Sse {
            s,
            status: 0,
            headers: String::new(),
            raw: Vec::new(),
            body: Vec::new(),
            chunked: false,
            eof: false,
        };
        while !r.eof {
            if let Some(i) = r.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                r.headers = String::from_utf8_lossy(&r.raw[..i]).to_string();
                r.status = r
                    .headers
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                r.chunked = r.header("transfer-encoding").contains("chunked");
                r.raw.drain(..i + 4);
                break;
            }
            r.fill().await;
        }
        r
    }

    fn header(&self, name: &str) -> String {
        self.headers
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    }

    async fn fill(&mut self) {
        let mut buf = [0u8; 8192];
        let n = match tokio::time::timeout(Duration::from_secs(10), self.s.read(&mut buf)).await {
            Ok(Ok(n)) => n,
            _ => 0,
        };
        if n == 0 {
            self.eof = true;
        }
        self.raw.extend_from_slice(&buf[..n]);
    }

    /// Moves whole chunks (or everything, unchunked) into `body`.
    fn dechunk(&mut self) {
        if !self.chunked {
            self.body.append(&mut self.raw);
            return;
        }
        while let Some(eol) = self.raw.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&self.raw[..eol]).trim(), 16)
                .unwrap_or(0);
            let start = eol + 2;
            if self.raw.len() < start + size + 2 {
                break;
            }
            self.body.extend_from_slice(&self.raw[start..start + size]);
            self.raw.drain(..start + size + 2);
        }
    }

    /// The next SSE event, or `None` at the end of the stream. Comment-only
    /// blocks (keep-alives) are skipped.
    async fn next(&mut self) -> Option<Event> {
        loop {
            self.dechunk();
            if let Some(i) = self.body.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.body.drain(..i + 2).collect();
                let mut ev = Event {
                    id: None,
                    data: None,
                    retry: None,
                };
                let mut fields = 0;
                for line in String::from_utf8_lossy(&block).lines() {
                    let (k, v) = line.split_once(':').unwrap_or((line, ""));
                    let v = v.strip_prefix(' ').unwrap_or(v);
                    match k {
                        "id" => ev.id = Some(v.to_string()),
                        "data" => ev.data = serde_json::from_str(v).ok(),
                        "retry" => ev.retry = v.parse().ok(),
                        _ => continue,
                    }
                    fields += 1;
                }
                if fields > 0 {
                    return Some(ev);
                }
                continue;
            }
            if self.eof {
                return None;
            }
            self.fill().await;
        }
    }

    async fn rest(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(e) = self.next().await {
            out.push(e);
        }
        out
    }
}

fn post_head(addr: SocketAddr, key: &str, sid: &str, len: usize) -> String {
    format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {len}\r\nConnection: close\r\nAuthorization: Bearer {key}\r\nMcp-Session-Id: {sid}\r\nMCP-Protocol-Version: 2025-11-25\r\n\r\n",
        addr.port()
    )
}

fn get_head(addr: SocketAddr, key: &str, sid: &str, last: Option<&str>) -> String {
    let last = last
        .map(|l| format!("Last-Event-ID: {l}\r\n"))
        .unwrap_or_default();
    format!(
        "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: text/event-stream\r\nConnection: close\r\nAuthorization: Bearer {key}\r\nMcp-Session-Id: {sid}\r\nMCP-Protocol-Version: 2025-11-25\r\n{last}\r\n",
        addr.port()
    )
}

/// Starts the three-step echo with a progress token and reads up to and
/// including the first progress event; returns the open stream, the
/// events so far and the first progress event's id.
async fn call_until_first_progress(
    addr: SocketAddr,
    sid: &str,
    id: u64,
) -> (Sse, Vec<Event>, String) {
    let body = serde_json::to_vec(
        &json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{
        "name":"echo","arguments":{"text":"steps"},"_meta":{"progressToken": "p"}}}),
    )
    .unwrap();
    let mut s = Sse::send(addr, post_head(addr, KEY_CI, sid, body.len()), &body).await;
    assert_eq!(s.status, 200);
    assert!(s.header("content-type").starts_with("text/event-stream"));
    let mut seen = Vec::new();
    loop {
        let e = s.next().await.expect("stream ended before any progress");
        let is_progress = e
            .data
            .as_ref()
            .is_some_and(|d| d["method"] == "notifications/progress");
        seen.push(e.clone());
        if is_progress {
            let id = e.id.expect("progress events carry an id");
            return (s, seen, id);
        }
    }
}

fn progress_steps(events: &[Event]) -> Vec<f64> {
    events
        .iter()
        .filter_map(|e| e.data.as_ref())
        .filter(|d| d["method"] == "notifications/progress")
        .map(|d| d["params"]["progress"].as_f64().unwrap())
        .collect()
}

fn results(events: &[Event], id: u64) -> Vec<Value> {
    events
        .iter()
        .filter_map(|e| e.data.clone())
        .filter(|d| d["id"] == json!(id) && d.get("method").is_none())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_call_stream_resumes_with_last_event_id() {
    let t = start("AIRLOCK_T_RESUME_1", HttpOptions::default()).await;
    let sid = open_session(t.addr, KEY_CI).await;

    let (s, seen, last) = call_until_first_progress(t.addr, &sid, 21).await;
    // The stream opens with a priming event: an id, no data, and `retry`.
    let prime = &seen[0];
    assert!(prime.id.is_some() && prime.data.is_none(), "{seen:?}");
    assert_eq!(prime.retry, Some(1000), "{seen:?}");
    assert_eq!(progress_steps(&seen), vec![1.0]);
    drop(s); // the client loses the connection mid-call

    let mut g = Sse::send(t.addr, get_head(t.addr, KEY_CI, &sid, Some(&last)), b"").await;
    assert_eq!(g.status, 200, "{}", g.headers);
    let rest = g.rest().await;
    assert_eq!(progress_steps(&rest), vec![2.0, 3.0], "{rest:?}");
    let r = results(&rest, 21);
    assert_eq!(r.len(), 1, "{rest:?}");
    assert_eq!(result_text(&r[0]), "ci: steps");
    // Ids increase along the stream, none repeats the one resumed from.
    let ids: Vec<&str> = rest.iter().filter_map(|e| e.id.as_deref()).collect();
    assert!(!ids.contains(&last.as_str()), "{ids:?} after {last}");
    // The call ran once.
    let n = t
        .audit
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.args["text"] == "steps")
        .count();
    assert_eq!(n, 1);

    // Reconnecting only after the call has finished: the dropped client's
    // stream was read to the end on the server, and the rest is still there.
    t.audit.0.lock().unwrap().clear();
    let (s, _, last) = call_until_first_progress(t.addr, &sid, 22).await;
    drop(s);
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while t.audit.0.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < until, "the call did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut g = Sse::send(t.addr, get_head(t.addr, KEY_CI, &sid, Some(&last)), b"").await;
    assert_eq!(g.status, 200);
    let rest = g.rest().await;
    assert_eq!(progress_steps(&rest), vec![2.0, 3.0], "{rest:?}");
    assert_eq!(results(&rest, 22).len(), 1, "{rest:?}");
    // Resuming again from the same id gives the same events: the buffer
    // is not consumed by a reader.
    let mut g = Sse::send(t.addr, get_head(t.addr, KEY_CI, &sid, Some(&last)), b"").await;
    let again = g.rest().await;
    assert_eq!(progress_steps(&again), vec![2.0, 3.0], "{again:?}");
    assert_eq!(results(&again, 22).len(), 1, "{again:?}");
    t.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_agent_cannot_resume_or_touch_a_session() {
    let t = start("AIRLOCK_T_RESUME_2", HttpOptions::default()).await;
    let sid = open_session(t.addr, KEY_CI).await;
    let (s, _, last) = call_until_first_progress(t.addr, &sid, 31).await;
    drop(s);

    // The reviewer's valid key with the ci session's id and event id.
    let mut g = Sse::send(t.addr, get_head(t.addr, KEY_REV, &sid, Some(&last)), b"").await;
    assert_eq!(g.status, 404, "{}", g.headers);
    let leaked = g.rest().await;
    assert!(
        leaked.iter().all(|e| e
            .data
            .as_ref()
            .is_none_or(|d| d.get("method").is_none() && d.get("result").is_none())),
        "{leaked:?}"
    );
    // Nor a standalone stream, a cancellation of ci's call, or a DELETE.
    let g = Sse::send(t.addr, get_head(t.addr, KEY_REV, &sid, None), b"").await;
    assert_eq!(g.status, 404);
    let body = serde_json::to_vec(&json!({"jsonrpc":"2.0","method":"notifications/cancelled",
        "params":{"requestId": 31}}))
    .unwrap();
    let c = Sse::send(t.addr, post_head(t.addr, KEY_REV, &sid, body.len()), &body).await;
    assert_eq!(c.status, 404);
    let del = raw(
        t.addr,
        &format!(
            "DELETE /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nAuthorization: Bearer {KEY_REV}\r\nMcp-Session-Id: {sid}\r\nMCP-Protocol-Version: 2025-11-25\r\n\r\n",
            t.addr.port()
        ),
        b"",
    )
    .await;
    assert_eq!(del.status, 404, "{}", del.body);

    // The owner resumes and gets the result: nothing above disturbed it.
    let mut g = Sse::send(t.addr, get_head(t.addr, KEY_CI, &sid, Some(&last)), b"").await;
    assert_eq!(g.status, 200);
    let rest = g.rest().await;
    assert_eq!(results(&rest, 31).len(), 1, "{rest:?}");
    assert_eq!(result_text(&results(&rest, 31)[0]), "ci: steps");
    t.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bogus_last_event_ids_get_a_clear_answer() {
    let t = start("AIRLOCK_T_RESUME_3", HttpOptions::default()).await;
    let sid = open_session(t.addr, KEY_CI).await;
    // Not an id this server issues: 400 with a reason.
    for bad in ["garbage", "1/2/3", "-1", &"7".repeat(100)] {
        let r = raw(t.addr, &get_head(t.addr, KEY_CI, &sid, Some(bad)), b"").await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.body.contains("Last-Event-ID"), "{}", r.body);
    }
    // Well formed but naming no stream of this session: an SSE response
    // that ends at once with nothing in it (rmcp's answer, so that an
    // EventSource stops instead of retrying the same id forever).
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        raw(t.addr, &get_head(t.addr, KEY_CI, &sid, Some("5/999")), b""),
    )
    .await
    .expect("the empty stream ends promptly");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.body.contains("data:"), "{}", r.body);
    // An unknown session: 404.
    let r = raw(
        t.addr,
        &get_head(t.addr, KEY_CI, "no-such-session", Some("1/0")),
        b"",
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    // The session still works.
    let r = session_call(
        t.addr,
        KEY_CI,
        &sid,
        41,
        "tools/call",
        json!({"name":"echo","arguments":{"text":"after"}}),
    )
    .await;
    assert_eq!(result_text(&r.rpc()), "ci: after");
    t.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_listen_is_method_not_found() {
    let t = start("AIRLOCK_T_RESUME_4", HttpOptions::default()).await;
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let auth = bearer(KEY_CI);
    let h = [
        ("Authorization", auth.as_str()),
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "subscriptions/listen"),
    ];
    // airlock advertises no listChanged or subscribe capability, so there
    // is nothing to listen to.
    let d = post(
        t.addr,
        &[h[0], h[1], ("Mcp-Method", "server/discover")],
        &json!({"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta": meta}}),
    )
    .await;
    let caps = &d.rpc()["result"]["capabilities"];
    assert!(caps.is_object(), "{}", d.body);
    assert!(caps["tools"]["listChanged"] != json!(true), "{caps}");
    assert!(caps.get("resources").is_none(), "{caps}");
    let r = post(
        t.addr,
        &h,
        &json!({"jsonrpc":"2.0","id":2,"method":"subscriptions/listen","params":{
            "_meta": meta, "notifications": {"toolsListChanged": true}}}),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let v = r.rpc();
    assert_eq!(v["id"], json!(2), "{v}");
    assert_eq!(v["error"]["code"], json!(-32601), "{v}");
    // Server-to-client requests would come back inside results
    // (`resultType: "input_required"`); airlock's tools never ask the client
    // anything, so every result is complete.
    let r = post(
        t.addr,
        &[
            h[0],
            h[1],
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "echo"),
        ],
        &json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{
            "name":"echo","arguments":{"text":"x"},"_meta": meta}}),
    )
    .await;
    let v = r.rpc();
    assert_eq!(v["result"]["resultType"], json!("complete"), "{v}");
    assert_eq!(result_text(&v), "ci: x");
    // In a 2025-11-25 session the method does not exist either.
    let sid = open_session(t.addr, KEY_CI).await;
    let r = session_call(
        t.addr,
        KEY_CI,
        &sid,
        3,
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
    )
    .await;
    let v = r.rpc();
    assert!(v.get("error").is_some(), "{v}");
    t.server.shutdown().await;
}

/// A TCP relay that cuts the first connection on which the server sends a
/// progress event, right after relaying it, and notes whether a client
/// later sent `Last-Event-ID`.
struct Cutter {
    addr: SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    resumed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

async fn cutter(upstream: SocketAddr) -> Cutter {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::Arc;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let cut = Arc::new(AtomicBool::new(false));
    let resumed = Arc::new(AtomicBool::new(false));
    let (c2, r2) = (cut.clone(), resumed.clone());
    tokio::spawn(async move {
        while let Ok((client, _)) = l.accept().await {
            let Ok(server) = TcpStream::connect(upstream).await else {
                continue;
            };
            let (cut, resumed) = (c2.clone(), r2.clone());
            tokio::spawn(async move {
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = tokio::spawn(async move {
                    let mut buf = [0u8; 8192];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        if String::from_utf8_lossy(&buf[..n])
                            .to_ascii_lowercase()
                            .contains("last-event-id:")
                        {
                            resumed.store(true, SeqCst);
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                let mut buf = [0u8; 8192];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    if String::from_utf8_lossy(&buf[..n]).contains("notifications/progress")
                        && !cut.swap(true, SeqCst)
                    {
                        break; // drop both directions: the connection is lost
                    }
                }
                up.abort();
            });
        }
    });
    Cutter { addr, cut, resumed }
}

/// Runs an SDK client through the relay on one progress call and checks
/// that it resumed on its own and saw every step once and the result.
async fn sdk_resumes(env: &str, program: &str, script: &[&str]) {
    use std::sync::atomic::Ordering::SeqCst;
    let t = start(env, HttpOptions::default()).await;
    let c = cutter(t.addr).await;
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk");
    let url = format!("http://{}/mcp", c.addr);
    let mut args: Vec<&str> = vec![script[0], "http", &url, KEY_CI];
    args.extend_from_slice(&script[1..]);
    let mut child = tokio::process::Command::new(program)
        .args(&args)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let calls = json!([{"name": "echo", "args": {"text": "steps"}, "progress": true}]);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(calls.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the client finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{program}: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    assert!(
        c.cut.load(SeqCst),
        "{program}: the relay never cut a stream"
    );
    assert!(
        c.resumed.load(SeqCst),
        "{program}: the SDK did not resume: {v}"
    );
    let call = &v["calls"][0];
    assert_eq!(call[1], json!("ci: steps"), "{program}: {v}");
    let steps: Vec<f64> = call[2]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_f64().unwrap())
        .collect();
    assert_eq!(steps, vec![1.0, 2.0, 3.0], "{program}: {v}");
    assert_eq!(
        t.audit.0.lock().unwrap().len(),
        1,
        "{program}: the call ran once"
    );
    t.server.shutdown().await;
}

fn missing(what: &str) -> bool {
    if std::env::var_os("AIRLOCK_REQUIRE_SDKS").is_some() {
        panic!("{what} is required under AIRLOCK_REQUIRE_SDKS (run scripts/setup.sh)");
    }
    eprintln!("skipped: {what} not installed");
    true
}

/// The official SDKs (Python `mcp` in 2025-11-25 mode, TypeScript
/// `@modelcontextprotocol/sdk`) lose their call's stream after the first
/// progress event, resume on their own with `Last-Event-ID`, and get every
/// step once and the result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_clients_resume_a_cut_stream() {
    let py = std::process::Command::new("python3")
        .args(["-c", "import mcp, httpx2"])
        .status()
        .is_ok_and(|s| s.success());
    if py || !missing("python3 module `mcp` (PyPI mcp 2.x)") {
        sdk_resumes("AIRLOCK_T_RESUME_5", "python3", &["client.py", "legacy"]).await;
    }
    let ts = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sdk/node_modules/@modelcontextprotocol/sdk")
        .exists();
    if ts || !missing("npm @modelcontextprotocol/sdk in crates/mcp/tests/sdk") {
        sdk_resumes("AIRLOCK_T_RESUME_6", "node", &["client.mjs"]).await;
    }
}
