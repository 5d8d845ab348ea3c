//! The gateway's admin API: tunnels and agent keys over HTTP, on a listener
//! of its own (`gateway.admin_listen`), for `airlock tunnel …` / `airlock
//! key … --gateway URL` and for scripts (see docs/tunnel.md).
//!
//! * Off unless an address is given; plain HTTP only on a loopback address,
//!   HTTPS with the gateway's certificate on any other (a bearer key must
//!   not cross a network in clear, so there is no switch to turn TLS off).
//! * `Authorization: Bearer ADMIN_KEY`, compared as SHA-256 digests in
//!   constant time; a refusal is a bare `401` (nothing about why).
//! * Every request, refused or not, is one [`TunnelEvent::Admin`] in the
//!   gateway's audit log: who (the admin key holder at a remote address, or
//!   an unauthenticated caller), what, the result. Tokens and keys appear
//!   only in the body of the response that created them.
//! * A change is applied to the running gateway before the response: the
//!   key and tunnel caches are emptied (a revoked key is refused on its next
//!   request) and an archived tunnel's links are closed.
//!
//! This module is a child of `gateway` (declared there) so it can reach the
//! gateway's shared state without widening that state's visibility.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::{emit, Shared};
use crate::events::TunnelEvent;
use crate::paths::valid_name;
use crate::state::{self, State};
use crate::{full, Body, Error};

/// Largest admin request body (a request carries at most two CA PEMs).
const MAX_BODY: usize = 256 << 10;

/// The admin key as the gateway holds it: only its SHA-256, whether the
/// config gave the key (a secret reference) or its digest.
#[derive(Clone)]
pub struct AdminKey([u8; 32]);

impl AdminKey {
    pub fn from_key(key: &str) -> AdminKey {
        let mut h = [0u8; 32];
        h.copy_from_slice(&state::sha256(key));
        AdminKey(h)
    }

    pub fn from_sha256(digest: [u8; 32]) -> AdminKey {
        AdminKey(digest)
    }

    /// Constant-time check of a presented key.
    pub fn verify(&self, presented: &str) -> bool {
        crate::ct_eq(&state::sha256(presented), &self.0)
    }
}

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminKey(<redacted>)")
    }
}

// ---------------------------------------------------------------- server

pub(super) async fn serve(shared: Arc<Shared>, l: TcpListener, stop: watch::Receiver<bool>) {
    let loopback = l.local_addr().is_ok_and(|a| a.ip().is_loopback());
    let tls = if loopback {
        None
    } else {
        match crate::tls::agent_server_config(&shared.opts.cert_pem, &shared.opts.key_pem) {
            Ok(c) => Some(TlsAcceptor::from(c)),
            Err(e) => {
                // Fail closed: never fall back to plain HTTP off loopback.
                tracing::error!(%e, "admin listener TLS config; admin API not served");
                return;
            }
        }
    };
    super::accept_loop(l, tls, stop, "admin", AdminConns(shared)).await;
}

#[derive(Clone)]
struct AdminConns(Arc<Shared>);

impl super::ServeConn for AdminConns {
    fn serve<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
        self,
        io: S,
        peer: SocketAddr,
    ) -> impl std::future::Future<Output = ()> + Send {
        serve_conn(self.0, io, peer)
    }
}

async fn serve_conn<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    shared: Arc<Shared>,
    io: S,
    peer: SocketAddr,
) {
    let svc = service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(&shared, req, peer).await) }
    });
    let mut b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let _ = b.serve_connection(TokioIo::new(io), svc).await;
}

/// What one request did, for the response and the audit record.
struct Outcome {
    action: &'static str,
    target: Option<String>,
    result: Result<(StatusCode, Value), (StatusCode, String)>,
}

impl Outcome {
    fn new(action: &'static str, target: Option<&str>) -> Outcome {
        Outcome {
            action,
            target: target.map(String::from),
            result: Err((StatusCode::NOT_FOUND, "no such admin endpoint".into())),
        }
    }
}

