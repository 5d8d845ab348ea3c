//! The connection handler: protocol sniffing, auth, decisions, relaying.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::canon::{canonicalize_authority, canonicalize_host, Host};
use crate::http1::{read_head, relay_body, BodyFraming, HttpError, RequestHead};
use crate::record::{ConnectionRecord, Decision, Protocol};
use crate::rules::{Denial, Policy};
use crate::splice::AsRaw;
use crate::{ProxyCredential, ProxyOptions};

/// A credential with its secret resolved once at start (or the reason it could not be).
pub(crate) struct ResolvedCredential {
    pub name: String,
    pub host: airlock_config::HostPattern,
    pub header: String,
    pub value: Result<String, String>,
    /// Injected into plain-HTTP requests too (`plain_http: true`).
    pub plain_http: bool,
}

pub(crate) struct Shared {
    pub opts: ProxyOptions,
    pub policy: Policy,
    pub creds: Vec<ResolvedCredential>,
    /// Secret values the leak check looks for.
    pub secrets: Vec<String>,
    pub expected_auth: String,
    pub up: AtomicU64,
    pub down: AtomicU64,
    pub rate: Mutex<(Instant, f64)>,
    pub records: Mutex<Vec<ConnectionRecord>>,
    /// Interception material, or why there is none.
    pub tls: Result<crate::intercept::TlsMaterial, String>,
}

impl Shared {
    pub fn new(opts: ProxyOptions, local_addrs: Vec<IpAddr>) -> Shared {
        let policy = Policy::new(&opts.network, local_addrs);
        let creds: Vec<ResolvedCredential> = opts
            .credentials
            .iter()
            .map(|c| ResolvedCredential {
                name: c.name.clone(),
                host: c.host.clone(),
                header: c.header.clone(),
                value: c
                    .value
                    .resolve()
                    .map(|v| v.expose().to_string())
                    .map_err(|e| format!("credential `{}` could not be resolved: {e}", c.name)),
                plain_http: c.plain_http,
            })
            .collect();
        let secrets = creds
            .iter()
            .filter_map(|c| c.value.as_ref().ok())
            .flat_map(|v| {
                // The whole header value and, for `Scheme token`, the token alone.
                let mut out = vec![v.clone()];
                if let Some((_, tok)) = v.split_once(' ') {
                    out.push(tok.to_string());
                }
                out
            })
            .chain(opts.extra_secrets.iter().cloned())
            .filter(|s| s.len() >= 8)
            .collect();
        let expected_auth = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            opts.client_credential.user, opts.client_credential.password
        ));
        let burst = opts
            .limits
            .requests_per_second
            .map(f64::from)
            .unwrap_or(0.0);
        let tls = crate::intercept::TlsMaterial::new(&opts);
        Shared {
            tls,
            policy,
            creds,
            secrets,
            expected_auth,
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
            rate: Mutex::new((Instant::now(), burst)),
            records: Mutex::new(Vec::new()),
            opts,
        }
    }

    fn emit(&self, rec: ConnectionRecord) {
        if let Some(s) = &self.opts.sink {
            s.record(&rec);
        }
        if let Ok(mut r) = self.records.lock() {
            r.push(rec);
        }
    }

    /// Token bucket: `requests_per_second` refill, burst of one second.
    pub(crate) fn take_token(&self) -> bool {
        let Some(rps) = self.opts.limits.requests_per_second else {
            return true;
        };
        let Ok(mut g) = self.rate.lock() else {
            return false;
        };
        let now = Instant::now();
        let rps = f64::from(rps);
        g.1 = (g.1 + now.duration_since(g.0).as_secs_f64() * rps).min(rps);
        g.0 = now;
        if g.1 >= 1.0 {
            g.1 -= 1.0;
            true
        } else {
            false
        }
    }

    /// Why a CONNECT to this destination must be intercepted, if it must.
    pub(crate) fn intercepts(&self, host: &Host, port: u16) -> Option<String> {
        if let Some(c) = self.credential_for(host, port) {
            return Some(format!("credential `{}`", c.name));
        }
        let name = host.to_string();
        self.opts
            .inspect
            .iter()
            .any(|p| p.matches(&name, port))
            .then(|| "inspect rule".to_string())
    }

    pub(crate) fn credential_for(&self, host: &Host, port: u16) -> Option<&ResolvedCredential> {
        let name = host.to_string();
        self.creds.iter().find(|c| c.host.matches(&name, port))
    }

    fn leaks(&self, data: &[u8]) -> bool {
        self.opts.leak_check
            && self
                .secrets
                .iter()
                .any(|s| data.windows(s.len()).any(|w| w == s.as_bytes()))
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) struct Rec {
    start: Instant,
    pub(crate) rec: ConnectionRecord,
}

