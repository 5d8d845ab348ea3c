//! On-demand egress benchmark: `cargo bench -p airlock-proxy --bench egress`.
//!
//! Prints, in one run: CONNECT bulk throughput against a direct loopback
//! connection, added latency per small keep-alive HTTP request through a
//! CONNECT tunnel (and per plain-HTTP forward request, one connection each),
//! and the same for Debian's tinyproxy when installed, with resident memory
//! of each proxy process after the run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BULK: usize = 512 << 20;
const REQS: usize = 20_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve-proxy") {
        return serve_proxy(&args[2]);
    }
    let sink = sink_server();
    let http = http_server();
    println!(
        "egress benchmark (loopback, {} MiB bulk, {REQS} keep-alive requests)",
        BULK >> 20
    );

    let direct_bulk = bulk(|| TcpStream::connect(sink).unwrap());
    let direct_lat = latency(|| TcpStream::connect(http).unwrap());
    println!(
        "direct      bulk {:>8.1} MiB/s   p50 {:>6.1} µs  p99 {:>6.1} µs",
        direct_bulk, direct_lat.0, direct_lat.1
    );

    // airlock, in its own process so its memory can be read.
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["serve-proxy", &format!("{},{}", sink.port(), http.port())])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line.trim().parse().unwrap();
    report(
        "airlock",
        &mut child,
        addr,
        Some("Proxy-Authorization: Basic YTpi\r\n"),
        sink,
        http,
        direct_bulk,
        direct_lat.0,
    );

    match tinyproxy() {
        Some((mut c, a, dir)) => {
            report(
                "tinyproxy",
                &mut c,
                a,
                None,
                sink,
                http,
                direct_bulk,
                direct_lat.0,
            );
            let _ = std::fs::remove_dir_all(dir);
        }
        None => println!("tinyproxy   not installed (apt-get install tinyproxy)"),
    }
}

#[allow(clippy::too_many_arguments)]
fn report(
    name: &str,
    child: &mut Child,
    proxy: SocketAddr,
    auth: Option<&str>,
    sink: SocketAddr,
    http: SocketAddr,
    direct_bulk: f64,
    direct_p50: f64,
) {
    let auth = auth.unwrap_or("");
    let idle = rss_kib(child.id());
    let b = bulk(|| connect_via(proxy, sink, auth));
    let after_bulk = rss_kib(child.id());
    let l = latency(|| connect_via(proxy, http, auth));
    let f = forward_latency(proxy, http, auth);
    let rss = rss_kib(child.id());
    println!("{name:<11} RSS idle {idle} KiB, after bulk {after_bulk} KiB, at end {rss} KiB");
    println!(
        "{name:<11} bulk {b:>8.1} MiB/s ({:>5.1} % of direct)   tunnel p50 {:>6.1} µs (+{:.1})  p99 {:>6.1} µs   forward p50 {:>6.1} µs   RSS {} KiB",
        100.0 * b / direct_bulk,
        l.0,
        l.0 - direct_p50,
        l.1,
        f,
        rss
    );
    let _ = child.kill();
    let _ = child.wait();
}

fn serve_proxy(ports: &str) {
    use airlock_config::{Network, NetworkMode};
    use airlock_proxy::{ProxyCredential, ProxyOptions};
    let allow = ports
        .split(',')
        .map(|p| format!("127.0.0.1:{p}").parse().unwrap())
        .collect();
    let network = Network {
        allow,
        deny: vec![],
        allow_private: vec!["127.0.0.1/32".parse().unwrap()],
        mode: NetworkMode::Enforce,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut o = ProxyOptions::new(
            network,
            vec![],
            ProxyCredential {
                user: "a".into(),
                password: "b".into(),
            },
        );
        o.leak_check = false;
        let h = airlock_proxy::start_tcp("127.0.0.1:0".parse().unwrap(), o)
            .await
            .unwrap();
        println!("{}", h.tcp_addr().unwrap());
        std::future::pending::<()>().await;
    });
}

fn tinyproxy() -> Option<(Child, SocketAddr, std::path::PathBuf)> {
    let bin = ["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let port = TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let dir = std::env::temp_dir().join(format!("airlock-bench-tinyproxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let conf = dir.join("tinyproxy.conf");
    std::fs::write(&conf, format!("Port {port}\nListen 127.0.0.1\nTimeout 600\nMaxClients 100\nLogLevel Critical\nAllow 127.0.0.1\nDisableViaHeader Yes\n")).ok()?;
    let child = Command::new(bin)
        .args(["-d", "-c"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().ok()?;
    for _ in 0..100 {
        if TcpStream::connect(addr).is_ok() {
            return Some((child, addr, dir));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn connect_via(proxy: SocketAddr, target: SocketAddr, auth: &str) -> TcpStream {
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_nodelay(true).unwrap();
    write!(
        s,
        "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{auth}\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "proxy closed during CONNECT");
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// Best of three runs (the machine is shared; the best run is the least disturbed).
fn bulk(connect: impl Fn() -> TcpStream) -> f64 {
    (0..3).map(|_| bulk_once(&connect)).fold(0.0, f64::max)
}

/// MiB/s writing BULK bytes; the sink answers with one byte after the last.
fn bulk_once(connect: &impl Fn() -> TcpStream) -> f64 {
    let mut s = connect();
    let buf = vec![0x5au8; 256 * 1024];
    let start = Instant::now();
    let mut left = BULK;
    while left > 0 {
        let n = left.min(buf.len());
        s.write_all(&buf[..n]).unwrap();
        left -= n;
    }
    let mut ack = [0u8; 1];
    s.read_exact(&mut ack).unwrap();
    (BULK as f64 / (1 << 20) as f64) / start.elapsed().as_secs_f64()
}

/// p50 and p99 in µs of small keep-alive requests on one connection.
fn latency(connect: impl Fn() -> TcpStream) -> (f64, f64) {
    let mut s = connect();
    s.set_nodelay(true).unwrap();
    let mut times = Vec::with_capacity(REQS);
    let mut buf = [0u8; 256];
    for i in 0..REQS + 500 {
        let t = Instant::now();
        s.write_all(b"GET /x HTTP/1.1\r\nHost: bench\r\n\r\n")
            .unwrap();
        let mut got = 0;
        while got < RESPONSE.len() {
            got += s.read(&mut buf[got..]).unwrap();
        }
        if i >= 500 {
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    pct(times)
}

/// p50 in µs of plain-HTTP forward requests (one connection each, as the proxy does).
fn forward_latency(proxy: SocketAddr, http: SocketAddr, auth: &str) -> f64 {
    let mut times = Vec::new();
    for _ in 0..2000 {
        let t = Instant::now();
        let mut s = TcpStream::connect(proxy).unwrap();
        s.set_nodelay(true).unwrap();
        write!(
            s,
            "GET http://{http}/x HTTP/1.1\r\nHost: {http}\r\n{auth}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            let n = s.read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            if out.ends_with(b"ok") {
                break;
            }
        }
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    pct(times).0
}

fn pct(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[v.len() * 99 / 100])
}

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

fn sink_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                // Acknowledge after BULK bytes (no half-close: some proxies end the tunnel on it).
                let mut buf = vec![0u8; 256 * 1024];
                let mut total = 0;
                while total < BULK {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => total += n,
                    }
                }
                let _ = s.write_all(b"k");
            });
        }
    });
    a
}

fn http_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let _ = s.set_nodelay(true);
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..p + 4);
                        if s.write_all(RESPONSE).is_err() {
                            return;
                        }
                    }
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    a
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
