//! On-demand tunnel benchmark (not run in CI):
//! `cargo bench -p airlock-tunnel --bench tunnel`.
//!
//! Everything runs on loopback in this process: an HTTP/1.1 upstream, the
//! gateway and a connector (2 links, real TLS 1.3). Prints, next to the same
//! figure for a direct connection to the upstream: bulk throughput, small
//! request p50/p99 on a reused agent connection and on a new connection per
//! request, memory per idle link and per idle stream, and recovery time
//! after a gateway restart. Peers (rathole, bore): `benches/peers.sh`.
//!
//! `AIRLOCK_BENCH_ONLY=latency,mcp,new,bulk,memory,links,restart,peers`
//! (any subset) runs only those parts, e.g. under `perf record`.
//! `AIRLOCK_BENCH_N` scales the request counts (default 1).
//! `AIRLOCK_BENCH_PRESIGN=N` sets the gateway's identity nonce pool
//! (default: the gateway's default; 0 turns it off, for A/B runs).
//! `sep` (not in the default set) measures the small requests with the
//! gateway and connector in a child process, as rathole and bore run;
//! `gw` (likewise) with only the gateway in a child process and the
//! connector here beside the upstream, as deployed.
//! `split` (likewise): gateway, connector and upstream each in its own
//! child process, the agent client here.
//!
//! `AIRLOCK_BENCH_UPSTREAM=process` runs the HTTP upstream in its own child
//! process, so direct, airlock (every part) and the peers all reach the same
//! out-of-process server, as issue #7's "direct 126 µs" was measured
//! (client and server in different processes, each woken per request).
//! `AIRLOCK_BENCH_AUDIT=1` gives every gateway a real audit log
//! (airlock-audit, fsync'ed group commits, in the bench's temp directory)
//! receiving its events the way `airlock gateway` wires them;
//! `AIRLOCK_BENCH_AUDIT=wake` only hands each event to another thread.
//! `AIRLOCK_BENCH_GW_THREADS=N` sets the worker count of a gateway-only
//! child (`gw`, `split`) apart from `AIRLOCK_BENCH_THREADS`, and
//! `AIRLOCK_BENCH_CONN_THREADS=N` that of `split`'s connector (1: a
//! current-thread runtime). With `bulk`, `split` also measures bulk.
//! `trace` (not in the default set): the `split` layout's processes, and
//! rathole's, per request: wake-ups (voluntary context switches), CPU and
//! its kernel share, then system calls under `perf trace -s`;
//! `AIRLOCK_BENCH_TRACE=direct,get,mcp,rathole` picks which.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use airlock_tunnel::certs::Ca;
use airlock_tunnel::connector::{Connector, ConnectorOptions, RouteTarget};
use airlock_tunnel::events::{EventSink, TunnelEvent};
use airlock_tunnel::gateway::{Gateway, GatewayOptions};
use airlock_tunnel::state::State;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

type B = http_body_util::combinators::BoxBody<Bytes, Infallible>;

const CHUNK: usize = 64 << 10;

async fn upstream() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = l.accept().await.unwrap();
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let (parts, body) = req.into_parts();
                    // Read the whole request body, as an MCP server does.
                    let _ = body.collect().await;
                    Ok::<_, Infallible>(serve(Request::from_parts(parts, ())))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    addr
}

fn serve(req: Request<()>) -> Response<B> {
    let path = req.uri().path();
    if let Some(n) = path.strip_prefix("/mcp/bulk/") {
        let total: usize = n.parse().unwrap_or(0);
        let chunk = Bytes::from(vec![b'x'; CHUNK]);
        let s = futures_util::stream::iter(
            (0..total / CHUNK).map(move |_| Ok(Frame::data(chunk.clone()))),
        );
        return Response::new(BodyExt::boxed(StreamBody::new(s)));
    }
    if path == "/mcp/hang" {
        let s = futures_util::stream::pending::<Result<Frame<Bytes>, Infallible>>();
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(BodyExt::boxed(StreamBody::new(s)))
            .unwrap();
    }
    let body = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}]}}"#;
    Response::builder()
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(Bytes::from_static(body)).boxed())
        .unwrap()
}

/// On-CPU time of every thread of this process so far (scheduler
/// statistics, nanosecond resolution): what a request costs in CPU,
/// independent of how busy the machine is.
fn cpu_ns() -> u64 {
    cpu_ns_of("self")
}