async fn handle(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    remote: SocketAddr,
) -> Response<Body> {
    let authorized = match (&shared.opts.admin_key, presented_key(&req)) {
        (Some(admin), Some(k)) => admin.verify(k),
        // No admin key configured: nobody is admitted (fail closed).
        _ => false,
    };
    if !authorized {
        emit(
            shared,
            TunnelEvent::Admin {
                action: "unauthorized".into(),
                target: None,
                remote: remote.to_string(),
                ok: false,
                status: 401,
                error: None,
            },
        );
        tracing::info!(target: "airlock::tunnel", %remote, "admin API: request without a valid admin key refused");
        let mut r = Response::new(crate::empty());
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        r.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer"),
        );
        return r;
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(e) => {
            let o = Outcome {
                action: "bad_request",
                target: None,
                result: Err((StatusCode::BAD_REQUEST, e)),
            };
            return finish(shared, o, remote);
        }
    };
    let o = dispatch(shared, &method, &path, &body);
    finish(shared, o, remote)
}

fn presented_key(req: &Request<Incoming>) -> Option<&str> {
    let v = req
        .headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, key) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
}

async fn read_body(req: Request<Incoming>) -> Result<Value, String> {
    let collect = Limited::new(req.into_body(), MAX_BODY).collect();
    let bytes = match tokio::time::timeout(Duration::from_secs(10), collect).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(_)) => {
            return Err(format!(
                "request body too large or broken (limit {MAX_BODY} bytes)"
            ))
        }
        Err(_) => return Err("request body not received within 10s".into()),
    };
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("request body is not JSON: {e}"))
}

fn finish(shared: &Shared, o: Outcome, remote: SocketAddr) -> Response<Body> {
    let (status, body, error) = match o.result {
        Ok((s, v)) => (s, v, None),
        Err((s, msg)) => (s, json!({ "error": msg }), Some(msg)),
    };
    emit(
        shared,
        TunnelEvent::Admin {
            action: o.action.into(),
            target: o.target.clone(),
            remote: remote.to_string(),
            ok: status.is_success(),
            status: status.as_u16(),
            error: error.clone(),
        },
    );
    tracing::info!(target: "airlock::tunnel", %remote, action = o.action, target = o.target.as_deref().unwrap_or("-"), status = status.as_u16(), "admin API");
    let mut r = Response::new(full(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Responses may carry a token or key: never cached anywhere.
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    r
}

type Res = Result<(StatusCode, Value), (StatusCode, String)>;

fn dispatch(shared: &Shared, method: &Method, path: &str, body: &Value) -> Outcome {
    let segs: Vec<&str> = match path.strip_prefix("/v1/") {
        Some(rest) => rest.split('/').collect(),
        None => return Outcome::new("not_found", None),
    };
    let get = method == Method::GET;
    let post = method == Method::POST;
    let (action, target, res): (&'static str, Option<&str>, Option<Res>) = match segs.as_slice() {
        ["tunnels"] if get => ("tunnel.list", None, Some(list_tunnels(shared))),
        ["tunnels"] if post => {
            let name = body.get("name").and_then(Value::as_str);
            ("tunnel.create", name, Some(create_tunnel(shared, body)))
        }
        ["tunnels", n] if get => ("tunnel.show", Some(*n), Some(show_tunnel(shared, n))),
        ["tunnels", n, "rotate-token"] if post => (
            "tunnel.rotate_token",
            Some(*n),
            Some(rotate(shared, n, body)),
        ),
        ["tunnels", n, "cas"] if post => ("tunnel.add_ca", Some(*n), Some(add_ca(shared, n, body))),
        ["tunnels", n, "retire-old-cas"] if post => {
            ("tunnel.retire_old_cas", Some(*n), Some(retire(shared, n)))
        }
        ["tunnels", n, "archive"] if post => ("tunnel.archive", Some(*n), Some(archive(shared, n))),
        ["identity-key"] if get => ("identity_key", None, Some(identity_key(shared))),
        ["keys"] if get => ("key.list", None, Some(list_keys(shared))),
        ["keys"] if post => {
            let t = body.get("tunnel").and_then(Value::as_str);
            ("key.create", t, Some(create_key(shared, body)))
        }
        ["keys", id, "revoke"] if post => ("key.revoke", Some(*id), Some(revoke(shared, id))),
        ["tunnels"]
        | ["tunnels", _]
        | ["tunnels", _, "rotate-token" | "cas" | "retire-old-cas" | "archive"]
        | ["identity-key"]
        | ["keys"]
        | ["keys", _, "revoke"] => ("method_not_allowed", None, None),
        _ => ("not_found", None, None),
    };
    let mut o = Outcome::new(action, target);
    o.result = match res {
        Some(r) => r,
        None if action == "method_not_allowed" => Err((
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on {path}"),
        )),
        None => Err((StatusCode::NOT_FOUND, format!("no admin endpoint {path}"))),
    };
    o
}

fn with_state<T>(
    shared: &Shared,
    f: impl FnOnce(&mut State) -> Result<T, Error>,
) -> Result<T, (StatusCode, String)> {
    let mut st = shared.state.lock().map_err(|_| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "gateway state unavailable".to_string(),
        )
    })?;
    f(&mut st).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))
}

