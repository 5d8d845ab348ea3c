//! Bridges Streamable HTTP to a stdio MCP server the connector spawns.
//!
//! * `initialize` (2025-11-25) starts a fresh child for a new session and
//!   answers with `Mcp-Session-Id`; later requests with that header go to
//!   that child; `DELETE` ends it. Unknown session ids get 404 (the spec's
//!   "re-initialize" signal).
//! * Requests without a session (2026-07-28, stateless) share one child.
//! * JSON-RPC ids are rewritten on the way in and restored on the way out,
//!   so agents that reuse ids cannot receive each other's answers.
//! * Server-initiated messages outside a response are not relayed (there is
//!   no standalone GET stream here); GET answers 405.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;

use crate::{full, Body};

const MAX_SESSIONS: usize = 64;
const MAX_LINE: usize = 16 << 20;

struct Proc {
    stdin: tokio::sync::Mutex<ChildStdin>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Value>>>,
    /// Progress notifications by the request's `progressToken` (as JSON text).
    progress: Mutex<HashMap<String, tokio::sync::mpsc::UnboundedSender<Value>>>,
    next: AtomicU64,
    alive: Arc<AtomicBool>,
    _child: Child,
}

pub struct StdioRoute {
    command: Vec<String>,
    shared: tokio::sync::Mutex<Option<Arc<Proc>>>,
    sessions: Mutex<HashMap<String, Arc<Proc>>>,
    timeout: Duration,
}

fn json_resp(code: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(full(v.to_string()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn plain(code: StatusCode) -> Response<Body> {
    let mut r = Response::new(crate::empty());
    *r.status_mut() = code;
    r
}

fn rpc_err(id: Value, code: i64, msg: &str) -> Value {
    serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": msg}})
}

/// A response body fed by a channel, one frame per message, unbuffered.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = crate::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, crate::BoxError>>> {
        self.0
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(http_body::Frame::data(b))))
    }
}

impl StdioRoute {
    fn attach_session(&self, r: &mut Response<Body>, session: Option<String>, proc: Arc<Proc>) {
        if let Some(s) = session {
            if let Ok(h) = HeaderValue::from_str(&s) {
                r.headers_mut().insert("mcp-session-id", h);
            }
            if let Ok(mut m) = self.sessions.lock() {
                m.insert(s, proc);
            }
        }
    }

    pub fn new(command: Vec<String>) -> StdioRoute {
        StdioRoute {
            command,
            shared: tokio::sync::Mutex::new(None),
            sessions: Mutex::new(HashMap::new()),
            timeout: Duration::from_secs(300),
        }
    }

