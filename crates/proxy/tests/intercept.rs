//! TLS interception against a real TLS upstream with its own test CA:
//! injection, forged headers, SNI and Host mismatches, upstream verification.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_config::{Credential, Network, Secret};
use airlock_proxy::ca::CertAuthority;
use airlock_proxy::{start_tcp, ProxyCredential, ProxyHandle, ProxyOptions, StaticResolver};
use base64::Engine;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const TOKEN: &str = "Bearer upstream-token-93b1c7";

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

/// A TLS upstream for `names`, recording each request head it receives.
async fn tls_upstream(ca: &TestCa, names: &[&str]) -> (u16, Arc<Mutex<Vec<String>>>) {
    let key = KeyPair::generate().unwrap();
    let p =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = ServerConfig::builder_with_provider(provider)
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
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            let seen = s2.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(s).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf).into_owned());
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecure",
                    )
                    .await;
                let _ = s.shutdown().await;
            });
        }
    });
    (port, seen)
}

async fn proxy(port: u16, upstream_ca: Option<String>, ca: Arc<CertAuthority>) -> ProxyHandle {
    let network = Network {
        allow: vec![
            format!("api.test:{port}").parse().unwrap(),
            format!("other.test:{port}").parse().unwrap(),
        ],
        allow_private: vec!["127.0.0.1/32".parse().unwrap()],
        ..Default::default()
    };
    let creds = vec![Credential {
        name: "api".into(),
        host: format!("api.test:{port}").parse().unwrap(),
        header: "Authorization".into(),
        value: Secret::parse(TOKEN).unwrap(),
        plain_http: false,
    }];
    let mut o = ProxyOptions::new(
        network,
        creds,
        ProxyCredential {
            user: "u".into(),
            password: "p".into(),
        },
    );
    o.resolver = Arc::new(
        StaticResolver::new()
            .with("api.test", &["127.0.0.1".parse().unwrap()])
            .with("other.test", &["127.0.0.1".parse().unwrap()]),
    );
    o.ca = Some(ca);
    o.upstream_ca_pem = upstream_ca;
    o.system_ca_file = "/nonexistent".into();
    start_tcp("127.0.0.1:0".parse().unwrap(), o).await.unwrap()
}

/// CONNECT, TLS to the proxy's leaf with `sni`, one request; returns the response or the error.
async fn through(h: &ProxyHandle, target: &str, sni: &str, req: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(h.tcp_addr().unwrap()).await.unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("u:p");
    s.write_all(
        format!("CONNECT {target} HTTP/1.1\r\nProxy-Authorization: Basic {auth}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).await.map_err(|e| e.to_string())? == 0 {
            break;
        }
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head);
    }
    let mut roots = RootCertStore::empty();
    let pem = h.ca_cert_pem().unwrap();
    use rustls::pki_types::pem::PemObject;
    for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    // Verify the leaf against the CONNECT name, but send `sni`.
    let mut tls = TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from(sni.to_string()).unwrap(), s)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tls.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test]
async fn injects_over_intercepted_tls_and_replaces_forged_header() {
    let ca = test_ca();
    let (port, seen) = tls_upstream(&ca, &["api.test", "other.test"]).await;
    let h = proxy(
        port,
        Some(ca.cert.pem()),
        Arc::new(CertAuthority::generate().unwrap()),
    )
    .await;
    let r = through(
        &h,
        &format!("api.test:{port}"),
        "api.test",
        &format!(
            "GET /v1 HTTP/1.1\r\nHost: api.test:{port}\r\nAuthorization: Bearer forged\r\n\r\n"
        ),
    )
    .await
    .unwrap();
    assert!(
        r.starts_with("HTTP/1.1 200") && r.ends_with("secure"),
        "{r}"
    );
    let seen = seen.lock().unwrap().join("\n");
    assert!(seen.contains(&format!("Authorization: {TOKEN}")), "{seen}");
    assert!(!seen.contains("forged"), "{seen}");
    assert!(!r.contains("upstream-token"));
    let recs = h.records();
    assert!(
        recs.iter()
            .any(|r| r.credential.as_deref() == Some("api") && r.status == Some(200)),
        "{recs:?}"
    );
    // A host without a credential is tunnelled opaquely (the leaf is the upstream's own).
}

#[tokio::test]
async fn sni_mismatch_refused() {
    let ca = test_ca();
    let (port, seen) = tls_upstream(&ca, &["api.test", "other.test"]).await;
    let h = proxy(
        port,
        Some(ca.cert.pem()),
        Arc::new(CertAuthority::generate().unwrap()),
    )
    .await;
    let r = through(
        &h,
        &format!("api.test:{port}"),
        "other.test",
        "GET / HTTP/1.1\r\nHost: other.test\r\n\r\n",
    )
    .await;
    assert!(r.is_err() || r.as_ref().unwrap().is_empty(), "{r:?}");
    assert!(seen.lock().unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        h.denials().iter().any(|d| d.rule == "tls"),
        "{:?}",
        h.denials()
    );
}

#[tokio::test]
async fn inner_host_mismatch_is_domain_fronting() {
    let ca = test_ca();
    let (port, seen) = tls_upstream(&ca, &["api.test", "other.test"]).await;
    let h = proxy(
        port,
        Some(ca.cert.pem()),
        Arc::new(CertAuthority::generate().unwrap()),
    )
    .await;
    let r = through(
        &h,
        &format!("api.test:{port}"),
        "api.test",
        &format!("GET / HTTP/1.1\r\nHost: other.test:{port}\r\n\r\n"),
    )
    .await
    .unwrap();
    assert!(r.starts_with("HTTP/1.1 421"), "{r}");
    let r = through(
        &h,
        &format!("api.test:{port}"),
        "api.test",
        &format!("GET https://other.test:{port}/ HTTP/1.1\r\nHost: api.test:{port}\r\n\r\n"),
    )
    .await
    .unwrap();
    assert!(r.starts_with("HTTP/1.1 421"), "{r}");
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn upstream_certificate_is_verified() {
    let ca = test_ca();
    let wrong = test_ca();
    let (port, seen) = tls_upstream(&ca, &["api.test"]).await;
    let h = proxy(
        port,
        Some(wrong.cert.pem()),
        Arc::new(CertAuthority::generate().unwrap()),
    )
    .await;
    let r = through(
        &h,
        &format!("api.test:{port}"),
        "api.test",
        &format!("GET / HTTP/1.1\r\nHost: api.test:{port}\r\n\r\n"),
    )
    .await
    .unwrap();
    assert!(r.starts_with("HTTP/1.1 502"), "{r}");
    assert!(
        seen.lock().unwrap().is_empty(),
        "the credential must not go to an unverified server"
    );
}

#[tokio::test]
async fn no_ca_means_credential_hosts_refused() {
    let ca = test_ca();
    let (port, _) = tls_upstream(&ca, &["api.test"]).await;
    let network = Network {
        allow: vec![format!("api.test:{port}").parse().unwrap()],
        allow_private: vec!["127.0.0.1/32".parse().unwrap()],
        ..Default::default()
    };
    let creds = vec![Credential {
        name: "api".into(),
        host: format!("api.test:{port}").parse().unwrap(),
        header: "Authorization".into(),
        value: Secret::parse(TOKEN).unwrap(),
        plain_http: false,
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
    let h = start_tcp("127.0.0.1:0".parse().unwrap(), o).await.unwrap();
    let mut s = TcpStream::connect(h.tcp_addr().unwrap()).await.unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("u:p");
    s.write_all(
        format!("CONNECT api.test:{port} HTTP/1.1\r\nProxy-Authorization: Basic {auth}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
}
