//! Streamable HTTP: `/mcp` (rmcp's service behind our Origin check and
//! Bearer authentication), `/healthz` and `/metrics`.
//!
//! rmcp serves both protocol generations per request: 2025-11-25 with
//! `initialize` and `Mcp-Session-Id`, and stateless 2026-07-28 with its
//! `MCP-Protocol-Version` / `Mcp-Method` / `Mcp-Name` headers checked against
//! the body. What it leaves to us: who the caller is (401 without a known
//! key, before any MCP processing, so no tool list leaks), Origin (403),
//! which agent owns a 2025-11-25 session (every request naming the session,
//! GET resumes and DELETE included, must come from that agent), and the
//! operational endpoints.
//!
//! Resumability (2025-11-25): rmcp gives every SSE event of a session an id
//! (`<index>/<stream>`) and starts each POST stream with a priming event
//! (id, empty data, `retry`); the buffers a `GET` with `Last-Event-ID`
//! resumes from are airlock's (see [`replay`]). The 2026-07-28 generation
//! has no resumption: closing a response cancels the request.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

mod replay;

pub use replay::{FINISHED_BYTES, FINISHED_TTL, STREAM_BYTES, STREAM_EVENTS};

use crate::auth::bearer;
use crate::handler::{Caller, Handler};
use crate::state::Shared;

type Body = BoxBody<Bytes, Infallible>;

/// The `retry` of each stream's priming event: how long a client that lost
/// a stream waits before resuming it. rmcp's default is 3 s; a second is
/// plenty for a loopback or tunnel reconnect and keeps a resumed call
/// from looking stalled.
pub const SSE_RETRY: Duration = Duration::from_secs(1);

/// The longest `Last-Event-ID` looked at; rmcp's ids are two integers.
const MAX_EVENT_ID: usize = 64;

/// A `Last-Event-ID` of the form rmcp issues: `<index>` (the standalone
/// GET stream) or `<index>/<stream>` (a POST stream), decimal.
fn event_id_ok(id: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    id.len() <= MAX_EVENT_ID
        && match id.split_once('/') {
            Some((i, r)) => digits(i) && digits(r),
            None => digits(id),
        }
}

/// Which agent opened each 2025-11-25 session. Entries for sessions rmcp
/// no longer holds are pruned whenever a session opens, so the map never
/// outgrows rmcp's own.
#[derive(Default)]
struct Owners(Mutex<HashMap<String, String>>);

impl Owners {
    fn get(&self, sid: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sid)
            .cloned()
    }
}

/// Trust in the tunnel gateway's signed identity assertions
/// (`Airlock-Identity` header; see docs/tunnel.md).
pub struct GatewayIdentity {
    /// Shared by every request so its replay cache sees them all.
    pub verifier: airlock_identity::Verifier,
    /// Accept only assertions for this tunnel / route, when set.
    pub tunnel: Option<String>,
    pub route: Option<String>,
}

impl std::fmt::Debug for GatewayIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayIdentity")
            .field("tunnel", &self.tunnel)
            .field("route", &self.route)
            .finish()
    }
}

/// HTTP settings that are not part of the policy file.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// `Host` values accepted on `/mcp` (names or `name:port`). Loopback
    /// names by default; behind the tunnel the connector sends the route's
    /// own authority, so loopback suffices there too.
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed to call (`scheme://host[:port]`); a request
    /// with any other `Origin` gets 403. Requests without `Origin` (every
    /// non-browser client) are not affected.
    pub allowed_origins: Vec<String>,
    /// Also accept `http://localhost`, `http://127.0.0.1` and
    /// `http://[::1]` origins (any port): right for a server bound to
    /// loopback, where those pages run on the same machine anyway.
    pub allow_loopback_origins: bool,
    /// Largest request body, bytes (413 beyond).
    pub max_body: usize,
    /// Bearer key `/metrics` requires; `None` serves metrics to anyone who
    /// can reach the listener.
    pub metrics_key: Option<String>,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// Accept the gateway's identity assertions as well as Bearer keys.
    pub gateway_identity: Option<Arc<GatewayIdentity>>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            allowed_hosts: vec![
                "localhost".into(),
                "127.0.0.1".into(),
                "::1".into(),
                "[::1]".into(),
            ],
            allowed_origins: Vec::new(),
            allow_loopback_origins: false,
            max_body: 4 << 20,
            metrics_key: None,
            shutdown_grace: Duration::from_secs(10),
            gateway_identity: None,
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(body.as_bytes())).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

