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
    worker_calling(
        addr,
        deadline,
        modern,
        "echo",
        json!({"text": "x"}),
        "ci: x",
    )
    .await
}

async fn worker_calling(
    addr: std::net::SocketAddr,
    deadline: Instant,
    modern: bool,
    tool: &str,
    arguments: serde_json::Value,
    expect: &str,
) -> Vec<u32> {
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
        let mut params = json!({"name": tool, "arguments": arguments});
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
                .header("mcp-name", tool);
        }
        let body =
            json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":params}).to_string();
        let req = req.body(Full::new(Bytes::from(body))).unwrap();
        let t0 = Instant::now();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let b = resp.into_body().collect().await.unwrap().to_bytes();
        lat.push(t0.elapsed().as_micros() as u32);
        let body = std::str::from_utf8(&b).unwrap_or_default();
        assert!(body.contains(expect), "unexpected reply: {body}");
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

/// `agent.bash` running `true` in per-session jails (one jail and shell per
/// connection). Needs the `airlock` binary as the jail's init: set
/// AIRLOCK_BIN, or build it first (`cargo build --release -p airlock`).
async fn run_agent_bash(secs: u64, conns: usize) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let launcher = std::env::var_os("AIRLOCK_BIN")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            ["target/release/airlock", "target/debug/airlock"]
                .iter()
                .map(|p| root.join(p))
                .find(|p| p.exists())
        });
    let Some(launcher) = launcher else {
        println!("agent.bash: skipped (no airlock binary; set AIRLOCK_BIN or build -p airlock)");
        return;
    };
    let work = tempfile::tempdir_in(root.join("target")).unwrap();
    if std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(1)
        == 0
    {
        let _ = std::process::Command::new("chown")
            .arg("65534:65534")
            .arg(work.path())
            .status();
    }
    std::env::set_var("AIRLOCK_B_KEY_A", common::KEY_CI);
    let cfg = common::load(
        "version: 1\ntools:\n  bash: { kind: agent.bash }\nagents:\n  ci:\n    keys: [\"${env:AIRLOCK_B_KEY_A}\"]\n    allowed_tools: [bash]\n",
    );
    let agent = airlock_mcp::agent::AgentTools::new(airlock_mcp::agent::AgentOptions {
        workdir: work.path().to_path_buf(),
        sandbox: cfg.sandbox.clone(),
        launcher: Some(launcher),
        max_sessions: conns + 1,
        max_sessions_per_agent: conns + 1,
        idle_timeout: Duration::from_secs(600),
        network: None,
    })
    .unwrap();
    let agent = std::sync::Arc::new(agent);
    let audit = std::sync::Arc::new(common::MemAudit::default());
    let shared = airlock_mcp::Shared::new(
        &cfg,
        airlock_mcp::Catalogs(vec![agent.clone()]),
        airlock_mcp::SharedOptions {
            approvals: None,
            audit: audit.clone(),
            http_keys: true,
        },
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = airlock_mcp::HttpServer::start(shared, listener, HttpOptions::default()).unwrap();
    let addr = server.local_addr;
    // The first call of each session starts its jail; time that separately.
    let t0 = Instant::now();
    let sid = common::open_session(addr, common::KEY_CI).await;
    let r = common::session_call(
        addr,
        common::KEY_CI,
        &sid,
        1,
        "tools/call",
        json!({"name":"bash","arguments":{"command":"true"}}),
    )
    .await;
    assert!(r.body.contains("new shell"), "{}", r.body);
    println!(
        "agent.bash: first call of a session (jail start + bash + true): {:.1} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            tokio::spawn(worker_calling(
                addr,
                deadline,
                false,
                "bash",
                json!({"command": "true"}),
                "isError\":false",
            ))
        })
        .collect();
    let mut lat = Vec::new();
    for task in tasks {
        lat.extend(task.await.unwrap());
    }
    let took = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q) as usize];
    println!(
        "agent.bash `true`: {} calls in {took:.1}s over {conns} sessions (one jail each) = {:.0} calls/s  p50 {} us  p99 {} us",
        lat.len(),
        lat.len() as f64 / took,
        p(0.5),
        p(0.99)
    );
    server.shutdown().await;
    tokio::task::spawn_blocking(move || agent.close_all())
        .await
        .unwrap();
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
        run_agent_bash(secs, 4).await;
    });
}