/// The running gateway sees a change at once: nothing cached survives it.
fn invalidate(shared: &Shared) {
    if let Ok(mut c) = shared.key_cache.lock() {
        c.clear();
    }
    if let Ok(mut c) = shared.tunnel_cache.lock() {
        c.clear();
    }
}

fn bad(msg: impl Into<String>) -> (StatusCode, String) {
    (StatusCode::BAD_REQUEST, msg.into())
}

fn name_ok(kind: &str, n: &str) -> Result<(), (StatusCode, String)> {
    if valid_name(n) {
        Ok(())
    } else {
        Err(bad(format!("{kind} `{n}` must be 1-63 of [A-Za-z0-9_-]")))
    }
}

/// 404 unless `name` is an active tunnel (state would refuse it too, with
/// a 400; this gives the caller the right status).
fn require_active(shared: &Shared, name: &str) -> Result<(), (StatusCode, String)> {
    name_ok("tunnel name", name)?;
    if with_state(shared, |st| st.is_active(name))? {
        Ok(())
    } else {
        Err((
            StatusCode::NOT_FOUND,
            format!("gateway state: no active tunnel named `{name}` (see `airlock tunnel list`)"),
        ))
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, (StatusCode, String)> {
    serde_json::to_value(v).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

fn list_tunnels(shared: &Shared) -> Res {
    let t = with_state(shared, |st| st.list_tunnels())?;
    Ok((StatusCode::OK, to_value(&t)?))
}

fn show_tunnel(shared: &Shared, name: &str) -> Res {
    name_ok("tunnel name", name)?;
    let (t, hist) = with_state(shared, |st| {
        let t = st.list_tunnels()?.into_iter().find(|t| t.name == name);
        Ok((t, st.link_history(name, 20)?))
    })?;
    let Some(t) = t else {
        return Err((StatusCode::NOT_FOUND, format!("no tunnel `{name}`")));
    };
    Ok((
        StatusCode::OK,
        json!({ "tunnel": to_value(&t)?, "recent_link_events": to_value(&hist)? }),
    ))
}

fn pem_list(body: &Value, key: &str) -> Result<Vec<Vec<u8>>, (StatusCode, String)> {
    let v = body
        .get(key)
        .ok_or_else(|| bad(format!("`{key}` is required")))?;
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        Value::String(_) => vec![v],
        _ => {
            return Err(bad(format!(
                "`{key}` must be a PEM string or a list of them"
            )))
        }
    };
    items
        .into_iter()
        .map(|i| {
            i.as_str()
                .map(|s| s.as_bytes().to_vec())
                .ok_or_else(|| bad(format!("`{key}` must hold PEM strings")))
        })
        .collect()
}

fn create_tunnel(shared: &Shared, body: &Value) -> Res {
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("`name` is required"))?;
    let cas = pem_list(body, "cas")?;
    let exists = with_state(shared, |st| {
        Ok(st.list_tunnels()?.iter().any(|t| t.name == name))
    })?;
    if exists {
        return Err((
            StatusCode::CONFLICT,
            format!(
                "gateway state: tunnel `{name}` already exists (archived tunnels keep their name)"
            ),
        ));
    }
    let token = with_state(shared, |st| st.create_tunnel(name, &cas))?;
    invalidate(shared);
    Ok((
        StatusCode::CREATED,
        json!({ "tunnel": name, "token": token }),
    ))
}

fn rotate(shared: &Shared, name: &str, body: &Value) -> Res {
    require_active(shared, name)?;
    let grace = match body.get("grace_seconds") {
        None | Some(Value::Null) => 3600,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| bad("`grace_seconds` must be a whole number of seconds"))?,
    };
    let token = with_state(shared, |st| {
        st.rotate_token(name, Duration::from_secs(grace))
    })?;
    invalidate(shared);
    Ok((
        StatusCode::OK,
        json!({ "tunnel": name, "token": token, "grace_seconds": grace }),
    ))
}

