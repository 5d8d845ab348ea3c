//! Progress notifications and cancellation over Streamable HTTP, read off
//! the wire as they arrive: a `tools/call` with `_meta.progressToken` gets
//! an SSE response whose progress events come while the tool works (not
//! all at the end), then the result; without a token the reply is plain
//! JSON with no notifications. Cancelling (`notifications/cancelled` in a
//! session, closing the response in the stateless generation) ends the
//! call and leaves the session usable.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use airlock_mcp::HttpOptions;
use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response read incrementally: status, content type, and each SSE
/// `data:` message (or the JSON body) with when it arrived.
struct Streamed {
    status: u16,
    content_type: String,
    events: Vec<(Duration, Value)>,
}

impl Streamed {
    fn progress(&self) -> Vec<(Duration, &Value)> {
        self.events
            .iter()
            .filter(|(_, v)| v["method"] == "notifications/progress")
            .map(|(t, v)| (*t, &v["params"]))
            .collect()
    }
    fn result(&self) -> (Duration, &Value) {
        self.events
            .iter()
            .find(|(_, v)| v.get("id").is_some() && v.get("method").is_none())
            .map(|(t, v)| (*t, v))
            .unwrap_or_else(|| panic!("no response among {:?}", self.events))
    }
}

fn request(addr: SocketAddr, headers: &[(String, String)], body: &Value) -> Vec<u8> {
    let body = serde_json::to_vec(body).unwrap();
    let mut head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n",
        addr.port(),
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Reads the response as it comes, de-chunking and splitting SSE events
/// incrementally so each message carries its own arrival time. Stops at
/// EOF, or after `stop_after` messages when given.
async fn stream(s: &mut TcpStream, sent: Instant, stop_after: Option<usize>) -> Streamed {
    let mut raw: Vec<u8> = Vec::new();
    let mut head: Option<(u16, String, bool)> = None;
    let mut body: Vec<u8> = Vec::new();
    let mut pos = 0usize; // into `raw`, past the headers and consumed chunks
    let mut events = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf)).await {
            Ok(Ok(n)) => n,
            _ => 0,
        };
        let now = sent.elapsed();
        raw.extend_from_slice(&buf[..n]);
        if head.is_none() {
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let text = String::from_utf8_lossy(&raw[..i]).to_string();
                let status = text
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                let header = |name: &str| {
                    text.lines()
                        .filter_map(|l| l.split_once(':'))
                        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.trim().to_string())
                        .unwrap_or_default()
                };
                let chunked = header("transfer-encoding").contains("chunked");
                head = Some((status, header("content-type"), chunked));
                pos = i + 4;
            }
        }
        if let Some((_, _, chunked)) = &head {
            if *chunked {
                // Whole chunks only: `size\r\n data \r\n`.
                while let Some(eol) = raw[pos..].windows(2).position(|w| w == b"\r\n") {
                    let size = usize::from_str_radix(
                        String::from_utf8_lossy(&raw[pos..pos + eol]).trim(),
                        16,
                    )
                    .unwrap_or(0);
                    let start = pos + eol + 2;
                    if raw.len() < start + size + 2 {
                        break;
                    }
                    body.extend_from_slice(&raw[start..start + size]);
                    pos = start + size + 2;
                }
            } else {
                body.extend_from_slice(&raw[pos..]);
                pos = raw.len();
            }
            // SSE events end with a blank line.
            while let Some(i) = body.windows(2).position(|w| w == b"\n\n") {
                let ev: Vec<u8> = body.drain(..i + 2).collect();
                for line in String::from_utf8_lossy(&ev).lines() {
                    if let Some(d) = line.strip_prefix("data:") {
                        if let Ok(v) = serde_json::from_str::<Value>(d.trim()) {
                            events.push((now, v));
                        }
                    }
                }
            }
        }
        if stop_after.is_some_and(|k| events.len() >= k) || n == 0 {
            break;
        }
    }
    let (status, content_type, _) = head.unwrap_or((0, String::new(), false));
    // A plain JSON body is one message.
    if content_type.starts_with("application/json") {
        if let Ok(v) = serde_json::from_slice::<Value>(&body) {
            events.push((sent.elapsed(), v));
        }
    }
    Streamed {
        status,
        content_type,
        events,
    }
}

async fn post_streamed(addr: SocketAddr, headers: &[(String, String)], body: &Value) -> Streamed {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let sent = Instant::now();
    s.write_all(&request(addr, headers, body)).await.unwrap();
    stream(&mut s, sent, None).await
}

fn session_headers(sid: &str) -> Vec<(String, String)> {
    vec![
        ("Authorization".into(), bearer(KEY_CI)),
        ("Mcp-Session-Id".into(), sid.into()),
        ("MCP-Protocol-Version".into(), "2025-11-25".into()),
    ]
}

fn stateless_headers(name: &str) -> Vec<(String, String)> {
    vec![
        ("Authorization".into(), bearer(KEY_CI)),
        ("MCP-Protocol-Version".into(), "2026-07-28".into()),
        ("Mcp-Method".into(), "tools/call".into()),
        ("Mcp-Name".into(), name.into()),
    ]
}

fn stateless_meta(token: Option<&str>) -> Value {
    let mut m = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    if let Some(t) = token {
        m["progressToken"] = json!(t);
    }
    m
}