/// A JSON-RPC error (no id) with an HTTP status, readable by MCP clients
/// and by people.
fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": -32600, "message": message},
    });
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "error\n"))
}

/// A 200 SSE response over `body`.
fn sse(body: replay::Live) -> Response<Body> {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body.boxed())
        .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "stream\n"))
}

fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    let o = origin.trim_end_matches('/');
    allowed
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(o))
}

/// `http(s)://localhost`, `127.0.0.1` or `[::1]`, with any port or none.
fn loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    if let Some(v6) = rest.strip_prefix('[') {
        return match v6.split_once(']') {
            Some((h, tail)) => h == "::1" && port_ok(tail),
            None => false,
        };
    }
    let (h, tail) = match rest.find(':') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    (h.eq_ignore_ascii_case("localhost") || h == "127.0.0.1") && port_ok(tail)
}

/// Empty, or `:` and 1–5 digits.
fn port_ok(tail: &str) -> bool {
    tail.is_empty()
        || tail
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Why a request was not authenticated.
enum Refused {
    /// No Bearer key, or one no agent has.
    Key,
    /// A gateway assertion was present but did not verify.
    Assertion(String),
    /// The assertion verified but names an agent this config lacks.
    UnknownAgent(Box<airlock_identity::Assertion>),
}

#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
    mcp: StreamableHttpService<Handler, LocalSessionManager>,
    sessions: Arc<LocalSessionManager>,
    owners: Arc<Owners>,
    replay: Arc<replay::Replay>,
    opts: Arc<HttpOptions>,
}