impl Rec {
    pub(crate) fn new(shared: &Shared, protocol: Protocol) -> Rec {
        Rec {
            start: Instant::now(),
            rec: ConnectionRecord {
                session: shared.opts.session.clone(),
                protocol,
                host: String::new(),
                port: 0,
                resolved: None,
                decision: Decision::Deny,
                rule: String::new(),
                reason: None,
                credential: None,
                bytes_up: 0,
                bytes_down: 0,
                duration: Duration::ZERO,
                status: None,
            },
        }
    }
    pub(crate) fn deny(&mut self, rule: &str, reason: String, status: u16) {
        self.rec.decision = Decision::Deny;
        self.rec.rule = rule.to_string();
        self.rec.reason = Some(reason);
        self.rec.status = Some(status);
    }
    pub(crate) fn finish(mut self, shared: &Shared) {
        self.rec.duration = self.start.elapsed();
        shared.emit(self.rec);
    }
}

/// Serve one client connection.
pub(crate) async fn handle<S>(mut s: S, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + AsRaw,
{
    let mut buf = Vec::with_capacity(4096);
    let mut first = [0u8; 4096];
    let n = match s.read(&mut first).await {
        Ok(0) | Err(_) => return,
        Ok(n) => n,
    };
    buf.extend_from_slice(&first[..n]);
    if buf[0] == 5 {
        crate::socks5::handle(s, buf, shared).await;
    } else {
        handle_http(s, buf, shared).await;
    }
}

pub(crate) async fn respond<S: AsyncWrite + Unpin>(
    s: &mut S,
    status: u16,
    reason: &str,
    extra: &str,
) {
    let text = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        407 => "Proxy Authentication Required",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        504 => "Gateway Timeout",
        _ => "Error",
    };
    let body = format!("airlock egress: {reason}\n");
    let clean: String = reason.chars().filter(|c| (' '..='~').contains(c)).collect();
    let msg = format!(
        "HTTP/1.1 {status} {text}\r\nX-Airlock-Reason: {clean}\r\n{extra}Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(msg.as_bytes()).await;
    let _ = s.shutdown().await;
}

fn http_error_status(e: &HttpError) -> u16 {
    match e {
        HttpError::HeadTooLarge | HttpError::TooManyHeaders => 431,
        _ => 400,
    }
}

/// Outcome of the host + address decision.
pub(crate) struct Vetted {
    pub addrs: Vec<SocketAddr>,
    pub rule: String,
    pub decision: Decision,
    pub report_reason: Option<String>,
}

/// Host rules, one resolution, address vetting. The returned addresses are
/// the only ones the caller may dial.
pub(crate) async fn vet(shared: &Shared, host: &Host, port: u16) -> Result<Vetted, Denial> {
    let (rule, decision, report_reason) = match shared.policy.check_host(host, port) {
        Ok(rule) => (rule, Decision::Allow, None),
        // Report mode relaxes host rules only; address vetting always applies.
        Err(d) if shared.policy.report_only() => (d.rule, Decision::ReportDeny, Some(d.reason)),
        Err(d) => return Err(d),
    };
    let ips = match host {
        Host::Ip(ip) => vec![*ip],
        Host::Name(name) => shared
            .opts
            .resolver
            .resolve(name)
            .await
            .map_err(|e| Denial {
                rule: "resolve".into(),
                reason: format!("{name} could not be resolved: {e}"),
            })?,
    };
    shared.policy.check_addrs(&ips)?;
    Ok(Vetted {
        addrs: ips
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect(),
        rule,
        decision,
        report_reason,
    })
}

pub(crate) async fn dial(shared: &Shared, addrs: &[SocketAddr]) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for a in addrs {
        match tokio::time::timeout(shared.opts.connect_timeout, TcpStream::connect(a)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Ok(Err(e)) => last = e,
            Err(_) => {
                last = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connect to {a} timed out"),
                )
            }
        }
    }
    Err(last)
}

