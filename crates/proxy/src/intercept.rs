//! TLS interception for CONNECTs that need a credential injected (or are
//! marked for inspection): terminate with a leaf from the per-install CA,
//! require SNI and the inner Host to name the CONNECT target (no domain
//! fronting), then forward one request over fully verified upstream TLS.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::{Acceptor, ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{LazyConfigAcceptor, TlsConnector};

use crate::ca::CertAuthority;
use crate::canon::{canonicalize_authority, canonicalize_host, Host};
use crate::http1::read_head;
use crate::server::{respond, serve_request, Rec, Shared};
use crate::ProxyOptions;

pub(crate) struct TlsMaterial {
    ca: Arc<CertAuthority>,
    client: Arc<ClientConfig>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl TlsMaterial {
    pub fn new(opts: &ProxyOptions) -> Result<TlsMaterial, String> {
        let ca = opts.ca.clone().ok_or("no CA configured")?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        if let Ok(iter) = CertificateDer::pem_file_iter(&opts.system_ca_file) {
            for c in iter.flatten() {
                let _ = roots.add(c);
            }
        }
        if let Some(pem) = &opts.upstream_ca_pem {
            for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let c = c.map_err(|e| format!("upstream CA PEM: {e}"))?;
                roots.add(c).map_err(|e| format!("upstream CA: {e}"))?;
            }
        }
        if roots.is_empty() {
            return Err("no CA certificates to verify upstream TLS".into());
        }
        let mut client = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsMaterial {
            ca,
            client: Arc::new(client),
            provider,
        })
    }
}

#[derive(Debug)]
struct OneCert(Arc<CertifiedKey>);

impl ResolvesServerCert for OneCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A stream that first yields bytes the proxy already read.
struct Prefixed<S> {
    pre: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.pos < self.pre.len() {
            let n = (self.pre.len() - self.pos).min(buf.remaining());
            let start = self.pos;
            buf.put_slice(&self.pre[start..start + n]);
            self.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn run<S>(
    s: S,
    pending: Vec<u8>,
    up: TcpStream,
    host: &Host,
    port: u16,
    tls: &TlsMaterial,
    shared: &Shared,
    rec: &mut Rec,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let stream = Prefixed {
        pre: pending,
        pos: 0,
        inner: s,
    };
    let start = match LazyConfigAcceptor::new(Acceptor::default(), stream).await {
        Ok(st) => st,
        Err(e) => return rec.deny("tls", format!("client TLS handshake: {e}"), 400),
    };
    let sni = start.client_hello().server_name().map(str::to_owned);
    let sni_ok = match (&sni, host) {
        (Some(name), _) => canonicalize_host(name).ok().as_ref() == Some(host),
        // Clients send no SNI for IP literals.
        (None, Host::Ip(_)) => true,
        (None, Host::Name(_)) => false,
    };
    if !sni_ok {
        let why = format!(
            "TLS SNI `{}` does not name the CONNECT target {host}",
            sni.unwrap_or_default()
        );
        return rec.deny("tls", why, 421);
    }
    let leaf = match tls.ca.leaf(host) {
        Ok(l) => l,
        Err(e) => return rec.deny("tls", format!("leaf certificate: {e}"), 502),
    };
    let cfg = match ServerConfig::builder_with_provider(tls.provider.clone())
        .with_safe_default_protocol_versions()
    {
        Ok(b) => {
            let mut c = b
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(OneCert(leaf)));
            c.alpn_protocols = vec![b"http/1.1".to_vec()];
            c
        }
        Err(e) => return rec.deny("tls", e.to_string(), 502),
    };
    let mut client = match start.into_stream(Arc::new(cfg)).await {
        Ok(c) => c,
        Err(e) => return rec.deny("tls", format!("client TLS handshake: {e}"), 400),
    };
    let mut buf = Vec::new();
    let head = match read_head(&mut client, &mut buf).await {
        Ok(h) => h,
        Err(e) => {
            rec.deny("http", e.to_string(), 400);
            return respond(&mut client, 400, &e.to_string(), "").await;
        }
    };
    macro_rules! refuse {
        ($rule:expr, $status:expr, $why:expr) => {{
            let why: String = $why;
            rec.deny($rule, why.clone(), $status);
            return respond(&mut client, $status, &why, "").await;
        }};
    }
    let framing = match head.framing() {
        Ok(f) => f,
        Err(e) => refuse!("http", 400, e.to_string()),
    };
    // Origin-form, or absolute-form naming the same target.
    let path = if head.target.starts_with('/') {
        head.target.clone()
    } else {
        let t = head.target.as_str();
        let rest = match t.get(..8) {
            Some(p) if p.eq_ignore_ascii_case("https://") => &t[8..],
            _ => refuse!(
                "http",
                400,
                "request target must be origin-form".to_string()
            ),
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        if canonicalize_authority(&rest[..split], Some(443)).ok() != Some((host.clone(), port)) {
            refuse!(
                "http",
                421,
                "request target names another host than the CONNECT".to_string()
            );
        }
        match &rest[split..] {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        }
    };
    if path.contains('#') {
        refuse!("http", 400, "fragment in request target".to_string());
    }
    let hosts: Vec<&str> = head.get_all("host").collect();
    match hosts.as_slice() {
        [h] if canonicalize_authority(h, Some(443)).ok() == Some((host.clone(), port)) => {}
        [h] => refuse!(
            "http",
            421,
            format!("Host `{h}` does not name the CONNECT target {host}:{port} (domain fronting)")
        ),
        _ => refuse!(
            "http",
            400,
            "exactly one Host header is required".to_string()
        ),
    }
    let name = match host {
        Host::Name(n) => ServerName::try_from(n.clone()),
        Host::Ip(ip) => Ok(ServerName::IpAddress((*ip).into())),
    };
    let Ok(name) = name else {
        refuse!("tls", 502, format!("{host} is not a valid TLS server name"));
    };
    let mut upstream = match TlsConnector::from(tls.client.clone())
        .connect(name, up)
        .await
    {
        Ok(u) => u,
        Err(e) => refuse!(
            "tls",
            502,
            format!("upstream TLS to {host}:{port} failed verification or handshake: {e}")
        ),
    };
    serve_request(
        &mut client,
        &mut buf,
        &head,
        framing,
        shared,
        rec,
        host,
        port,
        &path,
        &mut upstream,
    )
    .await;
}