impl App {
    /// The agent a request comes from: a verified gateway assertion (when
    /// trusted; a present but bad one is refused, never ignored), else the
    /// Bearer key.
    fn identify(
        &self,
        req: &Request<Incoming>,
        snap: &crate::state::Snapshot,
    ) -> Result<String, Refused> {
        if let Some(gw) = &self.opts.gateway_identity {
            if let Some(h) = req.headers().get(airlock_identity::HEADER) {
                let h = h
                    .to_str()
                    .map_err(|_| Refused::Assertion("identity header is not ASCII".into()))?;
                let expect = airlock_identity::Expect {
                    tunnel: gw.tunnel.as_deref(),
                    route: gw.route.as_deref(),
                };
                let a = gw
                    .verifier
                    .verify(h, &expect, std::time::SystemTime::now())
                    .map_err(|e| Refused::Assertion(e.to_string()))?;
                if !snap.policy.has_agent(&a.agent) {
                    return Err(Refused::UnknownAgent(Box::new(a)));
                }
                return Ok(a.agent);
            }
        }
        req.headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| bearer(v.as_bytes()))
            .and_then(|k| snap.keys.agent_for(k))
            .map(str::to_string)
            .ok_or(Refused::Key)
    }

    /// Logs and audits a refused request, and builds its 401. The answer
    /// says which kind of credential failed and nothing more; the details
    /// (which agent, tunnel, route, why) go to the operator's log and audit.
    fn refuse(&self, why: Refused) -> Response<Body> {
        self.shared.metrics.auth_failure();
        self.shared.metrics.http_rejected(401);
        let body = match why {
            Refused::Key => {
                // Anyone who can reach the port can get here: debug only.
                tracing::debug!(target: "airlock::mcp", "request refused: missing or unknown agent key");
                "missing or unknown agent key: send Authorization: Bearer <key>\n"
            }
            Refused::Assertion(reason) => {
                tracing::warn!(
                    target: "airlock::mcp",
                    reason = %reason,
                    "request refused: the gateway identity assertion is not valid here"
                );
                self.shared.audit.auth(&crate::audit::AuthRecord {
                    agent: None,
                    tunnel: None,
                    route: None,
                    decision: "deny",
                    rule: "gateway_identity.verify".into(),
                    summary: reason,
                });
                "gateway identity assertion refused\n"
            }
            Refused::UnknownAgent(a) => {
                // The agent proved its key at the gateway, so saying that its
                // agent is not configured here tells it nothing it could use
                // to guess keys; it tells the operator what to fix.
                tracing::warn!(
                    target: "airlock::mcp",
                    agent = %a.agent,
                    tunnel = %a.tunnel,
                    route = %a.route,
                    "request refused: the gateway asserted an agent that is not in this server's agents: section"
                );
                self.shared.audit.auth(&crate::audit::AuthRecord {
                    summary: format!(
                        "agent {:?} (tunnel {:?}, route {:?}) is not configured under agents:",
                        a.agent, a.tunnel, a.route
                    ),
                    agent: Some(a.agent),
                    tunnel: Some(a.tunnel),
                    route: Some(a.route),
                    decision: "deny",
                    rule: "gateway_identity.agent_not_configured".into(),
                });
                "the agent named by the gateway's identity assertion is not configured on this server\n"
            }
        };
        let mut r = text(StatusCode::UNAUTHORIZED, body);
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer realm=\"airlock\""),
        );
        r
    }

    async fn handle(mut self, mut req: Request<Incoming>) -> Response<Body> {
        match req.uri().path() {
            "/healthz" => return text(StatusCode::OK, "ok\n"),
            "/metrics" => {
                if let Some(want) = &self.opts.metrics_key {
                    let got = req
                        .headers()
                        .get(header::AUTHORIZATION)
                        .and_then(|v| bearer(v.as_bytes()));
                    let ok = got.is_some_and(|g| {
                        crate::auth::sha256(g.as_bytes()) == crate::auth::sha256(want.as_bytes())
                    });
                    if !ok {
                        return text(StatusCode::UNAUTHORIZED, "metrics need the metrics key\n");
                    }
                }
                return Response::builder()
                    .header(header::CONTENT_TYPE, "text/plain; version=0.0.4")
                    .body(Full::new(Bytes::from(self.shared.metrics.render())).boxed())
                    .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "metrics\n"));
            }
            "/mcp" => {}
            _ => {
                return text(
                    StatusCode::NOT_FOUND,
                    "not found: the MCP endpoint is /mcp\n",
                )
            }
        }
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let ok = origin.to_str().is_ok_and(|o| {
                origin_allowed(o, &self.opts.allowed_origins)
                    || (self.opts.allow_loopback_origins && loopback_origin(o))
            });
            if !ok {
                self.shared.metrics.http_rejected(403);
                return text(StatusCode::FORBIDDEN, "origin not allowed\n");
            }
        }
        let snap = self.shared.snapshot();
        let agent = match self.identify(&req, &snap) {
            Ok(a) => a,
            Err(why) => return self.refuse(why),
        };
        drop(snap);
        let sid = req
            .headers()
            .get("mcp-session-id")
            .map(|v| v.to_str().map(str::to_string));
        let sid = match sid {
            Some(Ok(s)) => Some(s),
            Some(Err(_)) => return text(StatusCode::BAD_REQUEST, "Mcp-Session-Id is not ASCII\n"),
            None => None,
        };
        if let Some(sid) = &sid {
            // Fail closed: a session rmcp holds but nobody is recorded as
            // owning is refused too.
            let owner = match self.owners.get(sid) {
                Some(o) => Some(o),
                None if self
                    .sessions
                    .sessions
                    .read()
                    .await
                    .contains_key(sid.as_str()) =>
                {
                    Some(String::new())
                }
                None => None,
            };
            if owner.as_deref().is_some_and(|o| o != agent) {
                tracing::warn!(target: "airlock::mcp", session = %sid, caller = %agent, method = %req.method(), "session used with another agent's key; refused");
                self.shared.metrics.http_rejected(404);
                // The same answer as for a session that does not exist, so
                // a key holder learns nothing about other agents' sessions.
                return json_error(
                    StatusCode::NOT_FOUND,
                    "no such session for this agent; start your own session",
                );
            }
            if req.method() == http::Method::GET {
                if let Some(last) = req.headers().get("last-event-id") {
                    let last = last.to_str().ok().filter(|l| event_id_ok(l));
                    let Some(last) = last else {
                        self.shared.metrics.http_rejected(400);
                        return text(
                            StatusCode::BAD_REQUEST,
                            "Last-Event-ID is not an event id this server issued\n",
                        );
                    };
                    // A POST stream's id: resumed from airlock's buffers,
                    // never handed to rmcp (whose resume would take the
                    // live stream away from the pump). A stream no longer
                    // held gets an SSE response that ends at once, so an
                    // EventSource stops instead of retrying the same id.
                    // An unknown session goes on to rmcp's 404.
                    let known = owner.is_some();
                    if let Some((index, stream)) = replay::parse_id(last).filter(|_| known) {
                        let live = self
                            .replay
                            .resume(sid, index, stream)
                            .unwrap_or_else(replay::Live::empty);
                        return sse(live);
                    }
                }
            }
        }
        req.extensions_mut().insert(Caller {
            agent: agent.clone(),
        });
        let resp = match self.mcp.call(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        if let Some(sid) = sid {
            // A session's POST response stream: recorded for resumption.
            let is_sse = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));
            if is_sse && resp.status() == StatusCode::OK {
                let (parts, body) = resp.into_parts();
                return Response::from_parts(parts, self.replay.tee(sid, body).boxed());
            }
            return resp;
        } else {
            // An initialize that opened a session: record its owner before
            // the client can learn the id.
            if let Some(new) = resp
                .headers()
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
            {
                let live = self.sessions.sessions.read().await;
                let mut owners = self.owners.0.lock().unwrap_or_else(|e| e.into_inner());
                owners.retain(|s, _| live.contains_key(s.as_str()));
                owners.insert(new.to_string(), agent);
            }
        }
        resp
    }
}

