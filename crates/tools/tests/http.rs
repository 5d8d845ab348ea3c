//! http.request against a real local HTTP server that records every request
//! it receives: routing, credential injection, caps, redirects, timeouts,
//! and the attacks (traversal, encodings, method confusion, oversize).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock_config::{
    Approval, ByteSize, Constraint, HttpAuth, HttpRequest, HttpRoute, Secret, Tool, ToolKind,
};
use airlock_tools::{build_tool, CallContext, Limits, ToolError, ToolOutput};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    auth: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let header = |n: &str| {
        req.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let auth = header("authorization");
    let content_type = header("content-type");
    let path = req.uri().path().to_string();
    let body = req.into_body().collect().await.unwrap().to_bytes().to_vec();
    seen.lock().unwrap().push(Seen {
        method,
        uri,
        auth,
        content_type,
        body: body.clone(),
    });
    let json = |v: Value| {
        Response::builder()
            .header("content-type", "application/json")
            .header("x-internal-secret-header", "should-not-be-shown")
            .body(Full::new(Bytes::from(v.to_string())))
            .unwrap()
    };
    let resp = match path.as_str() {
        "/v1/big" => Response::new(Full::new(Bytes::from(vec![b'a'; 8 << 20]))),
        "/v1/redirect" => Response::builder()
            .status(302)
            .header("location", "http://127.0.0.1:1/elsewhere")
            .body(Full::new(Bytes::new()))
            .unwrap(),
        "/v1/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Response::new(Full::new(Bytes::from_static(b"late")))
        }
        "/v1/fail" => Response::builder()
            .status(503)
            .body(Full::new(Bytes::from_static(b"down for maintenance")))
            .unwrap(),
        "/v1/echo" => {
            let a = seen
                .lock()
                .unwrap()
                .last()
                .unwrap()
                .auth
                .clone()
                .unwrap_or_default();
            let token = a.trim_start_matches("Bearer ").to_string();
            Response::builder()
                .header("content-type", "application/json")
                .header(
                    "location",
                    format!("https://elsewhere.example/cb?token={token}"),
                )
                .body(Full::new(Bytes::from(
                    json!({"headers": {"authorization": a}, "token": token}).to_string(),
                )))
                .unwrap()
        }
        "/v1/bin" => Response::new(Full::new(Bytes::from_static(&[0xff, 0xfe, 0, 1]))),
        "/v1/deploy" => {
            json(json!({"received": serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null)}))
        }
        p if p.starts_with("/v1/items/") => json(json!({"id": &p[10..]})),
        _ => Response::builder()
            .status(404)
            .body(Full::new(Bytes::from_static(b"no such route")))
            .unwrap(),
    };
    Ok(resp)
}

async fn server() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen = s2.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |r| handle(r, seen.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Server { port, seen }
}

struct Setup {
    srv: Server,
    tool: Tool,
    _dir: tempfile::TempDir,
}

fn route(m: &str, p: &str) -> HttpRoute {
    HttpRoute {
        method: m.into(),
        path: p.into(),
        body: None,
    }
}

async fn setup(max_response: u64, timeout: Duration) -> Setup {
    let srv = server().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let tool = Tool {
        description: None,
        approval: Approval::None,
        kind: ToolKind::HttpRequest(HttpRequest {
            base_url: format!("http://127.0.0.1:{}/v1", srv.port).parse().unwrap(),
            routes: vec![
                route("GET", "/items/{id}"),
                HttpRoute {
                    // Any JSON body (http_body.rs tests the schemas).
                    body: Some(Default::default()),
                    ..route("POST", "/deploy")
                },
                route("GET", "/big"),
                route("GET", "/redirect"),
                route("GET", "/slow"),
                route("GET", "/fail"),
                route("GET", "/bin"),
                route("GET", "/echo"),
            ],
            auth: Some(HttpAuth {
                header: "Authorization".into(),
                value: Secret::parse(&format!("Bearer ${{file:{}}}", token.display())).unwrap(),
            }),
            max_response_size: ByteSize(max_response),
            timeout,
        }),
    };
    Setup {
        srv,
        tool,
        _dir: dir,
    }
}

fn ctx() -> CallContext {
    CallContext {
        agent: "a".into(),
        session: None,
        cancel: CancellationToken::new(),
    }
}

async fn run(s: &Setup, c: Option<&Constraint>, args: Value) -> Result<ToolOutput, ToolError> {
    let imp = build_tool("api", &s.tool).unwrap().unwrap();
    let limits = Limits::effective(&s.tool, c);
    let canon = imp.canonicalize(&args, &limits)?;
    imp.call(&ctx(), canon, &limits).await
}

