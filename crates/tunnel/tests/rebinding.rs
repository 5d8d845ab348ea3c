//! DNS-rebinding protection through the tunnel (found by the conformance
//! suite's dns-rebinding-protection scenario): the connector rewrites `Host`,
//! so the gateway itself refuses same-origin browser requests naming a
//! non-loopback `Host` on a loopback listener, drops an `Origin` that is the
//! gateway's own, and forwards any other `Origin` for the upstream to judge.

mod common;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use airlock_tunnel::connector::RouteTarget;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// (Host, Origin) of every request the upstream saw.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

async fn recording_upstream() -> (SocketAddr, Seen) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Seen::default();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = l.accept().await.unwrap();
            let seen = seen2.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let header = |n: &str| {
                        req.headers()
                            .get(n)
                            .map(|v| v.to_str().unwrap().to_string())
                    };
                    seen.lock()
                        .unwrap()
                        .push((header("host").unwrap_or_default(), header("origin")));
                    async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("{}")))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// One raw HTTP/1.1 POST (so Host and Origin are exactly as given); the status.
async fn post(gw: SocketAddr, host: &str, origin: Option<&str>, key: &str) -> u16 {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "POST /t/corp/rec HTTP/1.1\r\nHost: {host}\r\n{origin}Authorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut s = TcpStream::connect(gw).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.split(' ').nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_guards_host_and_origin_the_upstream_can_no_longer_see() {
    let (up, seen) = recording_upstream().await;
    let tunnel = common::Tunnel::start(BTreeMap::from([(
        "rec".to_string(),
        RouteTarget::Http(format!("http://{up}/mcp")),
    )]))
    .await;
    let gw = tunnel.gateway.agent_addr;
    let port = gw.port();
    let key = &tunnel.key;

    // Rebound browser requests (same-origin to a foreign name) never reach
    // the upstream.
    for host in [
        "evil.example.com".to_string(),
        format!("evil.example.com:{port}"),
        format!("localhost.evil.example.com:{port}"),
        format!("[::1].evil:{port}"),
        format!("127.0.0.1.nip.io:{port}"),
    ] {
        let origin = format!("http://{host}");
        assert_eq!(post(gw, &host, Some(&origin), key).await, 403, "{host}");
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "rebound request reached the upstream"
    );

    // The gateway's own origin is same-origin: accepted, Origin not forwarded,
    // Host rewritten to the upstream's authority.
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let origin = format!("http://{host}");
        assert_eq!(post(gw, &host, Some(&origin), key).await, 200, "{host}");
        let (h, o) = seen.lock().unwrap().pop().unwrap();
        assert_eq!((h.as_str(), o), (up.to_string().as_str(), None));
    }

    // A foreign Origin is forwarded untouched: the upstream decides, exactly
    // as it would without the tunnel.
    let host = format!("127.0.0.1:{port}");
    assert_eq!(
        post(gw, &host, Some("http://evil.example.com"), key).await,
        200
    );
    let (_, o) = seen.lock().unwrap().pop().unwrap();
    assert_eq!(o.as_deref(), Some("http://evil.example.com"));
    assert_eq!(post(gw, &host, Some("http://127.0.0.1:1"), key).await, 200);
    let (_, o) = seen.lock().unwrap().pop().unwrap();
    assert_eq!(o.as_deref(), Some("http://127.0.0.1:1"));

    // No Origin (non-browser agents, reverse proxies naming the gateway):
    // unchanged, whatever the Host.
    assert_eq!(post(gw, &host, None, key).await, 200);
    assert_eq!(seen.lock().unwrap().pop().unwrap().1, None);
    assert_eq!(post(gw, "gateway.example.com", None, key).await, 200);
    assert_eq!(seen.lock().unwrap().pop().unwrap(), (up.to_string(), None));
}