/// A running HTTP server.
pub struct HttpServer {
    pub local_addr: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    /// Starts serving on `listener`.
    pub fn start(
        shared: Arc<Shared>,
        listener: TcpListener,
        opts: HttpOptions,
    ) -> std::io::Result<HttpServer> {
        let local_addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let mcp_ct = shutdown.child_token();
        let config = StreamableHttpServerConfig::default()
            .with_allowed_hosts(opts.allowed_hosts.clone())
            .with_max_request_body_bytes(opts.max_body)
            // Stateless 2026-07-28 replies are plain JSON unless the tool
            // sends progress first, which turns the reply into an SSE stream
            // (progress events flushed as sent, then the result). Requests in
            // a 2025-11-25 session always get an SSE stream.
            .with_json_response(true)
            .with_sse_retry(Some(SSE_RETRY))
            .with_cancellation_token(mcp_ct);
        let factory_shared = shared.clone();
        let mut manager = LocalSessionManager::default();
        // POST streams get their priming event from the session layer.
        manager.session_config.sse_retry = Some(SSE_RETRY);
        let sessions = Arc::new(manager);
        let mcp = StreamableHttpService::new(
            move || Ok(Handler::http(factory_shared.clone())),
            sessions.clone(),
            config,
        );
        let app = App {
            shared,
            mcp,
            sessions,
            owners: Arc::default(),
            replay: Arc::default(),
            opts: Arc::new(opts),
        };
        let task = tokio::spawn(accept_loop(listener, app, shutdown.clone()));
        Ok(HttpServer {
            local_addr,
            shutdown,
            task,
        })
    }

    /// Stops accepting, ends open streams, waits for in-flight requests up
    /// to the grace period.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }

    /// Resolves when the server stops on its own (it only stops on
    /// shutdown).
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }
}

async fn accept_loop(listener: TcpListener, app: App, shutdown: CancellationToken) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning.
                    tracing::warn!(target: "airlock::mcp", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let svc = hyper::service::service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.handle(req).await) }
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(target: "airlock::mcp", error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let grace = app.opts.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(target: "airlock::mcp", "shutdown grace period over; dropping the remaining connections");
    }
}

#[cfg(test)]
mod tests {
    use super::{event_id_ok, loopback_origin, origin_allowed};

    #[test]
    fn event_ids_are_what_rmcp_issues() {
        for ok in ["0", "12/3", "0/0", "18446744073709551615/1"] {
            assert!(event_id_ok(ok), "{ok}");
        }
        for bad in [
            "",
            "/",
            "1/",
            "/1",
            "a",
            "1/2/3",
            "-1",
            " 1",
            "1 ",
            "1/x",
            &"9".repeat(65),
        ] {
            assert!(!event_id_ok(bad), "{bad}");
        }
    }

    #[test]
    fn loopback_origins_are_exactly_loopback() {
        for ok in [
            "http://localhost",
            "http://localhost:3000",
            "http://127.0.0.1:8080",
            "http://[::1]:9",
            "https://LOCALHOST",
        ] {
            assert!(loopback_origin(ok), "{ok}");
        }
        for bad in [
            "http://localhost.evil.com",
            "http://127.0.0.1.nip.io",
            "http://evil.com",
            "null",
            "http://[::1].evil",
            "http://localhost:80x",
            "http://localhost@evil.com",
            "file://localhost",
        ] {
            assert!(!loopback_origin(bad), "{bad}");
        }
    }

    #[test]
    fn origins_match_exactly() {
        let allowed = vec!["https://app.example.com".to_string()];
        assert!(origin_allowed("https://app.example.com", &allowed));
        assert!(origin_allowed("https://APP.example.com/", &allowed));
        assert!(!origin_allowed("https://app.example.com.evil", &allowed));
        assert!(!origin_allowed("http://app.example.com", &allowed));
        assert!(!origin_allowed("null", &allowed));
        assert!(!origin_allowed("https://app.example.com", &[]));
    }
}
