//! The gateway's admin API with real processes: `airlock gateway
//! --admin-listen` (admin key given as `sha256:` in the config), `airlock
//! tunnel|key … --gateway URL` against it, a connector and an upstream.
//! Changes reach the running gateway at once (a revoked key's next request,
//! an archived tunnel's links, a rotated token with and without grace),
//! output is identical to the state-file mode, and the audit log holds
//! every admin action and the DNS-rebinding refusal, never a secret.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const ADMIN_KEY: &str = "adm-test-key-8c1f0e5d2b7a4c93";

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_airlock"));
    c.env("AIRLOCK_LOG", "warn")
        .env_remove("AIRLOCK_ADMIN_KEY")
        .env_remove("AIRLOCK_ADMIN_URL")
        .env_remove("AIRLOCK_GATEWAY_STATE");
    c
}

fn out(o: Output, args: &[&str]) -> String {
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// `airlock ARGS --gateway URL` with the admin key in the environment.
fn api(url: &str, args: &[&str]) -> String {
    let o = bin()
        .args(args)
        .args(["--gateway", url])
        .env("AIRLOCK_ADMIN_KEY", ADMIN_KEY)
        .output()
        .unwrap();
    out(o, args)
}

/// The same command on the state file.
fn file(state: &Path, args: &[&str]) -> String {
    let o = bin().args(args).arg("--state").arg(state).output().unwrap();
    out(o, args)
}

fn last_line(s: &str) -> String {
    s.lines().last().unwrap_or("").trim().to_string()
}

fn sha256_hex(s: &str) -> String {
    let o = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(s.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8(o.stdout).unwrap()[..64].to_string()
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

/// One raw HTTP/1.1 request; (status, body).
fn raw(addr: &str, head: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "{head}Connection: close\r\n\r\n").unwrap();
    let mut o = String::new();
    s.read_to_string(&mut o).unwrap();
    let status = o.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = o.split_once("\r\n\r\n").map(|x| x.1.to_string()).unwrap();
    (status, body)
}

/// One admin API request with the admin key; (status, JSON answer).
fn admin_req(addr: &str, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut o = String::new();
    s.read_to_string(&mut o).unwrap();
    let status = o.split_whitespace().nth(1).unwrap().parse().unwrap();
    let b = o.split_once("\r\n\r\n").unwrap().1;
    (
        status,
        serde_json::from_str(b).unwrap_or(serde_json::Value::Null),
    )
}

fn get(addr: &str, key: &str) -> u16 {
    raw(
        addr,
        &format!(
            "GET /t/corp/web/hello HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        ),
    )
    .0
}

fn connector(dir: &Path, links: &str, token: &str, up: u16, name: &str) -> Child {
    let port = links.rsplit(':').next().unwrap();
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
        .args(["--route", &format!("web=http://127.0.0.1:{up}/base")])
        .args(["--name", name, "--links", "1"])
        .env("AIRLOCK_TUNNEL_TOKEN", token)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a connector to exit; its stderr.
fn exits(c: &mut Child, limit: Duration) -> String {
    let t = Instant::now();
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            assert!(!s.success());
            let mut e = String::new();
            c.stderr.take().unwrap().read_to_string(&mut e).unwrap();
            return e;
        }
        assert!(
            t.elapsed() < limit,
            "connector still running after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn wait_status(agents: &str, key: &str, want: u16, limit: Duration) {
    let t = Instant::now();
    while get(agents, key) != want {
        assert!(t.elapsed() < limit, "no {want} within {limit:?}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Starts `airlock gateway --config cfg` with flags; (process, agents, links, admin URL).
fn gateway(cfg: &Path, admin_listen: &str) -> (Kill, String, String, String) {
    let mut c = bin()
        .arg("gateway")
        .arg("--config")
        .arg(cfg)
        .args(["--listen", "127.0.0.1:0", "--tunnel-listen", "127.0.0.1:0"])
        .args(["--admin-listen", admin_listen, "--agent-plaintext"])
        .args(["--ping-interval", "1s", "--ping-timeout", "2s"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(c.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // "airlock gateway: agents http://A links B identity-key K admin URL"
    let w: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        (w.get(2), w.get(8)),
        (Some(&"agents"), Some(&"admin")),
        "{line}"
    );
    let agents = w[3].trim_start_matches("http://").to_string();
    (Kill(c), agents, w[5].to_string(), w[9].to_string())
}

/// Certificates, an audit key and a config whose admin key is its SHA-256.
fn setup(dir: &Path) -> std::path::PathBuf {
    let d = dir.to_str().unwrap();
    out(
        bin().args(["tunnel", "certs", d]).output().unwrap(),
        &["certs"],
    );
    let key = dir.join("audit.key");
    out(
        bin()
            .args(["audit", "keygen", "--out", key.to_str().unwrap()])
            .output()
            .unwrap(),
        &["keygen"],
    );
    let cfg = dir.join("airlock.yaml");
    std::fs::write(
        &cfg,
        format!(
            "version: 1\ngateway:\n  state: state.db\n  tls_cert: gateway.pem\n  tls_key: gateway.key\n  \
             admin_key: sha256:{}\naudit:\n  dir: audit\n  signing_key: audit.key\n  flush_interval: 1ms\n",
            sha256_hex(ADMIN_KEY)
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn admin_api_changes_the_running_gateway_at_once_and_is_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cfg = setup(dir);
    let state = dir.join("state.db");
    let (mut gw, agents, links, admin) = gateway(&cfg, "127.0.0.1:0");
    assert!(admin.starts_with("http://127.0.0.1:"), "{admin}");
    let admin_addr = admin.trim_start_matches("http://");

    // No key, a wrong key: a bare 401 (the CLI says what to check).
    let (s, body) = raw(admin_addr, "GET /v1/tunnels HTTP/1.1\r\nHost: a\r\n");
    assert_eq!((s, body.as_str()), (401, ""));
    let (s, body) = raw(
        admin_addr,
        "GET /v1/tunnels HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer wrong\r\n",
    );
    assert_eq!((s, body.as_str()), (401, ""));
    let o = bin()
        .args(["tunnel", "list", "--gateway", &admin])
        .env("AIRLOCK_ADMIN_KEY", "wrong")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("refused the admin key (401)"));

    // Create through the API; the token and key are shown once, there.
    let ca = dir.join("tunnel-ca.pem");
    let token = last_line(&api(
        &admin,
        &["tunnel", "create", "corp", "--ca", ca.to_str().unwrap()],
    ));
    assert!(token.starts_with("alt_"));
    let key = last_line(&api(
        &admin,
        &["key", "create", "--agent", "ci", "--tunnel", "corp"],
    ));
    let key2 = last_line(&api(
        &admin,
        &[
            "key", "create", "--agent", "bot", "--tunnel", "corp", "--route", "web",
        ],
    ));
    assert!(key.starts_with("alk_") && key2.starts_with("alk_"));

    // Same output from the API and from the state file.
    for args in [
        &["tunnel", "list"][..],
        &["tunnel", "list", "--json"],
        &["key", "list"],
        &["key", "list", "--json"],
        &["tunnel", "show", "corp"],
        &["tunnel", "identity-key"],
    ] {
        assert_eq!(api(&admin, args), file(&state, args), "{args:?}");
    }
    // Errors read the same too.
    let err = |o: Output| String::from_utf8_lossy(&o.stderr).to_string();
    let via_api = err(bin()
        .args(["key", "revoke", "nope", "--gateway", &admin])
        .env("AIRLOCK_ADMIN_KEY", ADMIN_KEY)
        .output()
        .unwrap());
    let via_file = err(bin()
        .args(["key", "revoke", "nope", "--state"])
        .arg(&state)
        .output()
        .unwrap());
    assert_eq!(via_api, via_file);
    assert!(
        via_api.contains("no unrevoked key with id `nope`"),
        "{via_api}"
    );
    // Statuses a script can act on, with a JSON error.
    let pem = std::fs::read_to_string(&ca).unwrap();
    let dup = serde_json::json!({"name": "corp", "cas": [pem]}).to_string();
    let (s, b) = admin_req(admin_addr, "POST", "/v1/tunnels", &dup);
    assert_eq!(s, 409, "{b}");
    assert!(
        b["error"].as_str().unwrap().contains("already exists"),
        "{b}"
    );
    // A leaf certificate is not a CA: refused by the API and the CLI alike,
    // and nothing is created.
    let leaf = std::fs::read_to_string(dir.join("connector.pem")).unwrap();
    for (path, body) in [
        (
            "/v1/tunnels",
            serde_json::json!({"name": "leafy", "cas": [leaf]}),
        ),
        ("/v1/tunnels/corp/cas", serde_json::json!({"ca": leaf})),
    ] {
        let (s, b) = admin_req(admin_addr, "POST", path, &body.to_string());
        assert_eq!(s, 400, "{path}: {b}");
        assert!(
            b["error"].as_str().unwrap().contains("is not a CA"),
            "{path}: {b}"
        );
    }
    let o = bin()
        .args(["tunnel", "create", "leafy", "--ca"])
        .arg(dir.join("connector.pem"))
        .arg("--state")
        .arg(&state)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("is not a CA"), "{e}");
    assert!(!file(&state, &["tunnel", "list"]).contains("leafy"));
    let add = serde_json::json!({"ca": pem}).to_string();
    assert_eq!(
        admin_req(admin_addr, "POST", "/v1/tunnels/corp/cas", &add).0,
        200
    );
    let (s, b) = admin_req(admin_addr, "POST", "/v1/tunnels/corp/cas", &add);
    assert!(
        s == 400 && b["error"].as_str().unwrap().contains("2 active CAs"),
        "{s} {b}"
    );
    assert_eq!(
        admin_req(admin_addr, "POST", "/v1/tunnels/corp/retire-old-cas", "").0,
        200
    );
    assert_eq!(
        admin_req(admin_addr, "POST", "/v1/tunnels/nope/archive", "").0,
        404
    );
    assert_eq!(admin_req(admin_addr, "DELETE", "/v1/keys", "").0, 405);
    assert_eq!(admin_req(admin_addr, "GET", "/v2/keys", "").0, 404);
    assert_eq!(
        admin_req(admin_addr, "POST", "/v1/keys", "{not json").0,
        400
    );

    let up = upstream();
    let mut c1 = Kill(connector(dir, &links, &token, up, "c1"));
    wait_status(&agents, &key, 200, Duration::from_secs(10));
    assert_eq!(get(&agents, &key2), 200);

    // Revoked through the API: refused on the very next request, although
    // the gateway had just cached the key as valid.
    let id2 = key2.split('_').nth(1).unwrap();
    assert_eq!(get(&agents, &key2), 200);
    api(&admin, &["key", "revoke", id2]);
    assert_eq!(get(&agents, &key2), 401);
    assert_eq!(get(&agents, &key), 200);

    // Rotation with grace: the previous token still opens new links.
    let token2 = last_line(&api(
        &admin,
        &["tunnel", "rotate-token", "corp", "--grace", "1h"],
    ));
    let _c2 = Kill(connector(dir, &links, &token, up, "c2"));
    let t = Instant::now();
    while !file(&state, &["tunnel", "show", "corp"]).contains("\"connector\": \"c2\"") {
        assert!(t.elapsed() < Duration::from_secs(10), "c2 never linked");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Without grace: the old tokens are refused for new links at once, the
    // links already up keep serving.
    let token3 = last_line(&api(
        &admin,
        &["tunnel", "rotate-token", "corp", "--grace", "0s"],
    ));
    assert!(token3 != token2 && token3.starts_with("alt_"));
    let mut c3 = Kill(connector(dir, &links, &token2, up, "c3"));
    let e = exits(&mut c3.0, Duration::from_secs(10));
    assert!(e.contains("token rejected"), "{e}");
    assert_eq!(get(&agents, &key), 200);

    // DNS rebinding: refused and audited with what the request named.
    let port = agents.rsplit(':').next().unwrap();
    let (s, _) = raw(
        &agents,
        &format!(
            "POST /t/corp/web HTTP/1.1\r\nHost: evil.example.com:{port}\r\n\
             Origin: http://evil.example.com:{port}\r\nContent-Length: 0\r\n"
        ),
    );
    assert_eq!(s, 403);

    // Archived: the links close at once, requests find no tunnel.
    api(&admin, &["tunnel", "archive", "corp"]);
    let t = Instant::now();
    assert_ne!(get(&agents, &key), 200);
    assert!(t.elapsed() < Duration::from_millis(500));
    // Closed by the gateway, then refused on redial (the archived tunnel's
    // CA is no longer trusted): the connector stops within a moment.
    let e = exits(&mut c1.0, Duration::from_secs(3));
    assert!(e.contains("closed by gateway"), "{e}");
    assert!(e.contains("authentication failed"), "{e}");

    // A graceful stop closes the audit log; then read it back.
    unsafe { libc::kill(gw.0.id() as i32, libc::SIGTERM) };
    let _ = gw.0.wait();
    let log = dir.join("audit");
    let q = out(
        bin()
            .args(["audit", "query", log.to_str().unwrap(), "--format", "jsonl"])
            .output()
            .unwrap(),
        &["query"],
    );
    let recs: Vec<serde_json::Value> = q
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let admin_tools: Vec<&str> = recs
        .iter()
        .filter(|r| r["who"]["user"] == "admin")
        .map(|r| r["tool"].as_str().unwrap())
        .collect();
    for want in [
        "admin.tunnel.create",
        "admin.key.create",
        "admin.tunnel.list",
        "admin.key.revoke",
        "admin.tunnel.rotate_token",
        "admin.tunnel.archive",
    ] {
        assert!(
            admin_tools.contains(&want),
            "{want} not audited: {admin_tools:?}"
        );
    }
    let failed = recs
        .iter()
        .find(|r| r["tool"] == "admin.key.revoke" && r["status"] == "404")
        .expect("the refused revoke is audited");
    assert!(failed["result"].as_str().unwrap().contains("`nope`"));
    let refused = recs
        .iter()
        .filter(|r| {
            r["decision"]["rule"] == "gateway.admin_key" && r["decision"]["allowed"] == false
        })
        .count();
    assert!(
        refused >= 3,
        "unauthorized admin requests audited: {refused}"
    );
    let rebound = recs
        .iter()
        .find(|r| r["decision"]["rule"] == "gateway.origin")
        .expect("rebound request audited");
    assert_eq!(rebound["decision"]["allowed"], false);
    let d = &rebound["detail"];
    assert_eq!(d["kind"], "rebound");
    assert_eq!(
        (d["tunnel"].as_str(), d["route"].as_str()),
        (Some("corp"), Some("web"))
    );
    assert_eq!(d["host"], format!("evil.example.com:{port}"));
    assert_eq!(d["origin"], format!("http://evil.example.com:{port}"));
    assert!(d["remote"].as_str().unwrap().starts_with("127.0.0.1:"));
    // Never a secret: tokens, agent keys and the admin key stay out.
    let raw_log: String = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .collect();
    for secret in [token.as_str(), &token2, &token3, &key, &key2, ADMIN_KEY] {
        assert!(!raw_log.contains(secret), "a secret reached the audit log");
    }
}

#[test]
fn off_loopback_the_admin_api_is_https_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cfg = setup(dir);
    let (_gw, _, _, admin) = gateway(&cfg, "0.0.0.0:0");
    let port = admin.rsplit(':').next().unwrap();
    assert!(admin.starts_with("https://"), "{admin}");
    let url = format!("https://localhost:{port}");
    let ca = dir.join("gateway-ca.pem");
    let o = bin()
        .args(["tunnel", "list", "--gateway", &url, "--gateway-ca"])
        .arg(&ca)
        .env("AIRLOCK_ADMIN_KEY", ADMIN_KEY)
        .output()
        .unwrap();
    assert!(out(o, &["list"]).starts_with("NAME"));
    // Without the CA there is nothing to trust; plain HTTP is not spoken.
    let o = bin()
        .args(["tunnel", "list", "--gateway", &url])
        .env("AIRLOCK_ADMIN_KEY", ADMIN_KEY)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs --gateway-ca"));
    let o = bin()
        .args([
            "tunnel",
            "list",
            "--gateway",
            &format!("http://127.0.0.1:{port}"),
        ])
        .env("AIRLOCK_ADMIN_KEY", ADMIN_KEY)
        .output()
        .unwrap();
    assert!(!o.status.success());
}

/// A `tools/call` through the gateway (stateless MCP generation); the
/// JSON-RPC answer, or `None` while the route is not up yet.
fn mcp_call(
    agents: &str,
    key: &str,
    tool: &str,
    args: serde_json::Value,
) -> Option<serde_json::Value> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": tool, "arguments": args, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}}})
    .to_string();
    let head = format!(
        "POST /t/corp/tools HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: {tool}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut s = TcpStream::connect(agents).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body.as_bytes()).ok()?;
    let mut o = String::new();
    s.read_to_string(&mut o).ok()?;
    let status: u16 = o.split_whitespace().nth(1)?.parse().ok()?;
    let out = o.split_once("\r\n\r\n")?.1.to_string();
    (status == 200)
        .then(|| serde_json::from_str(&out).ok())
        .flatten()
}

#[test]
fn a_builtin_route_works_in_its_workdir() {
    use std::os::unix::fs::PermissionsExt;
    // Not under /tmp: the jail has a private /tmp.
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = tmp.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ws = dir.join("ws");
    std::fs::create_dir(&ws).unwrap();
    std::fs::write(ws.join("marker.txt"), "in-the-route-workdir\n").unwrap();
    std::fs::write(dir.join("marker.txt"), "in-the-connector-cwd\n").unwrap();
    for f in [ws.join("marker.txt"), dir.join("marker.txt")] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let d = dir.to_str().unwrap();
    out(
        bin().args(["tunnel", "certs", d]).output().unwrap(),
        &["certs"],
    );
    let state = dir.join("state.db");
    let ca = format!("{d}/tunnel-ca.pem");
    let token = last_line(&file(&state, &["tunnel", "create", "corp", "--ca", &ca]));
    let key = last_line(&file(
        &state,
        &[
            "key", "create", "--agent", "dev", "--tunnel", "corp", "--route", "tools",
        ],
    ));
    let mut gw = bin()
        .args(["gateway", "--state"])
        .arg(&state)
        .arg("--cert")
        .arg(dir.join("gateway.pem"))
        .arg("--key")
        .arg(dir.join("gateway.key"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--tunnel-listen",
            "127.0.0.1:0",
            "--agent-plaintext",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(gw.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _gw = Kill(gw);
    let w: Vec<&str> = line.split_whitespace().collect();
    let agents = w[3].trim_start_matches("http://").to_string();
    let links_port = w[5].rsplit(':').next().unwrap().to_string();
    let identity = w[7].to_string();

    std::fs::write(
        dir.join("mcp.yaml"),
        "version: 1\ntools:\n  read: { kind: agent.read }\nagents:\n  dev: { allowed_tools: [read] }\n",
    )
    .unwrap();
    let conn = dir.join("conf").join("connector.yaml");
    std::fs::create_dir(dir.join("conf")).unwrap();
    // Relative paths: against the config file's directory (conf/), not the cwd.
    std::fs::write(
        &conn,
        format!(
            "version: 1\nconnector:\n  gateway: localhost:{links_port}\n  tunnel: corp\n  \
             token: \"${{env:AIRLOCK_T_TOKEN}}\"\n  ca: ../gateway-ca.pem\n  client_cert: ../connector.pem\n  \
             client_key: ../connector.key\n  links: 1\n  identity_key: {identity}\n  routes:\n    \
             tools: {{ builtin: ../mcp.yaml, workdir: ../ws }}\n"
        ),
    )
    .unwrap();
    let _conn = Kill(
        bin()
            .arg("connect")
            .arg("--config")
            .arg(&conn)
            .current_dir(dir)
            .env("AIRLOCK_T_TOKEN", &token)
            .spawn()
            .unwrap(),
    );
    let t = Instant::now();
    let v = loop {
        if let Some(v) = mcp_call(
            &agents,
            &key,
            "read",
            serde_json::json!({"file_path": "marker.txt"}),
        ) {
            break v;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the builtin route never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("in-the-route-workdir"), "{v}");

    // A workdir that does not exist stops the connector at once, naming
    // the file and line.
    std::fs::write(
        &conn,
        std::fs::read_to_string(&conn)
            .unwrap()
            .replace("workdir: ../ws", "workdir: ../missing"),
    )
    .unwrap();
    let o = bin()
        .arg("connect")
        .arg("--config")
        .arg(&conn)
        .env("AIRLOCK_T_TOKEN", &token)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("connector.yaml:12:") && e.contains("missing` cannot be used"),
        "{e}"
    );
}