    fn spawn(&self) -> std::io::Result<Arc<Proc>> {
        let (prog, args) = self.command.split_first().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command")
        })?;
        let mut cmd = Command::new(prog);
        cmd.args(args)
            .env_remove("AIRLOCK_TUNNEL_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("no stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let alive = Arc::new(AtomicBool::new(true));
        let p = Arc::new(Proc {
            stdin: tokio::sync::Mutex::new(stdin),
            pending: Mutex::new(HashMap::new()),
            progress: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            alive: alive.clone(),
            _child: child,
        });
        let weak = Arc::downgrade(&p);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match lines.read_line(&mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) if n > MAX_LINE => break,
                    Ok(_) => {}
                }
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                let Some(p) = weak.upgrade() else { break };
                let is_response = v.get("method").is_none()
                    && (v.get("result").is_some() || v.get("error").is_some());
                if let (true, Some(id)) = (is_response, v.get("id").and_then(Value::as_u64)) {
                    let tx = p.pending.lock().ok().and_then(|mut m| m.remove(&id));
                    if let Some(tx) = tx {
                        let _ = tx.send(v);
                    }
                } else if v.get("method").and_then(Value::as_str) == Some("notifications/progress")
                {
                    let token = v.pointer("/params/progressToken").map(Value::to_string);
                    let tx =
                        token.and_then(|t| p.progress.lock().ok().and_then(|m| m.get(&t).cloned()));
                    if let Some(tx) = tx {
                        let _ = tx.send(v);
                    }
                }
            }
            alive.store(false, Relaxed);
            // Dropping the senders fails every waiting request at once.
            if let Some(p) = weak.upgrade() {
                if let Ok(mut m) = p.pending.lock() {
                    m.clear();
                }
            }
        });
        Ok(p)
    }

    async fn shared_proc(&self) -> std::io::Result<Arc<Proc>> {
        let mut g = self.shared.lock().await;
        if let Some(p) = g.as_ref().filter(|p| p.alive.load(Relaxed)) {
            return Ok(p.clone());
        }
        let p = self.spawn()?;
        *g = Some(p.clone());
        Ok(p)
    }

    pub async fn handle(
        &self,
        method: &Method,
        headers: &http::HeaderMap,
        body: Bytes,
    ) -> Response<Body> {
        let session = headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        if method == Method::DELETE {
            let removed =
                session.and_then(|s| self.sessions.lock().ok().and_then(|mut m| m.remove(&s)));
            return plain(if removed.is_some() {
                StatusCode::NO_CONTENT
            } else {
                StatusCode::NOT_FOUND
            });
        }
        if method != Method::POST {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED);
            r.headers_mut().insert(
                http::header::ALLOW,
                HeaderValue::from_static("POST, DELETE"),
            );
            return r;
        }
        let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
            return json_resp(
                StatusCode::BAD_REQUEST,
                &rpc_err(Value::Null, -32700, "parse error"),
            );
        };
        let (batch, msgs) = match msg {
            Value::Array(a) if !a.is_empty() => (true, a),
            Value::Object(_) => (false, vec![msg]),
            _ => {
                return json_resp(
                    StatusCode::BAD_REQUEST,
                    &rpc_err(Value::Null, -32600, "invalid request"),
                )
            }
        };
        let initialize = msgs
            .iter()
            .any(|m| m.get("method").and_then(Value::as_str) == Some("initialize"));
        let mut new_session = None;
        let proc = if initialize {
            if self
                .sessions
                .lock()
                .map(|m| m.len())
                .unwrap_or(MAX_SESSIONS)
                >= MAX_SESSIONS
            {
                return plain(StatusCode::SERVICE_UNAVAILABLE);
            }
            match self.spawn() {
                Ok(p) => {
                    let mut r = [0u8; 16];
                    let _ =
                        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut r);
                    new_session = Some(r.iter().map(|b| format!("{b:02x}")).collect::<String>());
                    p
                }
                Err(e) => {
                    tracing::warn!(target: "airlock::tunnel", %e, "cannot start stdio route");
                    return plain(StatusCode::BAD_GATEWAY);
                }
            }
        } else if let Some(s) = &session {
            match self.sessions.lock().ok().and_then(|m| m.get(s).cloned()) {
                Some(p) if p.alive.load(Relaxed) => p,
                _ => return plain(StatusCode::NOT_FOUND),
            }
        } else {
            match self.shared_proc().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(target: "airlock::tunnel", %e, "cannot start stdio route");
                    return plain(StatusCode::BAD_GATEWAY);
                }
            }
        };

        // A single request that asks for progress, from a client that takes
        // SSE, gets its progress notifications streamed before the answer.
        let accepts_sse = headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/event-stream"));
        let token = match (batch, msgs.first()) {
            (false, Some(m)) if accepts_sse && m.get("id").is_some() => m
                .pointer("/params/_meta/progressToken")
                .map(Value::to_string),
            _ => None,
        };
        let progress_rx = token.as_ref().and_then(|t| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            proc.progress.lock().ok().map(|mut m| {
                m.insert(t.clone(), tx);
                rx
            })
        });

        let mut waits = Vec::new();
        for mut m in msgs {
            let is_request = m.get("method").is_some() && m.get("id").is_some_and(|i| !i.is_null());
            if is_request {
                let orig = m.get("id").cloned().unwrap_or(Value::Null);
                let id = proc.next.fetch_add(1, Relaxed);
                let (tx, rx) = oneshot::channel();
                if let Ok(mut p) = proc.pending.lock() {
                    p.insert(id, tx);
                }
                m["id"] = Value::from(id);
                waits.push((orig, rx));
            }
            let mut line = m.to_string();
            line.push('\n');
            let mut stdin = proc.stdin.lock().await;
            if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
                return plain(StatusCode::BAD_GATEWAY);
            }
        }
        if waits.is_empty() {
            return plain(StatusCode::ACCEPTED);
        }
        if let (Some(mut prx), Some(token)) = (progress_rx, token) {
            let Some((orig, mut rx)) = waits.pop() else {
                return plain(StatusCode::ACCEPTED);
            };
            let (tx, body_rx) = tokio::sync::mpsc::channel::<Bytes>(16);
            let p = proc.clone();
            let limit = self.timeout;
            tokio::spawn(async move {
                let deadline = tokio::time::sleep(limit);
                tokio::pin!(deadline);
                let last = loop {
                    tokio::select! {
                        Some(n) = prx.recv() => {
                            if tx.send(Bytes::from(format!("event: message\ndata: {n}\n\n"))).await.is_err() {
                                break None;
                            }
                        }
                        r = &mut rx => break Some(match r {
                            Ok(mut v) => { v["id"] = orig; v }
                            Err(_) => rpc_err(orig, -32000, "airlock: the stdio MCP server exited before answering"),
                        }),
                        _ = &mut deadline => break Some(rpc_err(orig, -32000, "airlock: the stdio MCP server did not answer in time")),
                    }
                };
                if let Ok(mut m) = p.progress.lock() {
                    m.remove(&token);
                }
                if let Some(v) = last {
                    let _ = tx
                        .send(Bytes::from(format!("event: message\ndata: {v}\n\n")))
                        .await;
                }
            });
            let mut r = Response::new(http_body_util::BodyExt::boxed(ChannelBody(body_rx)));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            r.headers_mut().insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            );
            self.attach_session(&mut r, new_session, proc);
            return r;
        }
        let mut out = Vec::with_capacity(waits.len());
        for (orig, rx) in waits {
            let v = match tokio::time::timeout(self.timeout, rx).await {
                Ok(Ok(mut v)) => {
                    v["id"] = orig;
                    v
                }
                Ok(Err(_)) => rpc_err(
                    orig,
                    -32000,
                    "airlock: the stdio MCP server exited before answering",
                ),
                Err(_) => rpc_err(
                    orig,
                    -32000,
                    "airlock: the stdio MCP server did not answer in time",
                ),
            };
            out.push(v);
        }
        let body = if batch {
            Value::Array(out)
        } else {
            out.pop().unwrap_or(Value::Null)
        };
        let mut r = json_resp(StatusCode::OK, &body);
        self.attach_session(&mut r, new_session, proc);
        r
    }
}

/// Makes a child spawned by `cmd` get SIGTERM when this process dies, even
/// by SIGKILL (where `kill_on_drop` never runs), so servers a connector
/// starts do not outlive it. The signal follows the spawning thread: spawn
/// from a runtime worker or the main thread, which live as long as the
/// process.
pub fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id() as libc::pid_t;
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the signal was armed.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}
