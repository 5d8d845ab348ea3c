//! The private side: N outbound links, each an HTTP/2 server whose streams
//! are forwarded to configured routes on allowed addresses only.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;

use crate::link::{self, Hello, Welcome};
use crate::paths::{split_names, valid_path};
use crate::{is_hop_header, Body, Error};

/// Backstop on a request body forwarded to an HTTP route (the gateway's
/// own limit, `max_body`, is 4 MiB by default).
const MAX_REQUEST_BODY: usize = 16 << 20;

/// Where a route goes.
#[derive(Debug, Clone)]
pub enum RouteTarget {
    /// An HTTP MCP server, e.g. `http://127.0.0.1:8000/mcp`.
    Http(String),
    /// A stdio MCP server to spawn: program and arguments.
    Stdio(Vec<String>),
}

/// Reconnect pacing: a burst of quick retries, then exponential backoff
/// with full jitter, forever.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub quick_retries: u32,
    pub quick_delay: Duration,
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            quick_retries: 3,
            quick_delay: Duration::from_millis(100),
            base: Duration::from_millis(500),
            max: Duration::from_secs(20),
        }
    }
}

impl Backoff {
    pub fn delay(&self, attempt: u32) -> Duration {
        if attempt < self.quick_retries {
            return self.quick_delay;
        }
        let exp = (attempt - self.quick_retries).min(16);
        let cap = self.base.saturating_mul(1u32 << exp).min(self.max);
        // Full jitter over [cap/2, cap] keeps a fleet from reconnecting in step.
        let mut r = [0u8; 4];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut r);
        let frac = f64::from(u32::from_le_bytes(r)) / f64::from(u32::MAX);
        cap.mul_f64(0.5 + 0.5 * frac)
    }
}

#[derive(Clone)]
pub struct ConnectorOptions {
    /// `host:port` of the gateway's link listener.
    pub gateway: String,
    /// Name checked against the gateway certificate (default: gateway host).
    pub server_name: Option<String>,
    pub tunnel: String,
    pub token: String,
    /// Stable name; with the link index, what a reconnect replaces.
    pub name: String,
    pub links: u32,
    pub ca_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub routes: BTreeMap<String, RouteTarget>,
    pub allowed_ips: Vec<IpNet>,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub backoff: Backoff,
    /// `http://[user:pass@]host:port` of an HTTP CONNECT proxy.
    pub proxy: Option<String>,
    /// How long a graceful shutdown waits for in-flight streams.
    pub drain: Duration,
    /// When set, the token and certificates are re-read from these files
    /// before every connection attempt, so a rotated token or certificate
    /// is picked up without restarting the connector.
    pub reload: Option<CredentialFiles>,
}

