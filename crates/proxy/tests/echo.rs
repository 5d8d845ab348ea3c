//! Echo redaction: a real upstream that reflects the credential the proxy
//! injected (in headers, in a body, in a chunked body, split across reads
//! and chunks, in an interim response), reached through the proxy over
//! plain HTTP and over intercepted TLS. The client never sees the secret.

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
use tokio_rustls::{TlsAcceptor, TlsConnector};

const TOKEN: &str = "tok-5f2a9c81e7d3b604";
const VALUE: &str = "Bearer tok-5f2a9c81e7d3b604";

type Seen = Arc<Mutex<Vec<String>>>;

/// Writes `parts` one by one with a pause between them, so the proxy reads
/// them separately (the upstream socket has Nagle off).
async fn dribble<S: AsyncWrite + Unpin>(s: &mut S, parts: &[Vec<u8>]) {
    for p in parts {
        if s.write_all(p).await.is_err() {
            return;
        }
        let _ = s.flush().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One request: records its head, answers according to its path by echoing
/// the `Authorization` it received.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, seen: Seen) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    seen.lock().unwrap().push(head.clone());
    let auth = head
        .lines()
        .find_map(|l| l.strip_prefix("Authorization: "))
        .unwrap_or("none")
        .to_string();
    let tok = auth.trim_start_matches("Bearer ").to_string();
    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
    if path == "/ws" {
        // Switch protocols with the first frame bytes in the same write,
        // then echo whatever comes.
        let _ = s
            .write_all(
                format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Echo: {tok}\r\n\r\nfirst-frame;").as_bytes(),
            )
            .await;
        let mut b = [0u8; 1024];
        while let Ok(n) = s.read(&mut b).await {
            if n == 0 || s.write_all(&b[..n]).await.is_err() {
                break;
            }
        }
        return;
    }
    let b = |s: String| s.into_bytes();
    let body = format!("{{\"authorization\":\"{auth}\",\"token\":\"{tok}\"}}");
    let parts: Vec<Vec<u8>> = match path.split('/').nth(1).unwrap_or("") {
        "header" => vec![b(format!(
            "HTTP/1.1 302 Found\r\nX-Echo: {auth}\r\nLocation: https://cb.example/?t={tok}&v={auth}\r\nContent-Length: 2\r\n\r\nok"
        ))],
        "body" => vec![b(format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))],
        // The body split at byte k, in two reads.
        "split" => {
            let k: usize = path.rsplit('/').next().unwrap().parse().unwrap();
            let text = format!("token={tok}!");
            vec![
                b(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", text.len())),
                b(text[..k].to_string()),
                b(text[k..].to_string()),
            ]
        }
        // Chunked, the token split across two chunks at byte k.
        "chunked" => {
            let k: usize = path.rsplit('/').next().unwrap().parse().unwrap();
            let text = format!("token={tok}!{tok}");
            let (a, c) = text.split_at(k);
            vec![
                b("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".into()),
                b(format!("{:x}\r\n{a}\r\n", a.len())),
                b(format!("{:x}\r\n{c}\r\n", c.len())),
                b("0\r\n\r\n".into()),
            ]
        }
        // No length: the body ends when the connection does.
        "close" => vec![
            b("HTTP/1.1 200 OK\r\n\r\nstart ".into()),
            b(tok[..5].to_string()),
            b(format!("{} end", &tok[5..])),
        ],
        "interim" => vec![
            b(format!("HTTP/1.1 100 Continue\r\nX-Echo: {tok}\r\n\r\n")),
            b(format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )),
        ],
        "gzip" => vec![b(format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))],
        "te" => vec![b(format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        ))],
        _ => vec![b("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into())],
    };
    dribble(&mut s, &parts).await;
    let _ = s.shutdown().await;
}

async fn plain_upstream() -> (u16, Seen) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            s.set_nodelay(true).unwrap();
            tokio::spawn(serve(s, s2.clone()));
        }
    });
    (port, seen)
}

struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn test_ca() -> TestCa {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = p.self_signed(&key).unwrap();
    TestCa { cert, key }
}

async fn tls_upstream(ca: &TestCa) -> (u16, Seen) {
    let key = KeyPair::generate().unwrap();
    let p = CertificateParams::new(vec!["api.test".to_string()]).unwrap();
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
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
    let acceptor = TlsAcceptor::from(Arc::new(cfg));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            s.set_nodelay(true).unwrap();
            let acceptor = acceptor.clone();
            let seen = s2.clone();
            tokio::spawn(async move {
                if let Ok(s) = acceptor.accept(s).await {
                    serve(s, seen).await;
                }
            });
        }
    });
    (port, seen)
}