fn check_auth(shared: &Shared, head: &RequestHead) -> bool {
    let vals: Vec<&str> = head.get_all("proxy-authorization").collect();
    let [v] = vals.as_slice() else {
        return false;
    };
    let Some((scheme, token)) = v.split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("basic")
        && ct_eq(token.trim().as_bytes(), shared.expected_auth.as_bytes())
}

async fn handle_http<S>(mut s: S, mut buf: Vec<u8>, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + AsRaw,
{
    let mut rec = Rec::new(&shared, Protocol::Http);
    // A client gets a bounded time to send its head (no slowloris).
    let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut s, &mut buf))
        .await
        .unwrap_or(Err(HttpError::Truncated))
    {
        Ok(h) => h,
        Err(e) => {
            let st = http_error_status(&e);
            rec.deny("http", e.to_string(), st);
            respond(&mut s, st, &e.to_string(), "").await;
            return rec.finish(&shared);
        }
    };
    if head.method == "CONNECT" {
        rec.rec.protocol = Protocol::Connect;
    }
    rec.rec.host = head.target.chars().take(256).collect();
    if !check_auth(&shared, &head) {
        rec.deny("auth", "missing or wrong proxy credential".into(), 407);
        respond(
            &mut s,
            407,
            "proxy credential required",
            "Proxy-Authenticate: Basic realm=\"airlock\"\r\n",
        )
        .await;
        return rec.finish(&shared);
    }
    if !shared.take_token() {
        rec.deny("rate", "request-rate limit reached".into(), 429);
        respond(&mut s, 429, "request-rate limit reached", "").await;
        return rec.finish(&shared);
    }
    let framing = match head.framing() {
        Ok(f) => f,
        Err(e) => {
            rec.deny("http", e.to_string(), 400);
            respond(&mut s, 400, &e.to_string(), "").await;
            return rec.finish(&shared);
        }
    };
    if head.method == "CONNECT" {
        handle_connect(s, buf, head, framing, shared, rec).await
    } else {
        handle_forward(s, buf, head, framing, shared, rec).await
    }
}