/// Files the connector re-reads on every reconnect.
#[derive(Debug, Clone)]
pub struct CredentialFiles {
    /// Token file (whitespace trimmed); `None` keeps the configured token.
    pub token: Option<std::path::PathBuf>,
    pub ca: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// Loopback and RFC 1918 (plus IPv6 loopback and ULA).
pub fn default_allowed_ips() -> Vec<IpNet> {
    [
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "::1/128",
        "fc00::/7",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect()
}

impl ConnectorOptions {
    pub fn new(
        gateway: String,
        tunnel: String,
        token: String,
        ca_pem: Vec<u8>,
        cert_pem: Vec<u8>,
        key_pem: Vec<u8>,
    ) -> Self {
        ConnectorOptions {
            gateway,
            server_name: None,
            tunnel,
            token,
            name: hostname(),
            links: 2,
            ca_pem,
            cert_pem,
            key_pem,
            routes: BTreeMap::new(),
            allowed_ips: default_allowed_ips(),
            ping_interval: Duration::from_secs(4),
            ping_timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
            proxy: None,
            drain: Duration::from_secs(30),
            reload: None,
        }
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "connector".into())
}

impl Shared {
    /// The credentials for the next attempt: re-read from files when
    /// configured; on a read or parse error, the last good ones (logged).
    fn credentials(&self) -> (TlsConnector, String) {
        if let Some(f) = &self.opts.reload {
            let fresh = (|| -> Result<(TlsConnector, Option<String>), Error> {
                let rd = |p: &std::path::Path| {
                    std::fs::read(p).map_err(|e| Error::Config(format!("{}: {e}", p.display())))
                };
                let cfg = crate::tls::link_client_config(&rd(&f.ca)?, &rd(&f.cert)?, &rd(&f.key)?)?;
                let token = match &f.token {
                    Some(p) => Some(String::from_utf8_lossy(&rd(p)?).trim().to_string()),
                    None => None,
                };
                Ok((TlsConnector::from(cfg), token))
            })();
            match fresh {
                Ok((c, t)) => {
                    if let Ok(mut g) = self.creds.lock() {
                        g.0 = c;
                        if let Some(t) = t.filter(|t| !t.is_empty()) {
                            g.1 = t;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(target: "airlock::tunnel", %e, "cannot re-read credentials; using the previous ones")
                }
            }
        }
        match self.creds.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

struct Shared {
    opts: ConnectorOptions,
    /// Current TLS client and token (replaced when `reload` files change).
    creds: Mutex<(TlsConnector, String)>,
    pool: Arc<crate::upstream::Pool>,
    connected: watch::Sender<usize>,
    stdio: HashMap<String, Arc<crate::stdio::StdioRoute>>,
    /// Route host names resolved in the last `RESOLVE_TTL` (see `resolve`).
    resolved: Mutex<HashMap<(String, u16), Resolved>>,
}

/// When a host name was resolved, and to what.
type Resolved = (std::time::Instant, Vec<SocketAddr>);

/// How long a route's resolved host name is reused: resolving `localhost`
/// through the system resolver (a blocking-pool hand-off and
/// `getaddrinfo`) took ~85 µs, on every request. The addresses are checked
/// against `allowed_ips` on every use, and exactly those are dialed.
const RESOLVE_TTL: Duration = Duration::from_secs(1);

/// The addresses of a route's host: an IP literal as is, a name from the
/// cache or the resolver. Failures are not cached.
async fn resolve(shared: &Shared, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let key = (host.to_string(), port);
    if let Ok(c) = shared.resolved.lock() {
        if let Some((at, a)) = c.get(&key) {
            if at.elapsed() < RESOLVE_TTL {
                return Ok(a.clone());
            }
        }
    }
    let a: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    if let Ok(mut c) = shared.resolved.lock() {
        // Routes are configured, so this stays small; bound it anyway.
        if c.len() > 1024 {
            c.clear();
        }
        c.insert(key, (std::time::Instant::now(), a.clone()));
    }
    Ok(a)
}

/// A running connector.
pub struct Connector {
    stop: watch::Sender<bool>,
    tasks: JoinSet<Result<(), Error>>,
    connected: watch::Receiver<usize>,
}

impl Connector {
    pub fn start(opts: ConnectorOptions) -> Result<Connector, Error> {
        let mut stdio = HashMap::new();
        for (name, t) in &opts.routes {
            match t {
                RouteTarget::Http(url) => {
                    parse_http_url(url)
                        .map_err(|e| Error::Config(format!("route `{name}`: {e}")))?;
                }
                RouteTarget::Stdio(cmd) => {
                    if cmd.is_empty() {
                        return Err(Error::Config(format!("route `{name}`: command is empty")));
                    }
                    stdio.insert(
                        name.clone(),
                        Arc::new(crate::stdio::StdioRoute::new(cmd.clone())),
                    );
                }
            }
        }
        if opts.links == 0 {
            return Err(Error::Config("links must be at least 1".into()));
        }
        let cfg = crate::tls::link_client_config(&opts.ca_pem, &opts.cert_pem, &opts.key_pem)?;
        let (connected, connected_rx) = watch::channel(0usize);
        let shared = Arc::new(Shared {
            creds: Mutex::new((TlsConnector::from(cfg), opts.token.clone())),
            opts,
            pool: Arc::default(),
            connected,
            stdio,
            resolved: Mutex::default(),
        });
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for i in 0..shared.opts.links {
            tasks.spawn(run_link(shared.clone(), i, stop_rx.clone()));
        }
        Ok(Connector {
            stop,
            tasks,
            connected: connected_rx,
        })
    }

    /// Number of links currently up.
    pub fn links_up(&self) -> usize {
        *self.connected.borrow()
    }

    /// Waits until at least `n` links are up.
    pub async fn wait_links(&mut self, n: usize) {
        let _ = self.connected.wait_for(|&c| c >= n).await;
    }

    /// Runs until a link fails fatally (bad credentials) or all stop.
    pub async fn wait(&mut self) -> Result<(), Error> {
        while let Some(r) = self.tasks.join_next().await {
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    let _ = self.stop.send(true);
                    return Err(e);
                }
                Err(e) => return Err(Error::Protocol(format!("link task failed: {e}"))),
            }
        }
        Ok(())
    }

    /// Graceful drain: GOAWAY on every link, then wait for in-flight streams.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }

    /// Drops every link at once without GOAWAY (tests: a crash).
    pub async fn kill(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|&v| v).await;
}

enum LinkEnd {
    /// The link was up and ended; reconnect promptly.
    Closed(String),
    Stopped,
}

async fn run_link(
    shared: Arc<Shared>,
    index: u32,
    stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    let mut attempt = 0u32;
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        match link_once(&shared, index, stop.clone()).await {
            Ok(LinkEnd::Stopped) => return Ok(()),
            Ok(LinkEnd::Closed(why)) => {
                tracing::warn!(target: "airlock::tunnel", link = index, %why, "link closed; reconnecting");
                attempt = 0;
            }
            Err(e @ Error::Auth(_)) => {
                tracing::error!(target: "airlock::tunnel", link = index, %e, "link authentication failed; not retrying");
                return Err(e);
            }
            Err(e) => {
                tracing::warn!(target: "airlock::tunnel", link = index, attempt, %e, "link attempt failed");
            }
        }
        let d = shared.opts.backoff.delay(attempt);
        attempt = attempt.saturating_add(1);
        let mut s = stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = stopped(&mut s) => return Ok(()),
        }
    }
}

/// Classifies TLS failures that retrying cannot fix.
fn classify(e: std::io::Error) -> Error {
    use rustls::AlertDescription as A;
    if let Some(te) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        match te {
            rustls::Error::InvalidCertificate(c) => {
                return Error::Auth(format!(
                    "the gateway's certificate does not verify against the pinned CA: {c:?}"
                ))
            }
            rustls::Error::AlertReceived(
                A::BadCertificate
                | A::UnknownCA
                | A::CertificateRequired
                | A::CertificateUnknown
                | A::CertificateExpired
                | A::CertificateRevoked
                | A::AccessDenied,
            ) => {
                return Error::Auth(format!(
                    "the gateway refused this connector's client certificate ({te})"
                ))
            }
            _ => {}
        }
    }
    Error::Io(e)
}

async fn dial(opts: &ConnectorOptions) -> Result<TcpStream, Error> {
    let Some(proxy) = &opts.proxy else {
        return Ok(TcpStream::connect(&opts.gateway).await?);
    };
    let u: Uri = proxy
        .parse()
        .map_err(|_| Error::Config(format!("proxy `{proxy}` is not a URL")))?;
    let auth = u
        .authority()
        .ok_or_else(|| Error::Config("proxy URL needs host:port".into()))?;
    let hostport = auth.as_str().rsplit('@').next().unwrap_or(auth.as_str());
    let hostport = if auth.port().is_some() {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let mut s = TcpStream::connect(&hostport).await?;
    let mut req = format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n", opts.gateway);
    if let Some((userinfo, _)) = auth.as_str().split_once('@') {
        use base64::Engine;
        let b = base64::engine::general_purpose::STANDARD.encode(userinfo);
        req.push_str(&format!("Proxy-Authorization: Basic {b}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await?;
    // Read the response head byte by byte so no tunnelled byte is consumed.
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 {
            return Err(Error::Protocol("proxy response head too large".into()));
        }
        head.push(s.read_u8().await?);
    }
    let line = String::from_utf8_lossy(&head);
    let status = line.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        let first = line.lines().next().unwrap_or("").to_string();
        return Err(Error::Protocol(format!(
            "proxy refused CONNECT to {}: {first}",
            opts.gateway
        )));
    }
    Ok(s)
}

async fn link_once(
    shared: &Arc<Shared>,
    index: u32,
    mut stop: watch::Receiver<bool>,
) -> Result<LinkEnd, Error> {
    let o = &shared.opts;
    let tcp = tokio::time::timeout(Duration::from_secs(10), dial(o))
        .await
        .map_err(|_| Error::Protocol(format!("connecting to {} timed out", o.gateway)))??;
    let _ = tcp.set_nodelay(true);
    let host = o.server_name.clone().unwrap_or_else(|| host_of(&o.gateway));
    let name = rustls_pki_types::ServerName::try_from(host.clone())
        .map_err(|_| Error::Config(format!("`{host}` is not a valid TLS server name")))?;
    let (connector, token) = shared.credentials();
    let mut tls = tokio::time::timeout(
        Duration::from_secs(10),
        connector.connect(name, link::ReadAhead::new(tcp)),
    )
    .await
    .map_err(|_| Error::Protocol("TLS handshake timed out".into()))?
    .map_err(classify)?;
    let hello = Hello {
        v: link::VERSION,
        tunnel: o.tunnel.clone(),
        token,
        connector: o.name.clone(),
        link: index,
        routes: o.routes.keys().cloned().collect(),
    };
    link::write_frame(&mut tls, &hello)
        .await
        .map_err(|e| match e {
            Error::Io(io) => classify(io),
            e => e,
        })?;
    let w: Welcome = tokio::time::timeout(Duration::from_secs(10), link::read_frame(&mut tls))
        .await
        .map_err(|_| Error::Protocol("no answer to the link hello within 10s".into()))?
        .map_err(|e| match e {
            Error::Io(io) => classify(io),
            e => e,
        })?;
    if !w.ok {
        return Err(if w.fatal {
            Error::Auth(w.error)
        } else {
            Error::Protocol(w.error)
        });
    }
    tracing::info!(target: "airlock::tunnel", link = index, link_id = w.link_id, gateway = %o.gateway, "link up");

    let sh = shared.clone();
    let svc = service_fn(move |req| {
        let sh = sh.clone();
        // Boxed: hyper keeps each stream's task sized for its service
        // future; boxing frees the forwarding state once the response head
        // is out, so an open (SSE) stream holds only its body.
        Box::pin(async move { Ok::<_, Infallible>(forward(&sh, req).await) })
    });
    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(o.ping_interval)
        .keep_alive_timeout(o.ping_timeout)
        .max_concurrent_streams(4096)
        .initial_stream_window_size(1 << 20)
        .initial_connection_window_size(8 << 20)
        .max_frame_size(64 << 10)
        .serve_connection(TokioIo::new(tls), svc);
    tokio::pin!(conn);
    shared.connected.send_modify(|c| *c += 1);
    let end = tokio::select! {
        r = conn.as_mut() => LinkEnd::Closed(match r { Ok(()) => "closed by gateway".into(), Err(e) => e.to_string() }),
        _ = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(o.drain, conn.as_mut()).await;
            LinkEnd::Stopped
        }
    };
    shared.connected.send_modify(|c| *c = c.saturating_sub(1));
    Ok(end)
}

fn host_of(hostport: &str) -> String {
    let h = match hostport.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => hostport,
    };
    h.trim_start_matches('[').trim_end_matches(']').to_string()
}

struct HttpTarget {
    host: String,
    port: u16,
    authority: String,
    base_path: String,
}

fn parse_http_url(url: &str) -> Result<HttpTarget, String> {
    let u: Uri = url.parse().map_err(|_| format!("`{url}` is not a URL"))?;
    if u.scheme_str() != Some("http") {
        return Err(format!(
            "`{url}`: only http:// upstreams are supported (the upstream is inside your network)"
        ));
    }
    let a = u
        .authority()
        .ok_or_else(|| format!("`{url}` has no host"))?;
    if a.as_str().contains('@') {
        return Err(format!("`{url}`: credentials in the URL are not allowed"));
    }
    let host = a
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let base_path = u.path().trim_end_matches('/').to_string();
    Ok(HttpTarget {
        host,
        port: a.port_u16().unwrap_or(80),
        authority: a.as_str().to_string(),
        base_path,
    })
}

fn plain(code: StatusCode, msg: &'static str) -> Response<Body> {
    let mut r = Response::new(crate::full(msg));
    *r.status_mut() = code;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn allowed(ip: IpAddr, nets: &[IpNet]) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    nets.iter().any(|n| n.contains(&ip))
}

async fn forward(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    // The connector checks the target itself; it does not trust the gateway.
    let path = req.uri().path().to_string();
    let Some((names, sub)) = split_names(&path, 1) else {
        return plain(StatusCode::NOT_FOUND, "unknown route\n");
    };
    if !valid_path(sub) {
        return plain(StatusCode::BAD_REQUEST, "path refused\n");
    }
    let url = match shared.opts.routes.get(names[0]) {
        Some(RouteTarget::Http(url)) => url,
        Some(RouteTarget::Stdio(_)) => {
            let Some(route) = shared.stdio.get(names[0]).cloned() else {
                return plain(StatusCode::NOT_FOUND, "unknown route\n");
            };
            let (parts, body) = req.into_parts();
            let body = match http_body_util::Limited::new(body, 4 << 20).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n"),
            };
            return route.handle(&parts.method, &parts.headers, body).await;
        }
        None => return plain(StatusCode::NOT_FOUND, "unknown route\n"),
    };
    let Ok(t) = parse_http_url(url) else {
        return plain(StatusCode::BAD_GATEWAY, "route misconfigured\n");
    };
    let addrs = match resolve(shared, &t.host, t.port).await {
        Ok(a) => a,
        Err(_) => return plain(StatusCode::BAD_GATEWAY, "route host does not resolve\n"),
    };
    // Every resolved address must be allowed, so DNS cannot steer us out.
    if addrs.is_empty()
        || !addrs
            .iter()
            .all(|a| allowed(a.ip(), &shared.opts.allowed_ips))
    {
        tracing::warn!(target: "airlock::tunnel", route = names[0], host = %t.host, "route target outside allowed_ips; refused");
        return plain(
            StatusCode::FORBIDDEN,
            "route target address is outside allowed_ips\n",
        );
    }
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let up_path = match (t.base_path.is_empty(), sub.is_empty()) {
        (_, true) if !t.base_path.is_empty() => t.base_path.clone(),
        (true, true) => "/".to_string(),
        _ => format!("{}/{sub}", t.base_path),
    };
    if format!("{up_path}{query}").parse::<Uri>().is_err() {
        return plain(StatusCode::BAD_REQUEST, "path refused\n");
    }
    let (mut parts, body) = req.into_parts();
    // The gateway already holds the whole (bounded) body; collecting it here
    // lets head and body go to the upstream in one write.
    let body = match http_body_util::Limited::new(body, MAX_REQUEST_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n"),
    };
    let drop: Vec<_> = parts
        .headers
        .keys()
        .filter(|n| is_hop_header(n) || *n == "airlock-key")
        .cloned()
        .collect();
    for n in drop {
        parts.headers.remove(n);
    }
    let out = crate::upstream::Outgoing {
        method: &parts.method,
        target: &format!("{up_path}{query}"),
        authority: &t.authority,
        headers: &parts.headers,
        body,
    };
    let resp = match crate::upstream::send(&shared.pool, &addrs, out).await {
        Ok(r) => r,
        Err(crate::upstream::UpstreamError::Connect(_)) => {
            return plain(
                StatusCode::BAD_GATEWAY,
                "route upstream refused the connection\n",
            )
        }
        Err(e) => {
            tracing::debug!(target: "airlock::tunnel", route = names[0], %e, "route upstream failed");
            return plain(StatusCode::BAD_GATEWAY, "route upstream failed\n");
        }
    };
    let (mut p, b) = resp.into_parts();
    let drop: Vec<_> = p
        .headers
        .keys()
        .filter(|k| is_hop_header(k))
        .cloned()
        .collect();
    for k in drop {
        p.headers.remove(k);
    }
    Response::from_parts(p, b.boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_bursts_then_grows_with_jitter_and_caps() {
        let b = Backoff::default();
        for a in 0..b.quick_retries {
            assert_eq!(b.delay(a), b.quick_delay);
        }
        let d = b.delay(b.quick_retries);
        assert!(d >= b.base / 2 && d <= b.base, "{d:?}");
        for a in 10..40 {
            assert!(b.delay(a) <= b.max && b.delay(a) >= b.max / 2);
        }
    }

    #[test]
    fn defaults_find_a_dead_path_within_15s() {
        let o = ConnectorOptions::new(
            String::new(),
            String::new(),
            String::new(),
            vec![],
            vec![],
            vec![],
        );
        assert!(o.ping_interval + o.ping_timeout <= Duration::from_secs(15));
        assert_eq!(o.links, 2);
    }

    #[test]
    fn allowed_ips_default_and_mapped_v6() {
        let d = default_allowed_ips();
        for ok in [
            "127.0.0.1",
            "10.1.2.3",
            "172.31.0.1",
            "192.168.1.1",
            "::1",
            "::ffff:127.0.0.1",
            "fd00::1",
        ] {
            assert!(allowed(ok.parse().unwrap(), &d), "{ok}");
        }
        for bad in [
            "8.8.8.8",
            "172.32.0.1",
            "169.254.169.254",
            "::ffff:8.8.8.8",
            "2001:db8::1",
            "0.0.0.0",
        ] {
            assert!(!allowed(bad.parse().unwrap(), &d), "{bad}");
        }
    }

    #[test]
    fn route_urls() {
        let t = parse_http_url("http://127.0.0.1:8000/mcp/").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.base_path.as_str()),
            ("127.0.0.1", 8000, "/mcp")
        );
        assert_eq!(parse_http_url("http://[::1]/x").unwrap().host, "::1");
        assert!(parse_http_url("https://a/x").is_err());
        assert!(parse_http_url("http://u:p@a/x").is_err());
        assert!(parse_http_url("file:///etc/passwd").is_err());
        assert_eq!(host_of("gw.example:7443"), "gw.example");
        assert_eq!(host_of("[::1]:7443"), "::1");
    }
}