async fn proxy(port: u16, upstream_ca: Option<String>) -> ProxyHandle {
    let network = Network {
        allow: vec![format!("api.test:{port}").parse().unwrap()],
        allow_private: vec!["127.0.0.1/32".parse().unwrap()],
        ..Default::default()
    };
    let creds = vec![Credential {
        name: "api".into(),
        host: format!("api.test:{port}").parse().unwrap(),
        header: "Authorization".into(),
        value: Secret::parse(VALUE).unwrap(),
        plain_http: true,
    }];
    let mut o = ProxyOptions::new(
        network,
        creds,
        ProxyCredential {
            user: "u".into(),
            password: "p".into(),
        },
    );
    o.resolver = Arc::new(StaticResolver::new().with("api.test", &["127.0.0.1".parse().unwrap()]));
    o.ca = Some(Arc::new(CertAuthority::generate().unwrap()));
    o.upstream_ca_pem = upstream_ca;
    o.system_ca_file = "/nonexistent".into();
    start_tcp("127.0.0.1:0".parse().unwrap(), o).await.unwrap()
}

fn proxy_auth() -> String {
    base64::engine::general_purpose::STANDARD.encode("u:p")
}

/// A plain-HTTP GET through the proxy; the whole response as received.
async fn plain_get(h: &ProxyHandle, port: u16, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(h.tcp_addr().unwrap()).await.unwrap();
    s.write_all(
        format!(
            "GET http://api.test:{port}{path} HTTP/1.1\r\nHost: api.test:{port}\r\nAccept-Encoding: gzip, br\r\nProxy-Authorization: Basic {}\r\n\r\n",
            proxy_auth()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    out
}

/// CONNECT, TLS to the proxy's leaf, one GET; the whole response.
async fn tls_get(h: &ProxyHandle, port: u16, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(h.tcp_addr().unwrap()).await.unwrap();
    s.write_all(
        format!(
            "CONNECT api.test:{port} HTTP/1.1\r\nProxy-Authorization: Basic {}\r\n\r\n",
            proxy_auth()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).await.unwrap(), 1, "proxy closed");
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"));
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
    let mut tls = TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("api.test").unwrap(), s)
        .await
        .unwrap();
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: api.test:{port}\r\nAccept-Encoding: gzip\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    out
}

fn masked(n: usize) -> String {
    "*".repeat(n)
}

/// The response's body after the (last) head, de-chunked if chunked.
fn body_of(resp: &[u8]) -> Vec<u8> {
    let text = resp;
    let mut start = 0;
    let mut head_end = 0;
    // The last head (after interim responses).
    while let Some(p) = text[start..].windows(4).position(|w| w == b"\r\n\r\n") {
        let h = &text[start..start + p];
        head_end = start + p + 4;
        if !(h.starts_with(b"HTTP/1.1 1")) {
            break;
        }
        start = head_end;
    }
    let head = String::from_utf8_lossy(&text[..head_end]).to_ascii_lowercase();
    let mut body = text[head_end..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size line");
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap(), 16).unwrap();
            rest = &rest[nl + 2..];
            if size == 0 {
                assert_eq!(rest, b"\r\n", "chunked body ends properly");
                break;
            }
            out.extend_from_slice(&rest[..size]);
            assert_eq!(&rest[size..size + 2], b"\r\n");
            rest = &rest[size + 2..];
        }
        body = out;
    }
    body
}

/// Checks one response: the secret is nowhere in it, and `want_body` is
/// exactly what the client got as a body.
fn check(resp: &[u8], want_body: &str) {
    let text = String::from_utf8_lossy(resp);
    // Not the token, nor any 8 bytes of it.
    for w in TOKEN.as_bytes().windows(8) {
        let w = std::str::from_utf8(w).unwrap();
        assert!(
            !text.contains(w),
            "part of the token reached the client:\n{text}"
        );
    }
    assert_eq!(String::from_utf8_lossy(&body_of(resp)), want_body, "{text}");
}