async fn handle_connect<S>(
    mut s: S,
    buf: Vec<u8>,
    head: RequestHead,
    framing: BodyFraming,
    shared: Arc<Shared>,
    mut rec: Rec,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + AsRaw,
{
    if framing != BodyFraming::None {
        rec.deny("http", "CONNECT with a body".into(), 400);
        respond(&mut s, 400, "CONNECT with a body", "").await;
        return rec.finish(&shared);
    }
    let (host, port) = match canonicalize_authority(&head.target, None) {
        Ok(hp) => hp,
        Err(e) => {
            rec.deny("canon", e.to_string(), 400);
            respond(&mut s, 400, &e.to_string(), "").await;
            return rec.finish(&shared);
        }
    };
    rec.rec.host = host.to_string();
    rec.rec.port = port;
    if let Some(h) = head.get("host") {
        // A Host without a port means the CONNECT port.
        if canonicalize_authority(h, Some(port)).ok() != Some((host.clone(), port)) {
            let why = format!("Host `{h}` disagrees with the CONNECT target");
            rec.deny("http", why.clone(), 400);
            respond(&mut s, 400, &why, "").await;
            return rec.finish(&shared);
        }
    }
    // A host with a credential (or marked for inspection) is intercepted;
    // an opaque tunnel would let the request out without its credential.
    let intercept = shared.intercepts(&host, port);
    if let (Some(name), Err(why)) = (&intercept, &shared.tls) {
        let why =
            format!("{host}:{port} needs TLS interception ({name}), which is unavailable: {why}");
        rec.deny("credential", why.clone(), 403);
        respond(&mut s, 403, &why, "").await;
        return rec.finish(&shared);
    }
    let Some(mut up) = open(&mut s, &shared, &mut rec, &host, port).await else {
        return rec.finish(&shared);
    };
    if s.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_err()
    {
        return rec.finish(&shared);
    }
    rec.rec.status = Some(200);
    match (&intercept, &shared.tls) {
        (Some(_), Ok(tls)) => {
            crate::intercept::run(s, buf, up, &host, port, tls, &shared, &mut rec).await;
        }
        _ => raw_tunnel(&mut s, &mut up, buf, &shared, &mut rec).await,
    }
    rec.finish(&shared)
}

/// Vet and dial; on refusal answer the client (HTTP) and fill the record.
async fn open<S: AsyncWrite + Unpin>(
    s: &mut S,
    shared: &Shared,
    rec: &mut Rec,
    host: &Host,
    port: u16,
) -> Option<TcpStream> {
    let v = match vet(shared, host, port).await {
        Ok(v) => v,
        Err(d) => {
            rec.deny(&d.rule, d.reason.clone(), 403);
            respond(s, 403, &d.reason, "").await;
            return None;
        }
    };
    rec.rec.rule = v.rule;
    rec.rec.decision = v.decision;
    rec.rec.reason = v.report_reason;
    match dial(shared, &v.addrs).await {
        Ok(up) => {
            rec.rec.resolved = up.peer_addr().ok();
            Some(up)
        }
        Err(e) => {
            let why = format!("connect to {host}:{port} failed: {e}");
            rec.rec.reason = Some(why.clone());
            rec.rec.status = Some(502);
            respond(s, 502, &why, "").await;
            None
        }
    }
}

/// An opaque tunnel: spliced in the kernel when both ends are plain sockets.
pub(crate) async fn raw_tunnel<S>(
    s: &mut S,
    up: &mut TcpStream,
    pending: Vec<u8>,
    shared: &Shared,
    rec: &mut Rec,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + AsRaw,
{
    if !pending.is_empty() {
        if !count(&shared.up, pending.len(), shared.opts.limits.bytes_up)
            || up.write_all(&pending).await.is_err()
        {
            return;
        }
        rec.rec.bytes_up += pending.len() as u64;
    }
    let (Some(c), Some(u)) = (s.as_raw(), up.as_raw()) else {
        return tunnel(s, up, Vec::new(), shared, rec).await;
    };
    let (a, b) = tokio::join!(
        crate::splice::relay(&c, &u, &shared.up, shared.opts.limits.bytes_up),
        crate::splice::relay(&u, &c, &shared.down, shared.opts.limits.bytes_down),
    );
    rec.rec.bytes_up += a;
    rec.rec.bytes_down += b;
}

/// Copy both ways, counting into the run's budgets.
pub(crate) async fn tunnel<S, U>(
    s: &mut S,
    up: &mut U,
    pending: Vec<u8>,
    shared: &Shared,
    rec: &mut Rec,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    U: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (mut ur, mut uw) = tokio::io::split(up);
    let (mut cr, mut cw) = tokio::io::split(s);
    let upf = async {
        let mut n = 0u64;
        if !pending.is_empty() {
            if !count(&shared.up, pending.len(), shared.opts.limits.bytes_up)
                || uw.write_all(&pending).await.is_err()
            {
                return n;
            }
            n += pending.len() as u64;
        }
        n += pump(&mut cr, &mut uw, &shared.up, shared.opts.limits.bytes_up).await;
        let _ = uw.shutdown().await;
        n
    };
    let downf = async {
        let n = pump(
            &mut ur,
            &mut cw,
            &shared.down,
            shared.opts.limits.bytes_down,
        )
        .await;
        let _ = cw.shutdown().await;
        n
    };
    let (u, d) = tokio::join!(upf, downf);
    rec.rec.bytes_up += u;
    rec.rec.bytes_down += d;
}

pub(crate) fn count(counter: &AtomicU64, n: usize, limit: Option<u64>) -> bool {
    let total = counter.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
    limit.is_none_or(|l| total <= l)
}

async fn pump<R, W>(r: &mut R, w: &mut W, counter: &AtomicU64, limit: Option<u64>) -> u64
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return total,
            Ok(n) => n,
        };
        // Over budget: stop relaying (the connection is torn down).
        if !count(counter, n, limit) {
            return total;
        }
        if w.write_all(&buf[..n]).await.is_err() {
            return total;
        }
        total += n as u64;
    }
}

