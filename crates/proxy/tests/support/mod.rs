//! The set-up the proxy's integration tests share: loopback upstreams
//! (plain, or TLS under a test CA), a proxy built from a few rules whose
//! names all resolve to 127.0.0.1, and clients that speak plain HTTP or
//! CONNECT (and TLS to the proxy's interception leaf) through it.
//!
//! Each test file uses a different part of this module.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_config::{Credential, Network, Secret};
use airlock_proxy::ca::CertAuthority;
use airlock_proxy::{start_tcp, ProxyCredential, ProxyHandle, ProxyOptions, StaticResolver};
use base64::Engine;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// How long a client waits on the proxy: a guard against a hang, not a
/// timing check.
pub const PATIENCE: Duration = Duration::from_secs(5);

// Upstreams.

/// What an upstream recorded, one entry per request (or connection).
pub type Seen = Arc<Mutex<Vec<String>>>;

/// The upstream's side of one connection, plain TCP or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub type Conn = Box<dyn Io>;

/// A server on 127.0.0.1 the proxy forwards to.
pub struct Upstream {
    pub port: u16,
    seen: Seen,
    accepted: Arc<AtomicUsize>,
}

impl Upstream {
    /// Plain TCP: `serve` runs once per connection, with the shared record.
    pub async fn plain<F, Fut>(serve: F) -> Upstream
    where
        F: Fn(Conn, Seen) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self::start(None, serve).await
    }

    /// TLS with a certificate for `names` signed by `ca`; a failed
    /// handshake leaves no record.
    pub async fn tls<F, Fut>(ca: &TestCa, names: &[&str], serve: F) -> Upstream
    where
        F: Fn(Conn, Seen) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self::start(Some(ca.acceptor(names)), serve).await
    }

    /// Plain TCP, one request per connection: records the request head and
    /// answers `answer(head)`.
    pub async fn answering(answer: impl Fn(&str) -> String + Send + Sync + 'static) -> Upstream {
        let answer: Answer = Arc::new(answer);
        Self::plain(move |s, seen| answer_once(s, seen, answer.clone())).await
    }

    /// [`Upstream::answering`] over TLS, as [`Upstream::tls`].
    pub async fn tls_answering(
        ca: &TestCa,
        names: &[&str],
        answer: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> Upstream {
        let answer: Answer = Arc::new(answer);
        Self::tls(ca, names, move |s, seen| {
            answer_once(s, seen, answer.clone())
        })
        .await
    }

    async fn start<F, Fut>(tls: Option<TlsAcceptor>, serve: F) -> Upstream
    where
        F: Fn(Conn, Seen) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Seen::default();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (seen2, accepted2, serve) = (seen.clone(), accepted.clone(), Arc::new(serve));
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                accepted2.fetch_add(1, Ordering::SeqCst);
                // Each write leaves at once: a response written in parts
                // reaches the proxy in parts.
                s.set_nodelay(true).unwrap();
                let (serve, seen, tls) = (serve.clone(), seen2.clone(), tls.clone());
                tokio::spawn(async move {
                    let conn: Conn = match tls {
                        None => Box::new(s),
                        Some(a) => match a.accept(s).await {
                            Ok(s) => Box::new(s),
                            Err(_) => return,
                        },
                    };
                    serve(conn, seen).await;
                });
            }
        });
        Upstream {
            port,
            seen,
            accepted,
        }
    }

    /// `name:port`: this upstream under a name the proxy resolves to it.
    pub fn at(&self, name: &str) -> String {
        format!("{name}:{}", self.port)
    }

    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// What the upstream recorded, once it has recorded something: an
    /// upstream may record after its own response, which the proxy may have
    /// relayed in full before that.
    pub async fn seen_some(&self) -> Vec<String> {
        for _ in 0..200 {
            let s = self.seen();
            if !s.is_empty() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the upstream recorded no request");
    }

    /// Connections accepted so far (with or without a request).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

type Answer = Arc<dyn Fn(&str) -> String + Send + Sync>;

async fn answer_once(mut s: Conn, seen: Seen, answer: Answer) {
    let Some(head) = read_head(&mut s).await else {
        return;
    };
    seen.lock().unwrap().push(head.clone());
    let _ = s.write_all(answer(&head).as_bytes()).await;
    let _ = s.shutdown().await;
}

/// Reads into `buf` until it holds the end of a request head; false if
/// the peer stopped first.
pub async fn read_until_head<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    true
}