/// Three progress events spaced like the tool's steps, before the result,
/// with the client's token and increasing values.
fn check_steps(r: &Streamed, token: &Value, label: &str) {
    assert_eq!(r.status, 200, "{label}");
    assert!(
        r.content_type.starts_with("text/event-stream"),
        "{label}: {}",
        r.content_type
    );
    let p = r.progress();
    assert_eq!(p.len(), 3, "{label}: {:?}", r.events);
    let (done_at, result) = r.result();
    assert_eq!(result_text(result), "ci: steps", "{label}");
    let mut last = 0.0;
    for (i, (at, params)) in p.iter().enumerate() {
        assert_eq!(&params["progressToken"], token, "{label}");
        let v = params["progress"].as_f64().unwrap();
        assert!(v > last, "{label}: progress must increase: {p:?}");
        last = v;
        assert_eq!(params["total"], json!(3.0), "{label}");
        assert_eq!(
            params["message"],
            json!(format!("step {}", i + 1)),
            "{label}"
        );
        assert!(*at <= done_at, "{label}: progress after the result");
    }
    // Flushed as sent: the first step arrives well before the last one
    // (150 ms apart on the server), not batched with the result.
    let spread = p[2].0 - p[0].0;
    assert!(
        spread >= Duration::from_millis(200),
        "{label}: events arrived together ({spread:?}): {p:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_events_stream_before_the_result_in_both_generations() {
    let t = start("AIRLOCK_T_PROGRESS_1", HttpOptions::default()).await;

    // 2025-11-25 session: a numeric token.
    let sid = open_session(t.addr, KEY_CI).await;
    let call = json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{
        "name":"echo","arguments":{"text":"steps"},"_meta":{"progressToken": 77}}});
    let r = post_streamed(t.addr, &session_headers(&sid), &call).await;
    check_steps(&r, &json!(77), "2025-11-25");

    // Stateless 2026-07-28: a string token, and the JSON reply turns into SSE.
    let call = json!({"jsonrpc":"2.0","id":6,"method":"tools/call","params":{
        "name":"echo","arguments":{"text":"steps"},"_meta": stateless_meta(Some("tok-1"))}});
    let r = post_streamed(t.addr, &stateless_headers("echo"), &call).await;
    check_steps(&r, &json!("tok-1"), "2026-07-28");

    // No token: plain JSON, no notifications, same result.
    let call = json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{
        "name":"echo","arguments":{"text":"steps"},"_meta": stateless_meta(None)}});
    let r = post_streamed(t.addr, &stateless_headers("echo"), &call).await;
    assert!(
        r.content_type.starts_with("application/json"),
        "{}",
        r.content_type
    );
    assert_eq!(r.events.len(), 1, "{:?}", r.events);
    assert_eq!(result_text(&r.events[0].1), "ci: steps");
    // In a session without a token: no progress events on the stream.
    let call = json!({"jsonrpc":"2.0","id":8,"method":"tools/call","params":{
        "name":"echo","arguments":{"text":"steps"}}});
    let r = post_streamed(t.addr, &session_headers(&sid), &call).await;
    assert!(r.progress().is_empty(), "{:?}", r.events);
    assert_eq!(result_text(r.result().1), "ci: steps");
    t.server.shutdown().await;
}

/// Waits for the audit record of a call of `text` to be written.
async fn audited(t: &TestServer, text: &str, within: Duration) -> Option<airlock_mcp::CallRecord> {
    let until = Instant::now() + within;
    while Instant::now() < until {
        let found = t
            .audit
            .0
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.args["text"] == text)
            .cloned();
        if found.is_some() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_ends_the_call_and_the_session_stays_usable() {
    let t = start("AIRLOCK_T_PROGRESS_2", HttpOptions::default()).await;

    // 2025-11-25: notifications/cancelled for the request id.
    let sid = open_session(t.addr, KEY_CI).await;
    let call = json!({"jsonrpc":"2.0","id":11,"method":"tools/call","params":{
        "name":"echo","arguments":{"text":"sleep"},"_meta":{"progressToken": 1}}});
    let mut s = TcpStream::connect(t.addr).await.unwrap();
    let started = Instant::now();
    s.write_all(&request(t.addr, &session_headers(&sid), &call))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let n = post(
        t.addr,
        &[
            ("Authorization", &bearer(KEY_CI)),
            ("Mcp-Session-Id", &sid),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
        &json!({"jsonrpc":"2.0","method":"notifications/cancelled",
            "params":{"requestId": 11, "reason": "user hit stop"}}),
    )
    .await;
    assert_eq!(n.status, 202, "{}", n.body);
    let rec = audited(&t, "sleep", Duration::from_secs(5))
        .await
        .expect("the cancelled call is audited promptly (the tool sleeps 30 s)");
    assert_eq!(rec.status, "failed");
    assert!(rec.summary.contains("cancelled"), "{}", rec.summary);
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(s);
    // The session still serves calls.
    let r = session_call(
        t.addr,
        KEY_CI,
        &sid,
        12,
        "tools/call",
        json!({"name":"echo","arguments":{"text":"after"}}),
    )
    .await;
    assert_eq!(result_text(&r.rpc()), "ci: after");

    // 2026-07-28: no session to send a notification in; closing the
    // response stream is the cancellation.
    t.audit.0.lock().unwrap().clear();
    let call = json!({"jsonrpc":"2.0","id":13,"method":"tools/call","params":{
        "name":"echo","arguments":{"text":"sleep"},"_meta": stateless_meta(Some("c"))}});
    let mut s = TcpStream::connect(t.addr).await.unwrap();
    s.write_all(&request(t.addr, &stateless_headers("echo"), &call))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(s);
    let rec = audited(&t, "sleep", Duration::from_secs(5))
        .await
        .expect("closing the stream cancels the call");
    assert!(rec.summary.contains("cancelled"), "{}", rec.summary);
    t.server.shutdown().await;
}