fn add_ca(shared: &Shared, name: &str, body: &Value) -> Res {
    require_active(shared, name)?;
    let pems = pem_list(body, "ca")?;
    let [pem] = pems.as_slice() else {
        return Err(bad("`ca` must be one PEM certificate"));
    };
    with_state(shared, |st| st.add_ca(name, pem))?;
    invalidate(shared);
    Ok((StatusCode::OK, json!({ "tunnel": name })))
}

fn retire(shared: &Shared, name: &str) -> Res {
    require_active(shared, name)?;
    let n = with_state(shared, |st| st.retire_old_cas(name))?;
    invalidate(shared);
    Ok((StatusCode::OK, json!({ "tunnel": name, "retired": n })))
}

fn archive(shared: &Shared, name: &str) -> Res {
    require_active(shared, name)?;
    with_state(shared, |st| st.archive_tunnel(name))?;
    invalidate(shared);
    // Dropping the tunnel's link handles closes its links now, rather than
    // at the next sweep.
    let closed = shared
        .links
        .lock()
        .ok()
        .and_then(|mut l| l.remove(name))
        .map_or(0, |v| v.len());
    tracing::info!(target: "airlock::tunnel", tunnel = name, links = closed, "tunnel archived through the admin API: links closed");
    Ok((
        StatusCode::OK,
        json!({ "tunnel": name, "archived": true, "links_closed": closed }),
    ))
}

fn identity_key(shared: &Shared) -> Res {
    Ok((
        StatusCode::OK,
        json!({ "identity_key": shared.signer.public_key().to_base64() }),
    ))
}

fn list_keys(shared: &Shared) -> Res {
    let k = with_state(shared, |st| st.list_keys())?;
    Ok((StatusCode::OK, to_value(&k)?))
}

fn create_key(shared: &Shared, body: &Value) -> Res {
    let field = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("`{k}` is required")))
    };
    let agent = field("agent")?;
    let tunnel = field("tunnel")?;
    let routes: Vec<String> = match body.get("routes") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|r| r.as_str().map(String::from))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("`routes` must be a list of route names"))?,
        Some(_) => return Err(bad("`routes` must be a list of route names")),
    };
    require_active(shared, tunnel)?;
    let (id, key) = with_state(shared, |st| st.create_key(agent, tunnel, &routes))?;
    invalidate(shared);
    Ok((
        StatusCode::CREATED,
        json!({ "id": id, "key": key, "agent": agent, "tunnel": tunnel, "routes": routes }),
    ))
}

fn revoke(shared: &Shared, id: &str) -> Res {
    let live = with_state(shared, |st| {
        Ok(st
            .list_keys()?
            .iter()
            .any(|k| k.id == id && k.revoked_at.is_none()))
    })?;
    if !live {
        return Err((
            StatusCode::NOT_FOUND,
            format!("gateway state: no unrevoked key with id `{id}` (see `airlock key list`)"),
        ));
    }
    with_state(shared, |st| st.revoke_key(id))?;
    invalidate(shared);
    Ok((StatusCode::OK, json!({ "id": id, "revoked": true })))
}

// ---------------------------------------------------------------- client