/// A request head (and whatever came with it), or None if the peer
/// stopped first.
pub async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> Option<String> {
    let mut buf = Vec::new();
    read_until_head(s, &mut buf)
        .await
        .then(|| String::from_utf8_lossy(&buf).into_owned())
}

/// The value of header `name` (any case) in `head`.
pub fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// The request target of `head` ("/" if there is none).
pub fn path(head: &str) -> String {
    head.split(' ').nth(1).unwrap_or("/").to_string()
}

/// A CA of the upstreams' own, unknown to the proxy unless a test says.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl TestCa {
    pub fn new() -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).unwrap();
        TestCa { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    fn acceptor(&self, names: &[&str]) -> TlsAcceptor {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.cert, &self.key)
            .unwrap();
        let cfg =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    vec![CertificateDer::from(cert.der().to_vec())],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
                )
                .unwrap();
        TlsAcceptor::from(Arc::new(cfg))
    }
}

// The proxy.

/// The client credential of [`proxy`].
pub const USER: &str = "u";
pub const PASSWORD: &str = "p";

/// A proxy on 127.0.0.1 with the client credential `u:p`, loopback allowed
/// as a private range (the upstreams are local), every allowed name
/// resolving to 127.0.0.1, and no system CA bundle: an upstream's
/// certificate is trusted only through [`ProxyBuilder::trust_upstream`].
pub fn proxy() -> ProxyBuilder {
    ProxyBuilder {
        allow: Vec::new(),
        credentials: Vec::new(),
        ca: None,
        upstream_ca: None,
    }
}

pub struct ProxyBuilder {
    allow: Vec<String>,
    credentials: Vec<Credential>,
    ca: Option<Arc<CertAuthority>>,
    upstream_ca: Option<String>,
}

impl ProxyBuilder {
    /// Allows `host:port`.
    pub fn allow(mut self, authority: &str) -> Self {
        self.allow.push(authority.to_string());
        self
    }

    /// Injects `Authorization: value` (credential `name`) on requests to
    /// `authority` over intercepted TLS only.
    pub fn credential(self, name: &str, authority: &str, value: &str) -> Self {
        self.add_credential(name, authority, value, false)
    }

    /// As [`ProxyBuilder::credential`], and over plain HTTP too
    /// (`plain_http: true`).
    pub fn plain_http_credential(self, name: &str, authority: &str, value: &str) -> Self {
        self.add_credential(name, authority, value, true)
    }

    fn add_credential(mut self, name: &str, authority: &str, value: &str, plain: bool) -> Self {
        self.credentials.push(Credential {
            name: name.into(),
            host: authority.parse().unwrap(),
            header: "Authorization".into(),
            value: Secret::parse(value).unwrap(),
            plain_http: plain,
        });
        self
    }

    /// Intercepts TLS to credential hosts with a fresh CA.
    pub fn intercept(mut self) -> Self {
        self.ca = Some(Arc::new(CertAuthority::generate().unwrap()));
        self
    }

    /// Trusts upstream certificates signed by the CA of `pem`.
    pub fn trust_upstream(mut self, pem: String) -> Self {
        self.upstream_ca = Some(pem);
        self
    }

