//! A credential crosses the network in clear text only where the operator
//! opted in: a plain-HTTP request to a credential host is refused before
//! any connection is made (the upstream sees nothing), unless the
//! credential says `plain_http: true`. Hosts without a credential are
//! forwarded over plain HTTP as before.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use airlock_config::{Credential, Network, Secret};
use airlock_proxy::{start_tcp, ProxyCredential, ProxyHandle, ProxyOptions, StaticResolver};
use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const VALUE: &str = "Bearer tok-8c1d07e2b95a4f36";

/// Counts connections and answers each with the `Authorization` it got.
async fn upstream() -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).into_owned();
                let auth = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Authorization: "))
                    .unwrap_or("none")
                    .to_string();
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{auth}",
                    auth.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (port, accepted)
}

async fn proxy(port: u16, plain_http: bool) -> ProxyHandle {
    let network = Network {
        allow: vec![
            format!("api.test:{port}").parse().unwrap(),
            format!("open.test:{port}").parse().unwrap(),
        ],
        allow_private: vec!["127.0.0.1/32".parse().unwrap()],
        ..Default::default()
    };
    let creds = vec![Credential {
        name: "api".into(),
        host: format!("api.test:{port}").parse().unwrap(),
        header: "Authorization".into(),
        value: Secret::parse(VALUE).unwrap(),
        plain_http,
    }];
    let mut o = ProxyOptions::new(
        network,
        creds,
        ProxyCredential {
            user: "u".into(),
            password: "p".into(),
        },
    );
    let lo = ["127.0.0.1".parse().unwrap()];
    o.resolver = Arc::new(
        StaticResolver::new()
            .with("api.test", &lo)
            .with("open.test", &lo),
    );
    o.system_ca_file = "/nonexistent".into();
    start_tcp("127.0.0.1:0".parse().unwrap(), o).await.unwrap()
}

/// A plain-HTTP GET through the proxy; the whole response.
async fn get(h: &ProxyHandle, host: &str, port: u16) -> String {
    let auth = base64::engine::general_purpose::STANDARD.encode("u:p");
    let mut s = TcpStream::connect(h.tcp_addr().unwrap()).await.unwrap();
    s.write_all(
        format!(
            "GET http://{host}:{port}/v1 HTTP/1.1\r\nHost: {host}:{port}\r\nProxy-Authorization: Basic {auth}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn plain_http_to_a_credential_host_is_refused_before_any_connection() {
    let (port, accepted) = upstream().await;
    let h = proxy(port, false).await;
    let r = get(&h, "api.test", port).await;
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    assert!(r.contains("https://api.test"), "the fix is named: {r}");
    assert!(!r.contains("tok-"), "{r}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "the upstream saw a connection"
    );
    let recs = h.shutdown().await;
    let rec = recs.iter().find(|r| r.host == "api.test").unwrap();
    assert_eq!(rec.rule, "credential");
    assert_eq!(rec.status, Some(403));
    assert_eq!(rec.credential, None);
}

#[tokio::test]
async fn plain_http_without_a_credential_is_forwarded_as_before() {
    let (port, accepted) = upstream().await;
    let h = proxy(port, false).await;
    let r = get(&h, "open.test", port).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.ends_with("none"), "no credential for this host: {r}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn plain_http_opt_in_injects_the_credential() {
    let (port, accepted) = upstream().await;
    let h = proxy(port, true).await;
    let r = get(&h, "api.test", port).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    // The upstream got the injected value; the echo reaches the client masked.
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert!(!r.contains("tok-8c1d07e2b95a4f36"), "echo not masked: {r}");
    assert!(r.ends_with(&"*".repeat(VALUE.len())), "{r}");
    let recs = h.shutdown().await;
    let rec = recs.iter().find(|r| r.host == "api.test").unwrap();
    assert_eq!(rec.credential.as_deref(), Some("api"));
}