/// A client of the admin API (what `airlock tunnel|key --gateway URL` uses).
pub struct Client {
    scheme_https: bool,
    authority: http::uri::Authority,
    host: String,
    key: String,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Client {
    /// `url`: `http://127.0.0.1:8444` or `https://gw.example.com:8444`.
    /// `ca_pem`: the CA that signed the gateway's certificate, required
    /// for `https://` (the admin API is never trusted on system roots).
    pub fn new(url: &str, key: String, ca_pem: Option<&[u8]>) -> Result<Client, Error> {
        let uri: http::Uri = url.parse().map_err(|_| {
            Error::Config(format!(
                "--gateway `{url}` is not a URL like http://127.0.0.1:8444"
            ))
        })?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(Error::Config(format!(
                    "--gateway `{url}` must start with http:// (loopback) or https://"
                )))
            }
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(Error::Config(format!(
                "--gateway `{url}` must be the admin API's address only, like https://gw.example.com:8444"
            )));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| Error::Config(format!("--gateway `{url}` has no host")))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tls = if https {
            let ca = ca_pem.ok_or_else(|| {
                Error::Config("an https:// admin API needs --gateway-ca FILE (the CA that signed the gateway's certificate)".into())
            })?;
            let mut roots = rustls::RootCertStore::empty();
            for c in crate::tls::certs_from_pem(ca, "--ca")? {
                roots
                    .add(c)
                    .map_err(|e| Error::Tls(format!("--ca certificate rejected: {e}")))?;
            }
            let mut cfg = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| Error::Tls(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(Arc::new(cfg))
        } else {
            None
        };
        Ok(Client {
            scheme_https: https,
            authority,
            host,
            key,
            tls,
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value, Error> {
        self.call(Method::GET, path, None).await
    }

    /// A POST; a `null` body is sent as no body.
    pub async fn post(&self, path: &str, body: Value) -> Result<Value, Error> {
        let body = (!body.is_null()).then_some(body);
        self.call(Method::POST, path, body).await
    }

    /// One request; the JSON answer of a 2xx, else the API's error message.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Error> {
        let port = self
            .authority
            .port_u16()
            .unwrap_or(if self.scheme_https { 443 } else { 80 });
        let tcp = tokio::time::timeout(
            Duration::from_secs(10),
            TcpStream::connect((self.host.as_str(), port)),
        )
        .await
        .map_err(|_| {
            Error::Admin(format!(
                "connecting to the admin API at {} timed out",
                self.authority
            ))
        })?
        .map_err(|e| {
            Error::Admin(format!(
                "cannot reach the admin API at {}: {e}",
                self.authority
            ))
        })?;
        let (status, bytes) = match &self.tls {
            Some(cfg) => {
                let name =
                    rustls_pki_types::ServerName::try_from(self.host.clone()).map_err(|_| {
                        Error::Config(format!("`{}` is not a TLS server name", self.host))
                    })?;
                let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| Error::Tls(format!("admin API at {}: {e}", self.authority)))?;
                self.exchange(tls, method, path, body).await?
            }
            None => self.exchange(tcp, method, path, body).await?,
        };
        let v: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| {
                Error::Admin(format!("admin API answered {status} with non-JSON: {e}"))
            })?
        };
        if status == StatusCode::UNAUTHORIZED {
            return Err(Error::Auth(
                "the gateway refused the admin key (401); check AIRLOCK_ADMIN_KEY or --admin-key-env".into(),
            ));
        }
        if !status.is_success() {
            let msg = v
                .get("error")
                .and_then(Value::as_str)
                .map(String::from)
                .unwrap_or_else(|| format!("admin API answered {status}"));
            return Err(Error::Admin(msg));
        }
        Ok(v)
    }

    async fn exchange<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
        &self,
        io: S,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Bytes), Error> {
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        tokio::spawn(conn);
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, self.authority.as_str())
            .header(http::header::AUTHORIZATION, format!("Bearer {}", self.key));
        if !payload.is_empty() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(full(payload))
            .map_err(|e| Error::Admin(format!("cannot build the request: {e}")))?;
        let work = async {
            let resp = send.send_request(req).await?;
            let status = resp.status();
            let bytes = Limited::new(resp.into_body(), 16 << 20)
                .collect()
                .await
                .map_err(|e| Error::Admin(format!("reading the admin API's answer: {e}")))?
                .to_bytes();
            Ok::<_, Error>((status, bytes))
        };
        tokio::time::timeout(Duration::from_secs(30), work)
            .await
            .map_err(|_| Error::Admin("the admin API did not answer within 30s".into()))?
    }
}