async fn all_cases(get: impl Fn(String) -> futures_like::BoxFut, seen: &Seen) {
    let tl = TOKEN.len();
    let vl = VALUE.len();
    // Headers (and a redirect's Location) echoing value and token.
    let r = get("/header".into()).await;
    let text = String::from_utf8_lossy(&r).into_owned();
    assert!(text.starts_with("HTTP/1.1 302"), "{text}");
    assert!(
        text.contains(&format!("X-Echo: {}\r\n", masked(vl))),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Location: https://cb.example/?t={}&v={}\r\n",
            masked(tl),
            masked(vl)
        )),
        "{text}"
    );
    check(&r, "ok");
    // A JSON body: the same JSON with the values masked, same length.
    let r = get("/body".into()).await;
    let want = format!(
        "{{\"authorization\":\"{}\",\"token\":\"{}\"}}",
        masked(vl),
        masked(tl)
    );
    check(&r, &want);
    // Split across reads at every byte of the token.
    for k in 0..=("token=".len() + tl + 1) {
        let r = get(format!("/split/{k}")).await;
        check(&r, &format!("token={}!", masked(tl)));
    }
    // Chunked, split across chunks at every byte of the first token.
    for k in 1..("token=".len() + tl + 1) {
        let r = get(format!("/chunked/{k}")).await;
        check(&r, &format!("token={}!{}", masked(tl), masked(tl)));
    }
    let r = get("/close".into()).await;
    check(&r, &format!("start {} end", masked(tl)));
    let r = get("/interim".into()).await;
    let text = String::from_utf8_lossy(&r).into_owned();
    assert!(
        text.starts_with(&format!(
            "HTTP/1.1 100 Continue\r\nX-Echo: {}\r\n",
            masked(tl)
        )),
        "{text}"
    );
    check(
        &r,
        &format!(
            "{{\"authorization\":\"{}\",\"token\":\"{}\"}}",
            masked(vl),
            masked(tl)
        ),
    );
    // What cannot be scanned is refused.
    for p in ["/gzip", "/te"] {
        let r = get(p.into()).await;
        let text = String::from_utf8_lossy(&r).into_owned();
        assert!(text.starts_with("HTTP/1.1 502"), "{p}: {text}");
        assert!(!text.contains(TOKEN), "{text}");
    }
    // The upstream did get the credential, and was asked for no compression.
    let seen = seen.lock().unwrap();
    assert!(seen.len() > 40);
    for h in seen.iter() {
        assert!(h.contains(&format!("Authorization: {VALUE}\r\n")), "{h}");
        assert!(h.contains("Accept-Encoding: identity\r\n"), "{h}");
        assert_eq!(h.matches("Accept-Encoding").count(), 1, "{h}");
    }
}

/// Boxed futures without another dependency.
mod futures_like {
    pub type BoxFut = std::pin::Pin<Box<dyn std::future::Future<Output = Vec<u8>> + Send>>;
}

#[tokio::test]
async fn plain_http_echoes_are_masked() {
    let (port, seen) = plain_upstream().await;
    let h = Arc::new(proxy(port, None).await);
    let h2 = h.clone();
    all_cases(
        move |p| {
            let h = h2.clone();
            Box::pin(async move { plain_get(&h, port, &p).await })
        },
        &seen,
    )
    .await;
    let recs = h.records();
    assert!(
        recs.iter()
            .any(|r| r.rule == "echo" && r.status == Some(502)),
        "{recs:?}"
    );
}

#[tokio::test]
async fn intercepted_tls_echoes_are_masked() {
    let ca = test_ca();
    let (port, seen) = tls_upstream(&ca).await;
    let h = Arc::new(proxy(port, Some(ca.cert.pem())).await);
    let h2 = h.clone();
    all_cases(
        move |p| {
            let h = h2.clone();
            Box::pin(async move { tls_get(&h, port, &p).await })
        },
        &seen,
    )
    .await;
}

#[tokio::test]
async fn websocket_upgrade_head_is_masked_and_first_frames_kept() {
    let (port, _seen) = plain_upstream().await;
    let h = proxy(port, None).await;
    let mut s = TcpStream::connect(h.tcp_addr().unwrap()).await.unwrap();
    s.write_all(
        format!(
            "GET http://api.test:{port}/ws HTTP/1.1\r\nHost: api.test:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nProxy-Authorization: Basic {}\r\n\r\n",
            proxy_auth()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 1024];
    while !got.ends_with(b"first-frame;") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&b[..n]);
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    assert!(
        text.contains(&format!("X-Echo: {}\r\n", masked(TOKEN.len()))),
        "{text}"
    );
    assert!(!text.contains(TOKEN), "{text}");
    // The upgraded stream then flows both ways.
    s.write_all(b"ping").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&b[..n], b"ping");
}