const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

const HOP_BY_HOP: &[&str] = &[
    "proxy-authorization",
    "proxy-connection",
    "proxy-authenticate",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "transfer-encoding",
    "content-length",
];

async fn handle_forward<S>(
    mut s: S,
    mut buf: Vec<u8>,
    head: RequestHead,
    framing: BodyFraming,
    shared: Arc<Shared>,
    mut rec: Rec,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    macro_rules! refuse {
        ($rule:expr, $status:expr, $why:expr) => {{
            let why: String = $why;
            rec.deny($rule, why.clone(), $status);
            respond(&mut s, $status, &why, "").await;
            return rec.finish(&shared);
        }};
    }
    let target = head.target.as_str();
    let rest = match target.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("http://") => &target[7..],
        _ => refuse!(
            "http",
            400,
            "only absolute http:// URIs are proxied here; use CONNECT for https".to_string()
        ),
    };
    if target.contains('#') {
        refuse!("http", 400, "fragment in request target".to_string());
    }
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let path = if path.is_empty() {
        "/".to_string()
    } else if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    let (host, port) = match canonicalize_authority(authority, Some(80)) {
        Ok(hp) => hp,
        Err(e) => refuse!("canon", 400, e.to_string()),
    };
    rec.rec.host = host.to_string();
    rec.rec.port = port;
    let hosts: Vec<&str> = head.get_all("host").collect();
    match hosts.as_slice() {
        [h] if canonicalize_authority(h, Some(80)).ok() == Some((host.clone(), port)) => {}
        [h] => refuse!(
            "http",
            400,
            format!("Host `{h}` disagrees with the request target")
        ),
        _ => refuse!(
            "http",
            400,
            "exactly one Host header is required".to_string()
        ),
    }
    // A credential goes out in clear text only where the operator said so;
    // refused before any connection, so the upstream sees nothing.
    if let Some(c) = shared.credential_for(&host, port) {
        if !c.plain_http {
            refuse!(
                "credential",
                403,
                format!(
                    "credential `{}` for {host} is sent only over HTTPS: request https://{host}/ instead (the proxy injects it there), or set `plain_http: true` on the credential for a trusted plain-HTTP service",
                    c.name
                )
            );
        }
    }
    let Some(mut up) = open(&mut s, &shared, &mut rec, &host, port).await else {
        return rec.finish(&shared);
    };
    serve_request(
        &mut s, &mut buf, &head, framing, &shared, &mut rec, &host, port, &path, &mut up,
    )
    .await;
    rec.finish(&shared)
}

