//! tools/call throughput and latency of a trivial tool over Streamable HTTP
//! (target: ≥ 5,000 calls/s on 2 cores). Client and server share the
//! machine, so the figure includes the load generator's cost.
//! `cargo bench -p airlock-mcp --bench calls [-- SECONDS CONNECTIONS]`

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use airlock_mcp::HttpOptions;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::json;

async fn worker(addr: std::net::SocketAddr, deadline: Instant, modern: bool) -> Vec<u32> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let sid = if modern {
        None
    } else {
        Some(common::open_session(addr, common::KEY_CI).await)
    };
    let auth = common::bearer(common::KEY_CI);
    let mut lat = Vec::new();
    let mut id = 0u64;
    while Instant::now() < deadline {
        id += 1;
        let mut params = json!({"name":"echo","arguments":{"text":"x"}});
        let mut req = hyper::Request::post("/mcp")
            .header("host", format!("127.0.0.1:{}", addr.port()))
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(s) = &sid {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-11-25");
        } else {
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {}
            });
            req = req
                .header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", "tools/call")
                .header("mcp-name", "echo");
        }
        let body =
            json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":params}).to_string();
        let req = req.body(Full::new(Bytes::from(body))).unwrap();
        let t0 = Instant::now();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let b = resp.into_body().collect().await.unwrap().to_bytes();
        lat.push(t0.elapsed().as_micros() as u32);
        debug_assert!(std::str::from_utf8(&b).unwrap().contains("ci: x"));
    }
    lat
}

async fn run(label: &str, secs: u64, conns: usize, modern: bool) {
    let t = common::start(
        if modern {
            "AIRLOCK_B_KEY_M"
        } else {
            "AIRLOCK_B_KEY_L"
        },
        HttpOptions::default(),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|_| tokio::spawn(worker(t.addr, deadline, modern)))
        .collect();
    let mut lat = Vec::new();
    for task in tasks {
        lat.extend(task.await.unwrap());
    }
    let took = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q) as usize];
    let rate = lat.len() as f64 / took;
    println!(
        "{label}: {} calls in {took:.1}s over {conns} connections = {rate:.0} calls/s  p50 {} us  p99 {} us  (target >= 5000/s: {})",
        lat.len(),
        p(0.5),
        p(0.99),
        if rate >= 5000.0 { "met" } else { "MISSED" }
    );
    assert_eq!(
        t.audit.0.lock().unwrap().len(),
        lat.len(),
        "every call audited"
    );
    t.server.shutdown().await;
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let secs = args.first().and_then(|s| s.parse().ok()).unwrap_or(5);
    let conns = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(16);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        run("stateless 2026-07-28", secs, conns, true).await;
        run("session 2025-11-25  ", secs, conns, false).await;
    });
}