#[tokio::test]
async fn calls_an_allowed_route_with_the_injected_credential() {
    let s = setup(1 << 20, Duration::from_secs(5)).await;
    let out = run(&s, None, json!({"method": "get", "path": "/items/42", "query": {"expand": true, "n": 3, "q": "a b&c=d"}})).await.unwrap();
    let v = out.structured.clone().unwrap();
    assert_eq!(v["status"], 200);
    assert_eq!(v["json"], json!({"id": "42"}));
    assert_eq!(v["headers"]["content-type"], "application/json");
    assert!(v["headers"].get("x-internal-secret-header").is_none());
    assert!(!out.is_error);
    assert!(!out.text.contains("s3cret"));
    let seen = s.srv.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].uri, "/v1/items/42?expand=true&n=3&q=a+b%26c%3Dd");
    assert_eq!(seen[0].auth.as_deref(), Some("Bearer s3cret-token"));

    let out = run(
        &s,
        None,
        json!({"method": "POST", "path": "/deploy", "body": {"service": "a", "version": 7}}),
    )
    .await
    .unwrap();
    assert_eq!(
        out.structured.unwrap()["json"]["received"],
        json!({"service": "a", "version": 7})
    );
    let seen = s.srv.seen.lock().unwrap().clone();
    assert_eq!(seen[1].content_type.as_deref(), Some("application/json"));
    assert_eq!(
        serde_json::from_slice::<Value>(&seen[1].body).unwrap(),
        json!({"service": "a", "version": 7})
    );
}

#[tokio::test]
async fn traversal_and_encoding_tricks_never_reach_the_server() {
    let s = setup(1 << 20, Duration::from_secs(5)).await;
    for path in [
        "/items/../deploy",
        "/items/%2e%2e/deploy",
        "/items/%2E%2e",
        "/items/%2fdeploy",
        "/items/42%2F..%2F..%2Fadmin",
        "/items/%252e%252e",
        "/items/%5c..%5cadmin",
        "/items/..\\deploy",
        "//127.0.0.1:1/items/1",
        "/items//1",
        "/items/1;admin=1",
        "/items/1?admin=1",
        "/items/1#x",
        "http://evil.example/items/1",
        "https://127.0.0.1/v1/items/1",
        "items/1",
        "/items/",
        "/items/1/2",
        "/admin",
        "/items/1\r\nX-Injected: 1",
        "/items/%00",
    ] {
        let e = run(&s, None, json!({"method": "GET", "path": path}))
            .await
            .unwrap_err();
        assert!(matches!(e, ToolError::Denied(_)), "{path:?} gave {e:?}");
    }
    assert!(
        s.srv.seen.lock().unwrap().is_empty(),
        "a refused request reached the server"
    );
}

#[tokio::test]
async fn method_confusion_and_argument_shape() {
    let s = setup(1 << 20, Duration::from_secs(5)).await;
    for (m, p) in [
        ("DELETE", "/items/1"),
        ("POST", "/items/1"),
        ("HEAD", "/items/1"),
        ("GET", "/deploy"),
        ("PUT", "/deploy"),
    ] {
        let e = run(&s, None, json!({"method": m, "path": p}))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ToolError::Denied(msg) if msg.contains("not an allowed route")),
            "{m} {p}: {e:?}"
        );
    }
    for m in ["GET ", "GET\r\n", "G-T", "", "GET /admin HTTP/1.1\r\n"] {
        let e = run(&s, None, json!({"method": m, "path": "/items/1"}))
            .await
            .unwrap_err();
        assert!(matches!(e, ToolError::InvalidArguments(_)), "{m:?}: {e:?}");
    }
    // The agent cannot add headers (so cannot set or override the credential).
    let e = run(
        &s,
        None,
        json!({"method": "GET", "path": "/items/1", "headers": {"Authorization": "Bearer mine"}}),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, ToolError::InvalidArguments(m) if m.contains("unknown argument `headers`")),
        "{e:?}"
    );
    let e = run(
        &s,
        None,
        json!({"method": "GET", "path": "/items/1", "body": {}}),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments(_)));
    let e = run(
        &s,
        None,
        json!({"method": "GET", "path": "/items/1", "query": {"a": {"nested": 1}}}),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments(_)));
    // Oversized arguments.
    let long = format!("/items/{}", "a".repeat(5000));
    let e = run(&s, None, json!({"method": "GET", "path": long}))
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments(_)), "{e:?}");
    let many: serde_json::Map<String, Value> =
        (0..100).map(|i| (format!("k{i}"), json!("v"))).collect();
    let e = run(
        &s,
        None,
        json!({"method": "GET", "path": "/items/1", "query": many}),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments(_)));
    let e = run(
        &s,
        None,
        json!({"method": "POST", "path": "/deploy", "body": "x".repeat(2 << 20)}),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments(_)));
    assert!(s.srv.seen.lock().unwrap().is_empty());

    // Canonical form is what the policy sees: upper-case method, decoded-and-re-encoded path.
    let imp = build_tool("api", &s.tool).unwrap().unwrap();
    let limits = Limits::effective(&s.tool, None);
    let c = imp
        .canonicalize(&json!({"method": "get", "path": "/items/%34%32"}), &limits)
        .unwrap();
    assert_eq!(c, json!({"method": "GET", "path": "/items/42"}));
}