    pub async fn start(self) -> ProxyHandle {
        let mut resolver = StaticResolver::new();
        for a in &self.allow {
            let host = a.rsplit_once(':').map_or(a.as_str(), |(h, _)| h);
            resolver = resolver.with(host, &["127.0.0.1".parse().unwrap()]);
        }
        let network = Network {
            allow: self.allow.iter().map(|a| a.parse().unwrap()).collect(),
            allow_private: vec!["127.0.0.1/32".parse().unwrap()],
            ..Default::default()
        };
        let client = ProxyCredential {
            user: USER.into(),
            password: PASSWORD.into(),
        };
        let mut o = ProxyOptions::new(network, self.credentials, client);
        o.resolver = Arc::new(resolver);
        o.ca = self.ca;
        o.upstream_ca_pem = self.upstream_ca;
        o.system_ca_file = "/nonexistent".into();
        start_tcp("127.0.0.1:0".parse().unwrap(), o).await.unwrap()
    }
}

// Clients.

/// The `Proxy-Authorization` header line for `user:password`.
pub fn proxy_authorization(user: &str, password: &str) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Proxy-Authorization: Basic {b}\r\n")
}

/// The `Proxy-Authorization` header line of [`proxy`].
pub fn auth() -> String {
    proxy_authorization(USER, PASSWORD)
}

/// A plain-HTTP GET of `http://{authority}{path}` through [`proxy`], with
/// the header lines `extra`.
pub fn get_request(authority: &str, path: &str, extra: &str) -> String {
    format!(
        "GET http://{authority}{path} HTTP/1.1\r\nHost: {authority}\r\n{extra}{}\r\n",
        auth()
    )
}

/// Sends `req` to the proxy at `addr`; all it answers until it closes.
pub async fn exchange(addr: SocketAddr, req: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(req).await.unwrap();
    read_all(&mut s).await
}

/// [`get_request`] through `h`; the whole response.
pub async fn plain_get(h: &ProxyHandle, authority: &str, path: &str, extra: &str) -> String {
    exchange(
        h.tcp_addr().unwrap(),
        get_request(authority, path, extra).as_bytes(),
    )
    .await
}

/// What the peer sends until it closes (or [`PATIENCE`] runs out).
pub async fn read_all<S: AsyncRead + Unpin>(s: &mut S) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads until what came ends with `end`; panics if the peer closes or
/// stays silent for [`PATIENCE`].
pub async fn read_until<S: AsyncRead + Unpin>(s: &mut S, end: &str) -> String {
    let mut got = Vec::new();
    let mut b = [0u8; 1024];
    while !got.ends_with(end.as_bytes()) {
        let n = tokio::time::timeout(PATIENCE, s.read(&mut b))
            .await
            .expect("no answer")
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&b[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// `CONNECT target` with the header line `auth`: the proxy's answer head
/// (as far as it came) and the connection, a tunnel if that said 200.
pub async fn connect(addr: SocketAddr, target: &str, auth: &str) -> (String, TcpStream) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\n{auth}\r\n").as_bytes())
        .await
        .unwrap();
    // Byte by byte: what follows the head belongs to the tunnel.
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(PATIENCE, s.read(&mut b)).await {
            Ok(Ok(1)) => head.push(b[0]),
            _ => break,
        }
    }
    (String::from_utf8_lossy(&head).into_owned(), s)
}

/// TLS over a tunnel, trusting only `h`'s interception CA; `sni` is sent
/// and the leaf is verified for it.
pub async fn tls_over(
    h: &ProxyHandle,
    tunnel: TcpStream,
    sni: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(h.ca_cert_pem().unwrap().as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from(sni.to_string()).unwrap(), tunnel)
        .await
}

/// CONNECT to `target` through [`proxy`], TLS with `sni`, one request: the
/// whole response, or where it stopped (the CONNECT answer that was not a
/// 200, or the handshake's error).
pub async fn tls_exchange(
    h: &ProxyHandle,
    target: &str,
    sni: &str,
    req: &str,
) -> Result<String, String> {
    let (head, s) = connect(h.tcp_addr().unwrap(), target, &auth()).await;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head);
    }
    let mut tls = tls_over(h, s, sni)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tls.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    Ok(read_all(&mut tls).await)
}

/// The status code of a response (0 if there is none).
pub fn status(resp: &str) -> u16 {
    resp.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// How the proxy masks an echoed secret of `n` bytes.
pub fn masked(n: usize) -> String {
    "*".repeat(n)
}