/// Forward one vetted request over an open upstream (plain TCP, or TLS when
/// intercepted): credential injection, leak check, canonical framing, then
/// the response back. One request per connection.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve_request<S, U>(
    s: &mut S,
    buf: &mut Vec<u8>,
    head: &RequestHead,
    framing: BodyFraming,
    shared: &Shared,
    rec: &mut Rec,
    host: &Host,
    port: u16,
    path: &str,
    up: &mut U,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    U: AsyncRead + AsyncWrite + Unpin + Send,
{
    macro_rules! refuse {
        ($rule:expr, $status:expr, $why:expr) => {{
            let why: String = $why;
            rec.deny($rule, why.clone(), $status);
            respond(s, $status, &why, "").await;
            return;
        }};
    }
    let upgrade = head.get("upgrade");
    let websocket = match upgrade {
        None => false,
        Some(u) if u.eq_ignore_ascii_case("websocket") && head.get_all("upgrade").count() == 1 => {
            true
        }
        Some(u) => refuse!("http", 400, format!("upgrade to `{u}` is not proxied")),
    };
    let cred = shared.credential_for(host, port);
    let cred_value = match cred.map(|c| (&c.name, &c.value)) {
        None => None,
        Some((name, Ok(v))) => Some((name.clone(), v.clone())),
        Some((_, Err(why))) => refuse!("credential", 502, why.clone()),
    };
    if shared.opts.leak_check {
        let mut probe = head.target.clone().into_bytes();
        for (n, v) in &head.headers {
            if !n.eq_ignore_ascii_case("proxy-authorization") {
                probe.extend_from_slice(v.as_bytes());
                probe.push(b'\n');
            }
        }
        if shared.leaks(&probe) {
            refuse!(
                "leak",
                403,
                "request carries a secret value airlock holds".to_string()
            );
        }
    }
    // With the leak check on, the body is read and scanned before anything
    // is sent upstream.
    let mut body_buf = None;
    if shared.opts.leak_check && framing != BodyFraming::None {
        let mut body = Vec::new();
        let mut sink = tokio::io::sink();
        if let Err(e) = relay_body(
            s,
            buf,
            &mut sink,
            framing,
            Some(&mut body),
            shared.opts.leak_check_max_body,
        )
        .await
        {
            refuse!("http", 400, e.to_string());
        }
        if shared.leaks(&body) {
            refuse!(
                "leak",
                403,
                "request body carries a secret value airlock holds".to_string()
            );
        }
        body_buf = Some(body);
    }
    // A body that cannot fit the upload budget is refused before it starts.
    if let (Some(limit), BodyFraming::Length(n)) = (shared.opts.limits.bytes_up, framing) {
        if shared.up.load(Ordering::Relaxed).saturating_add(n) > limit {
            refuse!(
                "budget",
                413,
                "the run's upload budget is exhausted".to_string()
            );
        }
    }
    let mut out = format!("{} {} HTTP/1.1\r\n", head.method, path);
    for (n, v) in &head.headers {
        let lower = n.to_ascii_lowercase();
        if HOP_BY_HOP.contains(&lower.as_str()) {
            continue;
        }
        // The jail never supplies a protected credential header itself.
        if let Some(c) = cred {
            if n.eq_ignore_ascii_case(&c.header) {
                continue;
            }
        }
        // The response to a request carrying an injected credential is
        // scanned for it, which needs an uncompressed body (below), and
        // a whole one: a range could return a slice of an echoed secret,
        // which is no occurrence of it.
        if cred_value.is_some()
            && matches!(lower.as_str(), "accept-encoding" | "range" | "if-range")
        {
            continue;
        }
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    if let (Some((name, value)), Some(c)) = (&cred_value, cred) {
        out.push_str(&format!("{}: {}\r\n", c.header, value));
        out.push_str("Accept-Encoding: identity\r\n");
        rec.rec.credential = Some(name.clone());
    }
    match (&body_buf, framing) {
        (Some(b), _) => out.push_str(&format!("Content-Length: {}\r\n", b.len())),
        (None, BodyFraming::Length(n)) => out.push_str(&format!("Content-Length: {n}\r\n")),
        (None, BodyFraming::Chunked) => out.push_str("Transfer-Encoding: chunked\r\n"),
        (None, BodyFraming::None) => {}
    }
    if websocket {
        out.push_str("Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    } else {
        out.push_str("Connection: close\r\n\r\n");
    }
    if !count(&shared.up, out.len(), shared.opts.limits.bytes_up)
        || up.write_all(out.as_bytes()).await.is_err()
    {
        return;
    }
    rec.rec.bytes_up += out.len() as u64;
    let sent = match body_buf {
        Some(b) => up
            .write_all(&b)
            .await
            .map(|_| b.len() as u64)
            .map_err(HttpError::from),
        None => relay_body(s, buf, up, framing, None, 0).await,
    };
    match sent {
        Ok(n) => {
            rec.rec.bytes_up += n;
            // A chunked body over budget gets no response relayed.
            if !count(&shared.up, n as usize, shared.opts.limits.bytes_up) {
                refuse!(
                    "budget",
                    413,
                    "the run's upload budget is exhausted".to_string()
                );
            }
        }
        Err(e) => {
            // The upstream saw an unfinished body; the client learns why.
            rec.deny("http", e.to_string(), 400);
            respond(s, 400, &e.to_string(), "").await;
            return;
        }
    }
    if let Some((_, value)) = &cred_value {
        // The injected value, and the token of `Scheme token`, are masked
        // wherever the upstream echoes them (crate::echo).
        let mut secrets = vec![value.clone()];
        if let Some((_, tok)) = value.split_once(' ') {
            if tok.trim().len() >= 8 {
                secrets.push(tok.trim().to_string());
            }
        }
        let pending = std::mem::take(buf);
        let (mut cr, mut cw) = tokio::io::split(&mut *s);
        let client_gone = async {
            let mut b = [0u8; 1024];
            while let Ok(n) = cr.read(&mut b).await {
                if n == 0 {
                    break;
                }
            }
        };
        let relayed = tokio::select! {
            r = crate::echo::relay(
                up,
                &mut cw,
                Vec::new(),
                &head.method,
                &secrets,
                &shared.down,
                shared.opts.limits.bytes_down,
            ) => Some(r),
            _ = client_gone => None,
        };
        match relayed {
            None => {}
            Some(Ok(crate::echo::Relayed::Done { status, bytes })) => {
                rec.rec.status = status;
                rec.rec.bytes_down += bytes;
            }
            Some(Ok(crate::echo::Relayed::Upgraded { bytes, rest })) => {
                rec.rec.status = Some(101);
                rec.rec.bytes_down += bytes;
                if websocket {
                    if !rest.is_empty() {
                        if !count(&shared.down, rest.len(), shared.opts.limits.bytes_down)
                            || s.write_all(&rest).await.is_err()
                        {
                            return;
                        }
                        rec.rec.bytes_down += rest.len() as u64;
                    }
                    tunnel(s, up, pending, shared, rec).await;
                    return;
                }
            }
            Some(Err(r)) => {
                rec.rec.status = r.status;
                if r.started {
                    // Part of the response is out; cutting the connection
                    // is the only signal left.
                    rec.rec.reason = Some(r.reason);
                } else {
                    rec.deny("echo", r.reason.clone(), 502);
                    respond(s, 502, &r.reason, "").await;
                    return;
                }
            }
        }
        let _ = s.shutdown().await;
        return;
    }
    if websocket {
        // The upgraded stream carries frames both ways from here on.
        tunnel(s, up, std::mem::take(buf), shared, rec).await;
        return;
    }
    // Anything the client pipelined after its body is dropped: one request
    // per connection keeps a smuggled second request from reaching upstream.
    let mut first = vec![0u8; 16 * 1024];
    let n: usize = up.read(&mut first).await.unwrap_or_default();
    if n == 0 {
        rec.rec.status = Some(502);
        respond(s, 502, "upstream closed without a response", "").await;
        return;
    }
    rec.rec.status = parse_status(&first[..n]);
    if !count(&shared.down, n, shared.opts.limits.bytes_down)
        || s.write_all(&first[..n]).await.is_err()
    {
        return;
    }
    rec.rec.bytes_down += n as u64;
    // Relay the rest of the response, but stop as soon as the client goes
    // away: a keep-alive upstream would otherwise hold this task forever.
    let (mut cr, mut cw) = tokio::io::split(&mut *s);
    let client_gone = async {
        let mut b = [0u8; 1024];
        while let Ok(n) = cr.read(&mut b).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::select! {
        n = pump(up, &mut cw, &shared.down, shared.opts.limits.bytes_down) => rec.rec.bytes_down += n,
        _ = client_gone => {}
    }
    let _ = s.shutdown().await;
}

fn parse_status(b: &[u8]) -> Option<u16> {
    let line = b.split(|c| *c == b'\r').next()?;
    let s = std::str::from_utf8(line).ok()?;
    s.split(' ').nth(1)?.parse().ok()
}

pub(crate) fn socks_host(atyp: u8, raw: &[u8]) -> Result<Host, String> {
    match atyp {
        1 => <[u8; 4]>::try_from(raw)
            .map(|a| Host::Ip(IpAddr::from(a)))
            .map_err(|_| "bad IPv4".to_string()),
        4 => <[u8; 16]>::try_from(raw)
            .map(|a| Host::Ip(IpAddr::from(a)))
            .map_err(|_| "bad IPv6".to_string()),
        3 => {
            let s = std::str::from_utf8(raw).map_err(|_| "domain is not UTF-8".to_string())?;
            canonicalize_host(s).map_err(|e| e.to_string())
        }
        _ => Err("unknown address type".into()),
    }
}

impl ProxyCredential {
    pub(crate) fn matches(&self, user: &[u8], pass: &[u8]) -> bool {
        ct_eq(user, self.user.as_bytes()) & ct_eq(pass, self.password.as_bytes())
    }
}