#[tokio::test]
async fn constraint_narrows_routes_and_schema() {
    let s = setup(1 << 20, Duration::from_secs(5)).await;
    let c = Constraint {
        routes: Some(vec![route("GET", "/items/{id}")]),
        ..Default::default()
    };
    let e = run(
        &s,
        Some(&c),
        json!({"method": "POST", "path": "/deploy", "body": {}}),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, ToolError::Denied(m) if m.contains("allowed: GET /items/{id}")),
        "{e:?}"
    );
    let imp = build_tool("api", &s.tool).unwrap().unwrap();
    let schema = imp.input_schema(&Limits::effective(&s.tool, Some(&c)));
    assert_eq!(schema["properties"]["method"]["enum"], json!(["GET"]));
    assert_eq!(schema["additionalProperties"], false);
    run(&s, Some(&c), json!({"method": "GET", "path": "/items/7"}))
        .await
        .unwrap();
}

#[tokio::test]
async fn response_cap_redirects_errors_and_binary() {
    let s = setup(1000, Duration::from_secs(5)).await;
    let started = Instant::now();
    let out = run(&s, None, json!({"method": "GET", "path": "/big"}))
        .await
        .unwrap();
    let v = out.structured.unwrap();
    assert_eq!(v["truncated"], true);
    assert_eq!(v["text"].as_str().unwrap().len(), 1000);
    assert!(started.elapsed() < Duration::from_secs(3));

    let out = run(&s, None, json!({"method": "GET", "path": "/redirect"}))
        .await
        .unwrap();
    let v = out.structured.unwrap();
    assert_eq!(v["status"], 302);
    assert_eq!(v["headers"]["location"], "http://127.0.0.1:1/elsewhere");

    let out = run(&s, None, json!({"method": "GET", "path": "/fail"}))
        .await
        .unwrap();
    assert!(out.is_error);
    assert_eq!(out.structured.unwrap()["text"], "down for maintenance");

    let out = run(&s, None, json!({"method": "GET", "path": "/bin"}))
        .await
        .unwrap();
    assert_eq!(out.structured.unwrap()["binary_size"], 4);
    // Exactly one request per call: the redirect was not followed.
    assert_eq!(s.srv.seen.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn timeout_and_cancellation() {
    let s = setup(1 << 20, Duration::from_millis(300)).await;
    let e = run(&s, None, json!({"method": "GET", "path": "/slow"}))
        .await
        .unwrap_err();
    assert_eq!(e, ToolError::Timeout(Duration::from_millis(300)));

    let s = setup(1 << 20, Duration::from_secs(30)).await;
    let imp = build_tool("api", &s.tool).unwrap().unwrap();
    let limits = Limits::effective(&s.tool, None);
    let ctx = ctx();
    let cancel = ctx.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        cancel.cancel();
    });
    let started = Instant::now();
    let e = imp
        .call(&ctx, json!({"method": "GET", "path": "/slow"}), &limits)
        .await
        .unwrap_err();
    assert_eq!(e, ToolError::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn an_unresolvable_credential_fails_closed_without_sending() {
    let mut s = setup(1 << 20, Duration::from_secs(5)).await;
    if let ToolKind::HttpRequest(h) = &mut s.tool.kind {
        h.auth = Some(HttpAuth {
            header: "Authorization".into(),
            value: Secret::parse("Bearer ${env:AIRLOCK_TEST_SURELY_UNSET}").unwrap(),
        });
    }
    let e = run(&s, None, json!({"method": "GET", "path": "/items/1"}))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ToolError::Failed(m) if m.contains("credential")),
        "{e:?}"
    );
    assert!(s.srv.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_service_echoing_the_credential_cannot_leak_it() {
    let s = setup(1 << 20, Duration::from_secs(5)).await;
    let out = run(&s, None, json!({"method": "GET", "path": "/echo"}))
        .await
        .unwrap();
    assert!(!out.text.contains("s3cret-token"), "{}", out.text);
    let v = out.structured.unwrap();
    assert!(!v.to_string().contains("s3cret-token"), "{v}");
    assert_eq!(v["json"]["headers"]["authorization"], "[redacted]");
    assert_eq!(v["json"]["token"], "[redacted]");
    assert_eq!(
        v["headers"]["location"],
        "https://elsewhere.example/cb?token=[redacted]"
    );
    // It was really sent.
    assert_eq!(
        s.srv.seen.lock().unwrap()[0].auth.as_deref(),
        Some("Bearer s3cret-token")
    );
    // Cut mid-token by the size cap: the fragment is dropped too.
    let s = setup(40, Duration::from_secs(5)).await;
    let out = run(&s, None, json!({"method": "GET", "path": "/echo"}))
        .await
        .unwrap();
    let v = out.structured.unwrap();
    assert_eq!(v["truncated"], true);
    assert_eq!(v["text"], "{\"headers\":{\"authorization\":\"[redacted]");
}
