//! The real `airlock` binary: certs, tunnel and key admin, a gateway and a
//! connector as processes on loopback with real TLS, a gateway restart, and
//! a connector with a wrong token failing plainly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_airlock"));
    c.env("AIRLOCK_LOG", "warn");
    c
}

fn run_ok(args: &[&str]) -> String {
    let o = bin().args(args).output().expect("run airlock");
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn last_line(s: &str) -> String {
    s.lines().last().unwrap_or("").trim().to_string()
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Minimal HTTP/1.1 upstream answering every request with its own path.
fn upstream() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    return;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{path}",
                    path.len()
                );
            });
        }
    });
    port
}

fn get(addr: &str, path: &str, key: Option<&str>) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: gw\r\n{auth}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    Some((status, body))
}

fn start_gateway(
    dir: &Path,
    state: &Path,
    listen: &str,
    tunnel_listen: &str,
) -> (Kill, String, String) {
    let mut c = bin()
        .args(["gateway", "--state"])
        .arg(state)
        .arg("--cert")
        .arg(dir.join("gateway.pem"))
        .arg("--key")
        .arg(dir.join("gateway.key"))
        .args([
            "--listen",
            listen,
            "--tunnel-listen",
            tunnel_listen,
            "--agent-plaintext",
        ])
        .args(["--ping-interval", "1s", "--ping-timeout", "2s"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn gateway");
    let mut line = String::new();
    BufReader::new(c.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // "airlock gateway: agents http://A links B identity-key K"
    let w: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(w.get(2), Some(&"agents"), "{line}");
    let agents = w[3].trim_start_matches("http://").to_string();
    let links = w[5].to_string();
    (Kill(c), agents, links)
}

fn connector(dir: &Path, links_addr: &str, token: &str, up: u16) -> Child {
    let port = links_addr.rsplit(':').next().unwrap();
    bin()
        .arg("connect")
        .args([
            "--gateway",
            &format!("localhost:{port}"),
            "--tunnel",
            "corp",
        ])
        .arg("--ca")
        .arg(dir.join("gateway-ca.pem"))
        .arg("--cert")
        .arg(dir.join("connector.pem"))
        .arg("--key")
        .arg(dir.join("connector.key"))
        .args([
            "--route",
            &format!("web=http://127.0.0.1:{up}/base"),
            "--ping-interval",
            "1s",
            "--ping-timeout",
            "2s",
        ])
        .env("AIRLOCK_TUNNEL_TOKEN", token)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn connector")
}

fn wait_ok(agents: &str, key: &str, limit: Duration) -> Duration {
    let t = Instant::now();
    loop {
        if let Some((200, body)) = get(agents, "/t/corp/web/hello", Some(key)) {
            assert_eq!(body, "/base/hello");
            return t.elapsed();
        }
        assert!(
            t.elapsed() < limit,
            "no successful request within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn gateway_and_connector_processes_end_to_end() {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("airlock-tunnel-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.db");
    let st = state.to_str().unwrap();
    let d = dir.to_str().unwrap();

    run_ok(&["tunnel", "certs", d]);
    let ca = format!("{d}/tunnel-ca.pem");
    let token = last_line(&run_ok(&[
        "tunnel", "create", "corp", "--ca", &ca, "--state", st,
    ]));
    assert!(token.starts_with("alt_"));
    let key = last_line(&run_ok(&[
        "key", "create", "--agent", "ci", "--tunnel", "corp", "--route", "web", "--state", st,
    ]));
    assert!(key.starts_with("alk_"));
    assert!(run_ok(&["tunnel", "list", "--state", st]).contains("corp"));
    let keys = run_ok(&["key", "list", "--state", st]);
    assert!(
        keys.contains("ci") && !keys.contains(&key),
        "key list never shows secrets"
    );

    let up = upstream();
    let (gw, agents, links) = start_gateway(&dir, &state, "127.0.0.1:0", "127.0.0.1:0");
    let pk = last_line(&run_ok(&["tunnel", "identity-key", "--state", st]));
    assert_eq!(
        airlock_identity::PublicKey::from_base64(&pk)
            .unwrap()
            .to_base64(),
        pk
    );
    let _conn = Kill(connector(&dir, &links, &token, up));
    wait_ok(&agents, &key, Duration::from_secs(10));
    assert_eq!(
        get(&agents, "/t/corp/web/hello", None).map(|r| r.0),
        Some(401)
    );
    assert_eq!(
        get(&agents, "/t/corp/web/%2e%2e/x", Some(&key)).map(|r| r.0),
        Some(400)
    );

    // Restart the gateway on the same ports: the connector is back promptly.
    drop(gw);
    let (_gw2, agents2, _) = start_gateway(&dir, &state, &agents, &links);
    let back = wait_ok(&agents2, &key, Duration::from_secs(5));
    assert!(back < Duration::from_secs(3), "links back after {back:?}");
    assert!(run_ok(&["tunnel", "show", "corp", "--state", st]).contains("\"up\""));

    // A wrong token is fatal and said plainly.
    let mut bad = connector(&dir, &links, "alt_wrong", up);
    let t = Instant::now();
    let status = loop {
        if let Some(s) = bad.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "bad connector kept retrying"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut err = String::new();
    bad.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(err.contains("token rejected"), "{err}");

    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn up_serves_a_stdio_route_on_localhost() {
    let dir: PathBuf = std::env::temp_dir().join(format!("airlock-up-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let srv = dir.join("srv.py");
    std::fs::write(
        &srv,
        "import sys, json\nfor line in sys.stdin:\n    m = json.loads(line)\n    if 'id' in m:\n        print(json.dumps({'jsonrpc':'2.0','id':m['id'],'result':{'tools':[]}}), flush=True)\n# A server that outlives its stdin: only a signal ends it.\nimport time\ntime.sleep(60)\n",
    )
    .unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = bin()
        .arg("up")
        .arg("--dir")
        .arg(dir.join("st"))
        .args(["--port", &port.to_string()])
        .arg("--route")
        .arg(format!("tools=stdio:python3 {}", srv.display()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let up_pid = c.id();
    let _kill = Kill(c);
    let mut key = String::new();
    let mut claude = String::new();
    for _ in 0..20 {
        let mut l = String::new();
        if out.read_line(&mut l).unwrap() == 0 {
            break;
        }
        if let Some(k) = l.strip_prefix("agent key: ") {
            key = k.trim().to_string();
        }
        if l.contains("claude mcp add") {
            claude = l;
            break;
        }
    }
    let url = format!("http://127.0.0.1:{port}/t/local/tools");
    assert!(
        claude.contains(&format!("--transport http airlock-tools {url}")),
        "{claude}"
    );
    assert!(claude.contains(&key) && key.starts_with("alk_"));
    let body = r#"{"jsonrpc":"2.0","id":9,"method":"tools/list"}"#;
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /t/local/tools HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        resp.contains(r#""id":9"#) && resp.contains(r#""tools":[]"#),
        "{resp}"
    );
    // A SIGKILLed `up` takes the stdio server it spawned with it.
    let server = running_with_arg(&srv.display().to_string());
    assert!(!server.is_empty(), "the stdio server runs");
    unsafe { libc::kill(up_pid as i32, libc::SIGKILL) };
    let t = std::time::Instant::now();
    while !running_with_arg(&srv.display().to_string()).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the stdio server outlived airlock up: {server:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Live (not zombie) processes with `arg` in their command line.
fn running_with_arg(arg: &str) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        let zombie = std::fs::read_to_string(format!("/proc/{p}/stat"))
            .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')));
        if !zombie && cmdline.split(|b| *b == 0).any(|a| a == arg.as_bytes()) {
            v.push(p);
        }
    }
    v
}