/// The same for another process (a peer tunnel's server or client).
fn cpu_ns_of(pid: &str) -> u64 {
    let Ok(d) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    d.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn want(part: &str) -> bool {
    match std::env::var("AIRLOCK_BENCH_ONLY") {
        Ok(v) if !v.trim().is_empty() => v.split(',').any(|p| p.trim() == part),
        _ => !["sep", "gw", "split", "trace"].contains(&part),
    }
}

/// The gateway's events into a real audit log, as the CLI's `TunnelSink`
/// does (routed requests: agent, tunnel, session, status, duration, and the
/// whole event as detail).
struct AuditSink(airlock_audit::AuditHandle);

impl EventSink for AuditSink {
    fn record(&self, e: TunnelEvent) {
        use airlock_audit::{Event, Kind};
        let t = Instant::now();
        let ev = match &e {
            TunnelEvent::Routed {
                agent,
                tunnel,
                mcp_session,
                status,
                duration,
                ..
            } => Event::new(Kind::Tunnel)
                .agent(agent.clone())
                .tunnel(tunnel.clone())
                .session(mcp_session.clone())
                .status(status.to_string())
                .duration(*duration),
            _ => Event::new(Kind::Tunnel),
        };
        let detail = serde_json::to_value(&e).unwrap_or_default();
        self.0.record(ev.detail(detail)).unwrap();
        SINK_NS.fetch_add(
            t.elapsed().as_nanos() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        SINK_N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Time spent in the audit sink's `record` (on the gateway's request path).
static SINK_NS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static SINK_N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `AIRLOCK_BENCH_AUDIT=wake`: the hand-off alone, to tell its cost from
/// the log's: each event goes through a channel to a thread that drops it.
struct WakeSink(std::sync::Mutex<std::sync::mpsc::Sender<TunnelEvent>>);

impl EventSink for WakeSink {
    fn record(&self, e: TunnelEvent) {
        let _ = self.0.lock().unwrap().send(e);
    }
}

fn audit_opt(go: &mut GatewayOptions, dir: &std::path::Path) {
    if std::env::var("AIRLOCK_BENCH_AUDIT").is_ok_and(|v| v == "wake") {
        let (tx, rx) = std::sync::mpsc::channel::<TunnelEvent>();
        std::thread::spawn(move || while rx.recv().is_ok() {});
        go.events = Some(std::sync::Arc::new(WakeSink(std::sync::Mutex::new(tx))));
    }
    if std::env::var("AIRLOCK_BENCH_AUDIT").is_ok_and(|v| v == "1") {
        let cfg = airlock_config::Audit {
            // AIRLOCK_BENCH_AUDIT_DIR: e.g. a tmpfs, to tell fsync's share.
            dir: std::env::var_os("AIRLOCK_BENCH_AUDIT_DIR")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| dir.to_path_buf())
                .join(format!("audit-{}", std::process::id())),
            ..Default::default()
        };
        let h = airlock_audit::open(&cfg, airlock_audit::LogOptions::default()).unwrap();
        go.events = Some(std::sync::Arc::new(AuditSink(h)));
    }
}

fn presign_opt(go: &mut GatewayOptions) {
    if let Some(n) = std::env::var("AIRLOCK_BENCH_PRESIGN")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        go.presign = n;
    }
}

fn scale(n: usize) -> usize {
    let k: f64 = std::env::var("AIRLOCK_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * k) as usize).max(10)
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    pages * 4
}

struct Client {
    s: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

async fn client(addr: SocketAddr) -> Client {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let _ = tcp.set_nodelay(true);
    let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    Client { s }
}

/// A small MCP call as an agent sends it: a JSON-RPC `tools/call` POST.
const MCP_CALL: &[u8] = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#;

impl Client {
    async fn get(&mut self, path: &str, key: Option<&str>) -> (u16, usize) {
        self.send(path, key, None).await
    }

    async fn send(
        &mut self,
        path: &str,
        key: Option<&str>,
        body: Option<&'static [u8]>,
    ) -> (u16, usize) {
        let mut b = Request::builder().uri(path).header("host", "bench");
        if let Some(k) = key {
            b = b.header("authorization", format!("Bearer {k}"));
        }
        let body = match body {
            Some(json) => {
                b = b
                    .method("POST")
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream")
                    .header("mcp-protocol-version", "2025-06-18");
                Full::new(Bytes::from_static(json))
            }
            None => Full::new(Bytes::new()),
        };
        self.s.ready().await.unwrap();
        let r = self.s.send_request(b.body(body).unwrap()).await.unwrap();
        let st = r.status().as_u16();
        let mut body = r.into_body();
        let mut n = 0;
        while let Some(f) = body.frame().await {
            if let Some(d) = f.unwrap().data_ref() {
                n += d.len();
            }
        }
        (st, n)
    }
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize]
}

struct Lat {
    p50: Duration,
    p99: Duration,
    /// CPU time of the whole process per request (client and servers).
    cpu: Duration,
}

/// A small GET and a small MCP call, direct to `up` and through `agent`,
/// one line each for `layout`, with the CPU per request of this process
/// and of each named child process.
async fn compare_small(
    layout: &str,
    up: SocketAddr,
    agent: SocketAddr,
    key: Option<&str>,
    children: &[(&str, &str)],
) {
    let n = scale(5000);
    for (what, path, body) in [
        ("small GET", "/small", None),
        ("small MCP call", "", Some(MCP_CALL)),
    ] {
        let d = latency(up, &format!("/mcp{path}"), None, n, false, body).await;
        let c0: Vec<u64> = children.iter().map(|(_, p)| cpu_ns_of(p)).collect();
        let t = latency(agent, &format!("/t/bench/r{path}"), key, n, false, body).await;
        let mut cpu = format!("this process {}", us(t.cpu));
        for ((name, pid), before) in children.iter().zip(c0) {
            let per = Duration::from_nanos((cpu_ns_of(pid) - before) / (n as u64 + 200));
            cpu.push_str(&format!(" {name} {}", us(per)));
        }
        println!(
            "{what}, {layout} ({n}): direct p50 {} p99 {} | airlock p50 {} p99 {} | airlock - direct p50 {} | CPU per request: {cpu}",
            us(d.p50),
            us(d.p99),
            us(t.p50),
            us(t.p99),
            us(t.p50.saturating_sub(d.p50)),
        );
    }
}

async fn latency(
    addr: SocketAddr,
    path: &str,
    key: Option<&str>,
    n: usize,
    fresh: bool,
    body: Option<&'static [u8]>,
) -> Lat {
    let mut c = client(addr).await;
    for _ in 0..200 {
        c.send(path, key, body).await;
    }
    let mut v = Vec::with_capacity(n);
    let cpu0 = cpu_ns();
    for _ in 0..n {
        let t = Instant::now();
        if fresh {
            c = client(addr).await;
        }
        let (st, _) = c.send(path, key, body).await;
        assert_eq!(st, 200);
        v.push(t.elapsed());
    }
    let cpu = Duration::from_nanos((cpu_ns() - cpu0) / n as u64);
    Lat {
        p50: pct(&mut v, 0.5),
        p99: pct(&mut v, 0.99),
        cpu,
    }
}

/// Gbit/s, and CPU seconds per GiB moved (this process and `pids`):
/// the throughput a loaded machine hides.
async fn bulk(
    addr: SocketAddr,
    prefix: &str,
    key: Option<&str>,
    bytes: usize,
    pids: &[u32],
) -> (f64, f64) {
    let cpu = || cpu_ns() + pids.iter().map(|p| cpu_ns_of(&p.to_string())).sum::<u64>();
    let mut c = client(addr).await;
    let cpu0 = cpu();
    let t = Instant::now();
    let (st, n) = c.get(&format!("{prefix}/bulk/{bytes}"), key).await;
    assert_eq!((st, n), (200, bytes / CHUNK * CHUNK));
    let gbps = n as f64 * 8.0 / t.elapsed().as_secs_f64() / 1e9;
    let per_gib = (cpu() - cpu0) as f64 / 1e9 / (n as f64 / (1u64 << 30) as f64);
    (gbps, per_gib)
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn main() {
    // Two workers, as on the project's 2-core machine;
    // AIRLOCK_BENCH_THREADS=1 runs everything on one thread instead.
    let threads: usize = std::env::var("AIRLOCK_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    rt.unwrap().block_on(bench());
}

async fn bench() {
    if std::env::var_os("AIRLOCK_BENCH_CHILD_UPSTREAM").is_some() {
        println!("READY {}", upstream().await);
        return std::future::pending::<()>().await;
    }
    if let Ok(d) = std::env::var("AIRLOCK_BENCH_CHILD") {
        if std::env::var_os("AIRLOCK_BENCH_CHILD_CONNECTOR").is_some() {
            return connector_child(std::path::PathBuf::from(d)).await;
        }
        return child(std::path::PathBuf::from(d)).await;
    }
    let dir = std::env::temp_dir().join(format!("airlock-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.db");
    let gw_ca = Ca::generate("gw").unwrap();
    let tun_ca = Ca::generate("tun").unwrap();
    let server = gw_ca.issue_server(&["localhost"]).unwrap();
    let client_cert = tun_ca.issue_client("c").unwrap();
    let mut st = State::open(&state).unwrap();
    let token = st
        .create_tunnel("bench", &[tun_ca.pem().cert.into_bytes()])
        .unwrap();
    let (_, key) = st.create_key("bench", "bench", &[]).unwrap();
    drop(st);
    let up_process = std::env::var("AIRLOCK_BENCH_UPSTREAM").is_ok_and(|v| v == "process");
    let (up, up_child) = if up_process {
        let (c, line) = spawn_self(&[("AIRLOCK_BENCH_CHILD_UPSTREAM", "1".as_ref())]);
        (line.parse().unwrap(), Some(c))
    } else {
        (upstream().await, None)
    };
    let mut go = GatewayOptions::new(
        state.clone(),
        server.cert.clone().into(),
        server.key.clone().into(),
    );
    go.agent_tls = false;
    presign_opt(&mut go);
    audit_opt(&mut go, &dir);
    let gw = Gateway::start(go.clone()).await.unwrap();
    let mk = |gw: &Gateway, links: u32, name: &str| {
        let mut o = ConnectorOptions::new(
            format!("localhost:{}", gw.tunnel_addr.port()),
            "bench".into(),
            token.clone(),
            gw_ca.pem().cert.into(),
            client_cert.cert.clone().into(),
            client_cert.key.clone().into(),
        );
        o.links = links;
        o.name = name.into();
        o.routes = BTreeMap::from([(
            "r".to_string(),
            RouteTarget::Http(format!("http://{up}/mcp")),
        )]);
        o
    };
    let mut conn = Connector::start(mk(&gw, 2, "main")).unwrap();
    conn.wait_links(2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let g = gw.agent_addr;
    let k = Some(key.as_str());

    println!(
        "airlock tunnel benchmark (loopback, 2 links, TLS 1.3 ring, agent side plain HTTP/1.1; upstream {}{})",
        if up_child.is_some() { "in its own process" } else { "in the client's process" },
        match std::env::var("AIRLOCK_BENCH_AUDIT").as_deref() {
            Ok("1") => "; gateway audit log on",
            Ok("wake") => "; gateway events handed to a thread",
            _ => "",
        }
    );
    let line = |what: &str, n: usize, d: &Lat, t: &Lat| {
        println!(
            "{what} ({n}): direct p50 {} p99 {} | airlock p50 {} p99 {} | airlock - direct p50 {} | CPU per request: direct {} airlock {}",
            us(d.p50),
            us(d.p99),
            us(t.p50),
            us(t.p99),
            us(t.p50.saturating_sub(d.p50)),
            us(d.cpu),
            us(t.cpu)
        )
    };
    let mut reused = None;
    if want("latency") {
        let n = scale(5000);
        let d = latency(up, "/mcp/small", None, n, false, None).await;
        let t = latency(g, "/t/bench/r/small", k, n, false, None).await;
        line("small GET, reused agent connection", n, &d, &t);
        reused = Some((d, t));
    }
    if want("mcp") {
        let n = scale(5000);
        let d = latency(up, "/mcp", None, n, false, Some(MCP_CALL)).await;
        let t = latency(g, "/t/bench/r", k, n, false, Some(MCP_CALL)).await;
        line(
            "small MCP call (POST tools/call), reused agent connection",
            n,
            &d,
            &t,
        );
    }
    if want("new") {
        let n = scale(2000);
        let d = latency(up, "/mcp/small", None, n, true, None).await;
        let t = latency(g, "/t/bench/r/small", k, n, true, None).await;
        line("small GET, new agent connection each time", n, &d, &t);
        // What opening a new agent connection (and so a new stream on the
        // link) adds through the tunnel beyond what it adds directly.
        if let Some((rd, rt)) = &reused {
            let direct = d.p50.saturating_sub(rd.p50);
            let tunnel = t.p50.saturating_sub(rt.p50);
            println!(
                "new-connection overhead (p50 new - p50 reused): direct {} | airlock {} | airlock extra {}",
                us(direct),
                us(tunnel),
                us(tunnel.saturating_sub(direct))
            );
        }
    }

    let sink_n = SINK_N.load(std::sync::atomic::Ordering::Relaxed);
    if sink_n > 0 {
        println!(
            "audit sink: {sink_n} events, {:.1} µs each in record() (on the request path)",
            SINK_NS.load(std::sync::atomic::Ordering::Relaxed) as f64 / sink_n as f64 / 1e3
        );
    }

    if want("gw") {
        // The deployed shape: the gateway alone in its process (the
        // public side), the connector with the upstream (the private side).
        let (child, agent, tunnel, key) =
            spawn_child_as(&dir, "gw", up, &gw_ca, &server, &tun_ca, &client_cert, true).await;
        let token =
            String::from_utf8(std::fs::read(dir.join("gw").join("token")).unwrap()).unwrap();
        let mut o = ConnectorOptions::new(
            format!("localhost:{}", tunnel.unwrap().port()),
            "bench".into(),
            token,
            gw_ca.pem().cert.into(),
            client_cert.cert.clone().into(),
            client_cert.key.clone().into(),
        );
        o.routes = BTreeMap::from([(
            "r".to_string(),
            RouteTarget::Http(format!("http://{up}/mcp")),
        )]);
        let mut c = Connector::start(o).unwrap();
        c.wait_links(2).await;
        let k = Some(key.as_str());
        let pid = child.0.id().to_string();
        compare_small(
            "gateway in a child process",
            up,
            agent,
            k,
            &[("child", &pid)],
        )
        .await;
        c.shutdown().await;
    }

    if want("split") || want("trace") {
        // Every party in its own process: gateway, connector, upstream
        // (with AIRLOCK_BENCH_UPSTREAM=process) and the agent client here.
        let (gwc, agent, tunnel, key) = spawn_child_as(
            &dir,
            "split",
            up,
            &gw_ca,
            &server,
            &tun_ca,
            &client_cert,
            true,
        )
        .await;
        let cdir = dir.join("split");
        std::fs::write(cdir.join("tunnel"), tunnel.unwrap().to_string()).unwrap();
        let mut env = vec![
            ("AIRLOCK_BENCH_CHILD", cdir.as_os_str().to_owned()),
            ("AIRLOCK_BENCH_CHILD_CONNECTOR", "1".into()),
        ];
        // The connector's own runtime, apart from the other processes'.
        if let Some(t) = std::env::var_os("AIRLOCK_BENCH_CONN_THREADS") {
            env.push(("AIRLOCK_BENCH_THREADS", t));
        }
        let env: Vec<(&str, &std::ffi::OsStr)> =
            env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
        let (cc, _) = spawn_self(&env);
        let k = Some(key.as_str());
        let (gp, cp) = (gwc.0.id().to_string(), cc.0.id().to_string());
        if want("trace") {
            let upstream = up_child.as_ref().map(|c| ("upstream", c.0.id()));
            let direct: Vec<_> = std::iter::once(("client", std::process::id()))
                .chain(upstream)
                .collect();
            let mut procs = direct.clone();
            procs.extend([("gateway", gwc.0.id()), ("connector", cc.0.id())]);
            // AIRLOCK_BENCH_TRACE=direct,get,mcp,rathole (any subset).
            let pick = |w: &str| {
                std::env::var("AIRLOCK_BENCH_TRACE")
                    .map_or(true, |v| v.split(',').any(|p| p.trim() == w))
            };
            if pick("direct") {
                trace_requests("direct", up, "/mcp/small", None, &direct, &dir).await;
            }
            if pick("get") {
                trace_requests("airlock split", agent, "/t/bench/r/small", k, &procs, &dir).await;
            }
            if pick("mcp") {
                trace_requests(
                    "airlock split MCP call",
                    agent,
                    "/t/bench/r",
                    k,
                    &procs,
                    &dir,
                )
                .await;
            }
            if pick("rathole") {
                if let Some((s, c, addr)) = spawn_rathole(up, &dir).await {
                    assert!(wait_serving(addr).await, "rathole did not come up");
                    let mut procs = direct.clone();
                    procs.extend([("rathole server", s.0.id()), ("rathole client", c.0.id())]);
                    trace_requests("rathole", addr, "/mcp/small", None, &procs, &dir).await;
                }
            }
        }
        if want("split") {
            compare_small(
                "gateway | connector | upstream in separate processes",
                up,
                agent,
                k,
                &[("gateway", &gp), ("connector", &cp)],
            )
            .await;
            let rd = latency(up, "/mcp/small", None, scale(2000), false, None).await;
            let rt = latency(agent, "/t/bench/r/small", k, scale(2000), false, None).await;
            let d = latency(up, "/mcp/small", None, scale(2000), true, None).await;
            let t = latency(agent, "/t/bench/r/small", k, scale(2000), true, None).await;
            let direct = d.p50.saturating_sub(rd.p50);
            let tunnel = t.p50.saturating_sub(rt.p50);
            println!(
            "new-connection overhead, separate processes (p50 new - p50 reused): direct {} | airlock {} | airlock extra {} (new p50: direct {} airlock {})",
            us(direct),
            us(tunnel),
            us(tunnel.saturating_sub(direct)),
            us(d.p50),
            us(t.p50)
        );
            if want("bulk") {
                let (g, gc) = bulk(
                    agent,
                    "/t/bench/r",
                    k,
                    2usize << 30,
                    &[gwc.0.id(), cc.0.id()],
                )
                .await;
                println!("bulk 2 GiB, one stream, gateway | connector | upstream in separate processes: {g:.2} Gbit/s (CPU {gc:.2} s/GiB, client, gateway and connector)");
            }
        }
    }

    if want("sep") {
        let (child, agent, key) =
            spawn_child(&dir, "sep", up, &gw_ca, &server, &tun_ca, &client_cert).await;
        let k = Some(key.as_str());
        let pid = child.0.id().to_string();
        compare_small(
            "gateway + connector in a child process",
            up,
            agent,
            k,
            &[("child", &pid)],
        )
        .await;
        let (g, gc) = bulk(agent, "/t/bench/r", k, 2usize << 30, &[child.0.id()]).await;
        println!("bulk 2 GiB, one stream, gateway + connector in a child process: {g:.2} Gbit/s (CPU {gc:.2} s/GiB, both processes)");
    }

    if want("bulk") {
        let bytes = 2usize << 30;
        let (d, dc) = bulk(up, "/mcp", None, bytes, &[]).await;
        let (t, tc) = bulk(g, "/t/bench/r", k, bytes, &[]).await;
        println!(
            "bulk 2 GiB, one stream: direct {d:.2} Gbit/s | airlock {t:.2} Gbit/s (encrypted link) | CPU per GiB: direct {dc:.2} s airlock {tc:.2} s"
        );
    }

    if want("memory") {
        idle_streams(g, &key).await;
        // All 1,000 opened at once also counts 1,000 requests in flight at
        // the same moment (the heap's high-water mark stays in RSS); 20 at
        // a time is closer to what each held stream costs.
        for batch in [1000, 20] {
            let iso =
                isolated_stream_cost(&dir, up, &gw_ca, &server, &tun_ca, &client_cert, batch).await;
            println!("memory per idle stream, gateway + connector only (separate process), opened {batch} at a time: {iso:.1} KiB");
        }
    }

    if want("links") {
        let before = rss_kib();
        let extra = 100;
        let mut many = Connector::start(mk(&gw, extra, "idle")).unwrap();
        many.wait_links(extra as usize).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let per_link = (rss_kib().saturating_sub(before)) as f64 / extra as f64;
        println!("memory per idle link (both ends): {per_link:.1} KiB");
        many.shutdown().await;
    }

    if want("restart") {
        let tunnel_addr = gw.tunnel_addr;
        let agent_addr = gw.agent_addr;
        gw.shutdown().await;
        while conn.links_up() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let t = Instant::now();
        go.tunnel_listen = tunnel_addr.to_string();
        go.agent_listen = agent_addr.to_string();
        let _gw2 = Gateway::start(go).await.unwrap();
        conn.wait_links(2).await;
        println!(
            "recovery after a clean gateway restart: {} ms to 2 links",
            t.elapsed().as_millis()
        );
    }
    if want("peers") {
        peers(up, &dir).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Idle streams: SSE responses that never end, all in this process.
async fn idle_streams(g: SocketAddr, key: &str) {
    let before = rss_kib();
    let tcp = TcpStream::connect(g).await.unwrap();
    let (s, c2) = hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .handshake::<_, Empty<Bytes>>(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(c2);
    let streams = 1000;
    let mut held = Vec::new();
    for _ in 0..streams {
        let mut s = s.clone();
        let req = Request::get("http://bench/t/bench/r/hang")
            .header("authorization", format!("Bearer {key}"))
            .body(Empty::new())
            .unwrap();
        held.push(tokio::spawn(async move {
            s.send_request(req).await.map(|r| r.into_body())
        }));
    }
    let mut bodies = Vec::new();
    for h in held {
        bodies.push(h.await.unwrap().unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let per_stream = (rss_kib().saturating_sub(before)) as f64 / streams as f64;
    println!("memory per idle stream (gateway + connector + agent/upstream sides, in one process): {per_stream:.1} KiB");
}

fn on_path(bin: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(bin))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.is_file())
}

struct KillOnDrop(std::process::Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_serving(addr: SocketAddr) -> bool {
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_ok() {
            let ok = tokio::time::timeout(Duration::from_secs(1), async {
                let mut c = client(addr).await;
                c.get("/mcp/small", None).await
            })
            .await;
            if matches!(ok, Ok((200, _))) {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn measure_peer(name: &str, addr: SocketAddr, pids: &[u32]) {
    if !wait_serving(addr).await {
        println!("{name}: did not come up; skipped");
        return;
    }
    let r = latency(addr, "/mcp/small", None, scale(5000), false, None).await;
    let m = latency(addr, "/mcp", None, scale(5000), false, Some(MCP_CALL)).await;
    let f = latency(addr, "/mcp/small", None, scale(2000), true, None).await;
    let (g, gc) = bulk(addr, "/mcp", None, 2usize << 30, pids).await;
    println!(
        "{name}: reused p50 {} p99 {} (CPU {}) | MCP call p50 {} p99 {} | new connection p50 {} p99 {} | bulk {g:.2} Gbit/s (CPU {gc:.2} s/GiB)",
        us(r.p50),
        us(r.p99),
        us(r.cpu),
        us(m.p50),
        us(m.p99),
        us(f.p50),
        us(f.p99)
    );
}

/// rathole's server and client (plaintext TCP transport) forwarding a
/// port to `up`, when rathole is on PATH; and that port.
async fn spawn_rathole(
    up: SocketAddr,
    dir: &std::path::Path,
) -> Option<(KillOnDrop, KillOnDrop, SocketAddr)> {
    let bin = on_path("rathole")?;
    let (ctl, svc) = (free_port(), free_port());
    let server = format!(
        "[server]\nbind_addr = \"127.0.0.1:{ctl}\"\ndefault_token = \"bench\"\n\
         [server.services.up]\nbind_addr = \"127.0.0.1:{svc}\"\n"
    );
    let client = format!(
        "[client]\nremote_addr = \"127.0.0.1:{ctl}\"\ndefault_token = \"bench\"\n\
         [client.services.up]\nlocal_addr = \"{up}\"\n"
    );
    std::fs::write(dir.join("rs.toml"), server).unwrap();
    std::fs::write(dir.join("rc.toml"), client).unwrap();
    let spawn = |mode: &str, cfg: &str| {
        KillOnDrop(
            std::process::Command::new(&bin)
                .arg(mode)
                .arg(dir.join(cfg))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let s = spawn("--server", "rs.toml");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = spawn("--client", "rc.toml");
    Some((s, c, SocketAddr::from(([127, 0, 0, 1], svc))))
}

/// Sleeps of every thread of process `pid` so far (voluntary context
/// switches): each one is a wake-up later, what a request pays per
/// process it crosses on this VM.
fn wakeups_of(pid: u32) -> u64 {
    let Ok(d) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    d.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .sum()
}

/// User and system CPU time of process `pid` so far, in clock ticks.
fn user_sys_of(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let f: Vec<u64> = s
        .rsplit_once(')')
        .map(|(_, r)| {
            r.split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();
    (
        f.get(11).copied().unwrap_or(0),
        f.get(12).copied().unwrap_or(0),
    )
}

/// `trace` part: per request and per process on the path, the wake-ups
/// (voluntary context switches) and CPU time of `scale(5000)` requests on
/// one reused agent connection, then the system calls of as many more
/// under `perf trace -s` (counts include ~2 s of idle around them).
async fn trace_requests(
    name: &str,
    addr: SocketAddr,
    path: &str,
    key: Option<&str>,
    procs: &[(&str, u32)],
    dir: &std::path::Path,
) {
    let n = scale(5000);
    let body = (path == "/t/bench/r").then_some(MCP_CALL);
    let mut c = client(addr).await;
    for _ in 0..200 {
        c.send(path, key, body).await;
    }
    // First without tracing: wake-ups and CPU per request of each process.
    let w0: Vec<u64> = procs.iter().map(|(_, p)| wakeups_of(*p)).collect();
    let c0: Vec<u64> = procs
        .iter()
        .map(|(_, p)| cpu_ns_of(&p.to_string()))
        .collect();
    let s0: Vec<(u64, u64)> = procs.iter().map(|(_, p)| user_sys_of(*p)).collect();
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        assert_eq!(c.send(path, key, body).await.0, 200);
        v.push(t.elapsed());
    }
    println!("trace {name} ({n} requests, p50 {}):", us(pct(&mut v, 0.5)));
    for (i, (pname, pid)) in procs.iter().enumerate() {
        let (u, k) = user_sys_of(*pid);
        let (u, k) = (u - s0[i].0, k - s0[i].1);
        println!(
            "  {pname}: {:.2} wake-ups, {} CPU per request ({:.0} % in the kernel)",
            (wakeups_of(*pid) - w0[i]) as f64 / n as f64,
            us(Duration::from_nanos(
                (cpu_ns_of(&pid.to_string()) - c0[i]) / n as u64
            )),
            100.0 * k as f64 / (u + k).max(1) as f64
        );
    }
    // Then the same requests under `perf trace -s`, for the system calls.
    let mut perfs = Vec::new();
    for (pname, pid) in procs {
        let out = dir.join(format!(
            "trace-{}-{}.txt",
            name.replace(' ', "_"),
            pname.replace(' ', "_")
        ));
        let p = std::process::Command::new("perf")
            .args(["trace", "-s", "-o"])
            .arg(&out)
            .args(["-p", &pid.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        match p {
            Ok(p) => perfs.push((*pname, KillOnDrop(p), out)),
            Err(e) => println!("trace: cannot run perf ({e}); syscall counts skipped"),
        }
    }
    // perf needs a moment to attach.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..n {
        assert_eq!(c.send(path, key, body).await.0, 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (pname, mut p, out) in perfs {
        // SAFETY: a signal to our own child, which is still unreaped.
        unsafe { libc::kill(p.0.id() as libc::pid_t, libc::SIGINT) };
        let _ = p.0.wait();
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let mut calls: BTreeMap<String, u64> = BTreeMap::new();
        for l in text.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() >= 3 && f[1].parse::<u64>().is_ok() && f[2].parse::<u64>().is_ok() {
                *calls.entry(f[0].to_string()).or_default() += f[1].parse::<u64>().unwrap();
            }
        }
        let total: u64 = calls.values().sum();
        let mut top: Vec<_> = calls.into_iter().collect();
        top.sort_by_key(|e| std::cmp::Reverse(e.1));
        let list: Vec<String> = top
            .iter()
            .take(8)
            .map(|(k, v)| format!("{k} {:.2}", *v as f64 / n as f64))
            .collect();
        println!(
            "  {pname}: {:.2} syscalls per request: {}",
            total as f64 / n as f64,
            list.join(", ")
        );
    }
}

/// rathole (plaintext TCP transport) and bore, when on PATH
/// (`benches/peers.sh` installs them), against the same upstream and client.
async fn peers(up: SocketAddr, dir: &std::path::Path) {
    let quiet = std::process::Stdio::null;
    if let Some((s, c, addr)) = spawn_rathole(up, dir).await {
        measure_peer("rathole (plaintext)", addr, &[s.0.id(), c.0.id()]).await;
    } else {
        println!("rathole: not on PATH (run benches/peers.sh); skipped");
    }
    if let Some(bin) = on_path("bore") {
        let port = free_port().to_string();
        let _s = KillOnDrop(
            std::process::Command::new(&bin)
                .args(["server", "--min-port", &port, "--max-port", &port])
                .stdout(quiet())
                .stderr(quiet())
                .spawn()
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let up_port = up.port().to_string();
        let _c = KillOnDrop(
            std::process::Command::new(&bin)
                .args([
                    "local",
                    &up_port,
                    "--local-host",
                    "127.0.0.1",
                    "--to",
                    "127.0.0.1",
                    "--port",
                    &port,
                ])
                .stdout(quiet())
                .stderr(quiet())
                .spawn()
                .unwrap(),
        );
        let port: u16 = port.parse().unwrap();
        measure_peer(
            "bore",
            SocketAddr::from(([127, 0, 0, 1], port)),
            &[_s.0.id(), _c.0.id()],
        )
        .await;
    } else {
        println!("bore: not on PATH (run benches/peers.sh); skipped");
    }
}

/// Runs a gateway and a connector (2 links) in this process for the parent
/// to measure; prints `READY <agent address>`.
async fn child(dir: std::path::PathBuf) {
    let rd = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let up = String::from_utf8(rd("upstream")).unwrap();
    let token = String::from_utf8(rd("token")).unwrap();
    let mut go = GatewayOptions::new(dir.join("child-state.db"), rd("gw.pem"), rd("gw.key"));
    go.agent_tls = false;
    presign_opt(&mut go);
    audit_opt(&mut go, &dir);
    let gw = Gateway::start(go).await.unwrap();
    if std::env::var_os("AIRLOCK_BENCH_CHILD_GW_ONLY").is_some() {
        println!("READY {} {}", gw.agent_addr, gw.tunnel_addr);
        return std::future::pending::<()>().await;
    }
    let _c = child_connector(&dir, gw.tunnel_addr, token, &up).await;
    println!("READY {}", gw.agent_addr);
    std::future::pending::<()>().await;
}

/// A connector alone (2 links) to the gateway whose tunnel address is in
/// `dir/tunnel`; prints `READY` once both links are up.
async fn connector_child(dir: std::path::PathBuf) {
    let rd = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let up = String::from_utf8(rd("upstream")).unwrap();
    let tunnel: SocketAddr = String::from_utf8(rd("tunnel")).unwrap().parse().unwrap();
    let token = String::from_utf8(rd("token")).unwrap();
    let _c = child_connector(&dir, tunnel, token, &up).await;
    println!("READY");
    std::future::pending::<()>().await;
}

/// A child process's connector (2 links, route `r` to `up`), with the
/// certificates the parent wrote into `dir`; returns once both links are up.
async fn child_connector(
    dir: &std::path::Path,
    tunnel: SocketAddr,
    token: String,
    up: &str,
) -> Connector {
    let rd = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let mut o = ConnectorOptions::new(
        format!("localhost:{}", tunnel.port()),
        "bench".into(),
        token,
        rd("gwca.pem"),
        rd("c.pem"),
        rd("c.key"),
    );
    o.routes = BTreeMap::from([(
        "r".to_string(),
        RouteTarget::Http(format!("http://{up}/mcp")),
    )]);
    let mut c = Connector::start(o).unwrap();
    c.wait_links(2).await;
    c
}

/// Re-executes this bench with `envs`; returns the child and what its
/// `READY` line said after the word.
fn spawn_self(envs: &[(&str, &std::ffi::OsStr)]) -> (KillOnDrop, String) {
    use std::io::BufRead;
    let mut c = std::process::Command::new(std::env::current_exe().unwrap());
    c.stdout(std::process::Stdio::piped());
    for (k, v) in envs {
        c.env(k, v);
    }
    let mut child = KillOnDrop(c.spawn().unwrap());
    let mut line = String::new();
    std::io::BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let rest = line
        .trim()
        .strip_prefix("READY")
        .unwrap()
        .trim()
        .to_string();
    (child, rest)
}

fn child_rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// 1,000 idle SSE streams through a gateway + connector running in a child
/// process: the child's RSS growth per stream (agent client and upstream
/// are in this process and not counted).
async fn isolated_stream_cost(
    dir: &std::path::Path,
    up: SocketAddr,
    gw_ca: &Ca,
    server: &airlock_tunnel::certs::Pem,
    tun_ca: &Ca,
    client_cert: &airlock_tunnel::certs::Pem,
    batch: usize,
) -> f64 {
    let (child, agent, key) = spawn_child(
        dir,
        &format!("child-{batch}"),
        up,
        gw_ca,
        server,
        tun_ca,
        client_cert,
    )
    .await;
    let pid = child.0.id();
    let mut warm = client(agent).await;
    for _ in 0..50 {
        warm.get("/t/bench/r/small", Some(&key)).await;
    }
    let tcp = TcpStream::connect(agent).await.unwrap();
    let (s, c2) = hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .handshake::<_, Empty<Bytes>>(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(c2);
    // Warm the per-connection state with a few streams before the baseline.
    let open = |n: usize| {
        let s = s.clone();
        let key = key.clone();
        async move {
            let mut held = Vec::new();
            for _ in 0..n {
                let mut s = s.clone();
                let req = Request::get("http://bench/t/bench/r/hang")
                    .header("authorization", format!("Bearer {key}"))
                    .body(Empty::new())
                    .unwrap();
                held.push(tokio::spawn(async move {
                    s.send_request(req).await.map(|r| r.into_body())
                }));
            }
            let mut bodies = Vec::new();
            for h in held {
                bodies.push(h.await.unwrap().unwrap());
            }
            bodies
        }
    };
    let _w = open(10).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = child_rss_kib(pid);
    let streams = 1000;
    let mut held = Vec::new();
    for _ in 0..streams / batch {
        held.push(open(batch).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    (child_rss_kib(pid).saturating_sub(before)) as f64 / streams as f64
}

/// Starts a gateway and connector in a child process (fresh state in
/// `dir/name`); returns it, its agent address and an agent key.
async fn spawn_child(
    dir: &std::path::Path,
    name: &str,
    up: SocketAddr,
    gw_ca: &Ca,
    server: &airlock_tunnel::certs::Pem,
    tun_ca: &Ca,
    client_cert: &airlock_tunnel::certs::Pem,
) -> (KillOnDrop, SocketAddr, String) {
    let (c, a, _, k) =
        spawn_child_as(dir, name, up, gw_ca, server, tun_ca, client_cert, false).await;
    (c, a, k)
}

/// `gw_only`: the child runs only the gateway and also returns its
/// tunnel (link) address, for a connector in this process.
#[allow(clippy::too_many_arguments)]
async fn spawn_child_as(
    dir: &std::path::Path,
    name: &str,
    up: SocketAddr,
    gw_ca: &Ca,
    server: &airlock_tunnel::certs::Pem,
    tun_ca: &Ca,
    client_cert: &airlock_tunnel::certs::Pem,
    gw_only: bool,
) -> (KillOnDrop, SocketAddr, Option<SocketAddr>, String) {
    use std::io::BufRead;
    let cdir = dir.join(name);
    std::fs::create_dir_all(&cdir).unwrap();
    let mut st = State::open(&cdir.join("child-state.db")).unwrap();
    let token = st
        .create_tunnel("bench", &[tun_ca.pem().cert.into_bytes()])
        .unwrap();
    let (_, key) = st.create_key("bench", "bench", &[]).unwrap();
    drop(st);
    for (f, b) in [
        ("upstream", up.to_string()),
        ("token", token),
        ("gw.pem", server.cert.clone()),
        ("gw.key", server.key.clone()),
        ("gwca.pem", gw_ca.pem().cert),
        ("c.pem", client_cert.cert.clone()),
        ("c.key", client_cert.key.clone()),
    ] {
        std::fs::write(cdir.join(f), b).unwrap();
    }
    let mut child = KillOnDrop({
        let mut c = std::process::Command::new(std::env::current_exe().unwrap());
        c.env("AIRLOCK_BENCH_CHILD", &cdir)
            .stdout(std::process::Stdio::piped());
        if gw_only {
            c.env("AIRLOCK_BENCH_CHILD_GW_ONLY", "1");
            // The gateway's own runtime, apart from the other processes'.
            if let Some(t) = std::env::var_os("AIRLOCK_BENCH_GW_THREADS") {
                c.env("AIRLOCK_BENCH_THREADS", t);
            }
        }
        c.spawn().unwrap()
    });
    let mut line = String::new();
    std::io::BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let mut addrs = line.trim().strip_prefix("READY ").unwrap().split(' ');
    let agent: SocketAddr = addrs.next().unwrap().parse().unwrap();
    let tunnel = addrs.next().map(|a| a.parse().unwrap());
    (child, agent, tunnel, key)
}
