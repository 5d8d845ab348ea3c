//! Red-team: reading an echoed credential in slices. The proxy masks each
//! occurrence of the credential it injected in the response, but a slice
//! of the echo is not an occurrence: with `Range: bytes=a-b` the jail asks
//! an upstream that reflects the header (and honours ranges, as any
//! server of stored or static content does) for the token's first half,
//! then its second, and gets each unmasked. On a request carrying an
//! injected credential the proxy drops `Range` / `If-Range`, and refuses a
//! `206` anyway.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_config::{Credential, Network, Secret};
use airlock_proxy::{start_tcp, ProxyCredential, ProxyHandle, ProxyOptions, StaticResolver};
use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOKEN: &str = "tok-5f2a9c81e7d3b604";
const VALUE: &str = "Bearer tok-5f2a9c81e7d3b604";

type Seen = Arc<Mutex<Vec<String>>>;

/// Answers `token=<the Authorization token>!`, the slice a `Range:
/// bytes=a-b` asks for as a `206`, or, at `/force206`, always a `206` of
/// bytes 6-15 (a server that ignores the missing header).
async fn upstream() -> (u16, Seen) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let seen = seen2.clone();
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
                seen.lock().unwrap().push(head.clone());
                let header = |name: &str| {
                    head.lines().find_map(|l| {
                        let (n, v) = l.split_once(':')?;
                        n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                    })
                };
                let auth = header("authorization").unwrap_or_default();
                let body = format!("token={}!", auth.trim_start_matches("Bearer "));
                let range = if head.starts_with("GET /force206 ") {
                    Some((6, 15))
                } else {
                    header("range").and_then(|r| {
                        let (a, b) = r.strip_prefix("bytes=")?.split_once('-')?;
                        Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?))
                    })
                };
                let resp = match range {
                    Some((a, b)) if a <= b && b < body.len() => format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {a}-{b}/{}\r\nContent-Length: {}\r\n\r\n{}",
                        body.len(),
                        b - a + 1,
                        &body[a..=b]
                    ),
                    _ => format!(
                        "HTTP/1.1 200 OK\r\nAccept-Ranges: bytes\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    ),
                };
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (port, seen)
}

async fn proxy(port: u16) -> ProxyHandle {
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
    o.system_ca_file = "/nonexistent".into();
    start_tcp("127.0.0.1:0".parse().unwrap(), o).await.unwrap()
}

async fn get(h: &ProxyHandle, port: u16, path: &str, extra: &str) -> String {
    let mut s = TcpStream::connect(h.tcp_addr().unwrap()).await.unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("u:p");
    s.write_all(
        format!(
            "GET http://api.test:{port}{path} HTTP/1.1\r\nHost: api.test:{port}\r\n{extra}Proxy-Authorization: Basic {auth}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn an_echoed_credential_cannot_be_read_in_ranges() {
    let (port, seen) = upstream().await;
    let h = proxy(port).await;
    let (first, second) = TOKEN.split_at(TOKEN.len() / 2);
    // "token=" is 6 bytes: the two halves of the token.
    let a = get(&h, port, "/echo", "Range: bytes=6-15\r\n").await;
    let b = get(
        &h,
        port,
        "/echo",
        "range: bytes=16-25\r\nIf-Range: \"x\"\r\n",
    )
    .await;
    for r in [&a, &b] {
        assert!(
            !r.contains(first) && !r.contains(second),
            "a slice of the token came back: {r}"
        );
        // The whole echo, masked, instead.
        assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
        assert!(r.contains(&"*".repeat(TOKEN.len())), "{r}");
    }
    for head in seen.lock().unwrap().iter() {
        let lower = head.to_ascii_lowercase();
        assert!(
            !lower.contains("\r\nrange:") && !lower.contains("\r\nif-range:"),
            "{head}"
        );
    }
    // An upstream that sends a 206 unasked is refused, not relayed.
    let c = get(&h, port, "/force206", "").await;
    assert!(!c.contains(first), "{c}");
    assert!(c.starts_with("HTTP/1.1 502 "), "{c}");
}

/// Requests to hosts without a credential keep their ranges.
#[tokio::test]
async fn ranges_pass_where_no_credential_is_injected() {
    let (port, seen) = upstream().await;
    let network = Network {
        allow: vec![format!("plain.test:{port}").parse().unwrap()],
        allow_private: vec!["127.0.0.1/32".parse().unwrap()],
        ..Default::default()
    };
    let mut o = ProxyOptions::new(
        network,
        vec![],
        ProxyCredential {
            user: "u".into(),
            password: "p".into(),
        },
    );
    o.resolver =
        Arc::new(StaticResolver::new().with("plain.test", &["127.0.0.1".parse().unwrap()]));
    let h = start_tcp("127.0.0.1:0".parse().unwrap(), o).await.unwrap();
    let mut s = TcpStream::connect(h.tcp_addr().unwrap()).await.unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("u:p");
    s.write_all(
        format!(
            "GET http://plain.test:{port}/x HTTP/1.1\r\nHost: plain.test:{port}\r\nRange: bytes=0-3\r\nProxy-Authorization: Basic {auth}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let r = String::from_utf8_lossy(&out);
    assert!(r.starts_with("HTTP/1.1 206 "), "{r}");
    assert!(r.ends_with("toke"), "{r}");
    assert!(seen.lock().unwrap()[0].contains("\r\nRange: bytes=0-3\r\n"));
}
