//! http.request over real TLS: the server certificate is verified (bundled
//! Mozilla roots plus the system store, which honours `SSL_CERT_FILE`), so
//! a private CA works once trusted and an untrusted server is refused.
//! Its own test binary, because it sets the process environment.

use std::sync::Arc;
use std::time::Duration;

use airlock_config::{Approval, ByteSize, HttpRequest, HttpRoute, Tool, ToolKind};
use airlock_tools::{build_tool, CallContext, Limits, ToolError};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// (CA PEM, server certificate DER, server key DER) for 127.0.0.1.
fn certs() -> (String, CertificateDer<'static>, PrivateKeyDer<'static>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "airlock test CA");
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    (
        ca.pem(),
        leaf.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

async fn https_server(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> u16 {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(|_r| async {
                    Ok::<_, std::convert::Infallible>(
                        hyper::Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from_static(b"{\"secure\":true}")))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    port
}

fn tool(port: u16) -> Tool {
    Tool {
        description: None,
        approval: Approval::None,
        kind: ToolKind::HttpRequest(HttpRequest {
            base_url: format!("https://127.0.0.1:{port}/v1").parse().unwrap(),
            routes: vec![HttpRoute {
                method: "GET".into(),
                path: "/status".into(),
                body: None,
            }],
            auth: None,
            max_response_size: ByteSize::kib(64),
            timeout: Duration::from_secs(5),
        }),
    }
}

async fn call(t: &Tool) -> Result<serde_json::Value, ToolError> {
    let imp = build_tool("api", t)?.unwrap();
    let limits = Limits::effective(t, None);
    let ctx = CallContext {
        agent: "a".into(),
        session: None,
        cancel: CancellationToken::new(),
    };
    let args = imp.canonicalize(&json!({"method": "GET", "path": "/status"}), &limits)?;
    Ok(imp.call(&ctx, args, &limits).await?.structured.unwrap())
}

#[tokio::test]
async fn https_verifies_the_server() {
    let (ca, cert, key) = certs();
    let (other_ca, _, _) = certs();
    let port = https_server(cert, key).await;
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, other_file) = (dir.path().join("ca.pem"), dir.path().join("other.pem"));
    std::fs::write(&ca_file, ca).unwrap();
    std::fs::write(&other_file, other_ca).unwrap();
    let t = tool(port);

    // Roots are read when the tool is built.
    std::env::set_var("SSL_CERT_FILE", &other_file);
    let e = call(&t).await.unwrap_err();
    assert!(matches!(e, ToolError::Failed(_)), "{e:?}");

    std::env::set_var("SSL_CERT_FILE", &ca_file);
    let v = call(&t).await.unwrap();
    assert_eq!(v["status"], 200);
    assert_eq!(v["json"], json!({"secure": true}));
    std::env::remove_var("SSL_CERT_FILE");
}
